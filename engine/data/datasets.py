"""Datasets: IDX files, the embedded default data, and download into a cache.

Names accepted by :func:`load_dataset`:

``mnist-5k`` (default)
    5,000 real MNIST digits shipped in ``assets/data`` (500 per class),
    split by a fixed seed into 4,000 train / 1,000 test.
``fashion-5k``
    5,000 Fashion-MNIST images (500 per class, from the official training
    set) shipped in ``assets/data``, split 4,000 / 1,000 the same way.
``mnist``, ``fashion-mnist``
    The full official sets (60,000 / 10,000), read from a folder of that name
    inside any folder listed in ``$SPIKEWB_DATA`` (``os.pathsep``-separated, for
    sets already on disk), else from the cache directory (``$SPIKEWB_CACHE`` or
    ``~/.cache/spikewb``), downloaded there on first use when a network is
    reachable (MD5-checked), with a clear error when not.
a directory
    Holding ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
    ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]`` (an official
    split), or a single ``*images-idx3*`` / ``*labels-idx1*`` pair (split 80/20
    with ``split_seed``).

Images are kept as ``uint8`` arrays of shape ``(n, n_features)``; rules scale
them to [0, 1] per sample.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import math
import os
import struct
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spikewb import package_dir

from spikewb.engine.config import IDX_MAX_BYTES
from spikewb.engine.errors import DataError

log = logging.getLogger(__name__)

ASSETS = Path(os.environ.get("SPIKEWB_ASSETS") or package_dir("assets"))

_IDX_TYPES = {
    0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}

#: Official files and MD5 checksums of the gzip files (as published with the sets).
OFFICIAL = {
    "mnist": {
        "base": "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "files": {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    },
    "fashion-mnist": {
        "base": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "files": {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    },
}

EMBEDDED = {
    "mnist-5k": ASSETS / "data" / "mnist-5k",
    "fashion-5k": ASSETS / "data" / "fashion-5k",
}

CLASS_NAMES = {
    "fashion": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "digits": tuple(str(i) for i in range(10)),
}


@dataclass
class Dataset:
    """A classification dataset with an explicit train / test split."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, ...] = (28, 28)
    class_names: tuple[str, ...] = field(default_factory=lambda: CLASS_NAMES["digits"])

    def __post_init__(self):
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if x.ndim != 2:
                raise DataError(f"{self.name}: {split} images must be 2-D (n, features), got shape {x.shape}")
            if len(x) != len(y):
                raise DataError(f"{self.name}: {split} has {len(x)} images but {len(y)} labels")
        if self.x_train.shape[1] != self.x_test.shape[1]:
            raise DataError(f"{self.name}: train and test images differ in size "
                            f"({self.x_train.shape[1]} vs {self.x_test.shape[1]} features)")
        if len(self.y_train) and (self.y_train.min() < 0 or self.y_train.max() >= self.n_classes):
            raise DataError(f"{self.name}: labels must lie in 0..{self.n_classes - 1}")

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> "Dataset":
        """The first ``n_train`` / ``n_test`` samples (``None`` keeps all)."""
        return Dataset(self.name, self.x_train[:n_train], self.y_train[:n_train],
                       self.x_test[:n_test], self.y_test[:n_test], self.image_shape, self.class_names)

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
                f"features={self.n_features}, classes={self.n_classes})")


# --------------------------------------------------------------------------- IDX

#: Bytes read (after decompression) per chunk: memory grows only with data that is really there.
READ_CHUNK = 1 << 20


