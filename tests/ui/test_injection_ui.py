"""Reflected script injection through page links, in headless Chromium.

Every app is served once (one ``panel serve`` process for all of them).  For
every page, every query key it reads plus unknown keys carry each payload; the
page must show the payload as text in its notice, and neither a dialog nor the
``window.__pwned`` marker the payloads set may appear.

Coverage per page: ``len(PAYLOADS)`` loads; in load ``r`` known key ``j`` carries
payload ``(j + r) % len(PAYLOADS)`` in encoding ``(j + r) % len(ENCODINGS)``, so
every known key meets every payload, and each load also carries every
payload x encoding as unknown keys (as name and value).  A page that reads no
query key (index, dynamics) gets one load carrying every payload x encoding as
unknown keys.  The last test checks
that values which used to blank a page (``refresh=nan``, Unicode and
5,000-digit integers, a symbolic link loop in the run folder) give a notice.
"""

from __future__ import annotations

import os
import time
from urllib.parse import quote

import pytest

from .conftest import ARTIFACTS, LOAD_TIMEOUT, ROOT, Server, free_port

pytestmark = pytest.mark.ui

PAYLOADS = [
    '<img src=x onerror="window.__pwned=1;alert(1)">',
    '"><script>window.__pwned=1;alert(1)</script>',
    "</style><script>window.__pwned=1</script>",
    "javascript:window.__pwned=1",
    "[x](javascript:window.__pwned=1)",
    "&lt;img src=x onerror=window.__pwned=1&gt;",
]
#: How a payload is written into the link: as typed (only the query's own separators
#: encoded), fully percent-encoded, and encoded twice (nothing may decode it twice).
ENCODINGS = {
    "raw": lambda s: quote(s, safe="<>\"'()[]/:;!*,$@"),
    "encoded": lambda s: quote(s, safe=""),
    "double": lambda s: quote(quote(s, safe=""), safe=""),
}

DESIRE_KEYS = ["lr", "lr_schedule", "lr_decay", "dtype", "n_steps", "leak", "v_th", "margin", "alpha_out",
               "alpha_hid", "dropout_in", "dropout_hid"]
NEURON_KEYS = ["form", "input_kind", "drive", "drive_na", "rate", "weight", "tau_syn", "spike_times", "leak",
               "tau_m", "v_th", "vt_mv", "reset", "v_reset", "refractory", "duration", "seed", "show_fi", "present"]
STDP_KEYS = ["delta_t", "a_plus", "a_minus", "tau_plus", "tau_minus", "n_pairs", "w0", "show_desire", "desire",
             "leak", "present"]
TASK_KEYS = ["task", "seed", "lr", "lr_hidden", "max_epochs", "stop_converged", "speed", "present"]

#: page -> (query keys it reads, selector of its URL notice or None when it reads no query)
PAGES = {
    "index": ([], None),
    "trainer": (["rule", "dataset", "hidden", "seed", "refresh", "inspect", "checkpoint", *DESIRE_KEYS],
                ".wb-message"),
    "compare": (["panes", "seed", "dataset", "refresh", "hidden1", "lr1", "v_th1", "hidden2",
                 *(f"{k}2" for k in DESIRE_KEYS)], ".cmp-msg-warning"),
    "results": (["dir"], ".res-notice"),
    "neuron": (NEURON_KEYS, ".url-notice"),
    "stdp": (STDP_KEYS, ".url-notice"),
    "xor": (TASK_KEYS, ".url-notice"),
    "mapping": (TASK_KEYS, ".url-notice"),
    "dynamics": ([], None),
}
APPS = list(PAGES)


