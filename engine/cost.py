"""A cost model of one training sample: the least work a rule's step must do, and its time.

For a network of dense layers, what one training sample needs is read off the
step's :class:`~spikewb.engine.frame.Frame` (spike counts and learning signal
per layer) and the rule's clock:

* **synaptic events**: every presynaptic spike reaches every neuron of the next
  layer, ``sum_l (spikes of layer l-1) * n_l``; one add each;
* **neuron updates**: ``T * sum_l n_l`` for clocked rules (a few operations
  each: leak, input, threshold, reset); event-driven rules update a neuron per
  event, already counted above;
* **weights read by the forward pass**: the weight rows of presynaptic neurons
  that spiked at least once, each read once, ``sum_l a_{l-1} * n_l``;
* **weights touched by the update**: an update of the form
  ``dW_ji = f(pre_j) g(post_i)`` changes at least the entries whose presynaptic
  neuron was active and whose learning signal is non-zero,
  ``sum_l a_{l-1} * nz_l``; each is read and written once (two operations).

The floor is the roofline bound ``max(bytes / bandwidth, operations / rate)``
with the bandwidth of a single-threaded copy of a large array and the rate of a
single-threaded float32 matrix product, both measured on this machine
(:func:`machine_rates`).  It is a lower bound for a step that streams its
weights from main memory; weights that stay in cache can beat the bandwidth
term, so a measured time near or below the floor means the step is limited by
arithmetic, not that the model is wrong.  Layers other than dense ones
(STiDi's convolutions) are not modelled: :func:`sample_cost` raises
:class:`~spikewb.engine.errors.ConfigError` for them.

>>> import numpy as np
>>> c = sample_cost(counts=(np.array([2, 0, 1]), np.array([1, 0]), np.array([0, 3])),
...                 signal=(np.zeros(0), np.array([1.0, 0.0]), np.array([-1.0, 1.0])),
...                 steps=4, itemsize=4)
>>> c.synaptic_events, c.neuron_updates, c.weights_read, c.weights_touched
(8, 16, 6, 4)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from spikewb.engine.errors import ConfigError

#: Operations per clocked neuron update (leak multiply, input add, threshold compare, reset).
OPS_PER_NEURON_UPDATE = 4


@dataclass(frozen=True)
class SampleCost:
    """The work of one training sample (see the module docstring)."""

    synaptic_events: int
    neuron_updates: int
    weights_read: int
    weights_touched: int
    itemsize: int

    @property
    def operations(self) -> int:
        """Arithmetic operations: an add per event, a few per neuron update, two per touched weight."""
        return self.synaptic_events + OPS_PER_NEURON_UPDATE * self.neuron_updates + 2 * self.weights_touched

    @property
    def bytes(self) -> int:
        """Weight bytes moved: rows read by the forward pass, touched entries read and written."""
        return self.itemsize * (self.weights_read + 2 * self.weights_touched)

    def floor_s(self, bandwidth: float, rate: float) -> float:
        """Seconds at ``bandwidth`` bytes/s and ``rate`` operations/s (roofline: the larger term)."""
        return max(self.bytes / bandwidth, self.operations / rate)

    def __add__(self, other: "SampleCost") -> "SampleCost":
        return SampleCost(self.synaptic_events + other.synaptic_events, self.neuron_updates + other.neuron_updates,
                          self.weights_read + other.weights_read, self.weights_touched + other.weights_touched,
                          max(self.itemsize, other.itemsize))


def sample_cost(counts: Sequence[np.ndarray], signal: Sequence[np.ndarray], steps: int,
                itemsize: int) -> SampleCost:
    """The work of one sample from its per-layer spike counts and learning signals.

    ``counts[l]`` and ``signal[l]`` are per neuron of layer ``l`` (layer 0 is the
    input; a signal of another length, e.g. per time step, counts every neuron
    of the layer as signalled); ``steps`` is the rule's clock steps per sample
    (0 for event-driven rules).
    """
    if len(counts) < 2:
        raise ConfigError("a cost needs at least an input and an output layer")
    sizes = [int(np.size(c)) for c in counts]
    events = updates = read = touched = 0
    for l in range(1, len(counts)):
        pre = np.asarray(counts[l - 1])
        n = sizes[l]
        active = int(np.count_nonzero(pre))
        events += int(pre.sum()) * n
        updates += int(steps) * n
        read += active * n
        sig = np.asarray(signal[l]) if l < len(signal) else np.zeros(0)
        nz = int(np.count_nonzero(sig)) if sig.size == n else n
        touched += active * nz
    return SampleCost(events, updates, read, touched, int(itemsize))


def frame_cost(rule, model, frame) -> SampleCost:
    """:func:`sample_cost` of one training step's Frame, for a rule of dense layers."""
    if getattr(rule, "arch_kind", "dense") != "dense":
        raise ConfigError(f"the cost model covers dense layers only, not {rule.describe_network(model)}")
    if len(frame.counts) != len(model.sizes):
        raise ConfigError("the Frame's layers do not match the model's")
    itemsize = model.weights[0].dtype.itemsize if model.weights else 4
    return sample_cost(frame.counts, frame.signal, rule.time_steps(), itemsize)


def machine_rates(megabytes: int = 128, repeats: int = 5) -> tuple[float, float]:
    """(bytes/s of a single-threaded array copy, float32 operations/s of a one-thread matrix product).

    The copy moves ``2 * megabytes`` (read and write) per repeat; the product
    is 512 x 512 x 512 (``2 n^3`` operations).  Best of ``repeats``.
    """
    n = megabytes * (1 << 20) // 4
    src = np.ones(n, np.float32)
    dst = np.empty_like(src)
    best_copy = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best_copy = min(best_copy, time.perf_counter() - t0)
    a = np.random.default_rng(0).random((512, 512), dtype=np.float32)
    best_mm = np.inf
    with threadpool_limits(limits=1, user_api="blas"):
        a @ a
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ a
            best_mm = min(best_mm, time.perf_counter() - t0)
    return 2 * src.nbytes / best_copy, 2 * 512 ** 3 / best_mm
