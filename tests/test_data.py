"""IDX reading, the data-set registry, checksums and the download path."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from algorithms.data import (DATASETS, DataError, DatasetNotFoundError, IDXFile, load_dataset,
                             read_idx, smooth_targets)


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> bytes:
    """An independent IDX writer (struct, big-endian) for round-trip tests."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return raw


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, compress):
    arr = np.random.default_rng(0).integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    path = tmp_path / ("x.idx.gz" if compress else "x.idx")
    raw = write_idx(path, arr, compress)
    np.testing.assert_array_equal(read_idx(path), arr)
    np.testing.assert_array_equal(
        read_idx(path, IDXFile("x", hashlib.md5(raw).hexdigest(), len(raw))), arr)


def test_idx_rejects_bad_magic_truncation_and_checksum(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    good = tmp_path / "good"
    raw = write_idx(good, arr)
    bad_magic = tmp_path / "magic"
    bad_magic.write_bytes(b"\x01\x02" + raw[2:])
    with pytest.raises(DataError, match="magic"):
        read_idx(bad_magic)
    truncated = tmp_path / "trunc"
    truncated.write_bytes(raw[:-5])
    with pytest.raises(DataError, match="truncated"):
        read_idx(truncated)
    flipped = bytearray(raw)
    flipped[-1] ^= 0xFF
    corrupt = tmp_path / "corrupt"
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(DataError, match="MD5"):
        read_idx(corrupt, IDXFile("corrupt", hashlib.md5(raw).hexdigest(), len(raw)))
    not_gzip = tmp_path / "x.gz"
    not_gzip.write_bytes(raw)
    with pytest.raises(DataError, match="gzip"):
        read_idx(not_gzip)


def test_digits_is_embedded_and_fixed():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.train_x.shape == (1438, 64) and a.test_x.shape == (359, 64)
    assert torch.equal(a.train_y, b.train_y) and torch.equal(a.test_x, b.test_x)
    assert 0.0 <= float(a.train_x.min()) and float(a.train_x.max()) == 1.0
    assert set(a.train_y.tolist()) == set(range(10))
    # the split is a partition of scikit-learn's 1797 images
    from sklearn.datasets import load_digits

    assert len(a.train_y) + len(a.test_y) == len(load_digits().target)


def test_unknown_dataset_and_split():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match="split"):
        load_dataset("digits", split="half")


def test_missing_files_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.delenv("PREDICTIVE_CIRCUITS_DATA", raising=False)
    with pytest.raises(DatasetNotFoundError, match="PREDICTIVE_CIRCUITS_DATA"):
        load_dataset("mnist")
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "mnist")):
        load_dataset("mnist", tmp_path)


def test_mnist_matches_published_facts(shared_data_dir):
    d = load_dataset("mnist", shared_data_dir)
    assert d.train_x.shape == (60000, 784) and d.test_x.shape == (10000, 784)
    assert d.train_x.dtype == torch.float32
    assert float(d.train_x.min()) == 0.0 and float(d.train_x.max()) == 1.0
    # published label counts of the MNIST test set
    counts = torch.bincount(d.test_y, minlength=10).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    t = load_dataset("mnist", shared_data_dir, split="thesis")
    assert len(t.train_y) == 50000 and torch.equal(t.train_y, d.train_y[:50000])


def test_env_variable_and_raw_files(shared_data_dir, tmp_path, monkeypatch):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for f in DATASETS["fashion-mnist"].files.values():  # uncompressed copies
        with gzip.open(shared_data_dir / "fashion-mnist" / f"{f.name}.gz") as src:
            (folder / f.name).write_bytes(src.read())
    monkeypatch.setenv("PREDICTIVE_CIRCUITS_DATA", str(tmp_path))
    d = load_dataset("fashion-mnist")
    assert d.classes[9] == "Ankle boot" and len(d.test_y) == 10000


