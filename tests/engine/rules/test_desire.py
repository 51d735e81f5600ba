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



def test_float32_agrees_with_float64_over_200_fashion_samples():
    """200 training steps, paper Fashion-MNIST dropout, same initial weights and masks.

    Stated tolerance: float32 (grouped input forward, summed float32 update) and float64
    (one row per spike, per-step update) give the same spike counts for >= 99.9 % of the
    neurons of every step, the same decision on >= 198 of 200 samples, and final weights
    within 1e-5 of each other (measured: identical counts and decisions, 2.6e-7 at most,
    i.e. float32 rounding of weights of size ~1; the weights moved by up to 0.04-0.08).
    """
    from spikewb.engine.data.datasets import load_dataset
    data = load_dataset("fashion-5k")
    x = data.x_train[:200].astype(np.float32) / np.float32(255)
    y = data.y_train[:200]
    rules, models = {}, {}
    for dt in ("float32", "float64"):
        rules[dt] = make_rule("desire", dtype=dt, dropout_in=0.05, dropout_hid=0.4, lr=1e-4)
        models[dt] = rules[dt].build(Architecture(hidden=[100, 30]), np.random.default_rng(0))
    w_start = [w.copy() for w in models["float64"].weights]
    same_counts, same_pred = [], 0
    for k in range(200):
        f32, f64 = (rules[dt].train_step(models[dt], x[k], int(y[k])) for dt in ("float32", "float64"))
        same_counts.append(np.mean(np.concatenate([a == b for a, b in zip(f32.counts[1:], f64.counts[1:])])))
        same_pred += f32.prediction == f64.prediction
    assert min(same_counts) >= 0.999 and same_pred >= 198
    for l, (w32, w64, w0) in enumerate(zip(models["float32"].weights, models["float64"].weights, w_start)):
        assert np.abs(w64 - w0).max() > 1e-3, f"layer {l + 1} did not learn"
        np.testing.assert_allclose(w32, w64, rtol=0, atol=1e-5, err_msg=f"weights layer {l + 1}")



def test_grouped_forward_and_summed_update_match_the_per_spike_kernels(mnist5k):
    """The float32 fast paths against the per-spike kernels (same inputs, float64 as reference)."""
    from spikewb.engine.data.encoding import rate_deterministic
    from spikewb.engine.neurons.lif import lif_layer_forward, lif_layer_forward_grouped
    from spikewb.engine.rules.desire import SUMMED_UPDATE_MIN, _desire_update, apply_update
    rng = np.random.default_rng(1)
    x = mnist5k.x_train[7].astype(np.float32) / np.float32(255)
    s_in = rate_deterministic(x, 20, (rng.random(784) >= 0.05).astype(np.uint8))
    w64 = rng.normal(0.0, np.sqrt(2 / 784), (784, 300))
    mask = (rng.random(300) >= 0.4).astype(np.uint8)
    runs = {}
    for name, fwd, dt in (("ref64", lif_layer_forward, np.float64),
                          ("grouped64", lif_layer_forward_grouped, np.float64),
                          ("grouped32", lif_layer_forward_grouped, np.float32)):
        out = np.zeros((21, 300), np.uint8)
        tr = np.empty((20, 784), dt)
        no = np.zeros((1, 20), dt)
        v_rec, i_rec = no.copy(), no.copy()
        fwd(s_in, dt(1 / 0.95), w64.astype(dt), dt(0.75), dt(1.0), mask, dt(0.75), out, tr, np.array([5]), v_rec, i_rec)
        runs[name] = out, tr, i_rec
    ref_out, ref_tr, ref_i = runs["ref64"]
    for name in ("grouped64", "grouped32"):
        out, tr, i_rec = runs[name]
        np.testing.assert_array_equal(out, ref_out, err_msg=name)
        np.testing.assert_allclose(tr, ref_tr, rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(i_rec, ref_i, rtol=1e-5, atol=1e-5, err_msg=name)
    assert ref_out.sum() > 0

    # update: summed float32 path vs the per-step float64 kernel
    coef64 = 1e-3 * rng.choice([-1.0, 0.0, 1.0], 300) * mask
    w_ref = w64.copy()
    _desire_update(w_ref, ref_tr, ref_out, coef64)
    w32 = w64.astype(np.float32)
    assert w32.size >= SUMMED_UPDATE_MIN
    norm = apply_update(w32, ref_tr.astype(np.float32), ref_out, coef64.astype(np.float32))
    dw_ref = w_ref - w64
    np.testing.assert_allclose(w32 - w64.astype(np.float32), dw_ref, rtol=0, atol=1e-6)
    assert norm == pytest.approx(np.linalg.norm(dw_ref), rel=1e-5) and norm > 0
    assert apply_update(w32, ref_tr.astype(np.float32), ref_out, np.zeros(300, np.float32)) == 0.0

    # hidden desire: float32 weights are read in place and summed in float64 (no copy)
    g = rng.normal(0, 0.3, 300) * (rng.random(300) < 0.3)
    delta32, sigma32 = hidden_desire(w32, g, 0.05)
    sigma_ref = w32.astype(np.float64) @ g
    np.testing.assert_allclose(sigma32, sigma_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(delta32, np.where(np.abs(sigma_ref) >= 0.05, np.sign(sigma_ref), 0.0))


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
