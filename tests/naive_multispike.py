"""Slow clock-driven twin of the event-driven CuBa LIF kernels (engine/neurons/cuba.py).

Written independently of the engine: a fixed step ``dt`` (default 1e-4 ms),
exact exponential integration over each step, input spikes injected at their
exact times inside a step, threshold test at the end of each step, reset by
subtracting the threshold.  With ``interpolate=False`` a detected spike is
stamped with the end of the step (late by less than ``dt``) and reset there;
with ``interpolate=True`` (default) the crossing time is linearly interpolated
inside the step and the reset is applied at that time (its decay over the rest
of the step included), the usual sub-step correction of clock-driven
simulators.  Vectorised over neurons.
"""

from __future__ import annotations

import numpy as np


def clock_layer(ev_t, ev_j, w, *, tau_m, tau_s, v_th, t_max, max_spikes, dt=1e-4,
                interpolate=True):
    """Spike times per neuron (list of arrays, at most ``max_spikes`` each) and overflow counts."""
    ev_t = np.asarray(ev_t, np.float64)
    ev_j = np.asarray(ev_j)
    w = np.asarray(w, np.float64)
    n_post = w.shape[1]
    k = tau_s / (tau_m - tau_s)

    def advance(v, i_syn, h):
        em, es = np.exp(-h / tau_m), np.exp(-h / tau_s)
        return v * em + i_syn * k * (em - es), i_syn * es

    em_dt, es_dt = np.exp(-dt / tau_m), np.exp(-dt / tau_s)
    kk_dt = k * (em_dt - es_dt)

    v = np.zeros(n_post)
    i_syn = np.zeros(n_post)
    spikes = [[] for _ in range(n_post)]
    overflow = np.zeros(n_post, np.int64)
    n_steps = int(round(t_max / dt))
    e = 0
    n_ev = len(ev_t)
    for step in range(n_steps):
        t0, t1 = step * dt, (step + 1) * dt
        v_start = v
        if e < n_ev and ev_t[e] < t1:
            t = t0
            while e < n_ev and ev_t[e] < t1:
                v, i_syn = advance(v, i_syn, ev_t[e] - t)
                i_syn = i_syn + w[ev_j[e]]
                t = ev_t[e]
                e += 1
            v, i_syn = advance(v, i_syn, t1 - t)
        else:  # no input in this step: the precomputed one-step propagator
            v = v * em_dt + i_syn * kk_dt
            i_syn = i_syn * es_dt
        if not (v >= v_th).any():
            continue
        fired = np.flatnonzero(v >= v_th)
        for i in fired:
            tc = t1
            if interpolate and v[i] > v_start[i]:
                tc = t0 + dt * min(1.0, max(0.0, (v_th - v_start[i]) / (v[i] - v_start[i])))
            if len(spikes[i]) < max_spikes:
                spikes[i].append(tc)
            else:
                overflow[i] += 1
            v[i] -= v_th * np.exp(-(t1 - tc) / tau_m)
    return [np.array(s) for s in spikes], overflow


def clock_network(in_times, weights, *, tau_m, tau_s, v_th, t_max, max_spikes, dt=1e-4, interpolate=True):
    """All layers clock-driven; returns a list (per neuron layer) of per-neuron spike-time lists."""
    in_times = np.asarray(in_times, np.float64)
    j = np.flatnonzero(np.isfinite(in_times))
    order = np.argsort(in_times[j], kind="mergesort")
    ev_j = j[order]
    ev_t = in_times[ev_j]
    out = []
    for l, w in enumerate(weights):
        spikes, _ = clock_layer(ev_t, ev_j, w, tau_m=tau_m, tau_s=tau_s, v_th=v_th[l], t_max=t_max,
                                max_spikes=max_spikes[l], dt=dt, interpolate=interpolate)
        out.append(spikes)
        ts = np.concatenate([s for s in spikes] + [np.zeros(0)])
        js = np.concatenate([np.full(len(s), i) for i, s in enumerate(spikes)] + [np.zeros(0, int)])
        order = np.argsort(ts, kind="mergesort")
        ev_t, ev_j = ts[order], js[order].astype(np.int64)
    return out


