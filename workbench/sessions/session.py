"""One live training session: a Trainer in a worker thread with a one-slot mailbox.

A :class:`TrainingSession` is what one browser page drives.  It owns a
:class:`~spikewb.engine.training.trainer.Trainer` and runs it in a daemon worker thread (the
numba kernels release the GIL, so the web server keeps serving).  The worker
trains sample after sample and, at most every ``publish_interval`` seconds,
trains one sample with a full :class:`~spikewb.engine.frame.Record` (spikes and the
traced neurons' potentials) and puts the result into a one-slot mailbox as a
:class:`Snapshot`.  Every other sample is trained with the cheap default
record, so the page costs the training loop almost nothing.

The page pulls the newest snapshot with :meth:`TrainingSession.take` from
its own periodic callback; the worker never touches Panel or Bokeh objects.
Frames that were published but never taken are the difference between the
``frames_produced`` and ``frames_shown`` counters.

Control is by commands queued to the worker and executed **between
samples**, in order: :meth:`~TrainingSession.apply` (hyperparameters applied
atomically with one ``rule.param.update`` call, or a rebuild for structural
changes), :meth:`~TrainingSession.reset`, :meth:`~TrainingSession.step`,
:meth:`~TrainingSession.load_checkpoint`, :meth:`~TrainingSession.call`.
Each returns a :class:`concurrent.futures.Future`.  The thread, its command
queue, the pacing by ``speed`` and the training slots are those of
:class:`~spikewb.workbench.sessions.worker.CommandWorker`; this class adds the trainer's
snapshots, counters and idle pause.  Values are validated in
the caller's thread first, so an out-of-range value raises at once and
nothing is queued.

Served sessions (:meth:`TrainingSession.served`) live under the server's
limits (:mod:`spikewb.workbench.server.limits`): :meth:`~TrainingSession.play` takes one of
the process-wide training slots or, when all are taken, sets ``waiting`` and
starts by itself when a slot frees; a network over the size / T / memory
limits is refused (``ConfigError``) before it is built; a session whose page
sent nothing for the idle timeout (:meth:`~TrainingSession.touch` marks
activity) is paused with a ``notice`` and frees its slot.  Sessions made
without ``limits`` and ``pool`` (scripts, tests) have no limits.

This module does not import Panel; it is tested without a browser.

Examples
--------
>>> s = TrainingSession(hidden=[20], eval_limit=50)
>>> frame = s.step().result(timeout=30)
>>> frame.step, s.samples
(0, 1)
>>> s.close()
True
"""

from __future__ import annotations

import logging
import math
import tempfile
import threading
import time
import weakref
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import param

from spikewb.engine.training.checkpoint import load_checkpoint
from spikewb.engine.training.checkpoint import read_arrays  # noqa: F401  (re-exported for the controls)
from spikewb.engine.config import CHECKPOINT_MAX_BYTES, IDX_MAX_BYTES
from spikewb.engine.data.datasets import Dataset, available, images_and_labels, load_dataset, read_idx
from spikewb.engine.errors import CheckpointError, ConfigError, DataError
from spikewb.engine.frame import Frame, Record
from spikewb.engine.network import Architecture
from spikewb.engine.rules import LearningRule, make_rule, rule_class
from spikewb.engine.training.setup import RunSetup
from spikewb.engine.training.trainer import EpochResult, Trainer, arch_from_meta, rule_from_meta

from spikewb.workbench.server.limits import Limits, SlotPool, check_network, time_steps
from spikewb.workbench.server.safetext import display_name
from spikewb.workbench.sessions.worker import CommandWorker

_SETUP = RunSetup.param

log = logging.getLogger(__name__)

#: Datasets shipped with the package (no download).
EMBEDDED_DATASETS = ("mnist-5k", "fashion-5k")
#: Session-level settings whose change needs a new network.
STRUCTURAL = ("rule", "hidden", "dataset", "seed")
#: At most this many neurons are traced (membrane potential recorded).
MAX_TRACED = 4
#: Number of first-layer receptive fields copied for the weights view.
N_FIELDS = 25
#: Share of the per-session memory budget (``Limits.memory_mb``) one upload (IDX
#: files together, or a checkpoint's arrays) may declare; the rest is for the network.
UPLOAD_SHARE = 0.25

_DATASETS: dict[str, Dataset] = {}
_DATASETS_LOCK = threading.Lock()
#: Every TrainingSession of this process that has not been garbage-collected (health endpoint).
_SESSIONS: "weakref.WeakSet[TrainingSession]" = weakref.WeakSet()


def live_sessions() -> list["TrainingSession"]:
    """The sessions of this process whose worker thread is alive."""
    return [s for s in list(_SESSIONS) if s.alive]


def shared_dataset(name: str) -> Dataset:
    """Load a named dataset once per process (arrays are shared read-only)."""
    with _DATASETS_LOCK:
        ds = _DATASETS.get(name)
        if ds is None:
            ds = load_dataset(name, allow_download=False)
            for a in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
                a.setflags(write=False)
            _DATASETS[name] = ds
        return ds


