"""The real `mindstore mcp` server process, driven by the mcp package's own client session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

pytestmark = pytest.mark.anyio

ENV = {
    **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "PYTHONPATH", "OMP_NUM_THREADS", "MINDSTORE_TEST_PG")},
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


@asynccontextmanager
async def mcp_session(db: str, *args: str) -> AsyncIterator[ClientSession]:
    """A client session with a fresh `python -m mindstore.cli mcp` process over stdio."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "mindstore.cli", "mcp", "--db", db, *args], env=ENV)
    with open(os.devnull, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session


async def call(session: ClientSession, tool: str, **arguments):
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def error(session: ClientSession, tool: str, **arguments) -> str:
    result = await session.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return result.content[0].text


async def test_tools_scoped_per_user_with_errors_not_crashes(sqlite_url: str) -> None:
    async with mcp_session(sqlite_url) as s:
        names = {t.name for t in (await s.list_tools()).tools}
        assert names == {"add_memory", "search_memories", "list_memories", "update_memory", "delete_memory", "memory_history"}

        peanuts = await call(s, "add_memory", user_id="alice", text="Alice is allergic to peanuts", metadata={"topic": "food"})
        await call(s, "add_memory", user_id="alice", text="Alice works as a nurse in Lisbon")
        pixel = await call(s, "add_memory", user_id="bob", text="Bob's cat is called Pixel")
        assert peanuts["user_id"] == "alice" and peanuts["metadata"] == {"topic": "food"}

        hits = (await call(s, "search_memories", user_id="alice", query="what can't she eat?", k=1))["hits"]
        assert hits[0]["memory"]["id"] == peanuts["id"] and 0 < hits[0]["score"] <= 1
        for_alice = (await call(s, "search_memories", user_id="alice", query="Pixel the cat", k=10))["hits"]
        assert {h["memory"]["user_id"] for h in for_alice} == {"alice"}
        filtered = (await call(s, "search_memories", user_id="alice", query="anything", filters={"topic": "food"}))["hits"]
        assert [h["memory"]["id"] for h in filtered] == [peanuts["id"]]
        page = await call(s, "list_memories", user_id="bob")
        assert [m["text"] for m in page["memories"]] == ["Bob's cat is called Pixel"] and page["next_cursor"] is None

        # Another user's ids are answered as unknown, and nothing of theirs changes.
        for tool, extra in (("update_memory", {"text": "hacked"}), ("delete_memory", {}), ("memory_history", {})):
            assert "has no memory with id" in await error(s, tool, user_id="bob", memory_id=peanuts["id"], **extra)
        assert (await call(s, "list_memories", user_id="alice"))["memories"][0]["text"] == "Alice is allergic to peanuts"

        updated = await call(s, "update_memory", user_id="alice", memory_id=peanuts["id"], text="Alice is allergic to peanuts and shellfish")
        assert updated["text"].endswith("shellfish")
        events = (await call(s, "memory_history", user_id="alice", memory_id=peanuts["id"]))["events"]
        assert [e["kind"] for e in events] == ["add", "update"] and events[1]["old_text"] == "Alice is allergic to peanuts"
        assert await call(s, "delete_memory", user_id="bob", memory_id=pixel["id"]) == {"deleted": pixel["id"]}
        assert (await call(s, "list_memories", user_id="bob"))["memories"] == []

        # Bad input from an agent's tool call: tool errors it can read, never a dead server.
        assert "has no memory with id" in await error(s, "delete_memory", user_id="bob", memory_id=pixel["id"])
        assert "has no memory with id" in await error(s, "update_memory", user_id="alice", memory_id=999_999, text="x")
        assert "empty" in await error(s, "add_memory", user_id="alice", text="   ")
        await error(s, "add_memory", user_id="alice", text=123)
        await error(s, "add_memory", user_id="", text="x")
        await error(s, "add_memory", text="no user")
        await error(s, "add_memory", user_id="alice", text="x", metadata="not an object")
        await error(s, "update_memory", user_id="alice", memory_id="abc", text="x")
        assert "nothing to update" in await error(s, "update_memory", user_id="alice", memory_id=peanuts["id"])
        await error(s, "search_memories", user_id="alice", query="x", k=0)
        assert "unknown operator" in await error(s, "search_memories", user_id="alice", query="x", filters={"topic": {"$regex": "f.*"}})
        assert "cursor" in await error(s, "list_memories", user_id="alice", cursor="not-a-cursor")
        await error(s, "no_such_tool", user_id="alice")
        assert len((await call(s, "list_memories", user_id="alice"))["memories"]) == 2  # still serving, nothing changed


async def test_another_users_id_is_answered_exactly_like_a_missing_one(sqlite_url: str) -> None:
    """No tool tells a caller whether an id exists when it is not the caller's own."""

    async def answer(s: ClientSession, tool: str, memory_id: int, **extra) -> tuple:
        result = await s.call_tool(tool, {"user_id": "alice", "memory_id": memory_id, **extra})
        return result.is_error, [c.text.replace(str(memory_id), "<id>") for c in result.content], result.structured_content

    async with mcp_session(sqlite_url) as s:
        bobs = await call(s, "add_memory", user_id="bob", text="Bob's cat is called Pixel")
        gone = await call(s, "add_memory", user_id="alice", text="Alice used to live in Porto")
        await call(s, "delete_memory", user_id="alice", memory_id=gone["id"])
        calls = [("update_memory", {"text": "Pixel is a dog"}), ("update_memory", {"metadata": {"a": 1}}), ("update_memory", {}),
                 ("update_memory", {"text": "   "}), ("delete_memory", {}), ("memory_history", {})]
        for tool, extra in calls:
            theirs = await answer(s, tool, bobs["id"], **extra)
            assert theirs[0] and "has no memory with id <id>" in theirs[1][0], theirs
            for missing in (999_999, gone["id"], 0, -1, 2**63, 2**80):
                assert await answer(s, tool, missing, **extra) == theirs, (tool, missing)
        assert (await call(s, "list_memories", user_id="bob"))["memories"][0]["text"] == "Bob's cat is called Pixel"


async def test_memories_outlive_the_server_process(sqlite_url: str) -> None:
    async with mcp_session(sqlite_url) as s:
        await call(s, "add_memory", user_id="alice", text="Alice's daughter Mia turns six in March")
    async with mcp_session(sqlite_url) as s:
        hits = (await call(s, "search_memories", user_id="alice", query="when is Mia's birthday?", k=1))["hits"]
        assert hits[0]["memory"]["text"] == "Alice's daughter Mia turns six in March"


async def test_agent_option_keeps_servers_apart(sqlite_url: str) -> None:
    async with mcp_session(sqlite_url, "--agent", "travel-bot") as s:
        mine = await call(s, "add_memory", user_id="alice", text="Alice prefers trains to planes")
    async with mcp_session(sqlite_url, "--agent", "cooking-bot") as s:
        assert (await call(s, "search_memories", user_id="alice", query="trains"))["hits"] == []
        await error(s, "delete_memory", user_id="alice", memory_id=mine["id"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_streamable_http_on_localhost(sqlite_url: str, tmp_path: Path) -> None:
    port = _free_port()
    with open(tmp_path / "server.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mindstore.cli", "mcp", "--db", sqlite_url, "--transport", "http", "--port", str(port)], env=ENV, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.2)
        async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            added = await call(s, "add_memory", user_id="alice", text="Alice is allergic to peanuts")
            hits = (await call(s, "search_memories", user_id="alice", query="food allergy"))["hits"]
            assert [h["memory"]["id"] for h in hits] == [added["id"]]
            assert "has no memory" in await error(s, "delete_memory", user_id="bob", memory_id=added["id"])
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_cli_refuses_an_unknown_transport(sqlite_url: str) -> None:
    from typer.testing import CliRunner

    from mindstore.cli import app

    result = CliRunner().invoke(app, ["mcp", "--db", sqlite_url, "--transport", "carrier-pigeon"])
    assert result.exit_code == 1 and "stdio or http" in result.output


async def test_add_memory_says_whether_it_added_reinforced_or_superseded(sqlite_url: str) -> None:
    async with mcp_session(sqlite_url) as s:
        first = await call(s, "add_memory", user_id="alice", text="Alice's phone number is 555-1234")
        again = await call(s, "add_memory", user_id="alice", text="alice's phone number is 555-1234.")
        newer = await call(s, "add_memory", user_id="alice", text="Alice's phone number is 555-9876", metadata={"source": "call"})
        assert (first["change"], again["change"], again["id"]) == ("added", "reinforced", first["id"])
        assert (newer["change"], newer["supersedes"], newer["metadata"]) == ("superseded", first["id"], {"source": "call"})
        found = await call(s, "search_memories", user_id="alice", query="what is alice's phone number?")
        assert [h["memory"]["id"] for h in found["hits"]] == [newer["id"]]
