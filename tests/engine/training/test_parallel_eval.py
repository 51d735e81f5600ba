"""Evaluation on several threads gives the serial predictions, sample for sample, for every rule."""

from __future__ import annotations

import numpy as np
import pytest

from spikewb.engine.data.datasets import load_dataset
from spikewb.engine.network import Architecture
from spikewb.engine.rules import make_rule
from spikewb.engine.training.trainer import Trainer, parallel_predict

CASES = {
    "desire": dict(hidden=[30]),
    "stidi": dict(hidden=[30]),
    "stidi-conv": dict(hidden=[], rule="stidi", params=dict(arch_kind="conv", conv_maps=[2])),
    "multispike": dict(hidden=[30]),
    "ssnn": dict(hidden=[30]),
    "normad": dict(hidden=[8], params=dict(t_sample=20.0)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_parallel_predictions_equal_serial(case):
    spec = CASES[case]
    data = load_dataset("mnist-5k")
    rule = make_rule(spec.get("rule", case), **spec.get("params", {}))
    tr = Trainer(rule, data, Architecture(hidden=spec["hidden"]), seed=0)
    for _ in range(20):                                   # trained a little, so decisions vary
        tr.step()
    n = 200 if case != "normad" else 130
    X = data.x_test[:n].astype(np.float32) / np.float32(255.0)
    serial = tr.rule.predict(tr.model, X)
    for workers in (2, 3):
        parallel = parallel_predict(tr.rule, tr.model, X, workers)
        assert parallel.dtype == serial.dtype and np.array_equal(parallel, serial), (case, workers)
    assert len(np.unique(serial)) > 1 or case == "normad"   # not a constant answer


def test_trainer_evaluate_uses_its_workers(monkeypatch):
    data = load_dataset("mnist-5k")
    tr = Trainer(make_rule("desire"), data, Architecture(hidden=[20]), seed=0, eval_limit=300, eval_workers=2)
    calls = []
    real = tr.rule.predict
    monkeypatch.setattr(tr.rule, "predict", lambda model, X: calls.append(len(X)) or real(model, X))
    acc = tr.evaluate()
    assert sorted(calls) == [150, 150] and 0.0 <= acc <= 1.0
    tr.eval_workers = 1
    calls.clear()
    assert tr.evaluate() == acc and calls == [300]
