"""Live UI cost: training throughput with the trainer page open vs headless, same run.

Workload: the default trainer app (Desire BP, 784-1000-100-10, T = 20, mnist-5k).

1. **Headless reference**: a :class:`~spikewb.workbench.sessions.session.TrainingSession` in this
   process (the same worker and publishing as behind a page, nobody taking the
   frames), trained from the same seed for the same window; measured before
   *and* after the browser phase and averaged, so slow drifts of a shared
   machine's load cancel.  A plain ``Trainer.step`` loop is reported too (the
   session's own overhead), also before and after and averaged.
2. **With the page open**: ``panel serve apps/trainer.py`` in a subprocess,
   the page opened in headless Chromium (Debian package, Playwright), *Train*
   pressed; after a warm-up the samples counter shown in the page is read at
   the start and end of the window (exact to 0.1 s).
3. **Rendered view updates/s**: a ``requestAnimationFrame`` loop injected in
   the page counts animation frames in which the raster's data object changed
   (a new frame reached the screen); also reported: ColumnDataSource change
   events/s applied by BokehJS, the rAF rate and frames shown / produced.
4. **Tab memory**: Chrome DevTools ``Performance.getMetrics`` JSHeapUsedSize
   after a forced garbage collection, at the start of the window and after
   the soak (10 minutes in the full run, 30 s in quick mode).

Targets (issue 4): throughput with the page >= 85 % of headless, >= 20
rendered updates/s, tab memory growth <= 50 MB after 10 minutes.  On the
2-core reference machine the browser, the server and the worker share two
cores (``reference/live_streaming.md``); read the ratios with that in mind.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CHROMIUM = os.environ.get("SPIKEWB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

_COUNTERS_JS = """() => {
  const doc = Bokeh.documents[0];
  const src = doc.get_model_by_name('wb-raster');
  const w = window.__wb = {rendered: 0, changes: 0, raf: 0, t0: performance.now()};
  src.change.connect(() => { w.changes++; });
  let last = src.data;
  const tick = () => {
    w.raf++;
    if (src.data !== last) { last = src.data; w.rendered++; }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  return true;
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def _headless(seconds: float, warm: float, refresh: float) -> float:
    """Samples/s of a TrainingSession nobody watches, over ``seconds`` after ``warm``."""
    from spikewb.workbench.sessions.session import TrainingSession

    s = TrainingSession(seed=0)
    s.publish_interval = 0.5 / refresh  # as behind a page refreshing at ``refresh`` Hz
    try:
        s.step().result(timeout=120)  # loads / compiles the kernels
        s.play()
        time.sleep(warm)
        s.sync()
        n0, t0 = s.samples, time.perf_counter()
        time.sleep(seconds)
        s.sync()
        return (s.samples - n0) / (time.perf_counter() - t0)
    finally:
        s.close()


def _plain_trainer(seconds: float) -> float:
    from spikewb.engine.data.datasets import load_dataset
    from spikewb.engine.rules import make_rule
    from spikewb.engine.training.trainer import Trainer

    tr = Trainer(make_rule("desire"), load_dataset("mnist-5k"), seed=0)
    tr.step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        tr.step()
        n += 1
    return n / (time.perf_counter() - t0)


class _Server:
    def __init__(self, log_dir: Path):
        self.port = _free_port()
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(log_dir / f"bench-ui-serve-{self.port}.log", "wb")
        cmd = [sys.executable, "-m", "panel", "serve", str(ROOT / "apps" / "trainer.py"), "--port", str(self.port),
               "--address", "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{self.port}", "--liveness",
               "--check-unused-sessions", "1000"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "BOKEH_BROWSER": "none"})
        self.url = f"http://127.0.0.1:{self.port}/trainer"

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("panel serve exited")
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/liveness", timeout=5) as r:
                return r.status == 200
        _wait(up, 120, "panel serve")

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def _thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds per thread of a process (Linux /proc; empty elsewhere)."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    except OSError:
        pass
    return out


def _metrics(cdp) -> dict[str, float]:
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}


def _heap_mb(cdp) -> float:
    cdp.send("HeapProfiler.collectGarbage")
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return metrics["JSHeapUsedSize"] / 1e6


