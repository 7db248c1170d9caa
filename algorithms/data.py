"""Data sets: an IDX reader and a small registry.

* ``digits``: scikit-learn's 8x8 digits, embedded, always available offline; a fixed seeded
  80/20 train/test split.
* ``mnist`` and ``fashion-mnist``: canonical IDX files (``.gz`` or raw) read from
  ``<data_dir>/<name>/``, where ``data_dir`` is an argument or ``$PREDICTIVE_CIRCUITS_DATA``.
  Every file is checked against its published MD5 (of the uncompressed bytes), so a corrupt
  or truncated file raises :class:`DataError`, never returns a wrong array.
* ``cifar10`` (the python batches, extracted in ``<data_dir>/cifar10/cifar-10-batches-py/`` or
  as the ``cifar-10-python.tar.gz`` archive, read without extracting) and ``svhn``
  (``train_32x32.mat``, ``test_32x32.mat`` in ``<data_dir>/svhn/``), each file checked
  against its published MD5 before it is parsed; images flattened channel-first (3072).
  These are not available offline here; the loaders serve users who have the files.
* :func:`pad_images` zero-pads 28x28 sets to 32x32 for the CNN experiments.

This module never writes files: downloading lives in ``demos/download.py``
(``python -m demos.download mnist``), which uses :data:`DATASETS` for URLs and checksums.
Pixels are scaled to ``[0, 1]``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DATASETS",
    "DATA_ENV",
    "DataError",
    "Dataset",
    "DatasetNotFoundError",
    "DatasetInfo",
    "IDXFile",
    "dataset_names",
    "load_dataset",
    "read_idx",
    "resolve_data_dir",
    "pad_images",
    "smooth_targets",
]

DATA_ENV = "PREDICTIVE_CIRCUITS_DATA"
Split = Literal["full", "thesis"]


class DataError(ValueError):
    """A data file is malformed, truncated or fails its checksum."""


class DatasetNotFoundError(FileNotFoundError):
    """The files of a data set are not where they were looked for."""


@dataclass(frozen=True)
class IDXFile:
    """One canonical file: its name, the MD5 and size of its *uncompressed* bytes."""

    name: str
    md5: str
    size: int


@dataclass(frozen=True)
class DatasetInfo:
    """A registered IDX data set and where its canonical files can be downloaded."""

    name: str
    files: dict[str, IDXFile]  # keys: train_images, train_labels, test_images, test_labels
    mirrors: tuple[str, ...]  # base URLs; a file's URL is base + name + ".gz"
    classes: tuple[str, ...]


_DIGIT_CLASSES = tuple(str(i) for i in range(10))

DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        "mnist",
        {
            "train_images": IDXFile("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb", 47040016),
            "train_labels": IDXFile("train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624", 60008),
            "test_images": IDXFile("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea", 7840016),
            "test_labels": IDXFile("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637", 10008),
        },
        (
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        _DIGIT_CLASSES,
    ),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist",
        {
            "train_images": IDXFile("train-images-idx3-ubyte", "f4a8712d7a061bf5bd6d2ca38dc4d50a", 47040016),
            "train_labels": IDXFile("train-labels-idx1-ubyte", "9018921c3c673c538a1fc5bad174d6f9", 60008),
            "test_images": IDXFile("t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a", 7840016),
            "test_labels": IDXFile("t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965", 10008),
        },
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
         "Bag", "Ankle boot"),
    ),
}


CIFAR10_FILES = {  # the python version's batches: name -> MD5 (published with the data set)
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
SVHN_FILES = {"train": ("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
              "test": ("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3")}


def dataset_names() -> tuple[str, ...]:
    """Every name :func:`load_dataset` accepts."""
    return ("digits", *DATASETS, "cifar10", "svhn")


@dataclass(frozen=True)
class Dataset:
    """Flattened images in ``[0, 1]`` and integer labels.

    Attributes:
        train_x: ``N x D`` float tensor. train_y: ``N`` int64 tensor. Same for test.
        image_shape: ``(H, W)`` of one image, for plots.
    """

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    image_shape: tuple[int, int]
    classes: tuple[str, ...]
    channels: int = 1

    @property
    def n_features(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> str:
        return (f"{self.name}: {len(self.train_y)} train / {len(self.test_y)} test, "
                f"{self.n_features} features, {self.n_classes} classes")

    def to(self, device: torch.device | str) -> Dataset:
        """The same data with every tensor on ``device`` (one copy; the training loop then
        slices batches there without host transfers)."""
        return dataclasses.replace(self, train_x=self.train_x.to(device),
                                   train_y=self.train_y.to(device),
                                   test_x=self.test_x.to(device), test_y=self.test_y.to(device))


# ----------------------------------------------------------------------------- IDX reading
def read_idx(path: str | os.PathLike[str], expected: IDXFile | None = None) -> np.ndarray:
    """Read one IDX file (raw or ``.gz``) into a ``uint8`` array.

    Validates the magic number, the data type (only unsigned bytes, code 0x08, are used by
    these data sets), that the byte count matches the header exactly, and, when
    ``expected`` is given, the MD5 and size of the uncompressed bytes.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot be read as {'gzip' if path.suffix == '.gz' else 'IDX'} "
                        f"({exc}); delete it and fetch it again") from exc
    if expected is not None:
        if len(raw) != expected.size:
            raise DataError(f"{path}: {len(raw)} bytes uncompressed, expected {expected.size} "
                            "(truncated or wrong file); delete it and fetch it again")
        digest = hashlib.md5(raw).hexdigest()
        if digest != expected.md5:
            raise DataError(f"{path}: MD5 {digest} does not match the published {expected.md5} "
                            "(corrupt file); delete it and fetch it again")
    if len(raw) < 4:
        raise DataError(f"{path}: {len(raw)} bytes, too short for an IDX header")
    zero, dtype_code, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0 or dtype_code != 0x08 or ndim == 0:
        raise DataError(f"{path}: bad IDX magic {raw[:4].hex()} (expected 000008NN, unsigned "
                        "bytes)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != count:
        raise DataError(f"{path}: header says {dims} = {count} bytes of data, file has "
                        f"{len(raw) - header} (truncated or corrupt)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """``data_dir`` if given, else ``$PREDICTIVE_CIRCUITS_DATA``, else ``None``."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else None


def find_idx_file(folder: Path, f: IDXFile) -> Path | None:
    """The path of ``f`` in ``folder`` (raw preferred over ``.gz``), or ``None``."""
    for candidate in (folder / f.name, folder / f"{f.name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _load_idx_dataset(info: DatasetInfo, data_dir: Path | None, split: Split) -> Dataset:
    if data_dir is None:
        raise DatasetNotFoundError(
            f"no data directory for {info.name!r}: pass data_dir (--data-dir) or set "
            f"${DATA_ENV}; the files go in <data_dir>/{info.name}/, or fetch them with "
            f"`python -m demos.download {info.name} --data-dir <data_dir>`"
        )
    folder = data_dir / info.name
    found = {key: find_idx_file(folder, f) for key, f in info.files.items()}
    missing = [info.files[k].name for k, p in found.items() if p is None]
    if missing:
        raise DatasetNotFoundError(
            f"{info.name}: missing {', '.join(missing)} (raw or .gz) in {folder}; put the "
            f"canonical IDX files there, or fetch them with "
            f"`python -m demos.download {info.name} --data-dir {data_dir}`"
        )
    arrays = {k: read_idx(p, info.files[k]) for k, p in found.items() if p is not None}
    train_x, train_y = arrays["train_images"], arrays["train_labels"]
    test_x, test_y = arrays["test_images"], arrays["test_labels"]
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise DataError(f"{info.name}: image and label counts differ")
    if split == "thesis":
        train_x, train_y = train_x[:50_000], train_y[:50_000]
    return Dataset(
        info.name,
        _pixels(train_x), torch.from_numpy(train_y.astype(np.int64)),
        _pixels(test_x), torch.from_numpy(test_y.astype(np.int64)),
        (int(train_x.shape[1]), int(train_x.shape[2])),
        info.classes,
    )


def _pixels(images: np.ndarray) -> Tensor:
    flat = images.reshape(len(images), -1).astype(np.float32) / 255.0
    return torch.from_numpy(flat)


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    n_test = len(y) // 5
    test, train = order[:n_test], order[n_test:]
    return Dataset("digits", torch.from_numpy(x[train]), torch.from_numpy(y[train]),
                   torch.from_numpy(x[test]), torch.from_numpy(y[test]), (8, 8),
                   _DIGIT_CLASSES)


def load_dataset(
    name: str, data_dir: str | os.PathLike[str] | None = None, split: Split = "full", *,
    device: torch.device | str | None = None,
) -> Dataset:
    """Load a registered data set.

    Args:
        name: one of :func:`dataset_names`.
        data_dir: folder holding ``<name>/`` with the IDX files; default
            ``$PREDICTIVE_CIRCUITS_DATA``. Ignored for ``digits``.
        split: ``"full"`` trains on the whole official training set; ``"thesis"`` on its
            first 50,000 images (thesis 3.5). Tests are always the official test set.
        device: where the tensors go (default: the CPU).
    """
    if split not in ("full", "thesis"):
        raise ValueError(f"split must be 'full' or 'thesis', got {split!r}")
    data = _load_dataset(name, data_dir, split)
    return data if device is None else data.to(device)


def _load_dataset(name: str, data_dir: str | os.PathLike[str] | None, split: Split) -> Dataset:
    if name == "digits":
        return _load_digits()
    if name in ("cifar10", "svhn"):
        folder = resolve_data_dir(data_dir)
        if folder is None:
            raise DatasetNotFoundError(f"no data directory for {name!r}: pass data_dir "
                                       f"(--data-dir) or set ${DATA_ENV}")
        return _load_cifar10(folder / "cifar10") if name == "cifar10" else _load_svhn(folder / "svhn")
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(dataset_names())}")
    return _load_idx_dataset(DATASETS[name], resolve_data_dir(data_dir), split)


def smooth_targets(labels: Tensor, n_classes: int, off_value: float,
                   dtype: torch.dtype = torch.float32) -> Tensor:
    """Target vectors ``B x n_classes``: 1.0 at the label, ``off_value`` elsewhere (the
    thesis smooths incorrect labels to 0.1; ``off_value = 0`` is one-hot)."""
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-d integer tensor, got shape {tuple(labels.shape)}")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got {int(labels.min())}.."
                         f"{int(labels.max())}")
    t = torch.full((len(labels), n_classes), off_value, dtype=dtype)
    t[torch.arange(len(labels)), labels] = 1.0
    return t


def _checked(raw: bytes, md5: str, where: str) -> bytes:
    digest = hashlib.md5(raw).hexdigest()
    if digest != md5:
        raise DataError(f"{where}: MD5 {digest} does not match the published {md5} (corrupt "
                        "or different file); delete it and fetch it again")
    return raw


def _load_cifar10(folder: Path, files: dict[str, str] = CIFAR10_FILES) -> Dataset:
    """CIFAR-10 from ``folder/cifar-10-batches-py/`` or ``folder/cifar-10-python.tar.gz``."""
    import pickle
    import tarfile

    extracted = folder / "cifar-10-batches-py"
    archive = folder / "cifar-10-python.tar.gz"
    raws: dict[str, bytes] = {}
    if extracted.is_dir():
        for name, md5 in files.items():
            path = extracted / name
            if not path.is_file():
                raise DatasetNotFoundError(f"cifar10: missing {path}")
            raws[name] = _checked(path.read_bytes(), md5, str(path))
    elif archive.is_file():
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for name, md5 in files.items():
                    member = tar.extractfile(f"cifar-10-batches-py/{name}")
                    if member is None:
                        raise DataError(f"{archive}: no member cifar-10-batches-py/{name}")
                    raws[name] = _checked(member.read(), md5, f"{archive}:{name}")
        except (tarfile.TarError, KeyError, OSError, EOFError) as exc:
            raise DataError(f"{archive}: cannot be read ({exc})") from exc
    else:
        raise DatasetNotFoundError(
            f"cifar10: put the python version's batches in {extracted} or the archive "
            f"cifar-10-python.tar.gz in {folder}")

    def batch(name: str) -> tuple[np.ndarray, np.ndarray]:
        d = pickle.loads(raws[name], encoding="bytes")  # MD5-verified above
        return (np.asarray(d[b"data"], dtype=np.uint8),
                np.asarray(d[b"labels"], dtype=np.int64))

    train = [batch(n) for n in files if n.startswith("data_batch")]
    test_x, test_y = batch("test_batch")
    train_x = np.concatenate([b[0] for b in train])
    train_y = np.concatenate([b[1] for b in train])
    return Dataset("cifar10", torch.from_numpy(train_x.astype(np.float32) / 255.0),
                   torch.from_numpy(train_y), torch.from_numpy(test_x.astype(np.float32) / 255.0),
                   torch.from_numpy(test_y), (32, 32), CIFAR10_CLASSES, channels=3)


def _load_svhn(folder: Path, files: dict[str, tuple[str, str]] = SVHN_FILES) -> Dataset:
    """SVHN cropped digits (``*_32x32.mat``); label 10 means digit 0."""
    import io as _io

    from scipy.io import loadmat

    arrays = {}
    for split, (name, md5) in files.items():
        path = folder / name
        if not path.is_file():
            raise DatasetNotFoundError(f"svhn: missing {path}")
        mat = loadmat(_io.BytesIO(_checked(path.read_bytes(), md5, str(path))))
        x = np.transpose(mat["X"], (3, 2, 0, 1)).reshape(mat["X"].shape[3], -1)  # N,C,H,W
        y = mat["y"].reshape(-1).astype(np.int64) % 10
        arrays[split] = (torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y))
    return Dataset("svhn", *arrays["train"], *arrays["test"], (32, 32), _DIGIT_CLASSES,
                   channels=3)


def pad_images(data: Dataset, size: int = 32) -> Dataset:
    """Zero-pad every image symmetrically to ``size x size`` (MNIST 28x28 -> 32x32)."""
    h, w = data.image_shape
    if size < h or size < w:
        raise ValueError(f"cannot pad {h}x{w} images to {size}x{size}")
    top, left = (size - h) // 2, (size - w) // 2

    def pad(x: Tensor) -> Tensor:
        imgs = x.reshape(len(x), data.channels, h, w)
        out = torch.nn.functional.pad(imgs, (left, size - w - left, top, size - h - top))
        return out.reshape(len(x), -1)

    return Dataset(f"{data.name}-{size}", pad(data.train_x), data.train_y, pad(data.test_x),
                   data.test_y, (size, size), data.classes, data.channels)
