"""The XOR / mapping pages' background work runs on the shared CommandWorker.

Train / Pause take and give back a server slot, Step / Reset are commands run
between two patterns, training stops by itself at the epoch limit, and an
exception stops training and shows in the status.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import until

from spikewb.workbench.pages.spiketask import SpikeTaskDemo
from spikewb.workbench.server.limits import SlotPool
from spikewb.workbench.sessions.worker import CommandWorker


@pytest.fixture
def demos(closing):
    return lambda **kw: closing(SpikeTaskDemo(**kw))


def test_is_the_shared_worker_and_stops_at_the_epoch_limit(demos):
    d = demos(max_epochs=3)
    assert isinstance(d, CommandWorker)
    d.toggle()
    until(lambda: not d.running)
    d.update()
    assert d.epoch == 3 and d.status == "stopped at 3 epochs" and d.play_button.label == "Train"
    assert d.metric_src.data["epoch"] == [0, 1, 2]                 # the page shows every epoch


def test_step_and_reset_are_commands_between_patterns(demos):
    d = demos()
    d.step_button.clicks += 1                                      # Button.on_click -> one pattern
    d.sync()
    d.update()
    assert len(d.raster_src.data["t"]) > 0 and not d.running     # one pattern shown, training not started
    d.lr = 0.5
    d.sync()
    assert d.trainer.rule.lr == 0.5                                # rate change applied by the worker
    before = d.trainer
    d.reset_button.clicks += 1
    d.sync()
    assert d.trainer is not before and d.trainer.rule.lr == 0.5


def test_waits_for_a_slot_starts_when_one_frees_and_gives_it_back(demos):
    pool = SlotPool(1)
    assert pool.request("another page")
    d = demos(max_epochs=2)
    d.start(pool=pool)
    d.toggle()
    d.update()
    assert d.waiting and not d.running and d.status == "waiting for a free slot (#1 in queue)"
    assert d.play_button.label == "Pause"
    time.sleep(0.3)
    assert len(d.trainer.history) == 0                             # nothing trained without the slot
    pool.release("another page")
    until(lambda: not (d.waiting or d.running))
    assert len(d.trainer.history) == 2 and not pool.holds(d) and pool.counts() == (0, 0)


def test_pause_leaves_the_queue_and_close_frees_the_slot(demos):
    pool = SlotPool(1)
    pool.request("another page")
    d = demos()
    d.start(pool=pool)
    d.toggle()
    assert pool.position(d) == 1
    d.toggle()                                                     # Pause while waiting
    assert pool.position(d) is None and not d.waiting
    pool.release("another page")
    e = demos(max_epochs=100_000)
    e.start(pool=pool)
    e.toggle()
    until(lambda: len(e.trainer.history) >= 1)
    assert pool.holds(e)
    e.close()
    assert not e.alive and not pool.holds(e) and pool.counts() == (0, 0)


def test_an_exception_stops_training_and_shows_in_the_status(demos):
    d = demos()

    def broken():
        raise FloatingPointError("weights became NaN")

    d.trainer.step = broken
    d.toggle()
    until(lambda: bool(d.error))
    d.update()
    assert not d.running and d.status == "error: FloatingPointError: weights became NaN"
    d.toggle()                                                     # Train again: fresh trainer, error gone
    until(lambda: len(d.trainer.history) >= 1)
    d.update()
    assert d.status == "training" and not d.error
