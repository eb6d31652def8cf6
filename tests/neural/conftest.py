"""One torch thread: the tests are small-op bound, and a second thread only contends.

The Omniglot zips are read from ../shared/data/omniglot (never downloaded in tests)."""

import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from mindstore.neural import data
from mindstore.neural.data import load_omniglot

torch.set_num_threads(1)

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "omniglot"
needs_data = pytest.mark.skipif(not (DATA / "images_background_small1.zip").exists(),
                                reason="the Omniglot zips are not in ../shared/data/omniglot")


def omniglot_at(size: int):
    """The local Omniglot zips at ``size`` x ``size`` (the test is skipped without them)."""
    if not (DATA / "images_background_small1.zip").exists():
        pytest.skip("the Omniglot zips are not in ../shared/data/omniglot")
    return load_omniglot(DATA, size=size, use_cache=False, allow_download=False)


@pytest.fixture(scope="module")
def omniglot():
    return omniglot_at(20)


@pytest.fixture
def offline_user(tmp_path, monkeypatch):
    """A user with an empty cache dir, no $MINDSTORE_DATA, no ../shared/data and no network:
    (the cache dir the zips are downloaded into, the calls made to download)."""
    import platformdirs

    monkeypatch.setattr(platformdirs, "user_cache_dir", lambda app: str(tmp_path / "cache" / app))
    monkeypatch.delenv("MINDSTORE_DATA", raising=False)
    monkeypatch.setattr(data, "SHARED_DATA", tmp_path / "no-shared-data")
    calls: list[str] = []

    def no_network(url, filename=None, *a, **k):
        calls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlretrieve", no_network)
    return data.cache_dir(), calls
