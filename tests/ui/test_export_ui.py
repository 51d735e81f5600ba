"""The exported HTML of a recording, opened from disk in Chromium with the network cut off.

Every request but the file itself is refused (and counted); the page must
draw the raster, potentials and learning signal of the chosen sample, follow
the slider's buttons and the arrow keys, and show hostile text from the
recording as text.
"""

from __future__ import annotations

import numpy as np
import pytest

from spikewb.engine.data.datasets import load_dataset
from spikewb.engine.frame import Record
from spikewb.engine.network import Architecture
from spikewb.engine.recording import Recording
from spikewb.engine.rules import make_rule
from spikewb.engine.training.checkpoint import load_checkpoint
from spikewb.engine.training.trainer import Trainer
from spikewb.workbench.export import export_html

from .conftest import ARTIFACTS, LOAD_TIMEOUT, wait_until

pytestmark = pytest.mark.ui

#: Script in the recording's own text: the rule name, the dataset and a layer name.
PAYLOADS = {"rule": "<img src=x onerror=__pwned=1>",            # (the page shows 40 characters of each)
            "dataset": "</script><script>__pwned=2</script>"}


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    data = load_dataset("mnist-5k").subset(n_train=60, n_test=10)
    trainer = Trainer(make_rule("desire"), data, Architecture(n_inputs=784, hidden=[20], n_outputs=10), seed=1)
    rec = Recording(every=10, record=Record(spikes=True, neurons=((1, 0), (1, 5), (2, 3))), info=dict(PAYLOADS))
    trainer.fit(1, callback=rec, on_epoch=rec, record=rec.record)
    rec.layer_names = (rec.layer_names[0], "<b onmouseover=alert(1)>hidden</b>", rec.layer_names[2])
    path = tmp_path_factory.mktemp("export") / "run.html"
    export_html(rec, path)
    return rec, path


def _open_offline(browser, path):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1500})
    refused, errors = [], []

    def route(r):
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()
    ctx.route("**/*", route)
    page = ctx.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(path.as_uri())
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle",
                           timeout=LOAD_TIMEOUT * 1000)
    return ctx, page, refused, errors


def _cols(page, name, *cols):
    return page.evaluate("""([n, cols]) => { const m = Bokeh.documents[0].get_model_by_name(n);
        const o = {}; for (const c of cols) o[c] = m ? Array.from(m.data[c] || []) : null; return o; }""",
                         [name, list(cols)])


class _Info:
    """The text line under the slider, as drawn in the page."""

    def __init__(self, page):
        self.page = page

    def inner_text(self) -> str:
        return self.page.get_by_text("training step", exact=False).first.inner_text()


def _events(rec, k):
    """(time, layer) of every spike of kept sample k, sorted: what the raster must hold."""
    out = []
    for l in range(rec.n_layers):
        t, _ = rec.spikes(l, k)
        out += [(round(float(a), 3), l) for a in t]
    return sorted(out)


def _shown(page):
    c = _cols(page, "exp-raster", "t", "layer")
    return sorted((round(a, 3), int(l)) for a, l in zip(c["t"], c["layer"]))


