"""The trainer's learning curves overlay a stored paper reproduction (headless Chromium).

The server reads reproductions from a temporary folder (``SPIKEWB_REPRODUCTIONS``)
holding one good metrics file, one malformed file under another known name and a
folder whose name is an HTML payload: the menu offers the two known names only,
choosing the good one puts its three epochs into the dashed curve at the right
sample counts (and the live run trains beside it), the malformed one gives a
"not shown" note, nothing of the payload reaches the page.
"""

from __future__ import annotations

import json

import pytest

from .conftest import ARTIFACTS, Page, wait_until

pytestmark = pytest.mark.ui

PAYLOAD = "<img src=x onerror=window.__pwned=1>"


@pytest.fixture(scope="module")
def repro_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproductions")
    rows = [{"epoch": e, "train_accuracy": 0.5, "test_accuracy": acc, "loss": 0.1, "lr": 1e-5, "seconds": 90.0,
             "samples": 60000} for e, acc in enumerate((0.7666, 0.7976, 0.8155))]
    (root / "desire-fashion").mkdir()
    (root / "desire-fashion" / "metrics.json").write_text(json.dumps(rows))
    (root / "ssnn-fashion").mkdir()
    (root / "ssnn-fashion" / "metrics.json").write_text('[{"epoch": 0, "samples": "many"}]')
    (root / PAYLOAD).mkdir()
    (root / PAYLOAD / "metrics.json").write_text(json.dumps(rows))
    return root


def test_overlay_a_stored_reproduction(browser, app_server, repro_root):
    server = app_server("trainer", env={"SPIKEWB_REPRODUCTIONS": str(repro_root)})
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        p = Page(ctx, server.url + "?hidden=20&refresh=2")
        menu = p.page.locator("select").filter(has=p.page.locator("option", has_text="desire-fashion"))
        options = menu.locator("option").all_inner_texts()
        assert options == ["none", "desire-fashion", "ssnn-fashion"], options

        menu.select_option("desire-fashion")
        wait_until(lambda: p.source("wb-overlay", "step") == [60000, 120000, 180000], 20,
                   message="the overlay curve in the browser")
        assert [round(v, 4) for v in p.source("wb-overlay", "test")] == [0.7666, 0.7976, 0.8155]
        wait_until(lambda: "desire-fashion: 3 epochs of 60,000 samples" in p.pane_text(".wb-overlay-note"), 10,
                   message="the overlay note")
        p.button("\u25b6 Train").click()
        wait_until(lambda: len(p.source("wb-accuracy", "step") or []) >= 3, 60, message="live curve points")
        assert len(p.source("wb-overlay", "step")) == 3            # the overlay stays beside the live run
        menu.scroll_into_view_if_needed()
        p.page.screenshot(path=str(ARTIFACTS / "overlay.png"))

        menu.select_option("ssnn-fashion")
        wait_until(lambda: "not shown: ssnn-fashion" in p.pane_text(".wb-overlay-note"), 10, message="the refusal note")
        assert p.source("wb-overlay", "step") == []
        menu.select_option("none")
        assert p.page.evaluate("window.__pwned === undefined")
        assert p.errors == [], p.errors
    finally:
        ctx.close()
