"""The framework-free chat helper, and examples/chat.py run as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from mindstore import InvalidInputError, MindStore
from mindstore.integrations.chat import MEMORY_HEADER, ChatMemory

EXAMPLE = Path(__file__).parents[2] / "examples" / "chat.py"


def test_prepare_inserts_the_users_memories_after_the_system_prompt(store: MindStore) -> None:
    store.add_many(["Alice is allergic to peanuts", "Alice lives in Vienna"], user_id="alice")
    store.add("Bob is allergic to shellfish", user_id="bob")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Which foods should I avoid?"}]
    prepared = ChatMemory(store, user_id="alice", k=1).prepare(messages)
    assert prepared[0] == messages[0] and prepared[2] == messages[1] and len(messages) == 2  # the input is not touched
    assert prepared[1] == {"role": "system", "content": f"{MEMORY_HEADER}\n- Alice is allergic to peanuts"}
    bob = ChatMemory(store, user_id="bob", k=5).prepare(messages)
    assert "Bob is allergic to shellfish" in bob[1]["content"] and "Alice" not in bob[1]["content"]
    assert ChatMemory(store, user_id="carol").prepare(messages) == messages  # nothing to recall: unchanged


def test_prepare_reads_multipart_content_and_goes_first_without_a_system_prompt(store: MindStore) -> None:
    store.add("Alice lives in Vienna", user_id="alice")
    messages = [{"role": "user", "content": [{"type": "text", "text": "Which city do I live in?"}, {"type": "image_url", "image_url": {"url": "x"}}]}]
    prepared = ChatMemory(store, user_id="alice").prepare(messages)
    assert prepared[0]["role"] == "system" and "Alice lives in Vienna" in prepared[0]["content"] and prepared[1] == messages[0]


def test_remember_keeps_the_users_statements_from_the_last_turn(store: MindStore) -> None:
    memory = ChatMemory(store, user_id="alice")
    history = [
        {"role": "user", "content": "I work as a nurse"},
        {"role": "assistant", "content": "Good to know."},
        {"role": "user", "content": "hi"},
        {"role": "user", "content": "I moved to Vienna last month"},
        {"role": "user", "content": "Where is a good bakery?"},
    ]
    slots = memory.remember(history, "Try the one on Mariahilfer Strasse.")
    assert [s.text for s in slots] == ["I moved to Vienna last month"]  # not the earlier turn, greeting, question or reply
    assert slots[0].metadata == {"role": "user"} and slots[0].user_id == "alice"
    again = memory.remember([{"role": "user", "content": "I moved to Vienna last month"}])
    assert again[0].id == slots[0].id and again[0].usage.writes == 2  # a repeated fact reinforces
    both = ChatMemory(store, user_id="alice", keep_roles=("user", "assistant")).remember([{"role": "user", "content": "My cat is Pixel"}], {"role": "assistant", "content": "Pixel is a lovely name for a cat"})
    assert [s.metadata["role"] for s in both] == ["user", "assistant"]
    assert store.count(user_id="bob") == 0


def test_bad_input_is_a_typed_error(store: MindStore) -> None:
    with pytest.raises(InvalidInputError):
        ChatMemory(store, user_id="")
    memory = ChatMemory(store, user_id="alice")
    for bad in ("hello", {"role": "user", "content": "x"}, [{"content": "no role"}], None):
        with pytest.raises(InvalidInputError):
            memory.prepare(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError):
            memory.remember(bad)  # type: ignore[arg-type]
    assert store.count() == 0


def run_example(db: str, lines: list[str], env: dict[str, str] | None = None) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    for key in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        if env.get(key) == "":
            del env[key]
    done = subprocess.run([sys.executable, str(EXAMPLE), "--db", db, "--user", "alice"], input="\n".join(lines) + "\n", capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_example_remembers_across_runs_offline(sqlite_url: str) -> None:
    offline = {"OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""}
    first = run_example(sqlite_url, ["hi", "I am allergic to peanuts", "I live in Vienna with my cat Pixel"], offline)
    assert "offline responder" in first and "(remembered [1] I am allergic to peanuts)" in first
    second = run_example(sqlite_url, ["Do I have any food allergies?", "/edit 1 I am allergic to peanuts and shellfish", "/history 1", "/forget 2", "/forget 2", "/memories"], offline)
    assert "From what I remember: I am allergic to peanuts" in second
    assert "updated [1] I am allergic to peanuts and shellfish" in second and "update: 'I am allergic to peanuts' -> " in second
    assert "forgot [2]" in second and "error: no slot with id 2" in second
    assert "[1] I am allergic to peanuts and shellfish" in second.split("/memories")[-1] and "Pixel" not in second.split("forgot [2]")[-1]
    with MindStore(sqlite_url) as store:
        store.add("Bob's cat is called Tom", user_id="bob")
        bob_id = store.list(user_id="bob").slots[0].id
    third = run_example(sqlite_url, [f"/forget {bob_id}", "what is my cat called?"], offline)
    assert "you have no memory with id" in third and "Tom" not in third


class _CompletionsHandler(BaseHTTPRequestHandler):
    """A stand-in OpenAI-compatible endpoint: replies with the memory block it was sent."""

    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers["Authorization"], "body": body})
        memories = [m["content"] for m in body["messages"] if m["role"] == "system" and m["content"].startswith(MEMORY_HEADER)]
        answer = {"choices": [{"message": {"role": "assistant", "content": "MODEL SAW: " + (memories[0].splitlines()[-1] if memories else "nothing")}}]}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_example_uses_an_openai_compatible_endpoint_when_configured(sqlite_url: str) -> None:
    server = HTTPServer(("127.0.0.1", 0), _CompletionsHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {"OPENAI_BASE_URL": f"http://127.0.0.1:{server.server_port}/v1", "OPENAI_API_KEY": "test-key", "MINDSTORE_CHAT_MODEL": "tiny"}
        out = run_example(sqlite_url, ["I am allergic to peanuts", "Do I have any food allergies?"], env)
    finally:
        server.shutdown()
    assert "tiny at http://127.0.0.1" in out and "bot> MODEL SAW: - I am allergic to peanuts" in out
    last = _CompletionsHandler.requests[-1]
    assert last["path"] == "/v1/chat/completions" and last["auth"] == "Bearer test-key" and last["body"]["model"] == "tiny"
    assert [m["role"] for m in last["body"]["messages"]] == ["system", "system", "user", "assistant", "user"]
