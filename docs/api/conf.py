"""Sphinx configuration of the API reference (``make docs``; checked with -W by tests/test_api_docs.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))          # a checkout: spikewb resolves its subpackages from the repository
os.environ.setdefault("NUMBA_DISABLE_JIT", "0")

import spikewb  # noqa: E402

project = "Spike Workbench"
author = "The Spike Workbench developers"
copyright = "2026, " + author
release = version = spikewb.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.autosummary", "sphinx.ext.intersphinx", "sphinx.ext.viewcode",
              "numpydoc"]
autosummary_generate = True
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
autodoc_typehints = "none"           # numpydoc's Parameters sections carry the types
numpydoc_show_class_members = False  # autodoc lists members; numpydoc would list them twice
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()
intersphinx_mapping: dict = {}       # offline build: no inventories fetched
templates_path: list[str] = []
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list[str] = []
nitpicky = False
