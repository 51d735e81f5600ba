"""Multi-spike timing BP (``multispike``) and its event-driven CuBa LIF kernels.

* event-driven spike times vs the clock-driven twin (``tests/naive_multispike.py``,
  dt = 1e-4 ms), for the closed-form (tau_m = 2 tau_s) and bracketed solvers;
* exact gradients vs central finite differences (relative error <= 1e-3) on small
  random networks whose neurons fire 2-5 times, for every weight layer;
* the optimiser (minibatch accumulation, SGD, Adam), the Frame, and (slow) learning
  784-400-10 on the embedded MNIST 5k.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from spikewb.engine.neurons import cuba
from spikewb.engine.frame import Record
from spikewb.engine.network import Architecture
from spikewb.engine.rules import make_rule
from tests.naive_multispike import clock_layer, clock_network

DT = 1e-4
#: Simulated time of the clock-driven comparisons (ms): 60,000 steps of the twin.
T_CLOCK = 6.0
FD_H = 1e-6
FD_RTOL = 1e-3
TAUS = [(10.0, 5.0), (8.0, 5.0), (5.0, 8.0)]  # closed form, bracketed tau_m > tau_s, tau_s > tau_m


def _rel_err(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


# ------------------------------------------------------------------ forward vs clock-driven
@pytest.mark.parametrize("tau_m,tau_s", TAUS)
def test_layer_spike_times_match_clock_driven(tau_m, tau_s):
    rng = np.random.default_rng(0)
    n_in, n_out = 30, 6
    ev_t, ev_j, _ = cuba.input_events(rng.uniform(0, 4, n_in))
    w = rng.uniform(-0.2, 1.0, (n_in, n_out)) * 0.8
    ls = cuba.layer_forward(ev_t, ev_j, w, tau_m=tau_m, tau_s=tau_s, v_th=1.0, t_max=T_CLOCK, max_spikes=8)
    ref, ref_ov = clock_layer(ev_t, ev_j, w, tau_m=tau_m, tau_s=tau_s, v_th=1.0, t_max=T_CLOCK, max_spikes=8,
                              dt=DT)
    assert ls.n.sum() >= 2 * n_out, "the test network should fire several spikes per neuron"
    np.testing.assert_array_equal(ls.n, [len(s) for s in ref], err_msg=f"counts, tau_m={tau_m} tau_s={tau_s}")
    np.testing.assert_array_equal(ls.overflow, ref_ov)
    for i in range(n_out):
        np.testing.assert_allclose(ls.t[i, :ls.n[i]], ref[i], rtol=0, atol=DT,
                                   err_msg=f"neuron {i}, tau_m={tau_m} tau_s={tau_s}")
    # end-of-step stamping (no interpolation): first spikes lie in [t_exact, t_exact + dt)
    t_first = float(ls.t[ls.n > 0, 0].max()) + 2 * DT
    raw, _ = clock_layer(ev_t, ev_j, w, tau_m=tau_m, tau_s=tau_s, v_th=1.0, t_max=t_first, max_spikes=1, dt=DT,
                         interpolate=False)
    for i in range(n_out):
        if ls.n[i]:
            assert 0.0 <= raw[i][0] - ls.t[i, 0] < DT + 1e-12, f"neuron {i}: {raw[i][0]} vs {ls.t[i, 0]}"


def test_network_spike_times_match_clock_driven():
    rng = np.random.default_rng(1)
    in_t = rng.uniform(0, 2, 25)
    ws = [rng.uniform(-0.2, 1.0, (25, 6)) * 1.0, rng.uniform(0.0, 1.0, (6, 3)) * 2.0]
    kw = dict(tau_m=10.0, tau_s=5.0, v_th=[1.0, 1.0], t_max=T_CLOCK, max_spikes=[6, 6])
    _, layers = cuba.network_forward(in_t, ws, **kw)
    ref = clock_network(in_t, ws, dt=DT, **kw)
    for l, (ls, r) in enumerate(zip(layers, ref)):
        assert ls.n.sum() > 0, f"layer {l + 1} silent"
        np.testing.assert_array_equal(ls.n, [len(s) for s in r], err_msg=f"layer {l + 1} counts")
        for i in range(len(r)):
            np.testing.assert_allclose(ls.t[i, :ls.n[i]], r[i], rtol=0, atol=DT, err_msg=f"layer {l + 1} neuron {i}")


def test_closed_form_equals_bracketed_solver():
    rng = np.random.default_rng(2)
    ev_t, ev_j, _ = cuba.input_events(rng.uniform(0, 5, 50))
    w = rng.normal(0.15, 0.4, (50, 40))
    a = cuba.layer_forward(ev_t, ev_j, w, tau_m=10.0, tau_s=5.0, v_th=1.0, t_max=30.0, max_spikes=10,
                           closed_form=True)
    b = cuba.layer_forward(ev_t, ev_j, w, tau_m=10.0, tau_s=5.0, v_th=1.0, t_max=30.0, max_spikes=10,
                           closed_form=False)
    assert a.n.sum() > 40
    np.testing.assert_array_equal(a.n, b.n)
    np.testing.assert_allclose(a.t, b.t, atol=1e-9)
    np.testing.assert_allclose(a.vdot, b.vdot, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("tau_m,tau_s", TAUS)
def test_potential_reaches_threshold_at_each_spike(tau_m, tau_s):
    rng = np.random.default_rng(3)
    ev_t, ev_j, _ = cuba.input_events(rng.uniform(0, 5, 40))
    w = rng.uniform(-0.1, 0.5, (40, 5))
    ls = cuba.layer_forward(ev_t, ev_j, w, tau_m=tau_m, tau_s=tau_s, v_th=0.8, t_max=30.0, max_spikes=10)
    for i in range(5):
        ts = ls.t[i, :ls.n[i]]
        v, _ = cuba.potential(ts, ev_t, ev_j, w[:, i], ts, tau_m=tau_m, tau_s=tau_s, v_th=0.8)
        np.testing.assert_allclose(v, 0.8, atol=1e-9, err_msg=f"neuron {i}")


def test_overflow_counts_suppressed_crossings():
    ev_t, ev_j, _ = cuba.input_events(np.array([0.0, 0.5, 1.0]))
    w = np.full((3, 2), 3.0)
    full = cuba.layer_forward(ev_t, ev_j, w, tau_m=10.0, tau_s=5.0, v_th=0.5, t_max=30.0, max_spikes=64)
    capped = cuba.layer_forward(ev_t, ev_j, w, tau_m=10.0, tau_s=5.0, v_th=0.5, t_max=30.0, max_spikes=3)
    assert full.n[0] > 3
    np.testing.assert_array_equal(capped.n, [3, 3])
    np.testing.assert_array_equal(capped.overflow, full.n - 3)
    np.testing.assert_allclose(capped.t, full.t[:, :3])


@pytest.mark.parametrize("cap", [1, 3, 16, 17, 64])
def test_grown_buffer_equals_fixed_buffer(cap):
    """Growing the buffer (start 4, one more pass when a neuron overflows) gives exactly the
    spikes and overflow of a fixed buffer of ``cap`` spikes."""
    rng = np.random.default_rng(8)
    ev_t, ev_j, _ = cuba.input_events(rng.uniform(0, 3, 12))
    w = rng.uniform(0.0, 2.0, (12, 7))
    kw = dict(tau_m=10.0, tau_s=5.0, v_th=0.3, t_max=30.0)
    fixed = cuba.layer_forward(ev_t, ev_j, w, max_spikes=cap, **kw)
    grown = cuba.layer_forward(ev_t, ev_j, w, max_spikes=cap, start=4, **kw)
    total = cuba.layer_forward(ev_t, ev_j, w, max_spikes=256, **kw)
    assert total.n.max() > 16 and not total.overflow.any(), "the test layer should fire many times"
    np.testing.assert_array_equal(grown.n, fixed.n, err_msg=f"cap {cap}")
    np.testing.assert_array_equal(grown.overflow, fixed.overflow, err_msg=f"cap {cap}")
    np.testing.assert_array_equal(grown.n + grown.overflow, total.n)
    assert grown.t.shape[1] <= cap
    for i in range(7):
        np.testing.assert_array_equal(grown.t[i, :grown.n[i]], fixed.t[i, :fixed.n[i]])
        np.testing.assert_array_equal(grown.vdot[i, :grown.n[i]], fixed.vdot[i, :fixed.n[i]])
    np.testing.assert_array_equal(grown.ev_t, fixed.ev_t)


@pytest.mark.parametrize("tau_s,tau_m", [(10.0, 20.0), (50.0, 100.0)])
def test_no_neuron_capped_where_the_old_buffer_saturated(mnist5k, tau_s, tau_m):
    """At tau settings where the former 5-spike hidden buffer clipped neurons (tau_s = 10 ms:
    22 % of hidden neurons of 784-400-10 at initialisation) and at the top of the tau_s slider
    (50 ms), the default caps leave no neuron capped on real samples (Frame overflow = 0)."""
    rule = make_rule("multispike", tau_s=tau_s, tau_m=tau_m)
    model = rule.build(Architecture(hidden=[400]), np.random.default_rng(0))
    most = 0
    for k in range(4):
        x, y = mnist5k.x_train[k].astype(np.float32) / 255, int(mnist5k.y_train[k])
        f = rule.train_step(model, x, y)
        assert f.extras["overflow_total"].tolist() == [0, 0, 0], f"sample {k}, tau_s = {tau_s}"
        assert f.extras["capped"].tolist() == [0, 0, 0]
        assert f.duration == 10.0 + 2.0 * tau_m
        most = max(most, int(f.counts[1].max()))
    assert most > 5, f"hidden neurons fire at most {most} times: the old 5-spike buffer would not clip here"


def test_spike_cap_still_caps_and_reports_capped_neurons(tiny):
    """A cap of 1 (the tau sweep's single-spike network) emits one spike per neuron and counts the rest."""
    rule = make_rule("multispike", max_spikes_hidden=1, max_spikes_out=1)
    model = rule.build(Architecture(n_inputs=784, hidden=[20], n_outputs=10), np.random.default_rng(0))
    f = rule.train_step(model, tiny.x_train[0].astype(np.float32) / 255, int(tiny.y_train[0]))
    assert f.counts[1].max() <= 1 and f.counts[2].max() <= 1
    for l in (1, 2):
        assert f.extras["capped"][l] == np.count_nonzero(f.extras["overflow"][l])
    assert f.extras["overflow_total"][1:].sum() > 0 and f.extras["capped"][1:].sum() > 0


def test_simulation_window_follows_tau():
    """t_sim = T_in + window_k max(tau_m, tau_s): 30 ms at the defaults; fixed rule: t_max."""
    assert make_rule("multispike").t_sim == 30.0
    assert make_rule("multispike", tau_s=20.0, tau_m=40.0).t_sim == 90.0
    assert make_rule("multispike", tau_s=8.0, tau_m=5.0, window_k=3.0).t_sim == 34.0
    assert make_rule("multispike", tau_s=0.5, tau_m=1.0).t_sim == 12.0
    assert make_rule("multispike", tau_s=20.0, tau_m=40.0, sim_window="fixed", t_max=30.0).t_sim == 30.0
    # spikes later than the former fixed 30 ms are simulated at slow time constants
    rule = make_rule("multispike", tau_s=20.0, tau_m=40.0)
    model = rule.build(Architecture(n_inputs=784, hidden=[50], n_outputs=10), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    _, layers = rule._forward(model, rng.uniform(0.3, 1.0, 784))
    assert layers[0].ev_t.max() > 30.0 and layers[0].ev_t.max() <= 90.0


def test_window_too_long_for_the_smallest_tau_is_refused():
    from spikewb.engine.errors import ConfigError
    rule = make_rule("multispike", tau_s=0.05, tau_m=1000.0)
    with pytest.raises(ConfigError, match="window_k"):
        rule.check_params()
    make_rule("multispike", tau_s=0.05, tau_m=1000.0, sim_window="fixed", t_max=30.0).check_params()


def test_silent_layer_and_no_input():
    ev_t, ev_j, _ = cuba.input_events(np.full(5, np.inf))
    ls = cuba.layer_forward(ev_t, ev_j, np.ones((5, 3)), tau_m=10.0, tau_s=5.0, v_th=1.0, t_max=20.0, max_spikes=4)
    assert ls.n.sum() == 0 and len(ls.ev_t) == 0
    dw, _, _ = cuba.network_backward((ev_t, ev_j, ev_j), [ls], [np.ones((5, 3))], np.zeros((3, 4)),
                                     tau_m=10.0, tau_s=5.0, v_th=[1.0], vdot_min=1e-4)
    assert not dw[0].any()


# ------------------------------------------------------------------ gradients vs finite differences
def _net(seed, sizes, tau_m, tau_s):
    rng = np.random.default_rng(seed)
    in_t = rng.uniform(0, 5, sizes[0])
    scale = {(10.0, 5.0): 1.0, (8.0, 5.0): 0.9, (5.0, 8.0): 0.45}[(tau_m, tau_s)]
    ws = [rng.uniform(-0.1, 0.6, (a, b)) * scale * (1.6 if l == 0 else 1.3) * np.sqrt(20 / a)
          for l, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
    return rng, in_t, ws


@pytest.mark.parametrize("tau_m,tau_s", TAUS)
@pytest.mark.parametrize("sizes", [(20, 8, 4), (16, 6, 5, 3)], ids=["2-layer", "3-layer"])
def test_gradient_matches_finite_differences(tau_m, tau_s, sizes):
    rng, in_t, ws = _net(7, sizes, tau_m, tau_s)
    n_w = len(ws)
    kw = dict(tau_m=tau_m, tau_s=tau_s, v_th=[1.0] * n_w, t_max=25.0, max_spikes=[12] * n_w)
    ev, layers = cuba.network_forward(in_t, ws, **kw)
    counts = np.concatenate([ls.n for ls in layers])
    assert np.all(counts < 12), "no neuron may fill its buffer (overflow would hide spikes)"
    assert 2 <= np.median(counts) <= 5 and np.mean((counts >= 2) & (counts <= 5)) >= 0.6, \
        f"test network should fire 2-5 times per neuron, got {counts}"
    c = rng.normal(size=(sizes[-1], 12))  # loss: random combination of all output spike times

    def loss(ws_):
        _, ls_ = cuba.network_forward(in_t, ws_, **kw)
        o = ls_[-1]
        n = [l.n.copy() for l in ls_]
        return sum(c[i, :o.n[i]] @ o.t[i, :o.n[i]] for i in range(len(o.n))), n

    dw, _, _ = cuba.network_backward(ev, layers, ws, c, tau_m=tau_m, tau_s=tau_s, v_th=kw["v_th"], vdot_min=0.0)
    n0 = [ls.n for ls in layers]
    for l in range(n_w):
        fd = np.zeros_like(ws[l])
        for idx in np.ndindex(ws[l].shape):
            wp = [w.copy() for w in ws]
            wm = [w.copy() for w in ws]
            wp[l][idx] += FD_H
            wm[l][idx] -= FD_H
            (lp, np_), (lm, nm) = loss(wp), loss(wm)
            assert all(np.array_equal(a, b) for a, b in zip(np_ + nm, n0 + n0)), "spike count changed under FD"
            fd[idx] = (lp - lm) / (2 * FD_H)
        assert np.abs(fd).max() > 0, f"layer {l + 1} has no gradient"
        err = _rel_err(dw[l], fd)
        assert err <= FD_RTOL, f"weight layer {l + 1}, tau_m={tau_m} tau_s={tau_s}: relative error {err:.2e}"
        big = np.abs(fd) > 1e-3 * np.abs(fd).max()
        np.testing.assert_allclose(dw[l][big], fd[big], rtol=FD_RTOL, err_msg=f"weight layer {l + 1}")


@pytest.mark.parametrize("loss_name,label", [("ttfs-softmax", 1), ("ttfs-softmax", "silent")])
def test_rule_gradient_matches_finite_differences(loss_name, label):
    """The rule's own loss (first-spike softmax, plus the silent-label term) end to end."""
    rule = make_rule("multispike", loss=loss_name, dtype="float64", init_mean=3.0, init_std=1.5,
                     init_mean_out=2.0, init_std_out=2.0, sim_window="fixed", t_max=25.0)
    model = rule.build(Architecture(n_inputs=30, hidden=[10], n_outputs=4), np.random.default_rng(4))
    x = np.random.default_rng(5).uniform(0.2, 1.0, 30)
    y = 1
    if label == "silent":
        model.weights[1][:, y] = -0.5  # the label neuron cannot fire: only the auxiliary term drives it
    loss, dw, info = rule.gradient(model, x, y)
    assert info["layers"][0].n.max() >= 2
    if label == "silent":
        assert info["layers"][-1].n[y] == 0 and info["aux_loss"] != 0.0
    for l in range(2):
        fd = np.zeros_like(model.weights[l])
        for idx in np.ndindex(fd.shape):
            vals = []
            for h in (FD_H, -FD_H):
                m = model.copy()
                m.weights[l][idx] += h
                vals.append(rule.gradient(m, x, y)[0])
            fd[idx] = (vals[0] - vals[1]) / (2 * FD_H)
        err = _rel_err(dw[l], fd)
        assert err <= FD_RTOL, f"{loss_name}/{label}: weight layer {l + 1} relative error {err:.2e}"


def test_ttfs_softmax_gradient():
    from spikewb.engine.rules.multispike import ttfs_softmax
    t = np.array([3.0, 2.5, np.inf, 4.0])
    _, g, _ = ttfs_softmax(t, 3, 0.7, 5.0)
    for k in (0, 1, 3):
        tp, tm = t.copy(), t.copy()
        tp[k] += 1e-6
        tm[k] -= 1e-6
        fd = (ttfs_softmax(tp, 3, 0.7, 5.0)[0] - ttfs_softmax(tm, 3, 0.7, 5.0)[0]) / 2e-6
        assert abs(fd - g[k]) < 1e-6
    assert g[2] == 0.0


# ------------------------------------------------------------------ optimiser and frame
def _small(**kw):
    rule = make_rule("multispike", **kw)
    model = rule.build(Architecture(n_inputs=784, hidden=[20], n_outputs=10), np.random.default_rng(0))
    return rule, model


def test_minibatch_sgd_applies_mean_gradient(tiny):
    rule, model = _small(optimizer="sgd", batch_size=2, lr=0.01, lr_decay=0.0)
    xs = [tiny.x_train[k].astype(np.float32) / 255 for k in range(2)]
    ys = [int(tiny.y_train[k]) for k in range(2)]
    w0 = [w.copy() for w in model.weights]
    grads = [rule.gradient(model, x, y)[1] for x, y in zip(xs, ys)]
    f1 = rule.train_step(model, xs[0], ys[0])
    for a, b in zip(model.weights, w0):
        np.testing.assert_array_equal(a, b)  # accumulating, no update yet
    assert f1.dw_norm == (0.0, 0.0)
    f2 = rule.train_step(model, xs[1], ys[1])
    for l in range(2):
        expect = w0[l] - (0.01 * 0.5 * (grads[0][l] + grads[1][l])).astype(np.float32)
        np.testing.assert_allclose(model.weights[l], expect, rtol=1e-6, atol=1e-7)
    assert all(v > 0 for v in f2.dw_norm)
    assert not model.state["grad0"].any() and model.state["n_acc"][0] == 0


def test_adam_first_step_is_lr_times_sign(tiny):
    rule, model = _small(optimizer="adam", batch_size=1, lr=1e-3)
    x, y = tiny.x_train[0].astype(np.float32) / 255, int(tiny.y_train[0])
    g = rule.gradient(model, x, y)[1]
    w0 = [w.copy() for w in model.weights]
    rule.train_step(model, x, y)
    for l in range(2):
        step = (w0[l] - model.weights[l]).astype(np.float64)
        big = np.abs(g[l]) > 1e-3
        np.testing.assert_allclose(step[big], 1e-3 * np.sign(g[l][big]), rtol=1e-3)


def test_frame_contents(tiny):
    rule, model = _small()
    x, y = tiny.x_train[0].astype(np.float32) / 255, int(tiny.y_train[0])
    f = rule.train_step(model, x, y, Record(neurons=((1, 0), (2, y)), weight_updates=True))
    assert f.time_unit == "ms" and f.signal_name == rule.signals
    for l in range(3):
        t, i = f.spikes(l)
        assert t.dtype == np.float32 and len(t) == f.counts[l].sum()
        assert np.all(np.diff(t) >= 0) and np.all((t >= 0) & (t <= rule.t_sim))
    assert f.extras["overflow"][1].shape == (20,) and f.extras["overflow_total"].shape == (3,)
    assert f.extras["capped"].shape == (3,) and f.duration == rule.t_sim == 30.0
    assert f.v_trace.shape == (2, len(f.extras["trace_t"]))
    for k, (layer, idx) in enumerate(f.trace_ids):
        n = f.counts[layer][idx]
        assert len(f.extras["spike_t_rec"][k]) == n == len(f.extras["spike_grad"][k])
        assert f.extras["spike_dw"][k].shape == (n, model.sizes[layer - 1])
        np.testing.assert_allclose(f.extras["spike_dw"][k].sum(axis=0) * -f.lr, f.extras["dw_in"][k],
                                   rtol=1e-4, atol=1e-9)
    # signal = sum over a neuron's spikes of the total dL/dt; output layer equals its direct term
    assert np.isfinite(f.signal[1]).all() and f.signal[2].shape == (10,)
    np.testing.assert_allclose(f.signal[2], f.signal_raw[2], rtol=1e-6)


def test_predict_is_earliest_first_spike(tiny):
    rule, model = _small()
    X = tiny.x_test[:5].astype(np.float32) / 255
    first, counts = rule.output_spikes(model, X)
    pred = rule.predict(model, X)
    for k in range(5):
        expect = int(np.argmin(first[k])) if np.isfinite(first[k]).any() else -1
        assert pred[k] == expect


def test_count_loss_runs(tiny):
    rule, model = _small(loss="count")
    f = rule.train_step(model, tiny.x_train[0].astype(np.float32) / 255, int(tiny.y_train[0]))
    assert f.loss_name.startswith("spike-count") and f.target.shape == (10,)


def test_bad_time_constants_are_refused():
    from spikewb.engine.errors import ConfigError
    rule = make_rule("multispike", tau_m=5.0, tau_s=5.0)
    with pytest.raises(ConfigError, match="alpha-kernel"):
        rule.build(Architecture(n_inputs=4, hidden=[3], n_outputs=2), np.random.default_rng(0))


# ------------------------------------------------------------------ learning (slow)
@pytest.mark.slow
def test_learns_mnist5k_784_400_10(mnist5k):
    """784-400-10 reaches >= 85 % test accuracy on MNIST 5k (4000/1000) within 10 epochs."""
    from spikewb.engine.training.trainer import Trainer
    tr = Trainer(make_rule("multispike"), mnist5k, Architecture(hidden=[400]), seed=0)
    t0 = time.perf_counter()
    best = 0.0
    for epoch in range(10):
        tr.fit(epoch + 1)
        best = max(best, tr.history[-1].test_accuracy)
        print(f"epoch {epoch + 1}: test {tr.history[-1].test_accuracy:.4f}, {time.perf_counter() - t0:.0f} s")
        if best >= 0.85:
            break
    assert best >= 0.85, f"best test accuracy {best:.4f} after {len(tr.history)} epochs"


@pytest.mark.slow
def test_tau_sweep_rows():
    from spikewb.engine.training.experiments import tau_sweep
    rows = tau_sweep("mnist-5k", tau_s_values=(2.0, 5.0), n_train=20, n_test=10, hidden=(8,), batch_size=4)
    assert [(r["mode"], r["tau_s"]) for r in rows] == [("multi", 2.0), ("multi", 5.0), ("single", 2.0),
                                                        ("single", 5.0)]
    assert all(r["tau_m"] == 2 * r["tau_s"] and 0 <= r["test_accuracy"] <= 1 for r in rows)
    assert all(r["hidden_spikes"] <= 1.0 for r in rows if r["mode"] == "single")
