"""Spike-train tasks and their metrics (engine/training/tasks.py)."""

import math

import numpy as np
import pytest

from spikewb.engine.errors import ConfigError
from spikewb.engine.frame import Frame
from spikewb.engine.rules.normad import NormAD
from spikewb.engine.training.tasks import (RECORD_QUIET, SpikeTrains, TaskTrainer, converged_fraction, correlation,
                          correlation_times, mapping_task, max_timing_error, poisson_trains,
                          receptive_field_times, spikes_match, van_rossum_distance, van_rossum_times,
                          xor_task)


# --------------------------------------------------------------------------- SpikeTrains

def test_spike_trains_sorted_and_split_by_neuron():
    s = SpikeTrains.from_lists([[5.0, 1.0], [], [3.0, 1.0]], duration=10.0)
    assert s.t.tolist() == [1.0, 1.0, 3.0, 5.0]
    assert s.i.tolist() == [0, 2, 2, 0]
    assert s.to_lists() == [[1.0, 5.0], [], [1.0, 3.0]]
    assert s.counts().tolist() == [2, 0, 2]
    assert len(s) == 4


def test_raster_round_trip_on_the_grid():
    s = SpikeTrains.from_lists([[0.0, 2.3], [9.9]], duration=10.0)
    r = s.raster(0.1)
    assert r.shape == (100, 2) and r.dtype == np.uint8
    assert np.flatnonzero(r[:, 0]).tolist() == [0, 23] and np.flatnonzero(r[:, 1]).tolist() == [99]
    back = SpikeTrains.from_raster(r, 0.1)
    np.testing.assert_allclose(back.t, s.t, atol=1e-12)
    assert back.duration == pytest.approx(10.0)
    assert not r.flags.writeable  # cached, shared: read-only


