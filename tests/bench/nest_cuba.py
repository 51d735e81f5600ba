"""CUBA network in NEST 3, the second reference side of ``bench_cuba.py``.

Runs in the isolated NEST environment (``tests/bench/nest_env.sh``), not in
the workbench venv: it imports nothing from the project.  The model is the
engine's CUBA network (:mod:`spikewb.engine.networks.ei`, Brette et al. 2007
benchmark 2) written with NEST's ``iaf_psc_exp`` (exact integration):

* ``C_m dV/dt = -(V - E_L) C_m / tau_m + I_ex + I_in`` with ``E_L`` set to the
  engine's effective rest ``v_rest + v_ext`` (-49 mV) and ``I_e = 0``.  The
  engine writes ``tau_m dv/dt = (E - v) + g_e + g_i`` with ``g`` in mV, so
  ``I = C_m g / tau_m``: a jump of ``w`` mV in ``g_e`` is a current weight of
  ``C_m * w / tau_m`` pA (with C_m = 250 pF, tau_m = 20 ms: 1.62 mV ->
  20.25 pA, -9 mV -> -112.5 pA).  ``C_m`` itself is arbitrary.
* tau_syn_ex = 5 ms, tau_syn_in = 10 ms, V_th = -50 mV, V_reset = -60 mV,
  t_ref = 5 ms, initial V uniform in [V_reset, V_th], currents 0.
* Connectivity ``pairwise_bernoulli`` with probability ``p`` and no
  autapses, exactly the engine's rule (every ordered pair independently),
  from all neurons; excitatory synapses from the first ``round(0.8 N)``.
* Resolution 0.1 ms, ``local_num_threads = 1``, synaptic delay 0.1 ms (NEST's
  minimum; the engine delivers with zero delay into the next step, so NEST
  sees each spike one step later).
* Two step-convention differences that remain: NEST stamps a spike at the
  end of the step ((k+1) dt, shifted back by one step in the output to match
  the engine's k dt) and clamps V for t_ref/dt full updates after the spike,
  one update more than the engine / Brian2 convention (4.9 ms of integrated
  time there).  Pass ``--t-ref 4.9`` to mimic that exactly.

Prints one JSON object: ``nest`` (version), ``n``, ``p``, ``duration_s``,
``build_s`` (kernel reset, nodes, recorder, connections), ``warmup_s``
(``Simulate(1 ms)``, which also builds NEST's presynaptic tables), ``run_s`` (wall
seconds of ``Simulate(duration)``), ``cpu_s`` (process CPU seconds of that
call), ``thread_cpu_s`` (main-thread CPU seconds of that call),
``n_spikes``, ``n_synapses``, ``rate_hz`` and ``cv`` (computed like the engine's
``summary``: per-neuron ISI CV of neurons with >= 3 spikes, mean over them;
rate over all neurons), all over the warm-up and the timed run together.
With ``--out FILE.npz`` it also writes ``spike_t`` (ms, engine convention) and
``spike_i`` so the caller can compute statistics with the engine's own code.

Usage::

    .bench-venv-nest/bin/python tests/bench/nest_cuba.py --n 4000 --seconds 10
    .bench-venv-nest/bin/python tests/bench/nest_cuba.py --n 40000 --p 0.002 --seconds 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

#: The engine's CUBA parameters (``spikewb.engine.networks.ei.CUBA``); the
#: caller may pass its own with ``--params`` (JSON).
DEFAULTS = dict(tau_m=20.0, tau_e=5.0, tau_i=10.0, v_rest=-60.0, v_ext=11.0, v_th=-50.0, v_reset=-60.0,
                t_ref=5.0, we=1.62, wi=-9.0, frac_exc=0.8, dt=0.1)
C_M = 250.0  # pF; any value works, weights scale with it


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000, help="neurons")
    ap.add_argument("--p", type=float, default=None,
                    help="connection probability (default 80 / n: about 80 inputs per neuron, as at N=4000)")
    ap.add_argument("--seconds", type=float, default=10.0, help="biological seconds timed")
    ap.add_argument("--warmup-ms", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--t-ref", type=float, default=None, help="override the refractory period (ms)")
    ap.add_argument("--delay", type=float, default=None,
                    help="synaptic delay in ms (default: the resolution, NEST's minimum; the engine has 0)")
    ap.add_argument("--params", default="", help="JSON dict overriding DEFAULTS")
    ap.add_argument("--out", default="", help="write spike_t, spike_i to this .npz")
    args = ap.parse_args()
    prm = {**DEFAULTS, **(json.loads(args.params) if args.params else {})}
    if args.t_ref is not None:
        prm["t_ref"] = args.t_ref
    n = args.n
    p = args.p if args.p is not None else min(1.0, 0.02 * 4000 / n)
    n_exc = int(round(n * prm["frac_exc"]))

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("PYNEST_QUIET", "1")
    import numpy as np
    import nest

    if hasattr(nest, "VerbosityLevel"):
        nest.verbosity = nest.VerbosityLevel.ERROR
    else:
        nest.set_verbosity("M_ERROR")
    t0 = time.perf_counter()
    nest.ResetKernel()
    nest.set(resolution=prm["dt"], local_num_threads=1, rng_seed=args.seed, print_time=False)
    tau_m = prm["tau_m"]
    neurons = nest.Create("iaf_psc_exp", n, params=dict(
        C_m=C_M, tau_m=tau_m, E_L=prm["v_rest"] + prm["v_ext"], I_e=0.0, V_th=prm["v_th"],
        V_reset=prm["v_reset"], t_ref=prm["t_ref"], tau_syn_ex=prm["tau_e"], tau_syn_in=prm["tau_i"]))
    neurons.V_m = nest.random.uniform(prm["v_reset"], prm["v_th"])
    rec = nest.Create("spike_recorder")
    nest.Connect(neurons, rec)
    conn = dict(rule="pairwise_bernoulli", p=p, allow_autapses=False)
    w_e = C_M * prm["we"] / tau_m
    w_i = C_M * prm["wi"] / tau_m
    delay = prm["dt"] if args.delay is None else args.delay
    if n_exc > 0:
        nest.Connect(neurons[:n_exc], neurons, conn, dict(synapse_model="static_synapse", weight=w_e,
                                                          delay=delay))
    if n_exc < n:
        nest.Connect(neurons[n_exc:], neurons, conn, dict(synapse_model="static_synapse", weight=w_i,
                                                          delay=delay))
    n_syn = int(nest.num_connections) - n  # minus the recorder connections
    build = time.perf_counter() - t0

    w0 = time.perf_counter()
    nest.Simulate(args.warmup_ms)
    warm = time.perf_counter() - w0
    c1, tc1, w1 = time.process_time(), time.thread_time(), time.perf_counter()
    nest.Simulate(args.seconds * 1e3)
    run_s = time.perf_counter() - w1
    cpu_s = time.process_time() - c1
    thread_cpu = time.thread_time() - tc1

    ev = rec.get("events")
    t = np.asarray(ev["times"], np.float64) - prm["dt"]  # engine convention: step index * dt
    i = np.asarray(ev["senders"], np.int64) - int(neurons[0].global_id)
    duration = args.warmup_ms + args.seconds * 1e3
    # statistics exactly as spikewb.engine.networks.ei.summary (isi_cv with min_spikes=3)
    order = np.lexsort((t, i))
    ts, is_ = t[order], i[order]
    same = is_[1:] == is_[:-1]
    isi, owner = (ts[1:] - ts[:-1])[same], is_[1:][same]
    n_isi = np.bincount(owner, minlength=n)
    s1 = np.bincount(owner, weights=isi, minlength=n)
    s2 = np.bincount(owner, weights=isi * isi, minlength=n)
    ok = n_isi >= 2
    mean = s1[ok] / n_isi[ok]
    cv = np.sqrt(np.maximum(s2[ok] / n_isi[ok] - mean ** 2, 0.0)) / np.where(mean > 0, mean, np.nan)
    if args.out:
        np.savez(args.out, spike_t=t, spike_i=i.astype(np.int32), duration_ms=duration, dt=prm["dt"])
    print(json.dumps(dict(nest=str(nest.__version__), numpy=np.__version__, python=sys.version.split()[0],
                          n=n, p=p, n_exc=n_exc, duration_s=args.seconds, warmup_ms=args.warmup_ms,
                          t_ref=prm["t_ref"], delay_ms=delay, w_e_pA=w_e, w_i_pA=w_i,
                          build_s=build, warmup_s=warm, run_s=run_s, cpu_s=cpu_s, thread_cpu_s=thread_cpu,
                          n_spikes=int(t.size), n_synapses=n_syn,
                          rate_hz=float(t.size / n / (duration * 1e-3)),
                          cv=float(np.nanmean(cv)) if np.isfinite(cv).any() else float("nan"))))


if __name__ == "__main__":
    main()
