r"""Event-driven current-based LIF (CuBa LIF) layers with exact spike times and gradients.

Model (``reference/stidi_multispike_normad.md`` 2.2), for neuron ``i`` of a layer
with presynaptic spike times :math:`t_j^p` and its own spike times :math:`t_i^q`:

.. math::

    \tau_s \dot I_i = -I_i + \tau_s \sum_j w_{ji} \sum_p \delta(t - t_j^p), \qquad
    \tau_m \dot V_i = -V_i + I_i,

a spike when :math:`V_i` reaches :math:`\theta` from below, then
:math:`V_i \leftarrow V_i - \theta` (identical to a reset to 0 in continuous
time).  Starting from :math:`V = I = 0` this is the spike-response form

.. math::

    V_i(t) = \sum_j w_{ji} \sum_{p: t_j^p < t} \kappa(t - t_j^p)
             - \theta \sum_{q: t_i^q < t} e^{-(t - t_i^q)/\tau_m},
    \qquad
    \kappa(s) = K\,(e^{-s/\tau_m} - e^{-s/\tau_s}),\ K = \frac{\tau_s}{\tau_m - \tau_s}.

Between two input events the potential is :math:`V(t_0 + u) = a e^{-u/\tau_m} - b e^{-u/\tau_s}`
(``a``, ``b`` carried per neuron, decayed at each event, ``K w`` added to both on
an input spike, :math:`\theta e^{u/\tau_m}` removed from ``a`` on an output spike).
The first threshold crossing in an interval is found exactly:

* ``tau_m == 2 tau_s``: with :math:`x = e^{-u/\tau_m}`, :math:`V = a x - b x^2`, so
  :math:`b x^2 - a x + \theta = 0` (closed form, stable quadratic roots);
* any other ratio: :math:`V` has at most one critical point, which gives a bracket
  with a single crossing, refined by safeguarded Newton (Newton + bisection).

Each neuron keeps at most ``max_spikes`` spikes (the spike buffer).  Further
threshold crossings are still simulated (with reset) but not emitted; they are
counted in ``overflow``.  Because suppressed spikes come after the last emitted one
and are never seen downstream, the gradients below are exact for the capped model.

Backward pass (2.3), with :math:`g_i^q = \partial L / \partial t_i^q` the direct term:

.. math::

    \bar a_i^q = g_i^q + \frac{\theta}{\tau_m} \sum_{r>q}
        \frac{\bar a_i^r}{\dot V_i(t_i^r)} e^{-(t_i^r - t_i^q)/\tau_m},

    \frac{\partial L}{\partial w_{ji}} = -\sum_q \frac{\bar a_i^q}{\dot V_i(t_i^q)}
        \sum_{p: t_j^p < t_i^q} \kappa(t_i^q - t_j^p),
    \qquad
    \frac{\partial L}{\partial t_j^p} = \sum_i \sum_{q: t_i^q > t_j^p}
        \frac{\bar a_i^q}{\dot V_i(t_i^q)} w_{ji} \kappa'(t_i^q - t_j^p).

The sum over later spikes is a leaky accumulator (one pass from last spike to
first).  :math:`\dot V` is clipped below at ``vdot_min`` (grazing crossings).

All times are in milliseconds; potentials are dimensionless (threshold units).
Kernels compute in float64 whatever the weights' dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spikewb.engine.config import njit
from spikewb.engine.errors import ConfigError

#: Relative tolerance of the bracketed root finder (fraction of the bracket, ms).
ROOT_XTOL = 1e-13
#: Largest t_max / tau allowed: the backward pass factorises exp(-(t_q - t_p)/tau)
#: into exp(-t_q/tau) * exp(t_p/tau), which must stay finite in float64.
MAX_T_OVER_TAU = 600.0
#: Relative tolerance within which tau_m / tau_s counts as 2 (closed-form solver).
RATIO2_RTOL = 1e-12


# ----------------------------------------------------------------------------- helpers
def kappa(s, tau_m: float, tau_s: float):
    r"""PSP kernel :math:`\kappa(s) = K (e^{-s/\tau_m} - e^{-s/\tau_s})` (0 for s <= 0).

    >>> round(float(kappa(np.log(2) * 10.0, 10.0, 5.0)), 12)   # peak of tau_m = 2 tau_s
    0.25
    """
    s = np.asarray(s, np.float64)
    k = tau_s / (tau_m - tau_s)
    out = k * (np.exp(-s / tau_m) - np.exp(-s / tau_s))
    return np.where(s > 0, out, 0.0)


def check_taus(tau_m: float, tau_s: float, t_max: float) -> None:
    """Refuse time constants the kernels cannot handle, saying what to change."""
    if not (tau_m > 0 and tau_s > 0):
        raise ConfigError(f"time constants must be positive; got tau_m={tau_m}, tau_s={tau_s}")
    if abs(tau_m - tau_s) <= 1e-6 * tau_m:
        raise ConfigError(f"tau_m = tau_s = {tau_m} ms is the alpha-kernel limit, which the kernels "
                          "do not implement; make the two time constants differ by at least 1e-6 tau_m")
    if t_max / min(tau_m, tau_s) > MAX_T_OVER_TAU:
        raise ConfigError(f"t_max / min(tau) = {t_max / min(tau_m, tau_s):.0f} exceeds {MAX_T_OVER_TAU:.0f}; "
                          "raise the time constants or shorten the simulation time")


def is_ratio2(tau_m: float, tau_s: float) -> bool:
    """Whether ``tau_m == 2 tau_s`` (to :data:`RATIO2_RTOL`), i.e. the closed form applies."""
    return abs(tau_m - 2.0 * tau_s) <= RATIO2_RTOL * tau_m


# ----------------------------------------------------------------------------- kernels
@njit
def _v_at(a, b, u, tau_m, tau_s):
    return a * math.exp(-u / tau_m) - b * math.exp(-u / tau_s)


@njit
def _crossing_quadratic(a, b, u_lo, u_hi, v_th, tau_m):
    """First u in (u_lo, u_hi] with a x - b x^2 = v_th, x = exp(-u/tau_m); -1 if none.

    Valid for tau_m = 2 tau_s.  Requires V(u_lo) < v_th.
    """
    x_lo = math.exp(-u_lo / tau_m)
    x_hi = math.exp(-u_hi / tau_m)
    # roots of b x^2 - a x + v_th = 0
    best = -1.0
    if b == 0.0:
        if a > 0.0:
            best = v_th / a
    else:
        disc = a * a - 4.0 * b * v_th
        if disc < 0.0:
            return -1.0
        sq = math.sqrt(disc)
        bb = -a
        q = -0.5 * (bb + sq) if bb >= 0.0 else -0.5 * (bb - sq)
        r1 = q / b
        r2 = v_th / q if q != 0.0 else -1.0
        # largest root strictly below x_lo (first crossing after u_lo)
        if r1 < x_lo and r1 > best:
            best = r1
        if r2 < x_lo and r2 > best:
            best = r2
    if best <= 0.0 or best >= x_lo or best < x_hi:
        return -1.0
    return -tau_m * math.log(best)


@njit
def _crossing_bracketed(a, b, u_lo, u_hi, v_th, tau_m, tau_s):
    """First u in (u_lo, u_hi] with V(u) = v_th for any ratio; -1 if none.

    ``V(u) = a e^{-u/tau_m} - b e^{-u/tau_s}`` has at most one critical point
    ``u*``; a maximum inside the interval caps the bracket at ``u*``.
    Requires V(u_lo) < v_th.
    """
    hi = u_hi
    inv_d = 1.0 / tau_s - 1.0 / tau_m
    if a != 0.0 and b != 0.0:
        ratio = (b * tau_m) / (a * tau_s)
        if ratio > 0.0:
            u_star = math.log(ratio) / inv_d
            is_max = a * (1.0 / tau_m - 1.0 / tau_s) < 0.0
            if is_max and u_star > u_lo and u_star < u_hi:
                hi = u_star
    if _v_at(a, b, hi, tau_m, tau_s) < v_th:
        return -1.0
    lo = u_lo
    # safeguarded Newton on f(u) = V(u) - v_th, f(lo) < 0 <= f(hi), single root
    u = 0.5 * (lo + hi)
    tol = ROOT_XTOL * max(1.0, abs(hi))
    for _ in range(200):
        em = math.exp(-u / tau_m)
        es = math.exp(-u / tau_s)
        f = a * em - b * es - v_th
        if f < 0.0:
            lo = u
        else:
            hi = u
        df = -a * em / tau_m + b * es / tau_s
        step_ok = False
        if df > 0.0:
            un = u - f / df
            if un > lo and un < hi:
                step_ok = True
                if abs(un - u) < tol:
                    return un
                u = un
        if not step_ok:
            u = 0.5 * (lo + hi)
        if hi - lo < tol:
            return hi
    return hi


@njit
def _layer_forward(ev_t, ev_j, w, tau_m, tau_s, v_th, t_max, closed_form,
                   spk_t, spk_n, spk_vdot, overflow):
    """Simulate one layer exactly; fills the spike buffers.

    Parameters
    ----------
    ev_t : float64 (n_ev,)
        Presynaptic event times (ms), sorted ascending.
    ev_j : int64 (n_ev,)
        Presynaptic neuron of each event.
    w : float (n_pre, n_post)
        Weights, pre-major.
    tau_m, tau_s, v_th, t_max : float
        Membrane / synaptic time constants (ms), threshold, end of simulation (ms).
    closed_form : bool
        Use the quadratic solver (valid only for tau_m = 2 tau_s).
    spk_t : float64 (n_post, max_spikes)
        Output: spike times (ms); entries beyond ``spk_n[i]`` are left alone.
    spk_n : int64 (n_post,)
        Output: number of emitted spikes per neuron.
    spk_vdot : float64 (n_post, max_spikes)
        Output: dV/dt (1/ms) just before each spike's reset.
    overflow : int64 (n_post,)
        Output: threshold crossings beyond the buffer (not emitted).
    """
    n_post = w.shape[1]
    n_ev = ev_t.shape[0]
    max_spikes = spk_t.shape[1]
    kk = tau_s / (tau_m - tau_s)
    # shared per-event decay factors
    n_int = 0
    for e in range(n_ev):
        if ev_t[e] < t_max:
            n_int = e + 1
    dm = np.empty(n_int + 1)
    ds = np.empty(n_int + 1)
    bounds = np.empty(n_int + 1)
    prev = 0.0
    for e in range(n_int + 1):
        tend = ev_t[e] if e < n_int else t_max
        dm[e] = math.exp(-(tend - prev) / tau_m)
        ds[e] = math.exp(-(tend - prev) / tau_s)
        bounds[e] = tend - prev
        prev = tend
    for i in range(n_post):
        a = 0.0
        b = 0.0
        n = 0
        ov = 0
        t_ref = 0.0
        for e in range(n_int + 1):
            du = bounds[e]
            u_lo = 0.0
            while True:
                if du <= u_lo:
                    break
                # cheap rejection (no exp on the common path, u_lo = 0):
                # V(u) <= max(a,0) + max(-b,0) and V(u) <= V(0) + du * max slope
                if u_lo == 0.0:
                    ub = max(a, 0.0) + max(-b, 0.0)
                    if ub >= v_th:
                        ub = min(ub, a - b + du * (max(b, 0.0) / tau_s + max(-a, 0.0) / tau_m))
                    if ub < v_th:
                        break
                if closed_form:
                    u = _crossing_quadratic(a, b, u_lo, du, v_th, tau_m)
                else:
                    u = _crossing_bracketed(a, b, u_lo, du, v_th, tau_m, tau_s)
                if u < 0.0:
                    break
                em = math.exp(-u / tau_m)
                es = math.exp(-u / tau_s)
                if n < max_spikes:
                    spk_t[i, n] = t_ref + u
                    spk_vdot[i, n] = -a * em / tau_m + b * es / tau_s
                    n += 1
                else:
                    ov += 1
                a -= v_th / em
                u_lo = u
            a *= dm[e]
            b *= ds[e]
            t_ref += du
            if e < n_int:
                wv = kk * w[ev_j[e], i]
                a += wv
                b += wv
        spk_n[i] = n
        overflow[i] = ov


@njit
def _layer_backward(ev_t, ev_j, w, tau_m, tau_s, v_th, vdot_min, spk_t, spk_n, spk_vdot, g,
                    abar, dw, g_pre, want_pre):
    """Reverse-mode pass of one layer.

    Parameters
    ----------
    ev_t, ev_j, w, tau_m, tau_s, v_th :
        As in :func:`_layer_forward`.
    vdot_min : float
        Lower clip of dV/dt at a crossing (1/ms).
    spk_t, spk_n, spk_vdot :
        The forward pass's spike buffers.
    g : float64 (n_post, max_spikes)
        Direct dL/dt of each emitted spike.
    abar : float64 (n_post, max_spikes)
        Output: total dL/dt of each spike, through the neuron's later spikes.
    dw : float64 (n_pre, n_post)
        Output, accumulated (+=): dL/dw.
    g_pre : float64 (n_ev,)
        Output, accumulated (+=): dL/dt of each presynaptic event (if ``want_pre``).
    """
    n_post = w.shape[1]
    n_ev = ev_t.shape[0]
    kk = tau_s / (tau_m - tau_s)
    ep_m = np.empty(n_ev)
    ep_s = np.empty(n_ev)
    for e in range(n_ev):
        ep_m[e] = math.exp(ev_t[e] / tau_m)
        ep_s[e] = math.exp(ev_t[e] / tau_s)
    for i in range(n_post):
        n = spk_n[i]
        if n == 0:
            continue
        c = 0.0
        for q in range(n - 1, -1, -1):
            if q < n - 1:
                c = (c + abar[i, q + 1] / max(spk_vdot[i, q + 1], vdot_min)) * \
                    math.exp(-(spk_t[i, q + 1] - spk_t[i, q]) / tau_m)
            abar[i, q] = g[i, q] + (v_th / tau_m) * c
        for q in range(n):
            beta = abar[i, q] / max(spk_vdot[i, q], vdot_min)
            if beta == 0.0:
                continue
            tq = spk_t[i, q]
            fm = math.exp(-tq / tau_m)
            fs = math.exp(-tq / tau_s)
            cm = kk * beta * fm
            cs = kk * beta * fs
            for e in range(n_ev):
                if ev_t[e] >= tq:
                    break
                xm = ep_m[e]
                xs = ep_s[e]
                j = ev_j[e]
                dw[j, i] -= cm * xm - cs * xs
                if want_pre:
                    # kappa'(s) = K (-e^{-s/tau_m}/tau_m + e^{-s/tau_s}/tau_s)
                    g_pre[e] += w[j, i] * (-cm * xm / tau_m + cs * xs / tau_s)


@njit
def _events_from_buffers(spk_t, spk_n):
    """Flatten spike buffers into time-sorted events (t, neuron, slot)."""
    n_post = spk_t.shape[0]
    total = 0
    for i in range(n_post):
        total += spk_n[i]
    t = np.empty(total)
    j = np.empty(total, np.int64)
    s = np.empty(total, np.int64)
    k = 0
    for i in range(n_post):
        for q in range(spk_n[i]):
            t[k] = spk_t[i, q]
            j[k] = i
            s[k] = q
            k += 1
    order = np.argsort(t, kind="mergesort")
    return t[order], j[order], s[order]


# ----------------------------------------------------------------------------- Python layer
@dataclass
class LayerSpikes:
    """Spike buffers of one layer after a forward pass.

    ``t[i, :n[i]]`` are neuron ``i``'s spike times (ms, ascending), ``vdot`` the
    slope dV/dt (1/ms) just before each reset, ``overflow[i]`` the crossings
    beyond the buffer.  ``ev_*`` are the same spikes flattened and sorted by time
    (the next layer's input events); ``ev_slot`` is the buffer column of each.
    """

    t: np.ndarray
    n: np.ndarray
    vdot: np.ndarray
    overflow: np.ndarray
    ev_t: np.ndarray
    ev_j: np.ndarray
    ev_slot: np.ndarray


def input_events(times: np.ndarray):
    """Events (t, j, slot) of an input layer with at most one spike per neuron.

    ``times`` holds one time per input neuron (ms), ``inf`` or NaN for silent ones.
    """
    times = np.asarray(times, np.float64)
    idx = np.flatnonzero(np.isfinite(times))
    order = np.argsort(times[idx], kind="mergesort")
    j = idx[order].astype(np.int64)
    return times[j].copy(), j, np.zeros(len(j), np.int64)


def layer_forward(ev_t, ev_j, w, *, tau_m, tau_s, v_th, t_max, max_spikes,
                  closed_form: bool | None = None, start: int | None = None) -> LayerSpikes:
    """Run one layer on sorted input events; see :func:`_layer_forward`.

    ``closed_form=None`` picks the quadratic solver when ``tau_m == 2 tau_s``.
    ``max_spikes`` is the cap: at most that many spikes per neuron are emitted,
    later crossings are counted in ``overflow``.  With ``start`` the spike
    buffer starts at ``min(start, max_spikes)`` and, when a neuron overflowed
    it, the layer is run once more with a buffer just wide enough (at most the
    cap): the same spikes and overflow as a ``max_spikes``-wide buffer, only
    the buffer's width ``t.shape[1]`` differs, so a high cap costs nothing
    while neurons fire a few times.
    """
    if closed_form is None:
        closed_form = is_ratio2(tau_m, tau_s)
    elif closed_form and not is_ratio2(tau_m, tau_s):
        raise ConfigError(f"the closed-form solver needs tau_m = 2 tau_s; got tau_m={tau_m}, tau_s={tau_s}")
    if start is not None and start < max_spikes:
        ls = layer_forward(ev_t, ev_j, w, tau_m=tau_m, tau_s=tau_s, v_th=v_th, t_max=t_max,
                           max_spikes=max(1, int(start)), closed_form=closed_form)
        if not ls.overflow.any():
            return ls
        max_spikes = min(int((ls.n + ls.overflow).max()), int(max_spikes))
    n_post = w.shape[1]
    spk_t = np.zeros((n_post, max_spikes))
    spk_n = np.zeros(n_post, np.int64)
    spk_vdot = np.zeros((n_post, max_spikes))
    overflow = np.zeros(n_post, np.int64)
    _layer_forward(ev_t, ev_j, w, float(tau_m), float(tau_s), float(v_th), float(t_max), bool(closed_form),
                   spk_t, spk_n, spk_vdot, overflow)
    et, ej, es = _events_from_buffers(spk_t, spk_n)
    return LayerSpikes(spk_t, spk_n, spk_vdot, overflow, et, ej, es)


def network_forward(in_times, weights, *, tau_m, tau_s, v_th, t_max, max_spikes, closed_form=None, start=None):
    """All layers; ``v_th`` and ``max_spikes`` are per weight layer (sequences); ``start``: see
    :func:`layer_forward` (growing spike buffers).

    Returns ``(input_events, [LayerSpikes, ...])`` with one entry per neuron layer.
    """
    ev = input_events(in_times)
    layers = []
    cur_t, cur_j = ev[0], ev[1]
    for l, w in enumerate(weights):
        ls = layer_forward(cur_t, cur_j, w, tau_m=tau_m, tau_s=tau_s, v_th=v_th[l], t_max=t_max,
                           max_spikes=max_spikes[l], closed_form=closed_form, start=start)
        layers.append(ls)
        cur_t, cur_j = ls.ev_t, ls.ev_j
    return ev, layers


def network_backward(ev_in, layers, weights, g_out, *, tau_m, tau_s, v_th, vdot_min, g_extra=None):
    """Gradients of a loss whose direct spike-time derivatives on the output are ``g_out``.

    Parameters
    ----------
    g_out : float64 (n_out, max_spikes_out)
        dL/dt of each output spike (slots beyond ``n`` ignored).
    g_extra : dict {layer: float64 (n_l, max_spikes_l)}, optional
        Further direct dL/dt terms of hidden layers (e.g. from an auxiliary loss).

    Returns
    -------
    dw : list of float64 (n_pre, n_post)
    g_direct : list of float64 (n_l, max_spikes_l), per neuron layer, the direct dL/dt
    abar : list of float64 (n_l, max_spikes_l), per neuron layer, the total dL/dt
    """
    L = len(weights)
    dw = [np.zeros(w.shape) for w in weights]
    g_direct = [None] * L
    abar = [None] * L
    g = np.ascontiguousarray(g_out, np.float64)
    for l in range(L - 1, -1, -1):
        ls = layers[l]
        if g_extra is not None and l in g_extra and l < L - 1:
            g = g + g_extra[l]
        ev_t, ev_j = (ev_in[0], ev_in[1]) if l == 0 else (layers[l - 1].ev_t, layers[l - 1].ev_j)
        g_direct[l] = g
        ab = np.zeros_like(ls.t)
        g_pre = np.zeros(len(ev_t))
        _layer_backward(ev_t, ev_j, weights[l], float(tau_m), float(tau_s), float(v_th[l]), float(vdot_min),
                        ls.t, ls.n, ls.vdot, g, ab, dw[l], g_pre, l > 0)
        abar[l] = ab
        if l > 0:
            prev = layers[l - 1]
            g = np.zeros_like(prev.t)
            np.add.at(g, (prev.ev_j, prev.ev_slot), g_pre)
    return dw, g_direct, abar


def kappa_integral(s, tau_m: float, tau_s: float):
    r"""Integral of the PSP kernel from 0 to s: :math:`K[\tau_m(1-e^{-s/\tau_m}) - \tau_s(1-e^{-s/\tau_s})]`."""
    s = np.maximum(np.asarray(s, np.float64), 0.0)
    k = tau_s / (tau_m - tau_s)
    return k * (tau_m * (1.0 - np.exp(-s / tau_m)) - tau_s * (1.0 - np.exp(-s / tau_s)))


def potential(t_grid, ev_t, ev_j, w_col, spikes, *, tau_m, tau_s, v_th):
    """V(t) and I(t) of one neuron on a time grid (closed form, for traces).

    The value at a grid point equal to a spike time is taken before that
    spike's reset (sums over strictly earlier events).
    """
    t_grid = np.asarray(t_grid, np.float64)
    s = t_grid[:, None] - np.asarray(ev_t)[None, :]
    wv = np.asarray(w_col, np.float64)[np.asarray(ev_j)]
    v = (kappa(s, tau_m, tau_s) * wv).sum(axis=1)
    i_syn = (np.where(s > 0, np.exp(-np.maximum(s, 0) / tau_s), 0.0) * wv).sum(axis=1)
    if len(spikes):
        r = t_grid[:, None] - np.asarray(spikes)[None, :]
        v -= v_th * np.where(r > 0, np.exp(-np.maximum(r, 0) / tau_m), 0.0).sum(axis=1)
    return v, i_syn
