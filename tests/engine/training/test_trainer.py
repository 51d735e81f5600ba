"""Trainer: epochs, schedule, checkpoints (atomic, round trip, resume), bad input."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from spikewb.engine.training.checkpoint import load_checkpoint
from spikewb.engine.errors import CheckpointError, ConfigError, NumericalError
from spikewb.engine.network import Architecture
from spikewb.engine.rules import make_rule
from spikewb.engine.training.trainer import Trainer


@pytest.fixture
def trainer(tiny):
    return Trainer(make_rule("desire", lr=1e-4), tiny.subset(60, 40), Architecture(hidden=[20]), seed=3)


def test_epoch_bookkeeping_and_schedule(trainer):
    frames = []
    trainer.fit(2, callback=frames.append)
    assert len(frames) == 120 and [f.step for f in frames] == list(range(120))
    assert [f.epoch for f in frames[:60]] == [0] * 60 and frames[60].epoch == 1
    assert sorted(f.index for f in frames[:60]) == list(range(60))      # every sample once per epoch
    assert [f.index for f in frames[:60]] != [f.index for f in frames[60:]]  # reshuffled
    assert [h.epoch for h in trainer.history] == [0, 1]
    assert trainer.history[1].lr == pytest.approx(1e-4 * np.exp(-0.04))
    assert frames[-1].accuracy == pytest.approx(np.mean([f.correct for f in frames[60:]]))
    assert np.isnan(frames[0].test_accuracy) and frames[60].test_accuracy == trainer.history[0].test_accuracy


def test_constant_schedule(trainer):
    trainer.rule.lr_schedule = "constant"
    assert trainer.rule.learning_rate(10) == trainer.rule.lr


def test_checkpoint_round_trip_and_resume(trainer, tmp_path):
    trainer.fit(1)
    for _ in range(17):
        trainer.step()
    path = trainer.save(tmp_path / "c.npz")
    X = trainer.data.x_test.astype(np.float32) / 255
    restored = Trainer.from_checkpoint(path, data=trainer.data)
    np.testing.assert_array_equal(restored.rule.predict(restored.model, X), trainer.rule.predict(trainer.model, X))
    assert (restored.epoch, restored.position, restored.steps) == (1, 17, 77)
    assert restored.history[0].test_accuracy == trainer.history[0].test_accuracy
    # continuing both gives identical training (same order, same dropout masks)
    fa = [trainer.step() for _ in range(50)]
    fb = [restored.step() for _ in range(50)]
    assert [f.index for f in fa] == [f.index for f in fb]
    for a, b in zip(trainer.model.weights, restored.model.weights):
        np.testing.assert_array_equal(a, b)
    assert restored.epoch == 2


def test_checkpoint_refuses_other_architecture_and_rule(trainer, tmp_path, tiny):
    path = trainer.save(tmp_path / "c.npz")
    other = Trainer(make_rule("desire"), tiny, Architecture(hidden=[21]), seed=0)
    with pytest.raises(CheckpointError, match="784-20-10 differs from this network's 784-21-10"):
        other.load_state(path)


@pytest.mark.parametrize("content,msg", [(b"", "empty \\(0 bytes\\)"), (b"PK\x03\x04junk", "corrupt|unreadable"),
                                         (b"hello", "corrupt|unreadable")])
def test_corrupt_checkpoint(tmp_path, content, msg):
    p = tmp_path / "bad.npz"
    p.write_bytes(content)
    with pytest.raises(CheckpointError, match=msg):
        load_checkpoint(p)


def test_checkpoint_with_nan_refused(trainer, tmp_path):
    path = trainer.save(tmp_path / "c.npz")
    meta, weights, state = load_checkpoint(path)
    weights[0][0, 0] = np.nan
    from spikewb.engine.training.checkpoint import save_checkpoint
    save_checkpoint(tmp_path / "nan.npz", meta, weights, state)
    with pytest.raises(CheckpointError, match="not finite"):
        load_checkpoint(tmp_path / "nan.npz")


def test_failed_write_keeps_previous_checkpoint(trainer, tmp_path, monkeypatch):
    path = trainer.save(tmp_path / "c.npz")
    good = path.read_bytes()
    import spikewb.engine.training.checkpoint as ck

    def explode(fh, **arrays):
        fh.write(b"partial")
        raise OSError("disk full")
    monkeypatch.setattr(ck.np, "savez", explode)
    with pytest.raises(OSError):
        trainer.save(path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]       # no temp file left


def test_sigkill_during_write_leaves_previous_loadable(tmp_path):
    """A process killed while writing leaves the last complete checkpoint loadable."""
    script = textwrap.dedent(f"""
        import numpy as np, os, sys, time
        import spikewb.engine.training.checkpoint as ck
        from spikewb.engine.data.datasets import load_dataset
        from spikewb.engine.network import Architecture
        from spikewb.engine.rules import make_rule
        from spikewb.engine.training.trainer import Trainer
        tr = Trainer(make_rule("desire"), load_dataset("mnist-5k").subset(10, 5), Architecture(hidden=[2000]), seed=0)
        tr.save({str(tmp_path / 'c.npz')!r})
        real = np.savez
        def slow(fh, **arrays):
            fh.write(b"x" * 1000); fh.flush()
            print("writing", flush=True); time.sleep(60)
        ck.np.savez = slow
        tr.save({str(tmp_path / 'c.npz')!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    meta, weights, _ = load_checkpoint(tmp_path / "c.npz")
    assert weights[0].shape == (784, 2000) and meta["epoch"] == 0


def test_nan_weights_stop_with_clear_message(trainer):
    trainer.model.weights[0][:] = np.nan
    with pytest.raises(NumericalError, match="weight layer 1"):
        trainer.end_epoch()


def test_nan_during_training_is_caught_within_the_check_interval(tiny):
    from spikewb.engine.training.trainer import FINITE_CHECK_EVERY
    tr = Trainer(make_rule("desire"), tiny, Architecture(hidden=[20]), seed=0)
    tr.step()
    tr.model.weights[1][3, 4] = np.inf
    with pytest.raises(NumericalError, match="weight layer 2 .* 1 NaN/Inf"):
        for _ in range(FINITE_CHECK_EVERY):
            tr.step()


def test_silent_network_warns_once(tiny):
    tr = Trainer(make_rule("desire", v_th=100.0), tiny, Architecture(hidden=[10]), seed=0)
    for _ in range(210):
        tr.step()
    assert len(tr.warnings) == 1 and "silent" in tr.warnings[0]


@pytest.mark.parametrize("kwargs,match", [
    (dict(v_th=0.0), "v_th"), (dict(leak=1.5), "leak"), (dict(leak=0.0), "leak"),
    (dict(dropout_hid=1.0), "dropout_hid"), (dict(n_steps=0), "n_steps"),
])
def test_out_of_range_parameters(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        make_rule("desire", **kwargs)


def test_margin_must_be_below_steps(tiny):
    with pytest.raises(ConfigError, match="margin"):
        Trainer(make_rule("desire", n_steps=4, margin=4), tiny, Architecture(hidden=[5]))


def test_non_positive_layer_size():
    with pytest.raises(ConfigError, match="positive"):
        Architecture(hidden=[10, 0])
    with pytest.raises(ConfigError, match="positive"):
        Architecture.parse_hidden("10,-3")


@pytest.mark.parametrize("header", [
    "{'descr': '<f4', 'fortran_order': False, 'shape': (3,",        # EOF inside the dict: tokenize.TokenError
    "{'descr': '<f4', 'fortran_order': False, 'shape': '''(3,)}",   # unterminated string
    "[" * 3000,                                                      # nesting: RecursionError in the parser
])
def test_checkpoint_with_a_malformed_npy_header_is_a_checkpoint_error(trainer, tmp_path, header):
    """NumPy parses a .npy header as Python source and, for a broken one, lets tokenize errors
    (not ValueError) escape; the loader must still answer with a CheckpointError."""
    import zipfile

    good = trainer.save(tmp_path / "good.npz")
    body = header.encode("latin1")
    pad = 64 - (10 + len(body) + 1) % 64
    raw = b"\x93NUMPY\x01\x00" + (len(body) + pad + 1).to_bytes(2, "little") + body + b" " * pad + b"\n"
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for i, info in enumerate(src.infolist()):
            dst.writestr(info.filename, raw if i == 0 else src.read(info))
    with pytest.raises(CheckpointError, match="unreadable header"):
        load_checkpoint(bad)
