"""TrainingSession without a browser: play / pause / step / reset, live parameters,
frame counting, errors, checkpoints and thread shutdown."""

from __future__ import annotations

import gzip
import struct
import threading
import time

import numpy as np
import pytest

from spikewb.engine.data.datasets import load_dataset
from spikewb.engine.errors import CheckpointError, ConfigError, DataError
from spikewb.workbench.sessions.session import TrainingSession, dataset_from_idx, parse_traced


def wait_until(cond, timeout=10.0, interval=0.01, msg="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {msg}")


@pytest.fixture(scope="module")
def small_data():
    return load_dataset("mnist-5k").subset(n_train=60, n_test=20)


@pytest.fixture
def session(small_data):
    s = TrainingSession(dataset=small_data, hidden=[32])
    yield s
    assert s.close(), "worker thread did not stop within 2 s"


# --------------------------------------------------------------------------- step / play / pause

def test_step_trains_exactly_one_sample_and_publishes_it(session):
    frame = session.step().result(timeout=30)
    assert frame.step == 0
    assert session.samples == 1
    assert session.frames_produced == 1
    assert frame.spike_t, "a stepped sample is recorded in full (spikes)"
    assert frame.v_trace.shape == (len(session.traced), int(session.rule.n_steps))
    snap = session.take()
    assert snap is not None and snap.frame is frame and snap.samples == 1
    assert session.take() is None, "a snapshot is taken only once"
    assert session.frames_shown == 1
    frame2 = session.step().result(timeout=10)
    assert frame2.step == 1 and session.samples == 2 and session.frames_produced == 2
    assert not session.running


def test_play_trains_and_pause_stops_the_counter(session):
    session.play()
    assert session.running
    wait_until(lambda: session.samples >= 20, msg="20 samples while playing")
    session.pause()
    session.sync()
    n = session.samples
    assert not session.running
    time.sleep(0.3)
    session.sync()
    assert session.samples == n, "samples kept increasing after pause"


def test_step_while_running_pauses_first(session):
    session.play()
    wait_until(lambda: session.samples >= 5)
    frame = session.step().result(timeout=10)
    session.sync()
    assert not session.running
    assert session.samples == frame.step + 1


def test_reset_gives_fresh_weights_and_clears_counters(session):
    w0 = session.trainer.model.weights[0].copy()
    session.play()
    wait_until(lambda: session.samples >= 10)
    gen = session.generation
    session.reset().result(timeout=10)
    assert not session.running
    assert session.samples == 0
    assert session.generation == gen + 1
    assert session.latest is None
    np.testing.assert_array_equal(session.trainer.model.weights[0], w0,
                                  err_msg="reset must rebuild the same initial weights from the seed")
    assert session.step().result(timeout=10).step == 0


# --------------------------------------------------------------------------- live parameters

def test_live_parameter_reaches_the_next_frame(session):
    session.step().result(timeout=10)
    session.apply(v_th=0.5).result(timeout=5)
    assert session.rule.v_th == 0.5
    assert session.step().result(timeout=10).v_th == 0.5


def test_changes_are_applied_atomically_between_samples(session):
    seen = []
    step = session.trainer.step

    def recording_step(record=None):
        seen.append((session.rule.v_th, session.rule.lr))
        return step(record)

    session.trainer.step = recording_step
    session.play()
    wait_until(lambda: len(seen) >= 5)
    fut = session.apply(v_th=0.6, lr=2e-5)
    fut.result(timeout=5)
    wait_until(lambda: seen[-1] == (0.6, 2e-5), msg="new values in use")
    session.pause()
    session.sync()
    assert set(seen) <= {(1.0, 1e-5), (0.6, 2e-5)}, f"a sample saw a half-applied change: {set(seen)}"


def test_out_of_range_value_is_refused_at_once(session):
    with pytest.raises(ConfigError, match="v_th"):
        session.apply(v_th=-1.0)
    with pytest.raises(ConfigError, match="no_such"):
        session.apply(no_such=1)
    with pytest.raises(ConfigError, match="seed"):
        session.apply(seed=-3)
    with pytest.raises(ConfigError):
        session.apply(hidden="10, x")
    session.sync()
    assert session.rule.v_th == 1.0


