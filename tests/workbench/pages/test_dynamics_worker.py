"""The dynamics page simulates on the shared CommandWorker: play / pause, commands between
chunks, a server slot while playing, errors shown and paused."""

from __future__ import annotations

import time

import pytest

from tests.conftest import until

from spikewb.workbench.pages.dynamics import DynamicsView
from spikewb.workbench.server.limits import SlotPool
from spikewb.workbench.sessions.worker import CommandWorker

FAST = "as fast as possible"


@pytest.fixture
def views(closing):
    return lambda **kw: closing(DynamicsView(**kw))


def test_plays_pauses_and_resets_between_chunks(views):
    v = views(speed=FAST)
    assert isinstance(v, CommandWorker)
    until(lambda: v._mailbox is not None and v._mailbox.t_end > 0.2)
    v.playing = False
    v.sync()
    v.update()
    assert not v.running and v.status.startswith("**paused**")
    t = v._mailbox.t_end
    time.sleep(0.3)
    assert v._mailbox.t_end == t                                  # nothing simulated while paused
    v.reset()
    v.sync()
    assert v._mailbox.t_end == 0.0                                # the reset shows at once, still paused
    v.playing = True
    until(lambda: v._mailbox.t_end > 0.05)


def test_waits_for_a_slot_and_frees_it_when_paused_or_closed(views):
    pool = SlotPool(1)
    assert pool.request("a trainer page")
    v = views(speed=FAST, playing=False)
    v.start(pool=pool)
    v.playing = True
    assert v.waiting and not v.running and v.slot_wait_text().startswith("**waiting for a free simulation slot**")
    time.sleep(0.3)
    assert v._net is None                                         # nothing built without the slot
    pool.release("a trainer page")
    until(lambda: v._mailbox is not None)
    assert pool.holds(v)
    v.playing = False
    assert not pool.holds(v) and pool.counts() == (0, 0)          # a paused page holds no slot
    v.playing = True
    assert pool.holds(v)
    v.close()
    assert not v.alive and pool.counts() == (0, 0)


def test_a_failing_chunk_pauses_and_shows_the_error(views):
    v = views(speed=FAST)
    until(lambda: v._net is not None)

    def broken(*a, **k):
        raise FloatingPointError("potential is NaN")

    v._net.run = broken
    until(lambda: bool(v.error))
    assert v.error == "FloatingPointError: potential is NaN" and not v.playing and not v.running
    v.reset()                                                     # Reset clears the error ...
    v.sync()
    assert v.error == ""
    del v._net.run                                                # ... and Play simulates again
    v.playing = True
    until(lambda: v.running and v._mailbox is not None and v._mailbox.t_end > 0.05)
