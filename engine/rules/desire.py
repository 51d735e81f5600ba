r"""Desire backpropagation (Gerlinghoff, Luo, Goh, Wong; Neurocomputing 2023).

Every neuron gets a ternary *desire* :math:`\delta_i \in \{-1, 0, +1\}` ("spike
less", "don't care", "spike more") derived from the output error and passed
backwards through the forward weights; the desire then sets the sign of a
local, STDP-like weight update.  The implementation follows the authors'
public code (``desire_pytorch.py``) as summarised in
``reference/desire_ssnn.md`` section 1; nothing here was reconstructed beyond
what the notes mark as code-confirmed, except the per-sample loss shown in
the views (see ``loss`` below), which the paper does not define.

Notes
-----
Forward (per sample, ``T`` steps, discrete LIF of :mod:`spikewb.engine.neurons.lif`):
leak :math:`\lambda = 0.75` before integration, threshold 1 with ``>=``,
reset by subtraction, membrane potentials start at 0, deterministic rate
input, one-step delay between consecutive layers.  Dropout masks are drawn
once per sample (input and hidden layers, never the output); a masked neuron
neither fires nor resets, and a surviving spike carries :math:`1/(1-p)`.

Output desire, with counts :math:`c_i` and :math:`N^* = T - m`:
:math:`e_i = |[i = y] - c_i / N^*|`, active if :math:`e_i > \alpha_{out}`,
:math:`\delta_i = \pm 1` by :math:`[i = y]`.

Hidden desire, from the layer above (neurons :math:`i`, mask :math:`m_i`):

.. math::

    g_i = e_i \delta_i m_i, \qquad
    \sigma_j = \sum_i W_{ji} g_i, \qquad
    \delta_j = \operatorname{sign}(\sigma_j)\,[|\sigma_j| \ge \alpha_{hid}]

with :math:`e_i = |[\delta_i > 0] - c_i/N^*|` (unscaled counts).

Update after the sample, for every active post neuron :math:`i` that was not
dropped out: :math:`\Delta W_{ji} = \eta\,\delta_i \sum_t z_i(t)\,x_j(t)`
with the presynaptic trace :math:`x_j(t) = \lambda x_j(t-1) + s_j(t)`
(spikes clamped to 1, including step ``t``'s spike).  The weights used in the
forward and desire passes are those from before the update.

Decision rule: the predicted class is the output neuron with the most spikes
and counts only if that maximum is unique (ties give ``-1``, "no decision").

References
----------
D. Gerlinghoff, T. Luo, R. S. M. Goh, W.-F. Wong, "Desire backpropagation:
A lightweight training algorithm for multi-layer spiking neural networks based
on spike-timing-dependent plasticity", Neurocomputing 560 (2023) 126773.
"""

from __future__ import annotations

import math
import threading
from typing import ClassVar, NamedTuple

import numpy as np
import param

from spikewb.engine.config import njit
from spikewb.engine.data.encoding import rate_deterministic
from spikewb.engine.errors import ConfigError, NumericalError
from spikewb.engine.frame import Frame, Record, RECORD_NONE, raster_events
from spikewb.engine.network import Architecture, Model
from spikewb.engine.neurons.lif import lif_layer_forward, lif_layer_forward_grouped
from spikewb.engine.rules.base import LearningRule, label_in_range, register, scheduled_lr

#: Paper configurations (reference code's ``hyper_pars.config`` and README).
PRESETS = {
    "mnist": dict(hidden=[1600, 800], dropout_in=0.0, dropout_hid=0.3, epochs=150),
    "fashion-mnist": dict(hidden=[1000, 100], dropout_in=0.05, dropout_hid=0.4, epochs=600),
}


