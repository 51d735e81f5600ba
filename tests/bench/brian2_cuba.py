"""CUBA-4000 in Brian2, the reference side of ``bench_cuba.py``.

Runs in the isolated Brian2 environment (``tests/bench/brian2_env.sh``), not in
the workbench venv: it imports nothing from the project.  The model is
Brian2's own ``examples/CUBA.py`` (Brette et al. 2007, benchmark 2) with
``method='exact'`` and a ``SpikeMonitor``.  Prints one JSON object:

``mode``, ``target`` (codegen target), ``duration_s`` (biological),
``setup_s`` (network construction), ``run_s`` (wall seconds: for runtime
mode the ``run()`` call after a 1 ms warm-up run that compiles the code
objects; for cpp_standalone the whole binary, which also builds the synapses
and writes the results), ``cpu_s`` (CPU seconds of the simulation loop:
runtime mode the process during ``run()``; cpp_standalone Brian2's own
main-loop timer ``device._last_run_time``, which is ``std::clock()`` and so
CPU time when OpenMP is off), ``binary_cpu_s`` (cpp_standalone: CPU of the
whole binary),
``total_s`` (everything after import, including code generation and g++ for
cpp_standalone), ``n_spikes``, ``rate_hz``, ``cv``.

Usage::

    .bench-venv-brian2/bin/python tests/bench/brian2_cuba.py --mode runtime --duration 10
    .bench-venv-brian2/bin/python tests/bench/brian2_cuba.py --mode cpp_standalone --duration 10
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["runtime", "cpp_standalone"], default="runtime")
    ap.add_argument("--duration", type=float, default=10.0, help="biological seconds")
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--p", type=float, default=0.02, help="connection probability (0.002 at 40 000: same in-degree)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--target", default="auto", help="runtime codegen target: auto, cython or numpy")
    args = ap.parse_args()

    t_start = time.perf_counter()
    import numpy as np
    import brian2 as b2
    from brian2 import mV, ms, second

    workdir = None
    if args.mode == "cpp_standalone":
        workdir = tempfile.mkdtemp(prefix="brian2_cuba_")
        b2.set_device("cpp_standalone", directory=workdir, build_on_run=False)
    else:
        b2.prefs.codegen.target = args.target
    b2.seed(args.seed)
    b2.defaultclock.dt = 0.1 * ms

    t0 = time.perf_counter()
    taum, taue, taui = 20 * ms, 5 * ms, 10 * ms
    Vt, Vr, El = -50 * mV, -60 * mV, -49 * mV
    eqs = """
    dv/dt  = (ge+gi-(v-El))/taum : volt (unless refractory)
    dge/dt = -ge/taue : volt
    dgi/dt = -gi/taui : volt
    """
    n_exc = int(round(args.n * 0.8))
    P = b2.NeuronGroup(args.n, eqs, threshold="v>Vt", reset="v = Vr", refractory=5 * ms, method="exact")
    P.v = "Vr + rand() * (Vt - Vr)"
    P.ge = 0 * mV
    P.gi = 0 * mV
    we = (60 * 0.27 / 10) * mV
    wi = (-20 * 4.5 / 10) * mV
    Ce = b2.Synapses(P, P, on_pre="ge += we")
    Ci = b2.Synapses(P, P, on_pre="gi += wi")
    Ce.connect(f"i<{n_exc}", p=args.p)
    Ci.connect(f"i>={n_exc}", p=args.p)
    mon = b2.SpikeMonitor(P)
    net = b2.Network(P, Ce, Ci, mon)
    setup = time.perf_counter() - t0

    if args.mode == "runtime":
        net.run(1 * ms)  # compile / load the code objects
        c1, t1 = time.process_time(), time.perf_counter()
        net.run(args.duration * second)
        run_s = time.perf_counter() - t1
        cpu_s = binary_cpu_s = time.process_time() - c1
        target = b2.prefs.codegen.target
        if target == "auto":
            target = type(P.state_updater.codeobj).__name__
    else:
        net.run(args.duration * second)
        b2.device.build(directory=workdir, compile=True, run=False, debug=False)
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t1 = time.perf_counter()
        b2.device.run(directory=workdir, with_output=False)
        # wall time of the whole binary (it also builds the synapses and writes results)
        run_s = time.perf_counter() - t1
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        binary_cpu_s = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        # Brian2's own main-loop timer: std::clock(), i.e. CPU time, without OpenMP
        cpu_s = float(b2.device._last_run_time)
        target = "cpp_standalone (1 thread)"
    total = time.perf_counter() - t0

    t = np.asarray(mon.t / ms)
    i = np.asarray(mon.i)
    keep = t >= 1.0 if args.mode == "runtime" else t >= 0.0
    t, i = t[keep], i[keep]
    order = np.lexsort((t, i))
    t, i = t[order], i[order]
    same = i[1:] == i[:-1]
    isi, owner = (t[1:] - t[:-1])[same], i[1:][same]
    n_isi = np.bincount(owner, minlength=args.n)
    s1 = np.bincount(owner, weights=isi, minlength=args.n)
    s2 = np.bincount(owner, weights=isi * isi, minlength=args.n)
    ok = n_isi >= 2
    mean = s1[ok] / n_isi[ok]
    cv = np.sqrt(np.maximum(s2[ok] / n_isi[ok] - mean ** 2, 0)) / mean
    print(json.dumps(dict(mode=args.mode, target=str(target), brian2=b2.__version__, numpy=np.__version__,
                          n=args.n, duration_s=args.duration, setup_s=setup, run_s=run_s, cpu_s=cpu_s,
                          binary_cpu_s=binary_cpu_s, total_s=total,
                          import_s=t0 - t_start, n_spikes=int(t.size),
                          n_synapses=int(len(Ce) + len(Ci)),
                          rate_hz=float(t.size / args.n / args.duration), cv=float(np.mean(cv)))))


if __name__ == "__main__":
    main()
