"""Teaching demos: closed forms against simulation, and URL state validation."""

import numpy as np
import pytest

from spikewb.engine.neurons import demo_models as teaching
from spikewb.engine.neurons.continuous_lif import ContinuousLIF
from spikewb.workbench.pagestate import params_from_query, query_of


@pytest.mark.parametrize("leak,v_th,v_reset,ref", [(0.75, 1.0, 0.0, 0), (0.9, 1.0, 0.2, 3), (0.5, 2.0, -0.5, 1)])
def test_discrete_rate_closed_form_equals_simulation(leak, v_th, v_reset, ref):
    for current in np.linspace(0.0, 3.0 * v_th * (1 - leak) + 0.5, 37):
        _, spikes = teaching.discrete_lif(np.full(3000, current), leak, v_th, v_reset, "to value", ref)
        expected = float(teaching.discrete_rate(current, leak, v_th, v_reset, ref))
        if len(spikes) < 3:
            assert expected == 0.0 or 1 / expected > 1000, (current, expected)
            continue
        isi = np.diff(spikes[1:])                    # from the second spike on: starts at v_reset
        assert np.all(isi == isi[0]), f"irregular ISIs at I={current}"
        assert 1.0 / isi[0] == pytest.approx(expected, rel=1e-12), f"I={current}"


def test_discrete_rheobase():
    # V_inf = I / (1 - 0.75) reaches 1 at I = 0.25: silent below, firing above
    assert teaching.discrete_rate(0.2499, 0.75, 1.0) == 0
    assert teaching.discrete_rate(0.26, 0.75, 1.0) > 0
    _, s = teaching.discrete_lif(np.full(500, 0.2499), 0.75, 1.0, 0.0, "to value")
    assert len(s) == 0


def test_continuous_f_i_matches_closed_form():
    nrn = ContinuousLIF()
    for current in (2.8, 3.0, 4.0, 6.0):
        sim = nrn.simulated_rate(current, 2000.0)
        assert sim == pytest.approx(nrn.rate(current), rel=0.02), current
    assert nrn.simulated_rate(2.6, 1000.0) == 0.0


def test_desire_window_is_causal_signed_trace():
    dts = np.arange(-5, 12)
    for desire in (1.0, -1.0):
        w = teaching.desire_stdp_window(dts, desire, leak=0.75, lr=0.01, n_steps=64)
        expected = np.where(dts >= 0, 0.01 * desire * 0.75 ** np.clip(dts, 0, None), 0.0)
        np.testing.assert_allclose(w, expected, rtol=1e-12, atol=1e-15)


def test_stdp_window_and_soft_bounds():
    w = teaching.stdp_window(np.array([5.0, -5.0]), 0.01, 0.012, 20.0, 20.0)
    np.testing.assert_allclose(w, [0.01 * np.exp(-0.25), -0.012 * np.exp(-0.25)])
    grow = teaching.repeated_pairings(5.0, 500, 0.5, 1.0, a_plus=0.05)
    assert np.all(np.diff(grow) > 0) and grow[-1] < 1.0 and grow[-1] > 0.99
    shrink = teaching.repeated_pairings(-5.0, 500, 0.5, 1.0, a_minus=0.05)
    assert np.all(np.diff(shrink) < 0) and shrink[-1] > 0.0


def test_synaptic_current_and_spike_parsing():
    i = teaching.synaptic_current([0, 2], 4, 1.0, 0.5)
    np.testing.assert_allclose(i, [1.0, 0.5, 1.25, 0.625])
    times, problems = teaching.parse_spike_times("3, abc, 7;-2, 1e9", 10)
    assert times.tolist() == [3.0, 7.0] and len(problems) == 3


def test_url_query_validation():
    from spikewb.workbench.pages.teaching import NeuronDemo
    values, problems = params_from_query(NeuronDemo, {
        "form": "continuous", "drive": "0.7", "leak": "1.5", "duration": "abc", "nope": "1",
        "reset": "sideways", "spike_times": "../../etc/passwd", "present": "true"},
        keys=(*NeuronDemo.url_keys, "present"))
    assert values == {"form": "continuous", "drive": 0.7, "spike_times": "../../etc/passwd", "present": True}
    assert len(problems) == 4
    assert any("leak" in p for p in problems) and any("'nope'" in p for p in problems)
    demo = NeuronDemo(**values)
    assert demo.form == "continuous" and demo.n_spikes >= 0         # the path is only text, parsed as times
    assert query_of(demo, NeuronDemo.url_keys) == {"form": "continuous", "drive": "0.7",
                                                   "spike_times": "../../etc/passwd"}


def test_demo_objects_compute(tmp_path):
    from spikewb.workbench.pages.teaching import NeuronDemo, StdpDemo
    d = NeuronDemo(drive=0.5, reset="to value")
    # V: 0.5, 0.875, 1.156 -> spike, reset to 0, repeat: every 3rd step, 20 spikes in 60 steps
    assert float(teaching.discrete_rate(0.5, 0.75, 1.0)) == pytest.approx(1 / 3)
    assert d.n_spikes == 20
    d.form = "continuous"
    assert d.n_spikes == len(ContinuousLIF().simulate(3.0, 600)[1])
    s = StdpDemo(delta_t=-10, desire=-1)
    r = s.window()
    assert r["now"] < 0 and r["wd"][-1] == pytest.approx(0.5)          # anti-causal: desire rule unchanged
    s.delta_t = 4
    assert s.window()["wd"][-1] == pytest.approx(0.5 - 60 * 0.01 * 0.75 ** 4)
