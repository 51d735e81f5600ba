r"""Spike Response Model (SRM) units with a causal FIR kernel, and winner-take-all output.

These are the unit kernels of SSNN-BP (:mod:`spikewb.engine.rules.ssnn`), following the
authors' code as summarised in ``reference/desire_ssnn.md`` section 2.2-2.5.
A whole spike train of ``T`` steps is processed at once (as the authors do),
time along axis 0.

Notes
-----
Membrane potential of unit :math:`i` from its input current :math:`I_i(t)`
(inputs before :math:`t = 0` count as zero):

.. math::

    V_i(t) = \sum_{d=1}^{M} \kappa(d)\, I_i(t-d), \qquad
    \kappa(d) = 1 - e^{-d/\tau}, \qquad M = \lfloor T/2 \rfloor .

There is no tap at lag 0, so a current at step ``t`` shows in the potential
from step ``t + 1``.  With :math:`a = e^{-1/\tau}` the same sum is a box sum
minus an exponential trace, both updated in O(1) per step
(:func:`srm_potential_incremental`):

.. math::

    B(t+1) = B(t) + I(t) - I(t-M), \qquad
    E(t+1) = a\,\bigl(E(t) + I(t) - a^{M} I(t-M)\bigr), \qquad
    V(t) = B(t) - E(t).

Spikes: fixed threshold :math:`z_i(t) = [V_i(t) > \theta]` (strict, no reset,
no adaptation; what the authors' TF1 graph executes), or the adaptive
threshold the code was written to have: :math:`\theta_i` starts at
:math:`\theta` at ``t = 0`` and grows by :math:`\theta` after every spike.

Winner-take-all (:func:`wta_relaxation`): output currents are inhibited by the
other output neurons' spikes of the same step, :math:`I_i(t) \leftarrow
I_i(t) - w_{inh} \sum_{k \ne i} z_k(t)`, and the potentials and spikes are
recomputed over the whole train; ``n_iter`` passes, the subtractions
accumulating.  :func:`wta_causal` is the per-step alternative: at step ``t``
the spikes are decided from the already-inhibited currents of earlier steps,
then the current of step ``t`` is inhibited by them.

All potentials and currents are float64 inside the kernels, so the strict
threshold comparison does not depend on summation order beyond ~1e-15.
"""

from __future__ import annotations

import math

import numpy as np

from spikewb.engine.config import njit


def window(n_steps: int) -> int:
    """Kernel length in lags, :math:`M = \\lfloor T/2 \\rfloor` (the authors' ``k_size // 2``).

    >>> window(51), window(301)
    (25, 150)
    """
    return max(int(n_steps) // 2, 1)


def causal_kernel(n_steps: int, tau: float) -> np.ndarray:
    """Taps :math:`\\kappa(d) = 1 - e^{-d/\\tau}` for lags ``d = 1..M``, float64, shape (M,).

    >>> np.round(causal_kernel(51, 5.1)[:3], 4).tolist()
    [0.1781, 0.3244, 0.4447]
    """
    if tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}")
    d = np.arange(1, window(n_steps) + 1, dtype=np.float64)
    return 1.0 - np.exp(-d / float(tau))


@njit
def srm_potential(i_syn, kappa, v):
    """Direct causal convolution ``v[t] = sum_{d=1..M} kappa[d-1] * i_syn[t-d]``.

    Parameters
    ----------
    i_syn : float array (T, N)
        Input current per step (dimensionless, threshold units).
    kappa : float64 array (M,)
        Kernel taps for lags 1..M.
    v : float64 array (T, N)
        Output potentials, overwritten.
    """
    n_steps, n = i_syn.shape
    m = kappa.shape[0]
    for t in range(n_steps):
        for i in range(n):
            v[t, i] = 0.0
        for d in range(1, min(m, t) + 1):
            k = kappa[d - 1]
            src = t - d
            for i in range(n):
                v[t, i] += k * i_syn[src, i]
    return v


@njit
def srm_potential_incremental(i_syn, tau, m, v):
    """Same as :func:`srm_potential` for ``kappa(d) = 1 - exp(-d/tau)``, O(T N).

    Box sum minus exponential trace, see the module Notes.

    Parameters
    ----------
    i_syn : float array (T, N)
    tau : float
        Kernel time constant (steps).
    m : int
        Window ``M`` (lags 1..M).
    v : float64 array (T, N)
        Output potentials, overwritten.
    """
    n_steps, n = i_syn.shape
    a = math.exp(-1.0 / tau)
    am = a ** m
    box = np.zeros(n, np.float64)
    ex = np.zeros(n, np.float64)
    for t in range(n_steps):
        for i in range(n):
            v[t, i] = box[i] - ex[i]
        old = t - m
        for i in range(n):
            cur = np.float64(i_syn[t, i])
            if old >= 0:
                gone = np.float64(i_syn[old, i])
                box[i] += cur - gone
                ex[i] = a * (ex[i] + cur - am * gone)
            else:
                box[i] += cur
                ex[i] = a * (ex[i] + cur)
    return v