@njit
def _desire_update(w, traces, spikes_out, coef):
    """Apply ``W[j, i] += coef[i] * sum_t z_i(t) x_j(t)`` in place.

    Parameters
    ----------
    w : float array (n_pre, n_post)
        Weights, pre-major; updated in place.
    traces : float array (T, n_pre)
        Presynaptic traces ``x_j(t)``.
    spikes_out : uint8 array (T + 1, n_post)
        Postsynaptic spikes; step ``t`` in row ``t + 1``.
    coef : float array (n_post,)
        ``eta * delta_i * mask_i`` (0 for inactive neurons).
    """
    n_steps = traces.shape[0]
    n_pre = w.shape[0]
    n_post = w.shape[1]
    # active post neurons of every step first; then each weight row is updated once per
    # sample, its contributions still added in ascending t (bit-identical to a t-outer loop)
    # (the lists are built without a data-dependent branch: write always, advance on a hit)
    post = np.empty((n_steps, n_post), dtype=np.int64)
    n_act = np.zeros(n_steps, dtype=np.int64)
    active = np.empty(n_post, dtype=np.int64)
    for i in range(n_post):
        active[i] = coef[i] != 0.0
    n_total = 0
    for t in range(n_steps):
        row = spikes_out[t + 1]
        pt = post[t]
        n = 0
        for i in range(n_post):
            pt[n] = i
            n += (row[i] != 0) * active[i]
        n_act[t] = n
        n_total += n
    if n_total == 0:
        return
    for j in range(n_pre):
        for t in range(n_steps):
            xv = traces[t, j]
            if xv == 0.0 or n_act[t] == 0:
                continue
            for k in range(n_act[t]):
                i = post[t, k]
                w[j, i] += coef[i] * xv



@njit
def _update_norm_sq(gram, spikes_out, coef):
    """``||dW||^2 = sum_i coef_i^2 s_i^T G s_i`` from the presynaptic Gram matrix.

    Parameters
    ----------
    gram : float array (T, T)
        ``G = X X^T`` of the presynaptic traces ``X`` (T, n_pre).
    spikes_out : uint8 array (T + 1, n_post)
        Postsynaptic spikes; step ``t`` in row ``t + 1``.
    coef : float array (n_post,)
        As in :func:`_desire_update`.

    Returns
    -------
    float
        The squared Frobenius norm of the update, summed in float64 over the
        neurons with a non-zero ``coef`` that spiked (all others add 0).
    """
    n_steps = gram.shape[0]
    n_post = coef.shape[0]
    steps = np.empty(n_steps, dtype=np.int64)
    total = 0.0
    for i in range(n_post):
        c = np.float64(coef[i])
        if c == 0.0:
            continue
        n = 0
        for t in range(n_steps):
            if spikes_out[t + 1, i] != 0:
                steps[n] = t
                n += 1
        q = 0.0
        for a in range(n):
            for b in range(n):
                q += np.float64(gram[steps[a], steps[b]])
        total += c * c * q
    return total



@njit
def _gather_update(traces, spikes_out, coef):
    """Compact operands of the summed update ``dW[J, U] = A^T B`` (float32 path).

    Only steps at which an active neuron (``coef != 0``) spiked, presynaptic
    neurons with a non-zero trace at one of those steps (``J``) and active
    neurons that spiked (``U``) take part; every other entry of ``dW`` is 0.

    Returns
    -------
    A : (n_steps_active, n_J) traces ``x_j(t)``
    B : (n_steps_active, n_U) ``coef_i z_i(t)``
    J, U : int64 arrays of presynaptic / postsynaptic indices (ascending)
    """
    n_steps = traces.shape[0]
    n_pre = traces.shape[1]
    n_post = coef.shape[0]
    # branch-free scans (a data-dependent branch per element costs more than the work)
    active = np.empty(n_post, dtype=np.uint8)
    for i in range(n_post):
        active[i] = coef[i] != 0.0
    fired = np.zeros(n_post, dtype=np.uint8)
    t_act = np.zeros(n_steps, dtype=np.uint8)
    for t in range(n_steps):                       # row by row: spike buffers are step-major
        row = spikes_out[t + 1]
        any_t = np.uint8(0)
        for i in range(n_post):
            h = np.uint8(row[i] != 0) & active[i]
            fired[i] |= h
            any_t |= h
        t_act[t] = any_t
    post = np.flatnonzero(fired)                   # ascending indices
    steps = np.flatnonzero(t_act)
    n_u = post.shape[0]
    n_s = steps.shape[0]
    flag = np.zeros(n_pre, dtype=np.uint8)
    for s in range(n_s):
        xr = traces[steps[s]]
        for j in range(n_pre):
            flag[j] |= np.uint8(xr[j] != 0.0)
    pre = np.flatnonzero(flag)
    n_j = pre.shape[0]
    a = np.empty((n_s, n_j), dtype=traces.dtype)
    b = np.empty((n_s, n_u), dtype=traces.dtype)
    for s in range(n_s):
        t = steps[s]
        xr = traces[t]
        for k in range(n_j):
            a[s, k] = xr[pre[k]]
        for u in range(n_u):
            i = post[u]
            b[s, u] = coef[i] if spikes_out[t + 1, i] != 0 else 0.0
    return a, b, pre, post


