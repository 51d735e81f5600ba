"""Slow, obvious NumPy twins of the NormAD kernels (``engine/rules/normad.py``).

Written from the equations in the rule's docstring, one step at a time, with
no event-driven shortcuts, so the kernels can be checked against them.
"""

from __future__ import annotations

import math

import numpy as np


def lif_layer(spk_in, w, *, dt=0.1, tau_1=5.0, tau_2=1.25, tau_l_hat=1.0, c_pf=300.0, g_ns=30.0,
              e_l=-70.0, v_th=20.0, t_ref=3.0, integrator="heun", clamp=True):
    """One LIF layer over a presentation.

    Returns ``(spikes, v, dhat)``: uint8 (T, n_post), potentials before the
    threshold test (T, n_post), and ``d_hat`` aligned with ``V_n`` (T, n_pre).
    """
    spk_in = np.asarray(spk_in, float)
    T, n_pre = spk_in.shape
    n_post = w.shape[1]
    tau_m = c_pf / g_ns
    a = dt / tau_m
    rho = math.exp(-a) if integrator == "exact" else 1 - a + a * a / 2
    ref_steps = int(round(t_ref / dt))
    c_nf, g_us = c_pf * 1e-3, g_ns * 1e-3
    s1 = np.zeros(n_pre)
    s2 = np.zeros(n_pre)
    dh = np.zeros(n_pre)
    current = np.zeros(n_post)
    v = np.full(n_post, e_l)
    ref = np.zeros(n_post, int)
    spikes = np.zeros((T, n_post), np.uint8)
    vs = np.zeros((T, n_post))
    dhat = np.zeros((T, n_pre))
    for n in range(T):
        for i in range(n_post):
            if ref[i] > 0:
                ref[i] -= 1
            elif n > 0:
                v_inf = e_l + current[i] / g_us
                v[i] = v_inf + (v[i] - v_inf) * rho
                if clamp:
                    v[i] = max(v[i], e_l)
        vs[n] = v
        for i in range(n_post):
            if v[i] >= v_th and ref[i] == 0:
                spikes[n, i] = 1
                v[i] = e_l
                ref[i] = ref_steps
        dhat[n] = dh
        s1 = s1 * math.exp(-dt / tau_1) + spk_in[n]
        s2 = s2 * math.exp(-dt / tau_2) + spk_in[n]
        c = s1 - s2
        dh = dh * math.exp(-dt / tau_l_hat) + c * dt / c_nf
        current = c @ w
    return spikes, vs, dhat


def output_update(dhat, err, lr):
    """``sum_n e(t_n) dhat(t_n) / ||dhat(t_n)||`` times ``lr``, per output neuron."""
    dw = np.zeros((dhat.shape[1], err.shape[1]))
    for n in range(err.shape[0]):
        nrm = np.linalg.norm(dhat[n])
        for o in range(err.shape[1]):
            if err[n, o] != 0 and nrm > 0:
                dw[:, o] += lr * err[n, o] * dhat[n] / nrm
    return dw


def backprop_delta(hidden_spikes, events, w, kprime):
    """``delta_s = sum_{e later} val_e w[j_s, q_e] kprime[step_e - step_s]``.

    ``hidden_spikes``: list of (step, neuron); ``events``: list of (step, neuron, value).
    """
    out = []
    for n0, j in hidden_spikes:
        acc = 0.0
        for m, q, val in events:
            lag = m - n0
            if 0 < lag < len(kprime):
                acc += val * w[j, q] * kprime[lag]
        out.append(acc)
    return np.array(out)
