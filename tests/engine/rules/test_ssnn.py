"""SSNN-BP: SRM kernel, fixed/adaptive threshold unit, WTA relaxation, one update vs NumPy, learning."""

import math
import time

import numpy as np
import pytest

from spikewb.engine.neurons import srm
from spikewb.engine.frame import Record
from spikewb.engine.network import Architecture
from spikewb.engine.rules import make_rule
from tests import naive_ssnn


# ------------------------------------------------------------------ causal kernel
def test_causal_kernel_hand_values():
    # T = 51: M = 25, tau = 5.1 -> a = exp(-1/5.1) = 0.821948; kappa(d) = 1 - a^d
    k = srm.causal_kernel(51, 5.1)
    assert k.shape == (25,)
    np.testing.assert_allclose(k[:3], [0.178052, 0.324402, 0.444694], atol=1e-6)
    np.testing.assert_allclose(k[24], 0.992568, atol=1e-6)
    # gradient kernel tau_b = 0.51: taps 0.859252, 0.980190, then ~1
    kb = srm.causal_kernel(51, 0.51)
    np.testing.assert_allclose(kb[:3], [0.859252, 0.980190, 0.997212], atol=1e-6)
    assert srm.window(301) == 150 and srm.causal_kernel(301, 30.1).shape == (150,)


def test_kernel_is_causal_lags_one_to_m():
    T, m = 11, srm.window(11)                       # M = 5
    i_syn = np.zeros((T, 1))
    i_syn[2, 0] = 1.0                               # one unit impulse at t = 2
    v = np.empty((T, 1))
    srm.srm_potential(i_syn, srm.causal_kernel(T, 1.1), v)
    expected = np.zeros(T)
    expected[3:3 + m] = 1.0 - np.exp(-np.arange(1, m + 1) / 1.1)   # lag 0 and lags > M are zero
    np.testing.assert_allclose(v[:, 0], expected, atol=1e-15)


@pytest.mark.parametrize("T", [5, 21, 51, 301])
def test_incremental_matches_direct_convolution(T):
    rng = np.random.default_rng(T)
    i_syn = rng.normal(0.0, 1.0, (T, 7))
    tau = T / 10
    v1, v2 = np.empty_like(i_syn), np.empty_like(i_syn)
    srm.srm_potential(i_syn, srm.causal_kernel(T, tau), v1)
    srm.srm_potential_incremental(i_syn, tau, srm.window(T), v2)
    np.testing.assert_allclose(v2, v1, atol=1e-10, err_msg=f"incremental SRM kernel, T = {T}")
    np.testing.assert_allclose(naive_ssnn.potential(i_syn, srm.causal_kernel(T, tau)), v1, atol=1e-12)


# ------------------------------------------------------------------ threshold unit
def _constant_drive(adaptive):
    T = 51
    i_syn = np.ones((T, 1))
    v = np.empty((T, 1))
    z = np.empty((T, 1), np.uint8)
    srm.srm_layer(i_syn, 5.1, 25, 5.0, adaptive, v, z)
    return v[:, 0], z[:, 0]


def test_fixed_threshold_unit_constant_drive():
    # V(t) = sum_{d=1..min(t,25)} (1 - a^d) = t - a (1 - a^t) / (1 - a) for t <= 25
    # hand: V(8) = 8 - 3.6546 = 4.3454 <= 5 ; V(9) = 9 - 3.8258 = 5.1742 > 5
    v, z = _constant_drive(adaptive=False)
    a = math.exp(-1 / 5.1)
    closed = [min(t, 25) - a * (1 - a ** min(t, 25)) / (1 - a) for t in range(51)]
    np.testing.assert_allclose(v, closed, atol=1e-12)
    np.testing.assert_allclose(v[8], 4.3454, atol=1e-4)
    np.testing.assert_allclose(v[9], 5.1742, atol=1e-4)
    np.testing.assert_allclose(v[25:], 20.4180, atol=1e-4)    # plateau: 25 - sum a^d
    # strict >, no reset, no adaptation: fires at every step from t = 9 on
    assert np.flatnonzero(z).tolist() == list(range(9, 51))


