r"""Neuron kernels.

Discrete-time leaky integrate-and-fire (LIF) layer
--------------------------------------------------
For one layer of ``n_post`` neurons driven by ``n_pre`` presynaptic neurons,
each time step ``t`` does, in this order:

.. math::

    V &\leftarrow \lambda V + \sum_j w_{j i}\, a\, s_j(t)            && \text{leak, then integrate}\\
    z_i(t) &= [V_i \ge \vartheta] \wedge m_i                        && \text{fire (mask } m\text{)}\\
    V &\leftarrow V - \vartheta z(t)                                 && \text{reset by subtraction}

``lambda`` is the retained fraction per step (``leak``), ``a`` the value one
presynaptic spike carries (``in_scale``: 1, or ``1/(1-p)`` under dropout of the
presynaptic layer), ``m`` a per-sample 0/1 mask (dropout of this layer).  A
masked neuron neither fires nor resets.  Potentials start at 0.

Spike buffers have ``T + 1`` rows: a layer reads row ``t`` of its input buffer
at step ``t`` and writes its spikes of step ``t`` into row ``t + 1`` of its own
buffer.  Chained layers therefore see their predecessor one step late, which
is the timing of Desire BP's reference code (first hidden layer sees the input
of the same step because the input encoder writes row ``t`` at step ``t``).

Weights are stored **pre-major**, shape ``(n_pre, n_post)``: one presynaptic
spike adds one contiguous row, which vectorises.
"""

from __future__ import annotations

import numpy as np

from spikewb.engine.config import njit


@njit
def _traces_and_membrane(cur, spikes_in, in_scale, leak, v_th, mask, trace_leak,
                         spikes_out, traces, rec_idx, v_rec, i_rec):
    """The part of a LIF layer's pass after its weighted input ``cur`` (T, n_post) is summed.

    Presynaptic traces (when ``traces`` has rows), then leak, input, threshold
    and reset by subtraction per step; arguments as in :func:`lif_layer_forward`.
    Returns the number of spikes emitted.
    """
    n_steps, n_post = cur.shape
    n_pre = spikes_in.shape[1]
    if traces.shape[0] > 0:
        for t in range(n_steps):
            for j in range(n_pre):
                x = trace_leak * traces[t - 1, j] if t > 0 else 0.0
                traces[t, j] = x + 1.0 if spikes_in[t, j] != 0 else x
    v = np.zeros(n_post, dtype=cur.dtype)
    n_rec = rec_idx.shape[0]
    total = 0
    for t in range(n_steps):
        for i in range(n_post):
            v[i] = leak * v[i] + in_scale * cur[t, i]
        for r in range(n_rec):
            v_rec[r, t] = v[rec_idx[r]]
            i_rec[r, t] = in_scale * cur[t, rec_idx[r]]
        out_t = spikes_out[t + 1]
        for i in range(n_post):                     # branch-free: spikes are rare and random
            fire = (v[i] >= v_th) & (mask[i] != 0)
            out_t[i] |= np.uint8(fire)
            v[i] = v[i] - v_th if fire else v[i]
            total += fire
    return total


@njit
def lif_layer_forward(spikes_in, in_scale, w, leak, v_th, mask, trace_leak,
                      spikes_out, traces, rec_idx, v_rec, i_rec):
    """Run one discrete LIF layer over all ``T`` steps of a sample.

    Parameters
    ----------
    spikes_in : uint8 array, shape (T + 1, n_pre)
        Presynaptic spikes; row ``t`` is read at step ``t``.
    in_scale : float
        Value carried by one presynaptic spike (dropout scaling of the
        presynaptic layer).
    w : float array, shape (n_pre, n_post)
        Weights, pre-major.
    leak : float
        Retained fraction of the potential per step, ``lambda``.
    v_th : float
        Firing threshold (also the amount subtracted on reset).
    mask : uint8 array, shape (n_post,)
        1 where the neuron may fire this sample, 0 where dropped out.
    trace_leak : float
        Decay of the presynaptic trace; only used if ``traces`` has rows.
    spikes_out : uint8 array, shape (T + 1, n_post)
        Output, zeroed by the caller; spikes of step ``t`` go to row ``t + 1``.
    traces : float array, shape (T, n_pre) or (0, n_pre)
        Output presynaptic traces ``x_j(t) = trace_leak * x_j(t-1) + s_j(t)``
        (spikes clamped to 1); pass zero rows to skip (inference).
    rec_idx : int array, shape (n_rec,)
        Neurons whose potential and input current are recorded.
    v_rec, i_rec : float arrays, shape (n_rec, T)
        Outputs: potential after integration, before fire/reset, and the
        weighted input of the step.

    Returns
    -------
    int
        Total number of spikes emitted.
    """
    n_steps = spikes_out.shape[0] - 1
    n_pre = w.shape[0]
    n_post = w.shape[1]
    # Weighted input of every step first, presynaptic neuron by neuron: each weight row is
    # read once per sample (not once per spike) while the (T, n_post) currents stay in
    # cache.  For each (t, i) the rows are still added in ascending j, so the sums -- and
    # every spike after them -- are bit-identical to adding the active rows step by step.
    cur = np.zeros((n_steps, n_post), dtype=w.dtype)
    for j in range(n_pre):
        for t in range(n_steps):
            if spikes_in[t, j] != 0:
                for i in range(n_post):
                    cur[t, i] += w[j, i]
    return _traces_and_membrane(cur, spikes_in, in_scale, leak, v_th, mask, trace_leak,
                                spikes_out, traces, rec_idx, v_rec, i_rec)