def _open_idx(source, name: str | None = None) -> tuple[io.BufferedIOBase, str]:
    """Open a path or bytes as a binary stream, transparently un-gzipping.

    Messages name the file ``name`` (default: its base name for a path,
    ``<uploaded data>`` for bytes), never by the server's absolute path.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw: io.BufferedIOBase = io.BytesIO(source)
        name = name or "<uploaded data>"
    else:
        path = Path(source)
        name = name or path.name
        if not path.is_file():
            raise DataError(f"IDX file not found: {name}")
        raw = open(path, "rb")
    head = raw.read(2)
    raw.seek(0)
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw), name
    return raw, name


def _size(n: int) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 10**6 else f"{n:,} bytes"


def idx_limit_message(name: str, shape, n_bytes: int, max_bytes: int) -> str:
    what = _size(n_bytes) if n_bytes else "no data, but dimensions that alone exceed it"
    return f"{name}: IDX header claims shape {tuple(shape)} ({what}), more than the {_size(max_bytes)} limit"


def read_idx(source, max_bytes: int = IDX_MAX_BYTES, name: str | None = None) -> np.ndarray:
    """Read an IDX array (MNIST format) from a path or bytes, gzip or plain.

    The header is validated and the payload size checked against
    ``max_bytes`` **before** anything is allocated, so a header that claims a
    huge array is refused cheaply.  Sizes are computed with Python integers:
    each dimension and the product of the non-zero dimensions must fit the
    limit (a zero dimension next to huge ones is refused, not passed to NumPy).
    The payload is read (and a gzip file inflated) in chunks of
    :data:`READ_CHUNK` bytes into the one array, so a file shorter than its
    header claims costs only the bytes it has, and inflating stops at the
    declared size plus one byte (a gzip bomb is cut off there).

    Raises
    ------
    DataError
        Missing file, wrong magic number, unknown type code, a payload larger
        than ``max_bytes``, or a truncated / over-long file.
    """
    stream, name = _open_idx(source, name)
    try:
        try:
            magic = stream.read(4)
        except (OSError, EOFError) as exc:
            raise DataError(f"{name}: not a readable IDX file ({exc})") from None
        if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
            raise DataError(f"{name}: not an IDX file (bad magic number {magic.hex() or 'empty'}; "
                            "expected 0x0000TTNN)")
        code, ndim = magic[2], magic[3]
        if code not in _IDX_TYPES:
            raise DataError(f"{name}: unknown IDX type code 0x{code:02x}")
        if not 1 <= ndim <= 4:
            raise DataError(f"{name}: IDX header declares {ndim} dimensions; expected 1 to 4")
        try:
            dims_raw = stream.read(4 * ndim)
        except (OSError, EOFError) as exc:
            raise DataError(f"{name}: corrupt data ({exc})") from None
        if len(dims_raw) < 4 * ndim:
            raise DataError(f"{name}: truncated IDX header")
        shape = tuple(int(d) for d in struct.unpack(f">{ndim}I", dims_raw))
        dtype = _IDX_TYPES[code]
        n_bytes = math.prod(shape) * dtype.itemsize
        # as if every zero dimension were 1: no dimension (or product) beyond the limit at all
        span = math.prod(max(d, 1) for d in shape) * dtype.itemsize
        if n_bytes > max_bytes or span > max_bytes:
            raise DataError(idx_limit_message(name, shape, n_bytes if n_bytes else 0, max_bytes))
        out = np.empty(math.prod(shape), dtype=dtype)
        buf = memoryview(out.view(np.uint8).reshape(-1))
        got = 0
        try:
            while got < n_bytes:
                chunk = stream.read(min(READ_CHUNK, n_bytes - got))
                if not chunk:
                    break
                buf[got:got + len(chunk)] = chunk
                got += len(chunk)
            extra = stream.read(1)
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise DataError(f"{name}: corrupt data ({exc})") from None
        if got < n_bytes:
            raise DataError(f"{name}: truncated: header declares shape {shape} ({n_bytes} bytes) "
                            f"but only {got} bytes follow")
        if extra:
            raise DataError(f"{name}: has data beyond the shape {shape} its header declares")
    finally:
        stream.close()
    out = out.reshape(shape)
    if dtype.byteorder not in ("=", "|") and dtype.itemsize > 1:
        out = out.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return out.view(dtype.newbyteorder("="))


def write_idx(path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip if the name ends in ``.gz``), atomically."""
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_TYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DataError(f"cannot write dtype {array.dtype} as IDX")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body = header + array.astype(_IDX_TYPES[code]).tobytes()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(gzip.compress(body, mtime=0) if path.suffix == ".gz" else body)
    os.replace(tmp, path)


