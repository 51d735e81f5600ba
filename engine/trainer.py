"""Training loop: epochs, shuffling, learning-rate schedule, evaluation, checkpoints.

A :class:`Trainer` owns one rule, one architecture, one dataset and the model.
It can be driven one sample at a time (:meth:`Trainer.step`, what the live
workbench's worker thread does, applying parameter changes in between) or for
whole epochs (:meth:`Trainer.fit`, what the CLI does).  Every step returns a
:class:`~engine.frame.Frame`; ``fit`` hands each to a callback.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .checkpoint import load_checkpoint, save_checkpoint
from .datasets import Dataset, load_dataset, sample_intensity
from .errors import CheckpointError, ConfigError
from .frame import Frame, Record, RECORD_NONE
from .network import Architecture, Model
from .rules import LearningRule, make_rule

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
                 seed: int = 0, eval_limit: int | None = None):
        self.rule = rule
        self.data = data
        if arch is None:
            arch = Architecture()
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
        x = sample_intensity(self.data.x_train[idx])
        y = int(self.data.y_train[idx])
        frame = self.rule.train_step(self.model, x, y, record or RECORD_NONE)
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
        pred = self.rule.predict(self.model, x.astype(np.float32) / np.float32(255.0))
        return float(np.mean(pred == y))

    def fit(self, epochs: int, callback: Callable[[Frame], Any] | None = None,
            record: Record | None = None, checkpoint_dir: str | Path | None = None,
            on_epoch: Callable[[EpochResult], Any] | None = None) -> list[EpochResult]:
        """Train until ``epochs`` epochs are complete (counting resumed ones)."""
        if epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {epochs}")
        while self.model.epoch < epochs:
            n_before = len(self.history)
            frame = self.step(record)
            if callback is not None:
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
        """Write a checkpoint (atomic; see :mod:`engine.checkpoint`)."""
        self.model.check_finite()
        state = {**self.model.state, "order": self.order}
        return save_checkpoint(path, self.meta(), self.model.weights, state)

    def load_state(self, path) -> None:
        """Load weights and progress from a checkpoint of the same rule and architecture."""
        meta, weights, state = load_checkpoint(path)
        if meta["rule"] != self.rule.key:
            raise CheckpointError(f"checkpoint was trained with rule {meta['rule']!r}; "
                                  f"this session uses {self.rule.key!r}")
        if tuple(meta["sizes"]) != tuple(self.model.sizes):
            raise CheckpointError(f"checkpoint architecture {'-'.join(map(str, meta['sizes']))} differs from "
                                  f"this network's {'-'.join(map(str, self.model.sizes))}")
        mine = [w.shape for w in self.model.weights]
        if [w.shape for w in weights] != mine:
            raise CheckpointError(f"checkpoint weight shapes {[w.shape for w in weights]} differ from this "
                                  f"network's {mine} (a different layer layout, e.g. conv maps or kernel)")
        ft = self.model.weights[0].dtype
        self.model.weights = [np.ascontiguousarray(w.astype(ft)) for w in weights]
        order = state.pop("order", None)
        self.model.state = state
        self.model.epoch = int(meta["epoch"])
        self.model.rng.bit_generator.state = meta["rng"]
        self.order_rng.bit_generator.state = meta["order_rng"]
        if order is not None and len(order) == self.n_train:
            self.order = order
            self.position = int(meta["position"])
        else:
            self.order = self.order_rng.permutation(self.n_train)
            self.position = 0
        self.steps = int(meta.get("steps", 0))
        self.history = [EpochResult(**h) for h in meta.get("history", [])]
        run = meta.get("running", {})
        self._running = _Running(correct=run.get("correct", 0), seen=run.get("seen", 0),
                                 loss_sum=run.get("loss_sum", 0.0))

    @classmethod
    def from_checkpoint(cls, path, data: Dataset | None = None, **rule_overrides) -> "Trainer":
        """Rebuild rule, architecture, (dataset) and progress from a checkpoint."""
        meta, _, _ = load_checkpoint(path)
        rule = make_rule(meta["rule"], **{**meta["rule_params"], **rule_overrides})
        data = data if data is not None else load_dataset(meta["dataset"])
        arch = Architecture(**meta["arch"])
        trainer = cls(rule, data, arch, seed=meta["seed"])
        trainer.load_state(path)
        return trainer
