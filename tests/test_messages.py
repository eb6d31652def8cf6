"""The chat-message policy: what `add_messages` keeps of a conversation."""

from __future__ import annotations

from mindstore import MindStore


def test_add_messages_keeps_what_is_worth_keeping(store: MindStore) -> None:
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "hi"},
        {"role": "user", "content": "I'm moving to Vienna next spring."},
        {"role": "assistant", "content": "Congratulations! Vienna has great coffee houses."},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "user", "content": "thanks"},
        {"role": "assistant", "content": "Congratulations!"},
        {"role": "user", "content": "Hi there! 👋"},
        {"role": "user", "content": "ok, thanks, sounds good"},
    ]
    slots = store.add_messages(messages, user_id="u", session_id="s", metadata={"channel": "web"})
    assert [s.text for s in slots] == ["I'm moving to Vienna next spring.", "Congratulations! Vienna has great coffee houses."]
    assert [s.metadata["role"] for s in slots] == ["user", "assistant"]
    assert all(s.metadata["channel"] == "web" and s.session_id == "s" for s in slots)


def test_worth_keeping_skips_greetings_and_acknowledgements_only() -> None:
    from mindstore.messages import worth_keeping

    for text in ("Hi there!", "Congratulations!", "Thank you so much", "ok 👍", "  ", "👍", "Yes, please."):
        assert not worth_keeping(text), text
    for text in ("Hi, I'm Dana", "Thanks, the gate code is 4411", "42", "no peanuts please, I'm allergic", "Good luck!"):
        assert worth_keeping(text), text
