"""Fixtures for real-browser tests: ``panel serve`` on a free port + headless Chromium.

The browser is Debian's ``chromium`` package (``/usr/bin/chromium``, or
``$SPIKEWB_CHROMIUM``) driven by Playwright's Python API; Playwright's own
browser downloads are never used.  When the browser or Playwright is missing,
the tests are skipped locally and **fail** under CI (``CI=true``); as root,
a missing Chromium is installed with ``apt-get`` first (what the CI test
command relies on).

Screenshots and the server log go to ``test-artifacts/``.
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

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("SPIKEWB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: Slow, shared 2-core machines: generous timeouts for page loads and polling.
LOAD_TIMEOUT = float(os.environ.get("SPIKEWB_UI_TIMEOUT", "90"))


def _missing(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing browser is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def _find_chromium() -> str | None:
    found = shutil.which(CHROMIUM)
    if found:
        return found
    return CHROMIUM if os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK) else None


def _install_chromium() -> None:
    """apt-get install chromium (root only); output goes to test-artifacts/apt.log."""
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        return
    ARTIFACTS.mkdir(exist_ok=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open(ARTIFACTS / "apt.log", "ab") as log:
        subprocess.run(["apt-get", "update"], stdout=log, stderr=log, env=env, check=False, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                       stdout=log, stderr=log, env=env, check=False, timeout=900)


def wait_until(condition, timeout: float = 30.0, interval: float = 0.1, message: str = "condition"):
    """Poll ``condition()`` until it returns a truthy value (returned); fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # e.g. element not there yet
            last_exc = exc
        if time.monotonic() > deadline:
            extra = f" (last error: {last_exc})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}{extra}")
        time.sleep(interval)


def stays_constant(read, duration: float = 1.5, interval: float = 0.1):
    """Read a value repeatedly for ``duration`` s; return the distinct values seen."""
    seen = []
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        v = read()
        if not seen or seen[-1] != v:
            seen.append(v)
        time.sleep(interval)
    return seen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    path = _find_chromium()
    if path is None:
        _install_chromium()
        path = _find_chromium()
    if path is None:
        _missing(f"Chromium not found at {CHROMIUM} (install Debian's 'chromium' package "
                 "or set SPIKEWB_CHROMIUM)")
    return path


@pytest.fixture(scope="session")
def playwright_instance():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install playwright; no browser download needed)")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright_instance, chromium_executable):
    b = playwright_instance.chromium.launch(executable_path=chromium_executable, args=CHROMIUM_ARGS)
    yield b
    b.close()


