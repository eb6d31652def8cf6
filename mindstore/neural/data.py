"""Episodes for one-shot binding: Omniglot (Lake et al. 2015) and a synthetic task.

An episode (Santoro et al. 2016) shows C classes, each P times, in random order. At step t the
model sees the image x_t and the label of the previous step y_{t-1}: it must bind each image to
its label, which arrives one step late, and recall the label when the class comes back. Labels
are drawn afresh for every episode (a random subset of the label space, in random order), so no
class keeps a label across episodes and only binding in memory can solve the task.

Omniglot images are downsampled (20x20 by default, as in the paper), inverted (strokes = 1) and
held in RAM as one uint8 tensor; rotations by 0, 90, 180, 270 degrees count as new classes when
training. The data set is split by alphabet (``EVAL_ALPHABETS`` never appear in training).
"""

from __future__ import annotations

import hashlib
import io
import os
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import DataNotFoundError

# The split, picked once: the two alphabets that sort last are held out for evaluation. The
# six others train; every 5th character of each training alphabet is kept aside for validation
# (model choices are made on validation, never on the held-out alphabets).
EVAL_ALPHABETS = ("Sanskrit", "Tagalog")
VALIDATION_EVERY = 5
DRAWINGS = 20
HOME_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"
FULL_ZIPS = ("images_background.zip", "images_evaluation.zip")


# Where ../shared/data/omniglot sits when the repository is checked out beside shared/.
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "omniglot"


def cache_dir() -> Path:
    """Where ``download()`` puts the zips: the user cache dir's omniglot/ folder."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mindstore")) / "omniglot"


def preprocessed_dir() -> Path:
    """Where preprocessed tensors are cached: a folder of their own, beside the downloaded zips
    and never inside a data folder, so that the cache can never be taken for the data."""
    return cache_dir().with_name("omniglot-preprocessed")


def default_data_dir() -> Path:
    """$MINDSTORE_DATA, else ../shared/data/omniglot next to the repository if it holds the
    data, else the download folder (``cache_dir``)."""
    if env := os.environ.get("MINDSTORE_DATA"):
        return Path(env)
    return SHARED_DATA if find_sources(SHARED_DATA) else cache_dir()


@dataclass
class Omniglot:
    """All drawings of a set of characters: ``images`` (chars, 20, S, S) uint8, strokes = 255."""

    images: Tensor
    alphabets: list[str]  # alphabet of each character
    characters: list[str]  # "Alphabet/characterNN"

    def select(self, keep: list[int]) -> Omniglot:
        return Omniglot(self.images[keep], [self.alphabets[i] for i in keep],
                        [self.characters[i] for i in keep])

    def split(self) -> dict[str, Omniglot]:
        """{"train", "val", "eval"}: eval = held-out alphabets, val = every 5th training char."""
        parts: dict[str, list[int]] = {"train": [], "val": [], "eval": []}
        seen: dict[str, int] = {}
        for i, a in enumerate(self.alphabets):
            n = seen[a] = seen.get(a, -1) + 1
            if a in EVAL_ALPHABETS:
                parts["eval"].append(i)
            elif n % VALIDATION_EVERY == VALIDATION_EVERY - 1:
                parts["val"].append(i)
            else:
                parts["train"].append(i)
        return {k: self.select(v) for k, v in parts.items()}


def find_sources(path: Path) -> list[Path]:
    """What ``path`` holds of Omniglot: itself if it is a file, else its zips, else itself if
    PNG drawings lie under it; [] when it holds none of these (a missing folder, or one of
    anything else, such as preprocessed tensors, is no data)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    if zips := sorted(path.glob("*.zip")):
        return zips
    return [path] if next(path.rglob("*.png"), None) is not None else []


