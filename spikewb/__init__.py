"""Spike Workbench: spiking networks trained with spike-based learning rules, watched live.

One import name for the whole distribution:

* :mod:`spikewb.engine` -- the numba simulation engine, learning rules and trainers
  (NumPy, numba and param only; never a UI library);
* :mod:`spikewb.workbench` -- the Panel pages, the server and the ``spikewb`` command;
* :mod:`spikewb.apps` -- the thin scripts ``spikewb serve`` (or ``panel serve``) serves;
* :mod:`spikewb.assets` -- embedded datasets, thumbnails, tutorial texts, CSS.

In the repository these are the top-level folders ``engine/``, ``workbench/``,
``apps/`` and ``assets/``; the build configuration (``pyproject.toml``) maps them
under ``spikewb`` in the wheel.  In a checkout this package's search path also
covers the repository root, so ``spikewb.engine`` is ``engine/`` there too,
with or without an editable install.
"""

from __future__ import annotations

from pathlib import Path as _Path

__version__ = "0.1.0"

_here = _Path(__file__).resolve().parent
if not (_here / "engine").is_dir() and (_here.parent / "engine" / "__init__.py").is_file():
    # A checkout: the subpackages are the repository's top-level folders.
    __path__.append(str(_here.parent))  # type: ignore[name-defined]  # noqa: F821


def package_dir(name: str) -> _Path:
    """The folder of subpackage ``spikewb.<name>`` (``"apps"``, ``"assets"``), wherever it lies.

    In an installed wheel that is ``site-packages/spikewb/<name>``; in a checkout,
    the repository's top-level folder ``<name>/``.
    """
    for base in __path__:  # type: ignore[name-defined]  # noqa: F821
        folder = _Path(base) / name
        if folder.is_dir():
            return folder
    raise FileNotFoundError(f"spikewb.{name} is not installed (searched {list(__path__)})")  # noqa: F821
