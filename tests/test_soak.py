"""Soak: the trainer app open in Chromium, training, for an hour (``make soak``).

Skipped unless pytest runs with ``--run-soak``.  One ``spikewb serve``
process, one headless Chromium page on the trainer (default network), Train
pressed once.  Every ``SPIKEWB_SOAK_INTERVAL`` seconds (default 60) the test
samples the server's resident memory (``/proc``, from outside), the page's JS
heap (Chrome DevTools protocol, after a forced garbage collection), the
sample counter and the status line.  It asserts

* no console errors, no session error, training never stopped;
* memory drift under 50 MB, for the server and for the browser: the growth
  from the first sample after the warm-up (``SPIKEWB_SOAK_WARMUP``, default
  5 minutes, or a third of a shorter run) to the end of the run.

The samples go to ``test-artifacts/soak-<date>.csv``.  Duration:
``SPIKEWB_SOAK_SECONDS`` (default 3600).
"""

from __future__ import annotations

import csv
import os
import time

import pytest

from tests.ui.conftest import (ARTIFACTS, Page, browser, chromium_executable,  # noqa: F401 (fixtures)
                               playwright_instance, wait_until)
from tests.ui.serving import start_server

pytestmark = [pytest.mark.soak, pytest.mark.ui]

DURATION = float(os.environ.get("SPIKEWB_SOAK_SECONDS", "3600"))
INTERVAL = float(os.environ.get("SPIKEWB_SOAK_INTERVAL", str(min(60.0, max(DURATION / 10, 5.0)))))
WARMUP = float(os.environ.get("SPIKEWB_SOAK_WARMUP", str(min(300.0, DURATION / 3))))
#: Largest allowed growth after the warm-up (MB), server and browser each.
MAX_DRIFT_MB = 50.0


def _js_heap_mb(cdp) -> float:
    cdp.send("HeapProfiler.collectGarbage")
    return cdp.send("Runtime.getHeapUsage")["usedSize"] / 2**20


def test_soak_trainer_page(browser):  # noqa: F811 (fixture)
    server = start_server("--max-training", "2", "--idle-timeout", str(int(DURATION + 3600)))
    ctx = None
    rows: list[dict] = []
    path = ARTIFACTS / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    try:
        ctx = browser.new_context(viewport={"width": 1500, "height": 1100})
        p = Page(ctx, server.url)
        cdp = ctx.new_cdp_session(p.page)
        p.button("\u25b6 Train").click()
        wait_until(lambda: p.samples() > 0, 120, message="training to start")
        t0 = time.monotonic()
        while True:
            t = time.monotonic() - t0
            rows.append({"t_s": round(t, 1), "server_rss_mb": round(server.rss_mb(), 2),
                         "js_heap_mb": round(_js_heap_mb(cdp), 2), "samples": p.samples(),
                         "frames": p.text(".wb-frames"), "state": p.state(),
                         "server_sessions": server.health()["sessions"]})
            print(rows[-1], flush=True)
            with open(path, "w", newline="") as fh:  # rewritten each time: a killed run keeps its data
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
            assert rows[-1]["state"] == "training", rows[-1]
            assert p.errors == [], p.errors
            if t >= DURATION:
                break
            time.sleep(max(0.0, min(INTERVAL, DURATION - t) - (time.monotonic() - t0 - t)))
        assert rows[-1]["samples"] > rows[0]["samples"], "training advanced"
        after = [r for r in rows if r["t_s"] >= WARMUP]
        assert len(after) >= 2, f"run too short for a drift after a {WARMUP:.0f} s warm-up"
        drift_server = after[-1]["server_rss_mb"] - after[0]["server_rss_mb"]
        drift_js = after[-1]["js_heap_mb"] - after[0]["js_heap_mb"]
        print(f"\nsoak {DURATION:.0f} s, {len(rows)} samples -> {path}\n"
              f"server RSS {rows[0]['server_rss_mb']:.0f} -> {after[0]['server_rss_mb']:.0f} (after warm-up) "
              f"-> {after[-1]['server_rss_mb']:.0f} MB: drift {drift_server:+.1f} MB; "
              f"JS heap {rows[0]['js_heap_mb']:.1f} -> {after[0]['js_heap_mb']:.1f} -> "
              f"{after[-1]['js_heap_mb']:.1f} MB: drift {drift_js:+.1f} MB; "
              f"{rows[-1]['samples'] - rows[0]['samples']} samples trained")
        assert drift_server < MAX_DRIFT_MB, f"server memory grew {drift_server:.1f} MB after the warm-up"
        assert drift_js < MAX_DRIFT_MB, f"browser JS heap grew {drift_js:.1f} MB after the warm-up"
        assert not p.page.locator(".wb-session-error").first.is_visible()
    finally:
        if ctx is not None:
            ctx.close()
        server.stop()
