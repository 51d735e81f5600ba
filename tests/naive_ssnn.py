"""Plain NumPy SSNN-BP, written from ``reference/desire_ssnn.md`` 2.9 without looking at the kernels.

Slow and obvious on purpose: every SRM potential is the direct convolution
over lags 1..M, thresholds are Python loops, the WTA is the whole-train
relaxation, and the coincidence update is a matrix product ``X^T (d+ - d-)``.
Used by ``tests/engine/rules/test_ssnn.py`` and ``tests/bench/bench_ssnn.py``.
"""

from __future__ import annotations

import numpy as np


def kernel(n_steps, tau):
    """kappa(d) = 1 - exp(-d / tau) for d = 1..floor(T/2)."""
    m = max(n_steps // 2, 1)
    return 1.0 - np.exp(-np.arange(1, m + 1) / tau)


def potential(current, kappa):
    """V[t] = sum_{d=1..M} kappa[d-1] * current[t-d] (zero before t = 0)."""
    current = np.asarray(current, np.float64)
    v = np.zeros_like(current)
    for d in range(1, len(kappa) + 1):
        v[d:] += kappa[d - 1] * current[:-d] if d < len(current) else 0.0
    return v


def spikes(v, th, adaptive=False):
    """Strict threshold; adaptive: threshold += th after every spike."""
    if not adaptive:
        return (v > th).astype(np.uint8)
    z = np.zeros(v.shape, np.uint8)
    for i in range(v.shape[1]):
        level = th
        for t in range(v.shape[0]):
            if v[t, i] > level:
                z[t, i] = 1
                level += th
    return z


def wta(current, kappa, th, n_iter, w_inh=1.0, adaptive=False):
    """Whole-train relaxation with accumulating lateral inhibition; returns (spikes, v, current)."""
    current = np.array(current, np.float64)
    c = current.shape[1]
    lateral = w_inh * (1.0 - np.eye(c))
    v = potential(current, kappa)
    z = spikes(v, th, adaptive)
    for _ in range(n_iter):
        current -= z @ lateral
        v = potential(current, kappa)
        z = spikes(v, th, adaptive)
    return z, v, current


def wta_causal(current, kappa, th, w_inh=1.0, adaptive=False):
    """Step by step: spikes at t from inhibited currents before t, then inhibit current t."""
    current = np.array(current, np.float64)
    T, c = current.shape
    v = np.zeros_like(current)
    z = np.zeros(current.shape, np.uint8)
    level = np.full(c, float(th))
    for t in range(T):
        for d in range(1, min(len(kappa), t) + 1):
            v[t] += kappa[d - 1] * current[t - d]
        z[t] = v[t] > level
        if adaptive:
            level += th * z[t]
        current[t] -= w_inh * (z[t].sum() - z[t])
    return z, v, current


def sample_pass(look, x, yhat, masks, p):
    """Forward + gradient streams for one sample at the look-ahead weights ``look``.

    Returns dict with forward spikes ``s`` (list, layer 0..L), ``dpos``/``dneg``
    (list, None at layer 0) and the per-layer update sums ``dw`` (list of
    (n_pre, n_post) arrays): coincidence ``sum_t x(t)^T d(t)``; rate
    ``T * mean_t x  mean_t d`` (so both are divided by B T in
    :func:`batch_update`).
    """
    T = x.shape[0]
    k_f = kernel(T, p["tau_frac"] * T)
    k_b = kernel(T, p["tau_grad_frac"] * T)
    th, thb, adaptive = p["v_th"], p["v_th_grad"], p["threshold"] == "adaptive"
    L = len(look)
    s = [x * masks[0]]
    for l in range(1, L + 1):
        cur = s[l - 1].astype(np.float64) @ look[l - 1].astype(np.float64)
        if l < L:
            s.append(spikes(potential(cur, k_f), th, adaptive) * masks[l])
        elif p.get("wta", "relaxation") == "causal":
            s.append(wta_causal(cur, k_f, th, p["w_inh"], adaptive)[0])
        else:
            s.append(wta(cur, k_f, th, p["wta_iter"], p["w_inh"], adaptive)[0])
    dpos, dneg = [None] * (L + 1), [None] * (L + 1)
    e = p["error_gain"] * th * (yhat.astype(np.float64) - s[L])
    vb = potential(e, k_b)
    dpos[L], dneg[L] = spikes(vb, thb, adaptive), spikes(-vb, thb, adaptive)
    for l in range(L - 1, 0, -1):
        w = look[l].astype(np.float64)
        if p["backward_w"] == "normalised":
            r = look[l].astype(np.float64).sum(axis=1)
            sig = r.std() or 1.0
            w = ((look[l] - r.mean() / look[l].shape[1]) / sig).astype(look[l].dtype).astype(np.float64)
        gate = (s[l].sum(axis=0) > 0).astype(np.float64)
        b = p["backproj_scale"] * ((dpos[l + 1].astype(np.float64) - dneg[l + 1]) @ w.T) * gate
        vb = potential(b, k_b)
        dpos[l], dneg[l] = spikes(vb, thb, adaptive), spikes(-vb, thb, adaptive)
    dw = []
    for l in range(1, L + 1):
        X = s[l - 1].astype(np.float64)
        D = dpos[l].astype(np.float64) - dneg[l]
        if p["update"] == "coincidence":
            dw.append(X.T @ D)                                 # sum_t x_j(t) d_i(t)
        else:
            dw.append(np.outer(X.mean(0), D.mean(0)) * T)      # T * mean_t x * mean_t d
    return dict(s=s, dpos=dpos, dneg=dneg, dw=dw)


def batch_update(weights, moms, xs, ys, masks, p):
    """One minibatch: Nesterov look-ahead passes, then M = beta M + lr dW, W += M.

    ``dW = (1 / (B T)) sum_b dw_b``.  With ``p["momentum"] = 0`` (the rule's default) this is
    plain SGD: passes at W, W += lr dW.  Returns (new weights, new momenta, passes).
    """
    beta = p["momentum"]
    look = [w + w.dtype.type(beta) * m for w, m in zip(weights, moms)]
    passes = [sample_pass(look, x, y, masks, p) for x, y in zip(xs, ys)]
    B, T = len(xs), xs[0].shape[0]
    new_w, new_m = [], []
    for l, (w, m) in enumerate(zip(weights, moms)):
        dw = sum(ps["dw"][l] for ps in passes) / (B * T)
        m2 = m * m.dtype.type(beta) + (p["lr"] * dw).astype(m.dtype)
        new_m.append(m2)
        new_w.append(w + m2)
    return new_w, new_m, passes
