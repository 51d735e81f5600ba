r"""Small, exact models behind the teaching demos (single neuron, STDP window).

Discrete LIF neuron
-------------------
Per step ``n`` (unit: one step), with input current ``I_n``:

.. math::

    V \leftarrow \lambda V + I_n, \qquad
    \text{spike if } V \ge \vartheta \text{ (and not refractory)}, \qquad
    V \leftarrow \begin{cases} V - \vartheta & \text{reset by subtraction} \\
                               V_r & \text{reset to a value}\end{cases}

During ``ref`` steps after a spike the potential is held at its reset value.
With a constant input and reset to :math:`V_r`, the potential after ``n`` steps
is :math:`V_n = V_\infty + \lambda^n (V_r - V_\infty)` with
:math:`V_\infty = I / (1 - \lambda)`, so the inter-spike interval is
:math:`n^* + \text{ref}` with
:math:`n^* = \lceil \ln\frac{V_\infty - \vartheta}{V_\infty - V_r} / \ln\lambda \rceil`
(no spike when :math:`V_\infty < \vartheta`): :func:`discrete_rate`.

STDP
----
The classic pair window :math:`\Delta w = A_+ e^{-\Delta t/\tau_+}` for
:math:`\Delta t = t_{post} - t_{pre} > 0` and :math:`-A_- e^{\Delta t/\tau_-}`
for :math:`\Delta t < 0` (Bi & Poo 1998; Song, Miller & Abbott 2000), and the
desire-modulated window of Desire BP, computed with the engine's own trace
and update kernels: only the causal half, :math:`\eta\,\delta\,\lambda^{\Delta t}`
for :math:`\Delta t \ge 0` and 0 otherwise, its sign set by the desire
:math:`\delta`.
"""

from __future__ import annotations

import math

import numpy as np

from spikewb.engine.config import njit
from spikewb.engine.errors import ConfigError
from spikewb.engine.neurons.lif import lif_layer_forward

RESET_MODES = ("subtract", "to value")


@njit
def _discrete_lif(i_ext, leak, v_th, v_reset, subtract, ref_steps, v_out, spikes):
    v = 0.0
    ref = 0
    for n in range(i_ext.shape[0]):
        if ref > 0:
            ref -= 1
            v_out[n] = v
            continue
        v = leak * v + i_ext[n]
        v_out[n] = v
        if v >= v_th:
            spikes[n] = 1
            if subtract:
                v -= v_th
            else:
                v = v_reset
            ref = ref_steps