@njit
def srm_spikes(v, v_th, adaptive, z):
    """Threshold potentials into spikes.

    ``z[t, i] = v[t, i] > theta_i(t)``; fixed: ``theta = v_th``; adaptive:
    ``theta_i(0) = v_th`` and ``theta_i += v_th`` after each spike.

    Parameters
    ----------
    v : float64 array (T, N)
    v_th : float
    adaptive : bool
    z : uint8 array (T, N)
        Output spikes, overwritten.
    """
    n_steps, n = v.shape
    for i in range(n):
        th = v_th
        for t in range(n_steps):
            if v[t, i] > th:
                z[t, i] = 1
                if adaptive:
                    th += v_th
            else:
                z[t, i] = 0
    return z


@njit
def srm_layer(i_syn, tau, m, v_th, adaptive, v, z):
    """Potential (incremental kernel) and spikes of a layer of SRM units in one call."""
    srm_potential_incremental(i_syn, tau, m, v)
    srm_spikes(v, v_th, adaptive, z)
    return z


@njit
def wta_relaxation(i_syn, tau, m, v_th, adaptive, n_iter, w_inh, v, z):
    """Whole-train winner-take-all relaxation (the authors' ``y_WTA``).

    Parameters
    ----------
    i_syn : float64 array (T, C)
        Feed-forward output current; **modified in place** to the final,
        inhibited current.
    tau, m, v_th, adaptive
        SRM unit parameters (see :func:`srm_layer`).
    n_iter : int
        Relaxation passes (authors: 5).  Pass ``n`` subtracts
        ``w_inh * sum_{k != i} z_k(t)`` of pass ``n - 1``'s spikes, on top of
        the earlier subtractions.
    w_inh : float
        Lateral inhibitory weight (authors: 1).
    v : float64 array (T, C)
        Potentials of the last pass.
    z : uint8 array (T, C)
        Spikes of the last pass.
    """
    n_steps, c = i_syn.shape
    srm_layer(i_syn, tau, m, v_th, adaptive, v, z)
    for _ in range(n_iter):
        for t in range(n_steps):
            tot = 0
            for k in range(c):
                tot += z[t, k]
            if tot == 0:
                continue
            for k in range(c):
                i_syn[t, k] -= w_inh * (tot - z[t, k])
        srm_layer(i_syn, tau, m, v_th, adaptive, v, z)
    return z


@njit
def wta_causal(i_syn, tau, m, v_th, adaptive, w_inh, v, z):
    """Per-step winner-take-all: spikes of step ``t`` inhibit the current of step ``t``.

    Same arguments as :func:`wta_relaxation` (no ``n_iter``); ``i_syn`` is
    modified in place to the inhibited current.  Potentials are the direct
    convolution of the inhibited currents of steps ``t-M..t-1``.
    """
    n_steps, c = i_syn.shape
    kappa = np.empty(m, np.float64)
    for d in range(1, m + 1):
        kappa[d - 1] = 1.0 - math.exp(-d / tau)
    th = np.full(c, v_th)
    for t in range(n_steps):
        tot = 0
        for k in range(c):
            acc = 0.0
            for d in range(1, min(m, t) + 1):
                acc += kappa[d - 1] * i_syn[t - d, k]
            v[t, k] = acc
            if acc > th[k]:
                z[t, k] = 1
                tot += 1
                if adaptive:
                    th[k] += v_th
            else:
                z[t, k] = 0
        if tot > 0:
            for k in range(c):
                i_syn[t, k] -= w_inh * (tot - z[t, k])
    return z


@njit
def input_current(pre, w, out):
    """Event-driven feed-forward current ``out[t, i] = sum_j pre[t, j] w[j, i]``.

    Parameters
    ----------
    pre : uint8 array (T', n_pre), T' >= T
        Presynaptic spikes (already masked by the presynaptic dropout).
    w : float array (n_pre, n_post)
        Weights, pre-major.
    out : float64 array (T, n_post)
        Overwritten.
    """
    n_steps, n_post = out.shape
    n_pre = w.shape[0]
    for t in range(n_steps):
        row_out = out[t]
        for i in range(n_post):
            row_out[i] = 0.0
        for j in range(n_pre):
            if pre[t, j] != 0:
                wr = w[j]
                for i in range(n_post):
                    row_out[i] += wr[i]
    return out


