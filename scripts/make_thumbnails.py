"""Screenshot every app into assets/thumbnails/<app>.png for the landing page.

Usage: python scripts/make_thumbnails.py [app ...]   (needs /usr/bin/chromium and playwright)
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "assets" / "thumbnails"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def main(names: list[str]) -> None:
    apps = names or sorted(p.stem for p in (ROOT / "apps").glob("*.py") if p.stem != "index")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "panel", "serve", *(str(ROOT / "apps" / f"{a}.py") for a in apps),
           "--port", str(port), "--address", "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{port}"]
    server = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/{apps[0]}", timeout=5)
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("server did not start")
                time.sleep(0.5)
        OUT.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            ctx = browser.new_context(viewport={"width": 1400, "height": 860}, device_scale_factor=0.4)
            for a in apps:
                page = ctx.new_page()
                page.goto(f"http://127.0.0.1:{port}/{a}")
                page.wait_for_timeout(8000 if a == "trainer" else 4000)
                page.screenshot(path=str(OUT / f"{a}.png"))
                page.close()
                print("wrote", OUT / f"{a}.png")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main(sys.argv[1:])