def _with_page(seconds: float, warm: float, soak: float, refresh: float | None) -> dict:
    from playwright.sync_api import sync_playwright

    exe = shutil.which(CHROMIUM) or CHROMIUM
    if not os.path.exists(exe):
        raise FileNotFoundError(f"Chromium not found at {CHROMIUM} (set SPIKEWB_CHROMIUM)")
    server = _Server(ROOT / "test-artifacts")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
            ctx = browser.new_context(viewport={"width": 1500, "height": 1100})
            page = ctx.new_page()
            page.set_default_timeout(120_000)
            query = f"?refresh={refresh:g}" if refresh else ""
            page.goto(server.url + query)
            page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle",
                                   timeout=120_000)
            page.locator(".wb-samples").wait_for()
            _wait(lambda: page.locator(".wb-samples").first.inner_text().strip().isdigit(), 60, "status values")
            cdp = ctx.new_cdp_session(page)
            cdp.send("Performance.enable")

            def samples() -> int:
                return int(page.locator(".wb-samples").first.inner_text())

            def frames() -> tuple[int, int]:
                a, b = page.locator(".wb-frames").first.inner_text().split("/")
                return int(a), int(b)

            page.evaluate(_COUNTERS_JS)
            page.get_by_role("button", name="\u25b6 Train").click()
            _wait(lambda: samples() > 0, 120, "training to start")
            time.sleep(warm)
            heap0 = _heap_mb(cdp)
            c0 = page.evaluate("() => ({...window.__wb, now: performance.now()})")
            m0, cpu0 = _metrics(cdp), _thread_cpu(server.proc.pid)
            n0, f0, t0 = samples(), frames(), time.perf_counter()
            time.sleep(seconds)
            c1 = page.evaluate("() => ({...window.__wb, now: performance.now()})")
            m1, cpu1 = _metrics(cdp), _thread_cpu(server.proc.pid)
            n1, f1, t1 = samples(), frames(), time.perf_counter()
            if soak > seconds + warm:
                time.sleep(soak - seconds - warm)
            heap1 = _heap_mb(cdp)
            total = time.perf_counter() - t0 + warm
            page.get_by_role("button", name="\u23f8 Pause").click()
            ctx.close()
            browser.close()
        dt_js = (c1["now"] - c0["now"]) / 1000.0
        used = {tid: cpu1[tid] - cpu0.get(tid, 0.0) for tid in cpu1}
        worker = max(used.values(), default=0.0)
        server_cores = (sum(used.values()) - worker) / (t1 - t0)
        browser_cores = (m1["TaskDuration"] - m0["TaskDuration"]) / (t1 - t0)
        return dict(worker_cores=worker / (t1 - t0), server_cores=server_cores, browser_cores=browser_cores,rate=(n1 - n0) / (t1 - t0), rendered=(c1["rendered"] - c0["rendered"]) / dt_js,
                    changes=(c1["changes"] - c0["changes"]) / dt_js, raf=(c1["raf"] - c0["raf"]) / dt_js,
                    shown=(f1[0] - f0[0]) / (t1 - t0), produced=(f1[1] - f0[1]) / (t1 - t0),
                    heap0=heap0, heap1=heap1, soak=total)
    finally:
        server.close()


def run(quick: bool = False) -> list[dict]:
    window = 15.0 if quick else 60.0
    warm = 3.0 if quick else 10.0
    # tab-memory window; SPIKEWB_BENCH_SOAK_S shortens the 10-minute full-mode soak
    soak = 30.0 if quick else float(os.environ.get("SPIKEWB_BENCH_SOAK_S", "600"))
    base = 8.0 if quick else 20.0
    plain_s = 5.0 if quick else 15.0
    plain_before = _plain_trainer(plain_s)
    from spikewb.workbench.pages.trainer import TrainerWorkbench

    refresh = float(os.environ.get("SPIKEWB_BENCH_REFRESH", "0")) or None  # page refresh rate, Hz
    rate = refresh or float(TrainerWorkbench.param["refresh_hz"].default)
    before = _headless(base, warm, rate)
    page = _with_page(window, warm, soak, refresh)
    after = _headless(base, warm, rate)
    plain_after = _plain_trainer(plain_s)  # before and after, like the headless session: load drifts
    headless = (before + after) / 2
    plain = (plain_before + plain_after) / 2
    rows = [
        dict(metric="training samples/s, plain Trainer.step loop (no session)", value=plain, unit="samples/s",
             notes=f"784-1000-100-10 Desire BP, cheap record, single thread; before {plain_before:.0f}, "
                   f"after {plain_after:.0f} samples/s"),
        dict(metric="training samples/s, headless session (nobody watching)", value=headless, unit="samples/s",
             reference="plain Trainer.step loop", reference_value=plain, ratio=headless / plain,
             notes=f"before {before:.0f}, after {after:.0f} samples/s; full frames published at "
                   f"{2 * rate:g} Hz as behind the page"),
        dict(metric="training samples/s with the trainer page open in Chromium", value=page["rate"],
             unit="samples/s", reference="headless session, same run", reference_value=headless,
             ratio=page["rate"] / headless, target="ratio >= 0.85",
             notes=f"{window:.0f} s window after {warm:.0f} s warm-up; counter read from the page; "
                   f"page refresh {rate:g} Hz"),
        dict(metric="view updates rendered in the browser per second", value=page["rendered"], unit="1/s",
             reference="target (issue 4)", reference_value=20.0, ratio=page["rendered"] / 20.0, target=">= 20",
             notes=f"rAF frames with a new raster; rAF {page['raf']:.1f} Hz, BokehJS CDS changes "
                   f"{page['changes']:.1f}/s, frames shown/produced {page['shown']:.1f}/{page['produced']:.1f} per s"),
        dict(metric="CPU with the page open: worker / rest of the server / browser main thread",
             value=page["worker_cores"], unit="cores",
             notes=f"worker {page['worker_cores']:.2f}, server without worker {page['server_cores']:.2f}, "
                   f"browser main thread busy {page['browser_cores']:.2f} cores (CDP TaskDuration); 2-core machine "
                   f"load average {os.getloadavg()[0]:.1f} at the end"),
        dict(metric="browser tab JS heap growth (after GC)", value=page["heap1"] - page["heap0"], unit="MB",
             reference="limit", reference_value=50.0,
             ratio=50.0 / max(page["heap1"] - page["heap0"], 0.1), target="<= 50 MB after 10 min",
             notes=f"{page['heap0']:.1f} -> {page['heap1']:.1f} MB over {page['soak']:.0f} s of training"),
    ]
    return [{"benchmark": "ui", **r} for r in rows]


if __name__ == "__main__":
    import json

    for row in run(quick="--quick" in sys.argv):
        print(json.dumps(row))
