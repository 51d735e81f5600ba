"""The neuron inspector in a real browser: select, follow live, step, replay."""

from __future__ import annotations

import re

import pytest

from .conftest import LOAD_TIMEOUT, Page, stays_constant, wait_until

pytestmark = [pytest.mark.ui, pytest.mark.timed]  # times the server: runs alone (Makefile)


@pytest.fixture
def page(browser, trainer_server):
    ctx = browser.new_context(viewport={"width": 1500, "height": 1000})
    p = Page(ctx, trainer_server.url)
    yield p
    ctx.close()


def title(p: Page) -> str:
    return " ".join(p.page.locator(".insp-title h3").all_inner_texts())


def summary(p: Page) -> str:
    return " ".join(p.page.locator(".insp-summary p").all_inner_texts())


def history_count(p: Page) -> int:
    m = re.search(r"history (\d+) samples", summary(p))
    return int(m.group(1)) if m else -1


def sample_no(p: Page) -> int:
    m = re.search(r"Sample (\d+)", summary(p))
    return int(m.group(1)) if m else -1


def set_number(p: Page, css: str, value: int) -> None:
    box = p.page.locator(f"{css} input").first
    box.fill(str(value))
    box.press("Enter")


def test_select_follow_step_and_replay(page):
    p = page
    p.page.locator(".insp-active input").first.check()
    set_number(p, ".insp-layer", 2)
    set_number(p, ".insp-index", 5)
    wait_until(lambda: "Neuron 2:5" in title(p), LOAD_TIMEOUT, message="inspector on neuron 2:5")
    p.button("\u25b6 Train").click()
    wait_until(lambda: history_count(p) > 20, LOAD_TIMEOUT, message="live history filling")
    # a click on a neuron in the error-flow view selects it (TapTool sets the source's selection)
    wait_until(lambda: p.page.evaluate("() => Bokeh.documents[0].get_model_by_name('flow_neurons')"
                                       ".data['layer'].length") > 0, LOAD_TIMEOUT, message="error-flow view filled")
    p.page.evaluate("""() => {
        const src = Bokeh.documents[0].get_model_by_name('flow_neurons');
        const layer = src.data['layer'], index = src.data['index'];
        for (let k = 0; k < layer.length; k++) {
            if (layer[k] == 1 && index[k] == 17) { src.selected.indices = [k]; return; }
        }
    }""")
    wait_until(lambda: "Neuron 1:17" in title(p), LOAD_TIMEOUT, message="click selects neuron 1:17")
    p.button("\u23f8 Pause").click()
    wait_until(lambda: p.state().lower().startswith("paused"), LOAD_TIMEOUT, message="paused")
    # a step publishes its frame.  Count from the trained samples, not from what the inspector
    # shows: right after Pause it may already show the last sample, and a check made then would
    # let this step's frame and the next arrive together (a loaded CI machine did exactly that)
    n0 = wait_until(lambda: len(set(stays_constant(p.samples, 0.6))) == 1 and p.samples(), LOAD_TIMEOUT,
                    message="the counter settled after Pause")
    p.button("Step").click()
    wait_until(lambda: p.samples() == n0 + 1 and sample_no(p) == n0, LOAD_TIMEOUT,
               message="the inspector showing the stepped sample")
    before, shown = history_count(p), sample_no(p)
    p.button("Step").click()
    wait_until(lambda: p.samples() == n0 + 2 and sample_no(p) == shown + 1, LOAD_TIMEOUT,
               message="the next stepped sample shown")
    # the ring buffer keeps 500 samples: below that it grows by one, at capacity it stays full
    assert history_count(p) == min(before + 1, 500)
    # scrub back through the replay buffer while paused
    handle = p.page.locator(".insp-replay .noUi-handle").first
    handle.focus()
    handle.press("ArrowRight")
    wait_until(lambda: "replay, 1 frame(s) back" in summary(p), LOAD_TIMEOUT, message="replay one frame back")
    p.screenshot("inspector")
    assert not [e for e in p.errors if "Span" not in e], p.errors


def test_selection_is_in_the_url(browser, trainer_server):
    ctx = browser.new_context(viewport={"width": 1500, "height": 1000})
    try:
        p = Page(ctx, trainer_server.url + "?inspect=2:5")
        wait_until(lambda: "Neuron 2:5" in title(p), LOAD_TIMEOUT, message="neuron 2:5 from the URL")
        assert not p.errors, p.errors
    finally:
        ctx.close()
    ctx = browser.new_context(viewport={"width": 1500, "height": 1000})
    try:
        p = Page(ctx, trainer_server.url + "?inspect=7:99999")
        wait_until(lambda: "inspect" in " ".join(p.page.locator(".wb-message p, .wb-warning p, .wb-message div, .wb-warning div").all_inner_texts()), LOAD_TIMEOUT,
                   message="a notice for a neuron that does not exist")
        assert "Neuron 1:0" in title(p)
    finally:
        ctx.close()