def images_and_labels(images: np.ndarray, labels: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate an (images, labels) pair and flatten images to (n, features) uint8."""
    if images.ndim < 2:
        raise DataError(f"{name}: images must have at least 2 dimensions, got shape {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{name}: labels must be 1-D, got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{name}: {len(images)} images but {len(labels)} labels")
    if images.dtype != np.uint8:
        raise DataError(f"{name}: images must be unsigned bytes (IDX type 0x08), got {images.dtype}")
    return images.reshape(len(images), -1), labels.astype(np.int64)


# ----------------------------------------------------------------------- loaders

def _find(directory: Path, *patterns: str) -> Path | None:
    for pattern in patterns:
        hits = sorted(directory.glob(pattern))
        if hits:
            return hits[0]
    return None


def _split(x, y, n_test: int | float, seed: int):
    n = len(y)
    n_test = int(round(n * n_test)) if isinstance(n_test, float) else int(n_test)
    if not 0 < n_test < n:
        raise DataError(f"cannot split {n} samples into a test set of {n_test}")
    order = np.random.default_rng(seed).permutation(n)
    te, tr = order[:n_test], order[n_test:]
    return x[tr], y[tr], x[te], y[te]


def load_idx_dir(directory, name: str | None = None, split_seed: int = 0,
                 test_fraction: float = 0.2) -> Dataset:
    """Load a dataset from a directory of IDX files (see module docstring)."""
    directory = Path(directory)
    name = name or directory.name
    if not directory.is_dir():
        raise DataError(f"dataset directory not found: {directory}")
    tr_x = _find(directory, "train-images*idx3*", "*train*images*idx3*")
    tr_y = _find(directory, "train-labels*idx1*", "*train*labels*idx1*")
    te_x = _find(directory, "t10k-images*idx3*", "*test*images*idx3*")
    te_y = _find(directory, "t10k-labels*idx1*", "*test*labels*idx1*")
    image_shape: tuple[int, ...]
    if tr_x and tr_y and te_x and te_y:
        xi, yi = read_idx(tr_x), read_idx(tr_y)
        image_shape = xi.shape[1:]
        x_train, y_train = images_and_labels(xi, yi, name + " train")
        x_test, y_test = images_and_labels(read_idx(te_x), read_idx(te_y), name + " test")
    else:
        px = _find(directory, "*images*idx3*")
        py = _find(directory, "*labels*idx1*")
        if not (px and py):
            raise DataError(
                f"{directory}: no IDX files found. Expected train-/t10k- images and labels "
                "(train-images-idx3-ubyte[.gz], ...) or one *images-idx3* / *labels-idx1* pair.")
        xi = read_idx(px)
        image_shape = xi.shape[1:]
        x, y = images_and_labels(xi, read_idx(py), name)
        x_train, y_train, x_test, y_test = _split(x, y, test_fraction, split_seed)
    n_classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    classes = CLASS_NAMES["fashion"] if "fashion" in name.lower() and n_classes == 10 else \
        tuple(str(i) for i in range(n_classes))
    return Dataset(name, x_train, y_train, x_test, y_test, tuple(image_shape), classes)


def cache_dir() -> Path:
    """Where downloaded datasets live: ``$SPIKEWB_CACHE`` or ``~/.cache/spikewb``."""
    base = os.environ.get("SPIKEWB_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "spikewb"
    return Path(base)


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(name: str, directory: Path | None = None, timeout: float = 30.0) -> Path:
    """Download an official dataset into the cache (skipping verified files).

    Raises
    ------
    DataError
        When the network is unreachable or a checksum does not match; the
        message says how to provide the files by hand.
    """
    if name not in OFFICIAL:
        raise DataError(f"no download known for {name!r}; choose from {sorted(OFFICIAL)}")
    spec = OFFICIAL[name]
    directory = Path(directory or cache_dir() / name)
    directory.mkdir(parents=True, exist_ok=True)
    for fname, md5 in spec["files"].items():
        target = directory / fname
        if target.exists() and _md5(target) == md5:
            continue
        url = spec["base"] + fname
        tmp = target.with_name(fname + ".part")
        try:
            log.info("downloading %s", url)
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as fh:
                while block := resp.read(1 << 20):
                    fh.write(block)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            tmp.unlink(missing_ok=True)
            raise DataError(
                f"could not download {name} ({fname}): {exc}. No network? Download the four IDX "
                f"files by hand and pass their directory (e.g. --dataset /path/to/{name}), "
                f"or put them in {directory}.") from None
        if _md5(tmp) != md5:
            tmp.unlink(missing_ok=True)
            raise DataError(f"checksum mismatch for downloaded {fname}; the file was discarded")
        os.replace(tmp, target)
    return directory


def data_path() -> list[Path]:
    """Folders listed in ``$SPIKEWB_DATA`` (searched for official sets before the cache)."""
    return [Path(p).expanduser() for p in os.environ.get("SPIKEWB_DATA", "").split(os.pathsep) if p]


def _named(ds: "Dataset") -> "Dataset":
    if ds.name.startswith("fashion"):
        ds.class_names = CLASS_NAMES["fashion"]
    return ds


def available() -> list[str]:
    """Names :func:`load_dataset` understands without a path."""
    return [*EMBEDDED, *OFFICIAL]


def load_dataset(spec: str = "mnist-5k", *, split_seed: int = 0, allow_download: bool = True) -> Dataset:
    """Load a dataset by name or directory path (see the module docstring)."""
    spec = str(spec)
    if spec in EMBEDDED:
        return _named(load_idx_dir(EMBEDDED[spec], name=spec, split_seed=split_seed))
    if spec in OFFICIAL:
        for base in data_path():
            if all((base / spec / f).is_file() for f in OFFICIAL[spec]["files"]):
                return _named(load_idx_dir(base / spec, name=spec, split_seed=split_seed))
        directory = cache_dir() / spec
        have = directory.is_dir() and all((directory / f).exists() for f in OFFICIAL[spec]["files"])
        if not have:
            if not allow_download:
                raise DataError(f"{spec} is not in the cache ({directory}) and downloads are off; "
                                "pass a directory of IDX files instead")
            download(spec, directory)
        return _named(load_idx_dir(directory, name=spec, split_seed=split_seed))
    path = Path(spec).expanduser()
    if path.is_dir():
        return load_idx_dir(path, split_seed=split_seed)
    raise DataError(f"unknown dataset {spec!r}: not a directory and not one of {available()}")


def sample_intensity(x_row: np.ndarray) -> np.ndarray:
    """A uint8 image row as float32 intensities in [0, 1]."""
    return x_row.astype(np.float32) / np.float32(255.0)
