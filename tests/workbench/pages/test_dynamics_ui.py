"""Real-browser test of ``apps/dynamics.py`` (headless Chromium via Playwright)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.ui


def wait_until(cond, timeout=60.0, interval=0.2, what="condition"):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = cond()
            if last:
                return last
        except Exception as exc:  # page not ready yet
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))}
    proc = subprocess.Popen([sys.executable, "-m", "panel", "serve", "apps/dynamics.py", "--port", str(port),
                             "--address", "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{port}"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/dynamics"

    def up():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status == 200

    try:
        wait_until(up, timeout=150, what="panel serve")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("needs /usr/bin/chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


JS_LEN = """name => { for (const d of window.Bokeh.documents) { const m = d.get_model_by_name(name);
                      if (m) return m.data[Object.keys(m.data)[0]].length; } return -1; }"""


def test_dynamics_page_streams_raster_and_pauses(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server)
    # spikes arrive in the raster, rate and potentials sources
    wait_until(lambda: page.evaluate(JS_LEN, "dynamics-raster") > 100, timeout=90, what="raster spikes")
    assert page.evaluate(JS_LEN, "dynamics-rate") > 10
    assert page.evaluate(JS_LEN, "dynamics-v") > 10
    status = wait_until(lambda: page.get_by_text("mean rate").first.inner_text(), what="status line")
    assert "Hz" in status and "simulated" in status
    # the raster canvas shows blue (excitatory) pixels
    shot = page.screenshot()
    assert len(shot) > 10_000
    # pause: simulated time stops advancing
    page.get_by_role("button", name="Pause").click()
    paused = wait_until(lambda: (lambda t: t if t.startswith("paused") else None)(
        page.get_by_text("mean rate").first.inner_text()), timeout=30, what="paused status")
    def sim_time():  # the status line up to the frame counters (a frame in flight may still land)
        return page.get_by_text("mean rate").first.inner_text().split("produced")[0]
    time.sleep(1.0)
    settled = sim_time()
    time.sleep(1.5)  # no sleep-polling possible for "nothing happens": observe a fixed interval
    assert sim_time() == settled and settled.startswith("paused"), (paused, settled)
    # play again, then a regime change moves the weight sliders to the AI preset
    page.get_by_role("button", name="Pause").click()
    wait_until(lambda: not page.get_by_text("mean rate").first.inner_text().startswith("paused"),
               timeout=30, what="playing again")
    page.locator("select").first.select_option("asynchronous irregular")
    wait_until(lambda: page.get_by_text("Inhibitory weight w_i (mV): -45").count() > 0, timeout=30,
               what="w_i slider at -45 mV")
    assert not errors, errors
    page.close()
