"""The real `mindstore` command against temporary databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mindstore.cli import app

from conftest import FUSION_QUERY, FUSION_TEXTS

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def run(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input, catch_exceptions=False)


def test_add_search_show_edit_history_rm(db: str) -> None:
    r = run("add", "Alice is allergic to peanuts", "Alice works in Lisbon", "--db", db, "--user", "alice", "--meta", "source=cli", "--meta", "year=2024", "--json")
    assert r.exit_code == 0, r.output
    slots = json.loads(r.output)
    assert [s["text"] for s in slots] == ["Alice is allergic to peanuts", "Alice works in Lisbon"]
    assert slots[0]["metadata"] == {"source": "cli", "year": 2024}
    first = slots[0]["id"]

    r = run("search", "food allergy", "--db", db, "--user", "alice", "-k", "1", "--json")
    hits = json.loads(r.output)
    assert hits[0]["slot"]["id"] == first and 0 < hits[0]["score"] <= 1

    r = run("search", "food allergy", "--db", db, "--user", "bob")
    assert r.exit_code == 0 and "no memories found" in r.output

    r = run("search", "anything", "--db", db, "--filter", '{"year": {"$gte": 2025}}', "--json")
    assert json.loads(r.output) == []

    r = run("show", str(first), "--db", db)
    assert "Alice is allergic to peanuts" in r.output and "reads=1" in r.output

    r = run("edit", str(first), "--text", "Alice is allergic to peanuts and shellfish", "--db", db)
    assert r.exit_code == 0 and "shellfish" in r.output

    r = run("history", str(first), "--db", db, "--json")
    assert [e["kind"] for e in json.loads(r.output)] == ["add", "update"]

    r = run("rm", str(first), "--db", db)
    assert r.exit_code == 0 and "deleted 1" in r.output
    r = run("show", str(first), "--db", db)
    assert r.exit_code == 1 and "no slot with id" in r.output


def test_list_pages_with_cursor(db: str) -> None:
    run("add", *[f"note {i} about things" for i in range(7)], "--db", db, "--user", "u", "--no-dedup")
    r = run("list", "--db", db, "--limit", "3")
    assert r.output.count("note") == 3 and "--cursor" in r.output
    cursor = r.output.strip().split()[-1]
    page = json.loads(run("list", "--db", db, "--limit", "5", "--cursor", cursor, "--json").output)
    assert [s["text"] for s in page["slots"]] == [f"note {i} about things" for i in range(3, 7)]
    assert page["next_cursor"] is None


def test_rm_all_scope_asks_and_respects_no(db: str) -> None:
    run("add", "one thing", "another thing entirely", "--db", db, "--user", "u")
    run("add", "kept thing", "--db", db, "--user", "v")
    r = run("rm", "--all", "--user", "u", "--db", db, input="n\n")
    assert r.exit_code == 1
    assert json.loads(run("list", "--db", db, "--user", "u", "--json").output)["slots"]
    r = run("rm", "--all", "--user", "u", "--db", db, "--yes")
    assert "deleted 2" in r.output
    assert [s["text"] for s in json.loads(run("list", "--db", db, "--json").output)["slots"]] == ["kept thing"]


def test_export_import_stats_and_stdin(db: str, tmp_path: Path) -> None:
    r = run("add", "-", "--db", db, "--user", "u", input="first line memory\n\nsecond line memory\n")
    assert r.output.count("added") == 2
    dump = tmp_path / "dump.jsonl"
    assert "exported 2 slots" in run("export", str(dump), "--db", db).output
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert "imported 2 slots" in run("import", str(dump), "--db", other).output
    stats = json.loads(run("stats", "--db", other, "--json").output)
    assert stats["spaces"][0]["count"] == 2 and stats["spaces"][0]["index"]["keys"] == 2
    assert stats["spaces"][0]["index"]["kind"] == "flat" and stats["spaces"][0]["usage"]["1"] == 2


def test_errors_are_messages_not_tracebacks(db: str) -> None:
    for args in (["add", "   ", "--db", db], ["search", "x", "--db", db, "-k", "0"], ["search", "x", "--db", db, "--filter", "{bad"],
                 ["edit", "12345", "--text", "new", "--db", db], ["list", "--db", "nonsense://"], ["rm", "--db", db]):
        r = run(*args)
        assert r.exit_code != 0, args
        assert "Traceback" not in r.output and "error:" in r.output, (args, r.output)


def test_console_script_runs_for_real(db: str) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MINDSTORE_DB": db}
    exe = Path(sys.executable).with_name("mindstore")
    out = subprocess.run([str(exe), "add", "the spare key is under the mat", "--user", "u"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([str(exe), "search", "where is the key", "--user", "u", "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert json.loads(out.stdout)[0]["slot"]["text"] == "the spare key is under the mat"
    out = subprocess.run([str(exe), "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "search" in out.stdout


@pytest.mark.slow
def test_demo_runs(tmp_path: Path) -> None:
    r = run("demo", "--db", f"sqlite:///{tmp_path / 'demo.db'}")
    assert r.exit_code == 0, r.output
    assert "'Alice is allergic to peanuts'" in r.output
    assert "after reopening: 'which city does alice work in?' -> 'Alice works as a nurse in Porto'" in r.output


@pytest.mark.parametrize("args", [
    ["show", str(2**63)], ["rm", str(2**64)], ["edit", str(2**70), "--text", "new words"], ["history", str(2**63)],
    ["show", "--", "-5"], ["rm", "--", "-1"], ["history", "--", "-3"], ["show", "-5"],
    ["list", "--cursor", "²"], ["list", "--cursor", str(2**70)], ["list", "--limit", str(2**70)],
    ["add", "nuts\x00bolts"], ["add", "bad \ud800 text"], ["search", "peanuts \udcff"], ["search", "x", "--user", "al\x00ice"],
    ["search", "x", "--now", "garbage"], ["search", "x", "--now", "9999999-01-01"], ["search", "x", "--since", "blah blah"],
    ["search", "x", "--filter", '{"a":' * 3000 + "1" + "}" * 3000], ["add", "x y", "--meta", "a=" + "[" * 3000 + "]" * 3000],
    ["add", "x y", "--meta", "=1"], ["list", "--space", "bad\ud800"], ["stats", "--recall-sample", "-1"],
    ["mcp", "--transport", "http", "--port", str(2**70)],
])
def test_bad_arguments_are_one_error_line_and_a_non_zero_exit(db: str, args: list[str]) -> None:
    r = runner.invoke(app, [*args, "--db", db])
    assert r.exit_code != 0, (args, r.output)
    assert r.exception is None or isinstance(r.exception, SystemExit), (args, repr(r.exception))
    assert "Traceback" not in r.output and "error" in r.output.lower(), (args, r.output)


@pytest.mark.parametrize("db_arg", ["", "nonsense://", "sqlite:///{tmp}/a-file/x.db", "sqlite:///{tmp}/a-file", "sqlite:///{tmp}",
                                    "sqlite:///file:{tmp}/u/x.db?mode=ro&uri=true"])
def test_a_bad_db_is_one_error_line(tmp_path: Path, db_arg: str) -> None:
    (tmp_path / "a-file").write_text("x")
    r = runner.invoke(app, ["list", "--db", db_arg.format(tmp=tmp_path)])
    assert r.exit_code == 1 and r.output.startswith("error: ") and "Traceback" not in r.output, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"] and (tmp_path / "a-file").read_text() == "x"


def test_bad_arguments_to_the_real_command_print_no_traceback(db: str, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MINDSTORE_DB": db}
    exe = Path(sys.executable).with_name("mindstore")
    for args in ([b"show", str(2**63).encode()], [b"list", b"--cursor", "²".encode()], [b"add", b"undecodable \xff bytes"],
                 [b"list", b"--db", f"sqlite:///{tmp_path}/a-file/x.db".encode()], [b"search", b"x", b"--now", b"garbage"]):
        out = subprocess.run([str(exe).encode(), *args], env=env, capture_output=True, timeout=300)
        stderr = out.stderr.decode("utf-8", "replace")
        assert out.returncode == 1, (args, stderr)
        assert "Traceback" not in stderr and stderr.startswith("error: ") and stderr.count("\n") == 1, (args, stderr)


def test_search_mode_empty_list_and_stats_url(db: str, tmp_path: Path) -> None:
    assert run("add", "The gate code is 4411", "Alice likes green tea", "--db", db).exit_code == 0
    lexical = json.loads(run("search", "gate code", "--db", db, "--mode", "lexical", "--json").output)
    assert [h["slot"]["text"] for h in lexical] == ["The gate code is 4411"]  # words only: tea has none of them
    dense = json.loads(run("search", "gate code", "--db", db, "--mode", "dense", "--json").output)
    assert len(dense) == 2 and dense[0]["slot"]["text"] == "The gate code is 4411"
    r = runner.invoke(app, ["search", "gate", "--db", db, "--mode", "fuzzy"])
    assert r.exit_code == 1 and "--mode takes hybrid, dense or lexical" in r.output
    r = run("list", "--db", db, "--user", "nobody")
    assert r.exit_code == 0 and r.output.strip() == "no memories here"
    info = json.loads(run("stats", "--db", db, "--json", "--recall-sample", "0").output)
    assert info["url"] == db  # the URL itself, not a Python repr


def test_search_scores_go_down_the_list_as_the_hits_do(db: str) -> None:
    assert run("add", *FUSION_TEXTS, "--db", db, "--user", "u").exit_code == 0
    hits = json.loads(run("search", FUSION_QUERY, "--db", db, "--user", "u", "-k", "4", "--json").output)
    cosines, ranks = [h["score"] for h in hits], [h["rank_score"] for h in hits]
    assert cosines[0] < cosines[1]  # hybrid ranks a hit with the lower cosine first here
    assert all(a >= b for a, b in zip(ranks, ranks[1:]))
    for mode in ("hybrid", "dense", "lexical"):
        lines = run("search", FUSION_QUERY, "--db", db, "--user", "u", "-k", "4", "--mode", mode).output.splitlines()
        shown = [float(line.split()[1]) for line in lines]  # "[id] score text  (scope, cosine c)"
        assert len(shown) >= 1 and all(a >= b for a, b in zip(shown, shown[1:])), (mode, lines)
        if mode == "hybrid":
            assert [float(line.rsplit("cosine ", 1)[1].rstrip(")")) for line in lines] == pytest.approx(cosines, abs=1e-3)
            assert shown == pytest.approx(ranks, abs=1e-3)


def test_reindex_says_what_it_did_and_force_re_embeds(db: str) -> None:
    assert run("add", "The gate code is 4411", "--db", db).exit_code == 0
    r = run("reindex", "--db", db)
    assert r.exit_code == 0 and "embedded with" in r.output and "--force" in r.output and "re-embedded 1" not in r.output
    r = run("reindex", "--db", db, "--force")
    assert r.exit_code == 0 and "re-embedded 1 slots" in r.output, r.output
    hits = json.loads(run("search", "gate code", "--db", db, "--json").output)
    assert hits[0]["slot"]["text"] == "The gate code is 4411" and hits[0]["score"] > 0.5


def test_a_db_in_a_missing_folder_is_refused_and_nothing_is_made(tmp_path: Path) -> None:
    r = runner.invoke(app, ["add", "hello world notes", "--db", f"sqlite:///{tmp_path / 'typo' / 'dir' / 'x.db'}"])
    assert r.exit_code == 1 and "does not exist" in r.output
    assert not (tmp_path / "typo").exists()
