"""Sweep throughput: 8 small runs on a 2-worker LocalCluster vs one after another in one process.

Both sides train the same 8 combinations (784-400-10 Desire BP on the 4,000 training
samples of mnist-5k, 2 epochs each, about 10 s per run, so that the runs and not the
cluster start-up are measured; quick mode: 784-64-10, 300 samples, 1 epoch) into fresh
directories.
The sequential side runs ``engine.sweep.train_run`` in this process, so it pays no
cluster start-up; the Dask side includes starting and stopping the cluster.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from spikewb.engine.training.sweep import expand, plan, run_sweep, train_run  # noqa: E402


_SPIN = ("import time\nt0 = time.perf_counter()\nacc = 0\nfor i in range({n}):\n    acc += i * i % 7\n"
         "print(time.perf_counter() - t0)")


def parallel_ceiling(n: int = 8_000_000) -> tuple[float, float]:
    """Speed-up of two identical CPU-bound processes side by side over one after the other.

    The upper bound any 2-worker sweep can reach on this machine (shared caches,
    a virtual machine's neighbours), measured in the same run.  Each process
    times its own loop, so interpreter start-up is left out.
    Returns ``(speed-up, seconds of one load alone)``.
    """
    import subprocess

    def start():
        return subprocess.Popen([sys.executable, "-c", _SPIN.format(n=n)], stdout=subprocess.PIPE, text=True)

    alone = float(start().communicate()[0])
    pair = [start(), start()]
    both = max(float(p.communicate()[0]) for p in pair)
    return 2 * alone / both, alone


def run(quick: bool = False) -> list[dict]:
    base = {"rule": "desire", "dataset": "mnist-5k", "epochs": 1 if quick else 2, "seed": 0,
            "hidden": [64] if quick else [400], "train_limit": 300 if quick else 4000, "eval_limit": 200}
    combos = expand({"lr": [1e-5, 2e-5, 5e-5, 1e-4], "seed": [0, 1]}, base)
    with tempfile.TemporaryDirectory() as tmp:
        # warm the numba cache so neither side pays compilation
        train_run(dict(base, epochs=1, train_limit=10, eval_limit=5), Path(tmp) / "warm")
        t0 = time.perf_counter()
        for spec, d in plan(Path(tmp) / "seq", combos):
            train_run(spec, d)
        seq = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = run_sweep(combos, Path(tmp) / "dask", n_workers=2, progress=False, echo=lambda *_: None)
        par = time.perf_counter() - t0
    ok = sum(r["status"] == "done" for r in res)
    ceiling, alone = parallel_ceiling(2_000_000 if quick else 8_000_000)
    return [dict(metric="parallel ceiling: 2 CPU-bound processes side by side vs one after the other",
                 value=ceiling, unit="x", notes=f"pure-Python loop of {alone:.1f} s; what any 2-worker "
                                                 "sweep can reach on this machine"),
            dict(metric="8-run sweep wall time, 2-worker LocalCluster", value=par, unit="s",
                 reference="same 8 runs sequentially in one process", reference_value=seq, ratio=seq / par,
                 target=">= 1.6x", notes=f"{ok}/8 runs done; includes cluster start/stop; parallel ceiling "
                                                 f"{ceiling:.2f}x")]
