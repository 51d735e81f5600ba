"""The served run folder: where pages may read sweep results and checkpoints from.

Pages never take a file path from a user as is.  A page argument such as
``?dir=sweep1`` or ``?checkpoint=sweep1/lr=0.001/checkpoint.npz`` is a path
*relative to the run root* (``$SPIKEWB_RUNS``, default ``runs/`` in the
server's working directory); :func:`resolve` refuses anything that would
leave the root (absolute paths, ``..``, symbolic links pointing outside).

This module imports no UI library.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> (root / "a").mkdir()
>>> resolve("a", root) == (root / "a").resolve()
True
>>> resolve("../etc", root)
Traceback (most recent call last):
...
spikewb.engine.errors.ConfigError: '../etc' is outside the run folder
"""

from __future__ import annotations

import os
from pathlib import Path

from spikewb.engine.errors import ConfigError

#: Environment variable naming the run root.
ENV = "SPIKEWB_RUNS"
#: How deep below the root sweep folders are looked for.
MAX_DEPTH = 3


def run_root() -> Path:
    """The configured run root (``$SPIKEWB_RUNS`` or ``./runs``), resolved."""
    path = Path(os.environ.get(ENV) or "runs").expanduser()
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symbolic link loop: nothing can be read under it anyway
        return path.absolute()


def _resolved(path: Path) -> Path:
    """``path.resolve()``; a symbolic link loop or an unreadable link is a ConfigError."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a link loop (Python 3.11/3.12)
        raise ConfigError(f"{path.name[:80]!r} is a symbolic link loop or cannot be read") from None


def resolve(rel: str, root: Path | None = None, *, kind: str = "path") -> Path:
    """``root / rel`` resolved, refusing anything outside ``root`` (raises ConfigError)."""
    root = _resolved(root or run_root())
    text = str(rel).strip()
    if "\x00" in text or len(text) > 500:
        raise ConfigError(f"{kind} {text[:40]!r} is not a valid relative path")
    if text in ("", "."):
        return root
    p = Path(text)
    if p.is_absolute() or p.drive:
        raise ConfigError(f"{text[:80]!r} is outside the run folder (give a path relative to it)")
    target = _resolved(root / p)
    if target != root and not target.is_relative_to(root):
        raise ConfigError(f"{text[:80]!r} is outside the run folder")
    return target


def relative(path: Path, root: Path | None = None) -> str:
    """``path`` relative to the root, with ``/`` separators ("." for the root)."""
    root = _resolved(root or run_root())
    rel = _resolved(Path(path)).relative_to(root).as_posix()
    return rel or "."


def is_sweep(directory: Path) -> bool:
    """A folder holding ``sweep.json`` or at least one run folder (``*/config.json``)."""
    if (directory / "sweep.json").is_file():
        return True
    try:
        return any((d / "config.json").is_file() for d in directory.iterdir() if d.is_dir())
    except OSError:
        return False


def find_sweeps(root: Path | None = None) -> list[str]:
    """Sweep folders under the root (relative, sorted; the root itself as ".")."""
    try:
        root = _resolved(root or run_root())
        if not root.is_dir():
            return []
    except (ConfigError, OSError):
        return []
    found = []
    seen = {root}
    stack = [(root, 0)]
    while stack:
        d, depth = stack.pop()
        try:
            if is_sweep(d):
                found.append(relative(d, root))
                continue  # a sweep's run folders are not sweeps
            if depth >= MAX_DEPTH:
                continue
            subs = sorted(x for x in d.iterdir() if x.is_dir() and not x.name.startswith("."))
        except (ConfigError, OSError, ValueError):
            continue
        for x in subs:
            try:
                real = _resolved(x)
            except ConfigError:
                continue
            # never follow a link out of the root, nor one back to a folder already walked
            if real.is_relative_to(root) and real not in seen:
                seen.add(real)
                stack.append((x, depth + 1))
    return sorted(found)


def checkpoint_path(rel: str, root: Path | None = None) -> Path:
    """A checkpoint file under the root (``.npz``, must exist; raises ConfigError)."""
    path = resolve(rel, root, kind="checkpoint")
    if path.suffix != ".npz" or not path.is_file():
        raise ConfigError(f"no checkpoint {str(rel)[:80]!r} in the run folder")
    return path
