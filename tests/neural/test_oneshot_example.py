"""examples/oneshot.py as a newcomer runs it: with an empty cache, with a cache that holds only
preprocessed tensors, offline (the network is faked: never reached), and with a bad --data."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "oneshot.py"


@pytest.fixture(scope="module")
def oneshot():
    spec = importlib.util.spec_from_file_location("oneshot_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # a whole run of the example, baselines included: ~25 s each on a loaded CPU
@pytest.mark.parametrize("cache", ["empty", "preprocessed only"])
def test_offline_without_data_it_says_so_and_runs_the_synthetic_task(oneshot, offline_user, cache, tmp_path,
                                                                     monkeypatch, capsys):
    downloads, calls = offline_user
    if cache == "preprocessed only":  # what an older mindstore left in the download folder
        downloads.mkdir(parents=True)
        torch.save({"images": torch.zeros(1, 20, 20, 20, dtype=torch.uint8)}, downloads / "omniglot-20-4d2cb5d1667d.pt")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    out = tmp_path / "plots" / "oneshot.png"
    oneshot.main(["--runs", "1", "--classes", "2", "--out", str(out)])
    printed = capsys.readouterr().out
    assert calls  # it tried to download, offline
    assert "could not download the Omniglot zips" in printed and "Falling back to the synthetic task" in printed
    assert "synthetic patterns" in printed and f"plot saved to {out}" in printed
    assert out.is_file() and not list(work.iterdir())  # the plot where it said, nothing in the working dir


def test_a_data_path_without_omniglot_ends_with_the_message(oneshot, offline_user, tmp_path):
    with pytest.raises(SystemExit, match="no Omniglot data at .*pass --data"):
        oneshot.main(["--data", str(tmp_path), "--runs", "1"])
