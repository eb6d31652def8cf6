"""OneShotLearner and PersistentMemory on real FAISS, real SQLite and PostgreSQL.

Images here are random binary patterns, except the Omniglot tests: a recall of the very
drawing that was bound must come back with its label whatever the checkpoint's accuracy.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mindstore import Config, InvalidInputError, MindStore, SpaceError
from mindstore.neural.data import prepare_image
from mindstore.neural.learner import OneShotLearner
from mindstore.neural.memory import SparseMemory
from mindstore.neural.persistent import PersistentMemory
from tests.conftest import packaged_image_size, snapshot

S = packaged_image_size()


def patterns(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((n, S, S)) < 0.3).astype(np.uint8) * 255


@pytest.fixture
def learner(sqlite_url: str, config: Config):
    with MindStore(sqlite_url, config=config) as store:
        yield OneShotLearner.load(store=store, space="glyphs")


def test_bound_images_recall_their_labels_with_the_slots_read(learner: OneShotLearner) -> None:
    imgs = patterns(12)
    labels = [f"class {i} ✓" for i in range(12)]
    ids = learner.bind(imgs, labels)
    assert len(ids) == 12 and learner.store.count(space="glyphs") == 12
    preds = learner.recall(imgs)
    assert [p.label for p in preds] == labels
    for p, sid in zip(preds, ids):
        assert p.slots[0] == sid and 0 < p.confidence <= 1 and len(p.slots) <= 4 * 4
        assert abs(sum(p.votes.values()) - 1) < 1e-5
    assert learner.store.get(ids[0]).label == labels[0]


def test_recall_on_an_empty_space_predicts_nothing(learner: OneShotLearner) -> None:
    (p,) = learner.recall(patterns(1))
    assert p.label is None and p.confidence == 0 and p.slots == ()


def test_deleting_a_slot_forgets_exactly_that_binding(learner: OneShotLearner) -> None:
    imgs = patterns(6, seed=1)
    labels = ["a", "b", "c", "d", "e", "f"]
    ids = learner.bind(imgs, labels)
    learner.store.delete(ids[2])
    preds = learner.recall(imgs)
    assert preds[2].label != "c" and ids[2] not in preds[2].slots
    assert [p.label for i, p in enumerate(preds) if i != 2] == ["a", "b", "d", "e", "f"]


def test_bind_and_recall_work_among_distractors_on_an_approximate_index(sqlite_url: str, tmp_path: Path) -> None:
    config = Config(index_dir=tmp_path / "index", approximate_from=2000)
    with MindStore(sqlite_url, config=config) as store:
        learner = OneShotLearner.load(store=store, space="glyphs")
        rng = np.random.default_rng(3)
        store.add_vectors(rng.normal(size=(3000, learner.model.cfg.width)).astype(np.float32), space="glyphs", labels=["distractor"] * 3000)
        imgs = patterns(10, seed=4)
        learner.bind(imgs, [f"c{i}" for i in range(10)])
        assert store.wait_trained("glyphs", timeout=120) and store.key_index("glyphs").approximate
        assert [p.label for p in learner.recall(imgs)] == [f"c{i}" for i in range(10)]


RECALL = textwrap.dedent("""
    import json, sys
    import numpy as np
    from mindstore import Config, MindStore
    from mindstore.neural.learner import OneShotLearner
    url, index_dir, images = sys.argv[1:4]
    with MindStore(url, config=Config(index_dir=index_dir)) as store:
        preds = OneShotLearner.load(store=store, space="glyphs").recall(np.load(images))
    print(json.dumps([p.label for p in preds]))
