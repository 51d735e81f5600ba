"""What the neuron inspector displays is what the engine computed (issue 5, Correctness).

* the signed contributions W_ji * g_i shown for a hidden neuron sum to the value
  sigma_j the rule thresholded into its desire;
* the incoming weight update shown equals the weight difference before/after the step;
* the recorded potential trace is reproduced by a separate simulation of that
  neuron driven by the recorded spikes of the layer below.
"""

import numpy as np
import pytest

from spikewb.engine.frame import Record
from spikewb.engine.network import Architecture
from spikewb.engine.neurons.lif import lif_reference
from spikewb.engine.rules import make_rule


@pytest.fixture
def stepped(mnist5k):
    rule = make_rule("desire", dtype="float64", lr=1e-3, dropout_hid=0.0)
    model = rule.build(Architecture(hidden=[80, 40]), np.random.default_rng(11))
    x = mnist5k.x_train[2].astype(np.float32) / np.float32(255)
    y = int(mnist5k.y_train[2])
    neurons = ((1, 5), (2, 7), (3, y))
    w_before = [w.copy() for w in model.weights]
    frame = rule.train_step(model, x, y, Record(neurons=neurons, weight_updates=True))
    return rule, model, frame, w_before, neurons


def test_contributions_sum_to_the_thresholded_value(stepped):
    rule, _, frame, _, neurons = stepped
    for k, (layer, idx) in enumerate(neurons[:2]):           # hidden neurons only
        contrib = frame.extras["contrib"][k]
        assert contrib.shape == (frame.layer_sizes[layer + 1],)
        assert contrib.sum() == pytest.approx(frame.signal_raw[layer][idx], rel=1e-5, abs=1e-7)
        expected = np.sign(contrib.sum()) * (abs(contrib.sum()) >= rule.alpha_hid)
        assert frame.signal[layer][idx] == expected
    assert frame.extras["contrib"][2].size == 0               # the output has no layer above


def test_shown_weight_update_equals_weight_difference(stepped):
    _, model, frame, w_before, neurons = stepped
    assert len(frame.extras["dw_in"]) == len(neurons)
    for k, (layer, idx) in enumerate(neurons):
        diff = model.weights[layer - 1][:, idx] - w_before[layer - 1][:, idx]
        np.testing.assert_allclose(frame.extras["dw_in"][k], diff, rtol=1e-5, atol=1e-9,
                                   err_msg=f"neuron {layer}:{idx}")
    assert any(np.abs(d).sum() > 0 for d in frame.extras["dw_in"])   # something was updated


def test_potential_trace_matches_separate_simulation(stepped):
    rule, _, frame, w_before, neurons = stepped
    T = int(rule.n_steps)
    for k, (layer, idx) in enumerate(neurons):
        t_in, i_in = frame.spikes(layer - 1)
        s_in = np.zeros((T, frame.layer_sizes[layer - 1]))
        s_in[t_in.astype(int), i_in] = 1.0
        # a layer reads its predecessor one step late, except the first hidden layer
        if layer > 1:
            s_in = np.vstack([np.zeros((1, s_in.shape[1])), s_in[:-1]])
        current = s_in @ w_before[layer - 1][:, idx]
        np.testing.assert_allclose(frame.i_trace[k], current, rtol=1e-5, atol=1e-6)
        v_pre, z = lif_reference(current[:, None], rule.leak, rule.v_th)
        np.testing.assert_allclose(frame.v_trace[k], v_pre[:, 0], rtol=1e-5, atol=1e-6)
        t_out, i_out = frame.spikes(layer)
        assert np.flatnonzero(z[:, 0]).tolist() == sorted(t_out[i_out == idx].astype(int).tolist())


def test_contribution_to_the_layer_below(stepped):
    _, _, frame, w_before, neurons = stepped
    g = frame.extras["g"]
    for k, (layer, idx) in enumerate(neurons):
        down = frame.extras["contrib_down"][k]
        if layer < 2:
            assert down.size == 0
            continue
        np.testing.assert_allclose(down, w_before[layer - 1][:, idx] * g[layer][idx], rtol=1e-6, atol=1e-9)


def test_flow_links_are_the_strongest_contributions(mnist5k):
    rule = make_rule("desire", dtype="float64", lr=1e-3, dropout_hid=0.0)
    model = rule.build(Architecture(hidden=[50, 20]), np.random.default_rng(2))
    w_before = [w.copy() for w in model.weights]
    x = mnist5k.x_train[7].astype(np.float32) / np.float32(255)
    frame = rule.train_step(model, x, int(mnist5k.y_train[7]), Record(flow=5))
    flow = frame.extras["flow"]
    assert flow.shape[1] == 4 and len(flow) > 0
    g = frame.extras["g"]
    for l in (2, 3):
        rows = flow[flow[:, 0] == l]
        full = np.abs(w_before[l - 1] * g[l][None, :])
        if not full.any():
            assert len(rows) == 0
            continue
        expected = np.sort(full.ravel())[::-1][:len(rows)]
        np.testing.assert_allclose(np.abs(rows[:, 3]), expected, rtol=1e-5)
        for _, i, j, v in rows:
            assert v == pytest.approx(w_before[l - 1][int(j), int(i)] * g[l][int(i)], rel=1e-5)
