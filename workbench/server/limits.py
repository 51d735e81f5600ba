"""Resource limits for a served workbench: training slots, network size, memory, idle and reattach times.

One process serves many browser sessions.  :class:`SlotPool` bounds how many of
them train at the same time (default: one per core); the others wait in
first-come order, see their place in the queue, and start when a slot frees.
:class:`Limits` holds the configurable bounds (set by ``spikewb serve`` flags
or environment variables) and :func:`check_network` refuses a network that
is too large, too long or over the per-session memory budget *before* any
array is allocated.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Hashable, Mapping

import param

from spikewb.engine.errors import ConfigError
from spikewb.engine.rules import LearningRule, rule_class, rule_names
from spikewb.engine.rules.base import steps_per_sample


class Limits(param.Parameterized):
    """Per-server limits; ``Limits.from_env()`` reads ``SPIKEWB_*`` variables."""

    max_training = param.Integer(os.cpu_count() or 1, bounds=(1, 1024), label="Concurrent training sessions",
                                 doc="Sessions that may train at once; further ones wait for a free slot.")
    max_synapses = param.Integer(4_000_000, bounds=(1, 10**9), label="Largest network (synapses)",
                                 doc="A network with more synapses is refused before it is built.")
    max_steps = param.Integer(1000, bounds=(1, 10**6), label="Longest sample (time steps)",
                              doc="Largest T (time steps per sample) a session may set.")
    max_layers = param.Integer(8, bounds=(1, 1000), label="Deepest network (hidden layers)",
                               doc="A network with more hidden layers is refused before it is built (every "
                                   "layer costs Python work per time step, whatever its width).")
    memory_mb = param.Number(1024.0, bounds=(1.0, 10**6), label="Memory per session (MB)",
                             doc="Estimated memory of a session's network must stay below this.")
    idle_timeout_s = param.Number(900.0, bounds=(1.0, 10**7), label="Idle pause (s)",
                                  doc="A training session with no page activity for this long is paused.")
    reconnect_s = param.Number(0.0, bounds=(0.0, 86400.0), label="Reattach window (s)",
                               doc="A trainer page that closes or reloads leaves its training running this "
                                   "long, so the same browser can reattach to it (workbench/server/reconnect.py); "
                                   "0 stops the training at once.")

    ENV = {"max_training": "SPIKEWB_MAX_TRAINING", "max_synapses": "SPIKEWB_MAX_SYNAPSES",
           "max_steps": "SPIKEWB_MAX_STEPS", "max_layers": "SPIKEWB_MAX_LAYERS", "memory_mb": "SPIKEWB_MEMORY_MB",
           "idle_timeout_s": "SPIKEWB_IDLE_TIMEOUT", "reconnect_s": "SPIKEWB_RECONNECT"}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Limits":
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, var in cls.ENV.items():
            if var in env:
                p = cls.param[name]
                try:
                    values[name] = int(env[var]) if isinstance(p, param.Integer) else float(env[var])
                except ValueError:
                    raise ConfigError(f"{var}={env[var]!r} is not a number") from None
        try:
            return cls(**values)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def to_env(self) -> dict[str, str]:
        return {var: str(getattr(self, name)) for name, var in self.ENV.items()}


def estimate_bytes(sizes: tuple[int, ...] | list[int], n_steps: int, itemsize: int = 4,
                   state_copies: int = 1) -> int:
    """Rough memory of a network: weights (plus optimiser copies) and per-sample buffers.

    >>> estimate_bytes((784, 1000, 10), 20) // 1000   # 794,000 weights x 4 B x 2 + buffers (kB)
    6683
    """
    synapses = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    buffers = (n_steps + 1) * sum(sizes) * (1 + itemsize) + n_steps * sum(sizes[:-1]) * itemsize
    return int(synapses * itemsize * (1 + state_copies) + buffers)


def time_steps(rule) -> int:
    """Time steps per sample of a rule object, or of a mapping of rule parameters.

    A :class:`~spikewb.engine.rules.LearningRule` answers itself
    (:meth:`~spikewb.engine.rules.LearningRule.time_steps`); a mapping (or any
    other object) is read with the same rule,
    :func:`~spikewb.engine.rules.base.steps_per_sample`, its ``key`` telling
    whether a registered rule is event-driven.  Fails closed: a step count that
    cannot be told raises :class:`ConfigError` instead of escaping ``max_steps``.

    >>> time_steps({"n_steps": 20}), time_steps({"t_sample": 100.0, "dt": 0.1})
    (20, 1000)
    >>> time_steps({"key": "multispike", "t_max": 30.0})
    0
    >>> try:
    ...     time_steps({"lr": 0.1})
    ... except ConfigError as exc:
    ...     print(str(exc)[:55])
    cannot tell the time steps per sample of rule '?' (para
    """
    if isinstance(rule, LearningRule):
        return rule.time_steps()
    if isinstance(rule, Mapping):
        params, key = dict(rule), rule.get("key")
    else:
        params = {k: getattr(rule, k) for k in ("n_steps", "t_sample", "dt") if hasattr(rule, k)}
        key = getattr(rule, "key", None)
    event_driven = isinstance(key, str) and key in rule_names() and rule_class(key).event_driven
    return steps_per_sample(params, key if isinstance(key, str) else "?", event_driven)


def check_network(sizes, n_steps: int, limits: Limits, itemsize: int = 4, state_copies: int = 1) -> None:
    """Raise :class:`ConfigError` (with the limit and how to change it) if a network is too big.

    Checked in this order, each before anything is allocated: depth (hidden
    layers, ``max_layers``), synapses, time steps, estimated memory.
    """
    sizes = tuple(sizes)
    hidden = max(len(sizes) - 2, 0)
    if hidden > limits.max_layers:
        raise ConfigError(f"a network with {hidden:,} hidden layers is refused; this server allows at most "
                          f"{limits.max_layers} (make the network shallower)")
    synapses = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    net = "-".join(map(str, sizes))
    if synapses > limits.max_synapses:
        raise ConfigError(f"network {net} has {synapses:,} synapses; this server allows at most "
                          f"{limits.max_synapses:,} per session (make the hidden layers smaller)")
    if n_steps > limits.max_steps:
        raise ConfigError(f"T = {n_steps} time steps is above this server's limit of {limits.max_steps}")
    mb = estimate_bytes(sizes, n_steps, itemsize, state_copies) / 1e6
    if mb > limits.memory_mb:
        raise ConfigError(f"network {net} needs about {mb:.0f} MB; this server allows "
                          f"{limits.memory_mb:.0f} MB per session")


def check_networks(networks, limits: Limits) -> None:
    """Like :func:`check_network` for several networks that one session holds at once
    (the panes of the compare page): each is checked on its own, then their synapses
    and estimated memory together against the per-session limits.

    ``networks`` is a sequence of ``(sizes, n_steps, itemsize)``.
    """
    networks = [(tuple(s), int(t), int(i)) for s, t, i in networks]
    for k, (sizes, steps, itemsize) in enumerate(networks, start=1):
        try:
            check_network(sizes, steps, limits, itemsize=itemsize)
        except ConfigError as exc:
            raise ConfigError(f"pane {k}: {exc}") from None
    synapses = sum(sum(a * b for a, b in zip(s[:-1], s[1:])) for s, _, _ in networks)
    if synapses > limits.max_synapses:
        raise ConfigError(f"the {len(networks)} networks have {synapses:,} synapses together; this server allows "
                          f"at most {limits.max_synapses:,} per session (make the hidden layers smaller)")
    mb = sum(estimate_bytes(s, t, i) for s, t, i in networks) / 1e6
    if mb > limits.memory_mb:
        raise ConfigError(f"the {len(networks)} networks need about {mb:.0f} MB together; this server allows "
                          f"{limits.memory_mb:.0f} MB per session")


class SlotPool:
    """At most ``n`` holders at a time; the others queue in arrival order.

    ``request(owner, on_grant)`` returns True when the owner holds a slot now,
    otherwise queues it and calls ``on_grant()`` (from the releasing thread)
    once a slot frees.  ``release(owner)`` gives a slot (or a queue place)
    back.  Thread-safe; owners are any hashable keys.
    """

    def __init__(self, n: int):
        if n < 1:
            raise ConfigError(f"slot count must be >= 1, got {n}")
        self._n = int(n)
        self._lock = threading.Lock()
        self._holders: set[Hashable] = set()
        self._queue: list[tuple[Hashable, Callable[[], None]]] = []

    @property
    def size(self) -> int:
        return self._n

    def resize(self, n: int) -> None:
        with self._lock:
            self._n = max(1, int(n))
        self._grant()

    def request(self, owner: Hashable, on_grant: Callable[[], None] | None = None) -> bool:
        with self._lock:
            if owner in self._holders:
                return True
            if len(self._holders) < self._n and not self._queue:
                self._holders.add(owner)
                return True
            if all(o != owner for o, _ in self._queue):
                self._queue.append((owner, on_grant or (lambda: None)))
            return False

    def release(self, owner: Hashable) -> None:
        with self._lock:
            self._holders.discard(owner)
            self._queue = [(o, cb) for o, cb in self._queue if o != owner]
        self._grant()

    def _grant(self) -> None:
        granted = []
        with self._lock:
            while self._queue and len(self._holders) < self._n:
                owner, cb = self._queue.pop(0)
                self._holders.add(owner)
                granted.append(cb)
        for cb in granted:
            try:
                cb()
            except Exception:                      # a broken waiter must not block the others
                import logging
                logging.getLogger(__name__).exception("slot grant callback failed")

    def holds(self, owner: Hashable) -> bool:
        with self._lock:
            return owner in self._holders

    def position(self, owner: Hashable) -> int | None:
        """1-based place in the waiting queue, or None if not waiting."""
        with self._lock:
            for k, (o, _) in enumerate(self._queue, start=1):
                if o == owner:
                    return k
        return None

    def counts(self) -> tuple[int, int]:
        """(training, waiting)."""
        with self._lock:
            return len(self._holders), len(self._queue)


_POOL: SlotPool | None = None
_POOL_LOCK = threading.Lock()


def server_limits() -> Limits:
    """The limits of this server process (from the environment set by ``spikewb serve``)."""
    return Limits.from_env()


def configure(limits: Limits) -> None:
    """Make ``limits`` this process's limits (and its children's: they go into the
    environment, which forked server processes and ``panel serve`` apps read)."""
    os.environ.update(limits.to_env())
    with _POOL_LOCK:
        pool = _POOL
    if pool is not None:
        pool.resize(limits.max_training)


def training_pool() -> SlotPool:
    """The process-wide pool of training slots."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = SlotPool(server_limits().max_training)
        return _POOL
