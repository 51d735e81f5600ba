"""CUBA / COBA E/I networks: hand-stepped equality, published statistics, benchmark table."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from spikewb.engine.errors import ConfigError
from spikewb.engine.networks.ei import (COBA, CUBA, REGIMES, EINetwork, firing_rates, isi_cv, make_params,
                               population_rate, random_csr, summary)

ROOT = Path(__file__).resolve().parents[3]


# --------------------------------------------------------------------------- hand-stepped twin
def hand_stepped(net: EINetwork, n_steps: int):
    """Plain-Python/NumPy simulation of ``net`` from its current state (module docstring schedule).

    Returns the list of (step, neuron) spikes.  Uses the same per-step
    constants as the kernel, so results agree to the last bit.
    """
    p = net.params
    c = net.coefficients()
    v, ge, gi, ref = net.v.copy(), net.ge.copy(), net.gi.copy(), net.ref.copy()
    spikes = []
    for t in range(n_steps):
        for i in range(p.n_neurons):
            if ref[i] > 0:
                ref[i] -= 1
            elif p.model == "coba":
                g = 1.0 + ge[i] + gi[i]
                v_inf = (c["e_eff"] + ge[i] * c["e_exc"] + gi[i] * c["e_inh"]) / g
                v[i] = v_inf + (v[i] - v_inf) * math.exp(-g * c["dt_over_tau_m"])
            else:
                v[i] = c["e_eff"] + (v[i] - c["e_eff"]) * c["d_m"] + c["c_e"] * ge[i] + c["c_i"] * gi[i]
        ge *= c["d_e"]
        gi *= c["d_i"]
        fired = [i for i in range(p.n_neurons) if v[i] > p.v_th and ref[i] == 0]
        for i in fired:
            targets = net.indices[net.indptr[i]:net.indptr[i + 1]]
            if i < p.n_exc:
                ge[targets] += p.we
            else:
                gi[targets] += p.wi
        for i in fired:
            v[i] = p.v_reset
            ref[i] = max(c["n_ref"] - 1, 0)
            spikes.append((t, i))
    return spikes


TINY = dict(n_neurons=40, p_connect=0.2, seed=3)


@pytest.mark.parametrize("model,extra", [("cuba", dict(we=4.0, wi=-12.0)), ("coba", dict(we=0.8, wi=4.0))],
                         ids=["cuba", "coba"])
def test_tiny_network_matches_hand_stepped(model, extra):
    net = EINetwork(make_params(model, **TINY, **extra))
    expected = hand_stepped(net, 2000)
    chunk = net.run(200.0)
    got = list(zip(np.round(chunk.spike_t / chunk.dt).astype(int).tolist(), chunk.spike_i.tolist()))
    assert len(expected) > 40, f"{model}: tiny network too quiet for a meaningful check"
    counts_hand = np.bincount([i for _, i in expected], minlength=40)
    np.testing.assert_array_equal(np.bincount(chunk.spike_i, minlength=40), counts_hand,
                                  err_msg=f"{model}: spike counts differ from the hand-stepped simulation")
    assert got == expected, f"{model}: spike trains differ from the hand-stepped simulation"


def test_refractory_period_and_regular_firing_match_closed_form():
    """Uncoupled CUBA neurons: period = (n_ref - 1) dt held + first step above threshold."""
    net = EINetwork(make_params("cuba", n_neurons=5, p_connect=0.0, we=0.0, wi=0.0))
    chunk = net.run(1000.0)
    isi = np.diff(chunk.spike_t[chunk.spike_i == 0])
    p, c = net.params, net.coefficients()
    # after reset: held for n_ref - 1 steps, then v_k = E + (v_reset - E) d_m^k until v_k > v_th
    k = math.ceil(math.log((p.v_th - c["e_eff"]) / (p.v_reset - c["e_eff"])) / math.log(c["d_m"]) + 1e-12)
    np.testing.assert_allclose(isi, (c["n_ref"] - 1 + k) * p.dt, rtol=0, atol=1e-9)
    assert 52.0 < isi[0] < 53.5  # 4.9 ms held + 20 ms * ln(11) = 47.96 ms


def test_chunks_and_buffer_overflow_do_not_change_the_run():
    params = make_params("cuba", n_neurons=300, p_connect=0.1, seed=2)
    one = EINetwork(params).run(300.0)
    net = EINetwork(params)
    net._cap = 400  # forces many kernel calls with drained spike buffers
    net._spk_step = np.empty(net._cap, np.int32)
    net._spk_idx = np.empty(net._cap, np.int32)
    parts = [net.run(100.0) for _ in range(3)]
    np.testing.assert_array_equal(np.concatenate([c.spike_i for c in parts]), one.spike_i)
    np.testing.assert_allclose(np.concatenate([c.spike_t for c in parts]), one.spike_t, atol=1e-9)
    assert sum(c.n_events for c in parts) == one.n_events
    net.reset()
    np.testing.assert_array_equal(net.run(300.0).spike_i, one.spike_i)


def test_connectivity_statistics():
    indptr, indices = random_csr(4000, 0.02, np.random.default_rng(0))
    n_syn = indptr[-1]
    assert abs(n_syn - 0.02 * 4000 * 3999) < 4 * math.sqrt(0.02 * 4000 * 3999)
    pre = np.repeat(np.arange(4000), np.diff(indptr))
    assert not np.any(pre == indices), "autapse present"
    assert indices.dtype == np.int32 and indices.min() >= 0 and indices.max() < 4000


# --------------------------------------------------------------------------- published statistics
def _stats(regime, seconds=1.5, skip=300.0, seed=1):
    net = EINetwork(make_params("cuba", regime=regime, seed=seed))
    return summary(net.run(seconds * 1e3), net.params.n_neurons, skip_ms=skip)


def test_cuba_benchmark_rate_and_cv_match_brian2():
    """Brette 2007 CUBA: Brian2 2.9 on the same model gives 5.5-5.8 Hz and CV 0.61 (seed-dependent)."""
    s = _stats("benchmark")
    assert 5.0 <= s["rate"] <= 6.5, s
    assert 0.5 <= s["cv"] <= 0.72, s


def test_asynchronous_irregular_regime():
    """AI regime (Vogels & Abbott 2005; Brunel 2000): low rate, Poisson-like ISIs, weak synchrony."""
    s = _stats("asynchronous irregular")
    assert 2.0 <= s["rate"] <= 15.0, s
    assert 0.85 <= s["cv"] <= 1.2, s


def test_regimes_are_distinguishable():
    reg, osc, ai = _stats("regular", 0.8), _stats("oscillatory"), _stats("asynchronous irregular")
    assert reg["cv"] < 0.01 and 18.0 < reg["rate"] < 20.0, reg
    assert osc["fano"] > 3 * ai["fano"], (osc, ai)


def test_coba_sustains_irregular_activity():
    net = EINetwork(COBA(seed=1, n_neurons=4000))
    s = summary(net.run(1000.0), 4000, skip_ms=300.0)
    assert 5.0 <= s["rate"] <= 40.0 and s["cv"] > 0.8, s


# --------------------------------------------------------------------------- helpers and errors
def test_statistics_helpers():
    t = np.array([0.0, 10.0, 20.0, 5.0, 7.0, 100.0])
    i = np.array([0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(firing_rates(i, 3, 200.0), [15.0, 15.0, 0.0])
    cv = isi_cv(t, i, 3)
    assert cv[0] == 0.0 and np.isnan(cv[2])
    np.testing.assert_allclose(cv[1], np.std([2.0, 93.0]) / np.mean([2.0, 93.0]))
    np.testing.assert_allclose(population_rate(np.array([2, 0, 0, 2]), 10, 0.5, 1.0), [200.0, 200.0])


def test_live_and_structural_changes():
    net = EINetwork(make_params("cuba", n_neurons=200, p_connect=0.1))
    net.run(10.0)
    net.params.we = 3.0  # live: read at the next chunk
    net.run(10.0)
    net.params.n_neurons = 300
    with pytest.raises(ConfigError, match="rebuild"):
        net.run(10.0)
    net.rebuild()
    assert net.run(10.0).pop_count.shape == (100,) and net.v.shape == (300,)


@pytest.mark.parametrize("kwargs,match", [(dict(tau_m=-1.0), "tau_m"), (dict(p_connect=2.0), "p_connect")])
def test_out_of_range_parameters_are_rejected(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        make_params("cuba", **kwargs)


def test_unknown_model_and_regime():
    with pytest.raises(ConfigError, match="cuba"):
        make_params("hh")
    with pytest.raises(ConfigError, match="benchmark"):
        make_params("cuba", regime="chaos")
    assert set(REGIMES) >= {"benchmark", "asynchronous irregular", "regular", "oscillatory"}
    assert CUBA().v_ext == 11.0 and COBA().wi == 6.7


# --------------------------------------------------------------------------- benchmark table
def test_quick_cuba_benchmark_has_every_row(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEWB_BENCH_BRIAN2", "0")
    from spikewb.workbench.benchrun import COLUMNS, run_benchmarks
    md = run_benchmarks(["cuba"], quick=True, out=tmp_path, echo=lambda s: None)
    spec = importlib.util.spec_from_file_location("bench_cuba", ROOT / "tests" / "bench" / "bench_cuba.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for metric in mod.METRICS:
        assert metric in md, f"row {metric!r} missing from the quick table"
    assert "error" not in md
    rows = (tmp_path / "results.csv").read_text().splitlines()
    assert rows[0].split(",") == COLUMNS and len(rows) == 1 + len(mod.METRICS)


@pytest.mark.slow
def test_quick_coldstart_benchmark_has_every_row(tmp_path):
    """Starts `spikewb serve` once (warm numba cache); about 10-60 s on a shared 2-core machine."""
    from spikewb.workbench.benchrun import run_benchmarks
    md = run_benchmarks(["coldstart"], quick=True, out=tmp_path, echo=lambda s: None)
    spec = importlib.util.spec_from_file_location("bench_coldstart", ROOT / "tests" / "bench" / "bench_coldstart.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for metric in mod.METRICS:
        assert metric in md, f"row {metric!r} missing from the quick table"
    warm_http = [line for line in md.splitlines() if mod.METRICS[2] in line][0]
    assert "Error" not in warm_http and float(warm_http.split("|")[3]) > 0
