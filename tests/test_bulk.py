"""The bulk write path allocates ids up front: they are never reused, and rows read back as written."""

from __future__ import annotations

import numpy as np

from mindstore import Config, MindStore


def test_ids_of_deleted_slots_are_never_handed_out_again(db_url: str, tmp_path) -> None:
    keys = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    with MindStore(db_url, config=Config(index_dir=tmp_path / "i")) as s:
        s.create_space("v", dim=8, key_source="test")
        first = s.add_vectors(keys[:3], space="v", user_id="u", metadata=[{"n": 1}, None, {"tags": ["a"]}], labels=["x", None, "z"])
        assert s.get(first[2].id).metadata == {"tags": ["a"]}
        s.delete(first[-1].id)
        again = s.add_vectors(keys[3:], space="v", user_id="u")[0]
        assert again.id > first[-1].id
        got = s.get(first[0].id)
        assert (got.metadata, got.label, got.scope.user_id) == ({"n": 1}, "x", "u")
        assert s.get(first[1].id).metadata == {}
        assert got.created_at == first[0].created_at and got.created_at.tzinfo is not None
        assert [e.kind for e in s.history(first[0].id)] == ["add"]
        np.testing.assert_array_equal(s.keys([first[0].id, again.id]), keys[[0, 3]])
