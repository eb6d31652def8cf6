"""The key and lexical index files are caches of one database: a file from another store, from an
older copy of this one, with a changed body, or unreadable, is rebuilt from SQL on open, and
searches then answer as after a fresh rebuild."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mindstore import Config, MindStore

from conftest import PG_ADMIN_URL, random_keys

NAMES = ["Biscuit", "Waffles", "Ziggy", "Pepper", "Mango", "Olive", "Rocket", "Juniper", "Pickles", "Nova"]
PETS = ["dog", "cat", "parrot", "rabbit", "turtle", "hamster", "goldfish", "pony"]
CITIES = ["Lisbon", "Oslo", "Nairobi", "Lima", "Hanoi", "Quito", "Tbilisi", "Perth"]
QUERIES = ["Who has a parrot?", "Biscuit", "pets in Oslo", "Mango the turtle", "Lima", "a pony called Nova"]


def facts(seed: int, n: int = 24) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"{NAMES[rng.integers(10)]} the {PETS[rng.integers(8)]} lives with person {i} in {CITIES[rng.integers(8)]}" for i in range(n)]


def fill(url: str, index_dir: Path, seed: int) -> None:
    """The same calls, so the same ids, counts and change sequence, with content given by ``seed``."""
    with MindStore(url, config=cfg(index_dir)) as s:
        s.add_many(facts(seed), user_id="u", dedup=False)
        s.create_space("v", dim=8, key_source="test")
        s.add_vectors(random_keys(60, seed=seed), space="v")
        s.search("warm up", mode="hybrid")  # opens the lexical index, so close saves it


def cfg(index_dir: Path) -> Config:
    return Config(index_dir=index_dir, fusion_depth=4)


def answers(url: str, index_dir: Path) -> list[list[int]]:
    """Dense, lexical and vector searches whose answers depend on what the index files hold."""
    with MindStore(url, config=cfg(index_dir)) as s:
        out = [[h.slot.id for h in s.search(q, k=3, mode=mode, user_id="u")] for q in QUERIES for mode in ("dense", "lexical")]
        out += [[h.slot.id for h in s.search_vector(v, space="v", k=3)] for v in random_keys(8, seed=99)]
    return out


def truth(url: str, tmp_path: Path) -> list[list[int]]:
    """What a rebuild from SQL alone answers (a new, empty index folder each time)."""
    fresh = tmp_path / f"fresh-{len(list(tmp_path.glob('fresh-*')))}"
    return answers(url, fresh)


def key_files(folder: Path) -> list[Path]:
    return [folder / n for n in ("chat.faiss", "chat.faiss.json", "v.faiss", "v.faiss.json")]


def lexical_files(folder: Path) -> list[Path]:
    return [folder / n for n in ("chat.bm25", "chat.bm25.json")]


def copy_over(sources: list[Path], folder: Path) -> None:
    for src in sources:
        shutil.copyfile(src, folder / src.name)


@pytest.fixture
def two_stores(db_url: str, tmp_path: Path) -> Iterator[tuple[str, Path, Path, str]]:
    """This store (``db_url``, its index folder), another store's index folder and URL, both
    filled by the same calls with different content."""
    ours, theirs = tmp_path / "index", tmp_path / "other" / "index"
    other = f"sqlite:///{tmp_path / 'other' / 'memory.db'}"
    fill(db_url, ours, seed=1)
    fill(other, theirs, seed=2)
    yield db_url, ours, theirs, other


def _same_body_other_header(ours: Path, theirs: Path, names: tuple[str, ...]) -> None:
    for name in names:
        shutil.copyfile(theirs / name, ours / name)  # the body; this store's .json stays


REPLACEMENTS: dict[str, Callable[[Path, Path], None]] = {
    "key index files from another store": lambda ours, theirs: copy_over(key_files(theirs), ours),
    "lexical index files from another store": lambda ours, theirs: copy_over(lexical_files(theirs), ours),
    "index folder from another store": lambda ours, theirs: (shutil.rmtree(ours), shutil.copytree(theirs, ours)),
    "key index body changed, header kept": lambda ours, theirs: _same_body_other_header(ours, theirs, ("chat.faiss", "v.faiss")),
    "lexical index body changed, header kept": lambda ours, theirs: _same_body_other_header(ours, theirs, ("chat.bm25",)),
}


@pytest.mark.parametrize("replace", REPLACEMENTS)
def test_index_files_of_another_store_are_rebuilt(two_stores: tuple[str, Path, Path, str], tmp_path: Path, replace: str) -> None:
    url, ours, theirs, other = two_stores
    want = truth(url, tmp_path)
    assert answers(other, theirs) != want  # the other store's files hold other answers
    REPLACEMENTS[replace](ours, theirs)
    assert answers(url, ours) == want
    assert answers(url, ours) == want  # and on the next open, from the files the first one saved
    with MindStore(url, config=cfg(ours)) as s:
        s.search("Biscuit", mode="hybrid")
        assert s.index_info("v").repaired is None and s.lexical_index("chat").repaired is None


def _null(path: Path) -> None:
    path.write_text("null")


def _list(path: Path) -> None:
    path.write_text(json.dumps([1, 2, 3]))


def _bad_seq(path: Path) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), "seq": "abc"}))


def _folder(path: Path) -> None:
    path.unlink()
    (path / "inside").mkdir(parents=True)


DAMAGE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "key metadata null": ("chat.faiss.json", _null),
    "key metadata a list": ("v.faiss.json", _list),
    "key metadata seq not a number": ("v.faiss.json", _bad_seq),
    "key index file a folder": ("v.faiss", _folder),
    "key metadata a folder": ("chat.faiss.json", _folder),
    "lexical metadata null": ("chat.bm25.json", _null),
    "lexical metadata a list": ("chat.bm25.json", _list),
    "lexical metadata seq not a number": ("chat.bm25.json", _bad_seq),
    "lexical index file a folder": ("chat.bm25", _folder),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_unreadable_index_files_are_rebuilt_never_raised(db_url: str, tmp_path: Path, damage: str) -> None:
    ours = tmp_path / "index"
    fill(db_url, ours, seed=1)
    want = truth(url := db_url, tmp_path)
    name, spoil = DAMAGE[damage]
    spoil(ours / name)
    assert answers(url, ours) == want
    assert answers(url, ours) == want


def test_an_index_folder_that_is_a_file_costs_a_rebuild_not_an_error(db_url: str, tmp_path: Path) -> None:
    ours = tmp_path / "index"
    fill(db_url, ours, seed=1)
    want = truth(db_url, tmp_path)
    shutil.rmtree(ours)
    ours.write_text("not a folder")
    assert answers(db_url, ours) == want
    with MindStore(db_url, config=cfg(ours)) as s:  # writes and searches go on; nothing can be saved
        new = s.add("Pickles the pony moved to Quito", user_id="u", dedup=False)
        assert new.id in [h.slot.id for h in s.search("Pickles pony Quito", k=3, mode="lexical", user_id="u")]
    assert ours.read_text() == "not a folder"


def _copy_database(url: str, tmp_path: Path, name: str) -> str:
    """A copy of the database at ``url`` (closed): a file copy, or a PostgreSQL template copy."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        dst = tmp_path / name
        shutil.copyfile(u.database, dst)
        return str(dst)
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{u.database}_{name}" TEMPLATE "{u.database}"'))
    admin.dispose()
    return f"{u.database}_{name}"


