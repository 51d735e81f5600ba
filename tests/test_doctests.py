"""The examples in the docstrings run (``>>>`` lines of every engine and server module).

Modules are imported by their package names (``spikewb.engine...``), as users
import them, and checked with :func:`doctest.testmod`; a module whose examples
fail is named with the failing example's output.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import spikewb

PACKAGES = ("spikewb.engine", "spikewb.workbench.server")
SINGLE = ("spikewb", "spikewb.workbench.pagestate", "spikewb.workbench.urlstate")


def _modules() -> list[str]:
    names = list(SINGLE)
    for pkg_name in PACKAGES:
        pkg = importlib.import_module(pkg_name)
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg_name + ".")]
    return sorted(n for n in names if ">>>" in (importlib.util.find_spec(n).loader.get_source(n) or ""))


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name}: no example found"
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed (output above)"
