"""Desire BP: hand-computed desire values, and one full step against tests/naive.py."""

import numpy as np
import pytest

from spikewb.engine.frame import Record
from spikewb.engine.network import Architecture
from spikewb.engine.rules import make_rule
from spikewb.engine.rules.desire import hidden_desire, output_desire, unique_argmax
from tests.naive import desire_step


@pytest.mark.parametrize("count,label_is,expected", [
    # wrong class: e = c/16 > 0.30  <=>  c >= 5
    (4, False, 0.0), (5, False, -1.0), (16, False, -1.0),
    # label neuron: e = 1 - c/16 > 0.30 <=> c <= 11
    (11, True, 1.0), (12, True, 0.0), (0, True, 1.0),
])
def test_output_desire_boundaries(count, label_is, expected):
    counts = np.array([count, 0, 0])
    label = 0 if label_is else 1
    delta, e = output_desire(counts, label, 16, 0.30)
    assert delta[0] == expected
    assert e[0] == pytest.approx(abs(float(label_is) - count / 16))


def test_hidden_desire_hand_values():
    # two hidden neurons, three output neurons (pre-major weights: rows = hidden)
    w = np.array([[0.5, -0.2, 0.1],
                  [0.01, 0.02, -0.04]])
    g = np.array([0.25, -0.5, 0.0])        # e * delta * mask of the outputs
    delta, sigma = hidden_desire(w, g, 0.05)
    # sigma_0 = 0.125 + 0.1 = 0.225 -> +1 ; sigma_1 = 0.0025 - 0.01 = -0.0075 -> |.| < 0.05 -> 0
    np.testing.assert_allclose(sigma, [0.225, -0.0075])
    assert delta.tolist() == [1.0, 0.0]
    # exactly at the threshold counts (>=)
    d2, _ = hidden_desire(np.array([[0.2]]), np.array([0.25]), 0.05)
    assert d2.tolist() == [1.0]
    d3, _ = hidden_desire(np.array([[-0.2]]), np.array([0.25]), 0.05)
    assert d3.tolist() == [-1.0]


def test_unique_max_rule():
    assert unique_argmax(np.array([0, 7, 3])) == 1
    assert unique_argmax(np.array([7, 7, 3])) == -1
    assert unique_argmax(np.array([0, 0, 0])) == -1


def _masks_like_engine(rule, model, sizes):
    """Re-draw the dropout masks the rule will draw, from a copy of the model's RNG."""
    rng = np.random.Generator(type(model.rng.bit_generator)())
    rng.bit_generator.state = model.rng.bit_generator.state
    masks = []
    for l, n in enumerate(sizes):
        p = 0.0 if l == len(sizes) - 1 else (rule.dropout_in if l == 0 else rule.dropout_hid)
        masks.append((rng.random(n) >= p).astype(float) if p > 0 else np.ones(n))
    return masks


@pytest.mark.parametrize("dropout", [(0.0, 0.0), (0.05, 0.4)], ids=["no-dropout", "paper-fashion-dropout"])
def test_train_step_matches_numpy(mnist5k, dropout):
    rule = make_rule("desire", dtype="float64", lr=1e-3, dropout_in=dropout[0], dropout_hid=dropout[1])
    arch = Architecture(hidden=[60, 30])
    model = rule.build(arch, np.random.default_rng(3))
    w_ref = [w.copy() for w in model.weights]
    for k in range(3):                                   # three consecutive samples
        x = mnist5k.x_train[k].astype(np.float32) / np.float32(255)
        y = int(mnist5k.y_train[k])
        masks = _masks_like_engine(rule, model, model.sizes)
        ref = desire_step(w_ref, x, y, masks, lr=1e-3, p_in=dropout[0], p_hid=dropout[1])
        frame = rule.train_step(model, x, y, Record())
        for l in range(len(model.sizes)):
            np.testing.assert_array_equal(frame.counts[l], ref["counts"][l], err_msg=f"counts layer {l}")
        for l in range(1, len(model.sizes)):
            np.testing.assert_array_equal(frame.signal[l], ref["delta"][l], err_msg=f"desire layer {l}")
        for l, (w, wr) in enumerate(zip(model.weights, w_ref)):
            np.testing.assert_allclose(w, wr, rtol=1e-12, atol=1e-15, err_msg=f"weights layer {l + 1}")
            assert frame.dw_norm[l] == pytest.approx(np.linalg.norm(ref["dw"][l]), rel=1e-9)
    # the step did learn something: updates were non-zero
    assert any(n > 0 for n in frame.dw_norm)


def test_float32_close_to_float64(mnist5k):
    x = mnist5k.x_train[5].astype(np.float32) / np.float32(255)
    frames = []
    for dt in ("float32", "float64"):
        rule = make_rule("desire", dtype=dt, dropout_hid=0.0)
        model = rule.build(Architecture(hidden=[100]), np.random.default_rng(0))
        frames.append(rule.train_step(model, x, 3, Record()))
    # spike counts may differ where a potential sits within float32 rounding of the threshold
    same = np.mean(frames[0].counts[1] == frames[1].counts[1])
    assert same > 0.97


def test_frame_spike_events_and_traces(mnist5k):
    rule = make_rule("desire", dropout_hid=0.0)
    model = rule.build(Architecture(hidden=[50]), np.random.default_rng(0))
    x = mnist5k.x_train[0].astype(np.float32) / 255
    f = rule.train_step(model, x, int(mnist5k.y_train[0]), Record(neurons=((1, 3), (2, 0)), weight_updates=True))
    for l in range(3):
        t, i = f.spikes(l)
        assert np.bincount(i, minlength=f.layer_sizes[l]).tolist() == f.counts[l].tolist()
        assert t.min(initial=0) >= 0 and t.max(initial=0) < 20
    assert f.v_trace.shape == (2, 20) and f.trace_ids.tolist() == [[1, 3], [2, 0]]
    # the recorded trace reproduces the spike train of neuron (1, 3): v >= th where it fired
    t1, i1 = f.spikes(1)
    fired = np.sort(t1[i1 == 3]).astype(int)
    assert np.all(f.v_trace[0, fired] >= 1.0)
    assert f.signal_name == "desire" and set(np.unique(f.signal[1])) <= {-1.0, 0.0, 1.0}
