"""Pages that run their own background simulation under the server's training slots.

The dynamics page and the spike-task pages (XOR, mapping) each own a worker
thread.  On a served page that thread starts only once the browser's websocket
is connected, and it simulates only while it holds one of the slots of
:func:`~spikewb.workbench.server.limits.training_pool`, the pool the trainer and
compare pages share, so a plain ``GET`` costs nothing and no page runs outside
the server's limits.  In scripts, notebooks and tests (no server session) there
is no pool and the work starts at once.
"""

from __future__ import annotations

import panel as pn

from spikewb.engine.config import use_one_blas_thread
from spikewb.workbench.server.limits import SlotPool, training_pool


class SlotUser:
    """Mixin: slot bookkeeping for a page with its own worker thread.

    The class provides ``start(pool=None)`` (start its thread, idempotent) and
    ``close()``; it may override :meth:`_slot_granted`, which the pool calls
    from another thread when a queued request is granted.
    """

    #: The server's slot pool while served (None: work without one).
    pool: SlotPool | None = None

    def start_when_connected(self) -> None:
        """On a served page: stop with the session, start once the browser has connected."""
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:
            pn.state.on_session_destroyed(lambda _ctx: self.close())
            pn.state.onload(self._start_served)

    def _start_served(self) -> None:
        use_one_blas_thread()  # BLAS pools are process-wide (see spikewb.engine.config)
        self.start(pool=training_pool())

    def _slot_granted(self) -> None:
        """Called by the pool when a queued request gets its slot (default: nothing)."""

    def _take_slot(self) -> bool:
        """Whether this page may work now (holds a slot, or needs none); else it queues for one."""
        return self.pool is None or self.pool.request(self, self._slot_granted)

    def _release_slot(self) -> None:
        if self.pool is not None:
            self.pool.release(self)  # the slot, or the place in the queue

    def queue_place(self) -> int | None:
        """1-based place in the slot queue while waiting, else None."""
        return None if self.pool is None else self.pool.position(self)