def test_adaptive_threshold_unit_constant_drive():
    # threshold 5, 10, 15, 20, 25: V crosses the first four once each (plateau 20.4180 < 25)
    v, z = _constant_drive(adaptive=True)
    times = np.flatnonzero(z).tolist()
    assert len(times) == 4
    assert times[0] == 9
    for t, level in zip(times, (5.0, 10.0, 15.0, 20.0)):
        assert v[t] > level >= v[t - 1], f"spike at {t} should be the first step above {level}"


def test_fixed_threshold_is_strict():
    v = np.array([[4.999], [5.0], [5.0001]])
    z = np.empty((3, 1), np.uint8)
    srm.srm_spikes(v, 5.0, False, z)
    assert z[:, 0].tolist() == [0, 0, 1]


# ------------------------------------------------------------------ WTA
# Hand-worked 3-neuron example: box kernel over 2 lags (tau -> 0 gives kappa = 1, 1),
# theta = 1.5, T = 4, constant currents I = (1.6, 0.9, 0.3), w_inh = 1.
#   pass 0: V(t) = I(t-1) + I(t-2): t1 = (1.6, .9, .3) -> n0; t2, t3 = (3.2, 1.8, .6) -> n0, n1
#   pass 1: inhibition of pass 0: t1 (0,1,1), t2 (1,1,2), t3 (1,1,2)
#           I = t0 (1.6,.9,.3) t1 (1.6,-.1,-.7) t2 (.6,-.1,-1.7) t3 (.6,-.1,-1.7)
#           V: t1 (1.6,.9,.3) -> n0; t2 (3.2,.8,-.4) -> n0; t3 (2.2,-.2,-2.4) -> n0
#   pass 2: subtracts (0,1,1) at t1..t3 on top: I = t1 (1.6,-1.1,-1.7) t2, t3 (.6,-1.1,-2.7)
#           V: t1 (1.6,..) t2 (3.2,-.2,-1.4) t3 (2.2,-2.2,-4.4) -> n0 only: fixed point.
def _wta(n_iter, causal=False):
    i_syn = np.tile([1.6, 0.9, 0.3], (4, 1)).astype(np.float64)
    v = np.empty_like(i_syn)
    z = np.empty(i_syn.shape, np.uint8)
    if causal:
        srm.wta_causal(i_syn, 1e-3, 2, 1.5, False, 1.0, v, z)
    else:
        srm.wta_relaxation(i_syn, 1e-3, 2, 1.5, False, n_iter, 1.0, v, z)
    return z, v, i_syn


def test_wta_relaxation_hand_worked_three_neurons():
    z0, v0, _ = _wta(0)
    assert z0.tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0]]
    np.testing.assert_allclose(v0[2], [3.2, 1.8, 0.6], atol=1e-12)
    z1, v1, i1 = _wta(1)
    assert z1.tolist() == [[0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0]]
    np.testing.assert_allclose(v1[2:], [[3.2, 0.8, -0.4], [2.2, -0.2, -2.4]], atol=1e-12)
    np.testing.assert_allclose(i1[2], [0.6, -0.1, -1.7], atol=1e-12)
    z2, v2, i2 = _wta(2)
    assert z2.tolist() == z1.tolist()
    np.testing.assert_allclose(v2[2:], [[3.2, -0.2, -1.4], [2.2, -2.2, -4.4]], atol=1e-12)
    np.testing.assert_allclose(i2[1:], [[1.6, -1.1, -1.7], [0.6, -1.1, -2.7], [0.6, -1.1, -2.7]], atol=1e-12)
    # the NumPy relaxation agrees
    zn, vn, _ = naive_ssnn.wta(np.tile([1.6, 0.9, 0.3], (4, 1)), np.ones(2), 1.5, 2)
    np.testing.assert_array_equal(zn, z2)
    np.testing.assert_allclose(vn, v2, atol=1e-12)


def test_wta_causal_hand_worked():
    # causal: t1 V = (1.6,.9,.3) -> n0, I(1) -= (0,1,1); t2 V = (3.2,.8,-.4) -> n0;
    # t3 V = I(2) + I(1) = (3.2,-.2,-1.4) -> n0
    z, v, _ = _wta(0, causal=True)
    assert z.tolist() == [[0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0]]
    np.testing.assert_allclose(v[3], [3.2, -0.2, -1.4], atol=1e-12)


