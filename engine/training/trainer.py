"""Training loop: epochs, shuffling, learning-rate schedule, evaluation, checkpoints.

A :class:`Trainer` owns one rule, one architecture, one dataset and the model.
It can be driven one sample at a time (:meth:`Trainer.step`, what the live
workbench's worker thread does, applying parameter changes in between) or for
whole epochs (:meth:`Trainer.fit`, what the CLI does).  Every step returns a
:class:`~spikewb.engine.frame.Frame`; ``fit`` hands each to a callback.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from spikewb.engine.training.checkpoint import load_checkpoint, save_checkpoint
from spikewb.engine.data.datasets import Dataset, load_dataset, sample_intensity
from spikewb.engine.errors import CheckpointError, ConfigError
from spikewb.engine.frame import Frame, Record, RECORD_NONE
from spikewb.engine.network import Architecture, Model
from spikewb.engine.rules import LearningRule, make_rule, rule_names
from spikewb.engine.rules.base import ArraySpec

log = logging.getLogger(__name__)

#: Consecutive samples with a silent output layer before the Trainer warns.
SILENT_AFTER = 200
#: Every this many samples the Trainer scans all weights for NaN/Inf (a full scan
#: costs about as much as a tenth of a sample, so it is amortised).
FINITE_CHECK_EVERY = 100


@dataclass
class EpochResult:
    """Metrics of one completed epoch."""

    epoch: int
    train_accuracy: float
    test_accuracy: float
    loss: float
    lr: float
    seconds: float
    samples: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Running:
    correct: int = 0
    seen: int = 0
    loss_sum: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    @property
    def accuracy(self) -> float:
        return self.correct / self.seen if self.seen else float("nan")


def parallel_predict(rule: LearningRule, model: Model, X: np.ndarray, workers: int = 1) -> np.ndarray:
    """``rule.predict(model, X)`` on ``workers`` threads, one contiguous chunk of samples each.

    Prediction reads the model and writes nothing shared, and the rules'
    numba kernels release the GIL (``nogil=True``), so the chunks run on
    separate cores; the result equals the serial one sample for sample
    (``tests/engine/training/test_parallel_eval.py``).
    """
    workers = max(1, min(int(workers), len(X)))
    if workers == 1:
        return rule.predict(model, X)
    chunks = np.array_split(np.arange(len(X)), workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spikewb-eval") as pool:
        parts = list(pool.map(lambda idx: rule.predict(model, X[idx[0]:idx[-1] + 1]), chunks))
    return np.concatenate(parts)


class Trainer:
    """Train a rule on a dataset, sample by sample.

    Parameters
    ----------
    rule : LearningRule
        Hyperparameters; may be changed between steps (live parameters).
    data : Dataset
    arch : Architecture, optional
        Defaults to the rule's paper architecture with the dataset's input and
        output sizes.
    seed : int
        Seeds weight initialisation, dropout masks and the shuffling order.
    eval_limit : int, optional
        Evaluate on only the first ``eval_limit`` test samples (UI speed).
    """

    def __init__(self, rule: LearningRule, data: Dataset, arch: Architecture | None = None,
                 seed: int = 0, eval_limit: int | None = None, eval_workers: int = 1, train_workers: int = 1):
        self.rule = rule
        #: Threads that evaluate the test set (chunks of samples; the rules' kernels release the GIL).
        #: 1 in the server, where sessions share the cores; the command line uses every core.
        self.eval_workers = max(1, int(eval_workers))
        #: Threads for the samples of one minibatch in :meth:`fit`, for rules with a ``train_batch``
        #: (SSNN); the result is the same as with one. 1 in the server, every core on the command line.
        self.train_workers = max(1, int(train_workers))
        self.data = data
        if arch is None:  # the rule's paper network (SSNN: one hidden layer), sized to the data
            arch = Architecture(n_inputs=data.n_features, hidden=list(type(rule).default_hidden),
                                n_outputs=data.n_classes)
        if arch.n_inputs != data.n_features or arch.n_outputs != data.n_classes:
            arch = Architecture(n_inputs=data.n_features, hidden=list(arch.hidden), n_outputs=data.n_classes)
        self.arch = arch
        self.seed = int(seed)
        self.eval_limit = eval_limit
        self.history: list[EpochResult] = []
        self.warnings: list[str] = []
        self._silent = 0
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Fresh weights from the seed; epoch 0, new order."""
        rng = np.random.default_rng(self.seed)
        self.model: Model = self.rule.build(self.arch, rng)
        self.order_rng = np.random.default_rng([self.seed, 1])
        self.order = self.order_rng.permutation(len(self.data.y_train))
        self.position = 0
        self.steps = 0
        self.history = []
        self.warnings = []
        self._running = _Running()

    @property
    def network(self) -> str:
        """The network as a label, as its rule describes it (``784-c5x32-p2-10`` for a conv STiDi net)."""
        return self.rule.describe_network(self.model)

    @property
    def epoch(self) -> int:
        return self.model.epoch

    @property
    def n_train(self) -> int:
        return len(self.data.y_train)

    @property
    def last_test_accuracy(self) -> float:
        return self.history[-1].test_accuracy if self.history else float("nan")

    # ------------------------------------------------------------------ steps
    def step(self, record: Record | None = None) -> Frame:
        """Train on the next sample; finishing an epoch evaluates and reshuffles."""
        idx = int(self.order[self.position])
        x, y = self._sample(idx)
        frame = self.rule.train_step(self.model, x, y, record or RECORD_NONE)
        return self._count(frame, idx, y)

    def _sample(self, idx: int) -> tuple[np.ndarray, int]:
        """Training sample ``idx`` as the rules take it: intensities in [0, 1] and the label."""
        return sample_intensity(self.data.x_train[idx]), int(self.data.y_train[idx])

    def step_batch(self, limit: int | None = None) -> list[Frame]:
        """Train on the next samples together where the rule can (the rest of an SSNN minibatch, up
        to the end of the epoch and at most ``limit``, on :attr:`train_workers` threads), else on
        one; a frame per sample.

        Weights, state and frames are those of as many :meth:`step` calls.
        """
        room = self.rule.batch_room(self.model) if self.train_workers > 1 and hasattr(self.rule, "train_batch") else 1
        n = min(room, self.n_train - self.position)
        if limit is not None:
            n = min(n, limit)
        if n < 2:
            return [self.step()]
        idx = [int(i) for i in self.order[self.position:self.position + n]]
        X, Y = zip(*(self._sample(i) for i in idx))
        frames = self.rule.train_batch(self.model, X, Y, self.train_workers)
        return [self._count(f, i, y) for f, i, y in zip(frames, idx, Y)]

    def _count(self, frame: Frame, idx: int, y: int) -> Frame:
        """Book a trained sample: running accuracy, position, finite check, epoch end."""
        run = self._running
        run.seen += 1
        run.correct += int(frame.prediction == y)
        run.loss_sum += frame.loss
        self._watch_silence(frame)
        frame = frame.replace(step=self.steps, epoch=self.model.epoch, index=idx,
                              accuracy=run.accuracy, test_accuracy=self.last_test_accuracy)
        self.steps += 1
        self.position += 1
        if self.steps % FINITE_CHECK_EVERY == 0:
            self.model.check_finite()
        if self.position >= self.n_train:
            self.end_epoch()
        return frame

    def _watch_silence(self, frame: Frame) -> None:
        if frame.counts[-1].any():
            self._silent = 0
            return
        self._silent += 1
        if self._silent == SILENT_AFTER:
            msg = (f"the output layer has not spiked for {SILENT_AFTER} samples: the network is silent "
                   "and cannot learn. Lower the threshold, raise the input drive or reset the weights.")
            self.warnings.append(msg)
            log.warning(msg)

    def end_epoch(self) -> EpochResult:
        """Evaluate, log the epoch, advance the epoch counter and reshuffle."""
        run = self._running
        self.model.check_finite()
        test_acc = self.evaluate()
        result = EpochResult(epoch=self.model.epoch, train_accuracy=run.accuracy, test_accuracy=test_acc,
                             loss=run.loss_sum / max(run.seen, 1), lr=self.rule.learning_rate(self.model.epoch),
                             seconds=time.perf_counter() - run.started, samples=run.seen)
        self.history.append(result)
        self.model.epoch += 1
        self.position = 0
        self.order = self.order_rng.permutation(self.n_train)
        self._running = _Running()
        return result

    def evaluate(self, split: str = "test", limit: int | None = None) -> float:
        """Accuracy (fraction) on the test or train split under the rule's decision rule."""
        x, y = (self.data.x_test, self.data.y_test) if split == "test" else (self.data.x_train, self.data.y_train)
        limit = limit if limit is not None else self.eval_limit
        if limit is not None:
            x, y = x[:limit], y[:limit]
        if len(y) == 0:
            return float("nan")
        pred = parallel_predict(self.rule, self.model, x.astype(np.float32) / np.float32(255.0),
                                self.eval_workers)
        return float(np.mean(pred == y))

    def fit(self, epochs: int, callback: Callable[[Frame], Any] | None = None,
            record: Record | None = None, checkpoint_dir: str | Path | None = None,
            on_epoch: Callable[[EpochResult], Any] | None = None) -> list[EpochResult]:
        """Train until ``epochs`` epochs are complete (counting resumed ones)."""
        if epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {epochs}")
        while self.model.epoch < epochs:
            n_before = len(self.history)
            # a batch is booked (position, epoch end) before its frames reach the callback, so an
            # interrupt raised there leaves the position and the model state consistent
            frames = self.step_batch() if record is None else [self.step(record)]
            if callback is not None:
                for frame in frames:
                    callback(frame)
            if len(self.history) > n_before:
                result = self.history[-1]
                if checkpoint_dir is not None:
                    self.save(Path(checkpoint_dir) / "checkpoint.npz")
                if on_epoch is not None:
                    on_epoch(result)
        return self.history

    def iter_frames(self, record: Record | None = None) -> Iterator[Frame]:
        """Endless generator of training frames."""
        while True:
            yield self.step(record)

    # ------------------------------------------------------------ checkpoints
    def meta(self) -> dict[str, Any]:
        return {
            "rule": self.rule.key,
            "rule_params": self.rule.config(),
            "arch": self.arch.to_dict(),
            "sizes": list(self.model.sizes),
            "dataset": self.data.name,
            "n_train": self.n_train,
            "seed": self.seed,
            "epoch": self.model.epoch,
            "position": self.position,
            "steps": self.steps,
            "history": [h.as_dict() for h in self.history],
            "rng": self.model.rng.bit_generator.state,
            "order_rng": self.order_rng.bit_generator.state,
            "running": {"correct": self._running.correct, "seen": self._running.seen,
                        "loss_sum": self._running.loss_sum},
        }

    def save(self, path) -> Path:
        """Write a checkpoint (atomic; see :mod:`spikewb.engine.training.checkpoint`)."""
        self.model.check_finite()
        state = {**self.model.state, "order": self.order}
        return save_checkpoint(path, self.meta(), self.model.weights, state)

    def load_state(self, path, name: str | None = None, max_bytes: int | None = None) -> None:
        """Load weights and progress from a checkpoint of the same rule and architecture.

        Everything is checked before the model is touched (raises
        :class:`CheckpointError`, the model unchanged): the metadata's types and
        ranges, every weight layer and state array against the freshly built
        model's (:meth:`LearningRule.state_schema`: presence, shape, dtype kind,
        value range, finite), unknown arrays, and the stored sample order (a
        permutation of the training set) and position.
        """
        kw = {} if max_bytes is None else {"max_bytes": max_bytes}
        meta, weights, state = load_checkpoint(path, name=name, **kw)
        where = name if name is not None else Path(path).name
        checked = check_checkpoint(self.rule, self.model, meta, weights, state, self.n_train, where,
                                   self.data.name)
        self.model.weights = checked["weights"]
        self.model.state = checked["state"]
        self.model.epoch = checked["epoch"]
        self.model.rng.bit_generator.state = meta["rng"]
        self.order_rng.bit_generator.state = meta["order_rng"]
        if checked["order"] is not None:
            self.order = checked["order"]
            self.position = checked["position"]
        else:
            self.order = self.order_rng.permutation(self.n_train)
            self.position = 0
        self.steps = checked["steps"]
        self.history = checked["history"]
        self._running = checked["running"]

    @classmethod
    def from_checkpoint(cls, path, data: Dataset | None = None, **rule_overrides) -> "Trainer":
        """Rebuild rule, architecture, (dataset) and progress from a checkpoint."""
        meta, _, _ = load_checkpoint(path)
        where = Path(path).name
        rule = rule_from_meta(meta, where, **rule_overrides)
        if data is None:
            dataset = meta.get("dataset")
            if not isinstance(dataset, str) or not dataset:
                raise CheckpointError(f"{where}: the metadata names no dataset; pass one")
            data = load_dataset(dataset)
        arch = arch_from_meta(meta, where)
        trainer = cls(rule, data, arch, seed=_meta_int(meta, "seed", where, 0, 2**63 - 1))
        trainer.load_state(path)
        return trainer