class AllApps(Server):
    """``panel serve apps/*.py``: every page from one server process (one start-up)."""

    def __init__(self, env: dict | None = None):
        import subprocess
        import sys
        self.port = free_port()
        self.app = "all"
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"panel-serve-injection-{self.port}.log"
        cmd = [sys.executable, "-m", "panel", "serve", *(str(ROOT / "apps" / f"{a}.py") for a in APPS),
               "--port", str(self.port), "--address", "127.0.0.1",
               "--allow-websocket-origin", f"127.0.0.1:{self.port}",
               "--check-unused-sessions", "1000", "--unused-session-lifetime", "2000", "--liveness"]
        self._log = open(self.log_path, "wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "BOKEH_BROWSER": "none", **(env or {})}
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.url = f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
    """A run folder with one real sweep folder and symbolic link loops in it."""
    root = tmp_path_factory.mktemp("runs")
    run = root / "sweep1" / "r1"
    run.mkdir(parents=True)
    (run / "config.json").write_text('{"rule": "desire"}')
    os.symlink("loop", root / "loop")
    os.symlink("b", root / "a")
    os.symlink("a", root / "b")
    os.symlink(root / "sweep1", root / "sweep1" / "again")
    return root


@pytest.fixture(scope="module")
def server(run_root):
    s = AllApps(env={"SPIKEWB_RUNS": str(run_root)})
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def context(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield ctx
    ctx.close()


class Visit:
    """One page load: records dialogs and page errors; closes the page when done."""

    def __init__(self, context, url: str):
        self.dialogs: list[str] = []
        self.page = context.new_page()
        self.page.on("dialog", self._dialog)
        self.page.set_default_timeout(LOAD_TIMEOUT * 1000)
        self.page.goto(url)
        self.page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 "
                                    "&& Bokeh.documents[0].is_idle")

    def _dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def notice_text(self, selector: str, must_contain: str) -> str:
        """Wait until the notice ``selector`` is visible and shows ``must_contain``; its text."""
        loc = self.page.locator(selector).first
        loc.wait_for(state="visible", timeout=LOAD_TIMEOUT * 1000)
        deadline = time.monotonic() + LOAD_TIMEOUT
        while True:
            text = loc.evaluate("el => (el.shadowRoot || el).textContent || ''")
            if must_contain in text or time.monotonic() > deadline:
                return text
            time.sleep(0.1)

    def pwned(self) -> bool:
        return bool(self.page.evaluate("() => window.__pwned"))

    def javascript_links(self) -> int:
        return self.page.locator('a[href^="javascript:" i]').count()


def hostile_url(base: str, app: str, r: int) -> tuple[str, int]:
    """The ``r``-th hostile link of ``app`` and the number of (key, payload) pairs it carries."""
    keys, _ = PAGES[app]
    names = list(ENCODINGS)
    parts = []
    for j, key in enumerate(keys):
        k = (j + r) % len(PAYLOADS)
        parts.append(f"{key}={ENCODINGS[names[(j + r) % len(names)]](PAYLOADS[k])}")
    n = 0
    for p, payload in enumerate(PAYLOADS):
        for name, enc in ENCODINGS.items():
            if not keys or (p + r) % len(PAYLOADS) == 0 or name == "encoded":
                # every payload x encoding as an unknown key name, spread over the loads
                parts.append(f"{enc(payload)}{r}={enc(payload)}")
                n += 1
    return f"{base}/{app}?" + "&".join(parts), len(keys) + n


COUNTS: dict[str, int] = {}


@pytest.mark.parametrize("app", APPS)
def test_no_payload_runs_in_any_page(server, context, app):
    keys, selector = PAGES[app]
    tried = 0
    loads = len(PAYLOADS) if keys else 1  # a page that reads no key gets every payload x encoding at once
    for r in range(loads):
        url, n = hostile_url(server.url, app, r)
        visit = Visit(context, url)
        try:
            if selector:
                text = visit.notice_text(selector, "__pwned")
                assert "__pwned" in text, f"{app}: the notice does not quote the payload as text: {text[:300]!r}"
            else:
                visit.page.wait_for_timeout(300)
            visit.page.wait_for_timeout(300)  # an <img onerror> fires after its failed load
            assert not visit.dialogs, f"{app} load {r}: a payload opened a dialog: {visit.dialogs}"
            assert not visit.pwned(), f"{app} load {r}: a payload set window.__pwned"
            assert visit.javascript_links() == 0, f"{app} load {r}: a javascript: link was rendered"
            if app == "neuron" and r == 0:
                visit.page.screenshot(path=str(ARTIFACTS / "injection-neuron-notice.png"))
        finally:
            visit.page.close()
        tried += n
    COUNTS[app] = tried
    print(f"\n{app}: {tried} (key, payload) pairs in {loads} loads")


SEED_5000 = "1" * 5000


@pytest.mark.parametrize("app,query,selector,words", [
    ("trainer", "refresh=nan&seed=%E2%91%A0", ".wb-message", ("refresh", "seed")),
    ("compare", f"refresh=nan&seed={SEED_5000}", ".cmp-msg-warning", ("refresh", "seed")),
    ("neuron", f"seed=%E2%91%A0&duration={SEED_5000}&drive=inf", ".url-notice", ("seed", "duration", "drive")),
    ("xor", "seed=%D9%A3&lr=nan", ".url-notice", ("seed", "lr")),
    ("results", "dir=loop", ".res-notice", ("loop",)),
])
def test_values_that_blanked_pages_give_a_notice(server, context, app, query, selector, words):
    visit = Visit(context, f"{server.url}/{app}?{query}")
    try:
        text = visit.notice_text(selector, words[-1])
        for w in words:
            assert w in text, (w, text[:400])
        assert "1" * 100 not in text, "a 5,000-digit value must be quoted shortened"
    finally:
        visit.page.close()
