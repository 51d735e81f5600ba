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

The public API is importable from the top level (loaded on first use, so
``import spikewb`` itself stays light and imports no UI library)::

    >>> import spikewb
    >>> data = spikewb.load_dataset("mnist-5k").subset(n_train=20, n_test=10)
    >>> trainer = spikewb.Trainer(spikewb.make_rule("ssnn"), data)
    >>> trainer.arch.describe()          # the rule's paper network, sized to the data
    '784-1000-10'
    >>> frame = trainer.step()
    >>> frame.step, frame.layer_sizes, frame.signal_name
    (0, (784, 1000, 10), 'gradient spikes (+ minus -)')

Engine names: :func:`load_dataset`, :class:`Dataset`, the encodings
(:func:`rate_deterministic`, :func:`rate_bernoulli`, :func:`time_to_first_spike`),
:class:`Architecture`, :class:`RunSetup` (rule, hyperparameters, layers, dataset and seed of a run,
and their text form), :func:`make_rule`, :func:`rule_class`, :func:`rule_names`,
:class:`LearningRule`, :class:`Trainer`, :class:`Frame`, :class:`Record`,
:class:`Recording`, :data:`REPRODUCTIONS`.  Page components (these import Panel):
:class:`TrainerWorkbench`, :class:`CompareApp`, :class:`ResultsPage`,
:class:`DynamicsView`; :func:`export_html` writes a recording as one offline HTML
file (imports Bokeh).
"""

from __future__ import annotations

import importlib as _importlib
from pathlib import Path as _Path

#: Public name -> module that defines it (imported on first access).
_PUBLIC = {
    "load_dataset": "spikewb.engine.data.datasets",
    "Dataset": "spikewb.engine.data.datasets",
    "rate_deterministic": "spikewb.engine.data.encoding",
    "rate_bernoulli": "spikewb.engine.data.encoding",
    "time_to_first_spike": "spikewb.engine.data.encoding",
    "Architecture": "spikewb.engine.network",
    "RunSetup": "spikewb.engine.training.setup",
    "make_rule": "spikewb.engine.rules",
    "rule_class": "spikewb.engine.rules",
    "rule_names": "spikewb.engine.rules",
    "LearningRule": "spikewb.engine.rules",
    "Trainer": "spikewb.engine.training.trainer",
    "Frame": "spikewb.engine.frame",
    "Record": "spikewb.engine.frame",
    "REPRODUCTIONS": "spikewb.engine.training.reproductions",
    "Recording": "spikewb.engine.recording",
    "TrainerWorkbench": "spikewb.workbench.pages.trainer",
    "CompareApp": "spikewb.workbench.pages.compare",
    "ResultsPage": "spikewb.workbench.pages.results",
    "DynamicsView": "spikewb.workbench.pages.dynamics",
    "export_html": "spikewb.workbench.export",
}

__all__ = ["__version__", "package_dir", *_PUBLIC]

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


def __getattr__(name: str):
    """Load a public name from its module on first access (PEP 562)."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'spikewb' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