def test_raster_drops_spikes_outside_the_window():
    s = SpikeTrains.from_lists([[-0.5 + 0.0, 10.2]], duration=20.0)
    assert s.raster(0.1, n_steps=50).sum() == 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(t=[1.0, 2.0], i=[0], n=1, duration=5.0), "differ in length"),
    (dict(t=[1.0], i=[3], n=2, duration=5.0), "0..1"),
    (dict(t=[np.nan], i=[0], n=1, duration=5.0), "finite"),
    (dict(t=[], i=[], n=1, duration=0.0), "positive"),
])
def test_spike_trains_reject_bad_input(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SpikeTrains(**kwargs)


# --------------------------------------------------------------------------- metrics

def test_correlation_closed_form_for_one_shifted_spike():
    # two Gaussians of width s, shifted by d: cosine similarity exp(-d^2 / (4 s^2))
    for d, s in [(0.0, 2.0), (1.0, 2.0), (2.0, 2.0), (3.0, 1.0)]:
        assert correlation_times([10.0], [10.0 + d], sigma=s) == pytest.approx(math.exp(-d * d / (4 * s * s)))


def test_correlation_matches_filtered_signals_on_a_fine_grid():
    rng = np.random.default_rng(3)
    grid = np.arange(-30.0, 230.0, 0.01)
    sigma = 2.0
    for _ in range(5):
        a = np.sort(rng.uniform(0, 200, rng.integers(1, 8)))
        b = np.sort(rng.uniform(0, 200, rng.integers(1, 8)))
        fa = np.exp(-((grid[:, None] - a) ** 2) / (2 * sigma ** 2)).sum(axis=1)
        fb = np.exp(-((grid[:, None] - b) ** 2) / (2 * sigma ** 2)).sum(axis=1)
        expected = fa @ fb / math.sqrt((fa @ fa) * (fb @ fb))
        assert correlation_times(a, b, sigma) == pytest.approx(expected, abs=1e-6)


def test_correlation_edge_cases_and_symmetry():
    assert correlation_times([], []) == 1.0
    assert correlation_times([], [3.0]) == 0.0
    assert correlation_times([3.0, 40.0], [4.0]) == pytest.approx(correlation_times([4.0], [3.0, 40.0]))
    a = SpikeTrains.from_lists([[10.0], []], 50.0)
    b = SpikeTrains.from_lists([[10.0], [5.0]], 50.0)
    assert correlation(a, b) == pytest.approx(0.5)  # neuron 0 perfect, neuron 1 silent vs one spike


def test_van_rossum_closed_form_matches_numerical_integral():
    rng = np.random.default_rng(5)
    tau, dt = 5.0, 0.001
    grid = np.arange(0.0, 300.0, dt)
    for _ in range(4):
        a = np.sort(rng.uniform(0, 200, rng.integers(0, 6)))
        b = np.sort(rng.uniform(0, 200, rng.integers(0, 6)))

        def f(ts):
            d = grid[:, None] - ts[None, :]
            return np.where(d >= 0, np.exp(-np.clip(d, 0, None) / tau), 0.0).sum(axis=1)

        numeric = math.sqrt(np.sum((f(a) - f(b)) ** 2) * dt / tau)
        assert van_rossum_times(a, b, tau) == pytest.approx(numeric, rel=2e-3, abs=2e-3)


def test_van_rossum_known_values():
    assert van_rossum_times([], [7.0]) == pytest.approx(math.sqrt(0.5))
    # two spikes d apart: D^2 = 1 - exp(-d / tau)
    assert van_rossum_times([10.0], [12.0], 5.0) == pytest.approx(math.sqrt(1 - math.exp(-0.4)))
    a = SpikeTrains.from_lists([[1.0], [2.0]], 10.0)
    b = SpikeTrains.from_lists([[], []], 10.0)
    assert van_rossum_distance(a, b) == pytest.approx(1.0)  # sqrt(1/2 + 1/2)


def test_timing_match():
    assert max_timing_error([10.4, 20.0], [10.0, 21.0]) == pytest.approx(1.0)
    assert max_timing_error([10.0], []) == math.inf
    d = SpikeTrains.from_lists([[10.0, 20.0]], 40.0)
    assert spikes_match(SpikeTrains.from_lists([[10.9, 19.1]], 40.0), d, tol=1.0)
    assert not spikes_match(SpikeTrains.from_lists([[11.2, 20.0]], 40.0), d, tol=1.0)
    assert not spikes_match(SpikeTrains.from_lists([[10.0, 20.0, 30.0]], 40.0), d, tol=1.0)
    assert converged_fraction([True, True, False, True]) == 0.75
    assert math.isnan(converged_fraction([]))


# --------------------------------------------------------------------------- tasks

def test_receptive_fields_mirror_for_zero_and_one():
    zero = receptive_field_times(0.0, 4, 10.0)
    one = receptive_field_times(1.0, 4, 10.0)
    np.testing.assert_array_equal(np.isnan(zero), np.isnan(one[::-1]))
    np.testing.assert_allclose(zero[~np.isnan(zero)], one[::-1][~np.isnan(one[::-1])])
    # sigma = 1 / (1.5 * 3); field at distance 1/3 answers exp(-1.125): t = 10 (1 - 0.3247) ms
    assert zero[0] == 0.0 and zero[1] == pytest.approx(10 * (1 - math.exp(-1.125)))


@pytest.mark.parametrize("encoding", ["pattern", "population", "latency"])
def test_xor_task_layout(encoding):
    t = xor_task(encoding=encoding)
    assert t.n_patterns == 4 and t.labels.tolist() == [0, 1, 1, 0]
    assert t.n_outputs == 1 and t.architecture().sizes == (t.n_inputs, 40, 1)
    # the reference input (last neuron or group) is the same in every pattern
    n_ref = 10 if encoding == "pattern" else 1
    ref = [[x.neuron(k).tolist() for k in range(t.n_inputs - n_ref, t.n_inputs)] for x in t.inputs]
    assert all(r == ref[0] for r in ref) and any(ref[0])
    if encoding != "pattern":
        assert ref[0] == [[0.0]]
    # each logical input's code depends only on its own bit: (0,0) and (0,1) share input A
    half = (t.n_inputs - n_ref) // 2
    a = lambda x: [x.neuron(k).tolist() for k in range(half)]  # noqa: E731
    assert a(t.inputs[0]) == a(t.inputs[1]) and a(t.inputs[2]) == a(t.inputs[3]) != a(t.inputs[0])
    # distinct inputs, and equal targets exactly when labels agree
    assert len({tuple(x.t.round(6)) + tuple(x.i) for x in t.inputs}) == 4
    for p in range(4):
        for q in range(4):
            same = np.array_equal(t.targets[p].t, t.targets[q].t)
            assert same == (t.labels[p] == t.labels[q])
    if encoding == "latency":
        assert t.inputs[3].neuron(0).tolist() == [6.0] and t.inputs[0].neuron(0).tolist() == [0.0]


def test_xor_patterns_follow_the_seed():
    a, b, c = xor_task(seed=1), xor_task(seed=1), xor_task(seed=2)
    np.testing.assert_array_equal(a.inputs[3].t, b.inputs[3].t)
    assert not np.array_equal(a.inputs[3].t, c.inputs[3].t)
    # frozen 40 Hz patterns over 50 ms on 10 neurons: about 20 spikes per group
    assert 5 <= len(a.inputs[0]) / 3 <= 40


def test_xor_task_rejects_bad_setup():
    with pytest.raises(ConfigError, match="encoding"):
        xor_task(encoding="rate")
    with pytest.raises(ConfigError, match="must differ"):
        xor_task(encoding="latency", t_zero=3.0, t_one=3.0)
    with pytest.raises(ConfigError, match=r"\[0, 30"):
        xor_task(target_true=(35.0,), duration=30.0)


def test_classify_picks_the_nearest_target():
    t = xor_task()
    assert t.classify(t.targets[1]) == 1 and t.classify(t.targets[0]) == 0
    late = SpikeTrains.from_lists([[t.targets[1].t[0] + 0.5]], t.duration)
    assert t.classify(late) == 1


def test_poisson_rate_and_dead_time():
    rng = np.random.default_rng(0)
    s = poisson_trains(rng, 200, 20.0, 1000.0)
    assert len(s) / 200 == pytest.approx(20.0, rel=0.05)
    d = poisson_trains(rng, 50, 100.0, 500.0, refractory=5.0)
    for k in range(50):
        assert np.all(np.diff(d.neuron(k)) >= 5.0)


def test_teacher_targets_are_reachable_exactly():
    rule = NormAD()
    task = mapping_task(seed=2, n_inputs=30, hidden=(10, 10), duration=100.0, input_rate=30.0, rule=rule)
    teacher = rule.build(task.architecture(), np.random.default_rng(0))
    teacher.weights = [w.copy() for w in task.meta["teacher"]]
    out = rule.respond(teacher, task.inputs[0])[-1]
    np.testing.assert_allclose(out.t, task.targets[0].t)
    assert len(out) >= 3
    assert van_rossum_distance(out, task.targets[0]) == 0.0


def test_mapping_task_is_deterministic_and_poisson_option():
    a = mapping_task(seed=4, n_inputs=20, hidden=(8,), duration=80.0, input_rate=40.0, min_target_spikes=1)
    b = mapping_task(seed=4, n_inputs=20, hidden=(8,), duration=80.0, input_rate=40.0, min_target_spikes=1)
    np.testing.assert_array_equal(a.inputs[0].t, b.inputs[0].t)
    np.testing.assert_array_equal(a.targets[0].t, b.targets[0].t)
    p = mapping_task(seed=4, n_inputs=20, hidden=(8,), targets="poisson", n_patterns=3, n_outputs=2)
    assert p.n_patterns == 3 and p.n_outputs == 2 and "teacher" not in p.meta
    with pytest.raises(ConfigError, match="teacher"):
        mapping_task(seed=0, targets="oracle")


# --------------------------------------------------------------------------- trainer

def test_task_trainer_frames_and_epochs():
    task = xor_task()
    tr = TaskTrainer(NormAD(), task, seed=3)
    frames = [tr.step() for _ in range(4)]
    assert all(isinstance(f, Frame) for f in frames)
    assert sorted(f.index for f in frames) == [0, 1, 2, 3]
    assert [f.label for f in frames] == [int(task.labels[f.index]) for f in frames]
    assert len(tr.history) == 1 and tr.epoch == 1
    f = frames[0]
    assert f.time_unit == "ms" and f.trace_ids.tolist() == [[2, 0]]
    assert f.v_trace.shape == (1, int(round(task.duration / 0.1)))
    assert f.prediction in (0, 1) and 0.0 <= f.accuracy <= 1.0
    assert 0.0 <= float(f.extras["correlation"]) <= 1.0
    ep = tr.history[0]
    assert ep.matched.shape == (4,) and ep.correlations.shape == (4,) and ep.epoch == 0


def test_task_trainer_is_deterministic_and_quiet_path_agrees():
    task = xor_task()
    a = TaskTrainer(NormAD(), task, seed=7)
    b = TaskTrainer(NormAD(), task, seed=7)
    for _ in range(3):
        a.run_epoch(record=RECORD_QUIET)      # no Frames
        b.run_epoch(callback=lambda f: None)  # with Frames
    for wa, wb in zip(a.model.weights, b.model.weights):
        np.testing.assert_array_equal(wa, wb)
    assert [h.correlation for h in a.history] == [h.correlation for h in b.history]


def test_fit_rejects_zero_epochs():
    with pytest.raises(ConfigError, match="epochs"):
        TaskTrainer(NormAD(), xor_task()).fit(0)
