"""Pages that compute in the background under the server's training slots.

The dynamics page and the spike-task pages (XOR, mapping) run on the shared
:class:`~spikewb.workbench.sessions.worker.CommandWorker`.  On a served page the
worker starts only once the browser's websocket is connected, and it simulates
or trains only while it holds one of the slots of
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
    """Mixin for a page that is also a CommandWorker: start with the browser, stop with the session.

    The class provides ``start(pool=None)`` (start its worker with the server's
    pool, idempotent) and ``close()``; taking, queueing for and giving back the
    slot is the worker's (``CommandWorker._play`` / ``_halt``).
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
