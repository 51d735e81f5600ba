"""The trainer workbench inline in a real JupyterLab, driven from headless Chromium.

The test starts JupyterLab on a free port (its own config and runtime folders),
opens a notebook that displays ``spikewb.TrainerWorkbench``, runs it, presses
Train in the notebook's output and checks that the sample counter and the
spike raster change.  (Pause is not checked here: in a notebook its click
reaches a training kernel only after a long delay, see docs/notebooks.md.)  BokehJS and Panel's
JavaScript come inline (``pn.extension(inline=True)``): no internet needed.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import urllib.request

import nbformat
import pytest

from .conftest import ARTIFACTS, IN_CI, LOAD_TIMEOUT, free_port, stays_constant, wait_until

pytestmark = [pytest.mark.ui, pytest.mark.timed]  # times the server: runs alone (Makefile)

CELLS = ["import panel as pn\nimport spikewb\npn.extension(inline=True)",
         'wb = spikewb.TrainerWorkbench(rule="desire", hidden=[40])\nwb']


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        if IN_CI:
            pytest.fail("jupyterlab is not installed (it is a test dependency)", pytrace=False)
        pytest.skip("jupyterlab is not installed")
    root = tmp_path_factory.mktemp("lab")
    book = nbformat.v4.new_notebook()
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    book.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    nbformat.write(book, root / "inline.ipynb")
    port, token = free_port(), secrets.token_hex(12)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / ".cfg"), "JUPYTER_RUNTIME_DIR": str(root / ".run"),
           "IPYTHONDIR": str(root / ".ipython"), "JUPYTER_PLATFORM_DIRS": "1"}
    args = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=", "--ServerApp.port_retries=0"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / f"jupyterlab-{port}.log", "wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                return r.status == 200
        except OSError:
            assert proc.poll() is None, f"JupyterLab exited with {proc.returncode} (see {log.name})"
            return False
    try:
        wait_until(up, LOAD_TIMEOUT, 0.5, "JupyterLab to answer")
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


#: The sum of the raster image's pixels in the notebook's Bokeh documents (changes with every sample).
_RASTER = """() => {
  for (const doc of (window.Bokeh ? Bokeh.documents : [])) {
    const m = doc.get_model_by_name("wb-raster");
    if (m) { let s = 0; for (const im of m.data.image || []) { for (const v of im) s += v; } return s; }
  }
  return null;
}"""


def test_trainer_workbench_trains_live_inline_in_jupyterlab(browser, jupyterlab):
    base, token = jupyterlab
    ctx = browser.new_context(viewport={"width": 1500, "height": 1200})
    page = ctx.new_page()
    page.set_default_timeout(LOAD_TIMEOUT * 1000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{base}/lab/tree/inline.ipynb?token={token}")
        page.wait_for_function("() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                               " return !!(w && w.sessionContext && w.sessionContext.isReady); }",
                               timeout=LOAD_TIMEOUT * 1000)
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        train = page.get_by_role("button", name="\u25b6 Train")
        train.wait_for(timeout=2 * LOAD_TIMEOUT * 1000)   # kernel start, imports and the first render

        def samples() -> int:
            text = page.locator(".wb-samples").first.inner_text().strip()
            return int(text) if text.isdigit() else -1
        wait_until(lambda: samples() == 0, 30, message="the status line of an untrained session")
        assert stays_constant(samples, 1.0) == [0]                     # nothing trains before Train
        before = page.evaluate(_RASTER)

        train.click()
        wait_until(lambda: samples() >= 50, 60, message="samples counted while training")
        wait_until(lambda: page.evaluate(_RASTER) not in (None, before), 30, message="the raster to change")
        first = page.evaluate(_RASTER)
        wait_until(lambda: page.evaluate(_RASTER) != first, 30, message="the raster to keep changing")
        page.screenshot(path=str(ARTIFACTS / "jupyterlab-inline-training.png"))

        assert errors == [], errors
    finally:
        ctx.close()


def test_show_serves_the_same_object_and_its_controls_answer(browser):
    """``wb.show()``: the object built in a script or notebook, served in a tab from this process."""
    import spikewb

    wb = spikewb.TrainerWorkbench(rule="desire", hidden=[30])
    port = free_port()
    server = wb.show(port=port, threaded=True, open=False)
    ctx = browser.new_context(viewport={"width": 1500, "height": 1100})
    try:
        page = ctx.new_page()
        page.set_default_timeout(LOAD_TIMEOUT * 1000)
        wait_until(lambda: page.goto(f"http://127.0.0.1:{port}/") is not None, 30, 0.5, "the served tab")
        train = page.get_by_role("button", name="\u25b6 Train")
        train.wait_for()
        wait_until(lambda: wb._callback is not None and wb.ticks > 2, 30, message="the page's periodic update")
        train.click()
        wait_until(lambda: wb.session.samples > 100, 60, message="training in this process")
        page.mouse.move(900, 700)          # off the Train button: its tooltip covers Pause
        pause = page.get_by_role("button", name="\u23f8 Pause")
        wait_until(pause.is_enabled, 10, message="Pause enabled while training")
        pause.click()
        wait_until(lambda: not wb.session.running, 5, 0.05, "Pause to stop the worker (served: at once)")
    finally:
        ctx.close()
        server.stop()
        wb.close()
