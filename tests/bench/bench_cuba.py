"""CUBA-4000 (Brette et al. 2007, benchmark 2): this engine side by side with Brian2 and NEST 3.

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

NEST 3 (``iaf_psc_exp``, exact integration, 1 thread, ``pairwise_bernoulli``
connectivity without autapses as in the engine, weights converted from the
engine's mV jumps to pA: ``C_m * w / tau_m``) runs as a subprocess
(``tests/bench/nest_cuba.py``) in the isolated venv ``.bench-venv-nest`` made by
``tests/bench/nest_env.sh``.  It runs when ``SPIKEWB_BENCH_NEST=1`` (creates the
venv) or when the venv exists and ``SPIKEWB_BENCH_NEST`` is not ``0``;
``SPIKEWB_NEST_PYTHON`` may point to another interpreter with NEST.  Timed:
``nest.Simulate(T)`` after a 1 ms warm-up ``Simulate`` (wall and process CPU),
best of 2 at N = 4000.  NEST's spike times come back in a ``.npz`` and go
through the engine's own :func:`summary`.

10x the network size: 40 000 neurons with p = 0.002 (the same 80 inputs per
neuron), ``SPIKEWB_BENCH_CUBA_BIG_SECONDS`` (default 2) simulated seconds, for
the engine (best of 3) and NEST (one run: building its 3.2 M synapses with
``pairwise_bernoulli`` draws 1.6e9 pairs and takes minutes).  Brian2 is not run
at this size (``brian2_cuba.py`` fixes p = 0.02).  Quick mode runs the engine
at 10 000 neurons (p = 0.008), 1 s, there.

Ratios: reference / engine for times (> 1: the engine is faster), engine /
reference for throughput, engine / reference for the statistics (~1 means
the two simulators agree).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from spikewb.engine.networks.ei import Chunk, EINetwork, make_params, summary  # noqa: E402

HERE = Path(__file__).resolve().parent
VENV = ROOT / ".bench-venv-brian2"
NEST_VENV = ROOT / ".bench-venv-nest"

M_RTF_SA = "CUBA-4000 wall s per simulated s vs Brian2 cpp_standalone binary"
M_RTF_RT = "CUBA-4000 wall s per simulated s vs Brian2 runtime"
M_CPU = "CUBA-4000 CPU s per simulated s (engine thread)"
M_TOTAL = "CUBA-4000 total s incl. setup and compile vs Brian2 cpp_standalone"
M_SETUP = "engine setup: build network + first compiled call"
M_EVENTS = "synaptic events per CPU second of the simulation loop"
M_RATE = "mean firing rate (agreement)"
M_CV = "mean ISI CV (agreement)"
M_NEST_CPU = "CUBA-4000 CPU s per simulated s vs NEST 3"
M_NEST_WALL = "CUBA-4000 wall s per simulated s vs NEST 3"
M_NEST_RATE = "mean firing rate (agreement with NEST)"
M_NEST_CV = "mean ISI CV (agreement with NEST)"
M_BIG_CPU = "CUBA-40000 (10x size) CPU s per simulated s vs NEST 3"
M_BIG_WALL = "CUBA-40000 (10x size) wall s per simulated s vs NEST 3"
M_BIG_B2 = "CUBA-40000 (10x size) CPU s per simulated s vs Brian2 cpp_standalone"
METRICS = [M_CPU, M_RTF_SA, M_RTF_RT, M_TOTAL, M_SETUP, M_EVENTS, M_RATE, M_CV,
           M_NEST_CPU, M_NEST_WALL, M_NEST_RATE, M_NEST_CV, M_BIG_CPU, M_BIG_WALL, M_BIG_B2]


def isolated_python(flag_var: str, python_var: str, venv: Path, script: str, create: bool) -> str | None:
    """Interpreter of an isolated reference environment, or None when it is not wanted/available.

    ``$flag_var`` = 0: never; = 1 (and ``create``): make the venv with ``script`` if missing;
    unset: use the venv if it exists.  ``$python_var`` names another interpreter.
    """
    flag = os.environ.get(flag_var, "")
    if flag == "0":
        return None
    explicit = os.environ.get(python_var)
    if explicit:
        return explicit
    py = venv / "bin" / "python"
    if flag == "1" and create:
        out = subprocess.run(["bash", str(HERE / script)], capture_output=True, text=True,
                             env={**os.environ, "PYTHON": os.environ.get("PYTHON", sys.executable)})
        if out.returncode != 0:
            raise RuntimeError(f"creating the environment of {script} failed: {out.stderr.strip()[-500:]}")
        return out.stdout.strip().splitlines()[-1]
    return str(py) if py.exists() else None


def brian2_python(create: bool) -> str | None:
    """The isolated Brian2 interpreter (``SPIKEWB_BENCH_BRIAN2``, ``SPIKEWB_BRIAN2_PYTHON``)."""
    return isolated_python("SPIKEWB_BENCH_BRIAN2", "SPIKEWB_BRIAN2_PYTHON", VENV, "brian2_env.sh", create)


def run_brian2(python: str, mode: str, seconds: float, n: int, timeout: float = 1800, p: float = 0.02) -> dict:
    """Run ``brian2_cuba.py`` in ``python``; return its JSON result."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = subprocess.run([python, str(HERE / "brian2_cuba.py"), "--mode", mode, "--duration", str(seconds),
                          "--n", str(n), "--p", str(p)], capture_output=True, text=True, timeout=timeout, env=env,
                         cwd=str(ROOT))
    if out.returncode != 0:
        raise RuntimeError(f"Brian2 {mode} failed: {out.stderr.strip()[-800:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def nest_python(create: bool) -> str | None:
    """The isolated NEST interpreter (``SPIKEWB_BENCH_NEST``, ``SPIKEWB_NEST_PYTHON``)."""
    return isolated_python("SPIKEWB_BENCH_NEST", "SPIKEWB_NEST_PYTHON", NEST_VENV, "nest_env.sh", create)


def nest_params(n: int, p: float) -> dict:
    """The engine's CUBA parameters, as ``nest_cuba.py --params`` takes them."""
    prm = make_params("cuba", n_neurons=n, p_connect=p, seed=1)
    keys = ("tau_m", "tau_e", "tau_i", "v_rest", "v_ext", "v_th", "v_reset", "t_ref", "we", "wi", "frac_exc", "dt")
    return {k: float(getattr(prm, k)) for k in keys}


def run_nest(python: str, n: int, p: float, seconds: float, timeout: float = 3600) -> dict:
    """Run ``nest_cuba.py`` in ``python``; return its JSON result with the engine's statistics added.

    ``rate`` and ``cv`` come from :func:`summary` on NEST's spikes (over the 1 ms
    warm-up and the timed run); ``rate_hz`` and ``cv`` of NEST's own JSON stay
    as ``nest_rate_hz`` / ``nest_cv``.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="nest_cuba_") as tmp:
        spikes = Path(tmp) / "spikes.npz"
        out = subprocess.run([python, str(HERE / "nest_cuba.py"), "--n", str(n), "--p", repr(p),
                              "--seconds", str(seconds), "--params", json.dumps(nest_params(n, p)),
                              "--out", str(spikes)],
                             capture_output=True, text=True, timeout=timeout, env=env, cwd=str(ROOT))
        if out.returncode != 0:
            raise RuntimeError(f"NEST failed: {out.stderr.strip()[-800:]}")
        res = json.loads(out.stdout.strip().splitlines()[-1])
        with np.load(spikes) as z:
            t, i, dt, dur = z["spike_t"], z["spike_i"], float(z["dt"]), float(z["duration_ms"])
    n_steps = int(round(dur / dt))
    steps = np.clip(np.round(t / dt).astype(np.int64), 0, n_steps - 1)
    chunk = Chunk(t0=0.0, dt=dt, n_steps=n_steps, spike_t=t, spike_i=i,
                  pop_count=np.bincount(steps, minlength=n_steps).astype(np.int32),
                  rec_idx=np.zeros(0, np.int64), v_rec=np.zeros((0, n_steps), np.float32),
                  n_events=0, wall=res["run_s"])
    st = summary(chunk, n)
    res["nest_rate_hz"], res["nest_cv"] = res["rate_hz"], res["cv"]
    res["rate"], res["cv"] = st["rate"], st["cv"]
    return res


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
        b2_note = f"Brian2 {b2['runtime']['brian2']}, NumPy {b2['runtime']['numpy']}, isolated venv"
    ns = None
    nest_note = "NEST skipped in quick mode" if quick else (
        "NEST not run: set SPIKEWB_BENCH_NEST=1 (creates .bench-venv-nest)")
    nest_py = None if quick else nest_python(create=True)
    if nest_py:
        runs = [run_nest(nest_py, n, p, seconds) for _ in range(2)]
        ns = dict(min(runs, key=lambda r: r["cpu_s"]))
        ns["wall_min"] = min(r["run_s"] for r in runs)
        ns["cpu_all"] = [round(r["cpu_s"], 2) for r in runs]
        ns["wall_all"] = [round(r["run_s"], 2) for r in runs]
    if python or nest_py:
        # the engine again, after the references, so all saw similar machine load
        again = time_engine(n, p, seconds, 2)
        eng["walls"] += again["walls"]
        eng["wall"] = min(eng["wall"], again["wall"])
        eng["cpu"] = min(eng["cpu"], again["cpu"])

    # 10x the network size, same in-degree
    n_big, p_big = 10 * n, p / 10
    big_seconds = 1.0 if quick else float(os.environ.get("SPIKEWB_BENCH_CUBA_BIG_SECONDS", "2"))
    eng_big = time_engine(n_big, p_big, big_seconds, 1 if quick else 2)
    ns_big = None
    b2_big = None
    if python:                               # Brian2 cpp_standalone at 10x, the same in-degree
        runs = [run_brian2(python, "cpp_standalone", big_seconds, n_big, p=p_big) for _ in range(2)]
        b2_big = dict(min(runs, key=lambda r: r["cpu_s"]))
        b2_big["cpu_all"] = [round(r["cpu_s"], 2) for r in runs]
    if nest_py:
        ns_big = run_nest(nest_py, n_big, p_big, big_seconds)
    if nest_py or python:
        again = time_engine(n_big, p_big, big_seconds, 1)
        eng_big["walls"] += again["walls"]
        eng_big["wall"] = min(eng_big["wall"], again["wall"])
        eng_big["cpu"] = min(eng_big["cpu"], again["cpu"])
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
    nest_ref = f"NEST {ns['nest']} iaf_psc_exp, 1 thread" if ns else "NEST 3 iaf_psc_exp, 1 thread"
    nest_how = ("nest.Simulate() after a 1 ms warm-up Simulate, best of 2; "
                "pairwise_bernoulli, delay 0.1 ms (NEST's minimum; engine 0)")
    big_size = f"N={n_big}, p={p_big:g} (same in-degree), {big_seconds:g} s biological, dt 0.1 ms"
    big_stats = (f"engine rate {eng_big['rate']:.3f} Hz, CV {eng_big['cv']:.3f}"
                 + (f"; NEST rate {ns_big['rate']:.3f} Hz, CV {ns_big['cv']:.3f} (ratios "
                    f"{eng_big['rate'] / ns_big['rate']:.3f}, {eng_big['cv'] / ns_big['cv']:.3f})" if ns_big else ""))
    big_note = (f"NEST build (pairwise_bernoulli) {ns_big['build_s']:.0f} s, run wall {ns_big['run_s']:.1f} s, one run"
                if ns_big else nest_note)
    rows += [
        dict(metric=M_NEST_CPU, value=eng["cpu"] / seconds, unit="s/s",
             reference=f"{nest_ref}, process CPU of Simulate()",
             reference_value=ref(ns, "cpu_s", 1 / seconds),
             ratio=None if ns is None else ns["cpu_s"] / eng["cpu"], target="ratio > 1",
             notes=f"{size}; engine: thread CPU of the simulation; "
                   + (f"NEST CPU {ns['cpu_all']} s, build {ns['build_s']:.1f} s; {nest_how}" if ns else nest_note)),
        dict(metric=M_NEST_WALL, value=rtf, unit="s/s", reference=f"{nest_ref}, wall of Simulate()",
             reference_value=ref(ns, "wall_min", 1 / seconds),
             ratio=None if ns is None else ns["wall_min"] / eng["wall"], target="ratio > 1",
             notes=(f"NEST wall {ns['wall_all']} s; wall time depends on other load on the machine"
                    if ns else nest_note)),
        dict(metric=M_NEST_RATE, value=eng["rate"], unit="Hz", reference=f"{nest_ref}, same model",
             reference_value=ref(ns, "rate"), ratio=None if ns is None else eng["rate"] / ns["rate"],
             target="ratio within 0.9-1.1",
             notes="NEST spikes through the engine's summary(); weights C_m*w/tau_m pA" if ns else nest_note),
        dict(metric=M_NEST_CV, value=eng["cv"], unit="", reference=f"{nest_ref}, same model",
             reference_value=ref(ns, "cv"), ratio=None if ns is None else eng["cv"] / ns["cv"],
             target="ratio within 0.9-1.1",
             notes="different random connectivity; statistics only" if ns else nest_note),
        dict(metric=M_BIG_CPU, value=eng_big["cpu"] / big_seconds, unit="s/s",
             reference=f"{nest_ref}, process CPU of Simulate()",
             reference_value=ref(ns_big, "cpu_s", 1 / big_seconds),
             ratio=None if ns_big is None else ns_big["cpu_s"] / eng_big["cpu"], target="ratio > 1",
             notes=f"{big_size}; engine thread CPU, best of {len(eng_big['walls'])}, {eng_big['n_synapses']} "
                   f"synapses, setup {eng_big['setup']:.1f} s; {big_stats}"),
        dict(metric=M_BIG_B2, value=eng_big["cpu"] / big_seconds, unit="s/s",
             reference="Brian2 cpp_standalone main loop (its own std::clock timer, excl. compile)",
             reference_value=ref(b2_big, "cpu_s", 1 / big_seconds),
             ratio=None if b2_big is None else b2_big["cpu_s"] / eng_big["cpu"], target="ratio > 1",
             notes=(f"{big_size}; Brian2 runs {b2_big['cpu_all']} CPU s, rate {b2_big['rate_hz']:.3f} Hz, "
                    f"CV {b2_big['cv']:.3f}" if b2_big else f"{big_size}; {b2_note}")),
        dict(metric=M_BIG_WALL, value=eng_big["wall"] / big_seconds, unit="s/s",
             reference=f"{nest_ref}, wall of Simulate()", reference_value=ref(ns_big, "run_s", 1 / big_seconds),
             ratio=None if ns_big is None else ns_big["run_s"] / eng_big["wall"], target="ratio > 1",
             notes=f"{big_size}; {big_note}"),
    ]
    rows.sort(key=lambda r: METRICS.index(r["metric"]))
    return rows


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(r)