@njit
def _scatter_update(w, rows, cols, dw):
    """``w[rows[a], cols[b]] += dw[a, b]`` in place; returns ``sum dw^2`` in float64."""
    sq = 0.0
    for a in range(rows.shape[0]):
        wr = w[rows[a]]
        dr = dw[a]
        for b in range(cols.shape[0]):
            d = dr[b]
            wr[cols[b]] += d
            sq += np.float64(d) * np.float64(d)
    return sq


def apply_update(w, traces, spikes_out, coef) -> float:
    """Apply the Desire BP update of one layer in place; return ``||dW||_F``.

    ``dW[j, i] = coef_i sum_t z_i(t) x_j(t)``.  Float64 weights take the
    per-step path (:func:`_desire_update`, each step's term added to ``w`` in
    ascending ``t``; the norm from the Gram matrix of the traces), which is
    bit-for-bit what earlier versions computed.  Float32 weights of layers with
    at least :data:`SUMMED_UPDATE_MIN` synapses sum the update over the sample
    in float32 first, as one small matrix product over the active steps, rows and
    columns, and add it once, as the authors' PyTorch code does; the norm is
    then that of the added matrix.  Either way only weights of neurons with a
    non-zero ``coef`` that spiked, from presynaptic neurons with a trace, change.
    """
    if not coef.any():
        return 0.0
    return _apply_nonzero_update(w, traces, spikes_out, coef)


def _apply_nonzero_update(w, traces, spikes_out, coef) -> float:
    """:func:`apply_update` for a ``coef`` known to have a non-zero entry."""
    if w.dtype.type is np.float32 and w.size >= SUMMED_UPDATE_MIN:
        a, b, rows, cols = _gather_update(traces, spikes_out, coef)
        if rows.size == 0 or cols.size == 0:
            return 0.0
        return float(np.sqrt(_scatter_update(w, rows, cols, a.T @ b)))
    norm = float(np.sqrt(_update_norm_sq(traces @ traces.T, spikes_out, coef)))
    _desire_update(w, traces, spikes_out, coef)
    return norm


#: Smallest float32 layer (synapses) that takes the summed update of :func:`apply_update`;
#: below it the per-step kernel is faster than gathering operands for one matrix product.
SUMMED_UPDATE_MIN = 1 << 14


@njit
def _back_project(w, g, sigma):
    """``sigma_j = sum_i w[j, i] g_i`` in float64, reading ``w`` in place (any float type).

    Only the non-zero ``g_i`` are visited (in ascending ``i``); four rows run
    side by side so the float64 sums do not wait on each other.
    """
    n_pre = w.shape[0]
    n_post = w.shape[1]
    nz = np.empty(n_post, dtype=np.int64)
    gv = np.empty(n_post, dtype=np.float64)
    n = 0
    for i in range(n_post):
        if g[i] != 0.0:
            nz[n] = i
            gv[n] = g[i]
            n += 1
    j = 0
    while j + 4 <= n_pre:
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        for k in range(n):
            i = nz[k]
            gk = gv[k]
            s0 += np.float64(w[j, i]) * gk
            s1 += np.float64(w[j + 1, i]) * gk
            s2 += np.float64(w[j + 2, i]) * gk
            s3 += np.float64(w[j + 3, i]) * gk
        sigma[j] = s0
        sigma[j + 1] = s1
        sigma[j + 2] = s2
        sigma[j + 3] = s3
        j += 4
    while j < n_pre:
        s0 = 0.0
        for k in range(n):
            s0 += np.float64(w[j, nz[k]]) * gv[k]
        sigma[j] = s0
        j += 1


@njit
def _ternarise(sigma, alpha, delta):
    """``delta = sign(sigma) * [|sigma| >= alpha]`` into ``delta`` (NaN gives 0)."""
    for j in range(sigma.shape[0]):
        s = sigma[j]
        delta[j] = (1.0 if s > 0 else -1.0) if abs(s) >= alpha else 0.0


@njit
def _desire_g(delta, counts, mask, n_target, g):
    """``g_i = |[delta_i > 0] - c_i / N*| delta_i m_i`` into ``g`` (float64, NumPy's order of operations)."""
    for i in range(delta.shape[0]):
        should = 1.0 if delta[i] > 0 else 0.0
        g[i] = abs(should - counts[i] / n_target) * delta[i] * mask[i]


