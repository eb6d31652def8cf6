"""A terminal chat that remembers you across runs.

    python examples/chat.py --user alice                  # offline: a deterministic responder
    OPENAI_BASE_URL=http://localhost:11434/v1 MINDSTORE_CHAT_MODEL=llama3.2 python examples/chat.py
    OPENAI_API_KEY=sk-... python examples/chat.py         # api.openai.com, model gpt-4o-mini

Each turn, ChatMemory recalls your memories closest to what you said and hands them to the model
in a system message; after the reply it stores what you told it (not questions or greetings).
With an OpenAI-compatible endpoint configured (OpenAI, Ollama, vLLM, ...) that model answers;
without one, an offline responder answers from the recalled memories, so the example runs
anywhere. Commands: /memories, /edit ID TEXT, /forget ID, /history ID, /quit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from typing import Any

from mindstore import MindStore, MindStoreError, NotFoundError
from mindstore.integrations.chat import ChatMemory, is_question

SYSTEM = "You are a helpful assistant with a long-term memory of the user."


def openai_reply(messages: list[dict[str, Any]], *, base_url: str, api_key: str, model: str) -> str:
    """One chat completion from any OpenAI-compatible endpoint, with no client library."""
    request = urllib.request.Request(
        base_url.rstrip("/") + "/chat/completions",
        data=json.dumps({"model": model, "messages": messages}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)["choices"][0]["message"]["content"]


def offline_reply(messages: list[dict[str, Any]], recalled: list[str]) -> str:
    """A deterministic stand-in for a model: answers questions from the recalled memories."""
    said = messages[-1]["content"]
    if not is_question(said):
        return "Noted."
    if recalled:
        return "From what I remember: " + recalled[0]
    return "I don't know yet. Tell me and I'll remember."


def owned(store: MindStore, user: str, arg: str) -> int:
    """The id in ``arg`` if it is one of ``user``'s memories: a chat never edits another user's."""
    slot = store.get(int(arg))
    if slot.user_id != user:
        raise NotFoundError(f"you have no memory with id {arg}; see /memories")
    return slot.id


def command(store: MindStore, user: str, line: str) -> None:
    """The slash commands: look at and edit what the chat remembers."""
    name, _, rest = line.partition(" ")
    arg, _, text = rest.strip().partition(" ")
    try:
        if name == "/memories":
            for slot in store.list(user_id=user, limit=1000).slots:
                print(f"  [{slot.id}] {slot.text}")
        elif name == "/edit":
            slot = store.update(owned(store, user, arg), text=text)
            print(f"  updated [{slot.id}] {slot.text}")
        elif name == "/forget":
            store.delete(owned(store, user, arg))
            print(f"  forgot [{arg}]")
        elif name == "/history":
            for e in store.history(owned(store, user, arg)):
                print(f"  {e.kind}: {e.old_text!r} -> {e.new_text!r}")
        else:
            print("  commands: /memories, /edit ID TEXT, /forget ID, /history ID, /quit")
    except (MindStoreError, ValueError) as exc:
        print(f"  error: {exc}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default=os.environ.get("MINDSTORE_DB", "sqlite:///chat-memory.db"), help="SQLAlchemy URL of the memory")
    parser.add_argument("--user", default="me", help="whose memories")
    args = parser.parse_args()

    base_url = os.environ.get("OPENAI_BASE_URL") or ("https://api.openai.com/v1" if os.environ.get("OPENAI_API_KEY") else None)
    model = os.environ.get("MINDSTORE_CHAT_MODEL", "gpt-4o-mini")
    print(f"memory: {args.db} (user {args.user}); model: {f'{model} at {base_url}' if base_url else 'offline responder'}")
    print("type /help for commands, /quit to leave")

    history: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
    with MindStore(args.db) as store:
        memory = ChatMemory(store, user_id=args.user)
        while True:
            try:
                line = input("you> ").strip()
            except EOFError:
                break
            if not line:
                continue
            if line == "/quit":
                break
            if line.startswith("/"):
                command(store, args.user, line)
                continue
            history.append({"role": "user", "content": line})
            recalled = memory.recall(history)
            for hit in recalled:
                print(f"  (recalled [{hit.slot.id}] {hit.slot.text}, {hit.rank_score:.2f})")
            prompt = memory.prepare(history, hits=recalled)
            if base_url:
                reply = openai_reply(prompt, base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY", "none"), model=model)
            else:
                reply = offline_reply(prompt, [h.slot.text for h in recalled])
            print(f"bot> {reply}")
            for slot in memory.remember(history, reply):
                print(f"  (remembered [{slot.id}] {slot.text})")
            history.append({"role": "assistant", "content": reply})


if __name__ == "__main__":
    sys.exit(main())
