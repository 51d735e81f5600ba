"""Every rule's training step against the cost model's floor (``spikewb.engine.cost``).

For each built-in rule with dense layers, on its default network and Fashion-5k
samples, with its defaults: the measured CPU time per training sample (the
median over the timed samples; ``time.process_time``, so a busy second core
does not count) next to the floor that the work of the same samples needs at
this machine's measured single-thread bandwidth and arithmetic rate.  The
ratio is floor / measured, as for every time row (reference / value): the
fraction of the limit a rule reaches; issue 22 asks NormAD and SSNN for at
least 1/3.  The notes give
the work per sample: synaptic events, neuron updates, weights read by the
forward pass and touched by the update.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from spikewb.engine.config import use_one_blas_thread  # noqa: E402
from spikewb.engine.cost import frame_cost, machine_rates  # noqa: E402
from spikewb.engine.data.datasets import load_dataset  # noqa: E402
from spikewb.engine.network import Architecture  # noqa: E402
from spikewb.engine.rules import make_rule  # noqa: E402
from spikewb.engine.training.trainer import Trainer  # noqa: E402

#: Rules with dense default networks, and the samples timed (full, quick); NormAD takes ~0.1 s a sample.
RULES = {"desire": (200, 20), "stidi": (200, 20), "multispike": (100, 10), "ssnn": (60, 6), "normad": (20, 3)}


def measure(key: str, n: int, data) -> dict:
    rule = make_rule(key)
    tr = Trainer(rule, data, Architecture(hidden=list(rule.default_hidden)), seed=0)
    for _ in range(3):                                  # compile / load kernels, first-touch the weights
        tr.step()
    times, costs = [], []
    for _ in range(n):
        t0 = time.process_time()
        frame = tr.step()
        times.append(time.process_time() - t0)
        costs.append(frame_cost(tr.rule, tr.model, frame))
    total = costs[0]
    for c in costs[1:]:
        total = total + c
    return dict(network=tr.network, ms=statistics.median(times) * 1e3, cost=total, n=n)


def run(quick: bool = False) -> list[dict]:
    use_one_blas_thread()
    data = load_dataset("fashion-5k")
    bandwidth, rate = machine_rates(megabytes=64 if quick else 256)
    rows = [dict(metric="machine: single-thread copy bandwidth", value=bandwidth / 1e9, unit="GB/s",
                 notes="np.copyto of a large float32 array, read + write, best of 5"),
            dict(metric="machine: single-thread float32 rate", value=rate / 1e9, unit="Gop/s",
                 notes="512^3 matrix product with one BLAS thread, best of 5")]
    for key, (n_full, n_quick) in RULES.items():
        got = measure(key, n_quick if quick else n_full, data)
        c, n = got["cost"], got["n"]
        floor_ms = c.floor_s(bandwidth, rate) / n * 1e3
        bound = "bandwidth" if c.bytes / bandwidth >= c.operations / rate else "arithmetic"
        rows.append(dict(
            metric=f"{key}: CPU ms per training sample vs cost-model floor, {got['network']}",
            value=got["ms"], unit="ms", reference=f"floor ({bound}-bound)", reference_value=floor_ms,
            ratio=floor_ms / got["ms"] if got["ms"] > 0 else float("nan"),
            target=">= 0.33 (within 3x of the floor)" if key in ("normad", "ssnn") else "",
            notes=(f"per sample: {c.synaptic_events / n:,.0f} synaptic events, {c.neuron_updates / n:,.0f} "
                   f"neuron updates, {c.weights_read / n:,.0f} weights read, {c.weights_touched / n:,.0f} "
                   f"touched; median of {n} samples").replace(",", " ")))
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