def dataset_from_idx(files: dict[str, bytes], test_fraction: float = 0.2, seed: int = 0,
                     max_bytes: int = IDX_MAX_BYTES) -> Dataset:
    """Build a dataset from uploaded IDX files (plain or gzip).

    ``files`` maps file names to contents.  Either one images file (3-D IDX,
    ``uint8``) and one labels file (1-D IDX) are given and split
    ``test_fraction`` at random, or four files whose names contain
    ``train``/``t10k`` (or ``test``) give the split.

    Raises
    ------
    DataError
        A file is not IDX, is corrupt or truncated, or the pair does not match
        (number of samples, image type, labels outside 0..255), or the files
        together declare more than ``max_bytes`` (checked from each header
        before its data is read or inflated).
    """
    if not files:
        raise DataError("no file uploaded")
    arrays = {}
    left = int(max_bytes)
    for name, data in files.items():
        name = display_name(name) if name else "uploaded file"
        if not data:
            raise DataError(f"{name}: the file is empty (0 bytes); expected an IDX file")
        try:
            arrays[name] = a = read_idx(data, max_bytes=left, name=name)
        except DataError as exc:
            if "limit" in str(exc) and left < max_bytes:
                raise DataError(f"{exc} (left of the {max_bytes / 1e6:,.0f} MB this server allows "
                                "for one upload)") from None
            raise
        left -= a.nbytes
    images = {n: a for n, a in arrays.items() if a.ndim >= 2}
    labels = {n: a for n, a in arrays.items() if a.ndim == 1}
    if not images or not labels:
        got = ", ".join(f"{n} (shape {a.shape})" for n, a in arrays.items())
        raise DataError(f"need an images file (3-D IDX) and a labels file (1-D IDX); got {got}")

    def pick(group: dict[str, np.ndarray], *keys: str):
        for n, a in group.items():
            if any(k in n.lower() for k in keys):
                return n, a
        return None

    tr_x, tr_y = pick(images, "train"), pick(labels, "train")
    te_x, te_y = pick(images, "t10k", "test"), pick(labels, "t10k", "test")
    if len(images) == 2 and len(labels) == 2 and tr_x and tr_y and te_x and te_y:
        x_train, y_train = images_and_labels(tr_x[1], tr_y[1], tr_x[0])
        x_test, y_test = images_and_labels(te_x[1], te_y[1], te_x[0])
        image_shape = tuple(tr_x[1].shape[1:])
        name = tr_x[0]
    elif len(images) == 1 and len(labels) == 1:
        (n_x, x), (_, y) = next(iter(images.items())), next(iter(labels.items()))
        x, y = images_and_labels(x, y, n_x)
        n = len(y)
        n_test = int(round(n * test_fraction))
        if n < 2 or not 0 < n_test < n:
            raise DataError(f"{n_x}: {n} samples are too few to split into train and test sets")
        order = np.random.default_rng(seed).permutation(n)
        x_test, y_test, x_train, y_train = x[order[:n_test]], y[order[:n_test]], x[order[n_test:]], y[order[n_test:]]
        image_shape = tuple(images[n_x].shape[1:])
        name = n_x
    else:
        raise DataError("upload one images + one labels IDX file, or the four train-/t10k- files of an official split")
    if int(min(y_train.min(initial=0), y_test.min(initial=0))) < 0:
        raise DataError("labels must be non-negative class indices")
    n_classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    if n_classes > 1000:
        raise DataError(f"labels go up to {n_classes - 1}; more than 1000 classes is not a classification set here")
    stem = Path(name).name.split(".")[0]
    for suffix in ("-images-idx3-ubyte", "-images", "_images", "images-idx3-ubyte"):
        stem = stem.replace(suffix, "")
    return Dataset(f"upload:{stem or 'data'}", x_train, y_train, x_test, y_test, image_shape,
                   tuple(str(i) for i in range(n_classes)))


@dataclass(frozen=True)
class Snapshot:
    """What the worker publishes for the page: one full Frame plus context.

    Views read ``frame`` (and the small arrays next to it); they never reach
    into the model.  ``fields`` are the most recent copy of first-layer
    weights (taken at most every ``weights_interval`` seconds and shared by
    the snapshots until the next copy); ``fields_version`` changes with each
    copy, so a view that skips snapshots still sees every new copy.
    """

    #: Sequence number of the publication (1, 2, ...), per session.
    seq: int
    #: The full Frame of this sample.
    frame: Frame
    #: Session generation (bumped by reset, rebuild and checkpoint load).
    generation: int
    #: The sample's pixels (uint8, flat) and the image shape to draw them.
    image: np.ndarray | None
    image_shape: tuple[int, ...]
    #: Class names of the dataset.
    class_names: tuple[str, ...]
    #: Samples trained in this generation, and the training rate.
    samples: int
    samples_per_s: float
    #: Mean per-sample loss of the current epoch so far.
    epoch_loss: float
    #: Completed epochs (copy of ``Trainer.history``).
    history: tuple[EpochResult, ...]
    #: First-layer receptive fields, shape (n, n_inputs) float32, or None.
    fields: np.ndarray | None = None
    #: Indices of the first-layer neurons in ``fields``.
    field_ids: np.ndarray | None = None
    #: Increases with every new copy of ``fields`` (0: none yet).
    fields_version: int = 0
    #: Trainer warnings (e.g. silent network).
    warnings: tuple[str, ...] = ()
    #: Rule key and network description.
    rule: str = ""
    network: str = ""


