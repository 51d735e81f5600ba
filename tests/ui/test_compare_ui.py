"""Real-browser tests of the compare page (``apps/compare.py``) and the sweep results page
(``apps/results.py``).

Same machinery as the trainer's browser tests (``conftest.py``): ``panel serve`` on a free
port, headless Chromium through Playwright, values read from the ColumnDataSources the
browser holds, every check polling instead of sleeping.
"""

from __future__ import annotations

import pytest

from .conftest import LOAD_TIMEOUT, Page, wait_until

pytestmark = pytest.mark.ui

T = 90  # generous: shared 2-core machines


class AppPage(Page):
    """A Page whose readiness is one element of the app (not the trainer's status line)."""

    ready = ".cmp-samples"

    def wait_ready(self) -> None:
        self.page.wait_for_function(
            "() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle",
            timeout=LOAD_TIMEOUT * 1000)
        self.page.locator(self.ready).first.wait_for(timeout=LOAD_TIMEOUT * 1000)

    def count(self) -> int:
        text = self.text(".cmp-samples").strip()
        return int(text) if text.isdigit() else -1

    def titles(self) -> list[str]:
        return self.page.evaluate(
            "() => Array.from(Bokeh.documents[0].all_models).filter(m => m.type === 'Title' "
            "|| (m.constructor && m.constructor.__name__ === 'Title')).map(m => m.text)")


class ResultsPage(AppPage):
    ready = ".res-summary"


@pytest.fixture(scope="module")
def compare_server(app_server):
    return app_server("compare")


@pytest.fixture(scope="module")
def sweep_root(tmp_path_factory):
    """A run folder with one small sweep: three finished runs and one failed run."""
    from tests.workbench.pages.test_results import make_sweep

    root = tmp_path_factory.mktemp("runs")
    make_sweep(root)
    return root


@pytest.fixture(scope="module")
def results_server(app_server, sweep_root):
    return app_server("results", env={"SPIKEWB_RUNS": str(sweep_root)})


@pytest.fixture
def open_app(open_url):
    def _open(server, query: str = "", cls=AppPage, viewport=(1500, 1100)):
        return open_url(server.url + query, cls=cls, viewport=viewport)

    return _open


def _curve(p: AppPage, k: int, column: str = "acc") -> list:
    return p.source(f"cmp-curve-{k}", column) or []


def test_same_setup_draws_identical_curves(open_app, compare_server):
    p = open_app(compare_server, "?panes=desire,desire&hidden1=40&hidden2=40")
    wait_until(lambda: p.count() == 0, T, message="status line")
    # Step: exactly one lock-step sample, shown in both panes
    p.button("Step").click()
    wait_until(lambda: p.count() == 1, T, message="one step")
    wait_until(lambda: all(p.source(f"cmp-raster-{k}", "image") for k in (0, 1)), T, message="both rasters")
    p.button("Play").click()
    wait_until(lambda: p.count() >= 400, T, message="400 samples")
    p.button("Pause").click()
    wait_until(lambda: "paused" in p.text(".cmp-state"), T, message="paused")
    n = p.count()
    wait_until(lambda: len(_curve(p, 0)) >= n // 10 and len(_curve(p, 1)) >= n // 10, T, message="curves")
    a, b = _curve(p, 0), _curve(p, 1)
    assert len(a) >= 40 and a == b  # same rule, seed and settings: the same curve, point for point
    assert _curve(p, 0, "loss") == _curve(p, 1, "loss")
    # throughput readout per pane
    assert int(p.text(".cmp-rate-0 .cmp-sps")) > 0 and int(p.text(".cmp-rate-1 .cmp-sps")) > 0
    p.screenshot("compare-identical", full_page=True)
    # Reset: back to sample 0, curves cleared
    p.button("Reset").click()
    wait_until(lambda: p.count() == 0 and not _curve(p, 0), T, message="reset")
    assert p.errors == [], p.errors
    assert p.failed_requests == [], p.failed_requests


def test_different_settings_diverge_and_encodings_shown(open_app, compare_server):
    p = open_app(compare_server, "?panes=desire,desire,stidi&hidden1=40&hidden2=40&lr2=0.05&hidden3=40")
    wait_until(lambda: p.count() == 0, T, message="status line")
    p.button("Play").click()
    wait_until(lambda: p.count() >= 150, T, message="150 samples")
    p.button("Pause").click()
    wait_until(lambda: all(len(_curve(p, k, "loss")) >= 10 for k in range(3)), T, message="three curves")
    assert _curve(p, 0, "loss")[:10] != _curve(p, 1, "loss")[:10]
    # each pane shows its own encoding of the shared sample: rate code vs time to first spike
    wait_until(lambda: all(p.source(f"cmp-enc-{k}", "image") for k in range(3)), T, message="encodings")
    titles = p.titles()
    assert "spikes per input (rate)" in titles and "first-spike time" in titles, titles
    p.screenshot("compare-three-panes", full_page=True)
    assert p.errors == [], p.errors


def test_bad_url_values_are_reported_not_fatal(open_app, compare_server):
    p = open_app(compare_server, "?panes=desire,nosuchrule&lr1=-3&hidden2=99999999")
    notice = p.page.locator(".cmp-msg-warning").first
    notice.wait_for(timeout=T * 1000)
    text = lambda: notice.evaluate("el => (el.shadowRoot || el).textContent || ''")  # noqa: E731
    # one notice lists every problem: the unknown rule, the refused rate and the refused size
    wait_until(lambda: all(w in text() for w in ("nosuchrule", "lr1", "hidden2")), T, message="warnings")
    assert p.count() == 0
    assert p.errors == [], p.errors


def test_results_page_lists_the_runs(open_app, results_server, sweep_root):
    p = open_app(results_server, "", cls=ResultsPage)
    wait_until(lambda: p.page.locator(".tabulator-row").count() == 4, T, message="4 table rows")
    assert "4" in p.text(".res-count")
    # accuracy curves of the (pre-)selected finished runs, parameter plot of all runs
    wait_until(lambda: len(p.source("res-curves", "run") or []) == 3, T, message="curves")
    assert len(p.source("res-param", "x")) == 3  # the failed run has no accuracy to plot
    links = p.page.locator(".tabulator-row a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert len(links) == 3 and all(h.startswith("./trainer?checkpoint=sweep1/") for h in links), links
    p.screenshot("results-page", full_page=True)
    assert p.errors == [], p.errors


def test_results_page_refuses_paths_outside_the_run_folder(open_app, results_server):
    p = open_app(results_server, "?dir=../../etc", cls=ResultsPage)
    wait_until(lambda: "outside the run folder" in p.page.content() or
               p.page.get_by_text("outside the run folder").count() > 0, T, message="refusal")
    assert p.errors == [], p.errors


def test_open_link_loads_the_checkpoint_in_the_trainer(app_server, sweep_root, open_app):
    trainer = app_server("trainer", env={"SPIKEWB_RUNS": str(sweep_root)})
    p = open_app(trainer, "?checkpoint=sweep1/lr%3D0.01/checkpoint.npz", cls=Page)
    wait_until(lambda: "784-10-10" in p.text(".wb-net"), T, message="the checkpoint's network")
    assert p.state() == "paused"
    assert p.errors == [], p.errors
