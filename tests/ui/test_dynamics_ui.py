"""Real-browser test of ``apps/dynamics.py`` (headless Chromium via Playwright, the shared
session browser of ``tests/ui/conftest.py``)."""

from __future__ import annotations

import time

import pytest

from .conftest import wait_until

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def server(app_server):
    """``panel serve apps/dynamics.py`` on a free port (the shared Server helper)."""
    return app_server("dynamics").url


JS_LEN = """name => { for (const d of window.Bokeh.documents) { const m = d.get_model_by_name(name);
                      if (m) return m.data[Object.keys(m.data)[0]].length; } return -1; }"""


def test_dynamics_page_streams_raster_and_pauses(server, browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server)
    # spikes arrive in the raster, rate and potentials sources
    wait_until(lambda: page.evaluate(JS_LEN, "dynamics-raster") > 100, timeout=90, message="raster spikes")
    assert page.evaluate(JS_LEN, "dynamics-rate") > 10
    assert page.evaluate(JS_LEN, "dynamics-v") > 10
    status = wait_until(lambda: page.get_by_text("mean rate").first.inner_text(), message="status line")
    assert "Hz" in status and "simulated" in status
    # the raster canvas shows blue (excitatory) pixels
    shot = page.screenshot()
    assert len(shot) > 10_000
    # pause: simulated time stops advancing
    page.get_by_role("button", name="Pause").click()
    paused = wait_until(lambda: (lambda t: t if t.startswith("paused") else None)(
        page.get_by_text("mean rate").first.inner_text()), timeout=30, message="paused status")
    def sim_time():  # the status line up to the frame counters (a frame in flight may still land)
        return page.get_by_text("mean rate").first.inner_text().split("produced")[0]
    time.sleep(1.0)
    settled = sim_time()
    time.sleep(1.5)  # no sleep-polling possible for "nothing happens": observe a fixed interval
    assert sim_time() == settled and settled.startswith("paused"), (paused, settled)
    # play again, then a regime change moves the weight sliders to the AI preset
    page.get_by_role("button", name="Pause").click()
    wait_until(lambda: not page.get_by_text("mean rate").first.inner_text().startswith("paused"),
               timeout=30, message="playing again")
    page.locator("select").first.select_option("asynchronous irregular")
    wait_until(lambda: page.get_by_text("Inhibitory weight w_i (mV): -45").count() > 0, timeout=30,
               message="w_i slider at -45 mV")
    assert not errors, errors
    ctx.close()
