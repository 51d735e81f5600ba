"""Offline HTML of a recording: bounds, errors, the command line (the browser side: tests/ui/test_export_ui.py)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from spikewb.engine.data.datasets import load_dataset
from spikewb.engine.errors import ConfigError
from spikewb.engine.frame import Record
from spikewb.engine.network import Architecture
from spikewb.engine.recording import Recording
from spikewb.engine.rules import make_rule
from spikewb.engine.training.trainer import Trainer
from spikewb.workbench import export
from spikewb.workbench.export import choose_samples, export_html, export_html_text, export_summary, recording_of

SPIKEWB = [sys.executable, "-m", "spikewb.workbench.cli"]


@pytest.fixture(scope="module")
def frames():
    data = load_dataset("mnist-5k").subset(n_train=30, n_test=10)
    trainer = Trainer(make_rule("desire"), data, Architecture(n_inputs=784, hidden=[16], n_outputs=10), seed=3)
    record = Record(spikes=True, neurons=((1, 0), (2, 1)))
    return [trainer.step(record) for _ in range(12)]


@pytest.fixture(scope="module")
def rec(frames):
    r = Recording(every=1, record=Record(spikes=True, neurons=((1, 0), (2, 1))), info={"rule": "desire"})
    for f in frames:
        r.add(f)
    return r


def test_choose_samples_spreads_and_bounds_events():
    counts = np.array([10, 10, 10, 10, 10, 10, 10, 10, 10, 10])
    assert choose_samples(counts, max_samples=3).tolist() == [0, 4, 9]    # evenly, first and last
    assert choose_samples(counts, max_samples=100).tolist() == list(range(10))
    take = choose_samples(counts, max_samples=10, max_events=35)
    assert counts[take].sum() <= 35 and take[0] == 0 and np.all(np.diff(take) == np.diff(take)[0])
    assert choose_samples(np.array([10**9]), max_events=5).tolist() == [0]  # one sample always stays
    assert choose_samples(np.zeros(0, np.int64)).tolist() == []


def test_export_holds_the_chosen_samples_and_loads_nothing(rec, tmp_path):
    out = export_html(rec, tmp_path / "all.html")
    summary = export_summary(out)
    assert summary == {"samples": 12, "bytes": out.stat().st_size, "loaded_files": 0}
    few = export_summary(export_html(rec, tmp_path / "few.html", max_samples=3))
    assert few["samples"] == 3 and few["bytes"] < summary["bytes"]
    events = sum(len(rec.spikes(l, k)[0]) for l in range(rec.n_layers) for k in range(len(rec)))
    bounded = export_summary(export_html(rec, tmp_path / "bounded.html", max_events=events // 5))
    assert 1 <= bounded["samples"] <= 3
    assert not (tmp_path / "all.html.part").exists()                          # written atomically


def test_bad_arguments_and_empty_recordings_are_refused(rec, tmp_path):
    with pytest.raises(ConfigError, match="empty"):
        export_html(Recording(), tmp_path / "x.html")
    with pytest.raises(ConfigError, match="Recording"):
        export_html("not a recording", tmp_path / "x.html")
    for bad in (0, -3, True, 2.5):
        with pytest.raises(ConfigError, match="max_samples"):
            export_html(rec, tmp_path / "x.html", max_samples=bad)
    assert not (tmp_path / "x.html").exists()


def test_a_page_that_would_fetch_a_file_is_refused(rec, monkeypatch):
    import bokeh.embed

    real = bokeh.embed.file_html
    monkeypatch.setattr(bokeh.embed, "file_html", lambda *a, **k: real(*a, **k).replace(
        "<head>", '<head><script src="https://example.invalid/x.js"></script>', 1))
    with pytest.raises(RuntimeError, match="outside file"):
        export_html_text(rec)
    # the serving Panel's own static files are dropped instead (the document never needs them)
    monkeypatch.setattr(bokeh.embed, "file_html", lambda *a, **k: real(*a, **k).replace(
        "<head>", '<head><script src="static/extensions/panel/x.js"></script>'
                  '<link rel="stylesheet" href="static/css/y.css">', 1))
    html = export_html_text(rec)
    assert "static/extensions" not in html.split("<body")[0] and "static/css" not in html


def test_recording_of_keeps_one_network(frames):
    data = load_dataset("mnist-5k").subset(n_train=10, n_test=5)
    other = Trainer(make_rule("desire"), data, Architecture(n_inputs=784, hidden=[8], n_outputs=10)).step(
        Record(spikes=True))
    rec = recording_of([frames[0], other, frames[1], frames[2]])
    assert len(rec) == 3 and rec.layer_sizes == (784, 16, 10)   # the newest frame's network
    assert len(recording_of([frames[0], other])) == 1 and len(recording_of([])) == 0


def _cli(*args, cwd=None):
    return subprocess.run([*SPIKEWB, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_cli_exports_a_run_folder_and_refuses_bad_files(rec, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rec.save(run / "recording.npz")
    r = _cli("export", str(run), "--max-samples", "5")
    assert r.returncode == 0, r.stderr
    assert "5 of 12 kept samples" in r.stdout and export_summary(run / "recording.html")["samples"] == 5
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04" + b"\x00" * 200)        # a broken archive
    for args in (["export", str(tmp_path / "bad.npz")], ["export", str(tmp_path / "none")],
                 ["export", str(run), "--html", str(tmp_path / "no" / "such" / "dir.html")]):
        r = _cli(*args)
        assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr, (args, r.stderr)
