"""Real-browser tests of the live training workbench (``apps/trainer.py``).

Headless Chromium (Debian package) driven by Playwright against ``panel serve``
started by the ``trainer_server`` fixture.  Every check polls (``wait_until``)
instead of sleeping; values are read from the page's DOM and from the
ColumnDataSources the browser holds, and pixels are compared where the issue
asks for a visible change.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs, urlparse

import pytest

from .conftest import stays_constant, wait_until

pytestmark = [pytest.mark.ui, pytest.mark.timed]  # times the server: runs alone (Makefile)

# 784-1000-100-10 trains at ~2 ms/sample headless; allow slow shared machines.
T = 60


def _raster_signature(page) -> tuple[int, int]:
    """(spikes drawn, checksum of the raster images) as the browser holds them."""
    return tuple(page.page.evaluate(
        """() => {
             const m = Bokeh.documents[0].get_model_by_name('wb-raster');
             let spikes = 0, check = 0;
             for (const s of m.data.spikes) spikes += Number(s);
             for (const img of m.data.image) {
               let k = 0;
               for (const v of img) { check = (check * 31 + Number(v) * (++k)) % 1000000007; }
             }
             return [spikes, check];
           }"""))


def _pixels(page, selector: str) -> str:
    return hashlib.sha1(page.page.locator(selector).first.screenshot()).hexdigest()


def test_page_loads_without_console_errors(open_page):
    p = open_page()
    assert p.state() == "paused"
    assert p.samples() == 0
    assert p.text(".wb-net").startswith("desire")
    assert "784-1000-100-10" in p.text(".wb-net")
    # every control carries its unit in the label and its doc as a tooltip
    assert p.page.get_by_text("Threshold v_th").count() >= 1
    assert p.page.get_by_text("LR decay (1/epoch)").count() >= 1
    p.screenshot("trainer-loaded", full_page=True)
    assert p.errors == [], p.errors
    assert p.failed_requests == [], f"the page must not need the network: {p.failed_requests}"


def test_train_changes_raster_and_accuracy(open_page):
    p = open_page()
    assert _raster_signature(p) == (0, 0.0)
    p.button("\u25b6 Train").click()
    wait_until(lambda: p.samples() > 0, T, message="samples counting after Train")
    first = wait_until(lambda: _raster_signature(p)[0] > 0 and _raster_signature(p), T, message="raster data")
    acc1 = wait_until(lambda: p.source("wb-accuracy", "step"), T, message="accuracy points")
    pix1 = _pixels(p, ".wb-raster-pane")
    p.screenshot("trainer-training-1", full_page=True)
    wait_until(lambda: _raster_signature(p) != first, T, message="a new raster")
    wait_until(lambda: len(p.source("wb-accuracy", "step")) > len(acc1) + 2, T, message="more accuracy points")
    wait_until(lambda: _pixels(p, ".wb-raster-pane") != pix1, T, message="raster pixels to change")
    acc2 = p.source("wb-accuracy", "step")
    assert acc2[-1] > acc1[-1], "the accuracy curve advances in samples"
    shown, produced = (int(v) for v in p.text(".wb-frames").split("/"))
    assert 0 < shown <= produced
    p.screenshot("trainer-training-2", full_page=True)
    p.button("\u23f8 Pause").click()
    assert p.errors == [], p.errors


def test_pause_stops_the_sample_counter(open_page):
    p = open_page()
    p.button("\u25b6 Train").click()
    wait_until(lambda: p.samples() > 20, T, message="training")
    p.button("\u23f8 Pause").click()
    wait_until(lambda: p.state() == "paused", T, message="paused state")
    # after the pause is shown the counter must not move any more
    wait_until(lambda: len(stays_constant(p.samples, 1.0)) == 1, T, message="counter to settle")
    n = p.samples()
    assert stays_constant(p.samples, 1.5) == [n]
    p.button("Step").click()
    wait_until(lambda: p.samples() == n + 1, T, message="one stepped sample")
    assert stays_constant(p.samples, 1.0) == [n + 1]


def test_threshold_change_reaches_the_next_frames(open_page):
    p = open_page()
    p.button("\u25b6 Train").click()
    wait_until(lambda: p.vth() == "1", T, message="first frame (v_th 1)")
    p.set_param("v_th", "0.5")
    wait_until(lambda: p.vth() == "0.5", T, message="frames recorded with v_th = 0.5")
    wait_until(lambda: p.model_attr("wb-threshold", "location") == 0.5, T, message="threshold line at 0.5")
    # the setup (non-default threshold) is in the URL
    wait_until(lambda: parse_qs(urlparse(p.page.url).query).get("v_th") == ["0.5"], T, message="v_th in URL")
    p.screenshot("trainer-threshold-0.5", full_page=True)
    p.button("\u23f8 Pause").click()
    assert p.errors == [], p.errors


def test_out_of_range_value_is_refused_with_a_message(open_page):
    p = open_page()
    p.set_param("v_th", "-2")
    wait_until(lambda: "greater than 0" in p.pane_text(".wb-param-v_th .wb-field-error"), T,
               message="refusal message")
    wait_until(lambda: p.param_input("v_th").input_value() in ("1", "1.0"), T, message="box back to 1")
    p.button("Step").click()
    wait_until(lambda: p.vth() == "1", T, message="threshold unchanged")


def test_bad_uploads_show_errors_and_training_continues(open_page, tmp_path):
    p = open_page()
    p.button("\u25b6 Train").click()
    wait_until(lambda: p.samples() > 0, T, message="training")
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(b"\x00\x00\x08\x03" + b"\x00\x00\x00\x05garbage")
    p.page.locator(".wb-upload-data input[type=file]").set_input_files(str(bad))
    wait_until(lambda: "Upload refused" in p.pane_text(".wb-upload-error", 0), T, message="data upload error")
    assert "truncated" in p.pane_text(".wb-upload-error", 0)
    ckpt = tmp_path / "model.npz"
    ckpt.write_bytes(b"PK\x03\x04 not really a zip")
    p.page.locator(".wb-upload-ckpt input[type=file]").set_input_files(str(ckpt))
    wait_until(lambda: "Checkpoint refused" in p.pane_text(".wb-upload-error", 1), T,
               message="checkpoint upload error")
    p.screenshot("trainer-bad-upload", full_page=True)
    n = p.samples()
    wait_until(lambda: p.samples() > n, T, message="training goes on after the bad uploads")
    assert p.state() == "training"
    p.button("\u23f8 Pause").click()


def test_two_browser_contexts_train_independently(open_page):
    a = open_page()
    b = open_page()
    a.button("\u25b6 Train").click()
    wait_until(lambda: a.samples() > 10, T, message="A training")
    assert b.samples() == 0 and b.state() == "paused"
    b.set_param("v_th", "0.7")
    b.button("Step").click()
    wait_until(lambda: b.samples() == 1 and b.vth() == "0.7", T, message="B stepped with its own v_th")
    wait_until(lambda: a.samples() > 30, T, message="A still training")
    assert a.vth() == "1", "B's threshold must not leak into A"
    assert b.samples() == 1
    a.button("\u23f8 Pause").click()


def test_structural_change_asks_before_rebuilding(open_page):
    p = open_page()
    box = p.page.locator(".wb-param-hidden input").first
    box.fill("64")
    box.press("Enter")
    wait_until(lambda: "Rebuild the network?" in p.pane_text(".wb-confirm"), T, message="confirmation")
    assert "784-1000-100-10" in p.text(".wb-net"), "nothing is rebuilt before confirming"
    p.button("Rebuild network").click()
    wait_until(lambda: "784-64-10" in p.text(".wb-net"), T, message="rebuilt network")
    wait_until(lambda: parse_qs(urlparse(p.page.url).query).get("hidden") == ["64"], T, message="URL")
    p.button("Step").click()
    wait_until(lambda: p.samples() == 1, T, message="training the new network")
    assert p.errors == [], p.errors


def test_url_restores_the_setup(open_page):
    p = open_page("?hidden=48&v_th=0.8&seed=3")
    assert "784-48-10" in p.text(".wb-net")
    assert p.param_input("v_th").input_value() == "0.8"
    p.button("Step").click()
    wait_until(lambda: p.vth() == "0.8", T, message="frame with the URL's threshold")


def test_closing_the_tab_stops_its_worker(open_page, trainer_server):
    """The server goes back to idle once the training tab is closed (its worker stopped)."""
    idle = 0.25  # cores
    wait_until(lambda: trainer_server.cpu_rate(1.5) < idle, T, message="an idle server to start with")
    p = open_page()
    p.button("\u25b6 Train").click()
    wait_until(lambda: p.samples() > 20, T, message="training")
    # on a shared, loaded machine one sample of the CPU rate can be low: poll for a busy window
    wait_until(lambda: trainer_server.cpu_rate(1.5) > idle, T, message="training to keep the server busy")
    p.context.close()
    wait_until(lambda: trainer_server.cpu_rate(1.5) < idle, 30, message="the worker to stop after the tab closed")
