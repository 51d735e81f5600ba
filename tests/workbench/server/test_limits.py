"""Training slots, network-size / T / memory checks, environment configuration."""

import threading

import pytest

from spikewb.engine.errors import ConfigError
from spikewb.workbench.server.limits import Limits, SlotPool, check_network, estimate_bytes


def test_slot_pool_queue_order_and_grants():
    pool = SlotPool(2)
    granted = []
    assert pool.request("a") and pool.request("b")
    assert not pool.request("c", lambda: granted.append("c"))
    assert not pool.request("d", lambda: granted.append("d"))
    assert pool.position("c") == 1 and pool.position("d") == 2 and pool.counts() == (2, 2)
    assert not pool.request("c")                            # asking again keeps the place
    pool.release("a")
    assert granted == ["c"] and pool.holds("c") and pool.position("d") == 1
    pool.release("d")                                       # leaving the queue
    pool.release("b")
    assert granted == ["c"] and pool.counts() == (1, 0)
    assert pool.request("e")                                # free slot, empty queue


def test_slot_pool_many_threads_never_exceed_size():
    pool = SlotPool(3)
    inside, peak, lock = [0], [0], threading.Lock()
    done = threading.Barrier(21)

    def worker(k):
        ev = threading.Event()
        if not pool.request(k, ev.set):
            assert ev.wait(10)
        with lock:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
        with lock:
            inside[0] -= 1
        pool.release(k)
        done.wait(10)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    done.wait(10)
    assert peak[0] <= 3 and pool.counts() == (0, 0)


def test_network_checks():
    lim = Limits(max_synapses=1_000_000, max_steps=100, memory_mb=50)
    check_network((784, 1000, 10), 20, lim)
    with pytest.raises(ConfigError, match="synapses"):
        check_network((784, 2000, 10), 20, lim)
    with pytest.raises(ConfigError, match="T = 500"):
        check_network((784, 100, 10), 500, lim)
    with pytest.raises(ConfigError, match="MB"):
        check_network((784, 1000, 10), 20, Limits(memory_mb=3))
    assert estimate_bytes((10, 10), 0, itemsize=4, state_copies=0) == 100 * 4 + 20 * 5


def test_limits_from_env():
    lim = Limits.from_env({"SPIKEWB_MAX_TRAINING": "3", "SPIKEWB_MEMORY_MB": "256"})
    assert (lim.max_training, lim.memory_mb) == (3, 256.0)
    again = Limits.from_env(lim.to_env())
    assert all(getattr(again, k) == getattr(lim, k) for k in Limits.ENV)
    with pytest.raises(ConfigError, match="SPIKEWB_MAX_STEPS"):
        Limits.from_env({"SPIKEWB_MAX_STEPS": "many"})
    with pytest.raises(ConfigError, match="max_training"):
        Limits.from_env({"SPIKEWB_MAX_TRAINING": "0"})


# ------------------------------------------------------------ sessions under the limits
def _wait(cond, timeout=20.0):
    import time
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_sessions_wait_for_a_slot_and_start_when_one_frees():
    from spikewb.workbench.sessions.session import TrainingSession

    pool, lim = SlotPool(1), Limits()
    a = TrainingSession(hidden=[8], eval_limit=20, limits=lim, pool=pool)
    b = TrainingSession(hidden=[8], eval_limit=20, limits=lim, pool=pool)
    try:
        a.play()
        b.play()
        assert a.running and not a.waiting
        assert b.waiting and not b.running and b.slot_position() == 1 and pool.counts() == (1, 1)
        _wait(lambda: a.samples > 0)
        assert b.samples == 0
        a.pause()                                   # frees the slot: b starts by itself
        _wait(lambda: b.running and b.samples > 0)
        assert not b.waiting and b.slot_position() is None and pool.holds(b)
        a.play()                                    # now a waits
        assert a.waiting and pool.counts() == (1, 1)
        a.pause()                                   # leaving the queue
        assert not a.waiting and pool.counts() == (1, 0)
        b.close()                                   # closing frees the slot too
        assert pool.counts() == (0, 0)
    finally:
        a.close()
        b.close()


def test_idle_session_is_paused_and_frees_its_slot():
    from spikewb.workbench.sessions.session import TrainingSession

    pool = SlotPool(1)
    s = TrainingSession(hidden=[8], eval_limit=20, limits=Limits(idle_timeout_s=1.0), pool=pool)
    try:
        s.play()
        _wait(lambda: s.samples > 0)
        _wait(lambda: not s.running, 10)
        assert "without activity" in s.notice and pool.counts() == (0, 0)
        s.play()                                    # pressing Train again clears the notice
        assert s.running and s.notice == ""
    finally:
        s.close()


