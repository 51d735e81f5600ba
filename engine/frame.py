"""The record of one training step: what every view draws and every test reads.

A :class:`Frame` holds plain NumPy arrays and scalars only: no UI types and no
reference back into the model, so a frame can cross a thread boundary, be kept
in a replay buffer, or be compared in a test without copying anything else.

Layer numbering is the same everywhere: layer 0 is the input (encoded spikes),
layers ``1..L`` are the neuron layers, layer ``L`` is the output.  Weight layer
``l`` (``1..L``) connects layer ``l-1`` to layer ``l``.

Rule-specific arrays go into :attr:`Frame.extras`; :data:`EXTRAS` names every
key a rule may write and says what it holds and when it is present:

>>> sorted(k for k in EXTRAS if k.startswith("grad_pos"))
['grad_pos_counts', 'grad_pos_i', 'grad_pos_t']
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

_EMPTY_F = np.zeros(0, np.float32)
_EMPTY_I = np.zeros(0, np.int32)


@dataclass(frozen=True)
class Record:
    """What a training step should record beyond the cheap defaults.

    Parameters
    ----------
    neurons : tuple of (layer, index)
        Neurons whose membrane potential and input current are recorded over
        the sample.  Layer 0 (input) has no potential and is ignored.
    spikes : bool
        Record every spike event (time, neuron) of every layer.  Cheap for
        the networks this workbench trains; off for headless speed runs.
    weight_updates : bool
        Record the incoming weight update of each neuron in ``neurons``
        (heavy for wide layers, so opt-in like a Brian2 monitor).
    flow : int
        For the error-flow view: record the ``flow`` strongest signed
        contributions between every pair of consecutive non-input layers
        (``extras["flow"]``, see the rule's docs).  0 records none.
    """

    neurons: tuple[tuple[int, int], ...] = ()
    spikes: bool = True
    weight_updates: bool = False
    flow: int = 0

    @property
    def any(self) -> bool:
        return bool(self.neurons) or self.spikes or self.weight_updates or self.flow > 0


#: The default for views that are open: spikes, no per-neuron traces.
RECORD_SPIKES = Record()
#: Nothing but the scalars and per-layer counts: headless training.
RECORD_NONE = Record(spikes=False)


def raster_events(rasters, shift_from: int = 1) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Per-layer boolean rasters ``(steps, n)`` as ``(spike_t, spike_i)`` event tuples for a Frame.

    Layers from ``shift_from`` on hold the state before the first step in row 0
    (row ``t + 1`` is step ``t``), so their times are shifted down by one.

    >>> t, i = raster_events([np.array([[1, 0], [0, 1]]), np.array([[0], [0], [1]])])
    >>> [a.tolist() for a in t], [a.tolist() for a in i]
    ([[0.0, 1.0], [1.0]], [[0, 1], [0]])
    """
    ts, is_ = [], []
    for l, s in enumerate(rasters):
        t, i = np.nonzero(s)
        if l >= shift_from:
            t = t - 1
        ts.append(t.astype(np.float32))
        is_.append(i.astype(np.int32))
    return tuple(ts), tuple(is_)


#: Keys of :attr:`Frame.extras` and what each holds.  Every rule writes its
#: own subset; a key is absent when its rule or its recording condition does not
#: apply.  "Per layer" means a tuple with one array per layer 0..L; "recorded
#: neurons" means a tuple (or rows) aligned with ``Record.neurons`` /
#: ``trace_ids``, with an empty array for an entry that has nothing to show
#: (input layer, index out of range, pooling layer).  Times are in the rule's
#: ``time_unit``: steps for Desire BP and SSNN-BP, ms for STiDi-BP, multispike
#: and NormAD.
EXTRAS: dict[str, str] = {
    # ---- Desire BP (time unit: step)
    "g": "Desire BP, always: per layer (float32 (n_l,), layer 0 empty) g_i = e_i * delta_i * mask_i, "
         "the signed error a neuron hands down, so that sigma_j = sum_i W_ji g_i.",
    "contrib": "Desire BP and STiDi-BP, recorded neurons only (float32 (n_{l+1},), empty unless "
               "1 <= l < L): what each neuron i of layer l+1 sent to the recorded neuron j of layer l; "
               "Desire: W_ji g_i (they sum to signal_raw), STiDi: the displacement it requested of j (ms).",
    "contrib_down": "Desire BP and STiDi-BP, recorded neurons only (float32 (n_{l-1},), empty unless "
                    "2 <= l <= L): what the recorded neuron i of layer l sent to each neuron j of layer l-1; "
                    "Desire: W_ji g_i, STiDi: the displacement it requested of j (ms).",
    "flow": "Desire BP and STiDi-BP, only with Record(flow=k > 0): float32 (n, 4) rows (l, i, j, value) "
            "of the k largest |value| links from neuron i of layer l to neuron j of layer l-1, per layer "
            "pair l = L..2, largest first, zeros left out; value = W_ji g_i (Desire) or the requested "
            "displacement in ms (STiDi).",
    "dw_in": "Incoming weight update (float32 (n_pre,)) per recorded neuron, only with "
             "Record(weight_updates=True): Desire BP (lr delta_i mask_i sum_t z_i(t) x_j(t); recorded non-input "
             "neurons in layer order, key absent if none), STiDi-BP (aligned with trace_ids; a conv "
             "neuron's own patch of the kernel update), multispike (-lr dL/dw, the SGD-equivalent "
             "step, not the Adam step applied; aligned with trace_ids), NormAD (the applied update; "
             "valid recorded neurons in Record order, key absent if none).",
    # ---- STiDi-BP (time unit: ms)
    "t_fire": "STiDi-BP, always: per layer (float32 (n_l,), input included) each neuron's single spike "
              "time in ms, inf when silent (pooling layers: the earliest time of the window).",
    "t_desired": "STiDi-BP, always: per layer (float32 (n_l,), layer 0 empty) the desired firing time in ms "
                 "from which the neuron's error was computed.",
    "slope": "STiDi-BP, always: per layer (float32 (n_l,), empty for the input and pooling layers) dV/dt "
             "at the neuron's threshold crossing (potential per ms; silent neurons: the left slope at t_end).",
    "v_end": "STiDi-BP, always: float32 (n_out,) output membrane potentials at t_end (the decision when "
             "no output neuron fires).",
    "trace_t": "STiDi-BP and multispike, recorded neurons only: float32 time grid in ms of v_trace / "
               "i_trace (201 points over [0, t_end] for STiDi, 256 over [0, t_sim] for multispike).",
    "pwl_t": "STiDi-BP, recorded neurons only: per recorded neuron a float32 array of the breakpoint "
             "times (ms) of its exact piecewise-linear potential.",
    "pwl_v": "STiDi-BP, recorded neurons only: per recorded neuron a float32 array of the potential at "
             "each breakpoint of pwl_t.",
    "t_cross": "STiDi-BP, recorded neurons only: float32 (n_rec,) threshold-crossing time of each recorded "
               "neuron in ms (inf if silent, NaN for input or pooling entries).",
    "t_target": "STiDi-BP, recorded neurons only: float32 (n_rec,) desired firing time of each recorded "
                "neuron in ms (NaN for input or pooling entries).",
    # ---- multispike (Yamamoto et al.; time unit: ms)
    "overflow": "multispike, always: per layer (int32 (n_l,), layer 0 zeros) threshold crossings beyond "
                "the neuron's spike cap, simulated but not emitted.",
    "overflow_total": "multispike, always: int64 (L+1,) total overflow crossings of each layer 0..L.",
    "capped": "multispike, always: int64 (L+1,) number of neurons of each layer 0..L that reached the "
              "spike cap (overflow > 0).",
    "first_t": "multispike, always: float32 (n_out,) first spike time of each output neuron in ms, inf "
               "when silent.",
    "p": "multispike, always: float32 (n_out,) TTFS softmax probabilities softmax(-first_t / tau_loss) "
         "(silent neurons counted at t_sim); empty with loss='count'.",
    "grad_norm": "multispike, always: float32 (L,) Frobenius norm of this sample's gradient dL/dw per "
                 "weight layer, before the optimiser (applied every batch_size samples).",
    "tau": "multispike, whenever the Record asks for anything (Record.any): float32 (2,) = (tau_m, tau_s) "
           "in ms that this sample ran with.",
    "spike_t_rec": "multispike, recorded neurons only: per recorded neuron a float32 (n_spikes,) array of "
                   "its spike times in ms.",
    "spike_grad": "multispike, recorded neurons only: per recorded neuron float32 (n_spikes,) total "
                  "gradient dL/dt of each of its spikes (1/ms), including what flows back through its "
                  "later spikes (the reset term).",
    "spike_grad_direct": "multispike, recorded neurons only: per recorded neuron float32 (n_spikes,) "
                         "direct dL/dt of each spike (from the loss or the layer above, 1/ms), without the "
                         "reset term.",
    "spike_vdot": "multispike, recorded neurons only: per recorded neuron float32 (n_spikes,) dV/dt at "
                  "each threshold crossing (potential per ms).",
    "spike_dw_norm": "multispike, recorded neurons only: per recorded neuron float32 (n_spikes,) L2 norm "
                     "of each spike's contribution to dL/dw of the neuron's incoming weights.",
    "spike_dw": "multispike, recorded neurons only and only with Record(weight_updates=True): per "
                "recorded neuron float32 (n_spikes, n_pre), each spike's contribution to dL/dw of the "
                "neuron's incoming weights.",
    # ---- NormAD (time unit: ms, on the dt grid)
    "desired_t": "NormAD, always: float32 desired output spike times in ms, ascending (the task's "
                 "target trains, or the label's train in image mode).",
    "desired_i": "NormAD, always: int32 output neuron index of each desired_t spike.",
    "output_t": "NormAD, always: float64 observed output spike times in ms (step * dt), ascending; "
                "the TaskTrainer scores these.",
    "output_i": "NormAD, always: int32 output neuron index of each output_t spike.",
    "error_t": "NormAD, always: float32 times in ms (step * dt) of the nonzero output error events "
               "e(t) = desired - observed raster.",
    "error_i": "NormAD, always: int32 output neuron index of each error_t event.",
    "error_sign": "NormAD, always: int8 sign of each error_t event, +1 a desired spike is missing, -1 an "
                  "extra output spike.",
    "spike_delta": "NormAD, only with Record(spikes=True): per layer float32 back-propagated error delta "
                   "of each spike, in spike_t / spike_i order of that layer (zeros for input and output).",
    "correlation": "NormAD TaskTrainer (spike-train tasks) only: float64 scalar, mean over output neurons "
                   "of the Schreiber correlation (width corr_sigma ms) of output and desired trains.",
    "matched": "NormAD TaskTrainer (spike-train tasks) only: bool scalar, every output neuron fired "
               "exactly its desired spikes, each within the task's tolerance (ms).",
    # ---- SSNN-BP (time unit: step)
    "batch_applied": "SSNN-BP, always: bool 0-d array, whether this step completed a minibatch and "
                     "applied the accumulated weight update.",
    "grad_pos_counts": "SSNN-BP, always: per layer (int32 (n_l,), layer 0 empty) spike count of each "
                       "neuron's positive gradient unit; signal = grad_pos_counts - grad_neg_counts.",
    "grad_neg_counts": "SSNN-BP, always: per layer (int32 (n_l,), layer 0 empty) spike count of each "
                       "neuron's negative gradient unit.",
    "grad_pos_t": "SSNN-BP, only with Record(spikes=True): per layer (float32, layer 0 empty) time steps "
                  "of the positive gradient-unit spikes.",
    "grad_pos_i": "SSNN-BP, only with Record(spikes=True): per layer (int32, layer 0 empty) neuron index "
                  "of each grad_pos_t spike.",
    "grad_neg_t": "SSNN-BP, only with Record(spikes=True): per layer (float32, layer 0 empty) time steps "
                  "of the negative gradient-unit spikes.",
    "grad_neg_i": "SSNN-BP, only with Record(spikes=True): per layer (int32, layer 0 empty) neuron index "
                  "of each grad_neg_t spike.",
    "target_t": "SSNN-BP, only with Record(spikes=True): float32 time steps of the spikes of the "
                "Bernoulli target train of the output layer.",
    "target_i": "SSNN-BP, only with Record(spikes=True): int32 output neuron index of each target_t spike.",
    "v_grad_pos": "SSNN-BP, always: float32 (n_rec, T) potential of each recorded neuron's positive "
                  "gradient unit (rows aligned with trace_ids, zeros for input entries, (0, T) if none).",
    "v_grad_neg": "SSNN-BP, always: float32 (n_rec, T) potential of the negative gradient unit, which "
                  "integrates the negated current (= -v_grad_pos).",
    "v_th_grad": "SSNN-BP, only when neurons are recorded: float32 0-d threshold of the gradient units, "
                 "drawn with v_grad_pos / v_grad_neg.",
}


@dataclass(frozen=True)
class Frame:
    """One training (or evaluation) step of one sample.

    Notes
    -----
    Potentials in ``v_trace`` are sampled **after leak and integration and
    before the threshold test and reset** of each time step.  A trace therefore
    shows the value that crossed the threshold (unlike a post-reset recording,
    which never reaches it); the reset is visible at the next step.

    Spike times are in the rule's own time unit (``time_unit``): integer steps
    for the discrete-time rules, milliseconds for event-driven ones.
    """

    #: Samples trained so far in this run (0-based index of this step).
    step: int
    #: Epoch this sample belongs to (0-based).
    epoch: int
    #: Index of the sample in the training set.
    index: int
    #: True class of the sample.
    label: int
    #: Predicted class, or -1 when the rule's decision rule gives none
    #: (Desire BP: the maximum output count is not unique).
    prediction: int
    #: Per-sample loss as defined by the rule (see ``loss_name``).
    loss: float
    #: Learning rate used for this step.
    lr: float
    #: Firing threshold used for this step (rule units).
    v_th: float
    #: Number of time steps (or the sample duration) of this step.
    duration: float
    #: Names of layers 0..L ("input", "hidden 1", ..., "output").
    layer_names: tuple[str, ...]
    #: Sizes of layers 0..L.
    layer_sizes: tuple[int, ...]
    #: Spike count per neuron, per layer 0..L (int32, unscaled by dropout).
    counts: tuple[np.ndarray, ...]
    #: Per-neuron learning signal per layer 0..L (float32; layer 0 empty).
    #: Its meaning is ``signal_name`` (e.g. ternary desire in {-1, 0, +1}).
    signal: tuple[np.ndarray, ...]
    #: Name of the learning signal shown in views ("desire", ...).
    signal_name: str
    #: The real value the rule thresholded into ``signal`` (per layer 0..L);
    #: Desire BP: the output error for layer L, the back-projected sum
    #: sigma_j = sum_i W_ji g_i for hidden layers.
    signal_raw: tuple[np.ndarray, ...]
    #: Frobenius norm of each weight layer's update (length L).
    dw_norm: tuple[float, ...]
    #: Target spike count per output neuron, where the rule has one.
    target: np.ndarray = field(default_factory=lambda: _EMPTY_F)
    #: Spike event times per layer 0..L (float32, ``time_unit``).
    spike_t: tuple[np.ndarray, ...] = ()
    #: Spike event neuron index per layer 0..L (int32).
    spike_i: tuple[np.ndarray, ...] = ()
    #: (layer, index) of each recorded neuron, shape (n_rec, 2).
    trace_ids: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int32))
    #: Potentials of the recorded neurons, shape (n_rec, n_steps), float32.
    v_trace: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    #: Input current (weighted input of the step) of recorded neurons, same shape.
    i_trace: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    #: Running training accuracy of the current epoch (fraction), filled by the Trainer.
    accuracy: float = float("nan")
    #: Test accuracy after the last completed epoch, filled by the Trainer.
    test_accuracy: float = float("nan")
    #: Time unit of spike times and traces.
    time_unit: str = "step"
    #: Name of the loss.
    loss_name: str = "loss"
    #: Rule-specific extra arrays, filled by each rule; keys and meaning: :data:`EXTRAS`.
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def correct(self) -> bool:
        """Whether the prediction equals the label."""
        return self.prediction == self.label

    @property
    def n_layers(self) -> int:
        """Number of layers including the input."""
        return len(self.layer_sizes)

    def replace(self, **changes) -> "Frame":
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def spikes(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """(times, neuron indices) of the spike events of ``layer``."""
        if not self.spike_t:
            return _EMPTY_F, _EMPTY_I
        return self.spike_t[layer], self.spike_i[layer]
