"""Builders of hostile files shared by the upload tests (not a test module)."""

from tests.checkpoint_fuzz_child import huge_header as huge_npy  # noqa: F401
from tests.engine.data.test_datasets import gzip_bomb  # noqa: F401