# --------------------------------------------------------------- checkpoint checks

_HISTORY_KEYS = frozenset(f.name for f in EpochResult.__dataclass_fields__.values())
_ARCH_KEYS = frozenset({"n_inputs", "hidden", "n_outputs"})


def _meta_int(meta: dict, key: str, where: str, lo: int, hi: int, default: int | None = None) -> int:
    v = meta.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise CheckpointError(f"{where}: metadata {key!r} must be an integer in {lo}..{hi}; got {str(v)[:40]!r}")
    return v


def _number(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float))


def rule_from_meta(meta: dict, where: str, **overrides) -> LearningRule:
    """The rule a checkpoint's metadata names, with its stored hyperparameters (all checked)."""
    key = meta.get("rule")
    if not isinstance(key, str) or key not in rule_names():
        shown = key[:40] if isinstance(key, str) else type(key).__name__
        raise CheckpointError(f"{where}: checkpoint uses an unknown rule {shown!r}; "
                              f"known rules: {', '.join(rule_names())}")
    params = meta.get("rule_params", {})
    if not isinstance(params, dict):
        raise CheckpointError(f"{where}: metadata 'rule_params' is not a mapping")
    try:
        return make_rule(key, **{**params, **overrides})
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: stored hyperparameters refused: {exc}") from None


