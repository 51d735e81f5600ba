"""Recordings: what is kept of a real run, the file round trip, hostile files, and ``spikewb train --record``."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from spikewb.engine.errors import ConfigError, SpikeWorkbenchError
from spikewb.engine.frame import Record
from spikewb.engine.network import Architecture
from spikewb.engine.recording import Recording, RecordingError, RecordingTrainer, trace_first
from spikewb.engine.rules import make_rule
from spikewb.engine.training.trainer import Trainer

TRACED = ((1, 0), (1, 5), (2, 3))
EVERY = 5


@pytest.fixture(scope="module")
def small():
    from spikewb.engine.data.datasets import load_dataset
    return load_dataset("mnist-5k").subset(n_train=60, n_test=20)


def _trainer(data, cls=Trainer, hidden=(20,), rule="desire"):
    return cls(make_rule(rule), data, Architecture(n_inputs=784, hidden=list(hidden), n_outputs=10), seed=3)


@pytest.fixture(scope="module")
def run(small):
    """Two epochs of Desire BP on 60 digits, every frame kept aside, every 5th recorded."""
    trainer = _trainer(small)
    rec = Recording(every=EVERY, record=Record(spikes=True, neurons=TRACED), info={"what": "test"})
    frames = []

    def callback(frame):
        frames.append(frame)
        rec(frame)

    trainer.fit(2, callback=callback, on_epoch=rec, record=rec.record)
    return trainer, rec, frames


@pytest.fixture
def saved(run, tmp_path):
    return run[1].save(tmp_path / "recording.npz")


# ------------------------------------------------------------------ contents

def test_keeps_every_nth_frame_with_its_numbers(run):
    trainer, rec, frames = run
    kept = [f for f in frames if f.step % EVERY == 0]
    assert len(frames) == 120 and len(rec) == len(kept) == 24
    assert rec.steps.tolist() == list(range(0, 120, EVERY))
    assert rec.layer_sizes == (784, 20, 10) and rec.layer_names == tuple(frames[0].layer_names)
    assert rec.signal_name == "desire" and rec.time_unit == "step"
    for name, attr in [("epochs", "epoch"), ("indices", "index"), ("labels", "label"),
                       ("predictions", "prediction"), ("loss", "loss"), ("accuracy", "accuracy"),
                       ("test_accuracy", "test_accuracy"), ("lr", "lr"), ("v_th", "v_th")]:
        np.testing.assert_array_equal(getattr(rec, name), [getattr(f, attr) for f in kept], err_msg=name)
    np.testing.assert_array_equal(rec.dw_norm, [f.dw_norm for f in kept])
    for k, f in enumerate(kept):
        for l in range(3):
            t, i = rec.spikes(l, k)
            np.testing.assert_array_equal(t, f.spike_t[l], err_msg=f"sample {k} layer {l}")
            np.testing.assert_array_equal(i, f.spike_i[l], err_msg=f"sample {k} layer {l}")
        for l in (1, 2):
            np.testing.assert_array_equal(rec.signal(l)[k], f.signal[l])
            np.testing.assert_array_equal(rec.signal_raw(l)[k], f.signal_raw[l])
        ids, t, v = rec.traces(k)
        assert ids.tolist() == [list(p) for p in TRACED]
        np.testing.assert_array_equal(v, f.v_trace)
        np.testing.assert_array_equal(t, np.arange(f.v_trace.shape[1]))   # one point per step
    assert sum(len(rec.spikes(0, k)[0]) for k in range(len(rec))) > 0     # the input did spike
    assert [h.as_dict() for h in rec.history] == [h.as_dict() for h in trainer.history]
    assert len(rec.history) == 2


def test_save_load_round_trip(run, saved):
    _, rec, _ = run
    back = Recording.load(saved)
    assert len(back) == len(rec) and back.every == EVERY and back.record == rec.record
    assert back.info == {"what": "test"} and back.layer_names == rec.layer_names
    assert back.signal_name == rec.signal_name and back.time_unit == rec.time_unit
    assert [h.as_dict() for h in back.history] == [h.as_dict() for h in rec.history]
    a, b = rec.arrays(), back.arrays()
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    for k in (0, 7, -1):
        for x, y in zip(rec.traces(k), back.traces(k)):
            np.testing.assert_array_equal(x, y)
    with np.load(saved, allow_pickle=False) as z:   # the documented layout, no pickles
        assert z["spike_off_1"].dtype == np.int64 and len(z["spike_off_1"]) == len(rec) + 1
        assert json.loads(str(z["meta"]))["format"] == 1


def test_a_loaded_recording_keeps_growing(run, saved, small):
    back = Recording.load(saved)
    trainer = _trainer(small)
    for _ in range(6):
        back.add(trainer.step(back.record).replace(step=200 + trainer.steps - 1))
    assert back.steps.tolist()[-2:] == [200, 205] and len(back) == 26


def test_empty_recording_round_trip(tmp_path):
    rec = Recording(every=3)
    back = Recording.load(rec.save(tmp_path / "empty.npz"))
    assert len(back) == 0 and back.every == 3 and back.layer_sizes == ()
    with pytest.raises(ConfigError, match="empty"):
        back.spikes(0)


def test_recording_trainer_records_only_the_due_steps_and_saves_with_the_checkpoint(small, tmp_path):
    trainer = _trainer(small, RecordingTrainer, hidden=(10,))
    trainer.recording = Recording(every=7, record=Record(spikes=True, neurons=trace_first(trainer.model.sizes, 2)))
    trainer.recording_path = tmp_path / "recording.npz"
    frames = []
    trainer.fit(1, callback=frames.append, checkpoint_dir=tmp_path)
    assert [f.step for f in frames if f.spike_t] == list(range(0, 60, 7))   # the others ran without a Record
    rec = trainer.recording
    assert rec.steps.tolist() == list(range(0, 60, 7)) and len(rec.history) == 1
    assert rec.traces()[0].tolist() == [[1, 0], [1, 1], [2, 0], [2, 1]]
    back = Recording.load(tmp_path / "recording.npz")
    assert back.steps.tolist() == rec.steps.tolist() and len(back.history) == 1
    # a caller's own Record still applies on every step (merged on the recorded ones)
    f = trainer.step(Record(spikes=False, neurons=((2, 9),)))
    assert f.trace_ids.tolist() == [[2, 9]] and not f.spike_t
    while not rec.wants(f.step):
        f = trainer.step(Record(spikes=False, neurons=((2, 9),)))
    assert f.trace_ids.tolist() == [[1, 0], [1, 1], [2, 0], [2, 1], [2, 9]] and f.spike_t


@pytest.mark.parametrize("rule", ["multispike", "normad"])
def test_event_driven_rules_keep_their_time_grid(small, rule):
    trainer = _trainer(small, rule=rule, hidden=(8,))
    rec = Recording(every=1, record=Record(spikes=True, neurons=((1, 0), (2, 1))))
    frames = [trainer.step(rec.record) for _ in range(2)]
    for f in frames:
        rec.add(f)
    _, t, v = rec.traces(-1)
    f = frames[-1]
    np.testing.assert_array_equal(v, f.v_trace)
    grid = f.extras.get("trace_t")
    expected = grid if grid is not None else np.arange(v.shape[1]) * (f.duration / v.shape[1])
    np.testing.assert_allclose(t, expected, rtol=1e-6, err_msg=rule)
    assert rec.time_unit == "ms"


def test_truncate_drops_what_lies_past_a_checkpoint(run, saved):
    back = Recording.load(saved)
    back.truncate(62, epochs=1)
    assert back.steps.tolist() == list(range(0, 62, EVERY)) and [h.epoch for h in back.history] == [0]
    assert back.signal(1).shape == (13, 20) and back.dw_norm.shape == (13, 2)
    np.testing.assert_array_equal(back.spikes(1, -1)[1], run[1].spikes(1, 12)[1])


def test_frames_of_another_network_and_bad_arguments_are_refused(run, saved, small):
    _, rec, frames = run
    other = _trainer(small, hidden=(12,)).step(Record(spikes=True))
    with pytest.raises(ConfigError, match="784-20-10"):
        Recording.load(saved).add(other)
    with pytest.raises(ConfigError, match="every"):
        Recording(every=0)
    with pytest.raises(ConfigError, match="Record"):
        Recording(record={"spikes": True})
    with pytest.raises(ConfigError, match="Frame"):
        rec.add("frame")
    with pytest.raises(ConfigError, match="sample"):
        rec.spikes(1, sample=len(rec))
    with pytest.raises(ConfigError, match="layer"):
        rec.signal(0)
    assert not Recording(every=EVERY).add(frames[1])       # step 1 is not due
    assert trace_first([784, 2, 10], 3) == ((1, 0), (1, 1), (2, 0), (2, 1), (2, 2))


# ------------------------------------------------------------------ hostile files

def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _npy(a, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def _write(path, members: dict[str, bytes], extra: list[tuple[str, bytes]] = ()):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, data in extra:
            zf.writestr(name, data)
    return path


def _huge_header() -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    return buf.getvalue() + b"\0" * 64


def _meta_with(path, **changes) -> bytes:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
    meta.update(changes)
    return _npy(np.array(json.dumps(meta)))


def _array_of(path, key):
    with np.load(path, allow_pickle=False) as z:
        return z[key]


HOSTILE = {
    "wrong dtype (float neuron indices)": lambda p: {"spike_i_1.npy": _npy(_array_of(p, "spike_i_1")
                                                                          .astype(np.float32))},
    "wrong dtype (text signal)": lambda p: {"signal_1.npy": _npy(_array_of(p, "signal_1").astype("U8"))},
    "wrong dtype (metadata numbers)": lambda p: {"meta.npy": _npy(np.arange(3))},
    "huge declared header": lambda p: {"v_trace.npy": _huge_header()},
    "object array": lambda p: {"loss.npy": _npy(np.array([{"x": 1}] * 3, dtype=object), allow_pickle=True)},
    "offsets past the end": lambda p: {"spike_off_1.npy": _npy(_array_of(p, "spike_off_1") + np.int64(10**6))},
    "offsets decreasing": lambda p: {"spike_off_2.npy": _npy(_array_of(p, "spike_off_2")[::-1].copy())},
    "negative offsets": lambda p: {"trace_off.npy": _npy(-_array_of(p, "trace_off"))},
    "huge unsigned offsets": lambda p: {"time_off.npy": _npy(_array_of(p, "time_off").astype(np.uint64)
                                                             + np.uint64(2**63))},
    "neuron index outside the layer": lambda p: {"spike_i_2.npy": _npy(_array_of(p, "spike_i_2") + 10)},
    "traced neuron outside the network": lambda p: {"trace_ids.npy": _npy(_array_of(p, "trace_ids") + 50)},
    "v_trace too short": lambda p: {"v_trace.npy": _npy(_array_of(p, "v_trace")[:-3])},
    "signal of the wrong width": lambda p: {"signal_1.npy": _npy(_array_of(p, "signal_1")[:, :5])},
    "column of the wrong length": lambda p: {"label.npy": _npy(_array_of(p, "label")[:-1])},
    "missing array": lambda p: {"dw_norm.npy": None},
    "metadata not JSON": lambda p: {"meta.npy": _npy(np.array("{not json"))},
    "metadata of another format": lambda p: {"meta.npy": _meta_with(p, format=99)},
    "metadata with bad layer sizes": lambda p: {"meta.npy": _meta_with(p, layer_sizes=[784, -20, 10])},
    "metadata with a huge sample count": lambda p: {"meta.npy": _meta_with(p, n_samples=10**15)},
    "metadata with bad history": lambda p: {"meta.npy": _meta_with(p, history=[{"epoch": "x"}])},
    "no metadata": lambda p: {"meta.npy": None},
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_members_give_a_recording_error(saved, tmp_path, case):
    members = _members(saved)
    for name, data in HOSTILE[case](saved).items():
        if data is None:
            members.pop(name)
        else:
            members[name] = data
    bad = _write(tmp_path / "bad.npz", members)
    with pytest.raises(RecordingError) as info:
        Recording.load(bad)
    assert "bad.npz" in str(info.value) and str(tmp_path) not in str(info.value)


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_hostile_files_give_a_recording_error(saved, tmp_path):
    data = saved.read_bytes()
    cases = {
        "missing.npz": None,
        "empty.npz": b"",
        "text.npz": b"this is not an archive\n" * 10,
        "truncated.npz": data[: len(data) // 2],
        "truncated_end.npz": data[:-40],
    }
    members = _members(saved)
    _write(tmp_path / "unknown.npz", members, [("evil.npy", _npy(np.zeros(3)))])
    _write(tmp_path / "duplicate.npz", members, [("loss.npy", members["loss.npy"])])
    for name, blob in cases.items():
        if blob is not None:
            (tmp_path / name).write_bytes(blob)
    for name in [*cases, "unknown.npz", "duplicate.npz"]:
        with pytest.raises(RecordingError):
            Recording.load(tmp_path / name)
    with pytest.raises(RecordingError, match="MB"):
        Recording.load(saved, max_bytes=1000)
    assert issubclass(RecordingError, SpikeWorkbenchError)


def test_random_corruption_gives_a_recording_error_or_a_valid_recording(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    rng = np.random.default_rng(7)
    bad = tmp_path / "flipped.npz"
    outcomes = {"error": 0, "loaded": 0}
    for _ in range(150):
        blob = bytearray(data)
        for pos in rng.integers(0, len(blob), size=int(rng.integers(1, 8))):
            blob[pos] = int(rng.integers(0, 256))
        bad.write_bytes(bytes(blob))
        try:
            rec = Recording.load(bad)
        except RecordingError:
            outcomes["error"] += 1
        else:
            outcomes["loaded"] += 1
            rec.arrays()      # whatever loaded is consistent enough to re-save
    assert outcomes["error"] > 0


# ------------------------------------------------------------------ command line

def _cli(*args, timeout=300):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "spikewb.workbench.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


TINY = ("train", "--hidden", "20", "--train-limit", "60", "--eval-limit", "20", "--no-progress")


def test_train_record_writes_and_resume_continues_a_recording(tmp_path):
    out = tmp_path / "run"
    r = _cli(*TINY, "--epochs", "1", "--record", "5", "--out", str(out))
    assert r.returncode == 0, r.stderr
    rec = Recording.load(out / "recording.npz")
    assert len(rec) == 12 and rec.steps.tolist() == list(range(0, 60, 5)) and len(rec.history) == 1
    assert rec.traces()[0].tolist() == [[1, 0], [1, 1], [1, 2], [2, 0], [2, 1], [2, 2]]
    assert sum(len(rec.spikes(0, k)[0]) for k in range(12)) > 0 and rec.signal(1).shape == (12, 20)
    assert rec.info["rule"] == "desire" and "recording.npz (12 samples)" in r.stdout
    r = _cli(*TINY, "--epochs", "2", "--record", "5", "--out", str(out), "--resume")
    assert r.returncode == 0, r.stderr
    rec = Recording.load(out / "recording.npz")
    assert rec.steps.tolist() == list(range(0, 120, 5)) and [h.epoch for h in rec.history] == [0, 1]
    r = _cli(*TINY, "--epochs", "3", "--record", "4", "--out", str(out), "--resume")
    assert r.returncode == 2 and "--record 5" in r.stderr


def test_resume_drops_recorded_samples_past_the_checkpoint(small, tmp_path):
    """A recording written after its checkpoint (killed in between) is cut back to the checkpoint."""
    out = tmp_path / "run"
    trainer = _trainer(small, RecordingTrainer)
    trainer.recording = Recording(every=5, record=Record(spikes=True, neurons=trace_first(trainer.model.sizes, 3)))
    for _ in range(23):
        trainer.step()
    trainer.save(out / "checkpoint.npz")        # checkpoint at step 23 (no recording_path: not written)
    for _ in range(10):
        trainer.step()
    trainer.recording.save(out / "recording.npz")   # recording up to step 32
    assert trainer.recording.steps.tolist()[-1] == 30
    r = _cli(*TINY, "--epochs", "1", "--record", "5", "--out", str(out), "--resume")
    assert r.returncode == 0, r.stderr
    assert "5 samples kept so far" in r.stdout
    rec = Recording.load(out / "recording.npz")
    assert rec.steps.tolist() == list(range(0, 60, 5)) and len(rec.history) == 1
