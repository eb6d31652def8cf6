"""The frameworks are optional extras: the core, its CLI and the chat helper work without them."""

from __future__ import annotations

import subprocess
import sys

WITHOUT_FRAMEWORKS = """
import sys
for name in ("mcp", "langchain_core", "langgraph"):
    sys.modules[name] = None  # as if not installed
import mindstore, mindstore.cli
from mindstore.integrations.chat import ChatMemory
from typer.testing import CliRunner
result = CliRunner().invoke(mindstore.cli.app, ["mcp", "--db", "sqlite:///:memory:"])
print(result.exit_code, result.output)
"""


def test_core_cli_and_chat_helper_need_no_framework() -> None:
    done = subprocess.run([sys.executable, "-c", WITHOUT_FRAMEWORKS], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1 ") and "pip install -e '.[mcp]'" in done.stdout