def test_corrupt_dataset_file_is_an_error_not_an_array(shared_data_dir, tmp_path):
    folder = tmp_path / "mnist"
    shutil.copytree(shared_data_dir / "mnist", folder)
    name = "t10k-labels-idx1-ubyte"
    raw = bytearray(gzip.decompress((folder / f"{name}.gz").read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # one label changed: same size, valid header
    (folder / f"{name}.gz").unlink()
    (folder / name).write_bytes(bytes(raw))
    with pytest.raises(DataError, match="MD5"):
        load_dataset("mnist", tmp_path)


def test_download_verifies_checksums(shared_data_dir, tmp_path):
    from demos.download import download

    mirror = (shared_data_dir / "mnist").as_uri() + "/"
    folder = download("mnist", tmp_path, mirrors=(mirror,), log=lambda *_: None)
    assert len(load_dataset("mnist", tmp_path).test_y) == 10000
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{f.name}.gz" for f in DATASETS["mnist"].files.values())
    bad = tmp_path / "badmirror"
    bad.mkdir()
    for f in DATASETS["fashion-mnist"].files.values():  # mnist files under f-mnist names
        shutil.copy(shared_data_dir / "mnist" / f"{f.name}.gz", bad / f"{f.name}.gz")
    with pytest.raises(DataError, match="does not match"):
        download("fashion-mnist", tmp_path, mirrors=(bad.as_uri() + "/",), log=lambda *_: None)
    assert not (tmp_path / "fashion-mnist" / "train-images-idx3-ubyte.gz").exists()
    with pytest.raises(OSError, match="could not download"):
        download("fashion-mnist", tmp_path / "x", mirrors=((tmp_path / "nowhere").as_uri() + "/",),
                 log=lambda *_: None)


def test_smooth_targets():
    t = smooth_targets(torch.tensor([2, 0]), 4, 0.1)
    expected = torch.tensor([[0.1, 0.1, 1.0, 0.1], [1.0, 0.1, 0.1, 0.1]])
    torch.testing.assert_close(t, expected)
    with pytest.raises(ValueError, match="labels must lie"):
        smooth_targets(torch.tensor([4]), 4, 0.1)


def test_cifar10_loader_parses_and_verifies(tmp_path):
    import pickle

    from algorithms.data import _load_cifar10

    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = {}
    for name in ("data_batch_1", "test_batch"):
        raw = pickle.dumps({b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
                            b"labels": [1, 2, 3, 9]})
        (folder / name).write_bytes(raw)
        files[name] = hashlib.md5(raw).hexdigest()
    d = _load_cifar10(tmp_path / "cifar10", files)
    assert d.train_x.shape == (4, 3072) and d.channels == 3 and d.test_y.tolist() == [1, 2, 3, 9]
    assert float(d.train_x.max()) <= 1.0
    with pytest.raises(DataError, match="MD5"):
        _load_cifar10(tmp_path / "cifar10")  # the real published checksums do not match
    with pytest.raises(DatasetNotFoundError, match="cifar-10-python.tar.gz"):
        _load_cifar10(tmp_path / "nowhere")


def test_svhn_loader_maps_label_ten_to_zero(tmp_path):
    from scipy.io import savemat

    from algorithms.data import _load_svhn

    folder = tmp_path / "svhn"
    folder.mkdir()
    files = {}
    for split in ("train", "test"):
        x = np.zeros((32, 32, 3, 2), dtype=np.uint8)
        x[0, 1, 2, 1] = 255  # row 0, col 1, channel 2 of sample 1
        savemat(folder / f"{split}.mat", {"X": x, "y": np.array([[10], [3]])})
        files[split] = (f"{split}.mat", hashlib.md5((folder / f"{split}.mat").read_bytes()).hexdigest())
    d = _load_svhn(folder, files)
    assert d.train_y.tolist() == [0, 3]
    img = d.train_x[1].reshape(3, 32, 32)
    assert float(img[2, 0, 1]) == 1.0 and float(img.sum()) == 1.0
    with pytest.raises(DataError, match="MD5"):
        _load_svhn(folder, {"train": ("train.mat", "0" * 32), "test": files["test"]})


def test_pad_images_centres_the_digit():
    from algorithms.data import pad_images

    d = load_dataset("digits")
    p = pad_images(d, 12)
    assert p.train_x.shape == (len(d.train_y), 144) and p.image_shape == (12, 12)
    img = p.train_x[0].reshape(12, 12)
    torch.testing.assert_close(img[2:10, 2:10], d.train_x[0].reshape(8, 8))
    assert float(img.sum()) == pytest.approx(float(d.train_x[0].sum()))
    with pytest.raises(ValueError, match="cannot pad"):
        pad_images(d, 4)