# ------------------------------------------------------------------ one update vs NumPy
CONFIGS = [
    dict(),
    dict(backward_w="raw"),
    dict(update="rate"),
    dict(threshold="adaptive", v_th=1.0, v_th_grad=1.0),
    dict(wta="causal"),
    dict(wta_iter=2, n_steps=21, error_gain=3.0),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "defaults")
def test_one_update_matches_numpy(cfg, tiny):
    """Nesterov momentum on (beta = 0.9) with a non-zero velocity: the look-ahead matters."""
    rule = make_rule("ssnn", batch_size=3, lr=0.5, momentum=0.9, **cfg)
    arch = Architecture(n_inputs=784, hidden=[64], n_outputs=10)
    model = rule.build(arch, np.random.default_rng(3))
    rng = np.random.default_rng(11)
    assert not any(k.startswith("mom") for k in model.state), "the velocity is made lazily"
    for l, w in enumerate(model.weights):                    # kept by the rule's lazy initialisation
        model.state[f"mom{l}"] = rng.normal(0, 0.01, w.shape).astype(w.dtype)
    masks = [(rng.random(784) >= 0.2).astype(np.uint8), (rng.random(64) >= 0.3).astype(np.uint8)]
    model.state["mask0"], model.state["mask1"] = masks[0].copy(), masks[1].copy()
    T = rule.n_steps
    xs, ys, labels = [], [], []
    for k in range(3):
        x = tiny.x_train[k].astype(np.float32) / 255
        xs.append((rng.random((T, 784)) < x).astype(np.uint8))
        y = int(tiny.y_train[k])
        labels.append(y)
        yt = np.zeros((T, 10), np.uint8)
        yt[:, y] = rng.random(T) < 0.5
        ys.append(yt)
    w0 = [w.copy() for w in model.weights]
    m0 = [model.state[f"mom{l}"].copy() for l in range(2)]
    p = {k: rule.param.values()[k] for k in ("tau_frac", "tau_grad_frac", "v_th", "v_th_grad", "threshold",
                                              "wta_iter", "w_inh", "error_gain", "backward_w",
                                              "backproj_scale", "update", "momentum", "lr", "wta")}
    new_w, new_m, passes = naive_ssnn.batch_update(w0, m0, xs, ys, masks, p)
    frames = [rule.step_spikes(model, xs[k], ys[k], labels[k], Record()) for k in range(3)]
    for k, (f, ps) in enumerate(zip(frames, passes)):
        for l in range(3):
            np.testing.assert_array_equal(f.counts[l], ps["s"][l].sum(0), err_msg=f"sample {k} layer {l} counts")
        for l in (1, 2):
            np.testing.assert_array_equal(f.signal[l], ps["dpos"][l].sum(0).astype(np.float32) - ps["dneg"][l].sum(0),
                                          err_msg=f"sample {k} layer {l} gradient counts")
    assert frames[-1].extras["batch_applied"] and not frames[0].extras["batch_applied"]
    for l in range(2):
        np.testing.assert_allclose(model.weights[l], new_w[l], rtol=1e-6, atol=1e-7, err_msg=f"W{l + 1} {cfg}")
        np.testing.assert_allclose(model.state[f"mom{l}"], new_m[l], rtol=1e-6, atol=1e-7)
        assert not np.array_equal(model.weights[l], w0[l]) or l == 0 and cfg.get("backward_w") == "raw"
    if cfg.get("backward_w") != "raw" and "n_steps" not in cfg:
        assert sum(np.abs(f.signal[1]).sum() for f in frames) > 0, "hidden gradient streams never fired"


def _batch(tiny, rule, n_hidden=64, seed=11, n=3):
    """A model, fixed dropout masks and ``n`` encoded samples (input spikes, target train, label)."""
    model = rule.build(Architecture(n_inputs=784, hidden=[n_hidden], n_outputs=10), np.random.default_rng(3))
    rng = np.random.default_rng(seed)
    masks = [(rng.random(784) >= 0.2).astype(np.uint8), (rng.random(n_hidden) >= 0.3).astype(np.uint8)]
    model.state["mask0"], model.state["mask1"] = masks[0].copy(), masks[1].copy()
    T = rule.n_steps
    samples = []
    for k in range(n):
        x = tiny.x_train[k].astype(np.float32) / 255
        yt = np.zeros((T, 10), np.uint8)
        yt[:, int(tiny.y_train[k])] = rng.random(T) < 0.5
        samples.append(((rng.random((T, 784)) < x).astype(np.uint8), yt, int(tiny.y_train[k])))
    return model, masks, samples


