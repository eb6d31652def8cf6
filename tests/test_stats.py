"""index_info and usage_histogram: what `mindstore stats` reports, through the public API."""

from __future__ import annotations

import numpy as np
import pytest

from mindstore import Config, MindStore, SpaceError


def test_index_info_reports_ivf_recall_against_exact(sqlite_url: str, tmp_path) -> None:
    keys = np.random.default_rng(0).normal(size=(4000, 16)).astype(np.float32)
    with MindStore(sqlite_url, config=Config(index_dir=tmp_path / "i", approximate_from=2000)) as s:
        s.create_space("v", dim=16, key_source="test")
        s.add_vectors(keys, space="v", user_id="u")  # crosses 2000: the lists train in the background
        assert s.wait_trained("v", timeout=120)
        info = s.index_info("v", recall_sample=50)
        assert (info.kind, info.keys, info.device, info.pending_gaps, info.training) == ("ivf", 4000, "cpu", 0, False)
        assert 0.5 <= info.recall_at_10 <= 1.0
        assert s.index_info("v").recall_at_10 is None
        s.search_vector(keys[0], space="v", user_id="u", k=1)
        assert s.usage_histogram("v") == {"1": 3999, "2-3": 1, "4-9": 0, "10-99": 0, "100+": 0}
    with MindStore(sqlite_url, config=Config(index_dir=tmp_path / "i", approximate_from=2000)) as s:
        info = s.index_info("v", recall_sample=20)
        assert info.kind == "ivf" and info.file_bytes > 4000 * 16 * 2 and info.repaired is None


def test_flat_index_recall_is_exact(db_url: str, tmp_path) -> None:
    with MindStore(db_url, config=Config(index_dir=tmp_path / "i")) as s:
        with pytest.raises(SpaceError):
            s.index_info()  # the text space has no slots yet
        s.create_space("v", dim=4, key_source="test")
        s.add_vectors(np.eye(4, dtype=np.float32), space="v")
        info = s.index_info("v", recall_sample=4)
        assert (info.kind, info.keys, info.recall_at_10) == ("flat", 4, 1.0)