""")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_bindings_made_in_one_process_are_recalled_in_another(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    imgs = patterns(8, seed=2)
    labels = [f"glyph-{i}" for i in range(8)]
    with MindStore(url, config=Config(index_dir=tmp_path / "index")) as store:
        OneShotLearner.load(store=store, space="glyphs").bind(imgs, labels)
    np.save(tmp_path / "imgs.npy", imgs)
    out = subprocess.run([sys.executable, "-c", RECALL, url, str(tmp_path / "index"), str(tmp_path / "imgs.npy")],
                         capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == str(labels).replace("'", '"')


@pytest.mark.parametrize("score", ["cosine", "euclidean"])
def test_persistent_memory_reads_and_writes_like_sparse_memory(sqlite_url: str, config: Config, score: str) -> None:
    """Same contents, same keys: the same K slots, read weights, read vectors and LRUA writes.
    Euclidean: the index proposes slots by cosine and the exact score keeps the best K."""
    N, T, D, H, K = 12, 3, 8, 2, 3
    g = torch.Generator().manual_seed(0)
    zero_mean = lambda x: x - x.mean(-1, keepdim=True)  # noqa: E731 - cosine 0 with the empty slots' constant
    rows = zero_mean(torch.randn(N, D, generator=g))
    if score == "euclidean":  # slots holding 1 to 4 writes: the last coordinate counts them
        rows[:, -1] = torch.randint(1, 5, (N,), generator=g).float()
    sparse = SparseMemory(N + T, D, H, score, 0.95, k=K)
    st = sparse.initial_state(1)
    st.M[0, :N] = rows
    st.usage[0, :N] = 10.0  # filled slots are used; the T empty ones are the least used, in order
    with MindStore(sqlite_url, config=config) as store:
        store.create_space("m", dim=D, key_source="test")
        ids = [s.id for s in store.add_vectors(rows.numpy(), space="m", labels=["x"] * N)]
        mem = PersistentMemory(store, "m", heads=H, k=K, score=score)
        ps = mem.initial_state(1)
        slot_of = {i: ids[i] for i in range(N)}
        for t in range(T):
            wk = zero_mean(torch.randn(1, D, generator=g))
            if score == "euclidean":
                wk[:, -1] = 1.0
            alpha = torch.randn(1, generator=g)
            rk = zero_mean(rows[torch.randint(N, (1, H), generator=g)] + 0.3 * torch.randn(1, H, D, generator=g))
            beta = 1 + 5 * torch.rand(1, H, generator=g)
            r_s, st = sparse.step(st, wk, alpha, rk, beta)
            mem.labels = [f"t{t}"]
            r_p, ps = mem.step(ps, wk, alpha, rk, beta)
            slot_of[N + t] = mem.last_written[0]
            assert [slot_of[i] for i in st.read_idx.flatten().tolist()] == ps.read_idx.flatten().tolist()
            torch.testing.assert_close(ps.read_w, st.read_w, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(r_p, r_s, rtol=1e-5, atol=1e-6)
        order = list(range(N + T))
        stored = torch.from_numpy(store.keys([slot_of[i] for i in order]).copy())
        torch.testing.assert_close(stored, st.M[0, order], rtol=1e-5, atol=1e-6)


def test_held_out_drawings_are_recalled_well_above_chance(learner: OneShotLearner) -> None:
    from .conftest import omniglot_at

    ev = omniglot_at(S).split()["eval"]  # at the packaged checkpoint's image size
    classes = 20
    imgs = ev.images[:classes]
    labels = ev.characters[:classes]
    learner.bind(imgs[:, 0], labels)
    assert [p.label for p in learner.recall(imgs[:, 0])] == labels
    preds = learner.recall(imgs[:, 1:6].reshape(-1, *imgs.shape[-2:]))
    truth = [c for c in labels for _ in range(5)]
    acc = np.mean([p.label == y for p, y in zip(preds, truth)])
    assert acc > 3 / classes, acc  # chance is 1/20


def test_bad_input_raises_typed_errors_and_changes_nothing(learner: OneShotLearner, sqlite_url: str, tmp_path: Path) -> None:
    learner.bind(patterns(2), ["a", "b"])
    before = snapshot(sqlite_url)
    for images, labels in [
        (np.zeros((2, 3, S, S), np.uint8), ["a", "b"]),  # three channels: not grey images
        (patterns(2), ["a", ""]),  # empty label
        (patterns(2), ["a"]),  # mismatched lengths
        (patterns(2), "ab"),  # a string is not a list of labels
        (patterns(2).astype(np.float32), ["a", "b"]),  # floats outside [0, 1]
        (np.zeros((0, S, S), np.uint8), []),  # nothing to bind
    ]:
        with pytest.raises(InvalidInputError):
            learner.bind(images, labels)
    with pytest.raises(InvalidInputError):
        learner.recall(np.zeros((1, 5), np.uint8))
    store = learner.store
    with pytest.raises(SpaceError):
        PersistentMemory(store, "no such space", heads=4, k=4)
    with pytest.raises(SpaceError):
        OneShotLearner.load(store=store, space="missing", create=False)
    store.create_space("narrow", dim=16, key_source="other")
    with pytest.raises(SpaceError, match=r"holds 16-d keys from other; mann_sparse.pt makes \d+-d keys"):
        OneShotLearner.load(store=store, space="narrow")
    with pytest.raises(InvalidInputError):
        OneShotLearner.load(tmp_path / "nope.pt", store=store)
    with pytest.raises(InvalidInputError):
        OneShotLearner.load(store=store, space="fresh", persist="bogus")
    after = snapshot(sqlite_url)
    after["spaces"] = [r for r in after["spaces"] if r[1] != "narrow"]
    assert after == before


def test_cli_binds_a_folder_by_subfolder_name_and_recalls_in_a_later_command(tmp_path: Path) -> None:
    from PIL import Image
    from typer.testing import CliRunner

    from mindstore.cli import app

    for i, name in enumerate(["alpha", "beta", "gamma"]):
        (tmp_path / "bind" / name).mkdir(parents=True)
        # dark strokes on white, as Omniglot PNGs are; the CLI inverts them
        Image.fromarray(255 - patterns(1, seed=10 + i)[0]).resize((60, 60), Image.NEAREST).save(tmp_path / "bind" / name / "a.png")
    env = {"MINDSTORE_DB": f"sqlite:///{tmp_path / 'cli.db'}"}
    runner = CliRunner()
    res = runner.invoke(app, ["bind", str(tmp_path / "bind"), "--space", "letters"], env=env)
    assert res.exit_code == 0, res.output
    assert "bound 3 images in space 'letters'" in res.output
    res = runner.invoke(app, ["recall", str(tmp_path / "bind"), "--space", "letters", "--json"], env=env)
    assert res.exit_code == 0, res.output
    assert [r["label"] for r in json.loads(res.output)] == ["alpha", "beta", "gamma"]
    res = runner.invoke(app, ["recall", str(tmp_path / "bind"), "--space", "nothing-here"], env=env)
    assert res.exit_code == 1 and "no space named 'nothing-here'" in res.output


@pytest.mark.parametrize("update_read_slots", [True, False])
def test_a_new_slot_takes_the_whole_write_when_the_slots_read_are_not_updated(sqlite_url: str, config: Config, update_read_slots: bool) -> None:
    """The learner binds each drawing into its own slot (update_read_slots=False): the g share of
    the LRUA write has nowhere else to go, so the new slot gets all of k_t. Were it (1 - g) k_t, a
    euclidean slot written with the gate open would count ~0 writes and never be read."""
    D = 6
    with MindStore(sqlite_url, config=config) as store:
        store.create_space("m", dim=D, key_source="test")
        mem = PersistentMemory(store, "m", heads=2, k=2, score="euclidean")
        mem.update_read_slots = update_read_slots
        key = torch.tensor([[0.5, -0.2, 0.1, 0.3, 0.0, 1.0]])  # last unit: one write
        state = mem.initial_state(1)
        mem.labels = ["a"]
        _, state = mem.step(state, key, torch.tensor([-30.0]), key.unsqueeze(1).repeat(1, 2, 1), torch.full((1, 2), 10.0))
        mem.labels = ["b"]
        mem.step(state, key + 0.1, torch.tensor([30.0]), key.unsqueeze(1).repeat(1, 2, 1), torch.full((1, 2), 10.0))
        stored = store.keys([mem.last_written[0]])[0]
        if update_read_slots:
            assert stored[-1] < 1e-5  # (1 - g) k_t: the write went into the slot read before
        else:
            np.testing.assert_allclose(stored, (key + 0.1)[0].numpy(), rtol=1e-6)


# -- images as users have them: files, bytes, PIL images, arrays of any size ---------------------


@pytest.fixture
def pngs(tmp_path: Path) -> dict[str, Path]:
    """The first drawing of the first character of each alphabet in the local Omniglot zip (five),
    extracted as 105 x 105 PNG files (dark strokes on white), keyed by character."""
    from .conftest import DATA

    src = DATA / "images_background_small1.zip"
    if not src.exists():
        pytest.skip("the Omniglot zips are not in ../shared/data/omniglot")
    out: dict[str, Path] = {}
    with zipfile.ZipFile(src) as z:
        for name in sorted(n for n in z.namelist() if n.endswith(".png")):
            alphabet, char = name.split("/")[-3:-1]
            if not any(k.startswith(alphabet + "/") for k in out):
                out[f"{alphabet}/{char}"] = path = tmp_path / "png" / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(z.read(name))
    assert len(out) == 5
    return out


def test_files_bytes_pil_images_and_arrays_become_the_drawings_the_training_data_had(learner: OneShotLearner, pngs: dict[str, Path]) -> None:
    from PIL import Image

    for path in pngs.values():
        trained = torch.from_numpy(prepare_image(path, S)).float() / 255  # as load_omniglot made them
        assert trained.mean() < 0.5  # strokes bright on a dark ground
        pil = Image.open(path)
        assert pil.size == (105, 105) and pil.size != (S, S)
        for item in [path, str(path), path.read_bytes(), pil, pil.convert("RGB"),
                     np.asarray(pil),  # bool, True = white
                     np.asarray(pil.convert("L")), torch.from_numpy(np.array(pil.convert("L"))),
                     np.asarray(pil.convert("L"))[None], np.asarray(pil.convert("L")).astype(np.float32) / 255]:
            torch.testing.assert_close(learner.images([item])[0, 0].cpu(), trained, rtol=0, atol=1e-6)
        # at the checkpoint's size an array is a drawing already: taken as it is, not inverted
        prepared = prepare_image(path, S)
        for batch in ([prepared], prepared[None], torch.from_numpy(prepared)[None, None], [prepared.astype(np.float64) / 255]):
            torch.testing.assert_close(learner.images(batch)[0, 0].cpu(), trained, rtol=0, atol=1e-6)
    big = np.stack([np.asarray(Image.open(p).convert("L")) for p in pngs.values()])  # (5, 105, 105)
    torch.testing.assert_close(learner.images(big).cpu(), learner.images(list(pngs.values())).cpu())


def test_drawings_bound_from_files_are_recalled_from_pil_images_of_another_size(learner: OneShotLearner, pngs: dict[str, Path]) -> None:
    from PIL import Image

    labels = list(pngs)
    ids = learner.bind(list(pngs.values()), labels)
    assert len(ids) == 5 and learner.store.count(space="glyphs") == 5
    # the same drawings at twice their size, in colour: the nearest slot is still their own
    bigger = [Image.open(p).convert("RGB").resize((210, 210), Image.NEAREST) for p in pngs.values()]
    preds = learner.recall(bigger)
    assert [p.label for p in preds] == labels
    assert [p.slots[0] for p in preds] == ids
    assert [p.label for p in learner.recall([Image.open(p) for p in pngs.values()])] == labels
    assert [p.label for p in learner.recall([p.read_bytes() for p in pngs.values()])] == labels
    assert [p.label for p in learner.recall([np.asarray(Image.open(p)) for p in pngs.values()])] == labels
    assert learner.recall([]) == []
    assert learner.store.count(space="glyphs") == 5


def test_unusable_images_raise_typed_errors_and_change_nothing(learner: OneShotLearner, pngs: dict[str, Path],
                                                               sqlite_url: str, tmp_path: Path) -> None:
    paths = list(pngs.values())
    learner.bind(paths[:2], ["a", "b"])
    before = snapshot(sqlite_url)
    (tmp_path / "notes.png").write_text("not a picture")
    for images, labels, message in [
        ([paths[2], tmp_path / "missing.png"], ["c", "d"], r"images\[1\]: no image file at .*missing\.png"),
        ([paths[2], tmp_path / "notes.png"], ["c", "d"], r"images\[1\]: .*notes\.png' is not an image PIL can read"),
        ([paths[2], tmp_path], ["c", "d"], r"images\[1\]: no image file"),  # a folder
        ([b"\x89PNG but not really"], ["c"], r"images\[0\]: these bytes are not an image"),
        ([paths[2], np.zeros((3, 40, 50), np.uint8)], ["c", "d"], r"images\[1\] has shape \(3, 40, 50\), which is not a grey image"),
        ([np.zeros((40, 0), np.uint8)], ["c"], r"not a grey image"),
        ([np.full((40, 40), 7.0)], ["c"], r"uint8 \(0 to 255\) or numbers in \[0, 1\]"),
        ([paths[2], None], ["c", "d"], r"images\[1\] is a NoneType"),
        ([], [], r"no images to bind"),
        (paths[2:5], ["c", "d"], r"3 images but 2 labels"),
        (paths[2], ["c"], r"for one image pass \[image\]"),
        (np.zeros((2, 3, S, S), np.uint8), ["c", "d"], r"shape \(2, 3, \d+, \d+\)"),
        (np.zeros((105, 105, 3), np.uint8), ["c"], r"one colour picture"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            learner.bind(images, labels)
    for images in ([tmp_path / "missing.png"], [tmp_path / "notes.png"], [np.zeros((2, 3, 4))], str(paths[0])):
        with pytest.raises(InvalidInputError):
            learner.recall(images)
    assert learner.store.count(space="glyphs") == 2
    assert snapshot(sqlite_url) == before
