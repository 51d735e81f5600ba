"""IDX loading, embedded data, splits, and every bad-input message."""

import gzip
import struct
import urllib.error

import numpy as np
import pytest

from engine import datasets as ds
from engine.errors import DataError


def idx_bytes(arr: np.ndarray, code=0x08) -> bytes:
    return bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(">u1").tobytes()


@pytest.fixture
def idx_dir(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        (tmp_path / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(idx_bytes(rng.integers(0, 256, (n, 4, 4), dtype=np.uint8))))
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(np.arange(n, dtype=np.uint8) % 3))
    return tmp_path


def test_embedded_default(mnist5k):
    assert (len(mnist5k.y_train), len(mnist5k.y_test)) == (4000, 1000)
    assert mnist5k.x_train.dtype == np.uint8 and mnist5k.n_features == 784
    assert np.bincount(np.concatenate([mnist5k.y_train, mnist5k.y_test])).tolist() == [500] * 10
    again = ds.load_dataset("mnist-5k")
    np.testing.assert_array_equal(again.y_test, mnist5k.y_test)          # split is seeded
    other = ds.load_dataset("mnist-5k", split_seed=1)
    assert not np.array_equal(other.y_test, mnist5k.y_test)


def test_fashion_embedded():
    f = ds.load_dataset("fashion-5k")
    assert f.class_names[0] == "T-shirt/top" and len(f.y_train) == 4000


def test_official_split_dir(idx_dir):
    d = ds.load_dataset(str(idx_dir))
    assert (len(d.y_train), len(d.y_test), d.n_features, d.n_classes) == (30, 10, 16, 3)


def test_roundtrip_write_read(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    ds.write_idx(tmp_path / "a.gz", a)
    np.testing.assert_array_equal(ds.read_idx(tmp_path / "a.gz"), a)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        ds.read_idx(tmp_path / "nope")


def test_wrong_magic():
    with pytest.raises(DataError, match="bad magic"):
        ds.read_idx(b"\x12\x34\x08\x01" + b"\0" * 8)


def test_truncated():
    data = idx_bytes(np.zeros((5, 4, 4), np.uint8))[:-10]
    with pytest.raises(DataError, match="truncated"):
        ds.read_idx(data)


def test_huge_header_refused_before_allocation():
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 100_000_000, 28, 28)
    with pytest.raises(DataError, match="limit"):
        ds.read_idx(header)


def test_corrupt_gzip():
    with pytest.raises(DataError):
        ds.read_idx(b"\x1f\x8b" + b"garbage" * 5)


def test_mismatched_counts(idx_dir):
    (idx_dir / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(7, np.uint8)))
    with pytest.raises(DataError, match="10 images but 7 labels"):
        ds.load_dataset(str(idx_dir))


def test_unknown_name_lists_choices():
    with pytest.raises(DataError, match="mnist-5k"):
        ds.load_dataset("no-such-set")


def test_download_offline_is_clear(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("network unreachable")
    monkeypatch.setattr(ds.urllib.request, "urlopen", offline)
    monkeypatch.setenv("SPIKEWB_CACHE", str(tmp_path))
    with pytest.raises(DataError, match="could not download mnist.*by hand"):
        ds.load_dataset("mnist")
    assert not list(tmp_path.rglob("*.part"))


def test_download_checksum_mismatch(tmp_path, monkeypatch):
    import io

    class Resp(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False
    monkeypatch.setattr(ds.urllib.request, "urlopen", lambda *a, **k: Resp(b"not the file"))
    with pytest.raises(DataError, match="checksum"):
        ds.download("fashion-mnist", tmp_path)
    assert not list(tmp_path.iterdir())


def test_shared_fashion_mnist_if_present():
    from pathlib import Path
    p = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist"
    if not p.is_dir():
        pytest.skip("../shared/data not beside the checkout")
    d = ds.load_dataset(str(p))
    assert (len(d.y_train), len(d.y_test)) == (60000, 10000)
