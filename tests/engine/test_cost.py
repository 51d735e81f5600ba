"""The cost model counts the work a step really does (synaptic events, touched weights)."""

from __future__ import annotations

import numpy as np
import pytest

from spikewb.engine.cost import machine_rates, sample_cost, frame_cost
from spikewb.engine.data.datasets import load_dataset
from spikewb.engine.errors import ConfigError
from spikewb.engine.frame import Record
from spikewb.engine.network import Architecture
from spikewb.engine.rules import make_rule
from spikewb.engine.training.trainer import Trainer


def test_hand_counted_two_layer_net():
    # 3 inputs spiking 2, 0, 1 times; 2 hidden (1 spike, none); 2 outputs; T = 5
    counts = (np.array([2, 0, 1]), np.array([1, 0]), np.array([0, 3]))
    signal = (np.zeros(0), np.array([0.0, -1.0]), np.array([1.0, 1.0]))
    c = sample_cost(counts, signal, steps=5, itemsize=8)
    assert c.synaptic_events == 3 * 2 + 1 * 2           # 3 input spikes x 2 hidden, 1 hidden spike x 2 outputs
    assert c.neuron_updates == 5 * (2 + 2)
    assert c.weights_read == 2 * 2 + 1 * 2               # rows of the active presynaptic neurons
    assert c.weights_touched == 2 * 1 + 1 * 2            # active pre x signalled post
    assert c.operations == 8 + 4 * 20 + 2 * 4
    assert c.bytes == 8 * (6 + 2 * 4)
    assert c.floor_s(bandwidth=8 * 14, rate=1e9) == pytest.approx(1.0)     # bandwidth-bound
    assert c.floor_s(bandwidth=1e12, rate=96) == pytest.approx(1.0)        # arithmetic-bound


@pytest.fixture(scope="module")
def desire_steps():
    data = load_dataset("fashion-5k")
    tr = Trainer(make_rule("desire", n_steps=10), data, Architecture(hidden=[40, 20]), seed=0)
    out = []
    for _ in range(8):
        before = [w.copy() for w in tr.model.weights]
        frame = tr.step(Record(spikes=True))
        out.append((tr, before, [w.copy() for w in tr.model.weights], frame))
    return out


def test_events_match_the_recorded_raster(desire_steps):
    for tr, _, _, frame in desire_steps:
        cost = frame_cost(tr.rule, tr.model, frame)
        sizes = tr.model.sizes
        # each recorded spike of layer l-1 reaches every neuron of layer l
        events = sum(len(frame.spike_t[l - 1]) * sizes[l] for l in range(1, len(sizes)))
        assert cost.synaptic_events == events
        assert cost.neuron_updates == 10 * sum(sizes[1:])


def test_every_changed_weight_is_counted_as_touched(desire_steps):
    """The update term is a floor: the step never changes more entries than the model counts."""
    changed_any = 0
    for tr, before, after, frame in desire_steps:
        cost = frame_cost(tr.rule, tr.model, frame)
        changed = sum(int(np.count_nonzero(a != b)) for a, b in zip(after, before))
        assert changed <= cost.weights_touched
        changed_any += changed
    assert changed_any > 0                                # the samples did learn


def test_conv_networks_are_not_modelled():
    data = load_dataset("fashion-5k")
    tr = Trainer(make_rule("stidi", arch_kind="conv", conv_maps=[2]), data, Architecture(hidden=[8]), seed=0)
    with pytest.raises(ConfigError, match="dense layers only"):
        frame_cost(tr.rule, tr.model, tr.step())


def test_machine_rates_are_plausible():
    bandwidth, rate = machine_rates(megabytes=16, repeats=2)
    assert 1e8 < bandwidth < 1e12 and 1e8 < rate < 1e13
