"""The one background worker behind every page that computes while it is shown.

The trainer's and the compare page's sessions, the XOR / mapping pages, the
dynamics page and the trainer's tau sweep all run on it.

A :class:`CommandWorker` owns one daemon thread that sleeps on a condition
until there is something to do, then, in this order:

1. runs every queued command (a function and the
   :class:`~concurrent.futures.Future` that receives its result or
   exception), so commands always run *between* two training steps;
2. trains at most one step, if training is wanted, no error stopped it and
   the step is due;
3. sets when the next step is due from ``speed`` (steps per second, 0 =
   as soon as possible).

An exception that escapes a step stops training and is written to
``error`` (the page shows it) instead of ending the thread; a later reset
clears it.

Training may be limited by a :class:`~spikewb.workbench.server.limits.SlotPool` shared by
every session of a server.  :meth:`CommandWorker._play` takes a slot or, when
all are taken, sets ``waiting`` and queues for one; the session starts by
itself when a slot frees.  Pausing, closing and an error all give the slot
(or the place in the queue) back.  Without a pool (scripts, tests) play
starts at once.

A subclass provides ``speed``, ``running``, ``waiting`` and ``error``
(plain attributes or ``param`` parameters) and the step itself,
:meth:`~CommandWorker._train_step`.  It may also override the hooks
:meth:`~CommandWorker._step_interval` (pacing other than ``speed`` steps per second),
:meth:`~CommandWorker._set_state` (how state is written, e.g. through
``param``), :meth:`~CommandWorker._after_work` (bookkeeping after each round)
and :meth:`~CommandWorker._slot_unwanted` (decline a slot that arrives too
late).  This module imports no UI library.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable

from spikewb.engine.config import use_one_blas_thread
from spikewb.workbench.server.limits import SlotPool

log = logging.getLogger(__name__)


class CommandWorker:
    """A thread that runs queued commands, then at most one paced training step.

    Parameters
    ----------
    name : str
        Prefix of the thread's name (the object's id is appended).
    pool : SlotPool, optional
        Training slots shared with other sessions; None trains without one.
    """

    speed: float
    running: bool
    waiting: bool
    error: str

    def __init__(self, name: str, pool: SlotPool | None = None):
        self._worker_name = name
        #: Training slots shared with the other sessions of the server; None: always train.
        self.pool = pool
        self._slot_lock = threading.RLock()
        self._cond = threading.Condition()
        self._commands: list[tuple[str, Callable[[], Any], Future]] = []
        self._stop = False
        self._want_running = False
        self._next_due = 0.0
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ hooks
    def _train_step(self) -> None:
        """Train one step (worker thread); a subclass must provide it."""
        raise NotImplementedError

    def _set_state(self, **values) -> None:
        """Write state that pages read (``running``, ``waiting``, ``error`` ...)."""
        for key, value in values.items():
            setattr(self, key, value)

    def _after_work(self, ran_commands: bool) -> None:
        """Called after each round of commands and/or one step (worker thread)."""

    def _slot_unwanted(self) -> bool:
        """Whether a slot granted to this waiting session should go straight back
        (the subclass then sets the state that says why)."""
        return False

    # ------------------------------------------------------------------ thread
    @property
    def alive(self) -> bool:
        """Whether the worker thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        if self.alive:
            return
        use_one_blas_thread()  # BLAS pools are process-wide: no per-sample thread fights
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"{self._worker_name}-{id(self):x}", daemon=True)
        self._thread.start()

    def sync(self, timeout: float = 10.0) -> None:
        """Wait until every command queued so far ran (the worker is between steps)."""
        self._submit(lambda: None, "sync").result(timeout)

    def _submit(self, fn: Callable[[], Any], what: str = "command") -> Future:
        """Queue ``fn()`` to run in the worker between steps; its Future gets the result."""
        fut: Future = Future()
        with self._cond:
            if self._stop:
                fut.set_exception(RuntimeError("the session is closed"))
                return fut
            self._commands.append((what, fn, fut))
            self._cond.notify_all()
        if not self.alive and not self._stop:
            self.start()
        return fut

    def _close_worker(self, timeout: float) -> bool:
        """Stop the thread, cancel queued commands, give the slot back; True if the
        thread ended within ``timeout`` seconds."""
        with self._slot_lock:
            with self._cond:
                self._stop = True
                self._want_running = False
                cmds, self._commands = self._commands, []
                self._cond.notify_all()
            self._set_state(waiting=False)
        self._release_slot()
        for _, _, fut in cmds:
            fut.cancel()
        th = self._thread
        if th is not None and th is not threading.current_thread():
            th.join(timeout)
        self._set_state(running=False)
        return th is None or not th.is_alive()

    def _run(self) -> None:
        while not self._stop:
            try:
                self._run_once()
            except BaseException as exc:  # never die silently: record it and wait for a reset
                try:
                    self._stop_on_error(exc)
                except Exception:
                    log.exception("%s: could not record a worker error", self._worker_name)

    def _due(self) -> bool:
        return self._want_running and not self.error and time.perf_counter() >= self._next_due

    def _run_once(self) -> None:
        """Wait for work; run the queued commands, then at most one step."""
        with self._cond:
            while not self._stop and not self._commands and not self._due():
                timeout = None
                if self._want_running and not self.error:
                    timeout = max(self._next_due - time.perf_counter(), 0.0)
                self._cond.wait(timeout)
            if self._stop:
                return
            cmds, self._commands = self._commands, []
            train = self._due()  # woken by a command before the step is due: no step yet
        for what, fn, fut in cmds:
            self._execute(what, fn, fut)
        if train:
            self._train_step()
            self._pace()
        self._after_work(bool(cmds))

    @staticmethod
    def _execute(what: str, fn: Callable[[], Any], fut: Future) -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            result = fn()
        except BaseException as exc:  # reported to the caller through the Future
            log.info("%s failed: %s", what, exc)
            fut.set_exception(exc)
        else:
            fut.set_result(result)

    def _step_interval(self) -> float:
        """Seconds from one step to the next (0: as soon as possible); from ``speed`` in steps per second."""
        speed = float(self.speed)
        return 1.0 / speed if speed > 0 else 0.0

    def _pace(self) -> None:
        interval = self._step_interval()
        if interval <= 0:
            self._next_due = 0.0
            return
        now = time.perf_counter()
        self._next_due = max(self._next_due + interval, now) if self._next_due else now + interval

    def _stop_on_error(self, exc: BaseException) -> None:
        """Stop training on an exception: log it, show it in ``error``, free the slot."""
        log.error("%s stopped: %s", self._worker_name, exc, exc_info=exc)
        with self._slot_lock:
            with self._cond:
                self._want_running = False
            self._set_state(error=f"{type(exc).__name__}: {exc}", running=False, waiting=False)
        self._release_slot()

    # ------------------------------------------------------------------ running and slots
    def _play(self, **state) -> bool:
        """Train from now on, or queue for a slot when every one is taken.

        ``state`` is written together with ``waiting``.  Returns True when
        training starts now, False when the session waits for a slot.
        """
        if self.error:
            raise RuntimeError(f"training stopped on an error; reset first ({self.error})")
        with self._slot_lock:
            if self._stop:
                raise RuntimeError("the session is closed")
            if self.pool is not None and not self.pool.request(self, self._slot_granted):
                self._set_state(waiting=True, **state)
                return False
            self._set_state(waiting=False, **state)
            self._start_running()
            return True

    def _start_running(self) -> None:
        with self._cond:
            self._want_running = True
            self._next_due = 0.0
            self._cond.notify_all()
        self._set_state(running=True)

    def _slot_granted(self) -> None:
        """Called (from the thread that freed a slot) when this waiting session gets one."""
        give_back = True
        with self._slot_lock:
            if self._stop or not self.waiting or self.error or self._slot_unwanted():
                pass
            else:
                give_back = False
                self._set_state(waiting=False)
                self._start_running()
        if give_back:  # outside the lock: releasing may call another session's grant
            self._release_slot()

    def _halt(self, **state) -> None:
        """Stop after the step in progress and give the slot (or queue place) back."""
        with self._slot_lock:
            with self._cond:
                self._want_running = False
                self._cond.notify_all()
            self._set_state(running=False, waiting=False, **state)
        self._release_slot()

    def _release_slot(self) -> None:
        if self.pool is not None:
            self.pool.release(self)

    def slot_position(self) -> int | None:
        """1-based place in the queue for a training slot, or None when not waiting."""
        return self.pool.position(self) if self.pool is not None and self.waiting else None

    def waiting_text(self) -> str:
        """The state line of a session that waits: ``waiting for a free slot (#k in queue)``."""
        pos = self.slot_position()
        return f"waiting for a free slot (#{pos} in queue)" if pos else "waiting for a free slot"


__all__ = ["CommandWorker"]
