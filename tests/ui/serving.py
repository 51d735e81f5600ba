"""``spikewb serve`` as a test subprocess (the real CLI with its limit flags).

Shared by the serving tests (``tests/ui/test_serve_limits.py``) and the soak
test (``tests/test_soak.py``).  The server's own ``/health`` endpoint gives
its live sessions, slot counts and worker threads; memory is read from
``/proc`` outside the process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

from .conftest import ARTIFACTS, LOAD_TIMEOUT, ROOT, Server, free_port, wait_until


class SpikewbServer(Server):
    """``spikewb serve`` on a free port; ``flags`` are passed through (``--max-training 2``...)."""

    def __init__(self, *flags: str, app: str = "trainer"):
        self.port = free_port()
        self.app = app
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"spikewb-serve-{self.port}.log"
        cmd = [sys.executable, "-m", "spikewb.workbench.cli", "serve", "--port", str(self.port),
               "--address", "127.0.0.1", "--no-warm", *flags]
        self._log = open(self.log_path, "wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "BOKEH_BROWSER": "none"}
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/{app}"

    def wait_ready(self, timeout: float = LOAD_TIMEOUT) -> None:
        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"spikewb serve exited with {self.proc.returncode}; see {self.log_path}")
            try:
                return self.health()["status"] == "ok"
            except OSError:
                return False
        wait_until(up, timeout, 0.2, f"spikewb serve on port {self.port}")

    def get(self, path: str, timeout: float = 30.0) -> tuple[int, bytes]:
        """``(status, body)`` of a plain HTTP GET (4xx/5xx answers are returned, not raised)."""
        try:
            with urllib.request.urlopen(self.base + path, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def health(self) -> dict:
        with urllib.request.urlopen(self.base + "/health", timeout=30) as r:
            return json.loads(r.read())

    def rss_mb(self) -> float:
        """Resident memory of the server process in MiB, read from outside (``/proc``)."""
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")


def start_server(*flags: str) -> SpikewbServer:
    server = SpikewbServer(*flags)
    try:
        server.wait_ready()
    except Exception:
        server.stop()
        raise
    return server
