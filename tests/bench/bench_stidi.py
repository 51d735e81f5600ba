"""STiDi-BP: ms per sample for dense and convolutional networks vs a plain NumPy version.

Networks: dense 784-400-10 (real and binary weights), the default conv net
28x28 -> conv 5x5 x32 -> pool 2 -> dense 10 (real and binary weights) and the
two-layer conv net 28x28 -> conv 5x5 x16 -> pool 2 -> conv 5x5 x32 -> pool 2 ->
dense 10 (the default before issue 21), float32 weights, rule defaults.  Engine: ``STiDiBP.train_step`` (event-driven numba
kernels, ``engine/neurons/pwl.py``) and ``STiDiBP.predict``.  Reference:
``tests/naive_stidi.vector_step`` / ``vector_forward``, the same step written in
vectorised NumPy (per-position breakpoint sort, ``cumsum`` of slope changes and
potentials, ``argmax`` for the first crossing; no Python loop over neurons),
run on the same samples from the same starting weights.

Timing: wall clock per sample, the best of three equal chunks (the machine is
shared; the best chunk is the least disturbed), after a warm-up sample; CPU
time per sample is given in the notes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from spikewb.engine.data.datasets import load_dataset  # noqa: E402
from spikewb.engine.network import Architecture  # noqa: E402
from spikewb.engine.rules import make_rule  # noqa: E402
from tests import naive_stidi  # noqa: E402


def layer_spec(rule, model):
    """``naive_stidi.vector_step`` layer spec of a model built by the STiDi rule."""
    spec = []
    for layer in rule.layers(model):
        if layer.kind == "dense":
            spec.append(("dense", None))
        elif layer.kind == "conv":
            k = int(rule.conv_kernel)
            h, w = layer.shape[0] + k - 1, layer.shape[1] + k - 1
            spec.append(("conv", (h, w, layer.n_in // (h * w), k)))
        else:
            c = layer.shape[2]
            src = int(round(np.sqrt(layer.n_in / c)))
            spec.append(("pool", (src, src, c, int(rule.pool_size))))
    return spec


def _best_of_three(fn, items):
    """(best wall ms per item over 3 chunks, CPU ms per item over all)."""
    chunks = np.array_split(np.arange(len(items)), 3)
    best = np.inf
    c0 = time.process_time()
    for ch in chunks:
        t0 = time.perf_counter()
        for k in ch:
            fn(items[k])
        best = min(best, (time.perf_counter() - t0) / max(len(ch), 1))
    cpu = (time.process_time() - c0) / len(items)
    return best * 1e3, cpu * 1e3


def _case(name, params, X, Y, n_eng, n_ref):
    rule = make_rule("stidi", **params)
    model = rule.build(Architecture(n_inputs=784, hidden=[400], n_outputs=10), np.random.default_rng(0))
    spec = layer_spec(rule, model)
    p = {**rule.param.values(), "lr": rule.learning_rate(0)}
    w_ref = [np.asarray(w, np.float64).copy() for w in model.weights]
    rule.train_step(model, X[0], int(Y[0]))                           # warm-up (compiled and cached)
    naive_stidi.vector_step(spec, w_ref, X[0], int(Y[0]), p)
    idx = list(range(1, n_eng + 1))
    eng, eng_cpu = _best_of_three(lambda k: rule.train_step(model, X[k], int(Y[k])), idx)
    state = {"w": w_ref}

    def ref_step(k):
        state["w"], _ = naive_stidi.vector_step(spec, state["w"], X[k], int(Y[k]), p)

    ref, ref_cpu = _best_of_three(ref_step, list(range(1, n_ref + 1)))
    rows = [dict(benchmark="stidi", metric=f"ms per training sample, {name}", value=eng, unit="ms",
                 reference="vectorised NumPy (tests/naive_stidi.vector_step)", reference_value=ref,
                 ratio=ref / eng, target="faster than NumPy (ratio > 1)",
                 notes=f"engine {n_eng} samples, reference {n_ref}; CPU ms/sample "
                                        f"{eng_cpu:.2f} vs {ref_cpu:.1f}")]
    # inference: the rule's batched predict vs the NumPy forward pass
    Xe = X[1:n_eng + 1]
    t0 = time.perf_counter()
    rule.predict(model, Xe)
    inf_eng = (time.perf_counter() - t0) / len(Xe) * 1e3
    w_fwd = [np.asarray(w, np.float64) for w in model.weights]
    kind, tr, td, te, tm, th = rule.kernel, rule.tau_r, rule.tau_d, rule.t_end, rule.t_max, rule.v_th

    def ref_forward(x):
        t = np.where(x > 0, tm * (1.0 - x), np.inf)
        wi = 0
        for lk, geo in spec:
            if lk == "pool":
                t = t[naive_stidi.pool_table(*geo)].min(axis=1)
                continue
            W = w_fwd[wi]
            if rule.binary:
                sc = np.mean(np.abs(W))
                W = np.where(W >= 0, sc, -sc)
            pre = naive_stidi.patch_table(*geo) if lk == "conv" else np.arange(len(t))[None, :]
            t, _, _ = naive_stidi.vector_forward(t, pre, W, th, kind, tr, td, te)
            wi += 1
        return t

    n_inf_ref = max(n_ref, 3)
    t0 = time.perf_counter()
    for x in X[1:n_inf_ref + 1]:
        ref_forward(x.astype(np.float64))
    inf_ref = (time.perf_counter() - t0) / n_inf_ref * 1e3
    rows.append(dict(benchmark="stidi", metric=f"ms per test sample (predict), {name}", value=inf_eng, unit="ms",
                     reference="vectorised NumPy forward (tests/naive_stidi.vector_forward)",
                     reference_value=inf_ref, ratio=inf_ref / inf_eng, target="faster than NumPy (ratio > 1)",
                     notes=f"engine {len(Xe)} samples in one predict call, reference {n_inf_ref}"))
    return rows


def run(quick: bool = False) -> list[dict]:
    data = load_dataset("mnist-5k")
    n = 31 if quick else 301
    X = data.x_train[:n + 1].astype(np.float32) / np.float32(255)
    Y = data.y_train[:n + 1]
    n_ref_dense, n_ref_conv = (6, 3) if quick else (30, 12)
    rows = []
    rows += _case("dense 784-400-10", {}, X, Y, n, n_ref_dense)
    rows += _case("dense 784-400-10, binary weights", {"binary": True}, X, Y, n, n_ref_dense)
    rows += _case("conv 28x28-c5x32-p2-10", {"arch_kind": "conv"}, X, Y, n, n_ref_conv)
    rows += _case("conv 28x28-c5x32-p2-10, binary weights", {"arch_kind": "conv", "binary": True},
                  X, Y, n, n_ref_conv)
    rows += _case("conv 28x28-c5x16-p2-c5x32-p2-10", {"arch_kind": "conv", "conv_maps": [16, 32]},
                  X, Y, n, n_ref_conv)
    return rows


if __name__ == "__main__":
    import json
    quick = "--quick" in sys.argv
    for row in run(quick=quick):
        print(json.dumps(row))
