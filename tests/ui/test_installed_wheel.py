"""The distribution as a user gets it: a wheel installed into a fresh virtual environment
outside the checkout, serving and training there.

Slow (a fresh environment installs the dependencies, from the pip cache when it is
warm): about 1-3 minutes.  Everything runs with the checkout out of reach (working
folder and ``PYTHONPATH`` elsewhere), so a file the wheel forgot fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from .conftest import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.ui]


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PYTHONNOUSERSITE="1", BOKEH_BROWSER="none", PYTHONUNBUFFERED="1", SPIKEWB_RUNS=str(home / "runs"))
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin folder, a working folder outside the checkout)."""
    base = tmp_path_factory.mktemp("wheel")
    dist, venv, home = base / "dist", base / "venv", base / "home"
    home.mkdir()
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    inst = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile", str(wheels[0])],
                          capture_output=True, text=True, timeout=900, cwd=home, env=_env(home))
    assert inst.returncode == 0, inst.stdout + inst.stderr
    return venv / "bin", home, wheels[0]


def test_wheel_carries_one_namespace_and_the_app_files(installed):
    import zipfile
    _, _, wheel = installed
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"spikewb"}, tops                                # no generic top-level names
    for needed in ("spikewb/apps/trainer.py", "spikewb/assets/thumbnails/trainer.png",
                   "spikewb/assets/data/mnist-5k/images-idx3-ubyte.gz", "spikewb/assets/workbench.css",
                   "spikewb/assets/tutorials/trainer.md"):
        assert needed in names, needed


def test_installed_package_is_the_one_imported(installed):
    bin_, home, _ = installed
    r = subprocess.run([str(bin_ / "python"), "-c", "import spikewb.engine, spikewb.workbench.server.app as s; "
                        "print(spikewb.engine.__file__); print(s.APPS_DIR)"],
                       capture_output=True, text=True, cwd=home, env=_env(home), timeout=120)
    assert r.returncode == 0, r.stderr
    assert str(ROOT) not in r.stdout and "site-packages/spikewb" in r.stdout, r.stdout


def test_spikewb_train_on_the_embedded_data(installed):
    bin_, home, _ = installed
    r = subprocess.run([str(bin_ / "spikewb"), "train", "--rule", "desire", "--hidden", "40", "--epochs", "1",
                        "--train-limit", "800", "--eval-limit", "300", "--no-progress", "--out", "run1",
                        "-p", "lr=3e-4"], capture_output=True, text=True, cwd=home, env=_env(home), timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    metrics = json.loads((home / "run1" / "metrics.json").read_text())
    rows = metrics if isinstance(metrics, list) else metrics.get("epochs", metrics.get("history", []))
    assert rows[-1]["test_accuracy"] > 0.15, rows                   # above chance (0.1)


def test_spikewb_serve_answers_every_page_and_trains_in_the_browser(installed, browser):
    bin_, home, _ = installed
    port = free_port()
    log = open(home / "serve.log", "wb")
    proc = subprocess.Popen([str(bin_ / "spikewb"), "serve", "--port", str(port), "--no-warm"],
                            cwd=home, env=_env(home), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def up():
        assert proc.poll() is None, (home / "serve.log").read_text()
        try:
            with urllib.request.urlopen(base + "/health", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        wait_until(up, 180, 0.5, "spikewb serve from the wheel")
        for page in ("", "trainer", "compare", "results", "neuron", "stdp", "xor", "mapping", "dynamics"):
            with urllib.request.urlopen(f"{base}/{page}", timeout=120) as r:
                assert r.status == 200, page
        ctx = browser.new_context()
        try:
            pg = ctx.new_page()
            pg.goto(base + "/trainer?hidden=50")
            pg.locator(".wb-samples").wait_for(timeout=120_000)
            pg.get_by_role("button", name="\u25b6 Train").click()
            wait_until(lambda: pg.locator(".wb-samples").first.inner_text().strip().isdigit()
                       and int(pg.locator(".wb-samples").first.inner_text()) > 0, 120, 0.5,
                       "the installed trainer page training")
        finally:
            ctx.close()
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
