r"""Single-spike integrate-and-fire neurons with a piecewise-linear PSP (PWL-PSP IF).

The neuron of STiDi-BP (see :mod:`spikewb.engine.rules.stidi`): non-leaky, fires at
most once, no reset.  Presynaptic neuron :math:`i` fires once at :math:`t_i`
(or never, :math:`t_i = \infty`); postsynaptic neuron :math:`j` has

.. math::

    V_j(t) = \sum_i w_{ji}\, K(t - t_i), \qquad
    t_j = \min\{\, t \le t_{end} : V_j(t) \ge \vartheta \,\}

and is *silent* (:math:`t_j = \infty`) when :math:`V_j` stays below the
threshold up to the end of the window :math:`t_{end}`.  Two kernel shapes
(``kind``), both with :math:`K(s) = 0` for :math:`s \le 0`:

* ``rise-plateau`` (:data:`RISE_PLATEAU`):
  :math:`K(s) = s/\tau_r` on :math:`(0, \tau_r)`, 1 afterwards;
* ``rise-decay`` (:data:`RISE_DECAY`):
  :math:`K(s) = s/\tau_r` on :math:`(0, \tau_r)`,
  :math:`1 - (s - \tau_r)/\tau_d` on :math:`[\tau_r, \tau_r + \tau_d)`, 0 afterwards.

:math:`V_j` is piecewise linear with breakpoints at :math:`t_i`,
:math:`t_i + \tau_r` (and :math:`t_i + \tau_r + \tau_d`).  Between two
breakpoints :math:`b_k < b_{k+1}` the slope
:math:`S_k = \sum_i w_{ji} K'(b_k^+ - t_i)` is constant, so the crossing is
exact:

.. math::

    t_j = b_k + (\vartheta - V_j(b_k)) / S_k
    \quad\text{if } V_j(b_k) < \vartheta \le V_j(b_k) + S_k (b_{k+1} - b_k).

The kernels here sweep the breakpoints in time order once per layer
(event-driven: the work is proportional to the number of presynaptic spikes,
not to a time grid).  All neurons that share the same presynaptic set (every
neuron of a dense layer; all maps at one position of a convolution) share the
same breakpoints, so one sweep serves them together.

Connectivity is given as a *patch table* ``pre`` of shape ``(P, F)`` and a
weight matrix ``w`` of shape ``(F, M)``: position ``p`` sees presynaptic
neurons ``pre[p, 0..F-1]``; output neuron ``n = p * M + m`` (map ``m`` at
position ``p``) has weights ``w[:, m]``.  A dense layer is ``P = 1``,
``pre = [0..n_pre-1]``, ``w`` pre-major ``(n_pre, n_post)``; a valid,
stride-1 convolution over an ``(H, W, C)`` image (HWC layout, index
``(y W + x) C + c``) has one row per output pixel (:func:`conv_patches`).

Times are in the rule's time unit (ms).  Silent neurons have time ``inf``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from spikewb.engine.config import njit
from spikewb.engine.errors import ConfigError

#: Kernel shape codes used inside the kernels.
RISE_PLATEAU = 0
RISE_DECAY = 1
KERNELS = {"rise-plateau": RISE_PLATEAU, "rise-decay": RISE_DECAY}

#: Hidden vote modes of :func:`layer_vote`.
VOTE_DERIVATIVE = 0
VOTE_PSP = 1


def kernel_code(name: str) -> int:
    """``"rise-plateau"`` -> 0, ``"rise-decay"`` -> 1; unknown names list the valid ones."""
    try:
        return KERNELS[name]
    except KeyError:
        raise ConfigError(f"unknown PSP kernel {name!r}; choose one of {sorted(KERNELS)}") from None


# --------------------------------------------------------------------------- kernel shape

@njit
def psp(s, kind, tau_r, tau_d):
    """PSP kernel value :math:`K(s)` (dimensionless, peak 1)."""
    if s <= 0.0:
        return 0.0
    if s < tau_r:
        return s / tau_r
    if kind == RISE_PLATEAU:
        return 1.0
    s2 = s - tau_r
    if s2 < tau_d:
        return 1.0 - s2 / tau_d
    return 0.0


@njit
def psp_slope(s, kind, tau_r, tau_d):
    r"""Left derivative :math:`K'(s^-)` (1/time unit).

    The left derivative is the slope a spike at :math:`t_i` contributes to the
    segment of :math:`V_j` that *ends* at :math:`t_i + s`, i.e. the segment in
    which a crossing at :math:`t_i + s` happened.
    """
    if s <= 0.0:
        return 0.0
    if s <= tau_r:
        return 1.0 / tau_r
    if kind == RISE_PLATEAU:
        return 0.0
    if s <= tau_r + tau_d:
        return -1.0 / tau_d
    return 0.0


# --------------------------------------------------------------------------- connectivity

def dense_patches(n_pre: int) -> np.ndarray:
    """Patch table of a dense layer: one position seeing every presynaptic neuron."""
    return np.arange(n_pre, dtype=np.int32).reshape(1, n_pre)


def conv_patches(height: int, width: int, channels: int, kernel: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Patch table of a valid, stride-1 ``kernel x kernel`` convolution (HWC layout).

    Returns ``(pre, (h_out, w_out))`` with ``pre`` of shape
    ``(h_out * w_out, kernel * kernel * channels)``; patch column
    ``f = (u * kernel + v) * channels + c`` is input pixel ``(y + u, x + v)``,
    channel ``c``.

    Examples
    --------
    >>> pre, shape = conv_patches(3, 3, 1, 2)
    >>> shape, pre.tolist()
    ((2, 2), [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]])
    """
    h_out, w_out = height - kernel + 1, width - kernel + 1
    if h_out < 1 or w_out < 1:
        raise ConfigError(f"a {kernel}x{kernel} convolution does not fit a {height}x{width} input")
    y = np.arange(h_out)[:, None, None, None, None]
    x = np.arange(w_out)[None, :, None, None, None]
    u = np.arange(kernel)[None, None, :, None, None]
    v = np.arange(kernel)[None, None, None, :, None]
    c = np.arange(channels)[None, None, None, None, :]
    idx = ((y + u) * width + (x + v)) * channels + c
    return np.ascontiguousarray(idx.reshape(h_out * w_out, kernel * kernel * channels).astype(np.int32)), (h_out, w_out)


