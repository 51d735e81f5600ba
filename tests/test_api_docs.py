"""The API reference builds with Sphinx + numpydoc and no warnings (what ``make docs`` runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import spikewb

ROOT = Path(__file__).resolve().parents[1]


def test_api_reference_builds_without_warnings_and_documents_every_public_name(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    out = tmp_path / "html"
    # generated stub pages go to a copy of the sources, so the checkout is left as it was
    src = tmp_path / "src"
    src.mkdir()
    for f in (ROOT / "docs" / "api").glob("*.*"):
        (src / f.name).write_text(f.read_text())
    (src / "conf.py").write_text((ROOT / "docs" / "api" / "conf.py").read_text().replace(
        "Path(__file__).resolve().parents[2]", repr(str(ROOT)).join(("Path(", ")"))))
    done = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", str(src),
                           str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "WARNING" not in done.stderr
    pages = {p.name for p in (out / "generated").glob("*.html")}
    missing = [n for n in spikewb._PUBLIC if f"spikewb.{n}.html" not in pages]
    assert not missing, f"public names without a reference page: {missing}"
    trainer = (out / "generated" / "spikewb.Trainer.html").read_text()
    assert "Parameters" in trainer and "from_checkpoint" in trainer      # numpydoc sections and members
