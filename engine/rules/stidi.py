r"""STiDi-BP: spike-time-displacement error backpropagation (Mirsadeghi, Shalchian,
Kheradpisheh, Masquelier; Neurocomputing 2021, arXiv 2011.04536; convolutional and
binary-weight networks: Neural Computing and Applications 2023, arXiv 2108.13621).

Single-spike temporal coding.  Every neuron fires at most once and carries its
information in the time of that spike; every layer learns from its own
per-neuron temporal error, computed from a *desired firing time*.  The
specification is ``reference/stidi_multispike_normad.md`` section 1.  The papers'
full texts could not be read, so **several details are reconstructions**; each
is a parameter, and the table below says which choice is confirmed and which is
inferred.

Forward (per sample)
--------------------
Input (TTFS): pixel intensity :math:`x \in [0, 1]` fires once at
:math:`t_i = t_{max}(1 - x)`; black pixels never fire.  Neurons
(:mod:`spikewb.engine.neurons.pwl`): non-leaky integrate-and-fire with a piecewise-linear PSP
:math:`K`, :math:`V_j(t) = \sum_i w_{ji} K(t - t_i)`, first crossing of
:math:`\vartheta` in :math:`[0, t_{end}]` computed exactly, segment by segment.
A neuron that does not cross is *silent* and emits nothing; for its error it
gets the effective time :math:`\hat t_j = t_{end}`.  Convolutional variant:
valid stride-1 convolutions with shared kernels, then earliest-spike pooling
(:math:`t = \min` over the window), a dense output layer.  Binary variant: the
forward pass uses :math:`\alpha_l\,\mathrm{sign}(W_l)`; the update changes the
real :math:`W_l`.

Decision: the output neuron that fires first (a tie gives -1, no decision); if no
output fires, the largest :math:`V(t_{end})` (S4NN / BS4NN convention).

Learning (all layers from the same forward pass, updates applied together)
---------------------------------------------------------------------------
Output desired times :math:`t^d` (``target``): "relative" (S4NN): with
:math:`\tau` the earliest output time, the label's target is :math:`\tau`,
every other output firing before :math:`\tau + \gamma` gets
:math:`\min(\tau + \gamma, t_{end})`, the rest keep their own time; if no
output fires, the label's target is :math:`t_{end} - \gamma`.  "fixed": the
label at ``t_target``, the others at :math:`t_{end}`.

Per-neuron temporal error and its normalisation (``normalize``):

.. math::

    e_j = (t^d_j - \hat t_j) / t_{max}, \qquad
    \hat e_j = e_j / \lVert e_l \rVert_2

Linear approximation of the crossing-time sensitivity, in units of
:math:`t_{max}/\vartheta` (``sensitivity``):

.. math::

    g_j = -\frac{\partial t_j}{\partial V_j}\,\frac{\vartheta}{t_{max}}
        = \frac{1}{\tilde S_j},\qquad
    \tilde S_j = \operatorname{clip}\!\Big(\frac{t_{max}}{\vartheta}\,\sigma_j,\;
                 s_{min},\; s_{max}\Big)

with :math:`\sigma_j = \dot V_j(t_j^-)` (local slope, "slope") or
:math:`\sigma_j = \vartheta/\hat t_j` (secant through the origin, "secant"), or
:math:`g_j = 1` ("constant": S4NN's :math:`\partial t/\partial V = -1`).  The
clip is the guard for flat slopes and silent neurons (whose slope is taken at
:math:`t_{end}`).  Weight update of layer :math:`l`:

.. math::

    \Delta w_{ji} = -\eta\,\vartheta\,\hat e_j\, g_j\, K(\hat t_j - t_i)

The error is normalised over the whole layer, conv layers included (every
position of every map).  A shared convolution kernel gets the **sum** of the
updates of its positions (the gradient of the layer's normalised loss), times
``lr_conv`` (``conv_update`` can divide it by :math:`\sqrt P` or by the number
of positions :math:`P` instead; averaging starves the kernels).

Hidden desired times, from the layer above only (no chained derivative): the
neurons :math:`j` above ask for the potential change
:math:`\Delta V_j = -\vartheta \hat e_j \tilde S_j`; presynaptic neuron
:math:`i` is displaced by the vote

.. math::

    \Delta t_i = \mu\, t_{max} \sum_j \hat e_j \tilde S_j\,
                 \frac{\tilde w_{ji}}{\vartheta}\, G(\hat t_j - t_i),\qquad
    t^d_i = \operatorname{clip}(\hat t_i + \Delta t_i, 0, t_{end})

with :math:`G = \tau_r K'` (``hidden_vote`` "derivative": the linearised
:math:`\partial V_j(t_j) / \partial t_i = -w_{ji} K'`) or :math:`G = K`
("psp": the causal PSP-weighted vote; with a step kernel it is S4NN's
:math:`\sum_j \delta_j w_{ji} [t_i < t_j]`).  Through a pooling layer the
displacement goes to the winning (earliest) input only (a silent window passes
it to all its inputs).  The hidden layer then
forms its own :math:`e`, :math:`\hat e`, :math:`g` and update as above.

What is confirmed and what is inferred
--------------------------------------
Confirmed by the abstracts: TTFS coding with one spike per neuron, the PWL PSP, a
linear approximation of dt/dV, a desired time per neuron with per-layer
updates and no backward chain, conv nets, and the binary net's two weight
sets.  Taken from the same group's S4NN/BS4NN code: ``t = t_max (1 - x)``,
relative targets (``target``), per-layer L2 normalisation (``normalize``),
the first-spike decision, the dead-neuron reset (``reset_dead``).
**Inferred** (each a parameter): the kernel shape (``kernel``, ``tau_r``,
``tau_d``), the approximation of dt/dV (``sensitivity``) and its guards
(``slope_min``, ``slope_max``), the hidden vote (``hidden_vote``, ``mu``),
the silent-neuron guard (``silent_vote``), the conv layout (``conv_maps``,
``conv_kernel``, ``pool_size``, ``conv_hidden``), earliest-spike pooling with
the error to the winner, the shared-kernel update (``conv_update``,
``lr_conv``), the binary scale (``binary_scale``), the initialisation
(``init_*``).  Tuned here on 5k MNIST and Fashion-MNIST: ``lr``, ``lr_decay``,
``lr_conv``, ``gamma``, the init gains and ``init_negative``.  Details and the
measurements: ``docs/rules/stidi.md``.

Frame contents
--------------
``spike_t`` / ``spike_i``: one event per neuron that fired (ms).  ``signal``:
the signed displacement :math:`t^d - \hat t` (ms, 0 where a neuron has no error;
"spike-time displacement").  ``signal_raw``: the normalised error
:math:`\hat e` the update used (pooling layers: the routed, unnormalised
:math:`e`).  ``target``: desired output times (ms).  ``counts``: 1 where a
neuron fired.  ``extras``: ``t_fire`` (per layer, ``inf`` for silent),
``t_desired`` (per layer, ms), ``slope`` (per neuron layer,
:math:`\dot V` at the crossing, 1/ms in threshold units), ``v_end`` (output
potentials at :math:`t_{end}`); for recorded neurons ``trace_t`` (the sample
grid of ``v_trace``/``i_trace``, ms), ``pwl_t``/``pwl_v`` (exact breakpoints of
each recorded neuron's potential), ``t_cross``/``t_target`` (its crossing and
desired time), ``contrib`` (for a recorded neuron of layer :math:`l`: the
displacement in ms each neuron of layer :math:`l + 1` requested of it) and
``contrib_down`` (what a recorded neuron of layer :math:`l` requested of each
neuron of layer :math:`l - 1`); with ``Record.weight_updates`` also ``dw_in``
(its incoming update); with ``Record.flow = k`` the ``k`` largest such links
per layer pair as rows ``(l, i, j, ms)`` in ``flow``.  ``v_trace`` is exact
(no sampling trap: the neuron has no reset, the potential is shown up to and
past the crossing); ``i_trace`` is :math:`dV/dt`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np
import param

from spikewb.engine.neurons import pwl
from spikewb.engine.data.encoding import time_to_first_spike
from spikewb.engine.errors import ConfigError, NumericalError
from spikewb.engine.frame import Frame, Record, RECORD_NONE
from spikewb.engine.network import Architecture, Model
from spikewb.engine.rules.base import ArraySpec, LearningRule, label_in_range, register

#: Points of the uniform grid on which recorded potentials are sampled.
TRACE_POINTS = 201


@dataclass(frozen=True)
class Layer:
    """One layer of a STiDi network (a neuron layer or a pooling layer).

    ``pre``/``inv_*`` describe a neuron layer's connectivity (:mod:`spikewb.engine.neurons.pwl`),
    ``windows`` a pooling layer's; ``w_index`` is the position of the layer's
    weights in ``Model.weights`` (-1 for pooling); ``maps`` the number of
    neurons per position; ``shape`` the (height, width, channels) of a feature
    map, or ``(n,)`` for a dense layer.
    """

    name: str
    kind: str  # "dense" | "conv" | "pool"
    n_in: int
    n_out: int
    maps: int
    shape: tuple[int, ...]
    w_index: int = -1
    pre: np.ndarray | None = None
    inv_ptr: np.ndarray | None = None
    inv_pos: np.ndarray | None = None
    inv_col: np.ndarray | None = None
    windows: np.ndarray | None = None

    @property
    def has_weights(self) -> bool:
        return self.w_index >= 0

    @property
    def fan_in(self) -> int:
        return int(self.pre.shape[1]) if self.pre is not None else 0


def _neuron_layer(name, kind, n_in, pre, maps, shape, w_index) -> Layer:
    ptr, pos, col = pwl.invert_patches(pre, n_in)
    return Layer(name, kind, n_in, pre.shape[0] * maps, maps, shape, w_index, pre, ptr, pos, col)


@lru_cache(maxsize=32)
def topology(arch_kind: str, n_inputs: int, hidden: tuple[int, ...], n_outputs: int,
             conv_maps: tuple[int, ...], conv_kernel: int, pool_size: int, channels: int) -> tuple[Layer, ...]:
    """The layers (input excluded) of a dense or convolutional STiDi network.

    Dense: ``hidden`` dense layers, then the output.  Conv: for each entry of
    ``conv_maps`` a ``conv_kernel`` convolution followed by ``pool_size``
    earliest-spike pooling (no pooling if ``pool_size`` is 1), then the
    ``hidden`` dense layers, then the output.  Images are square,
    ``n_inputs = side * side * channels``.
    """
    layers: list[Layer] = []
    n_w = 0
    n_prev = n_inputs
    if arch_kind == "conv":
        if n_inputs % channels:
            raise ConfigError(f"{n_inputs} inputs cannot be {channels}-channel images")
        side = int(round(math.sqrt(n_inputs // channels)))
        if side * side * channels != n_inputs:
            raise ConfigError(f"the convolutional network needs square images: {n_inputs} inputs are not "
                              f"side x side x {channels}; use arch_kind='dense' or set image_channels")
        h = w = side
        c = channels
        for k, maps in enumerate(conv_maps, start=1):
            pre, (h, w) = pwl.conv_patches(h, w, c, conv_kernel)
            layers.append(_neuron_layer(f"conv {k}", "conv", n_prev, pre, maps, (h, w, maps), n_w))
            n_w += 1
            c = maps
            n_prev = h * w * c
            if pool_size > 1:
                win, (h, w) = pwl.pool_windows(h, w, c, pool_size)
                layers.append(Layer(f"pool {k}", "pool", n_prev, h * w * c, c, (h, w, c), windows=win))
                n_prev = h * w * c
    elif arch_kind != "dense":
        raise ConfigError(f"arch_kind must be 'dense' or 'conv', got {arch_kind!r}")
    for k, size in enumerate(hidden, start=1):
        layers.append(_neuron_layer(f"hidden {k}", "dense", n_prev, pwl.dense_patches(n_prev), size, (size,), n_w))
        n_w += 1
        n_prev = size
    layers.append(_neuron_layer("output", "dense", n_prev, pwl.dense_patches(n_prev), n_outputs, (n_outputs,), n_w))
    return tuple(layers)


@dataclass
class Pass:
    """Everything one forward pass produced (per layer 0..L; layer 0 = input).

    ``t``: spike times (``inf`` silent); ``slope``, ``v_end``: per neuron
    layer (None for input and pooling layers); ``winner``: per pooling layer;
    ``scale``: binary weight magnitude per weight layer (1 if not binary).
    """

    t: list[np.ndarray]
    slope: list[np.ndarray | None]
    v_end: list[np.ndarray | None]
    winner: list[np.ndarray | None]
    scale: list[float]


def first_spike_decision(t_out: np.ndarray, v_end: np.ndarray) -> int:
    """Earliest output spike wins (tie: -1); if none fired, the largest final potential (tie: -1).

    >>> first_spike_decision(np.array([5.0, 3.0, np.inf]), np.zeros(3))
    1
    >>> first_spike_decision(np.full(3, np.inf), np.array([0.2, 0.9, 0.1]))
    1
    >>> first_spike_decision(np.array([3.0, 3.0, 4.0]), np.zeros(3))
    -1
    """
    t_min = t_out.min()
    if np.isfinite(t_min):
        hits = np.flatnonzero(t_out == t_min)
    else:
        hits = np.flatnonzero(v_end == v_end.max())
    return int(hits[0]) if len(hits) == 1 else -1


def relative_targets(t_eff: np.ndarray, fired: np.ndarray, label: int, gamma: float, t_end: float) -> np.ndarray:
    """S4NN's relative output targets (module docstring).

    >>> relative_targets(np.array([4.0, 2.0, 9.0, 10.0]), np.array([1, 1, 1, 0], bool), 0, 3.0, 10.0).tolist()
    [2.0, 5.0, 9.0, 10.0]
    >>> relative_targets(np.full(3, 10.0), np.zeros(3, bool), 2, 3.0, 10.0).tolist()
    [10.0, 10.0, 7.0]
    """
    target = t_eff.astype(np.float64).copy()
    if not fired.any():
        target[:] = t_end
        target[label] = max(t_end - gamma, 0.0)
        return target
    tau = float(t_eff[fired].min())
    late = min(tau + gamma, t_end)
    for j in range(len(target)):
        if j == label:
            target[j] = tau
        elif t_eff[j] < tau + gamma:
            target[j] = late
    return target


def _psp_np(s: np.ndarray, kind: int, tau_r: float, tau_d: float) -> np.ndarray:
    """Vectorised :func:`spikewb.engine.neurons.pwl.psp` (for the opt-in inspector records)."""
    with np.errstate(invalid="ignore"):
        k = np.clip(s / tau_r, 0.0, 1.0)
        if kind == pwl.RISE_DECAY:
            k = np.where(s < tau_r, k, np.clip(1.0 - (s - tau_r) / tau_d, 0.0, 1.0))
    return np.where(s > 0.0, k, 0.0)


def _psp_slope_np(s: np.ndarray, kind: int, tau_r: float, tau_d: float) -> np.ndarray:
    """Vectorised :func:`spikewb.engine.neurons.pwl.psp_slope` (left derivative)."""
    out = np.where((s > 0.0) & (s <= tau_r), 1.0 / tau_r, 0.0)
    if kind == pwl.RISE_DECAY:
        out = np.where((s > tau_r) & (s <= tau_r + tau_d), -1.0 / tau_d, out)
    return out


@register
class STiDiBP(LearningRule):
    """STiDi-BP: per-layer spike-time-displacement learning with single-spike PWL-PSP neurons.

    Dense, convolutional (``arch_kind="conv"``) and binary-weight
    (``binary=True``) networks.  See the module docstring for the equations and
    for which choices are reconstructions.
    """

    key: ClassVar[str] = "stidi"
    event_driven: ClassVar[bool] = True
    title: ClassVar[str] = "STiDi-BP (spike-time displacement)"
    signals: ClassVar[str] = "spike-time displacement"
    time_unit: ClassVar[str] = "ms"
    loss_name: ClassVar[str] = "output timing error (mean ((t_d - t)/t_max)^2)"
    #: Dense network of the S4NN / STiDi-BP line (784-400-10; inferred for STiDi-BP).
    default_hidden: ClassVar[tuple[int, ...]] = (400,)
    structural: ClassVar[tuple[str, ...]] = ("dtype", "arch_kind", "binary", "conv_maps", "conv_kernel", "pool_size",
                                             "image_channels", "conv_hidden", "init_hidden", "init_conv", "init_output",
                                             "init_negative")

    # ------------------------------------------------------------ learning
    lr = param.Number(0.05, bounds=(0.0, 10.0), softbounds=(0.0, 0.5), step=0.001, label="Learning rate eta",
                      doc="Step of every layer's update, in threshold units per unit normalised error and "
                          "unit sensitivity (tuned here on Fashion-5k; S4NN's 0.2 at theta = 100 is 0.002 "
                          "with g = 1, and the default slope sensitivity is g <= 0.1).")
    lr_decay = param.Number(1.5, bounds=(0.0, 10.0), softbounds=(0.0, 2.0), step=0.01,
                            label="LR decay (1/epoch)",
                            doc="eta(e) = eta_0 exp(-decay e). 1.5 is tuned here for short runs (3 epochs of "
                                "4,000 samples: the step falls to 22 % and 5 %, and the test accuracy stops "
                                "swinging); for many epochs use a smaller decay.")
    lr_conv = param.Number(0.03, bounds=(0.0, 1e3), softbounds=(0.0, 1.0), step=0.005,
                           label="Conv learning-rate factor",
                           doc="Factor on eta for the shared kernels of conv layers, whose update is the sum "
                               "over positions (conv_update='sum'); per-layer rates as in the S4NN code "
                               "(0.03 tuned here on Fashion-5k).")

    # ------------------------------------------------------------ architecture
    arch_kind = param.Selector(default="dense", objects=["dense", "conv"], label="Network",
                               doc="dense: the architecture's hidden layers; conv: conv/pool stack from "
                                   "conv_maps, then conv_hidden dense layers, then the output "
                                   "(the architecture's hidden sizes are not used).")
    binary = param.Boolean(False, label="Binary weights",
                           doc="Forward pass with alpha sign(W), update the real W (B-CSNN; BS4NN idea).")
    binary_scale = param.Selector(default="mean_abs", objects=["mean_abs", "unit"], label="Binary scale alpha",
                                  doc="mean_abs: alpha_l = mean |W_l| per layer and sample (inferred; BS4NN "
                                      "learns a threshold scale instead); unit: alpha = 1 (then the threshold is "
                                      "in units of net active inputs).")
    conv_maps = param.List([32], item_type=int, label="Conv feature maps",
                           doc="Maps of each conv layer, input side first (placeholder; the paper's table "
                               "was not read. One layer of 32 maps learns best here; [16, 32] is the "
                               "two-layer layout of the reference notes).")
    conv_kernel = param.Integer(5, bounds=(1, 15), label="Conv kernel (px)", doc="Side of the square kernels.")
    pool_size = param.Integer(2, bounds=(1, 8), label="Pooling (px)",
                              doc="Side of the non-overlapping earliest-spike pooling after each conv layer "
                                  "(1: none).")
    conv_update = param.Selector(default="sum", objects=["sum", "sqrt", "mean"], label="Shared-kernel update",
                                 doc="How a conv kernel combines the updates of its P positions: their sum "
                                     "(the gradient of the layer's normalised loss), or that sum divided by "
                                     "sqrt(P) or by P (mean), always times lr_conv. The old default, mean "
                                     "with lr_conv = 1, starved the kernels: a first conv layer moved 0.4 % "
                                     "in 2,000 samples. Inferred.")
    image_channels = param.Integer(1, bounds=(1, 16), label="Image channels",
                                   doc="Channels of the (square, HWC) input images of the conv network.")
    conv_hidden = param.List([], item_type=int, label="Dense layers after conv",
                             doc="Hidden dense layers between the conv stack and the output (default none).")

    # ------------------------------------------------------------ neuron and coding
    t_max = param.Number(100.0, bounds=(1e-3, 1e6), softbounds=(10.0, 1000.0), label="Input window t_max (ms)",
                         doc="TTFS code t = t_max (1 - x); intensity 1 fires at 0 ms (inferred value).")
    t_end = param.Number(200.0, bounds=(1e-3, 1e6), softbounds=(10.0, 2000.0), label="Window end t_end (ms)",
                         doc="Simulation window of every layer; a neuron that has not fired by t_end is "
                             "silent and gets t_end as its time for the error (S4NN: t_max).")
    kernel = param.Selector(default="rise-plateau", objects=list(pwl.KERNELS), label="PSP kernel",
                            doc="rise-plateau: K = s/tau_r then 1; rise-decay: then 1 - (s - tau_r)/tau_d down "
                                "to 0 (both inferred: the paper's Fig. 1 was not read).")
    tau_r = param.Number(10.0, bounds=(1e-3, 1e5), inclusive_bounds=(True, True), softbounds=(0.5, 100.0),
                         label="PSP rise time tau_r (ms)", doc="Duration of the linear rise of K (inferred).")
    tau_d = param.Number(100.0, bounds=(1e-3, 1e6), softbounds=(1.0, 1000.0), label="PSP decay time tau_d (ms)",
                         doc="Duration of the linear decay of the rise-decay kernel (inferred; unused by "
                             "rise-plateau).")
    v_th = param.Number(1.0, bounds=(1e-6, 1e6), softbounds=(0.1, 10.0), label="Threshold theta",
                        doc="Firing threshold of every layer (weight units; only the ratio to the "
                            "initial weights matters).")

    # ------------------------------------------------------------ error and targets
    target = param.Selector(default="relative", objects=["relative", "fixed"], label="Output targets",
                            doc="relative: S4NN's targets from the earliest output spike and gamma; fixed: "
                                "label at t_target, others at t_end (both inferred).")
    gamma = param.Number(10.0, bounds=(0.0, 1e5), softbounds=(0.0, 50.0), label="Target margin gamma (ms)",
                         doc="Relative targets: wrong outputs must fire at least gamma after the earliest "
                             "(S4NN: 3 of 256 steps; 10 ms of t_max = 100 ms tuned here on Fashion-5k).")
    t_target = param.Number(20.0, bounds=(0.0, 1e6), softbounds=(0.0, 200.0), label="Fixed label target (ms)",
                            doc="Fixed targets: desired time of the correct output.")
    normalize = param.Boolean(True, label="Normalise error per layer",
                              doc="Scale each layer's error vector to unit L2 norm (S4NN code; inferred here).")
    sensitivity = param.Selector(default="slope", objects=["slope", "secant", "constant"],
                                 label="dt/dV approximation",
                                 doc="slope: -1/V'(t_j) (local linearisation); secant: -t_j/theta (line through "
                                     "the origin); constant: -t_max/theta (S4NN). Which one the paper uses is "
                                     "inferred.")
    slope_min = param.Number(10.0, bounds=(1e-6, 1e6), softbounds=(0.01, 10.0),
                             label="Slope floor (theta/t_max)",
                             doc="Guard for flat slopes and silent neurons: the normalised slope "
                                 "S t_max/theta is clipped from below, so the sensitivity is at most "
                                 "1/slope_min (default 10 = t_max/tau_r: one threshold-sized input's rise).")
    slope_max = param.Number(100.0, bounds=(1e-6, 1e9), softbounds=(1.0, 1e4),
                             label="Slope ceiling (theta/t_max)",
                             doc="Normalised slope clipped from above (keeps hidden votes bounded).")
    hidden_vote = param.Selector(default="psp", objects=["psp", "derivative"], label="Hidden vote",
                                 doc="How a neuron's desired potential change displaces its inputs: weighted by "
                                     "K(t_j - t_i) (psp, S4NN-like) or by tau_r K'(t_j - t_i) (derivative, "
                                     "the linearisation). Inferred.")
    silent_vote = param.Number(0.1, bounds=(0.0, 1.0), step=0.05, label="Silent-neuron vote G",
                               doc="Guard for silent hidden neurons: they get the vote of the layer above "
                                   "with G = this value (1: as if they had fired early enough to add their "
                                   "whole weight); their desired time t_end + dt is clipped to the window, so "
                                   "they can only be asked to fire. 0: silent neurons get no desired time and "
                                   "never recover by learning. Inferred guard.")
    mu = param.Number(0.1, bounds=(0.0, 1e3), softbounds=(0.0, 1.0), label="Vote gain mu",
                      doc="Hidden displacement per unit vote, in units of t_max (with normalisation it "
                          "only matters through the clip of t_d to [0, t_end]).")

    reset_dead = param.Number(0.001, bounds=(0.0, 1.0), softbounds=(0.0, 0.05), step=0.001,
                              label="Dead-neuron reset (fraction)",
                              doc="At the start of each epoch, re-draw the incoming weights of hidden neurons "
                                  "(conv: whole maps) that fired on fewer than this fraction of the previous "
                                  "epoch's samples (S4NN code: 0.001; 0 disables). A silent neuron gets no "
                                  "desired time, so it cannot recover by learning.")

    # ------------------------------------------------------------ initialisation
    init_hidden = param.Number(10.0, bounds=(0.0, 1e6), softbounds=(0.0, 100.0),
                               label="Init gain, dense hidden",
                               doc="Dense hidden weights uniform on [0, 2 g theta / fan_in] (S4NN's U[0, 5] at "
                                   "theta = 100, 784 inputs is g = 19.6; 10 tuned here for the PWL kernel).")
    init_conv = param.Number(4.0, bounds=(0.0, 1e6), softbounds=(0.0, 100.0),
                             label="Init gain, conv",
                             doc="Conv kernels uniform on [0, 2 g theta / fan_in] (tuned here: a 5x5 patch "
                                 "is more often inked than a whole image).")
    init_output = param.Number(4.0, bounds=(0.0, 1e6), softbounds=(0.0, 400.0),
                               label="Init gain, output",
                               doc="Output weights uniform on [0, 2 g theta / fan_in] (S4NN's U[0, 48] at "
                                   "theta = 100, 400 inputs is g = 96, which makes a continuous-time output "
                                   "fire within 0.1 ms of the first hidden spikes; 4 tuned here).")
    init_negative = param.Number(0.35, bounds=(0.0, 0.99), softbounds=(0.0, 0.5), step=0.05,
                                 label="Init negative fraction",
                                 doc="Shift the uniform range so this fraction of it is negative (same width): "
                                     "U[-f w, (1 - f) w] with w = 2 g theta / fan_in. S4NN uses 0; 0.35 tuned "
                                     "here (conv features with inhibitory parts: random pooled conv features "
                                     "keep more of the image than with 0.2). The binary variant uses "
                                     "max(init_negative, 0.25) so that signs differ.")

    # ================================================================= structure
    def _layers(self, n_inputs: int, hidden: tuple[int, ...], n_outputs: int) -> tuple[Layer, ...]:
        if self.arch_kind == "conv":
            hidden = tuple(int(h) for h in self.conv_hidden)
        return topology(self.arch_kind, int(n_inputs), tuple(int(h) for h in hidden), int(n_outputs),
                        tuple(int(m) for m in self.conv_maps), int(self.conv_kernel), int(self.pool_size),
                        int(self.image_channels))

    def describe_network(self, model: Model) -> str:
        """The layer sequence of a model, e.g. ``784-c5x32-p2-10`` (conv) or ``784-400-10`` (dense).

        ``cKxM``: a convolution with ``M`` maps of ``K x K`` kernels; ``pS``:
        ``S x S`` earliest-spike pooling; a number: a dense layer of that size.
        """
        parts = [str(model.sizes[0])]
        for layer in self.layers(model):
            if layer.kind == "conv":
                parts.append(f"c{int(self.conv_kernel)}x{layer.maps}")
            elif layer.kind == "pool":
                parts.append(f"p{int(self.pool_size)}")
            else:
                parts.append(str(layer.n_out))
        return "-".join(parts)

    def layers(self, model: Model) -> tuple[Layer, ...]:
        """The layers of a model built by this rule (cached per architecture)."""
        sizes = model.sizes
        layers = self._layers(sizes[0], tuple(sizes[1:-1]), sizes[-1])
        if tuple(l.n_out for l in layers) != tuple(sizes[1:]):
            raise ConfigError(f"the model's layer sizes {tuple(sizes)} do not match this rule's architecture "
                              f"({self.arch_kind}); rebuild the network after changing it")
        return layers

    def _check(self) -> None:
        pwl.check_kernel_times(self.tau_r, self.tau_d, self.t_max, self.t_end)
        if self.slope_min > self.slope_max:
            raise ConfigError(f"slope_min = {self.slope_min} exceeds slope_max = {self.slope_max}")
        if self.arch_kind == "conv" and not self.conv_maps:
            raise ConfigError("the convolutional network needs at least one conv layer (conv_maps)")
        if any(m < 1 for m in self.conv_maps) or any(h < 1 for h in self.conv_hidden):
            raise ConfigError(f"layer sizes must be positive: conv_maps={self.conv_maps}, "
                              f"conv_hidden={self.conv_hidden}")

    # ================================================================= build
    def build(self, arch: Architecture, rng: np.random.Generator) -> Model:
        """Uniform weights (S4NN-like, shifted by ``init_negative``); see ``init_*``."""
        if self.arch_kind == "dense":
            arch.validate()
        self._check()
        layers = self._layers(arch.n_inputs, tuple(arch.hidden), arch.n_outputs)
        ft = self.float_type
        weights = []
        n_weight_layers = sum(l.has_weights for l in layers)
        for layer in layers:
            if not layer.has_weights:
                continue
            lo, hi = self._init_range(layer, layer.w_index == n_weight_layers - 1)
            w = rng.uniform(lo, hi, (layer.fan_in, layer.maps)).astype(ft)
            weights.append(np.ascontiguousarray(w))
        n_syn = sum(w.size for w in weights)
        from spikewb.engine.config import MAX_SYNAPSES
        if n_syn > MAX_SYNAPSES:
            raise ConfigError(f"network has {n_syn:,} weights, more than the limit of {MAX_SYNAPSES:,}")
        sizes = (int(arch.n_inputs), *(l.n_out for l in layers))
        return Model(self.key, sizes, weights, rng)

    def extra_state_schema(self, model: Model) -> dict[str, ArraySpec]:
        """The dead-neuron counters of :meth:`_track_dead` (made while training)."""
        layers = self.layers(model)
        out = {"stidi_count": ArraySpec((2,), np.dtype(np.int64), lo=0, hi=2**62, required=False)}
        for l, layer in enumerate(layers, start=1):
            if layer.has_weights and l < len(layers):
                n = layer.maps if layer.kind == "conv" else layer.n_out
                out[f"stidi_fired_{layer.w_index}"] = ArraySpec((n,), np.dtype(np.float64), lo=0.0, required=False)
        return out

    def _init_range(self, layer: Layer, is_output: bool) -> tuple[float, float]:
        """Uniform initialisation range of a layer's weights."""
        neg = max(self.init_negative, 0.25) if self.binary else self.init_negative
        gain = self.init_output if is_output else (self.init_conv if layer.kind == "conv" else self.init_hidden)
        width = 2.0 * gain * self.v_th / layer.fan_in
        return -neg * width, (1.0 - neg) * width

    def _track_dead(self, model: Model, layers: tuple[Layer, ...], fwd: "Pass") -> list[tuple[int, int]]:
        """Count hidden firing per epoch; at an epoch change re-draw dead neurons.

        Counts live in ``model.state`` (``stidi_fired_<w_index>``, per neuron for
        dense layers, per map for conv layers; ``stidi_count`` = [epoch, samples]).
        Returns the (layer, n_reset) pairs of a reset, for the log.
        """
        if self.reset_dead <= 0.0:
            return []
        st = model.state
        hidden = [(l, layer) for l, layer in enumerate(layers, start=1)
                  if layer.has_weights and l < len(layers)]
        count = st.get("stidi_count")
        resets = []
        if count is None or any(f"stidi_fired_{layer.w_index}" not in st for _, layer in hidden):
            count = np.array([model.epoch, 0], np.int64)
            for _, layer in hidden:
                st[f"stidi_fired_{layer.w_index}"] = np.zeros(layer.maps if layer.kind == "conv" else layer.n_out)
        elif int(count[0]) != model.epoch:
            n = int(count[1])
            if n > 0:
                for l, layer in hidden:
                    fired = st[f"stidi_fired_{layer.w_index}"]
                    dead = np.flatnonzero(fired < self.reset_dead * n)
                    if len(dead):
                        w = model.weights[layer.w_index]
                        lo, hi = self._init_range(layer, False)
                        w[:, dead] = model.rng.uniform(lo, hi, (w.shape[0], len(dead))).astype(w.dtype)
                        resets.append((l, len(dead)))
                    fired[:] = 0.0
            count = np.array([model.epoch, 0], np.int64)
        count[1] += 1
        st["stidi_count"] = count
        for l, layer in hidden:
            fin = np.isfinite(fwd.t[l])
            if layer.kind == "conv":
                fin = fin.reshape(-1, layer.maps).any(axis=0)
            st[f"stidi_fired_{layer.w_index}"] += fin
        return resets

    # ================================================================= forward
    def _scales(self, model: Model) -> list[float]:
        if not self.binary:
            return [1.0] * len(model.weights)
        if self.binary_scale == "unit":
            return [1.0] * len(model.weights)
        return [float(pwl.abs_mean(w)) for w in model.weights]

    def encode(self, x: np.ndarray) -> np.ndarray:
        """TTFS input times ``t = t_max (1 - x)`` (ms, float64, ``inf`` for black pixels).

        Same code as :func:`spikewb.engine.data.encoding.time_to_first_spike`, computed in
        float64 (the crossing times are exact; float32 inputs would round the
        input times by up to 1e-5 ms).
        """
        x = np.asarray(x)
        if x.dtype == np.uint8:
            x = x.astype(np.float64) / 255.0
        x = np.asarray(x, np.float64).ravel()
        if not np.all(np.isfinite(x)) or (x.size and (x.min() < 0.0 or x.max() > 1.0)):
            return time_to_first_spike(x, float(self.t_max)).astype(np.float64)  # raises a clear DataError
        t = float(self.t_max) * (1.0 - x)
        t[x <= 0.0] = np.inf
        return t

    def forward(self, model: Model, x: np.ndarray, layers: tuple[Layer, ...] | None = None) -> Pass:
        """Run every layer on one image (intensities in [0, 1])."""
        layers = layers or self.layers(model)
        kind = pwl.kernel_code(self.kernel)
        tau_r, tau_d, t_end, v_th = float(self.tau_r), float(self.tau_d), float(self.t_end), float(self.v_th)
        scales = self._scales(model)
        t = [self.encode(x)]
        slope: list = [None]
        v_end: list = [None]
        winner: list = [None]
        binary = bool(self.binary)
        for layer in layers:
            t_in = t[-1]
            if layer.kind == "pool":
                t_o = np.empty(layer.n_out)
                win = np.empty(layer.n_out, np.int64)
                pwl.pool_forward(t_in, layer.windows, t_o, win)
                t.append(t_o)
                slope.append(None)
                v_end.append(None)
                winner.append(win)
                continue
            t_o = np.empty(layer.n_out)
            s_o = np.empty(layer.n_out)
            v_o = np.empty(layer.n_out)
            pwl.layer_forward(t_in, layer.pre, layer.inv_ptr, layer.inv_pos, layer.inv_col,
                              model.weights[layer.w_index], binary, scales[layer.w_index], v_th, kind,
                              tau_r, tau_d, t_end, t_o, s_o, v_o)
            t.append(t_o)
            slope.append(s_o)
            v_end.append(v_o)
            winner.append(None)
        return Pass(t, slope, v_end, winner, scales)

    # ================================================================= learning signals
    def _norm_slope(self, slope: np.ndarray, t_eff: np.ndarray) -> np.ndarray:
        """Clipped normalised slope S~ (so that the sensitivity is g = 1 / S~)."""
        scale = float(self.t_max) / float(self.v_th)
        if self.sensitivity == "slope":
            s = slope * scale
        elif self.sensitivity == "secant":
            with np.errstate(divide="ignore"):
                s = float(self.t_max) / t_eff
        else:
            return np.ones_like(t_eff)
        return np.clip(s, self.slope_min, self.slope_max)

    def _kernel_factor(self, layer: Layer) -> float:
        """Factor on ``lr`` for a layer's per-neuron coefficients (1 for dense layers).

        A conv kernel's update is the sum over its ``P`` positions of their
        per-neuron updates, times ``lr_conv``, divided by 1, ``sqrt(P)`` or ``P``
        (``conv_update``).
        """
        if layer.kind != "conv":
            return 1.0
        n_pos = layer.pre.shape[0]
        div = {"sum": 1.0, "sqrt": math.sqrt(n_pos), "mean": float(n_pos)}[self.conv_update]
        return float(self.lr_conv) / div

    def _normalize(self, e: np.ndarray) -> np.ndarray:
        if not self.normalize:
            return e
        n = math.sqrt(float(np.sum(e * e)))          # not np.dot: BLAS threads would spin
        return e / n if n > 0.0 else e

    def desired_times(self, model: Model, fwd: Pass, y: int, layers: tuple[Layer, ...] | None = None):
        """Desired times, errors and update coefficients of every layer (old weights).

        Returns a dict of per-layer lists (index 0 = input, None where not defined):
        ``t_eff`` (time used for the error, ms), ``t_d`` (desired time, ms),
        ``e`` (error e = (t_d - t_eff)/t_max), ``e_hat`` (normalised error),
        ``s_tilde`` (clipped normalised slope), ``coef`` (per-neuron update
        coefficient -eta theta e_hat g, without eta).
        """
        layers = layers or self.layers(model)
        L = len(layers)
        t_end, t_max, v_th = float(self.t_end), float(self.t_max), float(self.v_th)
        kind = pwl.kernel_code(self.kernel)
        mode = pwl.VOTE_DERIVATIVE if self.hidden_vote == "derivative" else pwl.VOTE_PSP
        t_eff = [None] * (L + 1)
        for l in range(L + 1):
            tl = fwd.t[l]
            t_eff[l] = np.where(np.isfinite(tl), tl, t_end)
        t_d = [None] * (L + 1)
        e = [None] * (L + 1)
        e_hat = [None] * (L + 1)
        s_tilde = [None] * (L + 1)
        coef = [None] * (L + 1)
        out = fwd.t[L]
        if self.target == "relative":
            t_d[L] = relative_targets(t_eff[L], np.isfinite(out), y, float(self.gamma), t_end)
        else:
            t_d[L] = np.full(len(out), t_end)
            t_d[L][y] = min(float(self.t_target), t_end)
        e[L] = (t_d[L] - t_eff[L]) / t_max
        for l in range(L, 0, -1):
            layer = layers[l - 1]
            if layer.kind == "pool":
                # route the displacement to the earliest input of each window
                d_in = np.zeros(layer.n_in)
                pwl.pool_backward(layer.windows, fwd.winner[l], e[l], d_in)
                e[l - 1] = d_in
                e_hat[l] = e[l]
                t_d[l - 1] = np.clip(t_eff[l - 1] + d_in * t_max, 0.0, t_end)
                continue
            e_hat[l] = self._normalize(e[l])
            s_tilde[l] = self._norm_slope(fwd.slope[l], t_eff[l])
            coef[l] = -v_th * e_hat[l] / s_tilde[l]
            if l == 1:
                continue
            dv = e_hat[l] * s_tilde[l]
            vote = np.zeros(layer.n_in)
            w = model.weights[layer.w_index]
            pwl.layer_vote(fwd.t[l - 1], layer.pre, t_eff[l], dv, w, bool(self.binary), fwd.scale[layer.w_index],
                           mode, kind, float(self.tau_r), float(self.tau_d),
                           float(self.silent_vote), vote)
            dt = float(self.mu) * t_max * vote / v_th
            t_d[l - 1] = np.clip(t_eff[l - 1] + dt, 0.0, t_end)
            e[l - 1] = np.where(vote != 0.0, (t_d[l - 1] - t_eff[l - 1]) / t_max, 0.0)
        return dict(t_eff=t_eff, t_d=t_d, e=e, e_hat=e_hat, s_tilde=s_tilde, coef=coef)

    # ================================================================= step
    def train_step(self, model: Model, x: np.ndarray, y: int, record: Record | None = None) -> Frame:
        self.check_model(model)
        self._check()
        y = label_in_range(y, model.sizes[-1])
        record = RECORD_NONE if record is None else record
        layers = self.layers(model)
        L = len(layers)
        lr = self.learning_rate(model.epoch)
        fwd = self.forward(model, x, layers)
        self._track_dead(model, layers, fwd)
        prediction = first_spike_decision(fwd.t[L], fwd.v_end[L])
        sig = self.desired_times(model, fwd, int(y), layers)
        kind = pwl.kernel_code(self.kernel)
        tau_r, tau_d = float(self.tau_r), float(self.tau_d)

        extras: dict = {}
        if record.neurons:
            extras.update(self._record_neurons(model, layers, fwd, sig, record, lr))
        if record.neurons or record.flow > 0:
            extras.update(self._inspector_links(model, layers, fwd, sig, record))

        # per-layer updates, all computed from this forward pass, applied together
        dw_norm = []
        for l, layer in enumerate(layers, start=1):
            if not layer.has_weights:
                dw_norm.append(0.0)
                continue
            c = lr * self._kernel_factor(layer) * sig["coef"][l]
            w = model.weights[layer.w_index]
            if layer.pre.shape[0] == 1:
                sq = pwl.layer_dw(fwd.t[l - 1], layer.pre, sig["t_eff"][l], c, kind, tau_r, tau_d, w)
            else:
                dw = np.zeros(w.shape, np.float64)
                pwl.layer_dw(fwd.t[l - 1], layer.pre, sig["t_eff"][l], c, kind, tau_r, tau_d, dw)
                sq = float(np.sum(dw * dw))                  # no BLAS call in the training loop
                w += dw.astype(w.dtype)
            dw_norm.append(math.sqrt(sq))
        if not all(math.isfinite(v) for v in dw_norm):
            bad = [l + 1 for l, v in enumerate(dw_norm) if not math.isfinite(v)]
            raise NumericalError(f"weight update of layer(s) {bad} is NaN/Inf at epoch {model.epoch}; "
                                 "the weights are no longer usable: lower the learning rate and reset")

        e_out = sig["e"][L]
        loss = float(np.mean(e_out ** 2))
        return self._frame(model, layers, y, prediction, loss, lr, fwd, sig, dw_norm, record, extras)

    # ================================================================= frame
    def vote_links(self, model: Model, layers, fwd: Pass, sig: dict, l: int):
        """Every nonzero contribution of layer ``l`` to the displacement of layer ``l - 1``.

        Returns ``(i, j, value)``: neuron ``i`` of layer ``l`` moved neuron
        ``j`` of layer ``l - 1`` by ``value`` ms (before the clip to the
        window); the values of one ``j`` sum to its requested displacement.
        A pooling layer hands its displacement to the winner of each window.
        """
        layer = layers[l - 1]
        if layer.kind == "pool":
            e = sig["e"][l]
            won = np.flatnonzero((fwd.winner[l] >= 0) & (e != 0.0))
            lost = np.flatnonzero((fwd.winner[l] < 0) & (e != 0.0))        # silent windows: every input
            k = layer.windows.shape[1]
            i = np.concatenate([won, np.repeat(lost, k)])
            j = np.concatenate([fwd.winner[l][won], layer.windows[lost].ravel()]).astype(np.int64)
            return i, j, e[i] * float(self.t_max)
        if l == 1 or sig["e_hat"][l] is None:
            z = np.zeros(0, np.int64)
            return z, z, np.zeros(0)
        kind = pwl.kernel_code(self.kernel)
        tau_r, tau_d = float(self.tau_r), float(self.tau_d)
        P, F = layer.pre.shape
        M = layer.maps
        w = model.weights[layer.w_index].astype(np.float64)
        if self.binary:
            w = np.where(w >= 0.0, 1.0, -1.0) * fwd.scale[layer.w_index]
        dv = (sig["e_hat"][l] * sig["s_tilde"][l]).reshape(P, 1, M)
        t_pre = fwd.t[l - 1][layer.pre]                                          # (P, F)
        s = sig["t_eff"][l].reshape(P, 1, M) - t_pre[:, :, None]
        with np.errstate(invalid="ignore"):
            g = (_psp_slope_np(s, kind, tau_r, tau_d) * tau_r if self.hidden_vote == "derivative"
                 else _psp_np(s, kind, tau_r, tau_d))
        silent = ~np.isfinite(t_pre)[:, :, None]
        g = np.where(silent, float(self.silent_vote), g)
        c = float(self.mu) * float(self.t_max) / float(self.v_th) * dv * w[None] * g
        p, f, m = np.nonzero(c)
        return p * M + m, layer.pre[p, f].astype(np.int64), c[p, f, m]

    def _inspector_links(self, model, layers, fwd, sig, record) -> dict:
        """``contrib``, ``contrib_down`` (recorded neurons) and ``flow`` (top links) extras."""
        L = len(layers)
        links = {}

        def get(l):
            if l not in links:
                links[l] = self.vote_links(model, layers, fwd, sig, l)
            return links[l]

        out = {}
        if record.neurons:
            empty = np.zeros(0, np.float32)
            up, down = [], []
            for l, idx in record.neurons:
                if 1 <= l < L and 0 <= idx < model.sizes[l]:
                    i, j, v = get(l + 1)
                    vec = np.zeros(model.sizes[l + 1])
                    np.add.at(vec, i[j == idx], v[j == idx])
                    up.append(vec.astype(np.float32))
                else:
                    up.append(empty)
                if 2 <= l <= L and 0 <= idx < model.sizes[l]:
                    i, j, v = get(l)
                    vec = np.zeros(model.sizes[l - 1])
                    np.add.at(vec, j[i == idx], v[i == idx])
                    down.append(vec.astype(np.float32))
                else:
                    down.append(empty)
            out["contrib"] = tuple(up)
            out["contrib_down"] = tuple(down)
        if record.flow > 0:
            rows = []
            for l in range(L, 1, -1):
                i, j, v = get(l)
                n = min(int(record.flow), len(v))
                if n == 0:
                    continue
                top = np.argpartition(-np.abs(v), n - 1)[:n]
                top = top[np.argsort(-np.abs(v[top]))]
                rows.append(np.column_stack([np.full(n, l), i[top], j[top], v[top]]))
            out["flow"] = np.vstack(rows).astype(np.float32) if rows else np.zeros((0, 4), np.float32)
        return out

    def _record_neurons(self, model, layers, fwd, sig, record, lr) -> dict:
        """Exact potentials of the recorded neurons (and their incoming updates)."""
        t_end = float(self.t_end)
        grid = np.linspace(0.0, t_end, TRACE_POINTS)
        n_rec = len(record.neurons)
        v_trace = np.zeros((n_rec, TRACE_POINTS), np.float32)
        i_trace = np.zeros((n_rec, TRACE_POINTS), np.float32)
        pwl_t, pwl_v, dw_in = [], [], []
        t_cross = np.full(n_rec, np.nan, np.float32)
        t_target = np.full(n_rec, np.nan, np.float32)
        kind = pwl.kernel_code(self.kernel)
        empty = np.zeros(0, np.float32)
        for r, (l, idx) in enumerate(record.neurons):
            ok = 1 <= l <= len(layers) and 0 <= idx < layers[l - 1].n_out and layers[l - 1].has_weights
            if not ok:
                pwl_t.append(empty)
                pwl_v.append(empty)
                dw_in.append(empty)
                continue
            layer = layers[l - 1]
            p, m = divmod(int(idx), layer.maps)
            t_pre = fwd.t[l - 1][layer.pre[p]]
            w = model.weights[layer.w_index][:, m].astype(np.float64)
            if self.binary:
                w = np.where(w >= 0.0, 1.0, -1.0) * fwd.scale[layer.w_index]
            bt, bv = pwl.potential_breakpoints(t_pre, w, self.kernel, self.tau_r, self.tau_d, t_end)
            v_trace[r] = pwl.sample_polyline(bt, bv, grid)
            slopes = np.diff(bv) / np.maximum(np.diff(bt), 1e-300)
            seg = np.clip(np.searchsorted(bt, grid, side="left") - 1, 0, max(len(slopes) - 1, 0))
            i_trace[r] = slopes[seg] if len(slopes) else 0.0
            pwl_t.append(bt.astype(np.float32))
            pwl_v.append(bv.astype(np.float32))
            t_cross[r] = fwd.t[l][idx]
            t_target[r] = sig["t_d"][l][idx]
            if record.weight_updates:
                a = lr * self._kernel_factor(layer) * sig["coef"][l][idx]
                k = np.array([pwl.psp(float(sig["t_eff"][l][idx] - ti), kind, self.tau_r, self.tau_d)
                              if np.isfinite(ti) else 0.0 for ti in t_pre])
                dw_in.append((a * k).astype(np.float32))
        out = {"trace_t": grid.astype(np.float32), "pwl_t": tuple(pwl_t), "pwl_v": tuple(pwl_v),
               "t_cross": t_cross, "t_target": t_target, "_v_trace": v_trace, "_i_trace": i_trace}
        if record.weight_updates:
            out["dw_in"] = tuple(dw_in)
        return out

    def _frame(self, model, layers, y, prediction, loss, lr, fwd, sig, dw_norm, record, extras) -> Frame:
        L = len(layers)
        spikes = None
        if record.spikes:
            idx = [np.flatnonzero(np.isfinite(t)) for t in fwd.t]
            spikes = (tuple(t[i] for t, i in zip(fwd.t, idx)), tuple(idx))
        signal = [None if sig["e"][l] is None else sig["e"][l] * float(self.t_max) for l in range(1, L + 1)]
        t_des = [np.zeros(0, np.float32)] + [(sig["t_d"][l] if sig["t_d"][l] is not None else sig["t_eff"][l])
                                             .astype(np.float32) for l in range(1, L + 1)]
        extras = dict(extras)
        v_trace = extras.pop("_v_trace", None)
        i_trace = extras.pop("_i_trace", None)
        extras["t_fire"] = tuple(t.astype(np.float32) for t in fwd.t)
        extras["t_desired"] = tuple(t_des)
        extras["slope"] = tuple(np.zeros(0, np.float32) if s is None else s.astype(np.float32) for s in fwd.slope)
        extras["v_end"] = fwd.v_end[L].astype(np.float32)
        return self.make_frame(
            model, record, label=y, prediction=prediction, loss=loss, lr=lr, duration=self.t_end,
            counts=[np.isfinite(t) for t in fwd.t], signal=signal, signal_raw=[sig["e_hat"][l] for l in range(1, L + 1)],
            dw_norm=dw_norm, target=sig["t_d"][L], spikes=spikes, v_trace=v_trace, i_trace=i_trace, extras=extras,
            layer_names=("input", *(l.name for l in layers)))

    # ================================================================= predict
    def output_times(self, model: Model, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Output spike times (``inf``: silent) and final potentials for a batch."""
        self.check_model(model)
        self._check()
        X = np.atleast_2d(X)
        layers = self.layers(model)
        n_out = model.sizes[-1]
        t = np.empty((len(X), n_out))
        v = np.empty((len(X), n_out))
        for n in range(len(X)):
            fwd = self.forward(model, X[n], layers)
            t[n] = fwd.t[-1]
            v[n] = fwd.v_end[-1]
        return t, v

    def predict(self, model: Model, X: np.ndarray) -> np.ndarray:
        """First-spike decisions for a batch of images in [0, 1]; -1 where none (ties)."""
        t, v = self.output_times(model, X)
        return np.array([first_spike_decision(t[n], v[n]) for n in range(len(t))], np.int64)
