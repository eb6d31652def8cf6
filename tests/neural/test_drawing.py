"""bind keeps the drawing it bound in the slot's metadata, exactly as the model saw it."""

from __future__ import annotations

import numpy as np
import pytest

from mindstore import Config, MindStore
from mindstore.neural.drawing import IMAGE_KEY, decode_image, encode_image, render_blocks
from mindstore.neural.learner import OneShotLearner
from tests.neural.test_learner import patterns


def test_bind_keeps_each_drawing_in_its_slot(sqlite_url: str, config: Config) -> None:
    imgs = patterns(4, seed=3)
    with MindStore(sqlite_url, config=config) as store:
        ids = OneShotLearner.load(store=store, space="glyphs").bind(imgs, list("abcd"))
        for i, sid in enumerate(ids):
            np.testing.assert_array_equal(decode_image(store.get(sid).metadata), imgs[i])


def test_an_overwritten_slot_takes_the_new_drawing(sqlite_url: str, config: Config) -> None:
    imgs = patterns(3, seed=4)
    with MindStore(sqlite_url, config=config) as store:
        learner = OneShotLearner.load(store=store, space="glyphs", capacity=2)
        first = learner.bind(imgs[:2], ["a", "b"])
        (third,) = learner.bind(imgs[2:], ["c"])
        assert third in first and store.get(third).label == "c"
        np.testing.assert_array_equal(decode_image(store.get(third).metadata), imgs[2])


def test_damaged_or_missing_drawings_decode_to_none() -> None:
    assert decode_image(None) is None and decode_image({}) is None
    assert decode_image({IMAGE_KEY: "nope"}) is None
    assert decode_image({IMAGE_KEY: {"shape": [2, 2], "hex": "00ff"}}) is None  # 2 bytes for 4 pixels
    assert decode_image({IMAGE_KEY: {"shape": [2, 2], "hex": "zz"}}) is None
    with pytest.raises(ValueError):
        encode_image(np.zeros((100, 100), np.uint8))


def test_blocks_draw_two_pixel_rows_per_line() -> None:
    img = np.array([[255, 0, 255], [255, 255, 0], [0, 255, 0]], np.uint8)
    assert render_blocks(img) == "█▄▀\n ▀ "


def test_an_overwrite_changes_key_label_and_drawing_in_one_event(sqlite_url: str, config: Config) -> None:
    imgs = patterns(3, seed=5)
    with MindStore(sqlite_url, config=config) as store:
        learner = OneShotLearner.load(store=store, space="glyphs", capacity=2)
        learner.bind(imgs[:2], ["a", "b"])
        (third,) = learner.bind(imgs[2:], ["c"])
        updates = [e for e in store.history(third) if e.kind == "update"]
        assert len(updates) == 1
        np.testing.assert_array_equal(decode_image(updates[0].new_metadata), imgs[2])