def test_exported_run_scrubs_offline_and_shows_hostile_text_as_text(browser, recording):
    rec, path = recording
    n = len(rec)
    ctx, page, refused, errors = _open_offline(browser, path)
    try:
        info = _Info(page)                                                         # the line under the slider
        wait_until(lambda: f"kept sample {n} of {n}" in info.inner_text(), 30, message="the last sample shown")
        assert _shown(page) == _events(rec, n - 1) and len(_events(rec, n - 1)) > 100

        # potentials of the traced neurons and the learning signal of the shown sample
        ids, t, v = rec.traces(n - 1)
        trace = _cols(page, "exp-trace-1", "t", "v")
        assert np.allclose(trace["t"], t) and np.allclose(trace["v"], v[1], atol=1e-6)
        sig = _cols(page, "exp-signal", "v")["v"]
        want = np.concatenate([rec.signal(1)[n - 1], rec.signal(2)[n - 1]])
        assert np.array_equal(np.array(sig), want) and np.abs(want).sum() > 0

        # the Previous button, then the left arrow key: two samples back; the right arrow one forward
        page.get_by_role("button", name="\u25c0 Previous").click()
        wait_until(lambda: f"kept sample {n - 1} of {n}" in info.inner_text(), 10, message="previous sample")
        assert _shown(page) == _events(rec, n - 2)
        page.locator("body").press("ArrowLeft")
        wait_until(lambda: f"kept sample {n - 2} of {n}" in info.inner_text(), 10, message="arrow key")
        assert _shown(page) == _events(rec, n - 3) != _events(rec, n - 1)
        assert np.allclose(_cols(page, "exp-trace-1", "v")["v"], rec.traces(n - 3)[2][1], atol=1e-6)
        assert page.evaluate("() => Bokeh.documents[0].get_model_by_name('exp-marker').location") == \
            int(rec.steps[n - 3])
        page.locator("body").press("ArrowRight")
        wait_until(lambda: f"kept sample {n - 1} of {n}" in info.inner_text(), 10, message="right arrow")

        # hostile text from the recording: shown literally, never run
        page.wait_for_timeout(300)
        assert page.evaluate("() => window.__pwned === undefined")
        title = page.get_by_text("Recorded run:", exact=False).first.inner_text()   # what the visitor sees
        assert PAYLOADS["rule"] in title and PAYLOADS["dataset"] in title
        assert page.title().startswith("Recorded run: <img src=x")
        page.screenshot(path=str(ARTIFACTS / "export-offline.png"), full_page=True)
        assert refused == [], f"the page asked for {refused}"
        assert errors == [], errors
    finally:
        ctx.close()


def _download(p, widget: str, path):
    """Click the FileDownload widget with CSS class ``widget`` and save what the browser receives."""
    button = p.page.locator(f"{widget} button, {widget} a").first
    button.scroll_into_view_if_needed()
    with p.page.expect_download(timeout=60_000) as got:
        button.click()
    got.value.save_as(path)
    return path


def test_trainer_page_downloads_its_recent_samples_as_offline_html(open_page, browser, tmp_path):
    # both downloads are coroutines whose work runs off the server's event loop
    p = open_page("?hidden=30")
    p.button("\u25b6 Train").click()
    wait_until(lambda: p.samples() >= 20, 120, message="some training")
    p.button("\u23f8 Pause").click()
    path = _download(p, ".wb-export-html", tmp_path / "recent.html")
    wait_until(lambda: "Exported" in p.pane_text(".wb-message"), 10, message="the export note")
    p.screenshot("export-download")
    assert path.stat().st_size > 500_000                       # BokehJS is inline
    ctx, page, refused, errors = _open_offline(browser, path)
    try:
        info = _Info(page)
        text = wait_until(info.inner_text, 30, message="the exported page's sample line")
        n = int(text.split(" of ")[1].split()[0])
        assert n >= 2 and f"kept sample {n} of {n}" in text
        assert len(_cols(page, "exp-raster", "t")["t"]) > 50   # the last shown sample's spikes
        assert len(_cols(page, "exp-trace-0", "v")["v"]) > 5    # a traced neuron's potential
        page.get_by_role("button", name="\u25c0 Previous").click()
        wait_until(lambda: f"kept sample {n - 1} of {n}" in info.inner_text(), 10, message="previous sample")
        assert refused == [] and errors == []
    finally:
        ctx.close()

    # the checkpoint, saved while the network trains: taken between two samples, and it loads
    p.button("\u25b6 Train").click()
    before = p.samples()
    wait_until(lambda: p.samples() > before, 60, message="training again")
    meta, weights, _ = load_checkpoint(_download(p, ".wb-save-ckpt", tmp_path / "saved.npz"))
    assert [w.shape for w in weights] == [(784, 30), (30, 10)]
    assert meta["rule"] == "desire" and meta["steps"] >= 20
    wait_until(lambda: "Checkpoint saved" in p.pane_text(".wb-message"), 10, message="the saved note")
    grew = p.samples()
    wait_until(lambda: p.samples() > grew, 60, message="training goes on after the save")
