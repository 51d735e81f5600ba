"""The sweep results page without a browser: the run folder guard, the table, the trainer link."""

from __future__ import annotations

from pathlib import Path

import pytest

from spikewb.engine.errors import ConfigError
from spikewb.workbench.server import runs


def make_sweep(root: Path, name: str = "sweep1") -> Path:
    """A small sweep under ``root``: three finished runs (lr 0.001, 0.01, 0.1) and one failed run."""
    from spikewb.engine.training.sweep import _atomic_json, expand, plan, train_run

    out = root / name
    out.mkdir(parents=True)
    combos = expand({"lr": [0.001, 0.01, 0.1]}, {"rule": "desire", "hidden": [10], "epochs": 2,
                                                  "train_limit": 60, "eval_limit": 30})
    _atomic_json(out / "sweep.json", {"combinations": combos})
    for spec, d in plan(out, combos):
        assert train_run(spec, d)["status"] == "done"
    bad = train_run({"rule": "desire", "hidden": [10], "epochs": 1, "train_limit": 10, "lr": -1.0}, out / "lr=-1")
    assert bad["status"] == "failed"
    return out


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    make_sweep(root)
    (root / "notes").mkdir()
    return root


def test_paths_cannot_leave_the_run_folder(root, tmp_path):
    assert runs.resolve("sweep1", root) == (root / "sweep1").resolve()
    assert runs.resolve("", root) == root.resolve()
    for bad in ("..", "../x", "sweep1/../../x", "/etc", "/etc/passwd", "a\x00b"):
        with pytest.raises(ConfigError):
            runs.resolve(bad, root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    try:
        with pytest.raises(ConfigError):
            runs.resolve("link", root)
        assert runs.find_sweeps(root) == ["sweep1"]
    finally:
        (root / "link").unlink()
    with pytest.raises(ConfigError):
        runs.checkpoint_path("sweep1/lr=-1/checkpoint.npz", root)  # failed run: no checkpoint
    with pytest.raises(ConfigError):
        runs.checkpoint_path("sweep1/sweep.json", root)  # not a checkpoint
    assert runs.checkpoint_path("sweep1/lr=0.01/checkpoint.npz", root).is_file()


def test_results_page_table_curves_and_links(root):
    from spikewb.workbench.pages.results import ResultsPage

    page = ResultsPage(root=root)
    assert page.folder.value == "sweep1"
    df = page.table.value
    assert len(df) == 4 and set(df["status"]) == {"done", "failed"}
    assert sum(bool(v) for v in df["open"]) == 3
    assert all("checkpoint=sweep1/" in v for v in df["open"] if v)
    assert len(page.curve_source.data["run"]) == 3  # finished runs selected by default
    assert page.x_param.value == "lr"
    assert sorted(page.param_source.data["label"]) == ["0.001", "0.01", "0.1"]
    page.table.selection = [1]
    assert page.curve_source.data["run"] == ["lr=0.001"]
    page.load("../..")
    assert page.table.value.empty and page.messages.objects  # refused, shown, nothing read


def test_trainer_opens_a_run_checkpoint_from_the_url(root, monkeypatch):
    monkeypatch.setenv(runs.ENV, str(root))
    from spikewb.workbench.pages.trainer import TrainerWorkbench

    wb = TrainerWorkbench()
    try:
        assert wb.checkpoint_from_url("sweep1/lr=0.01/checkpoint.npz") is None
        assert wb.session.network.startswith("784-10-10") and wb.session.trainer.epoch == 2
        assert "outside the run folder" in wb.checkpoint_from_url("../../etc/passwd")
    finally:
        wb.close()