def download(dest: Path | None = None) -> Path:
    """Fetch the full background and evaluation zips from the data set's home into ``dest``.

    Raises DataNotFoundError, saying what to do, when they cannot be fetched (offline, say)."""
    dest = dest or cache_dir()
    dest.mkdir(parents=True, exist_ok=True)
    # all or nothing: each zip is fetched aside and renamed into place only once both are in, so
    # that a folder holding one of the two is never taken for the whole data set
    parts = {dest / name: dest / (name + ".part") for name in FULL_ZIPS if not (dest / name).exists()}
    try:
        for final, tmp in parts.items():
            urllib.request.urlretrieve(HOME_URL + final.name, tmp)
    except OSError as e:  # URLError, a timeout, a refused connection: all OSErrors
        for tmp in parts.values():
            tmp.unlink(missing_ok=True)
        raise DataNotFoundError(
            f"could not download the Omniglot zips from {HOME_URL} ({e}). Go online and retry, "
            "or set MINDSTORE_DATA (or pass --data) to a folder holding images_background*.zip "
            "or images_evaluation.zip") from e
    for final, tmp in parts.items():
        tmp.rename(final)
    return dest


def locate(path: str | Path | None = None, *, allow_download: bool = True) -> list[Path]:
    """The sources (zips, or folders of PNGs) to load: under ``path``, else under
    ``default_data_dir()``. Only the download folder is ever filled by downloading; a path
    given (or $MINDSTORE_DATA) without data is an error, never a silent download elsewhere."""
    where = Path(path) if path is not None else default_data_dir()
    if sources := find_sources(where):
        return sources
    fetchable = where.resolve() == cache_dir().resolve()
    if fetchable and allow_download:
        return find_sources(download(where))
    hint = ("; or go online: `mindstore.neural.data.download()` fetches them there"
            if fetchable else "")
    raise DataNotFoundError(
        f"no Omniglot data at {where} (no images_*.zip and no PNG drawings). Set MINDSTORE_DATA "
        f"or pass --data to a folder holding the Omniglot zips{hint}")


def _entries(source: Path):
    """(alphabet, character, drawing file name, bytes reader) for a zip or a folder."""
    if source.suffix == ".zip":
        with zipfile.ZipFile(source) as z:
            for name in sorted(z.namelist()):
                parts = name.split("/")
                if name.endswith(".png") and len(parts) >= 3:
                    yield parts[-3], parts[-2], parts[-1], z.read(name)
    else:
        for png in sorted(source.rglob("*.png")):
            yield png.parent.parent.name, png.parent.name, png.name, png.read_bytes()


def prepare_image(data: bytes | str | Path, size: int = 20) -> np.ndarray:
    """One drawing (PNG bytes or a file path) as the models see it: grey, box-downsampled to
    ``size`` x ``size``, inverted so strokes are 255 (uint8)."""
    from PIL import Image

    src = io.BytesIO(data) if isinstance(data, bytes) else data
    img = Image.open(src).convert("L").resize((size, size), Image.BOX)
    return 255 - np.asarray(img, np.uint8)


def load_omniglot(path: str | Path | None = None, size: int = 20, *, use_cache: bool = True,
                  allow_download: bool = True) -> Omniglot:
    """Load every character under ``path`` (a zip, or a folder of zips or of PNGs; default
    ``default_data_dir()``, downloaded there if it is the empty download folder).

    Characters found in several zips (Greek and Latin in the two small sets) are kept once.
    The preprocessed tensor is cached in ``preprocessed_dir()``, keyed by the sources and
    ``size``. Raises DataNotFoundError (a FileNotFoundError) when there is no data to load.
    """
    sources = locate(path, allow_download=allow_download)
    stamp = "-".join(f"{s.resolve()}:{s.stat().st_size}" for s in sources)
    cached = preprocessed_dir() / f"omniglot-{size}-{hashlib.sha1(stamp.encode()).hexdigest()[:12]}.pt"
    if use_cache and cached.exists():
        blob = torch.load(cached, weights_only=True)
        return Omniglot(blob["images"], blob["alphabets"], blob["characters"])
    drawings: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for source in sources:
        for alphabet, char, fname, data in _entries(source):
            drawings.setdefault((alphabet, char), {})[fname] = prepare_image(data, size)
    keys = sorted(k for k, v in drawings.items() if len(v) == DRAWINGS)
    if not keys:
        raise DataNotFoundError(
            f"no Omniglot character with all {DRAWINGS} drawings in {', '.join(map(str, sources))}. "
            "Set MINDSTORE_DATA or pass --data to a folder holding the Omniglot zips")
    images = torch.from_numpy(np.stack([np.stack([drawings[k][f] for f in sorted(drawings[k])])
                                        for k in keys]))
    data = Omniglot(images, [a for a, _ in keys], [f"{a}/{c}" for a, c in keys])
    if use_cache:
        cached.parent.mkdir(parents=True, exist_ok=True)
        # another process may be loading the same data: write aside, then rename (atomic)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        try:
            torch.save({"images": images, "alphabets": data.alphabets,
                        "characters": data.characters}, tmp)
            os.replace(tmp, cached)
        finally:
            tmp.unlink(missing_ok=True)  # gone after the rename; a failed write's leftovers
    return data


