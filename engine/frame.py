"""The record of one training step: what every view draws and every test reads.

A :class:`Frame` holds plain NumPy arrays and scalars only: no UI types and no
reference back into the model, so a frame can cross a thread boundary, be kept
in a replay buffer, or be compared in a test without copying anything else.

Layer numbering is the same everywhere: layer 0 is the input (encoded spikes),
layers ``1..L`` are the neuron layers, layer ``L`` is the output.  Weight layer
``l`` (``1..L``) connects layer ``l-1`` to layer ``l``.
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
    #: Rule-specific extra arrays (documented by each rule).
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