def test_session_refuses_networks_over_the_limits():
    from spikewb.workbench.sessions.session import TrainingSession

    lim = Limits(max_synapses=100_000, max_steps=50)
    with pytest.raises(ConfigError, match="synapses"):
        TrainingSession(hidden=[1000], limits=lim, autostart=False)
    s = TrainingSession(hidden=[20], limits=lim, autostart=False)
    try:
        with pytest.raises(ConfigError, match="synapses"):
            s.apply(hidden=[500, 500])              # refused at once, nothing queued
        with pytest.raises(ConfigError, match="T = 100"):
            s.apply(n_steps=100)
        s.apply(n_steps=40).result(10)              # within the limits: applied
        assert s.rule.n_steps == 40
    finally:
        s.close()


# ---------------------------------------------------------------------------- depth, T, compare
def test_depth_is_limited_before_anything_else():
    lim = Limits(max_layers=3)
    check_network((784, 5, 5, 5, 10), 20, lim)
    with pytest.raises(ConfigError, match="3,000 hidden layers"):
        check_network((784, *[1] * 3000, 10), 20, Limits())
    with pytest.raises(ConfigError, match="4 hidden layers"):
        check_network((784, 5, 5, 5, 5, 10), 20, lim)
    assert Limits.from_env({"SPIKEWB_MAX_LAYERS": "12"}).max_layers == 12
    assert Limits.from_env(Limits(max_layers=5).to_env()).max_layers == 5


def test_time_steps_fail_closed_for_unknown_rules():
    from spikewb.engine.rules import make_rule
    from spikewb.workbench.server.limits import time_steps

    assert time_steps(make_rule("desire", n_steps=30)) == 30
    assert time_steps(make_rule("ssnn", n_steps=2001)) == 2001
    assert time_steps(make_rule("normad")) > 0
    assert time_steps(make_rule("stidi")) == 0 and time_steps(make_rule("multispike")) == 0
    with pytest.raises(ConfigError, match="cannot tell the time steps"):
        time_steps({"lr": 0.1, "window": 5})

    class Unknown:  # a rule object whose step count has another name
        key = "future"
        n_ticks = 10 ** 6
    with pytest.raises(ConfigError, match="'future'"):
        time_steps(Unknown())
    for bad in ({"n_steps": float("nan")}, {"n_steps": -1}, {"t_sample": 1e9, "dt": 1e-9},
                {"t_sample": 10.0, "dt": 0.0}):
        with pytest.raises(ConfigError):
            time_steps(bad)


def test_compare_panes_are_checked_together_before_anything_is_built(monkeypatch):
    from spikewb.workbench.sessions import compare
    from spikewb.workbench.sessions.compare import CompareSession, Comparison, PaneSpec

    built = []
    monkeypatch.setattr(compare, "Trainer", lambda *a, **k: built.append(a) or (_ for _ in ()).throw(AssertionError))
    big = [PaneSpec("desire", (2000, 2000, 2000))] * 4
    with pytest.raises(ConfigError, match="synapses"):
        Comparison(big, limits=Limits())
    with pytest.raises(ConfigError, match="T = 2001"):
        Comparison([PaneSpec("ssnn", (10,), {"n_steps": 2001}), PaneSpec()], limits=Limits())
    # four panes each under the limit, over it together
    quarter = [PaneSpec("desire", (1500,))] * 4            # 4 x 1.19 M synapses
    with pytest.raises(ConfigError, match="together"):
        Comparison(quarter, limits=Limits())
    assert built == []
    with pytest.raises(ConfigError, match="synapses"):  # served: the server's limits
        CompareSession.served(big, autostart=False)
    assert built == []


def test_compare_rebuild_is_refused_without_pausing(monkeypatch):
    from spikewb.workbench.sessions.compare import CompareSession, PaneSpec

    s = CompareSession([PaneSpec("desire", (10,)), PaneSpec("desire", (10,))], limits=Limits(), autostart=False)
    try:
        with pytest.raises(ConfigError, match="synapses"):
            s.rebuild([PaneSpec("desire", (2000, 2000, 2000))] * 2)
        assert s.comparison.trainers[0].arch.hidden == [10]
    finally:
        s.close()


def test_tau_sweep_settings_respect_the_server_limits():
    from spikewb.workbench.sessions.session import TrainingSession
    from spikewb.workbench.views.tausweep import TauSweepPanel

    s = TrainingSession(rule="multispike", hidden=[8], autostart=False, limits=Limits(max_synapses=100_000))
    try:
        panel = TauSweepPanel(s, visible=True, hidden=100)
        panel.settings()                                   # 784*100 + 100*10 synapses: fine
        panel.hidden = 1000
        with pytest.raises(ConfigError, match="synapses"):
            panel.settings()
    finally:
        s.close()
