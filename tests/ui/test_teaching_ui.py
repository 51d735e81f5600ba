"""Teaching apps in a real browser: URL state round trip, presentation mode, bad links, landing page."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from urllib.parse import parse_qs, urlparse

import pytest

from .conftest import ARTIFACTS, LOAD_TIMEOUT, ROOT, free_port, wait_until

pytestmark = pytest.mark.ui

APPS = ("neuron", "stdp", "xor", "mapping", "index")
#: Non-default settings per app, and text the controls must then show.
SETUPS = {
    "neuron": ({"form": "discrete", "drive": "0.5", "reset": "to value", "duration": "90"},
               {"Constant input (per step)": 0.5, "Duration (steps | ms)": 90, "select": "to value"}),
    "stdp": ({"delta_t": "-15", "tau_plus": "30", "n_pairs": "120"},
             {"t_post - t_pre (ms)": -15, "tau+ (ms)": 30, "Pairings": 120}),
    "xor": ({"seed": "3", "lr_hidden": "0.02"}, {"Seed": 3, "Hidden learning rate (nA)": 0.02}),
    "mapping": ({"seed": "2", "max_epochs": "50"}, {"Seed": 2, "Stop after epochs": 50}),
}


@pytest.fixture(scope="module")
def teaching_server():
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / f"panel-serve-teaching-{port}.log", "wb")
    cmd = [sys.executable, "-m", "panel", "serve", *(str(ROOT / "apps" / f"{a}.py") for a in APPS),
           "--port", str(port), "--address", "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{port}",
           "--check-unused-sessions", "1000", "--liveness"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "BOKEH_BROWSER": "none"})

    def up():
        assert proc.poll() is None, "panel serve exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/liveness", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False
    try:
        wait_until(up, LOAD_TIMEOUT, 0.2, "panel serve")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def open_page(browser, url):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(LOAD_TIMEOUT * 1000)
    page.goto(url)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle")
    return ctx, page, errors


def controls_state(page) -> dict:
    """What the controls show: slider titles (label -> number), select and input values.

    Panel renders widgets in shadow roots; CSS locators pierce them, inner_text does not.
    """
    state = {}
    for title in page.locator(".teaching-controls .bk-slider-title").all_inner_texts():
        label, _, value = title.rpartition(":")
        state[label.strip()] = float(value)
    state["selects"] = [s.input_value() for s in page.locator(".teaching-controls select").all()]
    state["inputs"] = [s.input_value() for s in page.locator(".teaching-controls input").all()]
    return state


def shows(state: dict, expected: dict) -> bool:
    for k, v in expected.items():
        if k == "select":
            if v not in state.get("selects", []):
                return False
        elif k not in state or abs(state[k] - v) > 1e-9:
            return False
    return True


@pytest.mark.parametrize("app", list(SETUPS))
def test_url_state_round_trip(browser, teaching_server, app):
    query, expected = SETUPS[app]
    url = f"{teaching_server}/{app}?" + "&".join(f"{k}={v}" for k, v in query.items())
    ctx, page, errors = open_page(browser, url)
    try:
        state = wait_until(lambda: (st := controls_state(page)) and shows(st, expected) and st,
                           LOAD_TIMEOUT, message=f"{app} controls showing {expected}")
        # the page rewrites its URL from its state: every non-default setting is there
        shared = wait_until(lambda: page.url if parse_qs(urlparse(page.url).query) else None, 20,
                            message="URL carrying the state")
        q = {k: v[-1] for k, v in parse_qs(urlparse(shared).query).items()}
        for k, v in query.items():
            if k in q:                                  # defaults may be left out of the link
                assert float(q[k]) == float(v) if v.replace(".", "").lstrip("-").isdigit() else q[k] == v
        page.screenshot(path=str(ARTIFACTS / f"teaching-{app}.png"))
        assert not errors, errors
    finally:
        ctx.close()
    # a fresh browser opening the shared link sees the same setup
    ctx2, page2, errors2 = open_page(browser, shared)
    try:
        wait_until(lambda: controls_state(page2) == state, LOAD_TIMEOUT, message="same controls in a fresh page")
        assert not errors2, errors2
    finally:
        ctx2.close()


def test_presentation_mode_hides_controls(browser, teaching_server):
    ctx, page, _ = open_page(browser, f"{teaching_server}/neuron")
    try:
        assert page.locator(".teaching-controls").first.is_visible()
        page.get_by_role("button", name="Presentation mode").click()
        wait_until(lambda: not page.locator(".teaching-controls").first.is_visible(), 20,
                   message="controls hidden")
        wait_until(lambda: "present=true" in page.url, 20, message="present=true in the URL")
        page.screenshot(path=str(ARTIFACTS / "teaching-presentation.png"))
    finally:
        ctx.close()
    ctx, page, _ = open_page(browser, f"{teaching_server}/stdp?present=true")
    try:
        wait_until(lambda: not page.locator(".teaching-controls").first.is_visible(), 20,
                   message="controls hidden when the link says present=true")
    finally:
        ctx.close()


def test_malformed_url_shows_notice_and_defaults(browser, teaching_server):
    bad = "drive=abc&leak=7&form=quantum&bogus=1&spike_times=../../etc/passwd&duration=1e99"
    ctx, page, errors = open_page(browser, f"{teaching_server}/neuron?{bad}")
    try:
        notice = page.locator(".url-notice").first
        wait_until(notice.is_visible, 20, message="the URL notice")
        text = " ".join(page.locator(".url-notice li").all_inner_texts())
        for word in ("drive", "leak", "form", "bogus", "duration"):
            assert word in text, (word, text)
        # defaults were used and the page still works
        assert shows(controls_state(page), {"Constant input (per step)": 0.3, "Leak lambda (kept per step)": 0.75,
                                            "Duration (steps | ms)": 60, "select": "discrete"})
        assert not errors, errors
    finally:
        ctx.close()


def test_landing_page_lists_every_app(browser, teaching_server):
    ctx, page, errors = open_page(browser, f"{teaching_server}/index")
    try:
        cards = wait_until(lambda: page.locator("a.app-card").count() >= 4 and page.locator("a.app-card"), 30,
                           message="app cards")
        hrefs = [cards.nth(k).get_attribute("href") for k in range(cards.count())]
        for app in ("neuron", "stdp", "xor", "mapping"):
            assert f"./{app}" in hrefs
        assert not errors, errors
    finally:
        ctx.close()


def test_xor_trains_live(browser, teaching_server):
    ctx, page, errors = open_page(browser, f"{teaching_server}/xor")
    try:
        page.get_by_role("button", name="Train").click()

        def epoch():
            values = [v for v in controls_state(page)["inputs"] if v.isdigit()]
            return int(values[-1]) if values else 0
        wait_until(lambda: epoch() >= 3, LOAD_TIMEOUT, message="epochs counting up")
        assert not errors, errors
    finally:
        ctx.close()
