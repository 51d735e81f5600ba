"""Side-by-side comparison of learning rules: several Trainers stepped in lock-step.

A :class:`Comparison` holds two to four *panes*, each a
:class:`~spikewb.engine.training.trainer.Trainer` with its own rule, hidden layers and
hyperparameters (a :class:`PaneSpec`), all on the same dataset and built from
the same seed.  Because the Trainer's sample order depends only on the seed
and the training-set size, every pane sees the same samples in the same
order; :meth:`Comparison.step` trains every pane on one sample, so after any
number of steps all panes have seen exactly the same data and the frames of
one step show the same sample in every pane.

:class:`CompareSession` runs a Comparison in one worker thread (one thread for
all panes keeps them aligned without any synchronisation between threads; the
thread is a :class:`~spikewb.workbench.sessions.worker.CommandWorker`),
publishes a :class:`CompareSnapshot` of one step with full records into a
one-slot mailbox at most every ``publish_interval`` seconds, and takes
commands (play, pause, step, reset, rebuild) between steps.  A served
session (:meth:`CompareSession.served`) trains only while it holds one of
the server's training slots (:func:`~spikewb.workbench.server.limits.training_pool`), the
same slots the trainer pages queue for; one made directly needs none.

This module imports no UI library; it is tested without a browser.

Examples
--------
>>> cmp = Comparison([PaneSpec("desire", [20]), PaneSpec("desire", [20], {"lr": 0.01})], eval_limit=20)
>>> frames = cmp.step()
>>> [f.index for f in frames][0] == [f.index for f in frames][1]
True
"""

from __future__ import annotations

import logging
import re
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from spikewb.engine.errors import ConfigError
from spikewb.engine.frame import RECORD_SPIKES, Frame, Record
from spikewb.engine.network import Architecture
from spikewb.engine.rules import make_rule, rule_class, rule_names
from spikewb.engine.training.trainer import EpochResult, Trainer

from spikewb.workbench.server.limits import Limits, SlotPool
from spikewb.engine.training.setup import RunSetup
from spikewb.workbench.pagestate import ignored, read_query, unknown, value_text
from spikewb.workbench.urlstate import problem_text
from spikewb.workbench.server.safetext import quote
from spikewb.workbench.sessions.worker import CommandWorker

log = logging.getLogger(__name__)

MIN_PANES, MAX_PANES = 2, 4
#: Datasets a comparison may use: the bundled ones (no download from a page).
EMBEDDED_DATASETS = ("mnist-5k", "fashion-5k")
#: Hidden layers of a pane when none are given: small, so four panes stay fast on 2 cores.
DEFAULT_HIDDEN = (100,)
#: Largest hidden layer and most hidden layers a pane may have (page responsiveness).
MAX_HIDDEN_SIZE, MAX_HIDDEN_LAYERS = 2000, 3
#: Test samples evaluated at the end of each epoch (UI speed).
DEFAULT_EVAL_LIMIT = 300
#: Query keys shared by all panes.
SHARED_KEYS = ("panes", "seed", "dataset")
#: Query keys that belong to the page, not to the setup.
PAGE_KEYS = {"refresh", "theme", "embed"}


@dataclass(frozen=True)
class PaneSpec:
    """One pane's setup: rule key, hidden layer sizes, rule hyperparameters (non-default ones)."""

    rule: str = "desire"
    hidden: tuple[int, ...] | list[int] = DEFAULT_HIDDEN
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "params", dict(self.params))

    def setup(self, seed: int = 0, dataset: str = EMBEDDED_DATASETS[0]) -> RunSetup:
        """This pane as a :class:`RunSetup` (the page's shared seed and dataset added)."""
        return RunSetup(rule=self.rule, hidden=list(self.hidden), params=dict(self.params), seed=int(seed),
                        dataset=str(dataset))

    def validated(self) -> "PaneSpec":
        """Check the rule, its hyperparameters and the hidden sizes (raises ConfigError)."""
        rule_class(self.rule)
        check_hidden(self.hidden)
        self.setup().make_rule()  # unknown names and bad values raise ConfigError
        return self

    def label(self) -> str:
        """Short description: ``desire 100 lr=0.003``."""
        return self.setup().label()


def check_hidden(hidden) -> tuple[int, ...]:
    hidden = tuple(int(h) for h in hidden)
    if len(hidden) > MAX_HIDDEN_LAYERS:
        raise ConfigError(f"at most {MAX_HIDDEN_LAYERS} hidden layers per pane; got {len(hidden)}")
    if any(not 1 <= h <= MAX_HIDDEN_SIZE for h in hidden):
        raise ConfigError(f"hidden layer sizes must be 1..{MAX_HIDDEN_SIZE} in the compare app; got {list(hidden)}")
    return hidden


