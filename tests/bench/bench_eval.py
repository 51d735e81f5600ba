"""Test-set evaluation and SSNN minibatches on every core against one thread
(``Trainer.eval_workers``, ``Trainer.train_workers``).

Each rule's default network (STiDi also its conv net) predicts the same
Fashion-5k test images serially and on ``k`` threads (``k`` = the cores this
process may use, at least 2), weights trained for 50 samples so that the
spike counts are those of a learning net.  Wall ms per test image, the best of
three passes each; the ratio is serial / parallel (the speed-up).  The
predictions are checked equal (``tests/engine/training/test_parallel_eval.py``
does so for every rule).  The command line (``spikewb train``, ``eval``,
``reproduce``) evaluates with every core; the server keeps one thread per
session, since sessions share the cores.  The last row trains SSNN through
``Trainer.fit`` with each minibatch's samples on ``k`` threads and checks that
the weights equal those of one thread.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from spikewb.engine.config import use_one_blas_thread  # noqa: E402
from spikewb.engine.data.datasets import load_dataset  # noqa: E402
from spikewb.engine.network import Architecture  # noqa: E402
from spikewb.engine.rules import make_rule  # noqa: E402
from spikewb.engine.training.trainer import Trainer, parallel_predict  # noqa: E402

CASES = [("desire", {}, 1000), ("stidi", {}, 1000), ("stidi", {"arch_kind": "conv"}, 500),
         ("multispike", {}, 500), ("ssnn", {}, 500), ("normad", {}, 40)]


def _best(fn, reps=3) -> float:
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run(quick: bool = False) -> list[dict]:
    use_one_blas_thread()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    k = max(2, cores)
    data = load_dataset("fashion-5k")
    rows = []
    for key, params, n in CASES:
        n = max(20, n // 10) if quick else n
        rule = make_rule(key, **params)
        tr = Trainer(rule, data, Architecture(hidden=list(rule.default_hidden)), seed=0)
        for _ in range(5 if quick else 50):
            tr.step()
        X = data.x_test[:n].astype(np.float32) / np.float32(255.0)
        serial_pred = rule.predict(tr.model, X[:8])                     # warm
        serial = _best(lambda: rule.predict(tr.model, X)) / n * 1e3
        parallel = _best(lambda: parallel_predict(rule, tr.model, X, k)) / n * 1e3
        same = np.array_equal(parallel_predict(rule, tr.model, X, k), rule.predict(tr.model, X))
        rows.append(dict(metric=f"{key}: ms per test image on {k} threads, {tr.network}", value=parallel, unit="ms",
                         reference="one thread, same images", reference_value=serial, ratio=serial / parallel,
                         target=f"> 1 (this machine: {cores} cores)",
                         notes=f"{n} Fashion-5k test images, best of 3; predictions equal: {same}; "
                               f"warm-up predicted {len(serial_pred)}"))
    rows.append(_ssnn_minibatch_row(data, k, cores, quick))
    return rows


def _ssnn_minibatch_row(data, k: int, cores: int, quick: bool) -> dict:
    """SSNN training through ``Trainer.fit``: each minibatch's samples on ``k`` threads against one."""
    n = 200 if quick else 1000
    sub = data.subset(n_train=n, n_test=10)
    arch = Architecture(hidden=[1000])
    warm = Trainer(make_rule("ssnn"), sub, arch, seed=0, train_workers=k)
    warm.step_batch()                                                # load the kernels, start the threads
    wall, weights = {}, {}
    for workers in (1, k):
        tr = Trainer(make_rule("ssnn"), sub, arch, seed=0, train_workers=workers)
        t0 = time.perf_counter()
        tr.fit(1)
        wall[workers] = (time.perf_counter() - t0) / n * 1e3
        weights[workers] = tr.model.weights
    same = all(np.array_equal(a, b) for a, b in zip(weights[1], weights[k]))
    return dict(metric=f"ssnn: ms per training sample, minibatch of 50 on {k} threads, 784-1000-10, T=51",
                value=wall[k], unit="ms", reference="one thread, same samples", reference_value=wall[1],
                ratio=wall[1] / wall[k], target=f"> 1 (this machine: {cores} cores)",
                notes=f"Trainer.fit over {n} Fashion-5k images (one epoch, test set of 10); "
                      f"weights equal: {same}")


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
