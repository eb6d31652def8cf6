"""Every line of README.md's ```bash and ```python blocks runs as written (issue 27).

The blocks are read from README.md when the tests are collected, so the README is tested as it
stands; nothing here copies a snippet. Each block runs for real in a fresh subprocess, in its own
temporary folder: a python block with ``sys.executable``, a bash block as one ``bash`` script (its
commands in order, stopping at the first that fails). HOME points into that folder, so the default
store (a SQLite file in the user data dir), the demo's temporary files and everything else a
snippet writes stay there; the user cache is one shared per session, seeded with the ONNX export
of the bundled model when the user has one (hard links: nothing is written to the user's files),
so the model is exported at most once. Nothing is downloaded (``HF_HUB_OFFLINE=1``).

What cannot run in a test is skipped by an explicit rule with its reason: ``SKIP`` for shell
commands, ``EXTRAS`` for python blocks whose optional extra is not installed.
``test_the_skip_rules_skip_only_what_they_name`` checks that the rules skip exactly the commands
they count, and that no block is left with nothing to run and no reason.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
TIMEOUT = 600  # seconds a block may take; the slowest (the CLI tour) takes well under a minute


@dataclass(frozen=True)
class Skip:
    prefix: str  # a shell command starting with these words (or equal to them)
    reason: str
    count: int  # how many commands of the README it skips: a new one must be looked at

    def matches(self, command: str) -> bool:
        return command == self.prefix or command.startswith(self.prefix + " ")


SKIP = (
    Skip("pip install", "installs packages: the tests run in the checkout's own environment", 2),
    Skip("python -m pytest", "the README's test command: this test is part of the suite it runs", 1),
    Skip("mindstore tui", "a full-screen app that needs a terminal: tests/tui drive it with Textual's pilot", 1),
    Skip("mindstore mcp", "a server that runs until its client hangs up: the README's MCP snippet starts it and talks to it", 1),
)

# A python block importing one of these needs an optional extra: it runs when the extra's modules
# are installed (pip install -e '.[dev]' has them all) and is skipped, saying so, when not.
EXTRAS = {
    "mindstore.integrations.langgraph": ("langchain", ("langgraph", "langchain_core")),
    "mindstore.integrations.langchain": ("langchain", ("langchain_core",)),
    "langchain_core": ("langchain", ("langchain_core",)),
    "langgraph": ("langchain", ("langgraph",)),
    "mcp": ("mcp", ("mcp",)),
}

# Files the README's snippets read as the reader's own (their drawings): the README ships none, so
# the test draws them in each block's folder. Folders bind by folder name (the label).
READER_IMAGES = ("ka.png", "kha.png", "ga.png", "ka2.png", "drawings/ka/1.png", "drawings/kha/1.png", "drawings/ga/1.png", "new/ka2.png")


@dataclass(frozen=True)
class Block:
    lang: str
    line: int  # where the block's first line is in README.md
    code: str

    @property
    def id(self) -> str:
        return f"{self.lang}-line{self.line}"


def readme_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    return [Block(m["lang"], text.count("\n", 0, m.start("code")) + 1, m["code"])
            for m in re.finditer(r"^```(?P<lang>bash|python)\n(?P<code>.*?)^```", text, re.M | re.S)]


def commands(line: str) -> list[str]:
    """The commands of one shell line: split at ``;`` and ``&&`` outside quotes, comment dropped."""
    out, cur, quote, i = [], "", None, 0
    while i < len(line):
        c = line[i]
        if quote is not None:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (not cur or cur[-1].isspace()):
            break
        elif c == ";" or line.startswith("&&", i):
            out.append(cur)
            cur, i = "", i + (1 if c == ";" else 2)
            continue
        cur += c
        i += 1
    return [c.strip() for c in [*out, cur] if c.strip()]


def plan(block: Block) -> tuple[list[str], list[tuple[str, Skip]]]:
    """A bash block's commands to run, and those skipped with the rule that skips each."""
    run: list[str] = []
    skipped: list[tuple[str, Skip]] = []
    for line in block.code.splitlines():
        for command in commands(line):
            rule = next((r for r in SKIP if r.matches(command)), None)
            if rule is None:
                run.append(command)
            else:
                skipped.append((command, rule))
    return run, skipped