class TrainingSession(param.Parameterized, CommandWorker):
    """A Trainer running in a worker thread, controlled between samples.

    Parameters are of two kinds.  Settings the page may write directly
    (``speed``, ``publish_interval``, ``weights_interval``) are read by the
    worker every sample.  Everything else is *state* owned by the session:
    constant parameters that change only through the methods (``apply``,
    ``play``, ...) and that the page reads from its periodic callback.  Do
    not ``param.watch`` them from UI code: they are updated from the worker
    thread.
    """

    # ----------------------------------------------------- live settings
    speed = param.Number(0.0, bounds=(0.0, 10_000.0), label="Speed (samples/s, 0 = full speed)",
                         doc="Upper limit on the training rate; 0 trains as fast as the CPU allows. "
                             "At 10 samples/s or less every sample is shown.")
    publish_interval = param.Number(0.1, bounds=(0.0, 10.0), label="Publish interval (s)",
                                    doc="A full frame (spikes and traces) is recorded and published at most "
                                        "this often; other samples train with the cheap default record.")
    weights_interval = param.Number(1.0, bounds=(0.05, 60.0), label="Weights refresh (s)",
                                    doc="How often the first-layer receptive fields are copied for the view.")

    # ----------------------------------------------------- applied setup (read-only)
    # labels, defaults and bounds of the run setup's declarations (RunSetup / SetupFields)
    rule_name = param.String(_SETUP["rule"].default, constant=True, label=_SETUP["rule"].label,
                             doc="Registry name of the learning rule in use.")
    dataset = param.String(_SETUP["dataset"].default, constant=True, label=_SETUP["dataset"].label,
                           doc="Name of the dataset in use.")
    hidden = param.List([1000, 100], item_type=int, constant=True, label=_SETUP["hidden"].label,
                        doc="Hidden layer sizes in use, input side first.")
    seed = param.Integer(_SETUP["seed"].default, bounds=_SETUP["seed"].bounds, constant=True,
                         label=_SETUP["seed"].label,
                         doc="Seed of weights, dropout and sample order.")
    traced = param.List([], constant=True, label="Traced neurons",
                        doc="(layer, index) of the neurons whose membrane potential is recorded.")

    # ----------------------------------------------------- state (read-only)
    running = param.Boolean(False, constant=True, doc="Whether training is running (not paused).")
    samples = param.Integer(0, constant=True, doc="Samples trained since the last reset or rebuild.")
    epoch = param.Integer(0, constant=True, doc="Current epoch (0-based).")
    samples_per_s = param.Number(0.0, constant=True, doc="Training rate over the last publish window.")
    frames_produced = param.Integer(0, constant=True, doc="Full frames published by the worker.")
    frames_shown = param.Integer(0, constant=True, doc="Published frames taken by the page.")
    generation = param.Integer(0, constant=True,
                               doc="Bumped on reset, rebuild and checkpoint load (views clear).")
    error = param.String("", constant=True,
                         doc="Text of the exception that stopped training; empty when none.")
    network = param.String("", constant=True, doc="Layer sizes of the current network, e.g. 784-1000-100-10.")
    waiting = param.Boolean(False, constant=True,
                            doc="Train was pressed but every training slot of the server is taken; the "
                                "session starts by itself when one frees (see :meth:`slot_position`).")
    notice = param.String("", constant=True,
                          doc="Why training paused by itself (no page activity for the idle timeout); "
                              "cleared by the next play.")

    def __init__(self, rule: str | LearningRule = "desire", dataset: str | Dataset = "mnist-5k",
                 hidden: list[int] | None = None, seed: int = 0, rule_params: dict | None = None,
                 traced: list[tuple[int, int]] | None = None, eval_limit: int | None = None,
                 autostart: bool = True, limits: Limits | None = None, pool: SlotPool | None = None,
                 **params):
        self._set_lock = threading.RLock()
        super().__init__(**params)
        CommandWorker.__init__(self, "spikewb-session", pool)
        #: Server limits (network size, T, memory, idle timeout); None: unlimited (library use).
        self.limits = limits
        #: ``time.monotonic()`` of the last page activity (see :meth:`touch`).
        self.last_activity = time.monotonic()
        self._datasets: dict[str, Dataset] = {}
        if isinstance(dataset, Dataset):
            self._datasets[dataset.name] = dataset
            dataset = dataset.name
        if isinstance(rule, LearningRule):
            rule_obj = rule
        else:
            rule_obj = make_rule(rule, **(rule_params or {}))
        self.eval_limit = eval_limit
        self._latest: Snapshot | None = None
        self._taken_seq = 0
        self._seq = 0
        self._samples = 0
        self._loss_sum = 0.0
        self._loss_n = 0
        self._last_publish = 0.0
        self._last_count_sync = 0.0
        self._last_weights = -math.inf
        self._fields = (None, None, getattr(self, "_fields", (None, None, 0))[2])
        self._rate_mark = (time.perf_counter(), 0)
        self.metrics: list[dict[str, Any]] = []
        self._metrics_lock = threading.Lock()
        #: Called in the worker thread with every trained Frame (cheap or full); keep them cheap.
        self.observers: list[Callable[[Frame], None]] = []
        #: Extra recording requested by an open inspector (merged into published frames).
        self._extra_record = Record(spikes=False)
        self._last_metric_step = -1
        hidden = list(Architecture().hidden if hidden is None else hidden)
        self.trainer = self._build(rule_obj, str(dataset), hidden, int(seed))
        with param.edit_constant(self):
            self.param.update(rule_name=rule_obj.key, dataset=str(dataset), hidden=hidden, seed=int(seed),
                              network=self.trainer.network)
        self._set_traced(traced if traced is not None else self.default_traced(self.trainer.model.sizes))
        _SESSIONS.add(self)
        if autostart:
            self.start()

    @classmethod
    def served(cls, **kwargs) -> "TrainingSession":
        """A session under this server's limits: the process-wide training slots
        (:func:`~spikewb.workbench.server.limits.training_pool`) and :func:`~spikewb.workbench.server.limits.server_limits`."""
        from spikewb.workbench.server.limits import server_limits, training_pool
        kwargs.setdefault("limits", server_limits())
        kwargs.setdefault("pool", training_pool())
        return cls(**kwargs)

    # ================================================================ public API
    @property
    def rule(self) -> LearningRule:
        """The live rule object (hyperparameters).  Change it only through :meth:`apply`."""
        return self.trainer.rule

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(self.trainer.model.sizes)

    def datasets(self) -> list[str]:
        """Dataset names this session can switch to (embedded plus uploads)."""
        return [*EMBEDDED_DATASETS, *self._datasets]

    @staticmethod
    def default_traced(sizes) -> list[tuple[int, int]]:
        """One neuron in each neuron layer (first hidden ... output), at most MAX_TRACED."""
        layers = list(range(1, len(sizes)))[-MAX_TRACED:]
        return [(l, 0) for l in layers]

    def play(self) -> None:
        """Train continuously until :meth:`pause` (clears nothing; an error must be reset first).

        With a slot :attr:`pool` whose slots are all taken, the session waits
        instead (:attr:`waiting` is True, :meth:`slot_position` gives its place)
        and starts training by itself when a slot frees.
        """
        self.touch()
        self._play(notice="")

    def _slot_unwanted(self) -> bool:
        """A slot that frees after the idle timeout goes back: nobody is looking any more."""
        if self._idle_for() > self._idle_timeout():
            self._set(waiting=False, notice=self._idle_text())
            return True
        return False

    def touch(self) -> None:
        """Record page activity (resets the idle timer)."""
        self.last_activity = time.monotonic()

    def _idle_for(self) -> float:
        return time.monotonic() - self.last_activity

    def _idle_timeout(self) -> float:
        return float(self.limits.idle_timeout_s) if self.limits is not None else math.inf

    def _idle_text(self) -> str:
        return (f"paused after {self._idle_timeout():.0f} s without activity in the page "
                "(its training slot was freed); press Train to continue")

    def pause(self) -> None:
        """Stop after the sample in progress (use :meth:`sync` to wait for it); frees the
        training slot (or the place in the queue for one)."""
        self.touch()
        self._halt(notice="")

    def step(self) -> Future:
        """Pause and train exactly one sample, published in full; the Future gives its Frame."""
        self.pause()
        return self._submit(self._do_step, "step")

    def reset(self) -> Future:
        """Pause, fresh weights from the seed, counters and error cleared."""
        self.pause()
        return self._submit(self._do_reset, "reset")

    def apply(self, **changes) -> Future:
        """Queue a group of changes, applied atomically between two samples.

        Keys are rule hyperparameters (``lr``, ``v_th``, ...) and the
        session settings ``rule``, ``hidden``, ``dataset``, ``seed`` and
        ``traced``.  Live hyperparameters are set with one
        ``rule.param.update(...)``; a structural change (:meth:`is_structural`)
        builds a new network (training progress is lost, the run state is
        kept).  Values are validated here first.

        Raises
        ------
        ConfigError
            Unknown name or invalid value; nothing is queued.
        """
        self.touch()
        changes = self.validate(**changes)
        return self._submit(lambda: self._do_apply(changes), "apply")

    def is_structural(self, **changes) -> bool:
        """Whether applying ``changes`` needs a new network."""
        rule_key = changes.get("rule", self.rule_name)
        if rule_key != self.rule_name:
            return True
        cls = rule_class(rule_key)
        for k, v in changes.items():
            if k in STRUCTURAL and not self._same(k, v):
                return True
            if k in cls.structural and getattr(self.rule, k) != v:
                return True
        return False

    def _same(self, key: str, value) -> bool:
        cur = {"rule": self.rule_name, "hidden": list(self.hidden), "dataset": self.dataset, "seed": self.seed}[key]
        if key == "hidden":
            value = [int(v) for v in value]
        return cur == value

    def upload_budget(self) -> int:
        """Bytes one upload may declare: :data:`UPLOAD_SHARE` of the per-session memory
        budget under server limits, else the engine's own caps."""
        if self.limits is None:
            return min(IDX_MAX_BYTES, CHECKPOINT_MAX_BYTES)
        return max(1, int(float(self.limits.memory_mb) * 1e6 * UPLOAD_SHARE))

    def load_checkpoint(self, source, name: str | None = None) -> Future:
        """Load a checkpoint (path or bytes) between samples.

        A checkpoint of the same rule and layer sizes keeps the current
        dataset; another rule or architecture rebuilds from the checkpoint's
        configuration.  The file is read and its metadata checked here (raises
        :class:`CheckpointError` at once, naming the file ``name``, default its
        base name, never a server path); the arrays are checked against the
        model the rule builds in the worker, before anything is installed, and
        the Future reports problems found there.  Reading is bounded by
        :meth:`upload_budget`.  This reads the file: call it off the page's
        event loop (the controls do).
        """
        if isinstance(source, (bytes, bytearray, memoryview)):
            name = name or "uploaded file"
            if len(source) == 0:
                raise CheckpointError(f"{name}: the file is empty (0 bytes); a checkpoint is a .npz archive "
                                      "saved by this workbench or `spikewb train`")
            tmp = tempfile.NamedTemporaryFile(prefix="spikewb-upload-", suffix=".npz", delete=False)
            with tmp:
                tmp.write(source)
            path = Path(tmp.name)
            cleanup = True
        else:
            path, cleanup = Path(source), False
            name = name or path.name
        self.touch()
        budget = self.upload_budget()
        try:
            meta, _, _ = load_checkpoint(path, max_bytes=budget, name=name)
            rule = rule_from_meta(meta, name)
            arch_from_meta(meta, name)
        except Exception:
            if cleanup:
                path.unlink(missing_ok=True)
            raise
        return self._submit(lambda: self._do_load(path, meta, cleanup, rule, name, budget), "load")

    def checkpoint_bytes(self) -> Future:
        """The current state as checkpoint bytes (``.npz``), taken between samples."""
        return self._submit(self._do_save, "save")

    def add_dataset(self, data: Dataset) -> str:
        """Make an uploaded dataset selectable in this session; returns its name."""
        name = data.name
        base, k = name, 2
        while name in EMBEDDED_DATASETS:
            name = f"{base}-{k}"
            k += 1
        if name != data.name:
            data = Dataset(name, data.x_train, data.y_train, data.x_test, data.y_test,
                           data.image_shape, data.class_names)
        self._datasets[name] = data
        return name

    def call(self, fn: Callable[["TrainingSession"], Any]) -> Future:
        """Run ``fn(session)`` in the worker between samples."""
        return self._submit(lambda: fn(self), "call")

    def take(self) -> Snapshot | None:
        """The newest snapshot not taken yet, or None (counts it as shown)."""
        snap = self._latest
        if snap is None or snap.seq <= self._taken_seq:
            return None
        self._taken_seq = snap.seq
        self._set(frames_shown=self.frames_shown + 1)
        return snap

    @property
    def latest(self) -> Snapshot | None:
        """The newest published snapshot (taken or not)."""
        return self._latest

    def metrics_csv(self) -> str:
        """Metrics as CSV: a row per logged point of the running curve and per epoch."""
        cols = ["kind", "step", "epoch", "train_accuracy", "test_accuracy", "loss", "lr", "seconds"]
        lines = [",".join(cols)]
        with self._metrics_lock:
            rows = list(self.metrics)
        for r in rows:
            lines.append(",".join("" if r.get(c) is None else
                                  (f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c])) for c in cols))
        return "\n".join(lines) + "\n"

    def close(self, timeout: float = 2.0) -> bool:
        """Stop the worker and join it; True if it ended within ``timeout`` seconds."""
        return self._close_worker(timeout)

    # ================================================================ validation
    def validate(self, **changes) -> dict:
        """Check a group of changes without applying it; returns them normalised.

        Raises
        ------
        ConfigError
            Unknown name or invalid value (the message names both).
        """
        changes = dict(changes)
        if "rule" in changes:
            rule_class(changes["rule"])  # unknown name lists the valid ones
        rule_key = changes.get("rule", self.rule_name)
        cls = rule_class(rule_key)
        session_keys = {"rule", "hidden", "dataset", "seed", "traced"}
        rule_changes = {k: v for k, v in changes.items() if k not in session_keys}
        unknown = sorted(k for k in rule_changes if k not in cls.param or k == "name")
        if unknown:
            raise ConfigError(f"unknown setting(s) {unknown}; rule {rule_key!r} has "
                              f"{sorted(k for k in cls.param if k != 'name')} and the session has "
                              f"{sorted(session_keys)}")
        candidate = None                # the rule the change would give, built once for every check
        if rule_changes or self.limits is not None:
            base = self.rule.config() if rule_key == self.rule_name else {}
            try:
                candidate = cls(**{**{k: v for k, v in base.items() if k in cls.param}, **rule_changes})
            except (ValueError, TypeError) as exc:
                raise ConfigError(str(exc)) from None
            candidate.check_params()    # constraints between parameters (e.g. tau_m = tau_s)
        if "hidden" in changes:
            hidden = changes["hidden"]
            if isinstance(hidden, str):
                hidden = Architecture.parse_hidden(hidden)
            hidden = [int(h) for h in hidden]
            data = self._dataset(changes.get("dataset", self.dataset))
            try:
                Architecture(n_inputs=data.n_features, hidden=hidden, n_outputs=data.n_classes).validate()
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            changes["hidden"] = hidden
        if "dataset" in changes:
            self._dataset(changes["dataset"])
        if "seed" in changes:
            seed = changes["seed"]
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**31:
                raise ConfigError(f"seed must be an integer in [0, 2^31); got {seed!r}")
            changes["seed"] = int(seed)
        if "traced" in changes:
            changes["traced"] = self._check_traced(changes["traced"], None)
        if self.limits is not None:
            self._check_limits(candidate, changes.get("dataset", self.dataset), changes.get("hidden", self.hidden))
        return changes

    def _check_limits(self, rule: LearningRule, dataset: str, hidden) -> None:
        """Refuse (ConfigError) a network over this server's limits, before anything is allocated."""
        if self.limits is None:
            return
        data = self._dataset(dataset)
        sizes = (int(data.n_features), *(int(h) for h in hidden), int(data.n_classes))
        itemsize = 8 if getattr(rule, "dtype", "float32") == "float64" else 4
        check_network(sizes, time_steps(rule), self.limits, itemsize=itemsize)

    def _dataset(self, name: str) -> Dataset:
        if name in self._datasets:
            return self._datasets[name]
        if name not in EMBEDDED_DATASETS and name not in available():
            raise ConfigError(f"unknown dataset {name!r}; choose from {self.datasets()}")
        try:
            return shared_dataset(name)
        except DataError as exc:
            raise ConfigError(str(exc)) from None

    def _check_traced(self, traced, sizes) -> list[tuple[int, int]]:
        if isinstance(traced, str):
            traced = parse_traced(traced)
        out = []
        for item in traced:
            try:
                layer, idx = (int(v) for v in item)
            except (TypeError, ValueError):
                raise ConfigError(f"traced neurons are (layer, index) pairs; got {item!r}") from None
            if sizes is not None and not (1 <= layer < len(sizes) and 0 <= idx < sizes[layer]):
                raise ConfigError(f"neuron ({layer}, {idx}) does not exist in a "
                                  f"{'-'.join(map(str, sizes))} network (layers 1..{len(sizes) - 1})")
            if layer < 1 or idx < 0:
                raise ConfigError(f"neuron ({layer}, {idx}): layer must be >= 1 and index >= 0")
            out.append((layer, idx))
        if len(out) > MAX_TRACED:
            raise ConfigError(f"at most {MAX_TRACED} neurons can be traced; got {len(out)}")
        return out

    def _set_traced(self, traced) -> None:
        sizes = self.trainer.model.sizes
        try:
            traced = self._check_traced(traced, sizes)
        except ConfigError:
            traced = self.default_traced(sizes)
        self._traced_record = Record(neurons=tuple(traced), spikes=True)
        self._merge_records()
        self._set(traced=list(traced))

    def set_extra_record(self, neurons=(), weight_updates: bool = False, flow: int = 0) -> None:
        """Record more for published frames (the inspector's neuron, its weight updates,
        error-flow links) -- only while someone looks; ``set_extra_record()`` stops it."""
        self._extra_record = Record(neurons=tuple((int(l), int(i)) for l, i in neurons), spikes=False,
                                    weight_updates=bool(weight_updates), flow=int(flow))
        self._merge_records()

    def _merge_records(self) -> None:
        base = getattr(self, "_traced_record", Record())
        extra = self._extra_record
        neurons = tuple(dict.fromkeys(base.neurons + extra.neurons))
        self._record = Record(neurons=neurons, spikes=True, weight_updates=extra.weight_updates,
                              flow=extra.flow)

    # ================================================================ internals
    def _set(self, **values) -> None:
        # edit_constant flips the parameters' ``constant`` flag for the duration of
        # the block; the page thread and the worker both set state, so serialise it.
        with self._set_lock, param.edit_constant(self):
            self.param.update(**values)

    def _build(self, rule: LearningRule, dataset: str, hidden: list[int], seed: int) -> Trainer:
        data = self._dataset(dataset)
        self._check_limits(rule, dataset, hidden)
        arch = Architecture(n_inputs=data.n_features, hidden=list(hidden), n_outputs=data.n_classes)
        return Trainer(rule, data, arch, seed=seed, eval_limit=self.eval_limit)

    def _new_generation(self, trainer: Trainer | None = None) -> None:
        if trainer is not None:
            self.trainer = trainer
        self._samples = self.trainer.steps
        self._loss_sum, self._loss_n = 0.0, 0
        self._latest = None
        self._last_weights = -math.inf
        self._fields = (None, None, getattr(self, "_fields", (None, None, 0))[2])
        self._rate_mark = (time.perf_counter(), self._samples)
        with self._metrics_lock:
            self.metrics = [{"kind": "epoch", "step": None, **h.as_dict()} for h in self.trainer.history]
        self._last_metric_step = -1
        self._set(generation=self.generation + 1, error="", samples=self._samples,
                  epoch=int(self.trainer.epoch), network=self.trainer.network, samples_per_s=0.0)

    # ---------------------------------------------------------------- worker hooks
    def _set_state(self, **values) -> None:
        self._set(**values)

    def _train_step(self) -> None:
        if self._idle_for() > self._idle_timeout():
            log.info("session idle for %.0f s: pausing it and freeing its training slot", self._idle_for())
            self._halt(notice=self._idle_text())
        else:
            self._train_one(force_publish=False)

    def _after_work(self, ran_commands: bool) -> None:
        if ran_commands or (not self._want_running and self.samples != self._samples):
            self._sync_counters()  # paused: the shown counter must be exact

    def _do_step(self) -> Frame:
        frame = self._train_one(force_publish=True)
        if frame is None:
            raise RuntimeError(self.error or "training failed")
        return frame

    def _do_reset(self) -> None:
        self.trainer.reset()
        self._new_generation()

    def _do_apply(self, changes: dict) -> str:
        changes = dict(changes)
        traced = changes.pop("traced", None)
        if self.is_structural(**changes):
            rule_key = changes.pop("rule", self.rule_name)
            hidden = changes.pop("hidden", list(self.hidden))
            dataset = changes.pop("dataset", self.dataset)
            seed = changes.pop("seed", self.seed)
            if rule_key == self.rule_name:
                params = {**self.rule.config(), **changes}
            else:
                params = dict(changes)
            rule = make_rule(rule_key, **params)
            trainer = self._build(rule, dataset, hidden, seed)
            self._new_generation(trainer)
            self._set(rule_name=rule_key, dataset=dataset, hidden=list(hidden), seed=int(seed))
            self._set_traced(traced if traced is not None else self.traced)
            return f"rebuilt: {rule.title or rule_key}, {trainer.network}, {dataset}, seed {seed}"
        if changes:
            changes.pop("rule", None)
            for k in ("hidden", "dataset", "seed"):
                changes.pop(k, None)
            self.rule.param.update(**changes)
        if traced is not None:
            self._set_traced(traced)
        return "applied " + ", ".join(f"{k} = {v}" for k, v in changes.items()) if changes else "applied"

    def _do_load(self, path: Path, meta: dict, cleanup: bool, rule: LearningRule | None = None,
                 name: str | None = None, max_bytes: int | None = None) -> str:
        name = name or path.name
        try:
            rule = rule if rule is not None else rule_from_meta(meta, name)
            arch = arch_from_meta(meta, name)
            seed = meta.get("seed", 0)
            if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
                raise CheckpointError(f"{name}: metadata 'seed' must be an integer in [0, 2^31)")
            same = (rule.key == self.rule_name and tuple(arch.sizes) == tuple(self.sizes)
                    and meta.get("dataset") == self.dataset)
            if same:
                trainer = self._build(rule, self.dataset, list(self.hidden), seed)
                dataset = self.dataset
            else:
                dataset = meta.get("dataset", self.dataset)
                try:
                    if not isinstance(dataset, str):
                        raise ConfigError("not a dataset name")
                    data = self._dataset(dataset)
                except ConfigError:
                    data, dataset = self._dataset(self.dataset), self.dataset
                if arch.n_inputs != data.n_features or arch.n_outputs != data.n_classes:
                    raise CheckpointError(
                        f"{name}: checkpoint network {arch.describe()} does not fit dataset "
                        f"{dataset} ({data.n_features} inputs, {data.n_classes} classes)")
                trainer = self._build(rule, dataset, list(arch.hidden), seed)
            trainer.load_state(path, name=name, max_bytes=max_bytes)
        except (KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{name}: checkpoint metadata is incomplete or malformed "
                                  f"({type(exc).__name__})") from None
        finally:
            if cleanup:
                path.unlink(missing_ok=True)
        self._new_generation(trainer)
        self._set(rule_name=trainer.rule.key, dataset=dataset, hidden=list(trainer.arch.hidden), seed=trainer.seed)
        self._set_traced(self.traced)
        return (f"loaded checkpoint: {trainer.rule.key}, {trainer.network}, epoch {trainer.epoch}, "
                f"{trainer.steps} samples")

    def _do_save(self) -> bytes:
        with tempfile.TemporaryDirectory(prefix="spikewb-save-") as tmp:
            path = self.trainer.save(Path(tmp) / "checkpoint.npz")
            return path.read_bytes()

    def _train_one(self, force_publish: bool) -> Frame | None:
        now = time.perf_counter()
        publish = force_publish or (now - self._last_publish >= self.publish_interval)
        trainer = self.trainer
        n_hist = len(trainer.history)
        try:
            frame = trainer.step(self._record if publish else None)
        except Exception as exc:
            self._stop_on_error(exc)
            return None
        self._samples += 1
        for observer in self.observers:
            observer(frame)
        self._loss_sum += frame.loss
        self._loss_n += 1
        if len(trainer.history) > n_hist:
            self._log_epoch(trainer.history[-1])
        if publish:
            self._last_publish = now
            self._publish(frame)
        elif now - self._last_count_sync >= 0.1:
            self._sync_counters()
        return frame

    def _log_epoch(self, h: EpochResult) -> None:
        with self._metrics_lock:
            self.metrics.append({"kind": "epoch", "step": self._samples, **h.as_dict()})
        self._loss_sum, self._loss_n = 0.0, 0

    def _publish(self, frame: Frame) -> None:
        trainer = self.trainer
        now = time.perf_counter()
        if now - self._last_weights >= self.weights_interval:
            self._last_weights = now
            w0 = trainer.model.weights[0]
            n = w0.shape[1]
            field_ids = np.unique(np.linspace(0, n - 1, min(N_FIELDS, n)).astype(np.int64))
            self._fields = (np.ascontiguousarray(w0[:, field_ids].T, dtype=np.float32), field_ids,
                            self._fields[2] + 1)
        fields, field_ids, fields_version = self._fields
        image = None
        if 0 <= frame.index < len(trainer.data.x_train):
            image = np.array(trainer.data.x_train[frame.index], dtype=np.uint8)
        epoch_loss = self._loss_sum / self._loss_n if self._loss_n else float("nan")
        t0, s0 = self._rate_mark
        if now - t0 >= 0.5:
            rate = (self._samples - s0) / (now - t0)
            self._rate_mark = (now, self._samples)
        else:
            rate = self.samples_per_s
        if frame.step - self._last_metric_step >= 50 or self._last_metric_step < 0:
            self._last_metric_step = frame.step
            with self._metrics_lock:
                self.metrics.append({"kind": "running", "step": frame.step + 1, "epoch": frame.epoch,
                                     "train_accuracy": frame.accuracy, "test_accuracy": None,
                                     "loss": epoch_loss, "lr": frame.lr, "seconds": None})
        self._seq += 1
        self._latest = Snapshot(
            seq=self._seq, frame=frame, generation=self.generation, image=image,
            image_shape=tuple(trainer.data.image_shape), class_names=tuple(trainer.data.class_names),
            samples=self._samples, samples_per_s=float(rate), epoch_loss=float(epoch_loss),
            history=tuple(trainer.history), fields=fields, field_ids=field_ids, fields_version=fields_version,
            warnings=tuple(trainer.warnings), rule=trainer.rule.key, network=trainer.network)
        self._last_count_sync = now
        self._set(frames_produced=self.frames_produced + 1, samples=self._samples,
                  epoch=int(trainer.epoch), samples_per_s=float(rate))

    def _sync_counters(self) -> None:
        self._last_count_sync = time.perf_counter()
        self._set(samples=self._samples, epoch=int(self.trainer.epoch))


def parse_traced(text: str) -> list[tuple[int, int]]:
    """``"1:0, 3:2"`` -> ``[(1, 0), (3, 2)]`` (layer:index pairs).

    >>> parse_traced("1:0, 3:2")
    [(1, 0), (3, 2)]
    """
    out = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            layer, idx = part.split(":")
            out.append((int(layer), int(idx)))
        except ValueError:
            raise ConfigError(f"traced neurons are written layer:index, e.g. 1:0, 3:2; got {part!r}") from None
    return out


def checkpoint_summary(data: bytes) -> dict:
    """Metadata of checkpoint bytes (raises CheckpointError when unreadable)."""
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "c.npz"
        p.write_bytes(data)
        meta, _, _ = load_checkpoint(p, name="checkpoint")
    return meta


__all__ = ["TrainingSession", "Snapshot", "dataset_from_idx", "parse_traced", "shared_dataset",
           "checkpoint_summary", "live_sessions", "EMBEDDED_DATASETS", "MAX_TRACED"]
