"""The spikewb command line, run as a real process."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SPIKEWB = [sys.executable, "-m", "spikewb.workbench.cli"]


def run(*args, cwd=None, timeout=300):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([*SPIKEWB, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


def test_train_resume_eval(tmp_path):
    out = tmp_path / "run"
    r = run("train", "--hidden", "30", "--epochs", "1", "--train-limit", "200", "--eval-limit", "100",
            "--out", str(out), "--no-progress", "-p", "lr=1e-4")
    assert r.returncode == 0, r.stderr
    assert "epoch 0: train" in r.stdout
    assert {p.name for p in out.iterdir()} == {"checkpoint.npz", "config.json", "metrics.csv", "metrics.json"}
    r = run("train", "--hidden", "30", "--epochs", "2", "--train-limit", "200", "--eval-limit", "100",
            "--out", str(out), "--no-progress", "--resume")
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stdout and "epoch 1: train" in r.stdout and "epoch 0:" not in r.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert [m["epoch"] for m in metrics] == [0, 1]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["rule_params"]["lr"] == 1e-4 and cfg["sizes"] == [784, 30, 10]
    r = run("eval", str(out / "checkpoint.npz"), "--limit", "100")
    assert r.returncode == 0, r.stderr
    assert "accuracy" in r.stdout


def test_train_stidi_conv_binary_and_resume(tmp_path):
    out = tmp_path / "conv"
    args = ("train", "--rule", "stidi", "--arch", "conv", "--binary", "--epochs", "1", "--train-limit", "40",
            "--eval-limit", "20", "--out", str(out), "--no-progress", "-p", "conv_maps=[4, 8]")
    r = run(*args)
    assert r.returncode == 0, r.stderr
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["rule_params"]["arch_kind"] == "conv" and cfg["rule_params"]["binary"] is True
    assert cfg["network"] == "784-c5x4-p2-c5x8-p2-10"        # the layers built, not arch.hidden
    r = run(*[a if a != "1" else "2" for a in args], "--resume")  # conv checkpoints reload
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stdout and "epoch 1: train" in r.stdout


def test_arch_flag_on_a_rule_without_it_is_a_usage_error(tmp_path):
    r = run("train", "--rule", "desire", "--arch", "conv", "--out", str(tmp_path / "x"), "--no-progress")
    assert r.returncode == 2
    assert "--arch does not apply to rule 'desire'" in r.stderr + r.stdout


@pytest.mark.parametrize("args,msg", [
    (["train", "--rule", "nope"], "unknown learning rule 'nope'; available rules: "),
    (["train", "-p", "v_th=-1"], "v_th"),
    (["train", "-p", "leak=2"], "leak"),
    (["train", "--hidden", "100,0"], "positive"),
    (["train", "--dataset", "/no/such/dir"], "unknown dataset"),
    (["train", "-p", "bogus=1"], "has no parameter"),
    (["eval", "/no/such/checkpoint.npz"], "checkpoint not found"),
])
def test_usage_errors_exit_2_with_one_message(args, msg):
    r = run(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert msg in r.stderr and "Traceback" not in r.stderr


def test_truncated_idx_dataset(tmp_path):
    (tmp_path / "images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x03" + b"\0\0\0\x64" + b"\0\0\0\x1c" * 2 + b"\0" * 50))
    (tmp_path / "labels-idx1-ubyte").write_bytes(b"\0\0\x08\x01\0\0\0\x64" + b"\0" * 100)
    r = run("train", "--dataset", str(tmp_path))
    assert r.returncode == 2 and "truncated" in r.stderr


def test_rules_and_datasets_listing():
    r = run("rules")
    assert r.returncode == 0 and "desire" in r.stdout and "alpha_hid" in r.stdout
    r = run("datasets")
    assert r.returncode == 0 and "mnist-5k" in r.stdout


def test_experiment_tau_sweep_writes_results(tmp_path):
    r = run("experiment", "tau-sweep", "--values", "5", "--train-limit", "60", "--eval-limit", "30",
            "--hidden", "12", "--dataset", "mnist-5k", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    rows = json.loads((tmp_path / "tau-sweep.json").read_text())
    assert {row["mode"] for row in rows} == {"multi", "single"} and all(row["tau_s"] == 5.0 for row in rows)
    assert (tmp_path / "tau-sweep.csv").exists() and "<html" in (tmp_path / "tau-sweep.html").read_text().lower()
    r = run("experiment", "nope")
    assert r.returncode == 2 and "available: tau-sweep" in r.stderr