def _restore_database(url: str, backup: str) -> None:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        for suffix in ("-wal", "-shm"):
            Path(u.database + suffix).unlink(missing_ok=True)
        shutil.copyfile(backup, u.database)
        return
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE "{u.database}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{u.database}" TEMPLATE "{backup}"'))
        c.execute(text(f'DROP DATABASE "{backup}"'))
    admin.dispose()


def test_index_of_a_newer_copy_beside_a_restored_backup_is_rebuilt(db_url: str, tmp_path: Path) -> None:
    """A database restored from a backup, then written to, can reach the very count and change
    sequence of an index folder saved before the restore: same store, another history."""
    ours = tmp_path / "index"
    fill(db_url, ours, seed=1)
    backup = _copy_database(db_url, tmp_path, "backup")

    def more(seed: int) -> None:
        with MindStore(db_url, config=cfg(ours)) as s:
            s.add_many(facts(seed, n=6), user_id="u", dedup=False)
            s.add_vectors(random_keys(6, seed=seed), space="v")
            s.search("warm up", mode="hybrid")

    more(seed=3)
    newer = tmp_path / "newer-index"
    shutil.copytree(ours, newer)
    _restore_database(db_url, backup)
    more(seed=4)  # the same calls again: the same count and sequence, other content
    shutil.rmtree(ours)
    shutil.copytree(newer, ours)
    want = truth(db_url, tmp_path)
    assert answers(db_url, ours) == want
    with MindStore(db_url, config=cfg(ours)) as s:
        s.search("Biscuit", mode="hybrid")
        assert s.index_info("v").repaired is None and s.lexical_index("chat").repaired is None
