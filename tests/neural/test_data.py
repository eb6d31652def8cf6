"""Episode data on the real Omniglot zips (never downloaded: the network is faked), where the data
is looked for, and the synthetic task."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from mindstore import DataNotFoundError
from mindstore.neural import data
from mindstore.neural.data import (
    EVAL_ALPHABETS,
    OmniglotEpisodes,
    SyntheticEpisodes,
    augment,
    load_omniglot,
    with_rotations,
)

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
    monkeypatch.setattr(data, "preprocessed_dir", lambda: tmp_path)
    first = load_omniglot(DATA, size=8, allow_download=False)
    assert [p.suffix for p in tmp_path.iterdir()] == [".pt"]
    monkeypatch.setattr(data, "prepare_image", None)  # a second load must not decode the zips
    again = load_omniglot(DATA, size=8, allow_download=False)
    assert torch.equal(again.images, first.images) and again.characters == first.characters


@needs_data
def test_a_load_that_dies_writing_the_cache_leaves_no_cache_to_trust(tmp_path, monkeypatch):
    """The cache is written aside and renamed into place, so a reader (another run started at
    the same moment, or the next run after a crash) never finds half a file under its name."""
    monkeypatch.setattr(data, "preprocessed_dir", lambda: tmp_path)
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


def test_a_cache_of_preprocessed_tensors_is_not_taken_for_the_data(offline_user):
    """The state of issue 27: the download folder holds only tensors an older mindstore
    preprocessed into it. That is no data: it is downloaded, and offline that is an error
    saying what to do, not `ValueError: need at least one array to stack`."""
    downloads, calls = offline_user
    downloads.mkdir(parents=True)
    torch.save({"images": torch.zeros(1, 20, 20, 20, dtype=torch.uint8)},
               downloads / "omniglot-20-4d2cb5d1667d.pt")
    assert data.default_data_dir() == downloads
    with pytest.raises(DataNotFoundError, match="MINDSTORE_DATA.*--data") as err:
        load_omniglot()
    assert "Go online" in str(err.value) and calls  # it tried to download, then said so
    assert isinstance(err.value, FileNotFoundError)  # callers catching that still do
    assert sorted(p.name for p in downloads.iterdir()) == ["omniglot-20-4d2cb5d1667d.pt"]  # no .part


def test_without_download_an_empty_cache_says_where_the_data_goes(offline_user):
    _, calls = offline_user
    with pytest.raises(DataNotFoundError, match="Set MINDSTORE_DATA or pass --data.*go online"):
        load_omniglot(allow_download=False)
    assert not calls


def test_a_path_given_without_data_is_an_error_not_a_download_elsewhere(offline_user, tmp_path,
                                                                        monkeypatch):
    _, calls = offline_user
    given = tmp_path / "mine"
    given.mkdir()
    (given / "notes.txt").write_text("not omniglot")
    monkeypatch.setenv("MINDSTORE_DATA", str(given))
    for path in (None, given, tmp_path / "missing"):
        with pytest.raises(DataNotFoundError, match="no Omniglot data at"):
            load_omniglot(path)
    assert not calls


def test_a_download_cut_short_leaves_no_zip_behind(offline_user, monkeypatch):
    downloads, _ = offline_user

    def first_only(url, filename):
        if url.endswith(data.FULL_ZIPS[1]):
            raise urllib.error.URLError("connection reset")
        Path(filename).write_bytes(b"PK")

    monkeypatch.setattr(urllib.request, "urlretrieve", first_only)
    with pytest.raises(DataNotFoundError, match="could not download"):
        data.download()
    assert list(downloads.iterdir()) == []  # one zip of two would pass for the whole data set


@needs_data
def test_preprocessed_tensors_are_kept_apart_from_the_data(offline_user):
    """A load from the download folder caches its tensor elsewhere, so the folder still holds
    only the data; without the zip, the tensor left behind does not pass for data."""
    downloads, calls = offline_user
    downloads.mkdir(parents=True)
    shutil.copy(DATA / "images_background_small1.zip", downloads)
    first = load_omniglot(size=8)
    assert [p.name for p in downloads.iterdir()] == ["images_background_small1.zip"]
    assert [p.suffix for p in data.preprocessed_dir().iterdir()] == [".pt"]
    assert not calls
    (downloads / "images_background_small1.zip").unlink()
    with pytest.raises(DataNotFoundError):
        load_omniglot(size=8)
    assert first.images.shape[1:] == (20, 8, 8)


def test_evaluate_offline_with_an_empty_cache_ends_in_a_message(offline_user, monkeypatch, capsys):
    """`mindstore evaluate` (the packaged checkpoint's data: the default place) offline: the
    error says what to do, and no URLError traceback reaches the user."""
    import sys

    from mindstore.cli import main

    monkeypatch.setattr(sys, "argv", ["mindstore", "evaluate", "--episodes", "1", "--device", "cpu"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 1
    err = capsys.readouterr().err
    assert "error: could not download the Omniglot zips" in err and "MINDSTORE_DATA" in err
    assert "Traceback" not in err
