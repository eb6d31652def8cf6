"""Shared by the benchmarks: describe the machine and write a section of docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nEach section is written by the script it names; rerun the command to refresh it.\n"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except ImportError:
        gpu = "no GPU"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {gpu}, Python {sys.version.split()[0]}, {platform.system()}"


def table(headers: list[str], rows: list[list[object]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def write_section(name: str, title: str, command: str, body: str, *, machine_note: str = "", doc: Path = DOC,
                  level: int = 2) -> None:
    """Replace (or append) the section between <!-- bench:NAME --> markers of ``doc`` (default
    docs/benchmarks.md), titled at heading ``level``; ``machine_note`` is added to the machine
    line (e.g. how loaded the machine was)."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    section = (
        f"<!-- bench:{name} -->\n{'#' * level} {title}\n\n"
        f"Command: `{command}`  \nMachine: {machine()}{machine_note}  \nMeasured: {stamp}\n\n{body.strip()}\n<!-- /bench:{name} -->"
    )
    doc.parent.mkdir(parents=True, exist_ok=True)
    text = doc.read_text() if doc.exists() else HEADER
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    doc.write_text(text)
    print(f"wrote section {name!r} of {doc}")


def replace_block(path: Path, start: str, end: str, text: str) -> None:
    """Replace what lies between the ``start`` and ``end`` marker lines of a doc (or append both)."""
    doc = path.read_text() if path.exists() else ""
    if start in doc:
        head, rest = doc.split(start, 1)
        _, tail = rest.split(end, 1)
    else:
        head, tail = doc.rstrip() + "\n\n", "\n"
    path.write_text(f"{head}{start}\n{text.strip()}\n{end}{tail}")
    print(f"wrote {start} ... {end} in {path}")