def _naive_params(rule):
    return {k: rule.param.values()[k] for k in ("tau_frac", "tau_grad_frac", "v_th", "v_th_grad", "threshold",
                                                 "wta_iter", "w_inh", "error_gain", "backward_w",
                                                 "backproj_scale", "update", "momentum", "lr", "wta")}


@pytest.mark.parametrize("dtype,tol", [("float32", dict(rtol=1e-6, atol=1e-7)),
                                       ("float64", dict(rtol=1e-12, atol=1e-15))])
@pytest.mark.parametrize("update", ["coincidence", "rate"])
def test_default_update_is_plain_sgd(tiny, dtype, tol, update):
    """Authors' executed optimiser: W_new = W_old + lr dW (dW = -gradient, the batch-averaged
    coincidence counts computed at W itself); no velocity, no look-ahead."""
    rule = make_rule("ssnn", batch_size=3, lr=0.5, dtype=dtype, update=update)
    assert rule.momentum == 0.0
    model, masks, samples = _batch(tiny, rule)
    w0 = [w.copy() for w in model.weights]
    frames = [rule.step_spikes(model, xs, ys, y, Record()) for xs, ys, y in samples]
    assert frames[-1].extras["batch_applied"]
    # hand computation with the NumPy twin, at W (the passes see W, not a look-ahead)
    p = _naive_params(rule)
    passes = [naive_ssnn.sample_pass(w0, xs, ys, masks, p) for xs, ys, _ in samples]
    T = rule.n_steps
    for f, ps in zip(frames, passes):
        for l in range(3):
            np.testing.assert_array_equal(f.counts[l], ps["s"][l].sum(0), err_msg=f"layer {l} counts")
    for l in range(2):
        dw = sum(ps["dw"][l] for ps in passes) / (3 * T)            # descent direction (= -dL/dW)
        expect = w0[l] + (rule.lr * dw).astype(w0[l].dtype)
        np.testing.assert_allclose(model.weights[l], expect, **tol, err_msg=f"W{l + 1}, {dtype}, {update}")
        assert not np.array_equal(model.weights[l], w0[l]), f"W{l + 1} did not move"
    assert not any(k.startswith(("mom", "look")) for k in model.state), sorted(model.state)