class Server:
    """A ``panel serve apps/<app>.py`` subprocess on a free port."""

    def __init__(self, app: str = "trainer", extra_args: list[str] | None = None, env: dict | None = None):
        self.port = free_port()
        self.app = app
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"panel-serve-{app}-{self.port}.log"
        cmd = [sys.executable, "-m", "panel", "serve", str(ROOT / "apps" / f"{app}.py"),
               "--port", str(self.port), "--address", "127.0.0.1",
               "--allow-websocket-origin", f"127.0.0.1:{self.port}",
               "--check-unused-sessions", "1000", "--liveness", *(extra_args or [])]
        self._log = open(self.log_path, "wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "BOKEH_BROWSER": "none", **(env or {})}
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.url = f"http://127.0.0.1:{self.port}/{app}"

    def wait_ready(self, timeout: float = LOAD_TIMEOUT) -> None:
        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"panel serve exited with {self.proc.returncode}; see {self.log_path}")
            try:
                # liveness endpoint: does not create a session (the app page would)
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/liveness", timeout=5) as r:
                    return r.status == 200
            except OSError:
                return False
        wait_until(up, timeout, 0.2, f"panel serve on port {self.port}")

    def threads(self) -> int:
        """Number of OS threads of the server process (Linux)."""
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (Linux)."""
        with open(f"/proc/{self.proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def cpu_rate(self, duration: float = 2.0) -> float:
        """Cores the server process used over the next ``duration`` seconds."""
        c0, t0 = self.cpu_seconds(), time.monotonic()
        time.sleep(duration)
        return (self.cpu_seconds() - c0) / (time.monotonic() - t0)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def trainer_server():
    server = Server("trainer")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def app_server():
    """Factory: ``app_server("compare", env={...})`` serves ``apps/<app>.py`` (ready) until the module ends."""
    servers = []

    def _start(app: str, env: dict | None = None, extra_args: list[str] | None = None) -> Server:
        server = Server(app, extra_args=extra_args, env=env)
        servers.append(server)
        server.wait_ready()
        return server

    try:
        yield _start
    finally:
        for server in servers:
            server.stop()


class Page:
    """A Playwright page on the trainer app with console-error capture and helpers."""

    def __init__(self, context, url: str):
        self.context = context
        self.page = context.new_page()
        self.errors: list[str] = []
        self.failed_requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}")
                     if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("requestfailed", lambda r: self.failed_requests.append(r.url))
        self.page.set_default_timeout(LOAD_TIMEOUT * 1000)
        self.page.goto(url)
        self.wait_ready()

    def wait_ready(self) -> None:
        self.page.wait_for_function(
            "() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle",
            timeout=LOAD_TIMEOUT * 1000)
        self.page.locator(".wb-samples").wait_for(timeout=LOAD_TIMEOUT * 1000)
        # the status values arrive with the first update after the page connected
        wait_until(lambda: self.text(".wb-samples").strip().isdigit(), LOAD_TIMEOUT, 0.1, "status values")

    # -------------------------------------------------------------- readouts
    def text(self, selector: str) -> str:
        return self.page.locator(selector).first.inner_text()

    def pane_text(self, selector: str, nth: int = 0) -> str:
        """Text of a Panel pane (its content lives in the element's shadow root)."""
        return self.page.locator(selector).nth(nth).evaluate(
            "el => ((el.shadowRoot || el).textContent || '').trim()")

    def samples(self) -> int:
        return int(self.text(".wb-samples"))

    def vth(self) -> str:
        return self.text(".wb-vth")

    def state(self) -> str:
        return self.text(".wb-state")

    def source(self, name: str, column: str) -> list:
        """A column of a named ColumnDataSource as the browser holds it."""
        return self.page.evaluate(
            """([name, column]) => {
                 const m = Bokeh.documents[0].get_model_by_name(name);
                 if (!m) return null;
                 const c = m.data[column];
                 return c ? Array.from(c) : [];
               }""", [name, column])

    def columns(self, name: str, *columns: str) -> dict:
        """Several columns of a named ColumnDataSource read in one go.

        The server replaces a source's whole ``data`` at once, but two separate
        reads can straddle an update and see columns of different frames; one
        snapshot keeps them aligned. Missing source: every column is ``[]``.
        """
        return self.page.evaluate(
            """([name, columns]) => {
                 const m = Bokeh.documents[0].get_model_by_name(name);
                 const out = {};
                 for (const c of columns) out[c] = (m && m.data[c]) ? Array.from(m.data[c]) : [];
                 return out;
               }""", [name, list(columns)])

    def model_attr(self, name: str, attr: str):
        return self.page.evaluate("([n, a]) => { const m = Bokeh.documents[0].get_model_by_name(n); "
                                  "return m ? m[a] : null; }", [name, attr])

    def button(self, label: str):
        return self.page.get_by_role("button", name=label)

    def param_input(self, name: str):
        """The text box of a rule parameter's control (e.g. ``v_th``)."""
        return self.page.locator(f".wb-param-{name} input").first

    def set_param(self, name: str, value) -> None:
        box = self.param_input(name)
        box.fill(str(value))
        box.press("Enter")

    def screenshot(self, name: str, **kw) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), **kw)
        return path


@pytest.fixture
def open_url(browser):
    """Factory: ``open_url(url, cls=Page)`` opens ``url`` in a fresh browser context
    (closed when the test ends) and returns ``cls(context, url)``."""
    contexts = []

    def _open(url: str, cls=Page, viewport=(1500, 1100)):
        ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        contexts.append(ctx)
        return cls(ctx, url)

    yield _open
    for ctx in contexts:
        ctx.close()


@pytest.fixture
def open_page(open_url, trainer_server):
    """Factory: ``open_page(query="")`` opens the trainer in a fresh browser context."""
    def _open(query: str = "", viewport=(1500, 1100)) -> Page:
        return open_url(trainer_server.url + query, viewport=viewport)

    return _open
