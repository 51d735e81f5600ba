"""IDX loading, embedded data, splits, and every bad-input message."""

import gzip
import struct
import urllib.error
import zlib

import numpy as np
import pytest

from spikewb.engine.data import datasets as ds
from spikewb.engine.errors import DataError


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
    p = Path(__file__).resolve().parents[4] / "shared" / "data" / "fashion-mnist"
    if not p.is_dir():
        pytest.skip("../shared/data not beside the checkout")
    d = ds.load_dataset(str(p))
    assert (len(d.y_train), len(d.y_test)) == (60000, 10000)


# ----------------------------------------------------------------- upload bombs

def gzip_bomb(shape, body_bytes: int) -> bytes:
    """gzip of an IDX uint8 header for ``shape`` followed by ``body_bytes`` zeros, built in chunks."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [z.compress(bytes([0, 0, 8, len(shape)]) + struct.pack(f">{len(shape)}I", *shape))]
    block = bytes(1 << 20)
    left = body_bytes
    while left > 0:
        out.append(z.compress(block[: min(left, len(block))]))
        left -= len(block)
    out.append(z.flush())
    return b"".join(out)


_MEASURE = r"""
import json, resource, sys
from pathlib import Path
from spikewb.workbench.sessions.session import dataset_from_idx
data = Path(sys.argv[1]).read_bytes()
budget = int(sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    dataset_from_idx({"bomb-images-idx3-ubyte.gz": data, "bomb-labels-idx1-ubyte": b"\0\0\x08\x01\0\0\0\x01\0"},
                     max_bytes=budget)
    msg = None
except Exception as exc:
    msg = f"{type(exc).__name__}: {exc}"
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"message": msg, "growth_mb": (after - before) / 1024}))
"""


def _measure(tmp_path, blob: bytes, budget: int) -> dict:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[3]
    f = tmp_path / "bomb.gz"
    f.write_bytes(blob)
    proc = subprocess.run([sys.executable, "-c", _MEASURE, str(f), str(budget)], capture_output=True, text=True,
                          cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def one_gb_bomb():
    """About 1 MB of gzip that inflates to a 1.3-million-sample (1.02 GB) IDX file."""
    shape = (1_300_000, 28, 28)
    blob = gzip_bomb(shape, 1_300_000 * 784)
    assert len(blob) < 1.1e6
    return blob


def test_gzip_bomb_refused_without_inflating(tmp_path, one_gb_bomb):
    # 256 MB: what a served session may upload under the default 1024 MB budget (UPLOAD_SHARE)
    r = _measure(tmp_path, one_gb_bomb, 256_000_000)
    assert r["message"] and "DataError" in r["message"] and "limit" in r["message"], r
    assert "1,019 MB" in r["message"] and "256 MB" in r["message"], r
    assert r["growth_mb"] < 200, r


def test_header_declaring_2_1_gb_refused_before_allocation(tmp_path):
    blob = gzip_bomb((2_800_000, 28, 28), 2 * 1024**2)   # declares 2.2 GB (2.04 GiB), holds 2 MB
    r = _measure(tmp_path, blob, ds.IDX_MAX_BYTES)
    assert r["message"] and "DataError" in r["message"] and "2,195 MB" in r["message"], r
    assert r["growth_mb"] < 200, r


def test_gzip_bomb_behind_a_small_header_stops_at_the_declared_size(tmp_path, one_gb_bomb):
    # header says 10 images; the stream would inflate to 1 GB: reading stops one byte past the declared size
    blob = gzip_bomb((10, 28, 28), 1_000_000_000)
    r = _measure(tmp_path, blob, 256_000_000)
    assert r["message"] and "beyond the shape" in r["message"], r
    assert r["growth_mb"] < 200, r


def test_zero_dimension_beside_huge_ones_is_a_data_error():
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 0, 3036988439, 3037012561)
    with pytest.raises(DataError, match="limit"):
        ds.read_idx(header)
    with pytest.raises(DataError, match="limit"):
        ds.read_idx(bytes([0, 0, 8, 2]) + struct.pack(">2I", 0, 2**32 - 1), max_bytes=1 << 20)
    assert ds.read_idx(bytes([0, 0, 8, 3]) + struct.pack(">3I", 0, 28, 28)).shape == (0, 28, 28)


def test_upload_budget_counts_all_files_together():
    from spikewb.workbench.sessions.session import dataset_from_idx
    x = idx_bytes(np.zeros((100, 10, 10), np.uint8))
    y = idx_bytes(np.arange(100, dtype=np.uint8) % 2)
    assert len(dataset_from_idx({"a-images": x, "a-labels": y}, max_bytes=10_100).y_train) == 80
    with pytest.raises(DataError, match="limit"):
        dataset_from_idx({"a-images": x, "a-labels": y}, max_bytes=10_050)
    with pytest.raises(DataError, match="empty"):
        dataset_from_idx({"a-images": b"", "a-labels": y})


def test_messages_name_files_by_base_name(tmp_path):
    p = tmp_path / "sub" / "x-images-idx3-ubyte"
    p.parent.mkdir()
    p.write_bytes(b"\0\0\x08\x03\0\0")
    with pytest.raises(DataError) as err:
        ds.read_idx(p)
    assert str(tmp_path) not in str(err.value) and "x-images-idx3-ubyte" in str(err.value)
