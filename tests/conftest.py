"""Shared fixtures: small real datasets and rule factories."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".numba_cache"))


def pytest_addoption(parser):
    parser.addoption("--run-soak", action="store_true", default=False,
                     help="run the soak tests (an hour by default, SPIKEWB_SOAK_SECONDS; `make soak`)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-soak"):
        return
    skip = pytest.mark.skip(reason="soak test: run with --run-soak (make soak)")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def mnist5k():
    from spikewb.engine.data.datasets import load_dataset
    return load_dataset("mnist-5k")


@pytest.fixture(scope="session")
def tiny(mnist5k):
    """200 train / 100 test real digits: enough for shape and determinism checks."""
    return mnist5k.subset(200, 100)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def until(cond, timeout: float = 30.0, interval: float = 0.02) -> None:
    """Poll ``cond()`` until it is true; fail after ``timeout`` seconds (background-worker tests)."""
    import time

    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout:.0f} s")
        time.sleep(interval)


@pytest.fixture
def closing():
    """``keep(obj)`` returns ``obj`` and closes it at the end of the test (pages with workers)."""
    made = []

    def keep(obj):
        made.append(obj)
        return obj

    yield keep
    for obj in made:
        obj.close()