@njit
def _update_coef(delta, mask, lr, coef):
    """``coef_i = lr * delta_i * m_i`` rounded to ``coef``'s type; True if any is non-zero."""
    nonzero = False
    for i in range(delta.shape[0]):
        coef[i] = lr * delta[i] * mask[i]
        if coef[i] != 0.0:
            nonzero = True
    return nonzero


@njit
def _spike_counts(spikes, counts):
    """Column sums of a uint8 spike buffer into int32 ``counts``."""
    for i in range(counts.shape[0]):
        counts[i] = 0
    for t in range(spikes.shape[0]):
        for i in range(spikes.shape[1]):
            counts[i] += spikes[t, i]


@njit
def _output_desire(counts, label, n_target, alpha_out, delta, e):
    """:func:`output_desire` into ``delta`` and ``e`` (float64, NumPy's operations, bit for bit)."""
    for i in range(counts.shape[0]):
        should = 1.0 if i == label else 0.0
        ei = abs(should - counts[i] / n_target)
        e[i] = ei
        delta[i] = (2.0 * should - 1.0) if ei > alpha_out else 0.0


@njit
def _unique_argmax(counts):
    """Index of the first maximum, or -1 if it occurs more than once (``counts`` not empty)."""
    best = 0
    tie = False
    for i in range(1, counts.shape[0]):
        if counts[i] > counts[best]:
            best = i
            tie = False
        elif counts[i] == counts[best]:
            tie = True
    return -1 if tie else best


def output_desire(counts: np.ndarray, label: int, n_target: int, alpha_out: float):
    """Ternary output desire and error magnitude.

    Returns ``(delta, e)`` with ``e_i = |[i == label] - c_i / n_target|`` and
    ``delta_i = +1`` (label) / ``-1`` (others) where ``e_i > alpha_out``, else 0.

    Examples
    --------
    >>> d, e = output_desire(np.array([5, 4, 11, 12]), 2, 16, 0.30)
    >>> d.tolist()          # 5/16 > 0.3 -> -1; 4/16 -> 0; 1-11/16 > 0.3 -> +1
    [-1.0, 0.0, 1.0, -1.0]
    """
    counts = np.asarray(counts)
    delta = np.empty(len(counts), np.float64)
    e = np.empty(len(counts), np.float64)
    _output_desire(counts, int(label), float(n_target), float(alpha_out), delta, e)
    return delta, e


def hidden_desire(w: np.ndarray, g: np.ndarray, alpha_hid: float):
    """Back-project ``g`` through pre-major weights and ternarise.

    Returns ``(delta, sigma)`` with ``sigma = w @ g`` (float64) and
    ``delta = sign(sigma) * [|sigma| >= alpha_hid]``.  The weights are never
    copied: float64 weights go to BLAS as they are, float32 weights are read
    in place by a kernel that sums in float64 over the non-zero ``g_i``
    (so float32 runs may differ from ``w.astype(float64) @ g`` in the last bits).
    """
    if w.dtype == np.float64:
        sigma = w @ np.asarray(g, np.float64)            # BLAS, no copy of w
    else:                                                 # float32: float64 sums, w read in place
        sigma = np.empty(w.shape[0], np.float64)
        _back_project(w, np.ascontiguousarray(g, np.float64), sigma)
    delta = np.empty(sigma.shape[0], np.float64)
    _ternarise(sigma, float(alpha_hid), delta)
    return delta, sigma


def flow_links(weights, g, k: int) -> np.ndarray:
    """The ``k`` strongest contributions ``W_ji g_i`` between consecutive non-input layers.

    Returns a float32 array of shape (n, 4) with rows
    ``(upper layer l, i in layer l, j in layer l - 1, W_ji g_i)`` for
    ``l = 2..L``, at most ``k`` rows per layer pair, largest ``|value|`` first;
    zero contributions are left out.
    """
    rows = []
    for l in range(len(weights), 1, -1):
        if g[l] is None or not np.any(g[l]):
            continue
        c = weights[l - 1].astype(np.float64) * g[l][None, :]          # (n_{l-1}, n_l): [j, i]
        flat = np.abs(c).ravel()
        n = min(k, int(np.count_nonzero(flat)))
        if n == 0:
            continue
        top = np.argpartition(flat, -n)[-n:]
        top = top[np.argsort(-flat[top])]
        j, i = np.unravel_index(top, c.shape)
        rows.append(np.column_stack([np.full(n, l), i, j, c[j, i]]))
    return np.vstack(rows).astype(np.float32) if rows else np.zeros((0, 4), np.float32)