# ------------------------------------------------------------------------ URL
def from_query(query: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Parse ``?panes=desire,stidi&seed=1&lr1=0.003&hidden2=400`` into a setup.

    Shared keys: ``panes`` (comma-separated rule names, 2..4), ``seed``,
    ``dataset``.  Per-pane keys are a hidden size list or a rule
    hyperparameter followed by the pane number (1-based, one digit):
    ``hidden1=100``, ``lr2=3e-4``, ``tau_12=5`` (NormAD's ``tau_1`` of pane 2).
    Every value is checked against the rule's ``param`` declaration.  Nothing
    raises: unusable values are left out and described in the returned
    problems.

    Returns
    -------
    setup : dict
        ``{"panes": [PaneSpec, ...], "seed": int, "dataset": str}``
    problems : list of str

    >>> setup, problems = from_query({"panes": "desire,desire", "lr2": "0.003", "hidden1": "50"})
    >>> [p.label() for p in setup["panes"]], problems
    (['desire 50', 'desire 100 lr=0.003'], [])
    """
    flat, problems = read_query(query)
    rules = ["desire", "desire"]
    if "panes" in flat:
        names = [s.strip() for s in flat["panes"].split(",") if s.strip()]
        rules = []
        for n in names[:MAX_PANES]:
            if n in rule_names():
                rules.append(n)
            else:
                problems.append(f"unknown rule {quote(n)} in panes= replaced by desire; "
                                f"rules: {', '.join(rule_names())}")
                rules.append("desire")
        if len(names) > MAX_PANES:
            problems.append(f"at most {MAX_PANES} panes; the extra ones were dropped")
        while len(rules) < MIN_PANES:
            rules.append("desire")
    shared, found = RunSetup.from_text({k: flat[k] for k in ("seed", "dataset") if k in flat},
                                       datasets=EMBEDDED_DATASETS, fields=("seed", "dataset"))
    problems += [problem_text(p) for p in found]
    setup: dict[str, Any] = {"seed": shared.seed, "dataset": shared.dataset}
    per_pane: list[dict[str, str]] = [{} for _ in rules]
    for k, text in flat.items():
        if k in SHARED_KEYS or k in PAGE_KEYS:
            continue
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*?)([1-9])", k)
        if not m or int(m.group(2)) > len(rules):
            problems.append(unknown(k, f" (per-pane settings end in the pane number 1..{len(rules)}, e.g. lr1)"))
            continue
        per_pane[int(m.group(2)) - 1][m.group(1)] = text
    hidden: dict[int, tuple[int, ...]] = {}
    params: dict[int, dict[str, Any]] = {}
    for i, (rule, values) in enumerate(zip(rules, per_pane)):
        pane, found = RunSetup.from_text(values, defaults=RunSetup(rule=rule), fields=("hidden",))
        params[i] = pane.params
        if pane.hidden is not None:
            try:
                hidden[i] = check_hidden(pane.hidden)
            except ConfigError as exc:
                problems.append(ignored(f"hidden{i + 1}", values["hidden"], exc))
        for p in found:
            if p.reason is None:
                problems.append(f"URL setting {quote(p.key + str(i + 1))} ignored: rule {rule!r} of pane "
                                f"{i + 1} has no parameter {quote(p.key)}")
            else:
                problems.append(ignored(p.key + str(i + 1), p.text, p.reason))
    setup["panes"] = [PaneSpec(r, hidden.get(i, DEFAULT_HIDDEN), params[i]) for i, r in enumerate(rules)]
    return setup, problems


def to_query(setup: Mapping[str, Any]) -> dict[str, str]:
    """The inverse of :func:`from_query` (defaults left out).

    >>> to_query({"panes": [PaneSpec("desire"), PaneSpec("stidi", [400], {"lr": 0.5})], "seed": 0})
    {'panes': 'desire,stidi', 'hidden2': '400', 'lr2': '0.5'}
    """
    panes = list(setup["panes"])
    q = {"panes": ",".join(p.rule for p in panes)}
    if setup.get("seed", 0):
        q["seed"] = str(int(setup["seed"]))
    if setup.get("dataset", EMBEDDED_DATASETS[0]) != EMBEDDED_DATASETS[0]:
        q["dataset"] = str(setup["dataset"])
    for i, p in enumerate(panes, start=1):
        if tuple(p.hidden) != DEFAULT_HIDDEN:
            q[f"hidden{i}"] = ",".join(map(str, p.hidden))
        for k, v in sorted(p.params.items()):
            q[f"{k}{i}"] = value_text(v)
    return q


def parse_settings(rule: str, text: str) -> dict[str, Any]:
    """``"lr=0.003, v_th=0.5"`` -> validated hyperparameters of ``rule`` (raises ConfigError).

    >>> parse_settings("desire", "lr=0.003")
    {'lr': 0.003}
    """
    return RunSetup.parse_settings(rule, text)


# ------------------------------------------------------------------ lock-step
_DATA: dict[str, Any] = {}
_DATA_LOCK = threading.Lock()


def shared_dataset(name: str):
    """A bundled dataset, loaded once per process and shared read-only by every comparison."""
    if name not in EMBEDDED_DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose from {', '.join(EMBEDDED_DATASETS)}")
    with _DATA_LOCK:
        if name not in _DATA:
            from spikewb.engine.data.datasets import load_dataset
            ds = load_dataset(name, allow_download=False)
            for a in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
                a.setflags(write=False)
            _DATA[name] = ds
        return _DATA[name]

def check_limits(panes, data, limits: Limits) -> None:
    """Refuse (ConfigError) panes that together break the server's per-session limits
    (:func:`spikewb.workbench.server.limits.check_networks`: depth, synapses, T, memory), before anything is built."""
    from spikewb.workbench.server.limits import check_networks, time_steps
    nets = []
    for p in panes:
        p = p if isinstance(p, PaneSpec) else PaneSpec(**p)
        rule = make_rule(p.rule, **p.params)
        itemsize = 8 if getattr(rule, "dtype", "float32") == "float64" else 4
        nets.append(((int(data.n_features), *p.hidden, int(data.n_classes)), time_steps(rule), itemsize))
    check_networks(nets, limits)


@dataclass
class PaneStats:
    """Per-pane running counters (the curves and throughput)."""

    steps: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    loss_sum: float = 0.0
    loss_n: int = 0
    seconds: float = 0.0  #: compute time spent in this pane's steps
    window: tuple[float, int] = (0.0, 0)
    rate: float = 0.0  #: samples per second of this pane's own compute time (recent window)


class Comparison:
    """Two to four Trainers on the same data, seed and sample order, stepped together.

    Parameters
    ----------
    panes : list of PaneSpec
    dataset : str
        One of the embedded datasets (shared, loaded once per process).
    seed : int
        Seeds every pane's weights and the shared sample order.
    eval_limit : int, optional
        Test samples evaluated at each epoch end.
    curve_every : int
        Record a point of the accuracy / loss curves every this many samples.
    """

    def __init__(self, panes, dataset: str = EMBEDDED_DATASETS[0], seed: int = 0,
                 eval_limit: int | None = DEFAULT_EVAL_LIMIT, curve_every: int = 1,
                 limits: Limits | None = None):
        panes = [p if isinstance(p, PaneSpec) else PaneSpec(**p) for p in panes]
        if not MIN_PANES <= len(panes) <= MAX_PANES:
            raise ConfigError(f"compare needs {MIN_PANES} to {MAX_PANES} panes; got {len(panes)}")
        for p in panes:
            p.validated()
        self.specs = panes
        self.dataset = dataset
        self.seed = int(seed)
        self.curve_every = max(1, int(curve_every))
        data = shared_dataset(dataset)
        if limits is not None:  # the server's limits, before any pane is built
            check_limits(panes, data, limits)
        self.data = data
        self.trainers = []
        for p in panes:
            arch = Architecture(n_inputs=data.n_features, hidden=list(p.hidden), n_outputs=data.n_classes)
            self.trainers.append(Trainer(make_rule(p.rule, **p.params), data, arch, seed=self.seed,
                                         eval_limit=eval_limit))
        self.stats = [PaneStats() for _ in panes]
        self.samples = 0

    @property
    def n_panes(self) -> int:
        return len(self.trainers)

    def reset(self) -> None:
        """Fresh weights from the seed in every pane, back to sample 0."""
        for t in self.trainers:
            t.reset()
        self.stats = [PaneStats() for _ in self.trainers]
        self.samples = 0

    def step(self, record: Record | None = None) -> list[Frame]:
        """Train every pane on the next sample (the same one); returns their frames."""
        frames = []
        keep = self.samples % self.curve_every == 0
        for t, st in zip(self.trainers, self.stats):
            n_hist = len(t.history)
            t0 = time.perf_counter()
            frame = t.step(record)
            dt = time.perf_counter() - t0
            st.seconds += dt
            if len(t.history) > n_hist:  # epoch finished: the running loss starts again
                st.loss_sum, st.loss_n = 0.0, 0
            st.loss_sum += frame.loss
            st.loss_n += 1
            if keep:
                st.steps.append(self.samples + 1)
                st.accuracy.append(float(frame.accuracy))
                st.loss.append(st.loss_sum / st.loss_n)
            frames.append(frame)
        self.samples += 1
        indices = {f.index for f in frames}
        if len(indices) != 1:  # cannot happen with one dataset and one seed: say so loudly if it does
            raise RuntimeError(f"panes trained on different samples {sorted(indices)}")
        return frames

    def run(self, n: int, record: Record | None = None) -> list[Frame]:
        """``n`` lock-step samples; returns the last step's frames."""
        frames = []
        for _ in range(n):
            frames = self.step(record)
        return frames

    def update_rates(self) -> None:
        """Refresh each pane's throughput (samples per second of its own compute time)
        from the samples trained since the last refresh."""
        for st in self.stats:
            s0, n0 = st.window
            spent, done = st.seconds - s0, self.samples - n0
            if done > 0 and spent > 0:
                st.rate = done / spent
                st.window = (st.seconds, self.samples)

    def curves(self) -> list[dict[str, np.ndarray]]:
        """Per pane: ``step``, running train ``accuracy`` and mean epoch ``loss`` arrays."""
        return [dict(step=np.array(s.steps, np.int64), accuracy=np.array(s.accuracy, np.float64),
                     loss=np.array(s.loss, np.float64)) for s in self.stats]


@dataclass(frozen=True)
class PaneSnapshot:
    """One pane of a published step (what a per-pane view draws)."""

    frame: Frame
    generation: int
    label: str
    rule: str
    network: str
    accuracy: float
    epoch_loss: float
    samples_per_s: float
    history: tuple[EpochResult, ...]


@dataclass(frozen=True)
class CompareSnapshot:
    """One lock-step step of every pane, published by the worker."""

    seq: int
    generation: int
    samples: int
    index: int
    label: int
    image: np.ndarray
    image_shape: tuple[int, ...]
    panes: tuple[PaneSnapshot, ...]
    wall_rate: float


class CompareSession(CommandWorker):
    """A :class:`Comparison` in a worker thread with play / pause / step / reset / rebuild.

    The page pulls :meth:`take` from its periodic callback; commands run
    between two lock-step samples.  ``speed`` (samples per second, 0 = as
    fast as possible) limits the rate.  With a slot ``pool``, :meth:`play`
    waits (``waiting`` is True, :meth:`slot_position` gives the place in the
    queue) until a slot is free; pause, reset, step, rebuild, close and an
    error give it back.
    """

    def __init__(self, panes=None, dataset: str = EMBEDDED_DATASETS[0], seed: int = 0,
                 eval_limit: int | None = DEFAULT_EVAL_LIMIT, publish_interval: float = 0.1,
                 autostart: bool = True, pool: SlotPool | None = None, limits: Limits | None = None):
        super().__init__("spikewb-compare", pool)
        panes = panes or [PaneSpec(), PaneSpec()]
        #: The server's per-session limits (None: unlimited, scripts and tests).
        self.limits = limits
        self.comparison = Comparison(panes, dataset=dataset, seed=seed, eval_limit=eval_limit,
                                     curve_every=10, limits=limits)
        self.eval_limit = eval_limit
        self.publish_interval = publish_interval
        self.speed = 0.0
        self.generation = 0
        self.running = False
        #: Play was pressed but every training slot is taken; starts by itself when one frees.
        self.waiting = False
        self.error = ""
        self._latest: CompareSnapshot | None = None
        self._taken = 0
        self._seq = 0
        self._last_publish = 0.0
        self._wall = (time.perf_counter(), 0)
        self.wall_rate = 0.0
        if autostart:
            self.start()

    @classmethod
    def served(cls, *args, **kwargs) -> "CompareSession":
        """A session that trains only in one of this server's training slots
        (:func:`~spikewb.workbench.server.limits.training_pool`), shared with the trainer pages."""
        from spikewb.workbench.server.limits import server_limits, training_pool
        kwargs.setdefault("pool", training_pool())
        kwargs.setdefault("limits", server_limits())
        return cls(*args, **kwargs)

    # ------------------------------------------------------------ public
    @property
    def samples(self) -> int:
        return self.comparison.samples

    @property
    def setup(self) -> dict[str, Any]:
        c = self.comparison
        return {"panes": list(c.specs), "seed": c.seed, "dataset": c.dataset}

    def play(self) -> None:
        """Train lock-step samples until :meth:`pause`, or wait for a free training slot.

        Raises RuntimeError after an error (reset or rebuild first) or close.
        """
        self._play()

    def pause(self) -> None:
        """Stop after the sample in progress; frees the training slot (or the queue place)."""
        self._halt()

    def step(self) -> Future:
        """Pause and train exactly one lock-step sample (published); the Future gives the frames."""
        self.pause()
        return self._submit(lambda: self._train(force_publish=True), "step")

    def reset(self) -> Future:
        """Pause; fresh weights from the seed in every pane."""
        self.pause()

        def do():
            self.comparison.reset()
            self._new_generation()
        return self._submit(do, "reset")

    def rebuild(self, panes, seed: int | None = None, dataset: str | None = None):
        """Validate a new setup here (raises ConfigError), then rebuild every pane between samples."""
        panes = [p.validated() for p in panes]
        if not MIN_PANES <= len(panes) <= MAX_PANES:
            raise ConfigError(f"compare needs {MIN_PANES} to {MAX_PANES} panes; got {len(panes)}")
        seed = self.comparison.seed if seed is None else int(seed)
        dataset = self.comparison.dataset if dataset is None else dataset
        if dataset not in EMBEDDED_DATASETS:
            raise ConfigError(f"unknown dataset {dataset!r}; choose from {', '.join(EMBEDDED_DATASETS)}")
        if self.limits is not None:  # refused here, before the running comparison is paused
            check_limits(panes, shared_dataset(dataset), self.limits)
        self.pause()

        def do():
            self.comparison = Comparison(panes, dataset=dataset, seed=seed, eval_limit=self.eval_limit,
                                         curve_every=10, limits=self.limits)
            self._new_generation()
        return self._submit(do, "rebuild")

    def take(self) -> CompareSnapshot | None:
        snap = self._latest
        if snap is None or snap.seq <= self._taken:
            return None
        self._taken = snap.seq
        return snap

    def close(self, timeout: float = 2.0) -> bool:
        """Stop the worker (freeing the slot) and join it; True if it ended within ``timeout``."""
        return self._close_worker(timeout)

    # ------------------------------------------------------------ worker
    def _new_generation(self) -> None:
        self.generation += 1
        self.error = ""
        self._latest = None
        self._wall = (time.perf_counter(), 0)
        self.wall_rate = 0.0

    def _train_step(self) -> None:
        try:
            self._train(force_publish=False)
        except Exception:  # already in self.error (the page shows it) and the slot is free
            pass

    def _train(self, force_publish: bool):
        now = time.perf_counter()
        publish = force_publish or now - self._last_publish >= self.publish_interval
        try:
            frames = self.comparison.step(RECORD_SPIKES if publish else None)
        except Exception as exc:
            self._stop_on_error(exc)
            raise
        if publish:
            self._last_publish = now
            self._publish(frames)
        return frames

    def _publish(self, frames: list[Frame]) -> None:
        c = self.comparison
        now = time.perf_counter()
        t0, n0 = self._wall
        if now - t0 >= 0.5:
            self.wall_rate = (c.samples - n0) / (now - t0)
            self._wall = (now, c.samples)
            c.update_rates()
        elif not any(st.rate for st in c.stats):
            c.update_rates()
        panes = []
        for spec, t, st, f in zip(c.specs, c.trainers, c.stats, frames):
            panes.append(PaneSnapshot(frame=f, generation=self.generation, label=spec.label(), rule=spec.rule,
                                      network=t.network, accuracy=float(f.accuracy),
                                      epoch_loss=st.loss_sum / st.loss_n if st.loss_n else float("nan"),
                                      samples_per_s=float(st.rate), history=tuple(t.history)))
        f0 = frames[0]
        self._seq += 1
        self._latest = CompareSnapshot(
            seq=self._seq, generation=self.generation, samples=c.samples, index=f0.index, label=f0.label,
            image=np.array(c.data.x_train[f0.index], dtype=np.uint8), image_shape=tuple(c.data.image_shape),
            panes=tuple(panes), wall_rate=float(self.wall_rate))


__all__ = ["PaneSpec", "Comparison", "CompareSession", "CompareSnapshot", "PaneSnapshot", "from_query",
           "to_query", "parse_settings", "MIN_PANES", "MAX_PANES"]
