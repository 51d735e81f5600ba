"""Hostile uploads in the trainer page (headless Chromium): messages shown as text, memory bounded,
the server responsive while a file is parsed.

* an IDX upload whose *file name* holds HTML, and checkpoints whose stored rule
  name holds ``<script>`` / ``<img onerror>``: the error pane shows the text, no
  dialog opens and ``window.__pwned`` stays undefined;
* a 1 MB gzip bomb (1.3 M samples) and a checkpoint carrying a 1 GB extra array:
  refused with a message while ``/health``'s resident memory stays within 200 MB;
* ``/health`` answers within 1 s while a 3 MB upload is parsed.
"""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile

import numpy as np
import pytest

from tests.test_checkpoint_fuzz_helpers import gzip_bomb, huge_npy  # noqa: F401
from .conftest import LOAD_TIMEOUT, Page, wait_until
from .serving import start_server

pytestmark = [pytest.mark.ui, pytest.mark.timed]  # times the server: runs alone (Makefile)

T = LOAD_TIMEOUT


@pytest.fixture(scope="module")
def server():
    s = start_server()
    yield s
    s.stop()


def _open(open_url, server) -> tuple[Page, list[str]]:
    p = open_url(server.url)
    dialogs: list[str] = []
    p.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    return p, dialogs


def _pwned(p: Page) -> bool:
    return p.page.evaluate("() => window.__pwned !== undefined")


def _checkpoint_with_rule(rule_name: str) -> bytes:
    from spikewb.engine.training.checkpoint import save_checkpoint
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(Path(tmp) / "c.npz", {"rule": rule_name, "rule_params": {}, "sizes": [784, 10],
                                                     "arch": {"n_inputs": 784, "hidden": [], "n_outputs": 10}},
                               [np.zeros((784, 10), np.float32)])
        return path.read_bytes()


PAYLOADS = ['<script>window.__pwned=1</script>', '<img src=x onerror="window.__pwned=1">',
            '"><img src=x onerror=window.__pwned=1>']


def test_html_in_file_names_and_stored_rule_names_is_shown_as_text(open_url, server, tmp_path):
    p, dialogs = _open(open_url, server)
    bad = tmp_path / '<img src=x onerror="window.__pwned=1">.gz'
    bad.write_bytes(b"\0\0\x08\x03\0\0")
    p.page.locator(".wb-upload-data input[type=file]").set_input_files(str(bad))
    wait_until(lambda: "Upload refused" in p.pane_text(".wb-upload-error", 0), T, message="data upload error")
    assert '<img src=x onerror="window.__pwned=1">.gz' in p.pane_text(".wb-upload-error", 0)
    for k, payload in enumerate(PAYLOADS):
        f = tmp_path / f"rule{k}.npz"
        f.write_bytes(_checkpoint_with_rule(payload))
        p.page.locator(".wb-upload-ckpt input[type=file]").set_input_files(str(f))
        wait_until(lambda: "unknown rule" in p.pane_text(".wb-upload-error", 1)
                   and payload[:8] in p.pane_text(".wb-upload-error", 1), T, message="checkpoint error")
    time.sleep(0.5)
    assert not _pwned(p) and not dialogs, dialogs


def test_bombs_are_refused_and_memory_stays_bounded(open_url, server, tmp_path):
    p, _ = _open(open_url, server)
    rss0 = server.health()["rss_mb"]
    bomb = tmp_path / "bomb-images-idx3-ubyte.gz"
    bomb.write_bytes(gzip_bomb((1_300_000, 28, 28), 1_300_000 * 784))
    p.page.locator(".wb-upload-data input[type=file]").set_input_files(str(bomb))
    wait_until(lambda: "limit" in p.pane_text(".wb-upload-error", 0), T, message="gzip bomb refused")
    assert server.health()["rss_mb"] - rss0 < 200
    ck = tmp_path / "big.npz"
    ck.write_bytes(_checkpoint_with_extra(_checkpoint_with_rule("desire")))
    p.page.locator(".wb-upload-ckpt input[type=file]").set_input_files(str(ck))
    wait_until(lambda: "Checkpoint refused" in p.pane_text(".wb-upload-error", 1), T, message="npz refused")
    assert server.health()["rss_mb"] - rss0 < 200


def _checkpoint_with_extra(blob: bytes) -> bytes:
    """The checkpoint plus a 1 GB array ``state_extra`` (compressed to about 1 MB)."""
    buf = io.BytesIO(blob)
    with zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("state_extra.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False,
                                                     "shape": (125_000_000,)})
            block = bytes(1 << 22)
            for _ in range(1_000_000_000 // len(block)):
                fh.write(block)
            fh.write(bytes(1_000_000_000 % len(block)))
    return buf.getvalue()


def test_health_answers_while_an_upload_is_parsed(open_url, server, tmp_path):
    p, _ = _open(open_url, server)
    rng = np.random.default_rng(0)
    n = 3_000_000 // 784
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    f = tmp_path / "big-images-idx3-ubyte"
    f.write_bytes(bytes([0, 0, 8, 3]) + np.array([n, 28, 28], ">u4").tobytes() + x.tobytes())
    lab = tmp_path / "big-labels-idx1-ubyte"
    lab.write_bytes(bytes([0, 0, 8, 1]) + np.array([n], ">u4").tobytes() + (np.arange(n) % 10).astype(np.uint8).tobytes())
    worst = []
    stop = threading.Event()

    def probe():
        while not stop.is_set():
            t0 = time.monotonic()
            server.health()
            worst.append(time.monotonic() - t0)
            time.sleep(0.05)

    th = threading.Thread(target=probe)
    th.start()
    try:
        p.page.locator(".wb-upload-data input[type=file]").set_input_files([str(f), str(lab)])
        wait_until(lambda: "Uploaded" in p.page.content() or p.page.locator(".wb-confirm").is_visible(), T,
                   message="upload parsed")
    finally:
        stop.set()
        th.join()
    assert worst and max(worst) < 1.0, f"/health took up to {max(worst):.2f} s"
