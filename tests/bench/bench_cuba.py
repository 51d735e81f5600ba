"""CUBA-4000 (Brette et al. 2007, benchmark 2): this engine side by side with Brian2.

Workload: 4 000 LIF neurons (3 200 E / 800 I), p = 0.02 (~320 k synapses),
exact integration, dt = 0.1 ms, 10 s of biological time, all spikes recorded.

Engine: :class:`spikewb.engine.networks.ei.EINetwork`, one compiled call per spike
buffer fill (every ~60 k spikes), serial, float64.  Timed: best of 3 runs
from the same initial state (the first call compiles or loads the numba cache
and is reported separately as "engine setup").

Brian2 (runtime mode with its default Cython target, and cpp_standalone with 1
thread) runs as a subprocess in the isolated venv ``.bench-venv-brian2`` made
by ``tests/bench/brian2_env.sh`` (Brian2 2.9 needs NumPy < 2.4, the workbench
uses 2.4).  It runs only when ``SPIKEWB_BENCH_BRIAN2=1`` (creates the venv on
first use; pip needs network access) or when the venv already exists and
``SPIKEWB_BENCH_BRIAN2`` is not ``0``.  ``SPIKEWB_BRIAN2_PYTHON`` may point to
another interpreter with Brian2.  Each Brian2 mode runs twice; the best
simulation-loop time is reported (runtime: the ``run()`` call after a 1 ms
warm-up run; standalone: the binary's own main-loop time), and "total"
includes network construction, code generation and g++.

Quick mode (CI): 1 000 neurons with p = 0.08 (same 80 inputs per neuron),
1 s, one engine run, no Brian2; every row is still present.

Ratios: reference / engine for times (> 1: the engine is faster), engine /
reference for throughput, engine / reference for the statistics (~1 means
the two simulators agree).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from spikewb.engine.networks.ei import EINetwork, make_params, summary  # noqa: E402

HERE = Path(__file__).resolve().parent
VENV = ROOT / ".bench-venv-brian2"

M_RTF_SA = "CUBA-4000 wall s per simulated s vs Brian2 cpp_standalone binary"
M_RTF_RT = "CUBA-4000 wall s per simulated s vs Brian2 runtime"
M_CPU = "CUBA-4000 CPU s per simulated s (engine thread)"
M_TOTAL = "CUBA-4000 total s incl. setup and compile vs Brian2 cpp_standalone"
M_SETUP = "engine setup: build network + first compiled call"
M_EVENTS = "synaptic events per CPU second of the simulation loop"
M_RATE = "mean firing rate (agreement)"
M_CV = "mean ISI CV (agreement)"
METRICS = [M_CPU, M_RTF_SA, M_RTF_RT, M_TOTAL, M_SETUP, M_EVENTS, M_RATE, M_CV]


def brian2_python(create: bool) -> str | None:
    """Interpreter of the isolated Brian2 environment, or None when it is not wanted/available."""
    flag = os.environ.get("SPIKEWB_BENCH_BRIAN2", "")
    if flag == "0":
        return None
    explicit = os.environ.get("SPIKEWB_BRIAN2_PYTHON")
    if explicit:
        return explicit
    py = VENV / "bin" / "python"
    if flag == "1" and create:
        out = subprocess.run(["bash", str(HERE / "brian2_env.sh")], capture_output=True, text=True,
                             env={**os.environ, "PYTHON": os.environ.get("PYTHON", sys.executable)})
        if out.returncode != 0:
            raise RuntimeError(f"creating the Brian2 environment failed: {out.stderr.strip()[-500:]}")
        return out.stdout.strip().splitlines()[-1]
    return str(py) if py.exists() else None


def run_brian2(python: str, mode: str, seconds: float, n: int, timeout: float = 1800) -> dict:
    """Run ``brian2_cuba.py`` in ``python``; return its JSON result."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = subprocess.run([python, str(HERE / "brian2_cuba.py"), "--mode", mode, "--duration", str(seconds),
                          "--n", str(n)], capture_output=True, text=True, timeout=timeout, env=env,
                         cwd=str(ROOT))
    if out.returncode != 0:
        raise RuntimeError(f"Brian2 {mode} failed: {out.stderr.strip()[-800:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_engine(n: int, p: float, seconds: float, reps: int) -> dict:
    t0 = time.perf_counter()
    net = EINetwork(make_params("cuba", n_neurons=n, p_connect=p, seed=1))
    net.run(1.0)  # compile or load from the numba cache
    setup = time.perf_counter() - t0
    walls, cpus, chunk = [], [], None
    for _ in range(reps):
        net.reset()
        c0, w0 = time.thread_time(), time.perf_counter()
        chunk = net.run(seconds * 1e3)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.thread_time() - c0)
    s = summary(chunk, n)
    return dict(setup=setup, wall=min(walls), walls=walls, cpu=min(cpus), n_events=chunk.n_events,
                n_synapses=net.n_synapses, rate=s["rate"], cv=s["cv"])


