"""Checkpoints: weights + full configuration + progress, written atomically.

Format: a NumPy ``.npz`` archive (never pickled; loaded with
``allow_pickle=False``) holding

* ``meta`` -- a JSON document (format version, rule name and hyperparameters,
  architecture, dataset name, seed, epoch, position in the epoch, metrics
  history, RNG state, sample order);
* ``w0``, ``w1``, ... -- the weight layers;
* ``state_<name>`` -- any extra model state arrays (optimiser moments ...).

Writing goes to a temporary file in the same directory, is flushed and
fsync'ed, then renamed over the target, so an interrupted write never leaves
a half-written checkpoint in place of a good one.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from spikewb.engine.config import CHECKPOINT_FORMAT, CHECKPOINT_MAX_BYTES
from spikewb.engine.errors import CheckpointError


def save_checkpoint(path, meta: dict[str, Any], weights: list[np.ndarray],
                    state: dict[str, np.ndarray] | None = None) -> Path:
    """Write a checkpoint atomically; returns the final path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "format": CHECKPOINT_FORMAT, "weight_shapes": [list(w.shape) for w in weights]}
    arrays = {f"w{l}": np.ascontiguousarray(w) for l, w in enumerate(weights)}
    for k, v in (state or {}).items():
        arrays[f"state_{k}"] = np.ascontiguousarray(v)
    return write_npz(path, arrays, meta)


def write_npz(path, arrays: dict[str, np.ndarray], meta: dict[str, Any], compress: bool = False) -> Path:
    """Write ``arrays`` plus ``meta`` (as JSON text) to one ``.npz`` atomically (temporary
    file in the same folder, fsync, rename); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {**arrays, "meta": np.array(json.dumps(meta))}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            (np.savez_compressed if compress else np.savez)(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


#: Names an archive member may have: the metadata, weight layers, state arrays.
_MEMBER = re.compile(r"^(meta|w[0-9]{1,4}|state_[A-Za-z0-9_]{1,64})\.npy$")
#: Largest metadata document (characters); a real one is a few kB.
MAX_META_CHARS = 4 * 1024**2


def _where(path: Path, name: str | None) -> str:
    return name if name is not None else path.name


def _member_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, error: type[Exception],
                   kind: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a member's ``.npy`` header (nothing else of it is read)."""
    fmt = np.lib.format
    key = info.filename[:-4][:80]
    with zf.open(info) as fh:
        try:
            version = fmt.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(fh)
            elif version in ((2, 0), (3, 0)):
                shape, _, dtype = fmt.read_array_header_2_0(fh)
            else:
                raise ValueError(f"npy version {version}")
        except (ValueError, OSError, EOFError, SyntaxError, TypeError, RecursionError, MemoryError,
                tokenize.TokenError, zlib.error, zipfile.BadZipFile) as exc:  # numpy parses the header as Python
            raise error(f"{where}: array {key!r} has an unreadable header ({type(exc).__name__})") from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise error(f"{where}: array {key!r} has dtype {dtype}, which a {kind} never holds "
                    "(plain numbers and the metadata text only)")
    if any(not isinstance(n, int) or n < 0 for n in shape):
        raise error(f"{where}: array {key!r} declares an invalid shape {shape}")
    return tuple(shape), dtype