def pool_windows(height: int, width: int, channels: int, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Index table of non-overlapping ``size x size`` pooling (HWC layout).

    Returns ``(windows, (h_out, w_out))``; ``windows[o]`` lists the inputs of
    pooled neuron ``o = (y * w_out + x) * channels + c``.  Trailing rows or
    columns that do not fill a window are dropped.

    Examples
    --------
    >>> win, shape = pool_windows(2, 4, 1, 2)
    >>> shape, win.tolist()
    ((1, 2), [[0, 1, 4, 5], [2, 3, 6, 7]])
    """
    h_out, w_out = height // size, width // size
    if h_out < 1 or w_out < 1:
        raise ConfigError(f"{size}x{size} pooling does not fit a {height}x{width} map")
    y = np.arange(h_out)[:, None, None, None, None]
    x = np.arange(w_out)[None, :, None, None, None]
    c = np.arange(channels)[None, None, :, None, None]
    a = np.arange(size)[None, None, None, :, None]
    b = np.arange(size)[None, None, None, None, :]
    idx = ((y * size + a) * width + (x * size + b)) * channels + c
    return np.ascontiguousarray(idx.reshape(h_out * w_out * channels, size * size).astype(np.int32)), (h_out, w_out)


def invert_patches(pre: np.ndarray, n_pre: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR inverse of a patch table: for input ``i``, the ``(position, column)`` pairs that see it.

    Returns ``(ptr, pos, col)``: input ``i`` appears at ``pos[ptr[i]:ptr[i+1]]``,
    columns ``col[ptr[i]:ptr[i+1]]``, in increasing position order.
    """
    P, F = pre.shape
    flat = pre.ravel().astype(np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= n_pre):
        raise ConfigError(f"patch table refers to inputs outside 0..{n_pre - 1}")
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=n_pre)
    ptr = np.zeros(n_pre + 1, np.int64)
    np.cumsum(counts, out=ptr[1:])
    pos = (order // F).astype(np.int32)
    col = (order % F).astype(np.int32)
    return ptr, pos, col


# --------------------------------------------------------------------------- kernels

@njit
def _weight(w, f, m, binary, scale):
    """Forward weight: ``w[f, m]`` or ``scale * sign(w[f, m])`` (sign(0) = +1)."""
    x = w[f, m]
    if binary:
        return scale if x >= 0.0 else -scale
    return x


@njit
def layer_forward(t_in, pre, inv_ptr, inv_pos, inv_col, w, binary, scale, v_th, kind, tau_r, tau_d,
                  t_end, t_out, s_out, v_end):
    r"""Exact first threshold crossings of a PWL-PSP layer (event-driven).

    Parameters
    ----------
    t_in : float64 array (n_pre,)
        Presynaptic spike times, ``>= 0``; ``inf`` (or anything ``>= t_end``)
        for silent.
    pre : int32 array (P, F)
        Patch table (module docstring).
    inv_ptr, inv_pos, inv_col : arrays
        Its CSR inverse (:func:`invert_patches`).
    w : float array (F, M)
        Weights.
    binary : bool
        Forward with ``scale * sign(w)`` instead of ``w``.
    scale : float
        Magnitude of the binary weights (ignored when ``binary`` is false).
    v_th : float
        Threshold :math:`\vartheta`.
    kind : int
        :data:`RISE_PLATEAU` or :data:`RISE_DECAY`.
    tau_r, tau_d : float
        Rise time and decay time of the kernel (time unit).
    t_end : float
        End of the window; crossings after it are not emitted.
    t_out : float64 array (P * M,)
        Output: crossing time, ``inf`` if silent.
    s_out : float64 array (P * M,)
        Output: slope :math:`\dot V_j(t_j^-)` of the segment that crossed, or,
        for silent neurons, the left slope at ``t_end`` (exactly 0 once every
        kernel has passed its last corner).
    v_end : float64 array (P * M,)
        Output: :math:`V_j(t_{end})` for silent neurons, :math:`\vartheta` for
        neurons that fired.

    Returns
    -------
    int
        Number of neurons that fired.

    Notes
    -----
    The sweep stops for a position as soon as all its ``M`` neurons fired.
    Work: sorting the ``n`` presynaptic spikes once, then
    :math:`O(\text{events} \times M)` per position with 2 (rise-plateau) or 3
    (rise-decay) events per presynaptic spike, in two branch-free passes over
    the maps per event (advance, slope change) that the compiler vectorises;
    the crossing pass runs only when some map reached the threshold.  No
    allocation inside loops.
    """
    P = pre.shape[0]
    F = pre.shape[1]
    M = w.shape[1]
    n_in = t_in.shape[0]
    # -- bucket the inputs of every position in time order (one global, stable
    #    sort), so that identical patches see identical event sequences and give
    #    bit-identical times (ties in pooling are then resolved by window order)
    order = np.argsort(t_in, kind="mergesort")  # stable: equal times keep index order
    lists = np.empty((P, F), np.int32)
    counts = np.zeros(P, np.int64)
    for r in range(n_in):
        i = order[r]
        if not t_in[i] < t_end:
            break
        for q in range(inv_ptr[i], inv_ptr[i + 1]):
            p = inv_pos[q]
            lists[p, counts[p]] = inv_col[q]
            counts[p] += 1
    v = np.empty(M, np.float64)
    s = np.empty(M, np.float64)
    inv_r = 1.0 / tau_r
    inv_d = 1.0 / tau_d if kind == RISE_DECAY else 0.0
    off1 = tau_r
    off2 = tau_r + tau_d
    n_streams = 3 if kind == RISE_DECAY else 2
    inf = np.inf
    total = 0
    for p in range(P):
        n = counts[p]
        base = p * M
        for m in range(M):
            v[m] = 0.0
            s[m] = 0.0
            t_out[base + m] = inf
        n_fired = 0
        k0 = 0
        k1 = 0
        k2 = 0
        b_prev = 0.0
        exhausted = False
        while True:
            # next breakpoint among the 2 or 3 time-sorted streams
            best = inf
            which = -1
            if k0 < n:
                tt = t_in[pre[p, lists[p, k0]]]
                if tt < best:
                    best = tt
                    which = 0
            if k1 < n:
                tt = t_in[pre[p, lists[p, k1]]] + off1
                if tt < best:
                    best = tt
                    which = 1
            if n_streams == 3 and k2 < n:
                tt = t_in[pre[p, lists[p, k2]]] + off2
                if tt < best:
                    best = tt
                    which = 2
            final = which < 0 or best >= t_end
            if which < 0:
                # every kernel has passed its last corner: V is constant from
                # here on (slope exactly 0 up to rounding), no more crossings
                exhausted = True
                best = b_prev
            elif final:
                best = t_end
            dt = best - b_prev
            if dt > 0.0:
                # advance every map to the breakpoint (a map that fired holds
                # v = -inf, so it never tests positive again) ...
                hit = False
                for m in range(M):
                    v[m] += s[m] * dt
                    hit |= v[m] >= v_th
                # ... and, rarely, place the crossings inside the segment:
                # V(b) - theta = S (b - t_j)  =>  t_j = b - (V(b) - theta) / S
                if hit:
                    for m in range(M):
                        if v[m] >= v_th:
                            t_out[base + m] = best - (v[m] - v_th) / s[m]
                            s_out[base + m] = s[m]
                            v_end[base + m] = v_th
                            v[m] = -inf
                            n_fired += 1
            b_prev = best
            if final or n_fired == M:
                break
            # apply the slope change of this breakpoint
            if which == 0:
                f = lists[p, k0]
                k0 += 1
                c = inv_r
            elif which == 1:
                f = lists[p, k1]
                k1 += 1
                c = -inv_r - inv_d
            else:
                f = lists[p, k2]
                k2 += 1
                c = inv_d
            if binary:
                cp = c * scale
                for m in range(M):
                    s[m] += cp if w[f, m] >= 0.0 else -cp
            else:
                for m in range(M):
                    s[m] += c * w[f, m]
        for m in range(M):
            if t_out[base + m] == inf:
                s_out[base + m] = 0.0 if exhausted else s[m]
                v_end[base + m] = v[m]
        total += n_fired
    return total


@njit
def pool_forward(t_in, windows, t_out, winner):
    """Earliest-spike pooling: ``t_out[o] = min(t_in[windows[o]])``.

    ``winner[o]`` is the input index of the earliest spike (the first in
    window order on ties), or -1 when the whole window is silent.
    """
    n_out, k = windows.shape
    for o in range(n_out):
        best = np.inf
        arg = -1
        for a in range(k):
            i = windows[o, a]
            if t_in[i] < best:
                best = t_in[i]
                arg = i
        t_out[o] = best
        winner[o] = arg


@njit
def pool_backward(windows, winner, d_out, d_in):
    """Route a per-output quantity back through earliest-spike pooling.

    ``d_in[winner[o]] = d_out[o]``: only the earliest input of a window moved
    the pooled spike.  A silent window (winner -1) passes ``d_out[o]`` to every
    one of its inputs (any of them firing would make the pooled neuron fire).
    ``d_in`` must be zeroed by the caller.
    """
    for o in range(winner.shape[0]):
        i = winner[o]
        if i >= 0:
            d_in[i] = d_out[o]
        elif d_out[o] != 0.0:
            for a in range(windows.shape[1]):
                d_in[windows[o, a]] = d_out[o]


@njit
def layer_dw(t_in, pre, t_post, coef, kind, tau_r, tau_d, dw):
    r"""Accumulate :math:`\Delta w_{fm} \mathrel{+}= \sum_p a_{pm}\, K(t_{pm} - t_{pre[p,f]})`.

    Parameters
    ----------
    t_in : float64 array (n_pre,)
        Presynaptic times (``inf`` silent: no contribution).
    pre : int32 array (P, F)
        Patch table.
    t_post : float64 array (P * M,)
        Postsynaptic *effective* times (the window end for silent neurons).
    coef : float64 array (P * M,)
        Per-neuron coefficient :math:`a_n` (0: no update).
    kind, tau_r, tau_d : kernel
    dw : float array (F, M)
        Accumulator (updated in place; pass the weights themselves to apply
        a dense update directly).

    Returns
    -------
    float
        For ``P == 1`` the sum of the squared contributions, i.e.
        :math:`\lVert\Delta w\rVert^2` (each weight gets one); 0 otherwise
        (the caller takes the norm of its accumulator).

    Notes
    -----
    The kernel is evaluated branch-free,
    :math:`K(s) = \max(0, \min(s/\tau_r,\ 1,\ 1 - (s - \tau_r)/\tau_d))`
    (the last term dropped for rise-plateau), over all ``M`` maps of a
    position so that the inner loop vectorises; positions without any
    nonzero coefficient are skipped.
    """
    P = pre.shape[0]
    F = pre.shape[1]
    M = dw.shape[1]
    inv_r = 1.0 / tau_r
    inv_d = 1.0 / tau_d if kind == RISE_DECAY else 0.0
    one_plus = 1.0 + tau_r * inv_d
    single = P == 1
    sumsq = 0.0
    for p in range(P):
        base = p * M
        active = False
        for m in range(M):
            if coef[base + m] != 0.0:
                active = True
                break
        if not active:
            continue
        for f in range(F):
            ti = t_in[pre[p, f]]
            if not ti < np.inf:
                continue
            row = dw[f]
            if single:
                for m in range(M):
                    sv = t_post[base + m] - ti
                    k = min(sv * inv_r, 1.0, one_plus - sv * inv_d)
                    d = coef[base + m] * max(k, 0.0)
                    row[m] += d
                    sumsq += d * d
            else:
                for m in range(M):
                    sv = t_post[base + m] - ti
                    k = min(sv * inv_r, 1.0, one_plus - sv * inv_d)
                    row[m] += coef[base + m] * max(k, 0.0)
    return sumsq


@njit
def layer_vote(t_in, pre, t_post, dv, w, binary, scale, mode, kind, tau_r, tau_d, silent_gain, vote):
    r"""Accumulate the hidden displacement vote of the presynaptic layer.

    .. math::

        \text{vote}_i \mathrel{+}= \sum_{(p, f):\, pre[p, f] = i} \sum_m
            dv_{pm}\, \tilde w_{fm}\, G(t_{pm} - t_i)

    with :math:`G = \tau_r K'` (``mode`` :data:`VOTE_DERIVATIVE`, the
    linearisation :math:`\partial V_j(t_j)/\partial t_i = -w_{ji} K'(t_j - t_i)`
    made dimensionless by :math:`\tau_r`) or :math:`G = K` (``mode``
    :data:`VOTE_PSP`, the causal PSP-weighted vote).  :math:`\tilde w` is the
    forward weight (``scale * sign(w)`` when ``binary``).  ``vote`` (n_pre,)
    is accumulated in place.  A silent presynaptic neuron gets the vote with
    :math:`G` = ``silent_gain`` for every postsynaptic neuron (0: nothing; 1:
    as if it had fired early enough to add its whole weight).
    """
    P = pre.shape[0]
    F = pre.shape[1]
    M = w.shape[1]
    active = np.empty(M, np.int64)
    for p in range(P):
        n_act = 0
        for m in range(M):
            if dv[p * M + m] != 0.0:
                active[n_act] = m
                n_act += 1
        if n_act == 0:
            continue
        for f in range(F):
            i = pre[p, f]
            ti = t_in[i]
            silent = not ti < np.inf
            if silent and silent_gain == 0.0:
                continue
            acc = 0.0
            for q in range(n_act):
                m = active[q]
                if silent:
                    g = silent_gain
                elif mode == VOTE_DERIVATIVE:
                    g = psp_slope(t_post[p * M + m] - ti, kind, tau_r, tau_d) * tau_r
                else:
                    g = psp(t_post[p * M + m] - ti, kind, tau_r, tau_d)
                if g != 0.0:
                    acc += dv[p * M + m] * _weight(w, f, m, binary, scale) * g
            vote[i] += acc


@njit
def abs_mean(w):
    """Mean absolute value of a 2-D array (binary-weight scale)."""
    acc = 0.0
    for a in range(w.shape[0]):
        for b in range(w.shape[1]):
            acc += abs(w[a, b])
    n = w.shape[0] * w.shape[1]
    return acc / n if n > 0 else 0.0


# --------------------------------------------------------------------------- Python wrappers

@lru_cache(maxsize=64)
def _dense_tables(n_pre: int):
    pre = dense_patches(n_pre)
    return (pre, *invert_patches(pre, n_pre))


def crossing_times(t_in, w, v_th: float, kernel: str = "rise-plateau", tau_r: float = 1.0,
                   tau_d: float = 1.0, t_end: float = np.inf, binary: bool = False, scale: float = 1.0):
    """First threshold crossings of a dense PWL-PSP layer.

    Parameters
    ----------
    t_in : array (n_pre,)
        Presynaptic spike times (``inf`` for silent inputs).
    w : array (n_pre, n_post)
        Weights, pre-major.
    v_th : float
        Threshold.
    kernel : {"rise-plateau", "rise-decay"}
    tau_r, tau_d : float
        Kernel rise and decay times (same unit as ``t_in``).
    t_end : float
        End of the window (default: unlimited).

    Returns
    -------
    t_out, slope, v_end : float64 arrays (n_post,)
        Crossing times (``inf``: never fires), slope at the crossing (at
        ``t_end`` for silent neurons; 0 after the last breakpoint) and the
        potential at ``t_end`` (threshold for neurons that fired).

    Examples
    --------
    Two inputs at 0 and 1 ms, weights 0.6 each, threshold 1, 2 ms rise:
    ``V = 0.3 t`` on [0, 1] and ``0.3 + 0.6 (t - 1)`` on [1, 2], so
    ``V(2) = 0.9``; at 2 ms the first kernel plateaus and the slope drops to
    0.3, so ``0.9 + 0.3 (t - 2) = 1`` at ``t = 7/3``.

    >>> t, s, _ = crossing_times(np.array([0.0, 1.0]), np.array([[0.6], [0.6]]), 1.0, tau_r=2.0)
    >>> round(float(t[0]), 4), round(float(s[0]), 4)
    (2.3333, 0.3)
    """
    t_in = np.ascontiguousarray(t_in, dtype=np.float64).ravel()
    w = np.ascontiguousarray(w)
    if w.ndim != 2 or w.shape[0] != t_in.shape[0]:
        raise ConfigError(f"weights must have shape (n_pre={t_in.shape[0]}, n_post); got {w.shape}")
    if np.isnan(t_in).any() or (t_in < 0).any():
        raise ConfigError("spike times must be non-negative (inf for a silent input); got "
                          f"{t_in[np.isnan(t_in) | (t_in < 0)][:5].tolist()}")
    if not (tau_r > 0 and tau_d > 0):
        raise ConfigError(f"tau_r and tau_d must be positive; got {tau_r}, {tau_d}")
    if not np.issubdtype(w.dtype, np.floating):
        w = w.astype(np.float64)
    pre, ptr, pos, col = _dense_tables(t_in.shape[0])
    n_post = w.shape[1]
    t_out = np.empty(n_post)
    s_out = np.empty(n_post)
    v_end = np.empty(n_post)
    layer_forward(t_in, pre, ptr, pos, col, w, bool(binary), float(scale), float(v_th), kernel_code(kernel),
                  float(tau_r), float(tau_d), float(t_end), t_out, s_out, v_end)
    return t_out, s_out, v_end


def potential_breakpoints(t_pre, w, kernel: str, tau_r: float, tau_d: float, t_end: float):
    """Exact polyline of one neuron's potential over ``[0, t_end]``.

    Parameters
    ----------
    t_pre : array (n,)
        Presynaptic spike times (``inf`` ignored).
    w : array (n,)
        The neuron's (forward) weights from those inputs.

    Returns
    -------
    times, v : float64 arrays
        Sorted breakpoint times (0 and ``t_end`` included) and the potential
        there; the potential is linear in between.  Ignores the threshold:
        the caller marks the crossing.
    """
    t_pre = np.asarray(t_pre, np.float64).ravel()
    w = np.asarray(w, np.float64).ravel()
    keep = np.isfinite(t_pre) & (t_pre < t_end)
    t_pre, w = t_pre[keep], w[keep]
    kind = kernel_code(kernel)
    offs = [0.0, tau_r] + ([tau_r + tau_d] if kind == RISE_DECAY else [])
    pts = np.concatenate([[0.0, t_end], *[t_pre + o for o in offs]])
    pts = np.unique(pts[(pts >= 0.0) & (pts <= t_end)])
    v = np.array([sum(float(wi) * psp(float(tb - ti), kind, tau_r, tau_d) for ti, wi in zip(t_pre, w))
                  for tb in pts]) if len(t_pre) else np.zeros(len(pts))
    return pts, v


def sample_polyline(times, v, grid):
    """Values of a polyline at ``grid`` (linear interpolation, constant outside)."""
    return np.interp(grid, times, v)


def check_kernel_times(tau_r: float, tau_d: float, t_max: float, t_end: float) -> None:
    """Raise :class:`ConfigError` unless the time constants make a usable window."""
    for name, val in (("tau_r", tau_r), ("tau_d", tau_d), ("t_max", t_max), ("t_end", t_end)):
        if not (math.isfinite(val) and val > 0):
            raise ConfigError(f"{name} must be a positive finite time; got {val}")
    if t_end < t_max:
        raise ConfigError(f"the window t_end = {t_end} ms must not end before the input window "
                          f"t_max = {t_max} ms (inputs would be cut off); raise t_end")
