"""Loading a transformers model without its progress bar: both embedding backends (the torch
model in ``mindstore.embed`` and the ONNX export in ``mindstore.embed.onnx``) load one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' per-load "Loading weights" bar; it is noise in a CLI or a test log."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
