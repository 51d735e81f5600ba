"""The compare app's engine side: panes stepped in lock-step on the same data.

No browser: :class:`spikewb.workbench.sessions.compare.Comparison` and :class:`CompareSession`
are plain Python (no Panel import), so the property the page relies on is
checked here directly: same rule, seed and settings give identical curves;
different settings diverge; every pane sees the same sample at every step.
"""

from __future__ import annotations

import numpy as np
import pytest

from spikewb.engine.errors import ConfigError
from spikewb.workbench.sessions.compare import (CompareSession, Comparison, PaneSpec, from_query, parse_settings,
                               to_query)

N = 120  # samples: a few seconds for two 784-30-10 panes


def _curves(cmp: Comparison):
    return cmp.curves()


def test_same_rule_seed_settings_give_identical_curves():
    cmp = Comparison([PaneSpec("desire", [30]), PaneSpec("desire", [30])], seed=3, eval_limit=20)
    for _ in range(N):
        a, b = cmp.step()
        assert a.index == b.index  # the same sample in both panes, every step
        assert a.prediction == b.prediction
    ca, cb = _curves(cmp)
    assert len(ca["step"]) == N
    np.testing.assert_array_equal(ca["accuracy"], cb["accuracy"])
    np.testing.assert_array_equal(ca["loss"], cb["loss"])
    for wa, wb in zip(cmp.trainers[0].model.weights, cmp.trainers[1].model.weights):
        np.testing.assert_array_equal(wa, wb)


def test_different_learning_rates_diverge_on_the_same_samples():
    cmp = Comparison([PaneSpec("desire", [30]), PaneSpec("desire", [30], {"lr": 0.02})], seed=3,
                     eval_limit=20)
    indices = []
    for _ in range(N):
        a, b = cmp.step()
        assert a.index == b.index
        indices.append(a.index)
    ca, cb = _curves(cmp)
    assert not np.array_equal(ca["loss"], cb["loss"])
    assert not all(np.array_equal(wa, wb) for wa, wb in zip(cmp.trainers[0].model.weights,
                                                             cmp.trainers[1].model.weights))
    # the order is the seed's, the same as a lone Trainer with that seed would use
    assert indices == [int(i) for i in cmp.trainers[0].order[:N]]


def test_reset_replays_the_same_curve():
    cmp = Comparison([PaneSpec("desire", [20]), PaneSpec("stidi", [20])], seed=1, eval_limit=10)
    cmp.run(40)
    first = [c["accuracy"].copy() for c in _curves(cmp)]
    cmp.reset()
    assert cmp.samples == 0
    cmp.run(40)
    for before, after in zip(first, _curves(cmp)):
        np.testing.assert_array_equal(before, after["accuracy"])


def test_panes_with_different_encodings_share_the_samples():
    cmp = Comparison([PaneSpec("desire", [20]), PaneSpec("stidi", [20])], seed=0, eval_limit=10)
    rate, ttfs = cmp.step()
    assert rate.index == ttfs.index
    # rate code: several spikes per input; time-to-first-spike: at most one
    assert rate.counts[0].max() > 1
    assert ttfs.counts[0].max() <= 1


def test_pane_count_and_settings_are_validated():
    with pytest.raises(ConfigError):
        Comparison([PaneSpec("desire", [10])])
    with pytest.raises(ConfigError):
        Comparison([PaneSpec("desire", [10]), PaneSpec("nope", [10])])
    with pytest.raises(ConfigError):
        PaneSpec("desire", [10], {"lr": -1.0}).validated()
    with pytest.raises(ConfigError):
        PaneSpec("desire", [10**6]).validated()
    assert parse_settings("desire", "lr=0.01 lr_decay=0.1") == {"lr": 0.01, "lr_decay": 0.1}
    with pytest.raises(ConfigError):
        parse_settings("desire", "lr=abc")
    with pytest.raises(ConfigError):
        parse_settings("desire", "bogus=1")


def test_url_round_trip_and_bad_values():
    setup, problems = from_query({"panes": "desire,stidi,desire", "seed": "7", "lr1": "0.003",
                                  "hidden2": "40", "v_th3": "0.5"})
    assert problems == []
    assert [p.rule for p in setup["panes"]] == ["desire", "stidi", "desire"]
    assert setup["seed"] == 7 and setup["panes"][1].hidden == (40,)
    again, _ = from_query(to_query(setup))
    assert again == setup
    setup, problems = from_query({"panes": "desire,evil,desire,desire,desire", "lr1": "-5", "seed": "x",
                                  "hidden2": "99999999", "dataset": "../../etc/passwd", "foo": "1", "lr9": "1"})
    assert [p.rule for p in setup["panes"]] == ["desire"] * 4
    assert setup["panes"][0].params == {} and setup["panes"][1].hidden == (100,)
    assert setup["seed"] == 0 and setup["dataset"] == "mnist-5k"
    assert len(problems) == 8, problems
    one, problems = from_query({"panes": "desire"})
    assert len(one["panes"]) == 2  # padded to the minimum