def unique_argmax(counts: np.ndarray) -> int:
    """Index of the unique maximum, or -1 on a tie.

    >>> unique_argmax(np.array([1, 3, 2])), unique_argmax(np.array([3, 3, 0]))
    (1, -1)
    """
    if counts.ndim == 1 and counts.size and counts.dtype.kind in "iu":
        return int(_unique_argmax(counts))
    m = counts.max()
    hits = np.flatnonzero(counts == m)
    return int(hits[0]) if len(hits) == 1 else -1


_ONES: dict[int, np.ndarray] = {}
_WORKSPACE = threading.local()


def _ones(n: int) -> np.ndarray:
    """A shared all-ones uint8 mask of length ``n`` (read only by the kernels; never write to it)."""
    m = _ONES.get(n)
    if m is None:
        m = _ONES[n] = np.ones(n, np.uint8)
    return m


def _workspace(sizes, n_steps: int, ft) -> tuple[list, list]:
    """This thread's spike buffers ``(T + 1, n_l)`` and trace buffers ``(T, n_{l-1})`` for a training step.

    Reused from one step to the next while the layer sizes, ``T`` and the float type stay
    the same, so a step allocates none of them; their contents are undefined until the
    forward pass writes them.  Per thread, so concurrent steps never share a buffer.
    """
    key = (tuple(sizes), n_steps, ft)
    ws = getattr(_WORKSPACE, "desire", None)
    if ws is None or ws[0] != key:
        spikes = [np.empty((n_steps + 1, n), np.uint8) for n in sizes]
        traces = [np.empty((n_steps, n), ft) for n in sizes[:-1]]
        ws = _WORKSPACE.desire = (key, spikes, traces)
    return ws[1], ws[2]


class _Hyper(NamedTuple):
    """Hyperparameters as plain Python values, read once per change (see ``DesireBP._hyper``)."""

    n_steps: int
    margin: int
    leak: float
    v_th: float
    alpha_out: float
    alpha_hid: float
    dropout_in: float
    dropout_hid: float
    lr: float
    lr_decay: float
    lr_schedule: str

    def learning_rate(self, epoch: int) -> float:
        """As :meth:`LearningRule.learning_rate`, from the snapshot."""
        return scheduled_lr(self.lr, self.lr_schedule, self.lr_decay, epoch)


