"""Fuzzing the input parsers: malformed data gives a clear engine error, never a crash.

Each test draws many cases with Hypothesis (over 400 generated inputs in total)
and requires that the parser either returns a well-formed result or raises the
engine's own error type (DataError / CheckpointError / ConfigError), whose
message names the problem.
"""

import io
import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from spikewb.engine.training.checkpoint import load_checkpoint
from spikewb.engine.data.datasets import read_idx
from spikewb.engine.errors import CheckpointError, ConfigError, DataError
from spikewb.engine.rules import make_rule

# derandomize: the same cases on every run, so CI never fails at random; cases found once are
# pinned with @example so a fixed bug stays tested
FAST = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(st.binary(max_size=600))
def test_random_bytes_as_idx(data):
    try:
        arr = read_idx(data, max_bytes=1 << 20)
    except DataError as exc:
        assert str(exc)
    else:
        assert arr.size * arr.itemsize <= 1 << 20


@FAST
@given(code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0x42]),
       dims=st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=5),
       body=st.integers(0, 300))
@example(code=0x08, dims=[0, 3036988439, 3037012561], body=0)   # zero next to huge: was NumPy's "array is too big"
@example(code=0x0E, dims=[2**32 - 1, 0], body=0)
@example(code=0x08, dims=[0], body=0)
@example(code=0x08, dims=[2, 2], body=4)
def test_structured_idx_headers(code, dims, body):
    header = bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    try:
        arr = read_idx(header + b"\x01" * body, max_bytes=1 << 16)
    except DataError as exc:
        assert any(w in str(exc) for w in ("truncated", "limit", "type code", "dimensions", "beyond", "magic"))
    else:
        assert list(arr.shape) == dims


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


meta_strategy = st.fixed_dictionaries({
    "format": st.sampled_from([1, 2, None, "1"]),
    "sizes": st.one_of(st.none(), st.lists(st.integers(-2, 6), max_size=4)),
})


@FAST
@given(meta=meta_strategy,
       shapes=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=3),
       fill=st.sampled_from([0.5, np.nan, np.inf]))
def test_malformed_checkpoints(tmp_path_factory, meta, shapes, fill):
    arrays = {f"w{i}": np.full(s, fill) for i, s in enumerate(shapes)}
    arrays["meta"] = np.array(json.dumps(meta))
    path = tmp_path_factory.mktemp("ck") / "c.npz"
    path.write_bytes(_npz(**arrays))
    try:
        m, weights, _ = load_checkpoint(path)
    except CheckpointError as exc:
        assert str(exc)
    else:
        assert m["format"] == 1 and all(np.isfinite(w).all() for w in weights)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(name=st.sampled_from(["lr", "v_th", "leak", "alpha_out", "alpha_hid", "dropout_in", "dropout_hid",
                             "n_steps", "margin"]),
       value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6),
                       st.text(max_size=5)))
def test_parameter_values(name, value):
    try:
        rule = make_rule("desire", **{name: value})
    except ConfigError as exc:
        assert name in str(exc)
    else:
        assert getattr(rule, name) == value
