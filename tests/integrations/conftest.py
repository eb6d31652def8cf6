"""Integration tests run the real frameworks (langchain-core, langgraph, mcp) against real stores;
the store fixtures come from tests/conftest.py."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