@register
class DesireBP(LearningRule):
    """Desire backpropagation: ternary desire folded into a desire-signed STDP update.

    Defaults are the authors' settings (``reference/desire_ssnn.md`` 1.6);
    see the module docstring for the equations.
    """

    presets: ClassVar[dict] = PRESETS
    key: ClassVar[str] = "desire"
    title: ClassVar[str] = "Desire backpropagation"
    signals: ClassVar[str] = "desire"
    loss_name: ClassVar[str] = "output rate error (MSE)"
    structural: ClassVar[tuple[str, ...]] = ("dtype",)

    lr = param.Number(1e-5, bounds=(0.0, 1.0), softbounds=(0.0, 1e-3), step=1e-6,
                      label="Learning rate",
                      doc="eta_0 for the linear layers (paper: 1e-5).")
    lr_decay = param.Number(0.04, bounds=(0.0, 10.0), softbounds=(0.0, 0.2), step=0.005,
                            label="LR decay (1/epoch)",
                            doc="eta(e) = eta_0 exp(-decay e) (paper: 0.04).")
    n_steps = param.Integer(20, bounds=(2, 500), label="Time steps T",
                            doc="Time steps per sample (paper: 20).")
    leak = param.Number(0.75, bounds=(0.0, 1.0), inclusive_bounds=(False, True), step=0.01,
                        label="Leak lambda (kept per step)",
                        doc="Fraction of membrane potential and presynaptic trace kept each step, "
                            "1 - 2^-k with k = 2 in the paper (0.75).")
    v_th = param.Number(1.0, bounds=(0.0, 100.0), inclusive_bounds=(False, True), softbounds=(0.1, 4.0),
                        step=0.05, label="Threshold v_th",
                        doc="Firing threshold, also subtracted on reset (paper: 1.0, dimensionless).")
    margin = param.Integer(4, bounds=(0, 499), label="Error margin m (steps)",
                           doc="A desired output neuron's target count is T - m (paper: 4, i.e. 16 of 20).")
    alpha_out = param.Number(0.30, bounds=(0.0, 1.0), step=0.01, label="Output desire threshold",
                             doc="Output error e_i must exceed this to set a desire (paper: 0.30).")
    alpha_hid = param.Number(0.05, bounds=(0.0, 100.0), softbounds=(0.0, 0.5), step=0.005,
                             label="Hidden desire threshold",
                             doc="|sigma_j| must reach this to set a hidden desire (paper: 0.05).")
    dropout_in = param.Number(0.0, bounds=(0.0, 1.0), inclusive_bounds=(True, False), step=0.01,
                              label="Input dropout",
                              doc="Probability of dropping an input pixel for a sample "
                                  "(paper: 0 MNIST, 0.05 Fashion-MNIST).")
    dropout_hid = param.Number(0.3, bounds=(0.0, 1.0), inclusive_bounds=(True, False), step=0.01,
                               label="Hidden dropout",
                               doc="Probability of dropping a hidden neuron for a sample "
                                   "(paper: 0.3 MNIST, 0.40 Fashion-MNIST).")

    def __init__(self, **params):
        super().__init__(**params)
        self._hyper_cache: _Hyper | None = None
        self._consts_cache: tuple | None = None
        self.param.watch(self._drop_hyper, [k for k in self.param if k != "name"])

    def _drop_hyper(self, *events) -> None:
        self._hyper_cache = None

    def _hyper(self) -> _Hyper:
        """Parameter values read once and cached until a parameter changes.

        Reading a ``param`` attribute costs microseconds, which adds up to a
        tenth of a millisecond per training step when every use reads it again.
        """
        hp = self._hyper_cache
        if hp is None:
            hp = _Hyper(n_steps=int(self.n_steps), margin=int(self.margin), leak=self.leak, v_th=self.v_th,
                        alpha_out=self.alpha_out, alpha_hid=self.alpha_hid, dropout_in=self.dropout_in,
                        dropout_hid=self.dropout_hid, lr=self.lr, lr_decay=self.lr_decay,
                        lr_schedule=self.lr_schedule)
            self._hyper_cache = hp
        return hp

    def signal_threshold(self, layer: int, n_layers: int) -> float | None:
        """``alpha_out`` on the output error, ``alpha_hid`` on the back-projected sums.

        >>> DesireBP().signal_threshold(3, 4), DesireBP().signal_threshold(1, 4), DesireBP().signal_threshold(0, 4)
        (0.3, 0.05, None)
        """
        if layer == n_layers - 1:
            return float(self.alpha_out)
        return float(self.alpha_hid) if 1 <= layer < n_layers - 1 else None

    # ---------------------------------------------------------------- build
    def build(self, arch: Architecture, rng: np.random.Generator) -> Model:
        """Kaiming-normal weights, std sqrt(2 / fan_in), pre-major."""
        arch.validate()
        self._check_steps()
        sizes = arch.sizes
        ft = self.float_type
        weights = [np.ascontiguousarray(rng.normal(0.0, np.sqrt(2.0 / n_pre), (n_pre, n_post)).astype(ft))
                   for n_pre, n_post in zip(sizes[:-1], sizes[1:])]
        return Model(self.key, sizes, weights, rng)

    def _check_steps(self):
        if self.margin >= self.n_steps:
            raise ConfigError(f"error margin m = {self.margin} must be smaller than T = {self.n_steps} "
                              "(the output target is T - m spikes)")

    # ---------------------------------------------------------------- forward
    def _consts(self, hp: _Hyper, ft) -> tuple:
        """Per-step scalars in the weights' type, and empty recording buffers (cached with ``hp``)."""
        c = self._consts_cache
        if c is None or c[0] is not hp or c[1] is not ft:
            T = hp.n_steps
            scale = {p: ft(1.0 / (1.0 - p)) if p > 0.0 else ft(1.0) for p in (0.0, hp.dropout_in, hp.dropout_hid)}
            c = (hp, ft, ft(hp.leak), ft(hp.v_th), scale, np.zeros(0, np.int64), np.zeros((0, T), ft))
            self._consts_cache = c
        return c

    def _forward(self, model: Model, x: np.ndarray, train: bool, record: Record, hp: _Hyper | None = None):
        """Run all layers; returns spikes, traces, masks, recorded potentials and currents.

        ``hp`` is the parameter snapshot (:meth:`_hyper`); read here if not given.  In
        training the spike and trace buffers are this thread's workspace (see
        :func:`_workspace`): valid until the thread's next training step.
        """
        weights = model.weights
        sizes = model.sizes
        n_layers = len(sizes)
        hp = self._hyper() if hp is None else hp
        T, p_in, p_hid = hp.n_steps, hp.dropout_in, hp.dropout_hid
        ft = weights[0].dtype.type
        _, _, leak, v_th, scale, no_idx, no_rec = self._consts(hp, ft)
        masks, scales = [], []
        rng = model.rng
        for l, n in enumerate(sizes):
            p = 0.0
            if train and l < n_layers - 1:
                p = p_in if l == 0 else p_hid
            if p > 0.0:
                masks.append(np.greater_equal(rng.random(n), p).view(np.uint8))     # same draws, no copy
            else:
                masks.append(_ones(n))
            scales.append(scale[p])
        if train:
            spikes, traces = _workspace(sizes, T, ft)
            spikes = list(spikes)
            traces = list(traces)
            rate_deterministic(x, T, masks[0], spikes[0])
        else:
            spikes = [rate_deterministic(x, T, masks[0])]
            traces = [np.empty((0, n), ft) for n in sizes[:-1]]
        n_rec = len(record.neurons)
        rec_by_layer = {}
        for k, (layer, idx) in enumerate(record.neurons):
            if 1 <= layer < n_layers and 0 <= idx < sizes[layer]:
                rec_by_layer.setdefault(layer, []).append((k, idx))
        v_trace = np.zeros((n_rec, T), np.float32)
        i_trace = np.zeros((n_rec, T), np.float32)
        for l in range(1, n_layers):
            if train:
                out = spikes[l]
                out.fill(0)
            else:
                out = np.zeros((T + 1, sizes[l]), np.uint8)
                spikes.append(out)
            tr = traces[l - 1]
            rec = rec_by_layer.get(l) if rec_by_layer else None
            if rec:
                rec_idx = np.array([i for _, i in rec], np.int64)
                v_rec = np.zeros((len(rec), T), ft)
                i_rec = np.zeros((len(rec), T), ft)
            else:
                rec_idx, v_rec, i_rec = no_idx, no_rec, no_rec
            # float32: the input layer's rate code has few distinct spike trains, so its
            # weight rows are summed per train (another summation order, like the reference
            # code's float32 matrix products); float64 keeps the one-row-per-spike order
            forward = lif_layer_forward_grouped if (l == 1 and ft is np.float32) else lif_layer_forward
            forward(spikes[l - 1], scales[l - 1], weights[l - 1], leak, v_th, masks[l],
                    leak, out, tr, rec_idx, v_rec, i_rec)
            if rec:
                for r, (k, _) in enumerate(rec):
                    v_trace[k] = v_rec[r]
                    i_trace[k] = i_rec[r]
        return spikes, traces, masks, v_trace, i_trace

    # ---------------------------------------------------------------- step
    def train_step(self, model: Model, x: np.ndarray, y: int, record: Record | None = None) -> Frame:
        self.check_model(model)
        hp = self._hyper()
        T = hp.n_steps
        if hp.margin >= T:
            self._check_steps()
        weights = model.weights
        sizes = model.sizes
        n_layers = len(sizes)
        n_out = sizes[-1]
        if not (type(y) is int and 0 <= y < n_out):        # the common case needs no check call
            y = label_in_range(y, n_out)
        record = RECORD_NONE if record is None else record
        n_target = T - hp.margin
        lr = hp.learning_rate(model.epoch)
        alpha_hid = hp.alpha_hid

        spikes, traces, masks, v_trace, i_trace = self._forward(model, x, True, record, hp)
        counts = [np.empty(n, np.int32) for n in sizes]
        for s, c in zip(spikes, counts):
            _spike_counts(s, c)

        # desire, output then hidden layers (old weights throughout)
        delta = [None] * n_layers
        raw = [None] * n_layers
        g = [None] * n_layers
        delta[-1], e_out = output_desire(counts[-1], y, n_target, hp.alpha_out)
        raw[-1] = e_out
        ft = weights[0].dtype.type
        for l in range(n_layers - 1, 0, -1):
            if l == 1 and n_layers == 2:
                break
            g[l] = np.empty(sizes[l], np.float64)
            _desire_g(delta[l], counts[l], masks[l], float(n_target), g[l])
            if l > 1:
                delta[l - 1], raw[l - 1] = hidden_desire(weights[l - 1], g[l], alpha_hid)
        if n_layers == 2:
            g[1] = e_out * delta[1]

        # signed contribution W_ji * g_i of each upper-layer neuron i to sigma_j of each
        # recorded hidden neuron j, taken with the weights the desire pass used
        extras = {}
        if record.neurons:
            empty = np.zeros(0, np.float32)
            extras["contrib"] = tuple(
                (weights[layer][idx].astype(np.float64) * g[layer + 1]).astype(np.float32)
                if 1 <= layer < n_layers - 1 and 0 <= idx < sizes[layer] else empty
                for layer, idx in record.neurons)
            # what each recorded neuron i handed down: W_ji g_i for every j of the layer below
            extras["contrib_down"] = tuple(
                (weights[layer - 1][:, idx].astype(np.float64) * g[layer][idx]).astype(np.float32)
                if 2 <= layer < n_layers and 0 <= idx < sizes[layer] else empty
                for layer, idx in record.neurons)
        if record.flow > 0:
            extras["flow"] = flow_links(weights, g, record.flow)

        # weight update and its norm (see apply_update: float64 per step, float32 summed)
        dw_norm = []
        dw_in = []
        want_dw = record.weight_updates and record.neurons
        for l in range(1, n_layers):
            coef = np.empty(sizes[l], ft)
            active = _update_coef(delta[l], masks[l], lr, coef)
            X = traces[l - 1]
            if want_dw:
                S = spikes[l][1:].astype(ft)
                for layer, idx in record.neurons:
                    if layer == l and 0 <= idx < sizes[l]:
                        dw_in.append((coef[idx] * (X.T @ S[:, idx])).astype(np.float32))
            dw_norm.append(_apply_nonzero_update(weights[l - 1], X, spikes[l], coef) if active else 0.0)
        if not all(math.isfinite(v) for v in dw_norm):
            bad = [l + 1 for l, v in enumerate(dw_norm) if not math.isfinite(v)]
            raise NumericalError(f"weight update of layer(s) {bad} is NaN/Inf at epoch {model.epoch}; "
                                 "the weights are no longer usable: lower the learning rate and reset")

        # mean of (c / N* - [i = y])^2 = e_out^2, with np.mean's sum and division, bit for bit
        sq_err = e_out * e_out
        loss = float(sq_err.sum() / sq_err.size)
        target = np.zeros(n_out, np.float32)
        target[y] = n_target
        return self._frame(model, y, counts, delta, raw, g, dw_norm, loss, lr, target, spikes,
                           record, v_trace, i_trace, extras, dw_in, hp=hp)

    def _frame(self, model, y, counts, delta, raw, g, dw_norm, loss, lr, target, spikes, record,
               v_trace, i_trace, extras, dw_in, hp: _Hyper | None = None) -> Frame:
        hp = self._hyper() if hp is None else hp
        extras = dict(extras)
        extras["g"] = tuple(np.zeros(0, np.float32) if v is None else v.astype(np.float32) for v in g)
        if dw_in:
            extras["dw_in"] = tuple(dw_in)
        return self.make_frame(
            model, record, label=y, prediction=unique_argmax(counts[-1]), loss=loss, lr=lr,
            duration=hp.n_steps, counts=counts, signal=delta[1:], signal_raw=raw[1:], dw_norm=dw_norm,
            target=target, spikes=raster_events(spikes) if record.spikes else None,
            v_trace=v_trace, i_trace=i_trace, extras=extras, v_th=hp.v_th)

    # ---------------------------------------------------------------- predict
    def output_counts(self, model: Model, X: np.ndarray) -> np.ndarray:
        """Output spike counts for a batch of images (inference: no dropout)."""
        X = np.atleast_2d(X)
        out = np.zeros((len(X), model.sizes[-1]), np.int32)
        for n in range(len(X)):
            spikes, _, _, _, _ = self._forward(model, X[n], False, RECORD_NONE)
            out[n] = spikes[-1].sum(axis=0)
        return out

    def predict(self, model: Model, X: np.ndarray) -> np.ndarray:
        """Class decisions for a batch; -1 where the maximum count is not unique."""
        self.check_model(model)
        counts = self.output_counts(model, X)
        return np.array([unique_argmax(c) for c in counts], np.int64)
