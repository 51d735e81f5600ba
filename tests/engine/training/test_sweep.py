"""Sweeps on Dask: real worker processes, resumability, failure isolation, external scheduler."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spikewb.engine.training.sweep import collect, expand, parse_grid, run_sweep

BASE = {"rule": "desire", "dataset": "mnist-5k", "epochs": 2, "seed": 0, "hidden": [16],
        "train_limit": 150, "eval_limit": 60}


def test_parse_and_expand():
    g = parse_grid("lr=1e-5,3e-5 hidden=400,1000/100")
    assert g == {"lr": [1e-5, 3e-5], "hidden": [[400], [1000, 100]]}
    combos = expand(g, {"rule": "desire"})
    assert len(combos) == 4 and combos[3] == {"rule": "desire", "lr": 3e-5, "hidden": [1000, 100]}


def test_local_cluster_sweep_resume_and_failure(tmp_path):
    combos = expand({"lr": [1e-5, 1e-4, -1.0], "hidden": [[16]]}, BASE) + [dict(BASE, lr=3e-5)]
    results = run_sweep(combos, tmp_path, n_workers=2, progress=False)
    by_status = {}
    for r in results:
        by_status.setdefault(r["status"], []).append(r)
    assert len(by_status["done"]) == 3 and len(by_status["failed"]) == 1
    assert "lr" in by_status["failed"][0]["error"]                     # the bad value is named
    runs = collect(tmp_path)
    assert len(runs) == 4
    for r in runs:
        if r["status"]["status"] == "done":
            assert [m["epoch"] for m in r["metrics"]] == [0, 1]
            assert (Path(r["dir"]) / "checkpoint.npz").exists()
            assert 0.0 <= r["metrics"][-1]["test_accuracy"] <= 1.0
    # the same sweep again skips the finished runs and retries only the failed one
    mtimes = {r["run"]: (Path(r["dir"]) / "status.json").stat().st_mtime for r in runs}
    again = run_sweep(combos, tmp_path, n_workers=1, progress=False)
    assert sorted(r["status"] for r in again) == ["done", "done", "done", "failed"]
    for r in collect(tmp_path):
        if r["status"]["status"] == "done":
            assert (Path(r["dir"]) / "status.json").stat().st_mtime == mtimes[r["run"]]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sweep_on_a_separately_started_scheduler(tmp_path):
    bindir = Path(sys.executable).parent
    dask = shutil.which("dask", path=str(bindir)) or str(bindir / "dask")
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    sched = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                              "--dashboard-address", ":0"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([dask, "worker", addr, "--nthreads", "1", "--no-dashboard"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from distributed import Client
        deadline = time.time() + 60
        while True:
            try:
                with Client(addr, timeout="3s") as c:
                    if c.scheduler_info()["workers"]:
                        break
            except OSError:
                pass
            assert time.time() < deadline, "scheduler/worker did not come up"
            time.sleep(0.5)
        combos = expand({"lr": [1e-5, 1e-4]}, dict(BASE, epochs=1))
        results = run_sweep(combos, tmp_path, scheduler=addr, progress=False)
        assert [r["status"] for r in results] == ["done", "done"]
        pids = {json.loads((Path(r["run_dir"]) / "status.json").read_text())["status"] for r in results}
        assert pids == {"done"}
    finally:
        for p in (worker, sched):
            p.terminate()
        for p in (worker, sched):
            p.wait(timeout=30)


def test_cli_sweep_and_report(tmp_path):
    r = subprocess.run([sys.executable, "-m", "spikewb.workbench.cli", "sweep", "--grid", "lr=1e-5,1e-4",
                        "--hidden", "12", "--epochs", "1", "--train-limit", "100", "--eval-limit", "50",
                        "--workers", "2", "--out", str(tmp_path), "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    html = (tmp_path / "report.html").read_text()
    assert "Test accuracy per epoch" in html and "lr=1e-05" in html
    r = subprocess.run([sys.executable, "-m", "spikewb.workbench.cli", "sweep", "--grid", "bogus=1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no parameter" in r.stderr
