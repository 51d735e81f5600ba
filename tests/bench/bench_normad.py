"""NormAD: training and forward speed vs the NumPy twin, same inputs.

Two nets:

* the rule's default image net (784-1000-100-10, Poisson-free regular input
  trains from the pixel intensities, dt 0.1 ms, heun integrator, float64):
  ms per training sample (forward + output update + back-propagated hidden
  update), and ms per forward pass against ``tests/naive_normad.lif_layer``
  chained over the layers (NumPy, one neuron and one step at a time, written
  from the equations);
* the spike-timing XOR task of the teaching app (30-40-1, 50 ms window): ms
  per presentation, through :class:`spikewb.engine.training.tasks.TaskTrainer` as the app
  drives it (recording the output neuron's potential and the spikes).

The forward rows also check that both sides produce the same output spike
count (the twin tests in ``tests/engine/rules/test_normad.py`` check the trains).
Quick mode (CI): a 784-100-10 net, a few samples.
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
from spikewb.engine.training.tasks import TaskTrainer, xor_task  # noqa: E402
from tests import naive_normad  # noqa: E402


def _naive_forward(rule, model, raster: np.ndarray) -> list[np.ndarray]:
    """Spike rasters of every layer from the NumPy twin (same constants as the rule)."""
    kw = dict(dt=rule.dt, tau_1=rule.tau_1, tau_2=rule.tau_2, tau_l_hat=rule.tau_l_hat, c_pf=rule.c_m,
              g_ns=rule.g_l, e_l=rule.e_l, v_th=rule.v_th, t_ref=rule.t_ref, integrator=rule.integrator,
              clamp=rule.clamp)
    spikes = [raster]
    for w in model.weights:
        spikes.append(naive_normad.lif_layer(spikes[-1], np.asarray(w, float), **kw)[0])
    return spikes


def _mean_ms(fn, n: int) -> float:
    t0 = time.perf_counter()
    for k in range(n):
        fn(k)
    return (time.perf_counter() - t0) / n * 1e3


def run(quick: bool = False) -> list[dict]:
    hidden = [100] if quick else [1000, 100]
    n_train, n_fwd, n_ref = (5, 5, 1) if quick else (30, 30, 2)
    data = load_dataset("mnist-5k")
    rule = make_rule("normad")
    model = rule.build(Architecture(n_inputs=784, hidden=hidden, n_outputs=10), np.random.default_rng(0))
    X = data.x_train[: max(n_train, n_fwd) + 1].astype(np.float64) / 255.0
    Y = data.y_train[: len(X)]
    net = "-".join(map(str, model.sizes))
    rule.train_step(model, X[0], int(Y[0]), RECORD_NONE)  # load the kernels
    train_ms = _mean_ms(lambda k: rule.train_step(model, X[k + 1], int(Y[k + 1]), RECORD_NONE), n_train)

    k_cfg = rule._cfg()
    inputs = [rule._as_inputs(model, X[k]) for k in range(n_fwd)]
    fwd_ms = _mean_ms(lambda k: rule._forward(model, inputs[k], False, RECORD_NONE, k_cfg), n_fwd)
    ref_ms, agree = 0.0, True
    for k in range(n_ref):
        p = rule._forward(model, inputs[k], False, RECORD_NONE, k_cfg)
        t0 = time.perf_counter()
        ref = _naive_forward(rule, model, p.spikes[0])
        ref_ms += (time.perf_counter() - t0) * 1e3
        agree &= int(ref[-1].sum()) == int(p.spikes[-1].sum())
    ref_ms /= n_ref
    n_steps = p.n_steps

    task = xor_task()
    xor = TaskTrainer(make_rule("normad"), task, seed=1)
    xor.step()  # kernels
    n_xor = 40 if quick else 400
    xor_ms = _mean_ms(lambda k: xor.step(), n_xor)
    xor_net = "-".join(map(str, xor.arch.sizes))

    size = f"{net}, {n_steps} steps of {rule.dt:g} ms, {rule.integrator}, {model.weights[0].dtype}"
    return [
        dict(metric=f"ms per training sample, {size}", value=train_ms, unit="ms", reference="", reference_value=None,
             ratio=None, target="", notes=f"mean of {n_train} MNIST samples after one warm-up sample; no recording"),
        dict(metric=f"ms per forward pass, {net}", value=fwd_ms, unit="ms",
             reference="NumPy twin (tests/naive_normad.lif_layer per layer)", reference_value=ref_ms,
             ratio=ref_ms / fwd_ms, target="faster than NumPy (ratio > 1)",
             notes=f"engine mean of {n_fwd}, reference mean of {n_ref} sample(s); output spike counts "
                   + ("agree" if agree else "DIFFER")),
        dict(metric=f"ms per XOR presentation, {xor_net} (teaching app), {task.inputs[0].duration:g} ms window",
             value=xor_ms, unit="ms", reference="", reference_value=None, ratio=None, target="",
             notes=f"TaskTrainer.step as the app drives it (potential of one output neuron and spikes recorded), "
                   f"mean of {n_xor}"),
    ]


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(r)
