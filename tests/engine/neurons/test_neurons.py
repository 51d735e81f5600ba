"""The discrete LIF layer against hand-computed traces and a slow NumPy twin."""

import numpy as np
import pytest

from spikewb.engine.neurons.lif import lif_layer_forward, lif_reference


def run_kernel(spikes_in, w, leak=0.75, v_th=1.0, mask=None, in_scale=1.0, rec=None, traces=False):
    T = spikes_in.shape[0] - 1
    n_post = w.shape[1]
    mask = np.ones(n_post, np.uint8) if mask is None else mask.astype(np.uint8)
    out = np.zeros((T + 1, n_post), np.uint8)
    tr = np.zeros((T if traces else 0, w.shape[0]), w.dtype)
    rec = np.arange(n_post) if rec is None else np.asarray(rec)
    v_rec = np.zeros((len(rec), T), w.dtype)
    i_rec = np.zeros((len(rec), T), w.dtype)
    n = lif_layer_forward(spikes_in, w.dtype.type(in_scale), w, w.dtype.type(leak), w.dtype.type(v_th),
                          mask, w.dtype.type(leak), out, tr, rec.astype(np.int64), v_rec, i_rec)
    return out, tr, v_rec, i_rec, n


def test_hand_computed_trace():
    """One neuron, weight 0.6, input spike every step, leak 0.75, threshold 1, soft reset.

    step 0: V = 0.75*0    + 0.6 = 0.6          no spike
    step 1: V = 0.75*0.6  + 0.6 = 1.05   >= 1   spike, V -> 0.05
    step 2: V = 0.75*0.05 + 0.6 = 0.6375       no spike
    step 3: V = 0.75*0.6375 + 0.6 = 1.078125   spike, V -> 0.078125
    step 4: V = 0.75*0.078125 + 0.6 = 0.65859375
    """
    T = 5
    s = np.zeros((T + 1, 1), np.uint8)
    s[:T] = 1
    w = np.array([[0.6]], np.float64)
    out, _, v, i_cur, n = run_kernel(s, w)
    np.testing.assert_allclose(v[0], [0.6, 1.05, 0.6375, 1.078125, 0.65859375], rtol=1e-12)
    np.testing.assert_allclose(i_cur[0], [0.6] * 5)
    assert out[1:, 0].tolist() == [0, 1, 0, 1, 0]   # step t is written to row t + 1
    assert out[0, 0] == 0 and n == 2


def test_threshold_is_inclusive_and_mask_blocks_fire_and_reset():
    s = np.zeros((4, 2), np.uint8)
    s[0, 0] = 1
    w = np.array([[1.0, 1.0], [0.0, 0.0]])          # both neurons get exactly v_th at step 0
    out, _, v, _, _ = run_kernel(s, w, leak=0.5, mask=np.array([1, 0]))
    assert out[1].tolist() == [1, 0]
    # masked neuron 1 neither spikes nor resets: 1.0 -> 0.5 -> 0.25; neuron 0 reset to 0
    np.testing.assert_allclose(v[1], [1.0, 0.5, 0.25])
    np.testing.assert_allclose(v[0], [1.0, 0.0, 0.0])


def test_presynaptic_trace():
    s = np.zeros((5, 1), np.uint8)
    s[[0, 2], 0] = 1
    _, tr, _, _, _ = run_kernel(s, np.zeros((1, 1)), traces=True)
    np.testing.assert_allclose(tr[:, 0], [1.0, 0.75, 1.5625, 1.171875])


@pytest.mark.parametrize("density", [0.0, 0.3, 1.0], ids=["silent", "sparse", "all-spikes"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_matches_reference(density, dtype):
    rng = np.random.default_rng(7)
    T, n_pre, n_post = 15, 30, 12
    s = np.zeros((T + 1, n_pre), np.uint8)
    s[:T] = rng.random((T, n_pre)) < density
    w = rng.normal(0, 0.4, (n_pre, n_post)).astype(dtype)
    mask = (rng.random(n_post) > 0.2).astype(np.uint8)
    out, _, v, _, _ = run_kernel(s, w, mask=mask, in_scale=1.25)
    cur = (s[:T].astype(np.float64) * 1.25) @ w.astype(np.float64)
    v_ref, z_ref = lif_reference(cur, 0.75, 1.0, mask)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(v, v_ref.T, rtol=tol, atol=tol, err_msg=f"dtype={dtype.__name__}")
    np.testing.assert_array_equal(out[1:], z_ref)