def test_a_refused_combination_never_reaches_the_worker(small_data, monkeypatch):
    """Constraints between a rule's parameters are checked once, in apply(), on one candidate rule."""
    from spikewb.engine.rules.multispike import MultiSpikeBP
    s = TrainingSession(rule="multispike", dataset=small_data, hidden=[8])
    built = []
    original = MultiSpikeBP.__init__

    def counting(self, **params):
        built.append(params)
        original(self, **params)

    try:
        monkeypatch.setattr(MultiSpikeBP, "__init__", counting)
        with pytest.raises(ConfigError, match="window_k"):           # tau_m / tau_s too far apart
            s.apply(tau_s=0.05, tau_m=1000.0)
        assert len(built) == 1                                        # one candidate, not one per check
        s.sync()
        assert (s.rule.tau_s, s.rule.tau_m) == (5.0, 10.0)            # nothing applied
        built.clear()
        s.apply(tau_s=4.0, tau_m=8.0)
        assert len(built) == 1
        s.sync()
        assert (s.rule.tau_s, s.rule.tau_m) == (4.0, 8.0)
    finally:
        monkeypatch.undo()
        assert s.close()


def test_structural_change_rebuilds_the_network(session):
    assert session.is_structural(hidden=[16])
    assert not session.is_structural(v_th=0.3, lr=1e-4)
    assert session.is_structural(dtype="float64")
    session.step().result(timeout=10)
    gen = session.generation
    msg = session.apply(hidden=[16], v_th=0.8).result(timeout=10)
    assert "rebuilt" in msg
    assert session.network == "784-16-10"
    assert session.hidden == [16]
    assert session.generation == gen + 1
    assert session.samples == 0
    assert session.rule.v_th == 0.8
    assert session.step().result(timeout=10).layer_sizes == (784, 16, 10)


def test_traced_neurons_change_live(session):
    session.apply(traced=[(1, 3), (2, 1)]).result(timeout=5)
    frame = session.step().result(timeout=10)
    assert frame.trace_ids.tolist() == [[1, 3], [2, 1]]
    with pytest.raises(ConfigError):
        session.apply(traced=[(1, 0)] * 5)
    assert parse_traced("1:0, 2:7") == [(1, 0), (2, 7)]
    with pytest.raises(ConfigError):
        parse_traced("1-0")


# --------------------------------------------------------------------------- frame counting

def test_frames_are_published_at_the_publish_rate_only(session):
    session.publish_interval = 0.0
    session.play()
    wait_until(lambda: session.samples >= 10)
    session.pause()
    session.sync()
    assert session.frames_produced == session.samples, "interval 0 publishes every sample"
    session.reset().result(timeout=10)
    before = session.frames_produced
    session.publish_interval = 10.0
    session.play()
    wait_until(lambda: session.samples >= 30)
    session.pause()
    session.sync()
    assert session.frames_produced - before <= 1, "only the first sample of a long interval is recorded in full"
    assert session.frames_shown == 0


def test_speed_limits_the_training_rate(session):
    session.speed = 20.0
    session.play()
    time.sleep(1.0)
    session.pause()
    session.sync()
    assert 10 <= session.samples <= 30, f"{session.samples} samples in 1 s at 20 samples/s"


def test_commands_do_not_add_steps_beyond_the_speed(session):
    """A command wakes the worker; it must not train a sample that is not due yet."""
    session.speed = 10.0
    session.play()
    t0 = time.perf_counter()
    n_commands = 0
    while time.perf_counter() - t0 < 1.0:
        session.sync()
        n_commands += 1
    session.pause()
    session.sync()
    assert n_commands > 30, "the loop should have queued many commands"
    assert 5 <= session.samples <= 15, f"{session.samples} samples in 1 s at 10 samples/s with {n_commands} commands"


