"""Benchmark runner behind ``spikewb bench``.

Each ``tests/bench/bench_<name>.py`` defines ``run(quick: bool = False) -> list[dict]``
returning rows with the keys of :data:`COLUMNS`.  Every benchmark measures its
reference side by side in the same run and reports ``ratio`` (how many times
faster, or better, the engine is than the reference; > 1 is better).
"""

from __future__ import annotations

import csv
import importlib.util
import os
import platform
import time
from pathlib import Path
from typing import Callable

BENCH_DIR = Path(__file__).resolve().parent.parent / "tests" / "bench"
COLUMNS = ["benchmark", "metric", "value", "unit", "reference", "reference_value", "ratio", "target", "notes"]


def discover() -> dict[str, Path]:
    """Benchmark name -> file."""
    if not BENCH_DIR.is_dir():
        return {}
    return {p.stem[len("bench_"):]: p for p in sorted(BENCH_DIR.glob("bench_*.py"))}


def machine() -> str:
    """One line describing this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba
    import numpy
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"NumPy {numpy.__version__}, numba {numba.__version__}")


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"spikewb_bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def to_markdown(rows: list[dict], header: str) -> str:
    lines = [header, "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def run_benchmarks(names: list[str], quick: bool, out: Path, echo: Callable[[str], None] = print) -> str:
    """Run the named benchmarks; write ``results.csv`` and ``results.md`` into ``out``."""
    found = discover()
    rows: list[dict] = []
    for name in names:
        echo(f"running benchmark {name}{' (quick)' if quick else ''} ...")
        t0 = time.perf_counter()
        try:
            got = _load(found[name]).run(quick=quick)
        except Exception as exc:  # one failing benchmark must not hide the others
            got = [{"benchmark": name, "metric": "error", "notes": f"{type(exc).__name__}: {exc}"}]
        for r in got:
            r.setdefault("benchmark", name)
        rows.extend(got)
        echo(f"  {name}: {len(got)} rows in {time.perf_counter() - t0:.1f} s")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    header = f"Benchmarks on {machine()}{' (quick mode)' if quick else ''}, {time.strftime('%Y-%m-%d')}"
    md = to_markdown(rows, header)
    (out / "results.md").write_text(md)
    return md