def with_rotations(images: Tensor, *, reflect: bool = False) -> Tensor:
    """(chars, 20, S, S) -> (4 chars, 20, S, S): each rotation by k * 90 degrees is a new class.

    With ``reflect`` the mirror image (left to right) and its rotations are new classes too:
    (8 chars, 20, S, S), the eight symmetries of the square. A mirrored character is as much a
    plausible new character as a rotated one, and it doubles the classes the encoder learns from.
    """
    views = [images, images.flip(-1)] if reflect else [images]
    return torch.cat([v.rot90(k, dims=(-2, -1)) for v in views for k in range(4)])


@dataclass
class Episodes:
    """A batch of episodes: ``x`` (B, T, 1, S, S) float in [0, 1], ``y`` (B, T) target labels,
    ``y_prev`` (B, T) the label shown with x_t (y_{t-1}; -1 at t = 0), ``instance`` (B, T) which
    presentation of its class x_t is (1-based)."""

    x: Tensor
    y: Tensor
    y_prev: Tensor
    instance: Tensor

    def to(self, device: torch.device | str) -> Episodes:
        return Episodes(*(t.to(device) for t in (self.x, self.y, self.y_prev, self.instance)))


def make_episodes(images: Tensor, classes: int, presentations: int, label_space: int,
                  gen: torch.Generator) -> Episodes:
    """Assemble episodes from ``images`` (B, C, P, S, S) uint8: C classes x P drawings each."""
    B, C, P = images.shape[:3]
    T = C * P
    labels = torch.rand(B, label_space, generator=gen).argsort(1)[:, :C]  # fresh per episode
    order = torch.rand(B, T, generator=gen).argsort(1)  # shuffle the C*P presentations
    cls = (torch.arange(T) // P).expand(B, T).gather(1, order)
    # instance: how many times this class has been shown up to and including step t
    onehot = torch.nn.functional.one_hot(cls, C)
    instance = (onehot.cumsum(1) * onehot).sum(-1)
    flat = images.reshape(B, T, *images.shape[3:]).gather(
        1, order.view(B, T, 1, 1).expand(-1, -1, *images.shape[3:]))
    y = labels.gather(1, cls)
    y_prev = torch.cat([torch.full((B, 1), -1, dtype=torch.long), y[:, :-1]], dim=1)
    return Episodes(flat.unsqueeze(2).float() / 255.0, y, y_prev, instance)


def augment(x: Tensor, gen: torch.Generator, *, rotate: float = 10.0, scale: float = 0.1,
            shear: float = 0.15, shift: float = 0.1, strength: float = 1.0) -> Tensor:
    """A random small affine map of every image in ``x`` (..., S, S), float, strokes = 1.

    Each drawing gets its own rotation (+-``rotate`` degrees), scale (1 +- ``scale``), shear
    (+-``shear``) and shift (+-``shift`` of the image width): the variation between two people
    drawing the same character, so that the encoder learns strokes, not the six training
    alphabets' exact pen positions (the held-out gap of the first checkpoint, docs/neural.md).
    ``strength`` scales all four ranges.
    """
    rotate, scale, shear, shift = (v * strength for v in (rotate, scale, shear, shift))
    shape = x.shape
    imgs = x.reshape(-1, 1, *shape[-2:])
    n = imgs.shape[0]

    def u(width: float) -> Tensor:  # uniform in [-width, width]
        return (torch.rand(n, generator=gen) * 2 - 1) * width

    a = torch.deg2rad(u(rotate))
    s, sh = 1 + u(scale), u(shear)
    cos, sin = torch.cos(a), torch.sin(a)
    # theta maps output coordinates to input ones: rotation R(a) @ shear [[1, sh], [0, 1]] / s
    theta = torch.stack([torch.stack([cos, cos * sh - sin, u(shift) * 2], -1),
                         torch.stack([sin, sin * sh + cos, u(shift) * 2], -1)], 1)
    theta[:, :, :2] /= s.view(n, 1, 1)
    grid = F.affine_grid(theta.to(imgs), list(imgs.shape), align_corners=False)
    return F.grid_sample(imgs, grid, align_corners=False, padding_mode="zeros").reshape(shape)


class OmniglotEpisodes:
    """Samples episodes from a set of characters (rotations as new classes if ``rotate``, and
    mirror images too if ``reflect``; a random affine distortion of every drawing if ``augment``)."""

    def __init__(self, data: Omniglot, *, rotate: bool, augment: bool = False,
                 reflect: bool = False) -> None:
        if reflect and not rotate:
            raise ValueError("reflect adds mirror images to the rotations; it needs rotate")
        self.images = with_rotations(data.images, reflect=reflect) if rotate else data.images
        self.augment = augment

    @property
    def num_classes(self) -> int:
        return self.images.shape[0]

    def draw(self, batch: int, classes: int, drawings: int, gen: torch.Generator) -> Tensor:
        """(batch, classes, drawings, S, S) uint8: distinct classes, distinct drawings of each."""
        if classes > self.num_classes or drawings > self.images.shape[1]:
            raise ValueError(f"cannot draw {classes} classes x {drawings} drawings from "
                             f"{self.num_classes} classes x {self.images.shape[1]} drawings")
        cls = torch.rand(batch, self.num_classes, generator=gen).argsort(1)[:, :classes]
        draw = torch.rand(batch, classes, self.images.shape[1], generator=gen).argsort(2)
        return self.images[cls.unsqueeze(-1), draw[..., :drawings]]

    def sample(self, batch: int, classes: int, presentations: int, label_space: int,
               gen: torch.Generator) -> Episodes:
        imgs = self.draw(batch, classes, presentations, gen)  # (B, C, P, S, S)
        ep = make_episodes(imgs, classes, presentations, label_space, gen)
        if self.augment:
            ep.x = augment(ep.x, gen)
        return ep


class SyntheticEpisodes:
    """Random binary patterns, new ones every episode; each presentation flips ``noise`` of the
    pixels. Nothing can be learnt about the classes themselves, only how to bind them."""

    def __init__(self, size: int = 8, noise: float = 0.05) -> None:
        self.size, self.noise = size, noise

    def drawings(self, classes: int, presentations: int, gen: torch.Generator,
                 batch: tuple[int, ...] = ()) -> Tensor:
        """(*batch, classes, presentations, S, S) uint8: noisy copies of one pattern per class."""
        S = self.size
        proto = torch.rand(*batch, classes, 1, S, S, generator=gen) < 0.5
        flips = torch.rand(*batch, classes, presentations, S, S, generator=gen) < self.noise
        return (proto ^ flips).to(torch.uint8) * 255

    def sample(self, batch: int, classes: int, presentations: int, label_space: int,
               gen: torch.Generator) -> Episodes:
        imgs = self.drawings(classes, presentations, gen, (batch,))
        return make_episodes(imgs, classes, presentations, label_space, gen)
