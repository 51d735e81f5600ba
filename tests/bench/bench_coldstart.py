"""Cold start: seconds from ``spikewb serve`` to a usable trainer page, with and without the numba cache.

For each case a fresh ``spikewb serve`` process is started on a free port with
``NUMBA_CACHE_DIR`` pointing to a temporary directory:

* **cold**: the directory is empty, so every numba kernel compiles (what a
  first start after installation costs; ``spikewb serve`` warms the kernels
  before it listens);
* **warm**: the same directory again, now filled by the cold run.

Measured from the moment the process is spawned:

* ``HTTP 200``: the first ``GET /trainer`` answered (the browser's own
  request; readiness is polled every 50 ms on ``/health``, which builds no page);
* ``first plotted frame`` (only when Playwright and ``/usr/bin/chromium`` are
  available): headless Chromium opens the page, clicks "▶ Train" as soon as it
  is visible, and the time is taken when the browser's ``wb-raster``
  ColumnDataSource first holds spikes.  The browser is launched before the
  clock starts.  The notes give the phases (server listening, HTML received,
  page ready, clicked).

Python's own bytecode cache is warm in both cases (written first with
:func:`spikewb.workbench.cli.compile_bytecode`).  Quick mode (CI): only the
warm case with the repository's numba cache and no browser; the cold rows
stay in the table with empty values.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from spikewb.workbench.cli import compile_bytecode  # noqa: E402

CHROMIUM = os.environ.get("SPIKEWB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT = float(os.environ.get("SPIKEWB_COLDSTART_TIMEOUT", "300"))
TARGET_WARM = 5.0

M_HTTP = "seconds from `spikewb serve` to HTTP 200 of /trainer"
M_FRAME = "seconds from `spikewb serve` to first plotted training frame"
METRICS = [f"{M_HTTP} (cold numba cache)", f"{M_FRAME} (cold numba cache)",
           f"{M_HTTP} (warm numba cache)", f"{M_FRAME} (warm numba cache)"]

JS_RASTER = """() => { if (!window.Bokeh) return 0; for (const d of Bokeh.documents) {
    const m = d.get_model_by_name('wb-raster'); if (m) { const k = Object.keys(m.data)[0];
    return k ? m.data[k].length : 0; } } return 0; }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spikewb() -> list[str]:
    exe = Path(sys.executable).with_name("spikewb")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "spikewb.workbench.cli"]


def _browser():
    """(playwright context manager, browser) or (None, None) when unavailable."""
    if not Path(CHROMIUM).exists():
        return None, None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None, None
    pw = sync_playwright().start()
    try:
        return pw, pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    except Exception:
        pw.stop()
        return None, None


def measure(cache_dir: str, browser=None) -> dict:
    """Start ``spikewb serve`` with ``cache_dir``; return seconds to HTTP 200 and to the first frame.

    Readiness is polled on ``/health``, which builds no page: polling ``/trainer``
    itself would build (and throw away) a whole trainer page before the browser
    asks for its own.  ``http`` is when the first ``/trainer`` response arrived
    (the browser's, when there is one); ``phases`` breaks the time down.
    """
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/trainer"
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    log = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(_spikewb() + ["serve", "--port", str(port), "--address", "127.0.0.1"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    out = dict(http=None, frame=None, error="", phases={})
    since = lambda: time.perf_counter() - t0  # noqa: E731
    try:
        while "listening" not in out["phases"]:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"spikewb serve exited {proc.returncode}: {log.read().decode()[-500:]}")
            if since() > TIMEOUT:
                raise TimeoutError(f"no answer on /health within {TIMEOUT} s")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=TIMEOUT) as r:
                    if r.status == 200:
                        out["phases"]["listening"] = since()
            except OSError:
                time.sleep(0.05)
        if browser is None:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
                if r.status == 200:
                    out["http"] = since()
        else:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            try:
                page.set_default_timeout(TIMEOUT * 1000)
                response = page.goto(url, wait_until="commit")  # returns when the page's HTML arrived
                if response is not None and response.ok:
                    out["http"] = since()
                button = page.get_by_role("button", name="\u25b6 Train")
                button.wait_for(state="visible")
                out["phases"]["page ready"] = since()
                button.click()
                out["phases"]["clicked"] = since()
                page.wait_for_function(f"() => ({JS_RASTER})() > 0", timeout=TIMEOUT * 1000, polling=50)
                out["frame"] = since()
            finally:
                page.close()
    except Exception as exc:  # reported in the row, the other rows still run
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    return out


def phase_note(case: dict) -> str:
    """``listening 2.8 s, HTML 5.4 s, page ready 7.9 s, clicked 8.2 s`` (seconds from the spawn)."""
    marks = dict(case["phases"])
    if case["http"] is not None:
        marks["HTML"] = case["http"]
    return ", ".join(f"{k} {v:.1f} s" for k, v in sorted(marks.items(), key=lambda kv: kv[1]))


def _row(metric, value, note, target=""):
    return dict(metric=metric, value=value, unit="s", reference="target" if target else "",
                reference_value=TARGET_WARM if target else None,
                ratio=(TARGET_WARM / value) if (target and value) else None, target=target, notes=note)


def run(quick: bool = False) -> list[dict]:
    compile_bytecode()  # what an installed package has; this machine sets PYTHONDONTWRITEBYTECODE
    pw, browser = (None, None) if quick else _browser()
    no_browser = "quick mode: no browser" if quick else "Playwright or /usr/bin/chromium not available"
    try:
        if quick:
            cold = dict(http=None, frame=None, error="skipped in quick mode")
            warm = measure(os.environ.get("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache")))
        else:
            tmp = tempfile.mkdtemp(prefix="spikewb-numba-")
            try:
                cold = measure(tmp, browser)
                warm = measure(tmp, browser)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if browser is not None:
            browser.close()
            pw.stop()
    frame_note = lambda case: case["error"] or ("" if browser else no_browser)  # noqa: E731
    how = "headless Chromium, click Train, first raster data"
    return [
        _row(METRICS[0], cold["http"], cold["error"] or "empty temporary NUMBA_CACHE_DIR; serve warms the default rule before listening, the rest in the background"),
        _row(METRICS[1], cold["frame"], frame_note(cold) or f"{how}; {phase_note(cold)}"),
        _row(METRICS[2], warm["http"], warm["error"] or ("repository NUMBA_CACHE_DIR (quick mode)" if quick
                                                          else "NUMBA_CACHE_DIR filled by the cold run"),
             target=f"< {TARGET_WARM:g} s"),
        _row(METRICS[3], warm["frame"], frame_note(warm) or f"{how}; {phase_note(warm)}",
             target=f"< {TARGET_WARM:g} s"),
    ]


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(r)