def test_an_epoch_logs_metrics(session):
    session.play()
    wait_until(lambda: session.trainer.history, timeout=30, msg="one epoch")
    session.pause()
    session.sync()
    csv = session.metrics_csv()
    lines = csv.strip().splitlines()
    assert lines[0] == "kind,step,epoch,train_accuracy,test_accuracy,loss,lr,seconds"
    assert any(line.startswith("epoch,60,0,") for line in lines), csv


# --------------------------------------------------------------------------- errors

def test_training_error_stops_cleanly_and_reset_recovers(session):
    def boom(record=None):
        raise FloatingPointError("weights exploded")

    session.trainer.step = boom
    session.play()
    wait_until(lambda: session.error, msg="error slot")
    assert "weights exploded" in session.error
    assert not session.running
    assert session.alive, "the worker thread survives a training error"
    with pytest.raises(RuntimeError, match="reset"):
        session.play()
    del session.trainer.step  # back to the class method
    session.reset().result(timeout=10)
    assert session.error == ""
    session.play()
    wait_until(lambda: session.samples >= 3)


def test_failed_command_reports_through_its_future(session):
    fut = session.call(lambda s: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        fut.result(timeout=5)
    assert session.error == "", "a failed command is not a training error"
    assert session.step().result(timeout=10).step == 0


# --------------------------------------------------------------------------- checkpoints and data

def test_checkpoint_round_trip(session):
    for _ in range(3):
        session.step().result(timeout=10)
    data = session.checkpoint_bytes().result(timeout=10)
    w = session.trainer.model.weights[0].copy()
    session.reset().result(timeout=10)
    msg = session.load_checkpoint(data).result(timeout=10)
    assert "loaded" in msg
    assert session.samples == 3
    np.testing.assert_array_equal(session.trainer.model.weights[0], w)
    with pytest.raises(CheckpointError):
        session.load_checkpoint(b"not a checkpoint")


def _idx(array: np.ndarray, code: int) -> bytes:
    head = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + array.tobytes()


def test_dataset_from_uploaded_idx():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (50, 4, 4), dtype=np.uint8)
    y = rng.integers(0, 3, 50).astype(np.uint8)
    data = dataset_from_idx({"imgs-images-idx3-ubyte.gz": gzip.compress(_idx(x, 0x08)),
                             "labels-idx1-ubyte": _idx(y, 0x08)})
    assert data.n_features == 16 and data.n_classes == int(y.max()) + 1
    assert len(data.y_train) + len(data.y_test) == 50
    with pytest.raises(DataError, match="IDX"):
        dataset_from_idx({"junk.bin": b"hello world"})
    with pytest.raises(DataError, match="labels"):
        dataset_from_idx({"images": _idx(x, 0x08)})
    with pytest.raises(DataError):
        dataset_from_idx({"images": _idx(x, 0x08), "labels": _idx(y[:10], 0x08)})


def test_uploaded_dataset_trains(session):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 255, (40, 5, 5), dtype=np.uint8)
    y = rng.integers(0, 4, 40).astype(np.uint8)
    name = session.add_dataset(dataset_from_idx({"a-images": _idx(x, 0x08), "a-labels": _idx(y, 0x08)}))
    assert name in session.datasets()
    session.apply(dataset=name).result(timeout=10)
    assert session.network == f"25-32-{int(y.max()) + 1}"
    assert session.step().result(timeout=10).layer_sizes[0] == 25


# --------------------------------------------------------------------------- shutdown

def test_close_joins_the_worker_while_training(small_data):
    s = TrainingSession(dataset=small_data, hidden=[32])
    s.play()
    wait_until(lambda: s.samples >= 5)
    t0 = time.monotonic()
    assert s.close(timeout=2.0)
    assert time.monotonic() - t0 < 2.0
    assert not s.alive
    assert not any(t.name.startswith(f"spikewb-session-{id(s):x}") for t in threading.enumerate())
    with pytest.raises(RuntimeError, match="closed"):
        s.apply(v_th=0.5).result(timeout=1)
