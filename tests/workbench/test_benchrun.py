"""The benchmark runner's bookkeeping: merged results and the generated README table."""

from __future__ import annotations

import subprocess
import sys

import pytest

from spikewb.workbench import benchrun
from spikewb.workbench.benchrun import README_END, README_START, merge_rows, readme_table, update_readme


def row(bench, metric, value, **kw):
    return {"benchmark": bench, "metric": metric, "value": value, **kw}


def test_merge_replaces_a_rerun_benchmark_and_keeps_the_order():
    old = [row("desire", "ms", "2.0"), row("desire", "acc", "0.8"), row("ssnn", "ms", "30")]
    new = [row("desire", "ms", "1.5")]
    merged = merge_rows(old, new)
    assert [(r["benchmark"], r["metric"], r["value"]) for r in merged] == [("desire", "ms", "1.5"), ("ssnn", "ms", "30")]
    # a benchmark never run before goes to the end
    assert merge_rows(merged, [row("cuba", "s", "0.06")])[-1]["benchmark"] == "cuba"


def test_readme_table_lines():
    rows = [row("desire", "ms per sample", 2.034567, unit="ms", reference="NumPy", reference_value=4.1,
                ratio=2.0166, target="<= 5 ms"),
            row("ui", "rendered updates/s", "", unit="1/s", reference_value="nan", ratio="nan"),
            {"benchmark": "cuba", "metric": "error", "notes": "RuntimeError: no brian2"}]
    text = readme_table(rows, "header line")
    lines = text.splitlines()
    assert lines[0] == "header line"
    assert lines[4] == "| desire | ms per sample | 2.035 ms | NumPy 4.1 | 2.017x | <= 5 ms |"
    assert lines[5] == "| ui | rendered updates/s | (not measured) |  |  |  |"
    assert lines[6] == "| cuba | failed | RuntimeError: no brian2 |  |  |  |"


def test_update_readme_replaces_only_the_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\nold table\n{README_END}\noutro\n")
    update_readme(readme, "new table\n")
    assert readme.read_text() == f"intro\n{README_START}\nnew table\n{README_END}\noutro\n"
    update_readme(readme, "new table\n")  # idempotent
    assert readme.read_text().count("new table") == 1


def test_update_readme_without_markers_is_an_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    with pytest.raises(ValueError, match="markers"):
        update_readme(readme, "t\n")
    assert readme.read_text() == "no markers here\n"


def test_full_runs_are_merged_into_latest_csv(tmp_path, monkeypatch):
    bench_dir = tmp_path / "bench"
    bench_dir.mkdir()
    (bench_dir / "bench_one.py").write_text(
        "def run(quick=False):\n    return [{'metric': 'm', 'value': 1.0 if quick else 2.0, 'unit': 's'}]\n")
    (bench_dir / "bench_two.py").write_text(
        "def run(quick=False):\n    raise RuntimeError('broken reference')\n")
    monkeypatch.setattr(benchrun, "BENCH_DIR", bench_dir)
    out = tmp_path / "out"
    benchrun.run_benchmarks(["one", "two"], quick=False, out=out, echo=lambda s: None)
    latest = benchrun.read_rows(out / "latest.csv")
    assert [(r["benchmark"], r["metric"]) for r in latest] == [("one", "m"), ("two", "error")]
    assert latest[0]["value"] == "2"
    assert "broken reference" in latest[1]["notes"]
    # quick runs are smoke tests: they never replace real figures
    benchrun.run_benchmarks(["one"], quick=True, out=out, echo=lambda s: None)
    assert benchrun.read_rows(out / "latest.csv")[0]["value"] == "2"


def test_cli_readme_without_results_fails_clearly(tmp_path):
    r = subprocess.run([sys.executable, "-m", "spikewb.workbench.cli", "bench", "--readme", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "no benchmark results" in r.stderr + r.stdout


def test_quick_normad_benchmark_has_every_row_and_its_twin_agrees(tmp_path):
    """NormAD's row set (training, forward vs the NumPy twin, the XOR demo) in quick mode (~3 s)."""
    md = benchrun.run_benchmarks(["normad"], quick=True, out=tmp_path, echo=lambda s: None)
    rows = benchrun.read_rows(tmp_path / "results.csv")
    assert [r["metric"].split(",")[0] for r in rows] == [
        "ms per training sample", "ms per forward pass", "ms per XOR presentation"], md
    assert all(float(r["value"]) > 0 for r in rows)
    forward = rows[1]
    assert "output spike counts agree" in forward["notes"]
    assert float(forward["ratio"]) > 1.0  # the kernels beat a per-neuron NumPy loop by far (20x measured)


def test_rows_carry_their_run_date_and_the_table_names_the_span(tmp_path, monkeypatch):
    bench_dir = tmp_path / "bench"
    bench_dir.mkdir()
    (bench_dir / "bench_one.py").write_text("def run(quick=False):\n    return [{'metric': 'm', 'value': 1.0}]\n")
    monkeypatch.setattr(benchrun, "BENCH_DIR", bench_dir)
    benchrun.run_benchmarks(["one"], quick=False, out=tmp_path, echo=lambda s: None)
    (r,) = benchrun.read_rows(tmp_path / "latest.csv")
    assert len(r["date"]) == 10 and r["date"][4] == "-"
    assert benchrun.date_span([{"date": "2026-12-06"}, {"date": "2026-11-23"}, {}]) == "2026-11-23 to 2026-12-06"
    assert benchrun.date_span([{"date": "2026-12-06"}]) == "2026-12-06"
    assert benchrun.date_span([{}]) == "date unknown"


@pytest.mark.slow
def test_quick_mode_runs_the_rule_and_sweep_benchmarks_without_an_error(tmp_path):
    """`spikewb bench --quick` smoke run of the benchmarks without a browser or Brian2 (~40 s):
    every benchmark reports rows, none failed, every row has a measured value and a unit."""
    names = ["desire", "multispike", "ssnn", "stidi", "normad", "inspector", "sweep"]
    md = benchrun.run_benchmarks(names, quick=True, out=tmp_path, echo=lambda s: None)
    rows = benchrun.read_rows(tmp_path / "results.csv")
    assert [n for n in names if n not in {r["benchmark"] for r in rows}] == [], md
    assert [r for r in rows if r["metric"] == "error"] == [], md
    for r in rows:
        assert r["unit"] and float(r["value"]) == float(r["value"]), r  # measured, not NaN
    assert not (tmp_path / "latest.csv").exists()  # quick numbers never reach the README's source
