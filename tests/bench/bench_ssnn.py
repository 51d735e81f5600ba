"""SSNN-BP training throughput vs the plain NumPy implementation, same samples.

Network: 784-1000-10 (the authors' HEAD / RPU v2 width), minibatch 50, RPU
(coincidence) update, authors' defaults otherwise, float32 weights.  Timing:
ms per training sample at T = 51 and T = 301, as the mean over whole
minibatches (so the per-batch update, plain SGD by default, is included) after one warm-up
batch.  The reference is ``tests/naive_ssnn.batch_update`` (NumPy: direct
convolution over the M lags, matrix products for currents and coincidences,
whole-train WTA relaxation) on the same input and target spike trains.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from spikewb.engine.data.datasets import load_dataset  # noqa: E402
from spikewb.engine.frame import RECORD_NONE  # noqa: E402
from spikewb.engine.network import Architecture  # noqa: E402
from spikewb.engine.rules import make_rule  # noqa: E402
from tests import naive_ssnn  # noqa: E402

BATCH = 50
PARAM_KEYS = ("tau_frac", "tau_grad_frac", "v_th", "v_th_grad", "threshold", "wta_iter", "w_inh", "error_gain",
              "backward_w", "backproj_scale", "update", "momentum", "lr", "wta")


def _spike_trains(X, Y, T, rng):
    xs = [(rng.random((T, X.shape[1]), dtype=np.float32) < x).astype(np.uint8) for x in X]
    ys = []
    for y in Y:
        yt = np.zeros((T, 10), np.uint8)
        yt[:, int(y)] = rng.random(T) < 0.5
        ys.append(yt)
    return xs, ys


def _time_case(T: int, n_batches: int, n_ref_batches: int, X, Y) -> dict:
    rule = make_rule("ssnn", n_steps=T, batch_size=BATCH)
    model = rule.build(Architecture(n_inputs=784, hidden=[1000], n_outputs=10), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    n = (n_batches + 1) * BATCH
    xs, ys = _spike_trains(X[:n], Y[:n], T, rng)
    masks = [model.state["mask0"], model.state["mask1"]]
    # warm-up batch (compilation is cached; this also fills caches)
    for k in range(BATCH):
        rule.step_spikes(model, xs[k], ys[k], int(Y[k]), RECORD_NONE)
    t0 = time.perf_counter()
    for k in range(BATCH, n):
        rule.step_spikes(model, xs[k], ys[k], int(Y[k]), RECORD_NONE)
    eng = (time.perf_counter() - t0) / (n - BATCH) * 1e3
    p = {k: rule.param.values()[k] for k in PARAM_KEYS}
    w = [w.copy() for w in model.weights]
    m = [model.state.get(f"mom{l}", np.zeros_like(w[l])).copy() for l in range(2)]   # none with plain SGD
    t0 = time.perf_counter()
    n_ref = 0
    for b in range(n_ref_batches):
        sl = slice(BATCH * (b + 1), BATCH * (b + 2))
        w, m, _ = naive_ssnn.batch_update(w, m, xs[sl], ys[sl], masks, p)
        n_ref += BATCH
    ref = (time.perf_counter() - t0) / n_ref * 1e3
    return dict(benchmark="ssnn", metric=f"ms per training sample, 784-1000-10, T={T}, minibatch {BATCH}",
                value=eng, unit="ms", reference="NumPy (tests/naive_ssnn.py)", reference_value=ref,
                ratio=ref / eng, target="faster than NumPy (ratio > 1)",
                notes=f"mean over {n - BATCH} samples (reference: {n_ref}), RPU update, normalised backward W2")


def run(quick: bool = False) -> list[dict]:
    data = load_dataset("mnist-5k")
    n_b = 1 if quick else 4
    X = data.x_train[: (n_b + 1) * BATCH].astype(np.float32) / np.float32(255)
    Y = data.y_train[: (n_b + 1) * BATCH]
    rows = [_time_case(51, n_b, 1, X, Y), _time_case(301, n_b, 1, X, Y)]
    rule = make_rule("ssnn")
    model = rule.build(Architecture(n_inputs=784, hidden=[1000], n_outputs=10), np.random.default_rng(0))
    rule.predict(model, X[:2])
    t0 = time.perf_counter()
    rule.predict(model, X[:100])
    rows.append(dict(benchmark="ssnn", metric="ms per inference sample, T=51", value=(time.perf_counter() - t0) * 10,
                     unit="ms", reference="", reference_value=float("nan"), ratio=float("nan"), target="",
                     notes="100 samples, look-ahead weights, no dropout"))
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
