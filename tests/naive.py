"""Slow, obvious NumPy versions of engine kernels, written independently of them.

Tests compare the numba engine against these; the Desire BP benchmark uses
:func:`desire_step` as its vectorised-NumPy reference.  Nothing here imports
engine internals, so a bug shared by both would have to be written twice.
"""

from __future__ import annotations

import numpy as np


def rate_encode(x: np.ndarray, n_steps: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Deterministic rate code, (T, n) 0/1 float: U += p; spike if U >= 1; U -= 1 (float32 like torch)."""
    x = np.asarray(x, np.float32)
    u = np.zeros_like(x)
    out = np.zeros((n_steps, x.size), np.float32)
    for t in range(n_steps):
        u = u + x
        s = u >= np.float32(1.0)
        if mask is not None:
            s &= mask.astype(bool)
        out[t] = s
        u = u - s.astype(np.float32)
    return out


def desire_step(weights, x, label, masks, *, n_steps=20, leak=0.75, v_th=1.0, margin=4,
                alpha_out=0.30, alpha_hid=0.05, lr=1e-5, p_in=0.0, p_hid=0.0, train=True):
    """One Desire BP training step on pre-major weights (modified in place when ``train``).

    ``masks`` holds one 0/1 vector per layer (input first); dropout scales are
    ``1/(1-p)``.  Returns a dict with spikes (per layer, (T, n)), counts, desire,
    sigma (hidden), and the weight updates.
    """
    L = len(weights)
    n_target = n_steps - margin
    scales = [1.0 / (1.0 - p_in)] + [1.0 / (1.0 - p_hid)] * (L - 1) + [1.0]
    if not train:
        scales = [1.0] * (L + 1)
    s_in = rate_encode(x, n_steps, masks[0])
    # buffers with T+1 rows: layer reads row t of predecessor, writes row t+1
    bufs = [np.vstack([s_in, np.zeros((1, s_in.shape[1]), np.float32)])]
    traces = []
    for l in range(1, L + 1):
        w = weights[l - 1]
        prev = bufs[l - 1]
        v = np.zeros(w.shape[1])
        out = np.zeros((n_steps + 1, w.shape[1]))
        x_tr = np.zeros((n_steps, w.shape[0]))
        for t in range(n_steps):
            x_tr[t] = (leak * x_tr[t - 1] if t > 0 else 0.0) + np.minimum(prev[t], 1.0)
            v = leak * v + (prev[t] * scales[l - 1]) @ w
            z = (v >= v_th) & (masks[l] > 0)
            out[t + 1] = z
            v = v - v_th * z
        bufs.append(out)
        traces.append(x_tr)
    counts = [b.sum(0) for b in bufs]
    should = np.zeros(weights[-1].shape[1])
    should[label] = 1.0
    e_out = np.abs(should - counts[-1] / n_target)
    delta = [None] * (L + 1)
    sigma = [None] * (L + 1)
    delta[L] = np.where(e_out > alpha_out, 2 * should - 1, 0.0)
    for l in range(L, 1, -1):
        e = np.abs((delta[l] > 0) - counts[l] / n_target)
        g = e * delta[l] * masks[l]
        sigma[l - 1] = weights[l - 1] @ g
        delta[l - 1] = np.sign(sigma[l - 1]) * (np.abs(sigma[l - 1]) >= alpha_hid)
    dws = []
    for l in range(1, L + 1):
        post = bufs[l][1:]                             # (T, n_post)
        dw = lr * traces[l - 1].T @ (post * (delta[l] * masks[l]))   # (n_pre, n_post)
        dws.append(dw)
    if train:
        for l in range(1, L + 1):
            weights[l - 1] += dws[l - 1]
    return dict(spikes=bufs, counts=counts, delta=delta, sigma=sigma, dw=dws, e_out=e_out)