def test_momentum_switch_gives_the_nesterov_step(tiny):
    """momentum = 0.9: the first batch equals SGD (zero velocity); the second uses the look-ahead
    W + 0.9 M and steps 0.9 M + lr dW, unlike plain SGD; switching back off drops the velocity."""
    sgd = make_rule("ssnn", batch_size=3, lr=0.5)
    nes = make_rule("ssnn", batch_size=3, lr=0.5, momentum=0.9)
    model_a, masks, samples = _batch(tiny, sgd, n=6)
    model_b = model_a.copy()
    w0 = [w.copy() for w in model_a.weights]
    p = _naive_params(nes)
    ref_w, ref_m, _ = naive_ssnn.batch_update(w0, [np.zeros_like(w) for w in w0], [s[0] for s in samples[:3]],
                                              [s[1] for s in samples[:3]], masks, p)
    for xs, ys, y in samples[:3]:
        sgd.step_spikes(model_a, xs, ys, y)
        nes.step_spikes(model_b, xs, ys, y)
    for l in range(2):
        np.testing.assert_allclose(model_b.weights[l], model_a.weights[l], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(model_b.weights[l], ref_w[l], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(model_b.state[f"mom{l}"], ref_m[l], rtol=1e-6, atol=1e-7)
    w1a = [w.copy() for w in model_a.weights]
    w1b = [w.copy() for w in model_b.weights]
    ref_w2, ref_m2, _ = naive_ssnn.batch_update(w1b, [model_b.state[f"mom{l}"].copy() for l in range(2)],
                                                [s[0] for s in samples[3:]], [s[1] for s in samples[3:]], masks, p)
    for xs, ys, y in samples[3:]:
        sgd.step_spikes(model_a, xs, ys, y)
        nes.step_spikes(model_b, xs, ys, y)
    for l in range(2):
        np.testing.assert_allclose(model_b.weights[l], ref_w2[l], rtol=1e-6, atol=1e-7, err_msg=f"Nesterov W{l + 1}")
        step_b = model_b.weights[l].astype(np.float64) - w1b[l]
        step_a = model_a.weights[l].astype(np.float64) - w1a[l]
        # the momentum step carries 0.9 x the previous step; plain SGD does not
        carried = 0.9 * (w1b[l].astype(np.float64) - w0[l])
        assert np.linalg.norm(step_b - step_a) > 0.5 * np.linalg.norm(carried), f"W{l + 1}"
    nes.momentum = 0.0
    nes.step_spikes(model_b, *samples[0])
    assert not any(k.startswith(("mom", "look")) for k in model_b.state)


def test_momentum_checkpoints_load_either_way(tiny, tmp_path):
    """The velocity is optional state: a momentum checkpoint loads into a plain-SGD rule and back."""
    from spikewb.engine.training.trainer import Trainer
    arch = Architecture(n_inputs=784, hidden=[30], n_outputs=10)
    a = Trainer(make_rule("ssnn", batch_size=4, momentum=0.9), tiny, arch, seed=2)
    for _ in range(6):
        a.step()
    assert "mom0" in a.model.state and "look0" in a.model.state
    pa = a.save(tmp_path / "nesterov.npz")
    b = Trainer(make_rule("ssnn", batch_size=4), tiny, arch, seed=2)
    b.load_state(pa)
    b.step()
    assert "mom0" not in b.model.state
    pb = b.save(tmp_path / "sgd.npz")
    c = Trainer(make_rule("ssnn", batch_size=4, momentum=0.9), tiny, arch, seed=2)
    c.load_state(pb)
    for _ in range(4):
        c.step()
    assert "mom0" in c.model.state and np.all(np.isfinite(c.model.weights[0]))


def test_presets_run_the_authors_plain_sgd():
    from spikewb.engine.rules.ssnn import PRESETS
    assert all(p["momentum"] == 0.0 for p in PRESETS.values())


# ------------------------------------------------------------------ frames and minibatches
def _small(**kw):
    rule = make_rule("ssnn", **kw)
    model = rule.build(Architecture(n_inputs=784, hidden=[50], n_outputs=10), np.random.default_rng(0))
    return rule, model


def test_frame_streams(tiny):
    rule, model = _small()
    x = tiny.x_train[0].astype(np.float32) / 255
    f = rule.train_step(model, x, int(tiny.y_train[0]), Record(neurons=((1, 3), (2, 1))))
    T = rule.n_steps
    assert f.v_trace.shape == (2, T) and f.extras["v_grad_pos"].shape == (2, T)
    np.testing.assert_array_equal(f.extras["v_grad_neg"], -f.extras["v_grad_pos"])
    for l in (1, 2):
        pos = np.bincount(f.extras["grad_pos_i"][l], minlength=model.sizes[l])
        neg = np.bincount(f.extras["grad_neg_i"][l], minlength=model.sizes[l])
        np.testing.assert_array_equal(f.signal[l], (pos - neg).astype(np.float32))
        np.testing.assert_array_equal(np.bincount(f.spike_i[l], minlength=model.sizes[l]), f.counts[l])
        assert f.spike_t[l].max(initial=0) < T
    # at most one gradient stream per step and neuron
    pairs_p = set(zip(f.extras["grad_pos_t"][2].tolist(), f.extras["grad_pos_i"][2].tolist()))
    pairs_n = set(zip(f.extras["grad_neg_t"][2].tolist(), f.extras["grad_neg_i"][2].tolist()))
    assert not pairs_p & pairs_n
    assert f.target.sum() == len(f.extras["target_t"]) and f.target[int(tiny.y_train[0])] > 0


def test_weights_change_only_every_batch(tiny):
    rule, model = _small(batch_size=4)
    w0 = [w.copy() for w in model.weights]
    for k in range(3):
        f = rule.train_step(model, tiny.x_train[k].astype(np.float32) / 255, int(tiny.y_train[k]))
        assert not f.extras["batch_applied"]
        for a, b in zip(model.weights, w0):
            np.testing.assert_array_equal(a, b)
    f = rule.train_step(model, tiny.x_train[3].astype(np.float32) / 255, int(tiny.y_train[3]))
    assert f.extras["batch_applied"] and int(model.state["n_acc"][0]) == 0
    assert not np.array_equal(model.weights[1], w0[1])


def test_dropout_mask_fixed_within_batch(tiny):
    rule, model = _small(batch_size=3)
    seen = []
    for k in range(6):
        rule.train_step(model, tiny.x_train[k].astype(np.float32) / 255, int(tiny.y_train[k]))
        seen.append(model.state["mask1"].copy())
    np.testing.assert_array_equal(seen[0], seen[2])
    assert not np.array_equal(seen[2], seen[3])
    assert 0.5 < seen[0].mean() < 0.9                          # p = 0.3


def test_predict_deterministic_and_order_free(tiny):
    rule, model = _small()
    X = tiny.x_test[:5].astype(np.float32) / 255
    a = rule.predict(model, X)
    b = rule.predict(model, X[::-1])[::-1]
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ learning on real data
@pytest.mark.slow
def test_learns_mnist_5k(mnist5k):
    """784-1000-10, T = 51, 4000 train / 1000 test, <= 10 epochs: >= 85 % test accuracy."""
    from spikewb.engine.training.trainer import Trainer
    data = mnist5k.subset(4000, 1000)
    rule = make_rule("ssnn", **LEARN_PARAMS)
    tr = Trainer(rule, data, Architecture(n_inputs=784, hidden=[1000], n_outputs=10), seed=0)
    t0 = time.perf_counter()
    best = 0.0
    for epoch in range(10):
        tr.fit(epoch + 1)
        best = max(best, tr.history[-1].test_accuracy)
        print(f"epoch {epoch}: test {tr.history[-1].test_accuracy:.4f} ({time.perf_counter() - t0:.0f} s)")
        if best >= 0.85:
            break
    assert best >= 0.85, f"test accuracy {best:.3f} after {epoch + 1} epochs"


#: Settings of the learning test (see docs/rules/ssnn.md for the measured curve).
LEARN_PARAMS = dict()  # the defaults: fixed threshold, normalised backward W2, RPU update, plain SGD


def test_coincidence_counts_and_norm():
    rng = np.random.default_rng(5)
    pre = (rng.random((30, 40)) < 0.3).astype(np.uint8)
    dpos = (rng.random((30, 12)) < 0.2).astype(np.uint8)
    dneg = ((rng.random((30, 12)) < 0.2) & (dpos == 0)).astype(np.uint8)
    acc = np.ones((40, 12))
    sq = srm.coincidence_accumulate(pre, dpos, dneg, acc)
    C = pre.T.astype(np.float64) @ (dpos.astype(np.float64) - dneg)
    np.testing.assert_array_equal(acc, 1.0 + C)
    assert sq == pytest.approx(float((C ** 2).sum()))
    assert srm.coincidence_norm_sq(pre, dpos, dneg) == pytest.approx(sq)
    assert srm.coincidence_accumulate(pre, np.zeros_like(dpos), np.zeros_like(dneg), acc) == 0.0


def test_t_sweep_rows():
    from spikewb.engine.training.experiments import t_sweep
    rows = t_sweep("mnist-5k", t_values=(11, 21), epochs=1, n_train=60, n_test=30, hidden=(20,), batch_size=10)
    assert [(r["T"], r["epoch"]) for r in rows] == [(11, 0), (21, 0)]
    assert all(0.0 <= r["test_accuracy"] <= 1.0 and r["seconds"] > 0 for r in rows)


def test_checkpoint_mid_batch_resumes_exactly(tiny, tmp_path):
    from spikewb.engine.training.trainer import Trainer
    arch = Architecture(n_inputs=784, hidden=[30], n_outputs=10)
    a = Trainer(make_rule("ssnn", batch_size=4), tiny, arch, seed=2)
    for _ in range(6):
        a.step()
    path = a.save(tmp_path / "ck.npz")
    b = Trainer(make_rule("ssnn", batch_size=4), tiny, arch, seed=2)
    b.load_state(path)
    for _ in range(6):
        fa, fb = a.step(), b.step()
        assert fa.loss == fb.loss
    for wa, wb in zip(a.model.weights, b.model.weights):
        np.testing.assert_array_equal(wa, wb)