def arch_from_meta(meta: dict, where: str) -> Architecture:
    """The architecture a checkpoint's metadata records (keys, types and sizes checked)."""
    arch = meta.get("arch")
    if not isinstance(arch, dict) or set(arch) - _ARCH_KEYS:
        raise CheckpointError(f"{where}: metadata 'arch' must hold only {sorted(_ARCH_KEYS)}")
    hidden = arch.get("hidden", [])
    if not isinstance(hidden, list) or len(hidden) > 1000 or any(
            isinstance(h, bool) or not isinstance(h, int) or not 1 <= h <= 10**6 for h in hidden):
        raise CheckpointError(f"{where}: metadata 'arch.hidden' must be a list of positive layer sizes")
    try:
        out = Architecture(**arch)
        out.validate()
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: stored architecture refused: {exc}") from None
    return out


def _check_array(key: str, a: np.ndarray, spec: ArraySpec, where: str) -> np.ndarray:
    kind = "f" if a.dtype.kind == "f" else ("i" if a.dtype.kind in "iu" else a.dtype.kind)
    if kind != spec.kind:
        want = "floating-point" if spec.kind == "f" else "integer"
        raise CheckpointError(f"{where}: array {key!r} has dtype {a.dtype}; expected {want} like the model's")
    if a.shape != spec.shape:
        raise CheckpointError(f"{where}: array {key!r} has shape {a.shape}; this network's is {spec.shape}")
    if kind == "f" and not np.all(np.isfinite(a)):
        raise CheckpointError(f"{where}: array {key!r} holds NaN or Inf")
    if a.size and spec.lo is not None and a.min() < spec.lo:
        raise CheckpointError(f"{where}: array {key!r} has values below {spec.lo}")
    if a.size and spec.hi is not None and a.max() > spec.hi:
        raise CheckpointError(f"{where}: array {key!r} has values above {spec.hi}")
    return np.ascontiguousarray(a.astype(spec.dtype))


