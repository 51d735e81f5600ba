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
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .config import CHECKPOINT_FORMAT
from .errors import CheckpointError


def save_checkpoint(path, meta: dict[str, Any], weights: list[np.ndarray],
                    state: dict[str, np.ndarray] | None = None) -> Path:
    """Write a checkpoint atomically; returns the final path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "format": CHECKPOINT_FORMAT, "weight_shapes": [list(w.shape) for w in weights]}
    arrays = {f"w{l}": np.ascontiguousarray(w) for l, w in enumerate(weights)}
    for k, v in (state or {}).items():
        arrays[f"state_{k}"] = np.ascontiguousarray(v)
    arrays["meta"] = np.array(json.dumps(meta))
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path) -> tuple[dict[str, Any], list[np.ndarray], dict[str, np.ndarray]]:
    """Read ``(meta, weights, state)``; raises :class:`CheckpointError` on any problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            files = set(npz.files)
            if "meta" not in files:
                raise CheckpointError(f"{path}: not a Spike Workbench checkpoint (no metadata)")
            meta = json.loads(str(npz["meta"]))
            n_w = sum(1 for f in files if f.startswith("w") and f[1:].isdigit())
            weights = [npz[f"w{l}"] for l in range(n_w)]
            state = {f[6:]: npz[f] for f in files if f.startswith("state_")}
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable or corrupt checkpoint ({exc})") from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {meta.get('format')!r} is not supported "
                              f"(this version reads format {CHECKPOINT_FORMAT})")
    sizes = meta.get("sizes")
    shapes = meta.get("weight_shapes")
    if shapes is None and sizes:  # dense networks: one (pre, post) matrix between layers
        shapes = [[a, b] for a, b in zip(sizes[:-1], sizes[1:])]
    if not shapes or len(weights) != len(shapes) or any(
            list(w.shape) != list(s) for w, s in zip(weights, shapes)):
        raise CheckpointError(f"{path}: weight shapes {[w.shape for w in weights]} do not match "
                              f"the recorded shapes {shapes} (layer sizes {sizes})")
    for l, w in enumerate(weights):
        if not np.issubdtype(w.dtype, np.floating) or not np.all(np.isfinite(w)):
            raise CheckpointError(f"{path}: weight layer {l + 1} is not finite floating point")
    return meta, weights, state