def missing_extra(code: str) -> str | None:
    """Why a python block cannot run here (its optional extra is not installed), or None."""
    for node in ast.walk(ast.parse(code)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        for name in names:
            for prefix, (extra, modules) in EXTRAS.items():
                if (name == prefix or name.startswith(prefix + ".")) and not all(importlib.util.find_spec(m) for m in modules):
                    return f"needs the {extra} extra: pip install -e '.[{extra}]'"
    return None


BLOCKS = readme_blocks()


@pytest.fixture(scope="session")
def user_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user cache for all blocks, holding the ONNX export of the bundled model if the user has one."""
    import platformdirs

    cache = tmp_path_factory.mktemp("cache")
    mine = Path(platformdirs.user_cache_dir("mindstore")) / "onnx"
    if mine.is_dir():
        def link(src: str, dst: str) -> None:
            try:
                os.link(src, dst)  # the library replaces a cache file by renaming, never writes into one
            except OSError:
                shutil.copy2(src, dst)
        shutil.copytree(mine, cache / "mindstore" / "onnx", copy_function=link)
    return cache


def run_in(tmp_path: Path, user_cache: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    work, home, tmp = tmp_path / "work", tmp_path / "home", tmp_path / "tmp"
    for d in (work, home, tmp):
        d.mkdir()
    (home / ".cache").symlink_to(user_cache, target_is_directory=True)  # also what a child that gets only HOME sees
    draw_reader_images(work)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINDSTORE_", "XDG_"))}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / ".local" / "share"), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_STATE_HOME=str(home / ".local" / "state"), XDG_CACHE_HOME=str(home / ".cache"), TMPDIR=str(tmp),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]))  # the venv's `mindstore`
    return subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)


def draw_reader_images(folder: Path) -> None:
    from PIL import Image, ImageDraw

    for n, name in enumerate(READER_IMAGES):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        img = Image.new("L", (105, 105), 255)
        draw = ImageDraw.Draw(img)
        k = n % 3  # three shapes, one per label
        draw.line([(20, 20 + 15 * k), (85, 85 - 10 * k)], fill=0, width=6)
        draw.ellipse([(30 + 8 * k, 30), (70, 70 + 5 * k)], outline=0, width=5)
        img.save(path)


def _report(block: Block, what: str, out: subprocess.CompletedProcess[str]) -> str:
    return f"README.md line {block.line} ({block.lang}) exited {out.returncode}:\n{what}\n--- stdout\n{out.stdout}\n--- stderr\n{out.stderr}"


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_block_runs_as_written(block: Block, tmp_path: Path, user_cache: Path) -> None:
    if block.lang == "python":
        reason = missing_extra(block.code)
        if reason is not None:
            pytest.skip(reason)
        script = tmp_path / "snippet.py"
        script.write_text(block.code, encoding="utf-8")
        out = run_in(tmp_path, user_cache, [sys.executable, str(script)])
        assert out.returncode == 0, _report(block, block.code, out)
        return
    run, skipped = plan(block)
    if not run:
        pytest.skip("; ".join(f"{c!r}: {r.reason}" for c, r in skipped))
    # -x traces each command to stderr, so a failure shows which one.
    script = "set -euxo pipefail\n" + "\n".join(run) + "\n"
    out = run_in(tmp_path, user_cache, ["bash", "-c", script])
    assert out.returncode == 0, _report(block, script, out)


def test_the_skip_rules_skip_only_what_they_name() -> None:
    assert BLOCKS and {b.lang for b in BLOCKS} == {"bash", "python"}, "README.md has no ```bash or ```python blocks"
    counts = {r.prefix: 0 for r in SKIP}
    ran = 0
    for block in BLOCKS:
        if block.lang == "python":
            ast.parse(block.code)  # a python block is python
            assert block.code.strip(), f"README.md line {block.line}: an empty python block"
            continue
        run, skipped = plan(block)
        assert run or skipped, f"README.md line {block.line}: a bash block with no command"
        for command, rule in skipped:
            assert rule.matches(command) and sum(r.matches(command) for r in SKIP) == 1, command
            counts[rule.prefix] += 1
        ran += len(run)
    assert counts == {r.prefix: r.count for r in SKIP}, "a rule skips other README commands than it counts: look at them, then update SKIP"
    assert ran >= 10, f"only {ran} README commands run"
    text = README.read_text(encoding="utf-8")
    for name in READER_IMAGES:  # no drawing is made that the README does not ask for
        assert (name.split("/")[0] + "/" if "/" in name else name) in text, name


def test_commands_split_at_separators_outside_quotes() -> None:
    assert commands("""mindstore search "what can't alice eat?" -k 3   # --mode a|b""") == ["""mindstore search "what can't alice eat?" -k 3"""]
    assert commands("pip install x && mindstore demo ; mindstore show 1") == ["pip install x", "mindstore demo", "mindstore show 1"]
    assert commands("mindstore add 'a ; b && c' # note") == ["mindstore add 'a ; b && c'"]