def check_checkpoint(rule: LearningRule, model: Model, meta: dict, weights: list[np.ndarray],
                     state: dict[str, np.ndarray], n_train: int, where: str,
                     dataset_name: str | None = None) -> dict[str, Any]:
    """Everything of a checkpoint checked against ``model`` (freshly built by ``rule``).

    Returns the values to install (weights and state cast to the model's
    dtypes, sample order, counters); raises :class:`CheckpointError` naming the
    first problem.  Nothing here touches ``model``.
    """
    key = meta.get("rule")
    if key != rule.key:
        shown = key[:40] if isinstance(key, str) else type(key).__name__
        raise CheckpointError(f"{where}: checkpoint was trained with rule {shown!r}; this session uses {rule.key!r}")
    sizes = meta.get("sizes")
    if not isinstance(sizes, list) or [s for s in sizes if isinstance(s, bool) or not isinstance(s, int)] or \
            tuple(sizes) != tuple(model.sizes):
        shown = "-".join(map(str, sizes))[:80] if isinstance(sizes, list) else type(sizes).__name__
        raise CheckpointError(f"{where}: checkpoint architecture {shown} differs from "
                              f"this network's {'-'.join(map(str, model.sizes))}")
    mine = [w.shape for w in model.weights]
    if [w.shape for w in weights] != mine:
        raise CheckpointError(f"{where}: checkpoint weight shapes {[w.shape for w in weights]} differ from this "
                              f"network's {mine} (a different layer layout, e.g. conv maps or kernel)")
    out: dict[str, Any] = {}
    out["weights"] = [_check_array(f"w{l}", w, ArraySpec.like(mw), where)
                      for l, (w, mw) in enumerate(zip(weights, model.weights))]
    schema = rule.state_schema(model)
    state = dict(state)
    order = state.pop("order", None)
    unknown = sorted(set(state) - set(schema))
    if unknown:
        raise CheckpointError(f"{where}: unknown state array(s) {[u[:40] for u in unknown[:5]]} for rule "
                              f"{rule.key!r} (it keeps {sorted(schema) or 'none'})")
    missing = sorted(k for k, spec in schema.items() if spec.required and k not in state)
    if missing:
        raise CheckpointError(f"{where}: state array(s) {missing} of rule {rule.key!r} are missing")
    out["state"] = {k: _check_array(f"state_{k}", a, schema[k], where) for k, a in state.items()}
    out["epoch"] = _meta_int(meta, "epoch", where, 0, 10**9)
    out["steps"] = _meta_int(meta, "steps", where, 0, 2**62, default=0)
    out["order"], out["position"] = None, 0
    if order is not None:
        if order.ndim != 1 or order.dtype.kind not in "iu":
            raise CheckpointError(f"{where}: the stored sample order must be a 1-D integer array; "
                                  f"got shape {order.shape}, {order.dtype}")
        saved_n = meta.get("n_train")
        if len(order) != n_train and saved_n == n_train and meta.get("dataset") == dataset_name:
            raise CheckpointError(f"{where}: the stored sample order has {len(order)} entries; the training "
                                  f"set {dataset_name!r} has {n_train} samples")
        # An order for a training set of another size (another dataset, or the same one cut
        # with --train-limit) is not used: a fresh order is drawn, so none of its values
        # reaches an index.
        if len(order) == n_train:
            if n_train and (order.min() < 0 or order.max() >= n_train
                            or np.bincount(order.astype(np.int64), minlength=n_train).max() != 1):
                raise CheckpointError(f"{where}: the stored sample order is not a permutation of the "
                                      f"{n_train} training samples (indices repeated or outside 0..{n_train - 1})")
            out["order"] = order.astype(np.int64)
            out["position"] = _meta_int(meta, "position", where, 0, max(n_train - 1, 0))
    for rkey, gen in (("rng", model.rng), ("order_rng", np.random.default_rng(0))):
        st = meta.get(rkey)
        if not isinstance(st, dict) or st.get("bit_generator") != type(gen.bit_generator).__name__:
            raise CheckpointError(f"{where}: metadata {rkey!r} is not a {type(gen.bit_generator).__name__} state")
        probe = np.random.Generator(type(gen.bit_generator)())
        try:
            probe.bit_generator.state = st
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            raise CheckpointError(f"{where}: metadata {rkey!r} is not a valid generator state ({exc})") from None
    history = meta.get("history", [])
    if not isinstance(history, list) or any(
            not isinstance(h, dict) or set(h) != _HISTORY_KEYS or not all(_number(v) for v in h.values())
            for h in history):
        raise CheckpointError(f"{where}: metadata 'history' must be a list of epoch records "
                              f"with the numbers {sorted(_HISTORY_KEYS)}")
    out["history"] = [EpochResult(**{k: (int(v) if k in ("epoch", "samples") else float(v)) for k, v in h.items()})
                      for h in history]
    run = meta.get("running", {})
    if not isinstance(run, dict) or set(run) - {"correct", "seen", "loss_sum"} or not all(
            _number(v) for v in run.values()):
        raise CheckpointError(f"{where}: metadata 'running' must hold the numbers correct, seen, loss_sum")
    correct, seen = run.get("correct", 0), run.get("seen", 0)
    if not (isinstance(correct, int) and isinstance(seen, int) and 0 <= correct <= seen <= 2**62):
        raise CheckpointError(f"{where}: metadata 'running' counts must satisfy 0 <= correct <= seen")
    out["running"] = _Running(correct=correct, seen=seen, loss_sum=float(run.get("loss_sum", 0.0)))
    return out