@njit
def backproject(dpos, dneg, w, scale, gate, out):
    """Hidden gradient current ``out[t, h] = gate[h] * scale * sum_i w[h, i] (dpos - dneg)[t, i]``.

    Parameters
    ----------
    dpos, dneg : uint8 array (T, C)
        Positive / negative gradient spikes of the layer above.
    w : float array (H, C)
        Backward weights (pre-major forward weights, or their normalised copy).
    scale : float
        Authors: 0.5.
    gate : uint8 array (H,)
        ReLU-derivative gate, 1 where the hidden neuron fired in the sample.
    out : float64 array (T, H)
    """
    n_steps, c = dpos.shape
    h = w.shape[0]
    for t in range(n_steps):
        for k in range(h):
            out[t, k] = 0.0
        for i in range(c):
            s = np.int64(dpos[t, i]) - np.int64(dneg[t, i])
            if s == 0:
                continue
            for k in range(h):
                if gate[k] != 0:
                    out[t, k] += scale * s * w[k, i]
    return out


@njit
def coincidence_accumulate(pre, dpos, dneg, acc):
    """RPU update counts ``acc[j, i] += C[j, i]``, ``C = sum_t pre[t, j] (dpos - dneg)[t, i]``.

    Event-driven: per step, only the presynaptic neurons that spiked and the
    postsynaptic neurons with a gradient spike are visited.  ``C`` is built in
    a buffer over the columns that had any gradient spike, so its squared
    Frobenius norm comes for free.

    Parameters
    ----------
    pre : uint8 array (T', n_pre), T' >= T
    dpos, dneg : uint8 array (T, n_post)
    acc : float array (n_pre, n_post)
        Accumulator, updated in place.

    Returns
    -------
    float
        ``||C||_F^2`` of this sample.
    """
    n_steps, n_post = dpos.shape
    n_pre = acc.shape[0]
    col = np.full(n_post, -1, np.int64)
    cols = np.empty(n_post, np.int64)
    n_cols = 0
    for t in range(n_steps):
        for i in range(n_post):
            if dpos[t, i] != dneg[t, i] and col[i] < 0:
                col[i] = n_cols
                cols[n_cols] = i
                n_cols += 1
    if n_cols == 0:
        return 0.0
    buf = np.zeros((n_pre, n_cols), np.float64)
    post = np.empty(n_post, np.int64)
    sgn = np.empty(n_post, np.float64)
    for t in range(n_steps):
        n_act = 0
        for i in range(n_post):
            s = np.int64(dpos[t, i]) - np.int64(dneg[t, i])
            if s != 0:
                post[n_act] = col[i]
                sgn[n_act] = s
                n_act += 1
        if n_act == 0:
            continue
        for j in range(n_pre):
            if pre[t, j] == 0:
                continue
            row = buf[j]
            for k in range(n_act):
                row[post[k]] += sgn[k]
    total = 0.0
    for j in range(n_pre):
        for c in range(n_cols):
            b = buf[j, c]
            if b != 0.0:
                acc[j, cols[c]] += b
                total += b * b
    return total

@njit
def coincidence_norm_sq(pre, dpos, dneg):
    """Squared Frobenius norm of one sample's coincidence matrix ``C = X^T (dpos - dneg)``.

    Uses ``||X^T D||^2 = sum_{t,u} (x_t . x_u)(d_t . d_u)`` over the steps with
    gradient spikes, without forming ``C``.
    """
    n_steps, n_post = dpos.shape
    n_pre = pre.shape[1]
    act = np.empty(n_steps, np.int64)
    n_act = 0
    for t in range(n_steps):
        for i in range(n_post):
            if dpos[t, i] != dneg[t, i]:
                act[n_act] = t
                n_act += 1
                break
    total = 0.0
    for a in range(n_act):
        t = act[a]
        for b in range(a, n_act):
            u = act[b]
            dd = 0
            for i in range(n_post):
                dd += (np.int64(dpos[t, i]) - np.int64(dneg[t, i])) * (np.int64(dpos[u, i]) - np.int64(dneg[u, i]))
            if dd == 0:
                continue
            xx = 0
            for j in range(n_pre):
                xx += pre[t, j] & pre[u, j]
            total += (1.0 if a == b else 2.0) * dd * xx
    return total
