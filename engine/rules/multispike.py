r"""Timing-based backpropagation without single-spike restrictions (Yamamoto, Sakemi, Aihara 2022).

Current-based LIF neurons that may fire several times are simulated event by
event (:mod:`spikewb.engine.neurons.cuba`); the loss is a function of output spike times and its
exact gradient flows back through every spike, through each neuron's own earlier
spikes (the reset term), to the weights of every layer.  Specification:
``reference/stidi_multispike_normad.md`` section 2.  The paper's text, tables and
hyperparameters could not be read (section 0 of the notes); the neuron model,
the gradient and the loss follow the notes' reconstruction ([INF] there), and
every uncertain choice is a parameter (see "Reconstructed" below).

Notes
-----
Neuron (per layer, threshold :math:`\theta_l`, times in ms):

.. math::

    V_i(t) = \sum_j w_{ji} \sum_{p: t_j^p < t} \kappa(t - t_j^p)
             - \theta_l \sum_{q: t_i^q < t} e^{-(t - t_i^q)/\tau_m},
    \quad \kappa(s) = \frac{\tau_s}{\tau_m - \tau_s}(e^{-s/\tau_m} - e^{-s/\tau_s}).

Input: time-to-first-spike, pixel intensity :math:`x > 0` fires once at
:math:`t = T_{in}(1 - x)`; black pixels are silent.

Simulation window (``sim_window = "tau"``, default): the run lasts

.. math::

    t_{sim} = T_{in} + k \max(\tau_m, \tau_s)

(``window_k`` :math:`k = 2`: 30 ms at the defaults 10 + 2 x 10 ms), so the
response to the last input has :math:`k` of the slower time constants to play
out whatever the taus are.  The input window :math:`T_{in}` stays fixed: it is
the data's time scale, and scaling it with tau too would make the model exactly
scale invariant (every count unchanged), hiding the tau dependence the paper
studies.  ``sim_window = "fixed"``: :math:`t_{sim}` = ``t_max``.

Spike buffers: a neuron emits at most ``max_spikes_hidden`` /
``max_spikes_out`` spikes (the cap); later threshold crossings are simulated
(with reset) but not emitted and counted as overflow.  The buffers start at
:data:`BUFFER_START` spikes and grow to what the sample needs (a layer whose
neurons cross threshold more often is simulated again with a buffer just
large enough, up to the cap), so the default caps (:data:`MAX_SPIKE_CAP` = 4096
hidden, :data:`MAX_SPIKE_CAP_OUT` = 16384 output) cost nothing while neurons fire
a few times.

Losses on the output spike times (``loss``):

``"ttfs-softmax"`` (default)
    :math:`L = -\log \mathrm{softmax}(-t^{(1)}/\tau_L)_y` on each output neuron's
    first spike (a silent neuron counts as firing at :math:`t_{sim}`, a constant with
    no gradient), :math:`\partial L/\partial t_k^{(1)} = (\delta_{ky} - p_k)/\tau_L`.
    Decision: the earliest first output spike.
``"count"``
    :math:`L = \tfrac12 \sum_k (n_k - n_k^*)^2` with targets ``count_true`` /
    ``count_false``.  A count is piecewise constant in the spike times, so the
    gradient routed to each spike of neuron ``k`` is the surrogate
    :math:`(n_k - n_k^*)/\tau_L` (too many spikes: push them later, out of the
    window; too few: pull them earlier), as in the spike-count loss of BATS.
    Decision: the most spikes, ties broken by the earliest first spike.

Gradient (exact for the simulated model, implicit function theorem, notes 2.3):
with :math:`g_i^q` the direct :math:`\partial L/\partial t_i^q`,

.. math::

    \bar a_i^q = g_i^q + \frac{\theta}{\tau_m}\sum_{r>q}
        \frac{\bar a_i^r}{\dot V_i(t_i^r)} e^{-(t_i^r - t_i^q)/\tau_m},\quad
    \frac{\partial L}{\partial w_{ji}} = -\sum_q \frac{\bar a_i^q}{\dot V_i(t_i^q)}
        \sum_{p<q} \kappa(t_i^q - t_j^p),\quad
    g_j^p \mathrel{+}= \sum_{i,q} \frac{\bar a_i^q}{\dot V_i(t_i^q)} w_{ji}\kappa'(t_i^q - t_j^p).

Optimiser: Adam (:math:`\beta_1 = 0.9, \beta_2 = 0.999, \epsilon = 10^{-8}`) or
plain SGD on the mean gradient of ``batch_size`` consecutive samples; gradients
accumulate in ``model.state`` and the weights change every ``batch_size`` samples.

Reconstructed (unverified in the paper; the parameter exposing each choice):
reset by subtraction (``cuba``: identical to reset-to-zero in continuous time);
tied or free time constants (``tau_m``, ``tau_s`` are independent; the closed-form
solver is used when ``tau_m = 2 tau_s``); loss form (``loss``, ``tau_loss``);
spike caps (``max_spikes_hidden``, ``max_spikes_out``); thresholds
(``v_th_hidden``, ``v_th_out``); initialisation (``init_mean``, ``init_std``, ``init_mean_out``, ``init_std_out``);
input and simulation windows (``input_window``, ``sim_window``, ``window_k``,
``t_max``); optimiser and its settings (``optimizer``, ``lr``,
``batch_size``); slope guard (``vdot_min``); reviving silent output neurons (``silent_weight``:
an auxiliary loss on the mean potential of output neurons the loss needs but that stayed
silent, whose exact gradient is added; the notes list "how non-firing neurons are handled"
as unverified).  Defaults were chosen on the
embedded MNIST 5k subset (``docs/rules/multispike.md``), not read from the paper.

Frame extras (all float32 unless stated): ``overflow`` (per layer 0..L, int32
per neuron: threshold crossings beyond the spike cap, not emitted),
``overflow_total`` (int64 per layer), ``capped`` (int64 per layer: neurons
that reached the cap, i.e. with overflow > 0), ``first_t`` (output first-spike times, inf
when silent), ``p`` (softmax probabilities, TTFS loss), ``grad_norm`` (per weight
layer, this sample's gradient norm), ``trace_t`` (time grid of ``v_trace``, ms),
``tau`` ((tau_m, tau_s) of this sample, ms; only when something is recorded),
and per recorded neuron (tuples aligned with ``trace_ids``): ``spike_t_rec``
(its spike times), ``spike_grad`` (total :math:`\bar a^q`, 1/ms),
``spike_grad_direct`` (:math:`g^q`), ``spike_vdot`` (:math:`\dot V` at each
crossing, 1/ms), ``spike_dw_norm`` (norm of each spike's contribution to the
gradient of the neuron's incoming weights); with ``Record(weight_updates=True)``
also ``spike_dw`` ((n_spikes, n_pre) contributions) and ``dw_in`` (the neuron's
incoming SGD-equivalent update ``-lr * dL/dw``).

References
----------
S. Yamamoto, Y. Sakemi, K. Aihara, "Timing-based backpropagation in spiking
neural networks without single-spike restrictions", arXiv:2211.16113 (2022).
F. Bacho, D. Chu, "Exact error backpropagation through spikes for precise
training of spiking neural networks" (BATS), public code ``Florian-BACHO/bats``.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import math

import numpy as np
import param

from spikewb.engine.neurons import cuba
from spikewb.engine.errors import ConfigError, NumericalError
from spikewb.engine.frame import Frame, Record, RECORD_NONE
from spikewb.engine.config import njit
from spikewb.engine.network import Architecture, Model
from spikewb.engine.rules.base import ArraySpec, LearningRule, label_in_range, register

log = logging.getLogger(__name__)

#: Points of the potential trace of a recorded neuron over [0, t_sim].
TRACE_POINTS = 256
#: Spikes per neuron a layer's buffer holds at first; it grows (one more pass of
#: that layer) when a neuron crosses threshold more often, up to the rule's cap.
BUFFER_START = 16
#: Largest spike cap per hidden neuron the parameters accept (buffer memory: n_hidden x cap x 8 bytes
#: per array when a neuron gets there); also the default.
MAX_SPIKE_CAP = 4096
#: The same for output neurons: their layer is only n_classes wide, so the cap can be higher.
MAX_SPIKE_CAP_OUT = 16384
#: Adam constants.
ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8


@njit
def _norm(a):
    """Frobenius norm without BLAS (BLAS threads contend on shared machines)."""
    s = 0.0
    for v in a.ravel():
        s += v * v
    return np.sqrt(s)


@njit
def _adam(w, gbuf, m, v, n, lr, c1, c2, b1, b2, eps, sgd):
    """Mean gradient ``gbuf / n``, Adam (or SGD) step applied to ``w``; clears ``gbuf``; returns ||step||."""
    wf = w.ravel()
    gf = gbuf.ravel()
    mf = m.ravel()
    vf = v.ravel()
    s = 0.0
    for k in range(wf.shape[0]):
        g = gf[k] / n
        if sgd:
            step = lr * g
        else:
            mf[k] = b1 * mf[k] + (1.0 - b1) * g
            vf[k] = b2 * vf[k] + (1.0 - b2) * g * g
            step = (lr / c1) * mf[k] / (np.sqrt(vf[k] / c2) + eps)
        wf[k] -= step
        gf[k] = 0.0
        s += step * step
    return np.sqrt(s)


def ttfs_softmax(first_t: np.ndarray, label: int, tau_loss: float, t_max: float = np.inf):
    """Loss, dL/dt of each first spike and the probabilities of the TTFS softmax.

    Silent neurons (``inf``) count as firing at ``t_max``, a constant: they keep
    a probability but get no gradient, so the loss stays finite and its gradient
    with respect to the real spike times is exact.

    >>> L, g, p = ttfs_softmax(np.array([1.0, 2.0, np.inf]), 0, 1.0, t_max=3.0)
    >>> np.round(p, 4).tolist(), np.round(g, 4).tolist()
    ([0.6652, 0.2447, 0.09], [0.3348, -0.2447, 0.0])
    """
    fired = np.isfinite(first_t)
    t = np.where(fired, first_t, t_max)
    p = np.zeros(len(t))
    live = np.isfinite(t)
    if live.any():
        z = -t[live] / tau_loss
        z = np.exp(z - z.max())
        p[live] = z / z.sum()
    onehot = np.zeros(len(t))
    onehot[label] = 1.0
    g = np.where(fired, (onehot - p) / tau_loss, 0.0)
    loss = float(-np.log(max(p[label], 1e-300)))
    return loss, g, p


_CAPPED_WARNED = False


def _warn_capped_once(capped: np.ndarray, caps: list[int]) -> None:
    """Log (once per process) that neurons reached their spike cap."""
    global _CAPPED_WARNED
    if _CAPPED_WARNED:
        return
    _CAPPED_WARNED = True
    log.warning("multispike: %s neurons per layer reached their spike cap (caps %s); later threshold "
                "crossings are not emitted (Frame extras 'capped', 'overflow'); raise max_spikes_hidden / "
                "max_spikes_out if this is not intended", capped[1:].tolist(), caps)


@register
class MultiSpikeBP(LearningRule):
    """Exact multi-spike timing backpropagation for current-based LIF networks.

    See the module docstring for the model, the losses and the gradient.
    """

    key: ClassVar[str] = "multispike"
    event_driven: ClassVar[bool] = True
    title: ClassVar[str] = "Multi-spike timing BP (exact gradients)"
    signals: ClassVar[str] = "spike-time error dL/dt"
    time_unit: ClassVar[str] = "ms"

    @property
    def loss_name(self) -> str:
        return "TTFS softmax cross-entropy" if self.loss == "ttfs-softmax" else "spike-count squared error"
    structural: ClassVar[tuple[str, ...]] = ("dtype", "init_mean", "init_std", "init_mean_out", "init_std_out")
    xfail_checks: ClassVar[dict[str, str]] = {}
    default_hidden: ClassVar[tuple[int, ...]] = (400,)

    lr = param.Number(1e-3, bounds=(0.0, 1.0), softbounds=(0.0, 1e-2), step=1e-5, label="Learning rate",
                      doc="Step size (Adam or SGD). Not read from the paper (unverified); chosen on MNIST 5k "
                          "(BATS uses 2e-3 with Adam and larger weights).")
    lr_decay = param.Number(0.1, bounds=(0.0, 10.0), softbounds=(0.0, 0.5), step=0.005,
                            label="LR decay (1/epoch)",
                            doc="eta(e) = eta_0 exp(-decay e) (unverified; chosen on MNIST 5k).")
    optimizer = param.Selector(default="adam", objects=["adam", "sgd"], label="Optimizer",
                               doc="Adam (probable in the paper, unverified) or plain SGD.")
    batch_size = param.Integer(16, bounds=(1, 4096), label="Minibatch size",
                               doc="Samples whose mean gradient makes one update (unverified; BATS: 5-50).")
    loss = param.Selector(default="ttfs-softmax", objects=["ttfs-softmax", "count"], label="Loss",
                          doc="Softmax cross-entropy on first output spikes (notes 2.4, most likely) "
                              "or a spike-count loss (option).")
    tau_loss = param.Number(1.0, bounds=(1e-3, 1e3), inclusive_bounds=(True, True), softbounds=(0.1, 10.0),
                            step=0.1, label="Loss time scale tau_L (ms)",
                            doc="Softmax temperature of the TTFS loss; gradient scale of the count loss.")
    count_true = param.Integer(6, bounds=(0, 1000), label="Target count, label neuron",
                               doc="Spike-count loss target of the label neuron (BATS uses 15 of 20).")
    count_false = param.Integer(1, bounds=(0, 1000), label="Target count, other neurons",
                                doc="Spike-count loss target of the other output neurons (BATS: 3).")
    tau_s = param.Number(5.0, bounds=(0.05, 1000.0), softbounds=(0.5, 50.0), step=0.1,
                         label="Synaptic time constant tau_s (ms)",
                         doc="Decay of the postsynaptic current; the paper's key variable (values unverified).")
    tau_m = param.Number(10.0, bounds=(0.05, 1000.0), softbounds=(0.5, 100.0), step=0.1,
                         label="Membrane time constant tau_m (ms)",
                         doc="Membrane leak. tau_m = 2 tau_s (default, as in BATS) uses the closed-form "
                             "spike-time solver; other ratios use bracketed Newton.")
    v_th_hidden = param.Number(1.0, bounds=(0.0, 100.0), inclusive_bounds=(False, True), softbounds=(0.1, 5.0),
                               step=0.05, label="Hidden threshold theta (dimensionless)",
                               doc="Threshold of hidden neurons, also subtracted on reset (unverified).")
    v_th_out = param.Number(1.0, bounds=(0.0, 100.0), inclusive_bounds=(False, True), softbounds=(0.1, 5.0),
                            step=0.05, label="Output threshold theta (dimensionless)",
                            doc="Threshold of output neurons, also subtracted on reset (unverified).")
    input_window = param.Number(10.0, bounds=(0.01, 1000.0), softbounds=(1.0, 100.0), step=0.5,
                                label="Input window T_in (ms)",
                                doc="Pixel x fires once at T_in (1 - x); black pixels are silent. Fixed "
                                    "when tau changes: it is the data's time scale.")
    sim_window = param.Selector(default="tau", objects=["tau", "fixed"], label="Simulation window rule",
                                doc="tau: simulate T_in + k max(tau_m, tau_s) ms (k = window_k; 30 ms at the "
                                    "default taus), so slow neurons get time to respond; fixed: t_max ms.")
    window_k = param.Number(2.0, bounds=(0.0, 100.0), softbounds=(0.5, 10.0), step=0.5,
                            label="Window after input (x max tau)",
                            doc="Simulated time after the input window, in units of the slower time constant "
                                "(sim_window = tau; ours, chosen to give the former 30 ms at 10 / 5 ms).")
    t_max = param.Number(30.0, bounds=(0.01, 10000.0), softbounds=(1.0, 200.0), step=1.0,
                         label="Simulation time, fixed rule (ms)",
                         doc="Simulated time when sim_window = fixed; spikes after it are not simulated.")
    max_spikes_hidden = param.Integer(MAX_SPIKE_CAP, bounds=(1, MAX_SPIKE_CAP),
                                      label="Spike cap, hidden (spikes)",
                                      doc="Most spikes a hidden neuron emits; later crossings are simulated but "
                                          "not emitted and counted as overflow. Buffers grow as needed, so a "
                                          "high cap costs nothing (BATS: 5, which clips hidden neurons at "
                                          "tau_s >= 2.5 ms; 1 = single-spike network).")
    max_spikes_out = param.Integer(MAX_SPIKE_CAP_OUT, bounds=(1, MAX_SPIKE_CAP_OUT),
                                   label="Spike cap, output (spikes)",
                                   doc="Most spikes an output neuron emits (BATS: 20 for the count loss).")
    init_mean = param.Number(2.0, bounds=(-100.0, 100.0), softbounds=(-5.0, 10.0), step=0.1,
                             label="Initial hidden weight mean (theta / sqrt(fan_in))",
                             doc="Hidden layers: w ~ N(init_mean, init_std) * theta_l / sqrt(fan_in) (unverified).")
    init_std = param.Number(2.0, bounds=(0.0, 100.0), softbounds=(0.0, 10.0), step=0.1,
                            label="Initial hidden weight std (theta / sqrt(fan_in))",
                            doc="Spread of the initial hidden weights, same units as init_mean.")
    init_mean_out = param.Number(0.5, bounds=(-100.0, 100.0), softbounds=(-5.0, 10.0), step=0.1,
                                 label="Initial output weight mean (theta / sqrt(fan_in))",
                                 doc="Output layer: w ~ N(init_mean_out, init_std_out) * theta / sqrt(fan_in).")
    init_std_out = param.Number(3.0, bounds=(0.0, 100.0), softbounds=(0.0, 10.0), step=0.1,
                                label="Initial output weight std (theta / sqrt(fan_in))",
                                doc="Spread of the initial output weights.")
    silent_weight = param.Number(10.0, bounds=(0.0, 1000.0), softbounds=(0.0, 10.0), step=0.1,
                                 label="Silent-neuron drive lambda",
                                 doc="Weight of the auxiliary loss -lambda <V>/theta on output neurons that the "
                                     "loss needs but that stayed silent (reconstruction; 0 disables).")
    vdot_min = param.Number(1e-4, bounds=(0.0, 10.0), softbounds=(0.0, 0.1), step=1e-5,
                            label="Slope guard dV/dt min (1/ms)",
                            doc="1/dV/dt is clipped at 1/vdot_min so grazing crossings cannot explode.")

    # ---------------------------------------------------------------- helpers
    def _thresholds(self, n_w: int) -> list[float]:
        return [float(self.v_th_hidden)] * (n_w - 1) + [float(self.v_th_out)]

    def _buffers(self, n_w: int) -> list[int]:
        return [int(self.max_spikes_hidden)] * (n_w - 1) + [int(self.max_spikes_out)]

    @property
    def t_sim(self) -> float:
        """Simulated time per sample (ms): ``T_in + window_k max(tau_m, tau_s)``, or ``t_max`` (fixed rule)."""
        if self.sim_window == "fixed":
            return float(self.t_max)
        return float(self.input_window) + float(self.window_k) * max(float(self.tau_m), float(self.tau_s))

    def _check(self) -> None:
        t_sim = self.t_sim
        try:
            cuba.check_taus(float(self.tau_m), float(self.tau_s), t_sim)
        except ConfigError as exc:
            if self.sim_window == "tau" and "t_max" in str(exc):
                raise ConfigError(f"{exc} (the simulation window T_in + window_k max(tau) = {t_sim:g} ms; "
                                  "lower window_k or use sim_window = fixed)") from None
            raise
        if self.input_window > t_sim:
            raise ConfigError(f"input_window = {self.input_window} ms exceeds t_max = {self.t_max} ms; "
                              "lengthen the simulation or shorten the input window")

    def check_params(self) -> None:
        """Time constants and windows the kernels can run (tau_m != tau_s, t_max / tau bounded)."""
        self._check()

    def encode(self, x: np.ndarray) -> np.ndarray:
        """TTFS input times (ms), ``inf`` for black pixels; ``x`` is not modified."""
        x = np.asarray(x, np.float64).ravel()
        if x.size and (not np.all(np.isfinite(x)) or x.min() < 0.0 or x.max() > 1.0):
            raise ConfigError("input intensities must be finite and lie in [0, 1]; scale images by 1/255")
        return np.where(x > 0.0, float(self.input_window) * (1.0 - x), np.inf)

    def _forward(self, model: Model, x: np.ndarray):
        """Input events and every layer's spikes (growing buffers up to the caps from the parameters,
        see :func:`spikewb.engine.neurons.cuba.layer_forward`)."""
        n_w = len(model.weights)
        return cuba.network_forward(self.encode(x), model.weights, tau_m=float(self.tau_m),
                                    tau_s=float(self.tau_s), v_th=self._thresholds(n_w), t_max=self.t_sim,
                                    max_spikes=self._buffers(n_w), start=BUFFER_START)

    def _decide(self, out: cuba.LayerSpikes) -> int:
        first = np.where(out.n > 0, out.t[:, 0], np.inf)
        if not np.isfinite(first).any():
            return -1
        if self.loss == "count":
            m = out.n.max()
            cand = np.flatnonzero(out.n == m)
            first = np.where(out.n == m, first, np.inf)
        else:
            cand = np.arange(len(first))
        tmin = first[cand].min()
        hits = np.flatnonzero(first == tmin)
        return int(hits[0]) if len(hits) == 1 else -1

    # ---------------------------------------------------------------- build
    def build(self, arch: Architecture, rng: np.random.Generator) -> Model:
        """Normal weights ``N(mean, std) * theta_l / sqrt(fan_in)`` (hidden / output settings), zero moments."""
        arch.validate()
        self._check()
        sizes = arch.sizes
        ft = self.float_type
        th = self._thresholds(len(sizes) - 1)
        weights = []
        for l, (n_pre, n_post) in enumerate(zip(sizes[:-1], sizes[1:])):
            scale = th[l] / np.sqrt(n_pre)
            out = l == len(sizes) - 2
            mean, std = (self.init_mean_out, self.init_std_out) if out else (self.init_mean, self.init_std)
            w = rng.normal(mean * scale, std * scale, (n_pre, n_post))
            weights.append(np.ascontiguousarray(w.astype(ft)))
        model = Model(self.key, sizes, weights, rng)
        self._init_state(model)
        return model

    @staticmethod
    def _init_state(model: Model) -> None:
        for l, w in enumerate(model.weights):
            model.state[f"grad{l}"] = np.zeros(w.shape)
            model.state[f"adam_m{l}"] = np.zeros(w.shape)
            model.state[f"adam_v{l}"] = np.zeros(w.shape)
        model.state["n_acc"] = np.zeros(1, np.int64)
        model.state["adam_t"] = np.zeros(1, np.int64)

    def extra_state_schema(self, model: Model) -> dict[str, ArraySpec]:
        """Tighter ranges: second moments are non-negative, counters are counts."""
        out = {f"adam_v{l}": ArraySpec(w.shape, np.dtype(np.float64), lo=0.0) for l, w in enumerate(model.weights)}
        out["n_acc"] = ArraySpec((1,), np.dtype(np.int64), lo=0, hi=2**31)
        out["adam_t"] = ArraySpec((1,), np.dtype(np.int64), lo=0, hi=2**62)
        return out

    # ---------------------------------------------------------------- loss
    def output_loss(self, out: cuba.LayerSpikes, y: int):
        """(loss, g (n_out, max_spikes) direct dL/dt, first-spike times, probabilities)."""
        first = np.where(out.n > 0, out.t[:, 0], np.inf)
        g = np.zeros_like(out.t)
        if self.loss == "ttfs-softmax":
            loss, g1, p = ttfs_softmax(first, y, float(self.tau_loss), self.t_sim)
            g[:, 0] = g1
            return loss, g, first, p
        target = np.full(out.n.shape, float(self.count_false))
        target[y] = float(self.count_true)
        err = out.n - target
        loss = 0.5 * float(np.sum(err ** 2))
        slots = np.arange(out.t.shape[1])[None, :] < out.n[:, None]
        g[:] = np.where(slots, err[:, None] / float(self.tau_loss), 0.0)
        return loss, g, first, np.zeros(0)

    # ---------------------------------------------------------------- gradient
    def _silent_aux(self, model: Model, ev_in, layers, y: int):
        """Auxiliary loss on needed-but-silent output neurons, its dL/dw and its dL/dt of the layer below.

        ``L_aux = -lambda / (theta t_sim) * integral_0^t_sim V_k(t) dt`` summed over
        silent output neurons ``k`` that should fire (TTFS loss: the label neuron;
        count loss: neurons with a positive target).  No resets happen in a
        silent neuron, so the integral is ``sum_j w_jk sum_p Kint(t_sim - t_j^p)``.
        """
        out = layers[-1]
        lam = float(self.silent_weight)
        if self.loss == "count":
            need = np.flatnonzero((out.n == 0) & (np.full(out.n.shape, self.count_false) > 0))
            if self.count_true > 0 and out.n[y] == 0 and y not in need:
                need = np.append(need, y)
        else:
            need = np.array([y]) if out.n[y] == 0 else np.zeros(0, np.int64)
        if lam == 0.0 or len(need) == 0:
            return 0.0, None, None
        ev_t, ev_j = (ev_in[0], ev_in[1]) if len(layers) == 1 else (layers[-2].ev_t, layers[-2].ev_j)
        tm, ts, t_max = float(self.tau_m), float(self.tau_s), self.t_sim
        theta = float(self.v_th_out)
        c = lam / (theta * t_max)
        kint = cuba.kappa_integral(t_max - ev_t, tm, ts)
        w = model.weights[-1]
        loss = -c * float(np.sum(w[ev_j][:, need] * kint[:, None]))
        dw = np.zeros(w.shape)
        per_pre = np.zeros(w.shape[0])
        np.add.at(per_pre, ev_j, kint)
        dw[:, need] = -c * per_pre[:, None]
        g_prev = None
        if len(layers) > 1:
            # d Kint(t_max - t_p) / d t_p = -kappa(t_max - t_p)
            kap = cuba.kappa(t_max - ev_t, tm, ts)
            g_ev = c * kap * w[ev_j][:, need].sum(axis=1)
            prev = layers[-2]
            g_prev = np.zeros_like(prev.t)
            np.add.at(g_prev, (prev.ev_j, prev.ev_slot), g_ev)
        return loss, dw, g_prev

    def gradient(self, model: Model, x: np.ndarray, y: int):
        """Forward + exact backward for one sample without touching the weights.

        Returns ``(loss, dw, info)``: ``loss`` the rule's loss plus the silent-neuron
        term, ``dw`` a list of float64 arrays dL/dw per weight layer, ``info`` a dict
        with the forward events and backward terms.
        """
        self.check_model(model)
        self._check()
        ev_in, layers = self._forward(model, x)
        loss, g_out, first, p = self.output_loss(layers[-1], y)
        aux_loss, aux_dw, aux_g = self._silent_aux(model, ev_in, layers, y)
        n_w = len(model.weights)
        g_extra = None if aux_g is None else {n_w - 2: aux_g}
        dw, g_direct, abar = cuba.network_backward(
            ev_in, layers, model.weights, g_out, tau_m=float(self.tau_m), tau_s=float(self.tau_s),
            v_th=self._thresholds(n_w), vdot_min=float(self.vdot_min), g_extra=g_extra)
        if aux_dw is not None:
            dw[-1] += aux_dw
        return loss + aux_loss, dw, dict(ev_in=ev_in, layers=layers, g_direct=g_direct, abar=abar,
                                         first=first, p=p, aux_loss=aux_loss)

    def _apply(self, model: Model, lr: float) -> list[float]:
        """Apply the accumulated mean gradient (Adam or SGD); returns the update norms."""
        n = float(model.state["n_acc"][0])
        sgd = self.optimizer == "sgd"
        c1 = c2 = 1.0
        if not sgd:
            model.state["adam_t"][0] += 1
            t = int(model.state["adam_t"][0])
            c1, c2 = 1.0 - ADAM_B1 ** t, 1.0 - ADAM_B2 ** t
        for l, w in enumerate(model.weights):  # the kernel walks all four arrays with w's index
            for key in (f"grad{l}", f"adam_m{l}", f"adam_v{l}"):
                a = model.state[key]
                if a.shape != w.shape or a.dtype != np.float64 or not a.flags.c_contiguous:
                    raise ConfigError(f"optimiser state {key} has shape {a.shape} ({a.dtype}); "
                                      f"expected {w.shape} float64 like weight layer {l + 1}")
        norms = [float(_adam(w, model.state[f"grad{l}"], model.state[f"adam_m{l}"], model.state[f"adam_v{l}"],
                             n, lr, c1, c2, ADAM_B1, ADAM_B2, ADAM_EPS, sgd))
                 for l, w in enumerate(model.weights)]
        if not all(math.isfinite(x) for x in norms):
            raise NumericalError(f"the weight update became NaN/Inf at epoch {model.epoch}; lower the "
                                 "learning rate and reset the network")
        model.state["n_acc"][0] = 0
        return norms

    # ---------------------------------------------------------------- step
    def train_step(self, model: Model, x: np.ndarray, y: int, record: Record | None = None) -> Frame:
        record = RECORD_NONE if record is None else record
        if "n_acc" not in model.state:
            self._init_state(model)
        y = label_in_range(y, model.sizes[-1])
        lr = self.learning_rate(model.epoch)
        loss, dw, info = self.gradient(model, x, y)
        grad_norm = np.array([_norm(d) for d in dw])
        if not np.all(np.isfinite(grad_norm)):
            raise NumericalError(f"the spike-time gradient is NaN/Inf at epoch {model.epoch}; raise vdot_min "
                                 "or lower the learning rate and reset")
        layers = info["layers"]
        prediction = self._decide(layers[-1])
        for l, d in enumerate(dw):
            model.state[f"grad{l}"] += d
        model.state["n_acc"][0] += 1
        if int(model.state["n_acc"][0]) >= int(self.batch_size):
            dw_norm = self._apply(model, lr)
        else:
            dw_norm = [0.0] * len(dw)
        return self._frame(model, x, y, loss, lr, prediction, dw, grad_norm, dw_norm, info, record)

    def _frame(self, model, x, y, loss, lr, prediction, dw, grad_norm, dw_norm, info, record) -> Frame:
        sizes = model.sizes
        n_layers = len(sizes)
        layers = info["layers"]
        ev_in = info["ev_in"]
        empty = np.zeros(0, np.float32)
        counts = [np.zeros(sizes[0], np.int32)]
        counts[0][ev_in[1]] = 1
        counts += [ls.n.astype(np.int32) for ls in layers]
        signal = [empty] + [ab.sum(axis=1).astype(np.float32) for ab in info["abar"]]
        signal_raw = [empty] + [g.sum(axis=1).astype(np.float32) for g in info["g_direct"]]
        spike_t, spike_i = (), ()
        if record.spikes:
            spike_t = (ev_in[0].astype(np.float32), *(ls.ev_t.astype(np.float32) for ls in layers))
            spike_i = (ev_in[1].astype(np.int32), *(ls.ev_j.astype(np.int32) for ls in layers))
        overflow = (np.zeros(sizes[0], np.int32), *(ls.overflow.astype(np.int32) for ls in layers))
        capped = np.array([int(np.count_nonzero(o)) for o in overflow], np.int64)
        if capped.any():
            _warn_capped_once(capped, self._buffers(len(model.weights)))
        extras = dict(overflow=overflow,
                      overflow_total=np.array([int(o.sum()) for o in overflow], np.int64), capped=capped,
                      first_t=info["first"].astype(np.float32), p=np.asarray(info["p"], np.float32),
                      grad_norm=grad_norm.astype(np.float32))
        if record.any:  # the time constants this sample ran with (views label plots with them)
            extras["tau"] = np.array([self.tau_m, self.tau_s], np.float32)
        t_sim = self.t_sim
        trace_t = np.linspace(0.0, t_sim, TRACE_POINTS)
        n_rec = len(record.neurons)
        v_trace = np.zeros((n_rec, TRACE_POINTS), np.float32)
        i_trace = np.zeros((n_rec, TRACE_POINTS), np.float32)
        if n_rec:
            per = {k: [] for k in ("spike_t_rec", "spike_grad", "spike_grad_direct", "spike_vdot",
                                   "spike_dw_norm", "spike_dw", "dw_in")}
            th = self._thresholds(len(model.weights))
            for r, (layer, idx) in enumerate(record.neurons):
                if not (1 <= layer < n_layers and 0 <= idx < sizes[layer]):
                    for v in per.values():
                        v.append(empty)
                    continue
                ls = layers[layer - 1]
                ev_t, ev_j = (ev_in[0], ev_in[1]) if layer == 1 else (layers[layer - 2].ev_t, layers[layer - 2].ev_j)
                n = int(ls.n[idx])
                ts = ls.t[idx, :n]
                w_col = model.weights[layer - 1][:, idx]
                v, i_syn = cuba.potential(trace_t, ev_t, ev_j, w_col, ts, tau_m=float(self.tau_m),
                                          tau_s=float(self.tau_s), v_th=th[layer - 1])
                v_trace[r] = v
                i_trace[r] = i_syn
                ab = info["abar"][layer - 1][idx, :n]
                beta = ab / np.maximum(ls.vdot[idx, :n], float(self.vdot_min))
                contrib = np.zeros((n, sizes[layer - 1]))
                for q in range(n):
                    k = cuba.kappa(ts[q] - ev_t, float(self.tau_m), float(self.tau_s))
                    np.add.at(contrib[q], ev_j, -beta[q] * k)
                per["spike_t_rec"].append(ts.astype(np.float32))
                per["spike_grad"].append(ab.astype(np.float32))
                per["spike_grad_direct"].append(info["g_direct"][layer - 1][idx, :n].astype(np.float32))
                per["spike_vdot"].append(ls.vdot[idx, :n].astype(np.float32))
                per["spike_dw_norm"].append(np.linalg.norm(contrib, axis=1).astype(np.float32))
                per["spike_dw"].append(contrib.astype(np.float32))
                per["dw_in"].append((-lr * dw[layer - 1][:, idx]).astype(np.float32))
            if not record.weight_updates:
                per.pop("spike_dw")
                per.pop("dw_in")
            extras.update({k: tuple(v) for k, v in per.items()})
            extras["trace_t"] = trace_t.astype(np.float32)
        target = np.zeros(0, np.float32)
        if self.loss == "count":
            target = np.full(sizes[-1], float(self.count_false), np.float32)
            target[y] = float(self.count_true)
        return self.make_frame(
            model, record, label=y, prediction=prediction, loss=loss, lr=lr, duration=t_sim, counts=counts,
            signal=signal, signal_raw=signal_raw, dw_norm=dw_norm, target=target,
            spikes=(spike_t, spike_i) if record.spikes else None, v_trace=v_trace, i_trace=i_trace,
            extras=extras, v_th=self.v_th_hidden if n_layers > 2 else self.v_th_out)

    # ---------------------------------------------------------------- predict
    def output_spikes(self, model: Model, X: np.ndarray):
        """Output (first-spike times, counts) for a batch: (n, n_out) float64, (n, n_out) int64."""
        X = np.atleast_2d(X)
        first = np.full((len(X), model.sizes[-1]), np.inf)
        counts = np.zeros((len(X), model.sizes[-1]), np.int64)
        for k in range(len(X)):
            _, layers = self._forward(model, X[k])
            out = layers[-1]
            first[k] = np.where(out.n > 0, out.t[:, 0], np.inf)
            counts[k] = out.n
        return first, counts

    def predict(self, model: Model, X: np.ndarray) -> np.ndarray:
        """Class decisions for a batch (-1: no output spike, or a tie)."""
        self.check_model(model)
        self._check()
        X = np.atleast_2d(X)
        out = np.empty(len(X), np.int64)
        for k in range(len(X)):
            _, layers = self._forward(model, X[k])
            out[k] = self._decide(layers[-1])
        return out
