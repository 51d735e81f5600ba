"""``spikewb reproduce``: named paper settings, resumable runs, the generated results table.

The resume test runs the real command in a child process on a small slice of the
embedded data, kills it (SIGKILL, no chance to save) once the first epoch's
checkpoint is written, runs the same command again and checks that it continues
at the checkpoint's epoch: the epochs before the kill keep their metrics, the
run ends at the asked epoch, and ``result.json`` holds the last epoch's accuracy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from spikewb.engine.errors import ConfigError
from spikewb.engine.rules import make_rule, rule_class
from spikewb.engine.training import reproductions as rp

ROOT = Path(__file__).resolve().parents[3]
SMALL = ["--dataset", "mnist-5k", "--train-limit", "600", "--eval-limit", "200", "--no-progress"]


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "spikewb.workbench.cli", "reproduce", *args]


def _run(args, timeout=300):
    return subprocess.run(_cli(*args), cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_every_reproduction_names_a_buildable_setting():
    assert {"desire-fashion", "stidi-conv-fashion", "stidi-binary-fashion", "multispike-fashion-tau",
            "ssnn-fashion"} <= set(rp.REPRODUCTIONS)
    for r in rp.REPRODUCTIONS.values():
        params, hidden = rp.rule_setup(r.rule, r.preset, r.params, r.hidden)
        rule = make_rule(r.rule, **params)           # every parameter exists and is in bounds
        for key, value in params.items():
            assert getattr(rule, key) == value, (r.name, key)
        assert all(h > 0 for h in hidden) and r.epochs > 0
        assert r.published is None or 50 < r.published < 100
        assert r.source


def test_rule_setup_applies_preset_then_params_then_hidden():
    preset = rule_class("desire").presets["fashion-mnist"]
    params, hidden = rp.rule_setup("desire", "fashion-mnist")
    assert hidden == [1000, 100] and params["dropout_hid"] == preset["dropout_hid"] and "epochs" not in params
    params, hidden = rp.rule_setup("desire", "fashion-mnist", {"dropout_hid": 0.1}, [50])
    assert params["dropout_hid"] == 0.1 and params["dropout_in"] == preset["dropout_in"] and hidden == [50]
    assert rp.rule_setup("desire")[1] == list(rule_class("desire").default_hidden)
    with pytest.raises(ConfigError, match="no preset"):
        rp.rule_setup("desire", "imagenet")
    with pytest.raises(ConfigError, match="desire-fashion"):
        rp.get("desire-mnist")


def test_reproduce_resumes_after_a_kill_at_the_right_epoch(tmp_path):
    out = tmp_path / "run"
    args = ["desire-fashion", "--epochs", "3", "--out", str(out), *SMALL]
    child = subprocess.Popen(_cli(*args), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ckpt = out / "checkpoint.npz"
    try:
        t0 = time.monotonic()
        while not ckpt.exists():
            assert child.poll() is None, child.stdout.read()
            assert time.monotonic() - t0 < 240, "no checkpoint after 240 s"
            time.sleep(0.02)
        time.sleep(0.2)                         # let the atomic write finish (replace, then metrics)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    with np.load(ckpt, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
    killed_at = meta["epoch"]
    assert 1 <= killed_at < 3, killed_at
    before = {h["epoch"]: h for h in meta["history"]}

    done = _run(args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"resuming" in done.stdout and f"at epoch {killed_at}, sample 0" in done.stdout, done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert [m["epoch"] for m in metrics] == [0, 1, 2]
    for m in metrics:
        if m["epoch"] in before:
            assert m == before[m["epoch"]]   # epochs before the kill are not rerun
    result = json.loads((out / "result.json").read_text())
    assert result["epochs_run"] == 3 and result["test_accuracy"] == pytest.approx(100 * metrics[-1]["test_accuracy"])
    assert result["published"] == 87.56 and result["eval_samples"] == 200
    assert "--dataset mnist-5k" in result["command"] and "--epochs 3" in result["command"]
    assert "published 87.56 %" in done.stdout
    assert result["test_accuracy"] > 20.0         # 3 epochs of 600 digits: well above chance (10 %)

    again = _run(args)                            # nothing left to do: the same numbers
    assert again.returncode == 0 and json.loads((out / "result.json").read_text())["epochs_run"] == 3


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_saves_the_position_and_exits_130(tmp_path, sig):
    """The signal stops the loop between two steps; the checkpoint is a whole step's state."""
    out = tmp_path / "run"
    args = ["desire-fashion", "--epochs", "30", "--out", str(out), "--dataset", "mnist-5k", "--eval-limit", "200",
            "--no-progress"]                   # 30 x 4,000 samples: far longer than the 4 s before the signal
    # a terminal's Ctrl-C reaches a foreground job whose SIGINT is not ignored; pytest-xdist
    # workers ignore SIGINT, and a child would inherit that (spikewb keeps an ignored SIGINT ignored)
    child = subprocess.Popen(_cli(*args), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        t0 = time.monotonic()
        line = ""
        while "desire-fashion:" not in line:   # the start line: training begins right after it
            line = child.stdout.readline()
            assert line or child.poll() is None, "child ended before training"
            assert time.monotonic() - t0 < 240
        time.sleep(4.0)
        child.send_signal(sig)
        rest = child.communicate(timeout=60)[0]
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, rest
    assert "interrupted; progress saved" in rest and "run the same command to continue" in rest
    with np.load(out / "checkpoint.npz", allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
    # saved where it stopped, a whole number of steps in (4,000 per epoch); on a fast machine the
    # signal can land in an epoch's evaluation, and the run then stops at the next epoch's start
    assert 0 < meta["steps"] == meta["epoch"] * 4000 + meta["position"] and meta["epoch"] < 30, meta
    assert f"(epoch {meta['epoch']}, sample {meta['position']};" in rest, rest


def test_table_is_generated_from_the_stored_results(tmp_path):
    good = tmp_path / "a"
    good.mkdir()
    rp.write_result(good, {"name": "desire-fashion", "network": "784-1000-100-10", "dataset": "fashion-mnist",
                           "published": 87.56, "test_accuracy": 86.9, "best_test_accuracy": 87.01,
                           "epochs_run": 72, "epochs_paper": 600, "wall_s": 10080.0,
                           "command": "spikewb reproduce desire-fashion --epochs 72"})
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / rp.RESULT_FILE).write_text("{not json")
    lines = rp.table(tmp_path).splitlines()
    assert lines[2] == ("| desire-fashion (784-1000-100-10, fashion-mnist) | 87.56 % | 86.90 % / 87.01 % | "
                        "72 / 600 | 2.8 h | `spikewb reproduce desire-fashion --epochs 72` |")
    assert lines[3].startswith("| b | unreadable result.json")
    assert len(lines) == 4


def test_readme_has_the_generated_table_markers():
    text = (ROOT / "README.md").read_text()
    assert text.count(rp.README_START) == 1 and text.count(rp.README_END) == 1
    assert text.index(rp.README_START) < text.index(rp.README_END)


def _metrics(root, name, rows):
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / "metrics.json").write_text(rows if isinstance(rows, str) else json.dumps(rows))