def numpy_forward_backward(in_times, weights, g_out_fn, *, tau_m, tau_s, v_th, t_max, max_spikes, dt=1e-2):
    """Clock-driven NumPy forward (step ``dt``, vectorised over neurons, inputs binned to steps,
    linear sub-step interpolation of crossings) and the exact-gradient backward written with dense
    NumPy pair matrices.  The benchmark's reference implementation; it is approximate in the
    forward (input binning, O(dt) time error), so its gradients differ from the engine's by O(dt).

    ``g_out_fn(times (n_out, S), counts) -> g (n_out, S)``.  Returns the list of dL/dw.
    """
    k = tau_s / (tau_m - tau_s)
    n_steps = int(round(t_max / dt))
    em, es = np.exp(-dt / tau_m), np.exp(-dt / tau_s)
    # layer input as (time, index) events
    j = np.flatnonzero(np.isfinite(in_times))
    ev = [(np.asarray(in_times, np.float64)[j], j)]
    spikes = []
    for l, w in enumerate(weights):
        t_in, j_in = ev[-1]
        steps = np.minimum((t_in / dt).astype(np.int64), n_steps - 1)
        drive = np.zeros((n_steps, w.shape[1]))
        np.add.at(drive, steps, w[j_in])
        n_post = w.shape[1]
        v = np.zeros(n_post)
        i_syn = np.zeros(n_post)
        t = np.zeros((n_post, max_spikes[l]))
        n = np.zeros(n_post, np.int64)
        for s in range(n_steps):
            i_syn = i_syn + drive[s]
            v0 = v
            v = v * em + i_syn * k * (em - es)
            i_syn = i_syn * es
            fired = np.flatnonzero(v >= v_th[l])
            if len(fired):
                frac = np.clip((v_th[l] - v0[fired]) / np.maximum(v[fired] - v0[fired], 1e-300), 0, 1)
                tc = (s + frac) * dt
                ok = n[fired] < max_spikes[l]
                t[fired[ok], n[fired[ok]]] = tc[ok]
                n[fired[ok]] += 1
                v[fired] -= v_th[l] * np.exp(-(1 - frac) * dt / tau_m)
        spikes.append((t, n))
        q = np.arange(max_spikes[l])[None, :] < n[:, None]
        jj, qq = np.nonzero(q)
        ev.append((t[jj, qq], jj))
    # backward
    grads = [None] * len(weights)
    g = g_out_fn(*spikes[-1])
    for l in range(len(weights) - 1, -1, -1):
        w = weights[l]
        t, n = spikes[l]
        t_in, j_in = ev[l]
        valid = np.arange(t.shape[1])[None, :] < n[:, None]
        s = t[:, :, None] - t_in[None, None, :]                       # (post, S, events)
        causal = (s > 0) & valid[:, :, None]
        sp = np.where(causal, s, 0.0)
        kap = np.where(causal, k * (np.exp(-sp / tau_m) - np.exp(-sp / tau_s)), 0.0)
        dkap = np.where(causal, k * (-np.exp(-sp / tau_m) / tau_m + np.exp(-sp / tau_s) / tau_s), 0.0)
        wv = w[j_in].T                                                # (post, events)
        r = t[:, None, :] - t[:, :, None]                             # r[i, q, r] = t_r - t_q
        later = (r > 0) & valid[:, None, :] & valid[:, :, None]
        # vdot at each spike (before its own reset)
        earlier = (-r > 0) & valid[:, None, :] & valid[:, :, None]
        vdot = (dkap * wv[:, None, :]).sum(-1) + v_th[l] / tau_m * np.where(
            earlier, np.exp(np.where(earlier, r, 0.0) / tau_m), 0.0).sum(-1)
        vdot = np.where(valid, np.maximum(vdot, 1e-12), 1.0)
        abar = np.zeros_like(t)
        for qi in range(t.shape[1] - 1, -1, -1):
            dec = np.where(later[:, qi, :], np.exp(-np.where(later[:, qi, :], r[:, qi, :], 0.0) / tau_m), 0.0)
            abar[:, qi] = g[:, qi] + v_th[l] / tau_m * (dec * abar / vdot).sum(-1)
        abar = np.where(valid, abar, 0.0)
        beta = abar / vdot
        per_ev = -(beta[:, :, None] * kap).sum(1)                     # (post, events)
        dw = np.zeros(w.shape)
        np.add.at(dw, j_in, per_ev.T)
        grads[l] = dw
        if l > 0:
            g_ev = (beta[:, :, None] * dkap * wv[:, None, :]).sum((0, 1))
            tp, npre = spikes[l - 1]
            q = np.arange(tp.shape[1])[None, :] < npre[:, None]
            jj, qq = np.nonzero(q)
            g = np.zeros_like(tp)
            g[jj, qq] = g_ev
    return grads