def test_session_steps_panes_together_and_publishes():
    s = CompareSession([PaneSpec("desire", [20]), PaneSpec("desire", [20], {"lr": 0.01})], eval_limit=10)
    try:
        frames = s.step().result(timeout=60)
        assert len(frames) == 2 and frames[0].index == frames[1].index
        snap = s.take()
        assert snap is not None and snap.samples == 1 and len(snap.panes) == 2
        assert all(p.frame.spike_t for p in snap.panes)  # full record for the views
        assert s.take() is None  # taken once
        s.play()
        import time
        deadline = time.monotonic() + 30
        while s.samples < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        s.pause()
        s.sync()
        assert s.samples >= 30
        assert all(st.steps == s.comparison.stats[0].steps for st in s.comparison.stats)
        s.reset().result(timeout=30)
        assert s.samples == 0
        s.rebuild([PaneSpec("desire", [10]), PaneSpec("stidi", [10]), PaneSpec("desire", [10])]).result(60)
        assert s.comparison.n_panes == 3
        with pytest.raises(ConfigError):
            s.rebuild([PaneSpec("desire", [10])])
    finally:
        assert s.close()


# ------------------------------------------------------------------ training slots
def _wait(cond, timeout: float = 30.0) -> None:
    import time
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_served_session_waits_for_a_slot_and_frees_it():
    import time

    from spikewb.workbench.server.limits import SlotPool

    pool = SlotPool(1)
    assert pool.request("trainer page")                   # another owner holds the only slot
    s = CompareSession([PaneSpec("desire", [10]), PaneSpec("desire", [10])], eval_limit=10, pool=pool)
    try:
        s.play()
        assert s.waiting and not s.running and s.slot_position() == 1 and pool.counts() == (1, 1)
        time.sleep(0.3)
        assert s.samples == 0                             # no training without a slot
        pool.release("trainer page")                      # the slot frees: the comparison starts by itself
        _wait(lambda: s.running and s.samples > 0)
        assert not s.waiting and s.slot_position() is None and pool.holds(s)
        s.pause()                                         # pausing gives the slot back
        assert not s.running and pool.counts() == (0, 0)
        s.play()
        assert s.running and pool.holds(s)
        assert pool.request("other") is False             # now the other owner queues behind it
        s.step().result(timeout=30)                       # step pauses: the slot goes to the waiting owner
        assert pool.holds("other") and not pool.holds(s)
        pool.release("other")
        s.play()
        assert pool.holds(s)
        s.play()                                          # a second play keeps the one slot
        assert pool.counts() == (1, 0)
        assert s.close()                                  # closing frees it too
        assert pool.counts() == (0, 0) and not s.running
        with pytest.raises(RuntimeError, match="closed"):
            s.play()
    finally:
        s.close()


def test_waiting_session_leaves_the_queue_on_pause_and_close():
    from spikewb.workbench.server.limits import SlotPool

    pool = SlotPool(1)
    pool.request("holder")
    a = CompareSession([PaneSpec("desire", [10]), PaneSpec("desire", [10])], eval_limit=10, pool=pool)
    b = CompareSession([PaneSpec("desire", [10]), PaneSpec("desire", [10])], eval_limit=10, pool=pool)
    try:
        a.play()
        b.play()
        assert a.slot_position() == 1 and b.slot_position() == 2   # first come, first served
        a.pause()
        assert not a.waiting and b.slot_position() == 1 and pool.counts() == (1, 1)
        b.close()
        assert pool.counts() == (1, 0)
        pool.release("holder")
        assert pool.counts() == (0, 0) and not a.running and not b.running
    finally:
        a.close()
        b.close()


def test_error_stops_training_and_frees_the_slot():
    from spikewb.workbench.server.limits import SlotPool

    pool = SlotPool(1)
    s = CompareSession([PaneSpec("desire", [10]), PaneSpec("desire", [10])], eval_limit=10, pool=pool)

    def broken(record=None):
        raise FloatingPointError("weights became NaN")

    try:
        s.comparison.step = broken
        s.play()
        _wait(lambda: bool(s.error))
        assert "FloatingPointError: weights became NaN" in s.error
        _wait(lambda: pool.counts() == (0, 0))
        assert not s.running and s.alive                  # the worker lives on for a reset
        with pytest.raises(RuntimeError, match="reset first"):
            s.play()                                      # no slot is taken for a stopped comparison
        assert pool.counts() == (0, 0)
        del s.comparison.step
        s.reset().result(timeout=30)
        assert s.error == ""
        s.play()
        _wait(lambda: s.samples > 0)
    finally:
        s.close()


def test_served_uses_the_server_pool_and_plain_sessions_none():
    from spikewb.workbench.server.limits import training_pool

    s = CompareSession.served([PaneSpec("desire", [10]), PaneSpec("desire", [10])], eval_limit=10,
                              autostart=False)
    plain = CompareSession([PaneSpec("desire", [10]), PaneSpec("desire", [10])], eval_limit=10, autostart=False)
    try:
        assert s.pool is training_pool() and plain.pool is None
    finally:
        s.close()
        plain.close()