def run(quick: bool = False) -> list[dict]:
    n, p, seconds, reps = (1000, 0.08, 1.0, 1) if quick else (4000, 0.02, 10.0, 3)
    eng = time_engine(n, p, seconds, reps)
    b2 = {}
    b2_note = "Brian2 skipped in quick mode" if quick else (
        "Brian2 not run: set SPIKEWB_BENCH_BRIAN2=1 (creates .bench-venv-brian2)")
    python = None if quick else brian2_python(create=True)
    if python:
        for mode in ("runtime", "cpp_standalone"):
            runs = [run_brian2(python, mode, seconds, n) for _ in range(2)]
            best = dict(min(runs, key=lambda r: r["run_s"]))
            best["cpu_s"] = min(r["cpu_s"] for r in runs)
            best["binary_cpu_s"] = min(r["binary_cpu_s"] for r in runs)
            best["total_min"] = min(r["total_s"] for r in runs)
            best["run_all"] = [round(r["run_s"], 3) for r in runs]
            b2[mode] = best
        # the engine again, after Brian2, so both saw similar machine load
        again = time_engine(n, p, seconds, 2)
        eng["walls"] += again["walls"]
        eng["wall"] = min(eng["wall"], again["wall"])
        eng["cpu"] = min(eng["cpu"], again["cpu"])
        b2_note = f"Brian2 {b2['runtime']['brian2']}, NumPy {b2['runtime']['numpy']}, isolated venv"
    size = f"N={n}, p={p}, {seconds:g} s biological, dt 0.1 ms"
    rtf = eng["wall"] / seconds
    sa, rt = b2.get("cpp_standalone"), b2.get("runtime")

    def ref(r, key, scale=1.0):
        return None if r is None else r[key] * scale

    sa_rtf = ref(sa, "run_s", 1 / seconds)
    rt_rtf = ref(rt, "run_s", 1 / seconds)
    walls = ", ".join(f"{w / seconds:.4f}" for w in eng["walls"])
    rows = [
        dict(metric=M_RTF_SA, value=rtf, unit="s/s",
             reference="Brian2 cpp_standalone, 1 thread, whole binary (incl. synapse creation)",
             reference_value=sa_rtf, ratio=None if sa_rtf is None else sa_rtf / rtf,
             target="",
             notes=f"{size}; engine best of {len(eng['walls'])} ({walls}); "
                   + (f"Brian2 binary runs {sa['run_all']} s" if sa else b2_note)),
        dict(metric=M_RTF_RT, value=rtf, unit="s/s",
             reference=f"Brian2 runtime ({rt['target'] if rt else 'Cython'}), run only",
             reference_value=rt_rtf, ratio=None if rt_rtf is None else rt_rtf / rtf, target="ratio > 1",
             notes=f"Brian2 runs {rt['run_all']} s after a 1 ms warm-up run" if rt else b2_note),
        dict(metric=M_CPU, value=eng["cpu"] / seconds, unit="s/s",
             reference="Brian2 cpp_standalone main loop (its own std::clock timer, excl. compile)",
             reference_value=ref(sa, "cpu_s", 1 / seconds),
             ratio=None if sa is None else sa["cpu_s"] / eng["cpu"],
             target="ratio > 1 (faster than Brian2 standalone, excluding its compile)",
             notes="engine: thread CPU of the simulation; CPU time is much less sensitive than wall time "
                   "to other load on a shared machine"
                   + (f"; Brian2 whole-binary CPU {sa['binary_cpu_s'] / seconds:.4f} s/s, runtime-mode "
                      f"process CPU {rt['cpu_s'] / seconds:.4f} s/s" if sa and rt else "")),
        dict(metric=M_TOTAL, value=eng["setup"] + eng["wall"], unit="s",
             reference="Brian2 cpp_standalone incl. codegen + g++", reference_value=ref(sa, "total_min"),
             ratio=None if sa is None else sa["total_min"] / (eng["setup"] + eng["wall"]), target="",
             notes=("engine: setup + one run; Brian2: construction + codegen + compile + run, best of 2"
                    if sa else b2_note)),
        dict(metric=M_SETUP, value=eng["setup"], unit="s", reference="Brian2 cpp_standalone total minus run",
             reference_value=None if sa is None else sa["total_min"] - sa["run_s"],
             ratio=None if sa is None else (sa["total_min"] - sa["run_s"]) / eng["setup"],
             target="",
             notes=f"{eng['n_synapses']} synapses; numba cache "
                   f"{os.environ.get('NUMBA_CACHE_DIR', '__pycache__')}"),
        dict(metric=M_EVENTS, value=eng["n_events"] / eng["cpu"], unit="events/s",
             reference="Brian2 cpp_standalone main loop (spikes x mean out-degree)",
             reference_value=None if sa is None else sa["n_spikes"] * sa["n_synapses"] / n / sa["cpu_s"],
             ratio=None if sa is None else (eng["n_events"] / eng["cpu"])
             / (sa["n_spikes"] * sa["n_synapses"] / n / sa["cpu_s"]),
             target="", notes=f"{eng['n_events']} events in {seconds:g} s biological; per CPU second of the "
                              f"simulation loop (engine per wall second: {eng['n_events'] / eng['wall']:.3g})"),
        dict(metric=M_RATE, value=eng["rate"], unit="Hz", reference="Brian2 cpp_standalone, same model",
             reference_value=ref(sa, "rate_hz"), ratio=None if sa is None else eng["rate"] / sa["rate_hz"],
             target="ratio within 0.9-1.1", notes="published/measured: 5.5-5.8 Hz"),
        dict(metric=M_CV, value=eng["cv"], unit="", reference="Brian2 cpp_standalone, same model",
             reference_value=ref(sa, "cv"), ratio=None if sa is None else eng["cv"] / sa["cv"],
             target="ratio within 0.9-1.1", notes="different random connectivity; statistics only"),
    ]
    rows.sort(key=lambda r: METRICS.index(r["metric"]))
    return rows


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(r)