def discrete_lif(i_ext, leak: float = 0.75, v_th: float = 1.0, v_reset: float = 0.0,
                 reset: str = "subtract", ref_steps: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Simulate one discrete LIF neuron.

    Returns ``(v, spike_steps)``: the potential after integration and before
    the threshold test at each step, and the steps with a spike.

    Examples
    --------
    >>> v, s = discrete_lif(np.full(4, 0.6), leak=0.75, v_th=1.0)
    >>> v.round(4).tolist(), s.tolist()
    ([0.6, 1.05, 0.6375, 1.0781], [1, 3])
    """
    if reset not in RESET_MODES:
        raise ConfigError(f"reset must be one of {RESET_MODES}, got {reset!r}")
    if not 0.0 < leak <= 1.0:
        raise ConfigError(f"leak must lie in (0, 1], got {leak}")
    i_ext = np.ascontiguousarray(np.asarray(i_ext, np.float64).ravel())
    v = np.zeros(i_ext.size)
    s = np.zeros(i_ext.size, np.uint8)
    _discrete_lif(i_ext, float(leak), float(v_th), float(v_reset), reset == "subtract", int(ref_steps), v, s)
    return v, np.flatnonzero(s)


def discrete_rate(current, leak: float, v_th: float, v_reset: float = 0.0, ref_steps: int = 0) -> np.ndarray:
    """Closed-form firing rate (spikes per step) of the discrete LIF with reset to ``v_reset``.

    Valid from the second spike on (the first interval starts from 0, not
    from ``v_reset``).

    >>> float(discrete_rate(0.6, 0.75, 1.0))   # V: 0.6, 1.05 -> every 2nd step
    0.5
    """
    i = np.atleast_1d(np.asarray(current, np.float64))
    out = np.zeros_like(i)
    for k, ik in enumerate(i):
        if ik <= 0:
            continue
        v_inf = ik / (1.0 - leak) if leak < 1.0 else math.inf
        if v_inf < v_th:
            continue
        if math.isinf(v_inf):
            n = max(1, math.ceil((v_th - v_reset) / ik - 1e-12))
        elif v_inf == v_th or v_reset >= v_th:
            n = 1 if v_reset >= v_th else None
            if n is None:
                continue
        else:
            ratio = (v_inf - v_th) / (v_inf - v_reset)
            n = max(1, math.ceil(math.log(ratio) / math.log(leak) - 1e-9))
        out[k] = 1.0 / (n + ref_steps)
    return out if np.ndim(current) else out[:1].reshape(())


def synaptic_current(spike_steps, n_steps: int, weight: float, decay: float) -> np.ndarray:
    """Exponentially decaying synaptic current driven by spikes at ``spike_steps``.

    ``I_n = decay * I_{n-1} + weight * (number of spikes at step n)``.
    """
    i = np.zeros(n_steps)
    counts = np.bincount(np.asarray(spike_steps, np.int64), minlength=n_steps)[:n_steps]
    acc = 0.0
    for n in range(n_steps):
        acc = decay * acc + weight * counts[n]
        i[n] = acc
    return i


def poisson_steps(rate_per_step: float, n_steps: int, rng: np.random.Generator) -> np.ndarray:
    """Steps with a spike of a Bernoulli (discrete Poisson) train."""
    if not 0.0 <= rate_per_step <= 1.0:
        raise ConfigError(f"spike probability per step must lie in [0, 1], got {rate_per_step}")
    return np.flatnonzero(rng.random(n_steps) < rate_per_step)


def parse_spike_times(text: str, limit: float) -> tuple[np.ndarray, list[str]]:
    """Parse ``"5, 12.5, 30"`` into sorted times within ``[0, limit)``; bad items are reported.

    >>> parse_spike_times("5, x, 12, 99", 50)
    (array([ 5., 12.]), ["'x' is not a number", '99 is outside 0..50'])
    """
    times, problems = [], []
    for item in text.replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            t = float(item)
        except ValueError:
            problems.append(f"{item!r} is not a number")
            continue
        if not (0.0 <= t < limit) or not math.isfinite(t):
            problems.append(f"{item} is outside 0..{limit:g}")
            continue
        times.append(t)
    return np.array(sorted(times)), problems


def stdp_window(dt, a_plus: float = 0.01, a_minus: float = 0.012, tau_plus: float = 20.0,
                tau_minus: float = 20.0) -> np.ndarray:
    """Pair-based STDP weight change for ``dt = t_post - t_pre`` (ms).

    >>> stdp_window(np.array([10.0, -10.0, 0.0]), 1.0, 1.0, 10.0, 10.0).round(4).tolist()
    [0.3679, -0.3679, 1.0]
    """
    dt = np.asarray(dt, np.float64)
    return np.where(dt >= 0, a_plus * np.exp(-dt / tau_plus), -a_minus * np.exp(dt / tau_minus))


def repeated_pairings(dt: float, n_pairs: int, w0: float = 0.5, w_max: float = 1.0, **window) -> np.ndarray:
    """Weight after each of ``n_pairs`` pairings at offset ``dt``, multiplicative soft bounds.

    Potentiation scales with ``w_max - w`` and depression with ``w`` (van Rossum,
    Bi & Turrigiano 2000), so the weight saturates instead of growing without bound.
    """
    dw = float(stdp_window(dt, **window))
    w = np.empty(n_pairs + 1)
    w[0] = w0
    for k in range(n_pairs):
        w[k + 1] = w[k] + (dw * (w_max - w[k]) / w_max if dw >= 0 else dw * w[k] / w_max)
    return w


def desire_stdp_window(dt_steps, desire: float = 1.0, leak: float = 0.75, lr: float = 1.0,
                       n_steps: int = 64) -> np.ndarray:
    """Desire BP's weight change for one pre/post spike pair, from the engine's kernels.

    One presynaptic spike at step ``n_steps // 2`` and one postsynaptic spike
    ``dt`` steps later are fed through :func:`spikewb.engine.neurons.lif.lif_layer_forward`
    (which computes the presynaptic trace) and Desire BP's update kernel, for
    desire ``+1`` or ``-1``.  The result is ``lr * desire * leak**dt`` for
    ``dt >= 0`` and 0 for ``dt < 0``.
    """
    from spikewb.engine.rules.desire import _desire_update

    dts = np.atleast_1d(np.asarray(dt_steps, np.int64))
    out = np.zeros(dts.size)
    t_pre = n_steps // 2
    pre = np.zeros((n_steps + 1, 1), np.uint8)
    pre[t_pre, 0] = 1
    w0 = np.zeros((1, 1))
    traces = np.zeros((n_steps, 1))
    none = np.zeros(0, np.int64)
    lif_layer_forward(pre, 1.0, w0, 0.5, 1e9, np.ones(1, np.uint8), float(leak),
                      np.zeros((n_steps + 1, 1), np.uint8), traces, none, np.zeros((0, n_steps)),
                      np.zeros((0, n_steps)))
    for k, d in enumerate(dts):
        t_post = t_pre + int(d)
        if not 0 <= t_post < n_steps:
            continue
        post = np.zeros((n_steps + 1, 1), np.uint8)
        post[t_post + 1, 0] = 1                    # step t is stored in row t + 1
        w = np.zeros((1, 1))
        _desire_update(w, traces, post, np.array([lr * desire]))
        out[k] = w[0, 0]
    return out if np.ndim(dt_steps) else out[:1].reshape(())