def test_stored_curves_offer_known_names_only_and_read_bounded(tmp_path):
    good = [{"epoch": e, "test_accuracy": a, "samples": 60000} for e, a in enumerate((0.7, 0.8))]
    _metrics(tmp_path, "desire-fashion", good)
    _metrics(tmp_path, "<script>alert(1)</script>", good)      # a folder name from the disk: never offered
    _metrics(tmp_path, "ssnn-fashion", "[{\"epoch\": 0, \"samples\": \"many\", \"test_accuracy\": 0.5}]")
    _metrics(tmp_path, "stidi-conv-fashion", "{not json")
    _metrics(tmp_path, "stidi-binary-fashion", [{"epoch": 0, "test_accuracy": 7.0, "samples": 10}])
    (tmp_path / "multispike-fashion-tau").mkdir()
    (tmp_path / "multispike-fashion-tau" / "metrics.json").write_bytes(b" " * (rp.CURVE_MAX_BYTES + 1))
    assert rp.stored(tmp_path) == ["desire-fashion", "stidi-conv-fashion", "stidi-binary-fashion",
                                   "multispike-fashion-tau", "ssnn-fashion"]
    assert rp.stored_curve("desire-fashion", tmp_path) == {"samples": [60000.0, 120000.0], "test": [0.7, 0.8],
                                                          "epoch": [0, 1]}
    for name, message in (("ssnn-fashion", "need samples"), ("stidi-conv-fashion", "not valid JSON"),
                          ("stidi-binary-fashion", "out of range"), ("multispike-fashion-tau", "at most"),
                          ("<script>alert(1)</script>", "unknown reproduction")):
        with pytest.raises(ConfigError, match=message):
            rp.stored_curve(name, tmp_path)
    assert rp.stored(tmp_path / "missing") == []


def test_metrics_view_overlays_and_removes_a_reproduction(tmp_path, monkeypatch):
    from spikewb.workbench.views.metrics import NO_OVERLAY, MetricsView

    _metrics(tmp_path, "desire-fashion", [{"epoch": e, "test_accuracy": a, "samples": 60000}
                                          for e, a in enumerate((0.7, 0.8, 0.82))])
    monkeypatch.setenv("SPIKEWB_REPRODUCTIONS", str(tmp_path))
    view = MetricsView()
    assert view.overlay_select.options == [NO_OVERLAY, "desire-fashion"]
    view.overlay_select.value = "desire-fashion"
    assert view.overlay.data["step"].tolist() == [60000.0, 120000.0, 180000.0]
    assert view.acc.x_range.end >= 180000 and view.overlay_item.visible
    assert "last 82.00 %" in view.overlay_note.value
    view.clear()                                       # a reset keeps the overlay in range
    assert view.acc.x_range.end >= 180000
    view.overlay_select.value = NO_OVERLAY
    assert len(view.overlay.data["step"]) == 0 and not view.overlay_item.visible