def lif_reference(currents, leak, v_th, mask=None):
    """Slow, obvious NumPy version of the LIF dynamics for a given input.

    Parameters
    ----------
    currents : array, shape (T, n)
        Weighted input of every step (already multiplied by ``in_scale``).
    leak, v_th : float
        As in :func:`lif_layer_forward`.
    mask : array of 0/1, shape (n,), optional

    Returns
    -------
    v_pre : array (T, n)
        Potential after integration, before fire/reset.
    z : uint8 array (T, n)
        Spikes.

    Examples
    --------
    >>> v, z = lif_reference(np.array([[0.6], [0.6], [0.6]]), 0.5, 1.0)
    >>> v[:, 0].round(3).tolist(), z[:, 0].tolist()
    ([0.6, 0.9, 1.05], [0, 0, 1])
    """
    currents = np.asarray(currents, dtype=np.float64)
    n_steps, n = currents.shape
    mask = np.ones(n, bool) if mask is None else np.asarray(mask, bool)
    v = np.zeros(n)
    v_pre = np.zeros((n_steps, n))
    z = np.zeros((n_steps, n), np.uint8)
    for t in range(n_steps):
        v = leak * v + currents[t]
        v_pre[t] = v
        fire = (v >= v_th) & mask
        z[t] = fire
        v = v - v_th * fire
    return v_pre, z


@njit
def lif_layer_forward_grouped(spikes_in, in_scale, w, leak, v_th, mask, trace_leak,
                              spikes_out, traces, rec_idx, v_rec, i_rec):
    """:func:`lif_layer_forward` with presynaptic neurons grouped by identical spike trains.

    Same arguments, outputs and dynamics.  The weighted input of step ``t`` is
    computed as :math:`\\sum_g s_g(t) \\sum_{j \\in g} w_{j i}`, where a group
    ``g`` holds the presynaptic neurons whose whole spike train is the same:
    each active weight row is read and added once per sample, and each group's
    row sum once per spike of the group.  A deterministic rate code has only
    ``O(T^2)`` distinct trains (a few dozen to a hundred for ``T = 20``,
    however many pixels there are), so for an input layer this needs a
    fraction of the additions of one row per spike.

    The sums are formed in another order than :func:`lif_layer_forward` (rows
    of a group first, in ascending ``j``; then the groups): the currents agree
    to rounding, not bit for bit.  Use it where the accumulation order is free
    (float32 training, like the matrix products of the reference code); for
    more than 62 steps it falls back to :func:`lif_layer_forward`.
    """
    n_steps = spikes_out.shape[0] - 1
    if n_steps > 62:
        return lif_layer_forward(spikes_in, in_scale, w, leak, v_th, mask, trace_leak,
                                 spikes_out, traces, rec_idx, v_rec, i_rec)
    n_pre = w.shape[0]
    n_post = w.shape[1]
    keys = np.zeros(n_pre, dtype=np.int64)
    for t in range(n_steps):                        # bit t of keys[j]: j spiked at step t
        row = spikes_in[t]
        for j in range(n_pre):
            keys[j] |= np.int64(row[j] != 0) << t
    n_act = 0
    act = np.empty(n_pre, dtype=np.int64)
    for j in range(n_pre):
        if keys[j] != 0:
            act[n_act] = j
            n_act += 1
    act = act[:n_act]
    order = act[np.argsort(keys[act], kind="mergesort")]     # by train, then ascending j
    cur = np.zeros((n_steps, n_post), dtype=w.dtype)
    acc = np.empty(n_post, dtype=w.dtype)
    k = 0
    while k < n_act:
        key = keys[order[k]]
        j = order[k]
        wj = w[j]
        for i in range(n_post):
            acc[i] = wj[i]
        k += 1
        while k < n_act and keys[order[k]] == key:
            wj = w[order[k]]
            for i in range(n_post):
                acc[i] += wj[i]
            k += 1
        for t in range(n_steps):
            if (key >> t) & 1:
                ct = cur[t]
                for i in range(n_post):
                    ct[i] += acc[i]
    return _traces_and_membrane(cur, spikes_in, in_scale, leak, v_th, mask, trace_leak,
                                spikes_out, traces, rec_idx, v_rec, i_rec)