def read_npz(path, *, member: re.Pattern, max_members: int, max_bytes: int, error: type[Exception],
             kind: str, members_hint: str, made_by: str, name: str | None = None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` archive from outside, every limit checked before anything is read.

    Shared by checkpoints (:func:`read_arrays`) and recordings
    (:mod:`spikewb.engine.recording`).  Member names must match ``member``
    (group 1 is the array's key), at most ``max_members`` of them, each once,
    one called ``meta``; each member's ``.npy`` header is read first and the
    declared sizes (shape x item size, Python integers, no overflow) must add
    up to at most ``max_bytes`` before any array is allocated.  Object and
    structured arrays are refused (``allow_pickle=False``).  Every problem is
    raised as ``error`` with a message naming the file as ``name`` (default:
    its base name, never the server's absolute path); ``kind`` ("checkpoint"),
    ``members_hint`` (which names are allowed) and ``made_by`` (what writes such
    files) make the messages.
    """
    path = Path(path)
    where = _where(path, name)
    if not path.is_file():
        raise error(f"{kind} not found: {where}")
    if path.stat().st_size == 0:
        raise error(f"{where}: the file is empty (0 bytes); a {kind} is a .npz archive written by {made_by}")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > max_members:
                raise error(f"{where}: {len(infos)} archive members; not a Spike Workbench {kind}")
            seen: set[str] = set()
            plan = []
            total = 0
            for info in infos:
                m = member.match(info.filename)
                if m is None:
                    raise error(f"{where}: unknown array {info.filename[:80]!r} in the archive; {members_hint}")
                key = m.group(1)
                if key in seen:
                    raise error(f"{where}: array {key!r} appears twice in the archive")
                seen.add(key)
                shape, dtype = _member_header(zf, info, where, error, kind)
                total += math.prod(shape) * dtype.itemsize
                if total > max_bytes:
                    raise error(f"{where}: the arrays declare {total / 1e6:,.0f} MB or more (array {key!r}: "
                                f"shape {shape}, {dtype}), more than the {max_bytes / 1e6:,.0f} MB read from "
                                f"one {kind}")
                plan.append((key, info))
            if "meta" not in seen:
                raise error(f"{where}: not a Spike Workbench {kind} (no metadata)")
            arrays = {}
            for key, info in plan:
                with zf.open(info) as fh:
                    arrays[key] = np.lib.format.read_array(fh, allow_pickle=False)
    except error:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, KeyError,
            NotImplementedError, RuntimeError, MemoryError, zlib.error, tokenize.TokenError) as exc:
        raise error(f"{where}: unreadable or corrupt {kind} ({type(exc).__name__}: {str(exc)[:200]})") from None
    return arrays


def pop_meta(arrays: dict[str, np.ndarray], where: str, error: type[Exception], kind: str,
             fmt: int, max_chars: int = MAX_META_CHARS) -> dict[str, Any]:
    """Take the ``meta`` text out of ``arrays`` (from :func:`read_npz`) and parse it: a JSON
    object of format ``fmt``, at most ``max_chars`` characters; else ``error``."""
    raw = arrays.pop("meta")
    if raw.shape != () or raw.dtype.kind != "U" or raw.dtype.itemsize > 4 * max_chars:
        raise error(f"{where}: the metadata is not a text document (shape {raw.shape}, {raw.dtype})")
    try:
        meta = json.loads(str(raw))
    except (ValueError, RecursionError) as exc:
        raise error(f"{where}: unreadable metadata ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(meta, dict):
        raise error(f"{where}: the metadata is not a JSON object")
    if meta.get("format") != fmt or isinstance(meta.get("format"), bool):
        raise error(f"{where}: {kind} format {str(meta.get('format'))[:40]!r} is not supported "
                    f"(this version reads format {fmt})")
    return meta


def read_arrays(path, max_bytes: int = CHECKPOINT_MAX_BYTES, name: str | None = None) -> dict[str, np.ndarray]:
    """The arrays of a checkpoint archive, with every limit checked before it is read (:func:`read_npz`).

    Member names must be ``meta``, ``w<l>`` or ``state_<name>``.
    """
    return read_npz(path, member=_MEMBER, max_members=4096, max_bytes=max_bytes, error=CheckpointError,
                    kind="checkpoint", members_hint="a checkpoint holds only 'meta', 'w<l>' and "
                    "'state_<name>' arrays", made_by="this workbench or `spikewb train`", name=name)


def load_checkpoint(path, max_bytes: int = CHECKPOINT_MAX_BYTES,
                    name: str | None = None) -> tuple[dict[str, Any], list[np.ndarray], dict[str, np.ndarray]]:
    """Read ``(meta, weights, state)``; raises :class:`CheckpointError` on any problem.

    Checks the archive (:func:`read_arrays`: names, declared sizes, no
    objects), the metadata (a JSON object of the supported format) and the
    weights (consecutive ``w0..``, finite floating point, the recorded
    shapes).  Whether the arrays fit the rule's model is checked by
    :meth:`spikewb.engine.training.trainer.Trainer.load_state`.
    """
    path = Path(path)
    where = _where(path, name)
    arrays = read_arrays(path, max_bytes, name)
    meta = pop_meta(arrays, where, CheckpointError, "checkpoint", CHECKPOINT_FORMAT)
    w_keys = sorted((k for k in arrays if k.startswith("w")), key=lambda k: int(k[1:]))
    if w_keys != [f"w{l}" for l in range(len(w_keys))]:
        raise CheckpointError(f"{where}: weight arrays {w_keys} are not numbered w0, w1, ... without gaps")
    weights = [arrays[k] for k in w_keys]
    state = {k[6:]: v for k, v in arrays.items() if k.startswith("state_")}
    sizes = meta.get("sizes")
    shapes = meta.get("weight_shapes")
    if shapes is None and isinstance(sizes, list) and sizes:  # dense networks: one (pre, post) matrix between layers
        shapes = [[a, b] for a, b in zip(sizes[:-1], sizes[1:])]
    if not isinstance(shapes, list) or not shapes or len(weights) != len(shapes) or any(
            not isinstance(s, list) or list(w.shape) != list(s) for w, s in zip(weights, shapes)):
        raise CheckpointError(f"{where}: weight shapes {[w.shape for w in weights]} do not match "
                              f"the recorded shapes {str(shapes)[:200]} (layer sizes {str(sizes)[:200]})")
    for l, w in enumerate(weights):
        if w.dtype.kind != "f" or w.ndim != 2 or not np.all(np.isfinite(w)):
            raise CheckpointError(f"{where}: weight layer {l + 1} is not finite floating point "
                                  f"(a matrix; got shape {w.shape}, {w.dtype})")
    return meta, weights, state
