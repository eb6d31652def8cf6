"""Episode data on the real Omniglot zips (no download) and the synthetic task."""

from __future__ import annotations

import pytest
import torch

from mindstore.neural.data import (EVAL_ALPHABETS, OmniglotEpisodes, SyntheticEpisodes,
                                   augment, load_omniglot, with_rotations)

from .conftest import DATA, needs_data


@needs_data
def test_loader_deduplicates_greek_and_latin(omniglot):
    assert omniglot.images.shape == (242, 20, 20, 20)
    assert omniglot.images.dtype == torch.uint8
    assert len(set(omniglot.alphabets)) == 8
    assert len(set(omniglot.characters)) == 242
    assert omniglot.images.float().mean() < 128  # inverted: strokes bright on a dark ground


@needs_data
def test_split_is_by_alphabet_and_held_out_alphabets_never_train(omniglot):
    parts = omniglot.split()
    assert set(parts["eval"].alphabets) == set(EVAL_ALPHABETS)
    assert not set(parts["train"].alphabets) & set(EVAL_ALPHABETS)
    assert not set(parts["val"].alphabets) & set(EVAL_ALPHABETS)
    assert not set(parts["train"].characters) & set(parts["val"].characters)
    assert sum(p.images.shape[0] for p in parts.values()) == 242


@needs_data
def test_rotations_are_new_classes(omniglot):
    rot = with_rotations(omniglot.images[:3])
    assert rot.shape[0] == 12
    torch.testing.assert_close(rot[3], omniglot.images[0].rot90(1, dims=(-2, -1)))
    assert OmniglotEpisodes(omniglot, rotate=True).num_classes == 4 * 242


@needs_data
def test_reflections_add_the_mirror_images_as_new_classes(omniglot):
    chars = omniglot.images[:3]
    both = with_rotations(chars, reflect=True)
    assert both.shape[0] == 24
    torch.testing.assert_close(both[:12], with_rotations(chars))  # the rotations come first
    torch.testing.assert_close(both[12], chars[0].flip(-1))
    torch.testing.assert_close(both[12 + 3 * 2 + 1], chars[1].flip(-1).rot90(2, dims=(-2, -1)))
    assert not torch.equal(both[12], chars[0])  # a mirror image is not the character itself
    assert OmniglotEpisodes(omniglot, rotate=True, reflect=True).num_classes == 8 * 242
    with pytest.raises(ValueError, match="needs rotate"):
        OmniglotEpisodes(omniglot, rotate=False, reflect=True)


@needs_data
def test_episodes_show_previous_label_and_shuffle_labels(omniglot):
    ep = OmniglotEpisodes(omniglot, rotate=True).sample(
        64, 5, 10, 20, torch.Generator().manual_seed(0))
    assert ep.x.shape == (64, 50, 1, 20, 20) and 0 <= ep.x.min() and ep.x.max() <= 1
    assert (ep.y_prev[:, 0] == -1).all() and (ep.y_prev[:, 1:] == ep.y[:, :-1]).all()
    for b in range(64):
        labels, counts = ep.y[b].unique(return_counts=True)
        assert len(labels) == 5 and (counts == 10).all()
        for label in labels:  # the k-th time a label appears is its k-th instance
            assert ep.instance[b][ep.y[b] == label].tolist() == list(range(1, 11))
    # fresh labels per episode: the label sets and which label comes first vary
    assert len({tuple(ep.y[b].unique().tolist()) for b in range(64)}) > 10
    assert len({ep.y[b, 0].item() for b in range(64)}) > 5


def test_synthetic_episodes_shapes():
    ep = SyntheticEpisodes(size=6).sample(4, 3, 4, 5, torch.Generator().manual_seed(0))
    assert ep.x.shape == (4, 12, 1, 6, 6)
    assert set(ep.x.unique().tolist()) <= {0.0, 1.0}


@needs_data
def test_augment_distorts_each_drawing_a_little_and_keeps_its_ink(omniglot):
    x = omniglot.images[:8, :4].float().div(255)  # (8, 4, S, S)
    gen = torch.Generator().manual_seed(0)
    y = augment(x, gen)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    moved = (y - x).abs().flatten(2).sum(-1)
    assert (moved > 0.5).all()  # every drawing changed, each its own way
    assert len({round(v, 3) for v in moved.flatten().tolist()}) == 32
    ink = y.flatten(2).sum(-1) / x.flatten(2).sum(-1)
    assert (ink > 0.6).all() and (ink < 1.5).all()  # small maps: strokes neither lost nor doubled
    torch.testing.assert_close(augment(x, torch.Generator().manual_seed(0)), y)  # seeded


@needs_data
def test_augment_strength_scales_the_distortion(omniglot):
    x = omniglot.images[:8, :4].float().div(255)

    def moved(strength: float) -> float:
        y = augment(x, torch.Generator().manual_seed(0), strength=strength)
        return (y - x).abs().mean().item()

    assert moved(0) < 1e-6  # the identity map: nothing moves
    assert moved(0.5) < moved(1) < moved(2)


@needs_data
def test_training_episodes_are_augmented_only_when_asked(omniglot):
    plain = OmniglotEpisodes(omniglot, rotate=False)
    aug = OmniglotEpisodes(omniglot, rotate=False, augment=True)
    a = plain.sample(2, 5, 4, 20, torch.Generator().manual_seed(3))
    b = aug.sample(2, 5, 4, 20, torch.Generator().manual_seed(3))
    assert (a.y == b.y).all() and (a.instance == b.instance).all()
    assert set((a.x * 255).round().unique().tolist()) <= set(range(256))  # raw pixels
    assert not torch.allclose(a.x, b.x)



@needs_data
def test_the_preprocessed_tensor_is_cached_and_read_back(tmp_path, monkeypatch):
    import mindstore.neural.data as data

    monkeypatch.setattr(data, "cache_dir", lambda: tmp_path)
    first = load_omniglot(DATA, size=8, allow_download=False)
    assert [p.suffix for p in tmp_path.iterdir()] == [".pt"]
    monkeypatch.setattr(data, "prepare_image", None)  # a second load must not decode the zips
    again = load_omniglot(DATA, size=8, allow_download=False)
    assert torch.equal(again.images, first.images) and again.characters == first.characters


@needs_data
def test_a_load_that_dies_writing_the_cache_leaves_no_cache_to_trust(tmp_path, monkeypatch):
    """The cache is written aside and renamed into place, so a reader (another run started at
    the same moment, or the next run after a crash) never finds half a file under its name."""
    import mindstore.neural.data as data

    monkeypatch.setattr(data, "cache_dir", lambda: tmp_path)
    real_save = torch.save

    def dies_halfway(obj, f):
        real_save({"images": obj["images"][:1]}, f)  # some bytes out, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_halfway)
    try:
        load_omniglot(DATA, size=8, allow_download=False)
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(torch, "save", real_save)
    assert not list(tmp_path.iterdir())  # neither a cache nor the half-written file
    loaded = load_omniglot(DATA, size=8, allow_download=False)  # rebuilt, not a torn read
    assert loaded.images.shape[0] == len(loaded.characters) > 200
