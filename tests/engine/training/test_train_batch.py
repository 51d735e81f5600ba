"""SSNN minibatches on several threads (``SSNN.train_batch``, ``Trainer.step_batch``): the
same weights, state, random stream and frames as one sample at a time, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from spikewb.engine.data.datasets import load_dataset
from spikewb.engine.errors import ConfigError
from spikewb.engine.network import Architecture
from spikewb.engine.rules import make_rule
from spikewb.engine.training.trainer import Trainer

ARCH = Architecture(n_inputs=784, hidden=[40], n_outputs=10)


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist-5k").subset(n_train=45, n_test=20)


def _frame_key(f):
    return ([c.tolist() for c in f.counts], f.loss, list(f.dw_norm), f.prediction,
            [s.tolist() for s in f.signal], bool(f.extras["batch_applied"]))


@pytest.mark.parametrize("update, momentum", [("coincidence", 0.0), ("coincidence", 0.9), ("rate", 0.0)])
def test_train_batch_equals_one_sample_at_a_time(data, update, momentum):
    X = data.x_train[:21].astype(np.float32) / 255
    Y = [int(y) for y in data.y_train[:21]]
    kw = dict(n_steps=21, batch_size=8, update=update, momentum=momentum, dropout_in=0.1, dropout_hid=0.2)
    serial, batched = make_rule("ssnn", **kw), make_rule("ssnn", **kw)
    m1, m2 = serial.build(ARCH, np.random.default_rng(3)), batched.build(ARCH, np.random.default_rng(3))
    f1 = [serial.train_step(m1, X[k], Y[k]) for k in range(21)]
    f2 = []
    for lo, hi in ((0, 8), (8, 16), (16, 21)):        # two full minibatches and a partial one
        assert batched.batch_room(m2) == 8
        f2 += batched.train_batch(m2, X[lo:hi], Y[lo:hi], workers=3)
    assert batched.batch_room(m2) == 3
    for a, b in zip(m1.weights, m2.weights):
        np.testing.assert_array_equal(a, b)
    assert m1.state.keys() == m2.state.keys()
    for k in m1.state:
        np.testing.assert_array_equal(m1.state[k], m2.state[k], err_msg=k)
    assert m1.rng.bit_generator.state == m2.rng.bit_generator.state
    assert [_frame_key(f) for f in f1] == [_frame_key(f) for f in f2]
    assert sum(bool(f.extras["batch_applied"]) for f in f2) == 2
    assert not np.array_equal(m1.weights[0], serial.build(ARCH, np.random.default_rng(3)).weights[0])


def test_train_batch_refuses_more_than_the_minibatch_holds(data):
    rule = make_rule("ssnn", n_steps=21, batch_size=4)
    model = rule.build(ARCH, np.random.default_rng(0))
    X = data.x_train[:5].astype(np.float32) / 255
    rule.train_step(model, X[0], int(data.y_train[0]))
    with pytest.raises(ConfigError, match="3 left"):
        rule.train_batch(model, X[1:5], [int(y) for y in data.y_train[1:5]])


def test_trainer_fit_with_threads_equals_fit_without(data):
    # 45 samples per epoch and minibatches of 8: epochs end inside a minibatch, where the
    # batch is cut and the test set is evaluated with the weights of before its update
    runs, batches = [], []
    for workers in (1, 2):
        tr = Trainer(make_rule("ssnn", n_steps=21, batch_size=8), data, ARCH, seed=5, train_workers=workers)
        inner = tr.rule.train_batch
        tr.rule.train_batch = lambda *a, _inner=inner, **k: batches.append(len(a[1])) or _inner(*a, **k)
        seen = []
        tr.fit(2, callback=lambda f: seen.append((f.step, f.epoch, f.index, f.accuracy, f.loss)))
        runs.append((tr, seen))
    (t1, s1), (t2, s2) = runs
    # epoch 1: 8+8+8+8+8+5 samples; epoch 2 first finishes the minibatch cut at the epoch end
    assert batches[:7] == [8, 8, 8, 8, 8, 5, 3] and sum(batches) == 90
    assert s1 == s2 and len(s1) == 90
    assert [h.test_accuracy for h in t1.history] == [h.test_accuracy for h in t2.history]
    for a, b in zip(t1.model.weights, t2.model.weights):
        np.testing.assert_array_equal(a, b)
    assert (t1.position, t1.steps, t1.epoch) == (t2.position, t2.steps, t2.epoch)


def test_rules_without_batches_step_one_sample(data):
    tr = Trainer(make_rule("desire"), data, Architecture(n_inputs=784, hidden=[20], n_outputs=10), train_workers=2)
    assert len(tr.step_batch()) == 1 and tr.steps == 1


def test_recording_trainer_batches_between_the_samples_it_keeps(data):
    from spikewb.engine.frame import Record
    from spikewb.engine.recording import Recording, RecordingTrainer, trace_first

    results = []
    for workers in (1, 2):
        tr = RecordingTrainer(make_rule("ssnn", n_steps=21, batch_size=8), data, ARCH, seed=2, train_workers=workers)
        tr.recording = Recording(every=5, record=Record(spikes=True, neurons=trace_first(tr.model.sizes, 2)))
        tr.fit(1)
        results.append(tr)
    a, b = results
    assert a.recording.steps.tolist() == b.recording.steps.tolist() == list(range(0, 45, 5))
    np.testing.assert_array_equal(a.recording.traces()[0], b.recording.traces()[0])
    for wa, wb in zip(a.model.weights, b.model.weights):
        np.testing.assert_array_equal(wa, wb)
