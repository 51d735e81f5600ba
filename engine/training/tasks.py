r"""Spike-train tasks for supervised spike-timing rules, their metrics, and a task trainer.

Classification data (MNIST and friends) live in :mod:`spikewb.engine.data.datasets`; this
module holds the small *spike-to-spike* problems on which NormAD is classically
demonstrated: a spike-timing XOR and the generic mapping of random input
spike trains onto target spike trains, plus the metrics that judge them.

Times are in milliseconds throughout.

Contents
--------
:class:`SpikeTrains`
    Spike events of one population in a window: times (ms) and neuron indices.
:class:`SpikeTask`
    A list of (input trains, desired output trains) patterns with labels.
:func:`xor_task`, :func:`mapping_task`
    The two task generators (with :func:`poisson_trains` and
    :func:`receptive_field_times` as building blocks).
:func:`correlation`, :func:`van_rossum_distance`, :func:`spikes_match`, :func:`converged_fraction`
    Metrics; :func:`run_trials` measures the fraction of converged seeded trials.
:class:`TaskTrainer`
    Drives a rule (NormAD) through a task one presentation at a time and
    yields :class:`~spikewb.engine.frame.Frame` objects, like :class:`spikewb.engine.training.trainer.Trainer`
    does for image data.

Notes
-----
Correlation-based measure (Schreiber et al. 2003): each train is filtered with
a Gaussian of width :math:`\sigma` and the two filtered signals are compared by
cosine similarity.  The integral over the real line has a closed form,

.. math::

    C = \frac{K_{12}}{\sqrt{K_{11} K_{22}}}, \qquad
    K_{ab} = \sum_{t \in a} \sum_{s \in b} e^{-(t - s)^2 / 4\sigma^2},

so no time grid is involved.  Van Rossum distance with an exponential kernel
of time constant :math:`\tau` normalised by :math:`1/\tau`:

.. math::

    D^2 = \frac1\tau \int_0^\infty (f_1 - f_2)^2\,dt
        = \tfrac12 \big(E_{11} + E_{22} - 2E_{12}\big), \qquad
    E_{ab} = \sum_{t \in a}\sum_{s \in b} e^{-|t - s|/\tau},

so one unmatched spike contributes :math:`D^2 = 1/2`.

References
----------
S. Schreiber, J. M. Fellous, D. Whitmer, P. Tiesinga, T. J. Sejnowski, "A new
correlation-based measure of spike timing reliability", Neurocomputing 52-54
(2003) 925-931.

M. C. W. van Rossum, "A novel spike distance", Neural Computation 13 (2001)
751-763.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from spikewb.engine.config import njit
from spikewb.engine.errors import ConfigError
from spikewb.engine.frame import Frame, Record
from spikewb.engine.network import Architecture
from spikewb.engine.rules.normad import NormAD
from spikewb.engine.data.spiketrains import (SpikeTrains, correlation_times, van_rossum_times, correlation, van_rossum_distance, max_timing_error, spikes_match, converged_fraction, poisson_trains)  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

#: Record nothing: presentations run without building Frames.
RECORD_QUIET = Record(spikes=False)

# =========================================================================== tasks

@dataclass
class SpikeTask:
    """A supervised spike-to-spike problem.

    Pattern ``k`` presents ``inputs[k]`` and asks for ``targets[k]``;
    ``labels[k]`` names its class (XOR: the logical output; mapping: the
    pattern index).  A pattern is *solved* when :func:`spikes_match` holds
    with ``tolerance``; the task is *converged* when every pattern is solved.
    """

    name: str
    inputs: list[SpikeTrains]
    targets: list[SpikeTrains]
    labels: np.ndarray
    hidden: tuple[int, ...]
    tolerance: float = 1.0
    corr_sigma: float = 2.0
    vr_tau: float = 5.0
    description: str = ""
    #: Anything the generator wants to keep (teacher weights, encodings ...).
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if not self.inputs or len(self.inputs) != len(self.targets):
            raise ConfigError(f"task {self.name!r} needs as many input as target patterns "
                              f"(got {len(self.inputs)} and {len(self.targets)})")
        self.labels = np.asarray(self.labels, np.int64)
        if len(self.labels) != len(self.inputs):
            raise ConfigError(f"task {self.name!r}: {len(self.labels)} labels for {len(self.inputs)} patterns")
        if len({x.n for x in self.inputs}) != 1 or len({y.n for y in self.targets}) != 1:
            raise ConfigError(f"task {self.name!r}: all patterns must have the same number of neurons")
        for x, y in zip(self.inputs, self.targets):
            if x.duration != y.duration:
                raise ConfigError(f"task {self.name!r}: input and target windows differ "
                                  f"({x.duration} ms vs {y.duration} ms)")

    @property
    def n_patterns(self) -> int:
        return len(self.inputs)

    @property
    def n_inputs(self) -> int:
        return self.inputs[0].n

    @property
    def n_outputs(self) -> int:
        return self.targets[0].n

    @property
    def duration(self) -> float:
        return max(x.duration for x in self.inputs)

    def architecture(self, hidden: Sequence[int] | None = None) -> Architecture:
        """Fully connected architecture for this task (default hidden sizes: ``self.hidden``)."""
        hid = list(self.hidden if hidden is None else hidden)
        return Architecture(n_inputs=self.n_inputs, hidden=hid, n_outputs=self.n_outputs)

    def class_targets(self) -> dict[int, SpikeTrains]:
        """The first target of every label (the prototype train of each class)."""
        out: dict[int, SpikeTrains] = {}
        for lab, y in zip(self.labels, self.targets):
            out.setdefault(int(lab), y)
        return out

    def classify(self, output: SpikeTrains) -> int:
        """Label whose prototype target is nearest to ``output`` in van Rossum distance."""
        protos = self.class_targets()
        labs = list(protos)
        dist = [van_rossum_distance(output, protos[k], self.vr_tau) for k in labs]
        return int(labs[int(np.argmin(dist))])


#: The four XOR input combinations, in pattern order, and their outputs.
XOR_TABLE = ((0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0))


def receptive_field_times(value: float, n_fields: int, t_span: float, width: float = 1.5,
                          cutoff: float = 0.1) -> np.ndarray:
    r"""Population latency code of a value in [0, 1] (Gaussian receptive fields, Bohte et al. 2002).

    Field ``k`` has centre :math:`\mu_k = k/(m-1)` and width
    :math:`\sigma = 1 / (\gamma (m - 1))`; its response
    :math:`a_k = \exp(-(x - \mu_k)^2 / 2\sigma^2)` becomes a spike at
    :math:`t_{span} (1 - a_k)` ms, and a field with :math:`a_k < ` ``cutoff``
    stays silent (NaN).

    Examples
    --------
    >>> np.round(receptive_field_times(0.0, 4, 10.0), 2).tolist()
    [0.0, 6.75, nan, nan]
    """
    if n_fields < 2:
        raise ConfigError(f"a receptive-field code needs at least 2 fields, got {n_fields}")
    mu = np.arange(n_fields) / (n_fields - 1)
    sigma = 1.0 / (width * (n_fields - 1))
    act = np.exp(-((value - mu) ** 2) / (2 * sigma ** 2))
    return np.where(act >= cutoff, t_span * (1.0 - act), np.nan)


def xor_task(*, encoding: str = "pattern", seed: int = 0, n_per_input: int = 10, pattern_rate: float = 40.0,
             t_zero: float = 0.0, t_one: float = 6.0, n_fields: int = 4, t_span: float = 10.0,
             bias: bool = True, t_bias: float = 0.0, target_true: Sequence[float] = (25.0,),
             target_false: Sequence[float] = (35.0,), duration: float = 50.0, hidden: Sequence[int] = (40,),
             tolerance: float = 1.0) -> SpikeTask:
    """The spike-timing XOR problem (2-layer network: one hidden layer).

    Every logical input is coded by spike *timing*, and a reference ("bias")
    input is the same in every pattern.  Three codes:

    ``encoding="pattern"`` (default)
        Each logical input drives ``n_per_input`` neurons; logical 0 and 1 are
        two fixed spike-timing patterns over the whole window (frozen Poisson
        trains at ``pattern_rate``, drawn from ``seed``), and the reference is
        a third fixed pattern on its own ``n_per_input`` neurons.  This is the
        code under which NormAD's XOR converges (see ``docs/rules/normad.md``).
    ``encoding="latency"``
        One neuron per input; logical 0 fires at ``t_zero``, 1 at ``t_one``
        (the SpikeProp XOR code: 0 -> 0 ms, 1 -> 6 ms, reference at 0 ms).
        Hard for a network without synaptic delays: (0, 0) and (1, 1) differ
        only by a common shift relative to the reference.
    ``encoding="population"``
        ``n_fields`` neurons per input with Gaussian receptive fields over
        [0, 1] (:func:`receptive_field_times`): the value sets *which* neurons
        fire early, so 0 and 1 are mirror-image timing patterns.

    With the two single-spike codes the inputs fall silent after ~10 ms; NormAD
    then sees nearly parallel ``d_hat`` directions at a wrong and at a desired
    output spike (both far after the input) and its normalised update
    cancels, so these codes are offered for exploration, not as the
    converging default.

    The output neuron must fire ``target_true`` when XOR is 1 and
    ``target_false`` when it is 0.  The multi-layer NormAD paper states only
    that inputs and outputs are spike based; both codes, the reference spike
    and the single-spike targets are this project's choices
    (``reference/stidi_multispike_normad.md`` 3.6 marks them unconfirmed).

    Parameters
    ----------
    encoding : {"pattern", "population", "latency"}
    seed : int
        Draws the frozen patterns (``encoding="pattern"``).
    n_per_input : int
        Neurons per logical input and for the reference (pattern code).
    pattern_rate : float
        Poisson rate (Hz) of the frozen patterns.
    t_zero, t_one : float
        Latency code: spike times (ms) of logical 0 and 1.
    n_fields, t_span : int, float
        Population code: neurons per input and the latency range (ms).
    bias : bool
        Add the reference input (last neuron(s)).
    t_bias : float
        Reference spike time (ms) of the single-spike codes.
    target_true, target_false : sequence of float
        Desired output spike times (ms) for XOR = 1 and XOR = 0.
    duration : float
        Presentation window (ms).
    hidden : sequence of int
        Default hidden-layer size(s) for :meth:`SpikeTask.architecture`.
    tolerance : float
        Timing tolerance (ms) of a matched spike.

    Returns
    -------
    SpikeTask
        Four patterns in the order (0,0), (0,1), (1,0), (1,1); labels 0, 1, 1, 0.
    """
    if encoding not in ("pattern", "population", "latency"):
        raise ConfigError(f"encoding must be 'pattern', 'population' or 'latency', got {encoding!r}")
    if encoding == "latency" and t_zero == t_one:
        raise ConfigError("t_zero and t_one must differ: the two logical values would be the same input")
    if n_per_input < 1:
        raise ConfigError(f"n_per_input must be >= 1, got {n_per_input}")
    rng = np.random.default_rng([seed, 3])
    if encoding == "pattern":
        # frozen patterns: logical 0, logical 1, reference; at least one spike each
        frozen = []
        for _ in range(3):
            while True:
                p = poisson_trains(rng, n_per_input, pattern_rate, duration, refractory=2.0)
                if len(p):
                    break
            frozen.append(p.to_lists())

    def code(bit: int) -> list[list[float]]:
        if encoding == "pattern":
            return frozen[bit]
        if encoding == "latency":
            return [[t_one if bit else t_zero]]
        times = receptive_field_times(float(bit), n_fields, t_span)
        return [[] if np.isnan(t) else [float(t)] for t in times]

    ref = (frozen[2] if encoding == "pattern" else [[t_bias]]) if bias else []
    inputs, targets, labels = [], [], []
    for a, b, y in XOR_TABLE:
        trains = code(a) + code(b) + ref
        allt = [t for tr in trains for t in tr] + list(target_true) + list(target_false)
        if min(allt) < 0 or max(allt) >= duration:
            raise ConfigError(f"all input and target times must lie in [0, {duration}) ms")
        inputs.append(SpikeTrains.from_lists(trains, duration))
        targets.append(SpikeTrains.from_lists([list(target_true if y else target_false)], duration))
        labels.append(y)
    if encoding == "pattern":
        desc = f"frozen {pattern_rate:g} Hz patterns on {n_per_input} neurons per input"
    elif encoding == "latency":
        desc = f"latency code 0 -> {t_zero:g} ms, 1 -> {t_one:g} ms"
    else:
        desc = f"{n_fields} receptive fields per input over {t_span:g} ms"
    return SpikeTask(
        name="xor", inputs=inputs, targets=targets, labels=np.array(labels), hidden=tuple(hidden),
        tolerance=tolerance,
        description=(f"spike-timing XOR, {desc}" + (", with a reference input" if bias else "")
                     + f"; output {list(target_true)} ms for 1, {list(target_false)} ms for 0"),
        meta=dict(encoding=encoding, seed=seed),
    )


def mapping_task(*, seed: int = 0, n_inputs: int = 100, hidden: Sequence[int] = (50, 50), n_outputs: int = 1,
                 n_patterns: int = 1, duration: float = 200.0, input_rate: float = 20.0,
                 targets: str = "teacher", target_rate: float = 30.0, min_target_spikes: int = 3,
                 max_target_spikes: int | None = None, rule=None, teacher_tries: int = 50,
                 tolerance: float = 1.0, corr_sigma: float = 2.0) -> SpikeTask:
    """Generic spike-train mapping: random Poisson inputs onto target trains (3-layer net).

    Parameters
    ----------
    seed : int
        Seeds the inputs, the targets and the teacher network.
    n_inputs : int
        Input neurons.
    hidden : sequence of int
        Hidden sizes of the student (and teacher) network; two layers make the
        3-layer (three weight layers) network of the multi-layer NormAD paper.
    n_outputs : int
        Output neurons.
    n_patterns : int
        Input patterns, each with its own target.
    duration : float
        Window (ms).
    input_rate : float
        Poisson rate of every input neuron (Hz).
    targets : {"teacher", "poisson"}
        ``"teacher"``: the targets are the outputs of a network of the same
        architecture with random weights (drawn by ``rule.build``), so an exact
        solution exists (*reachable* targets).  ``"poisson"``: independent
        Poisson trains at ``target_rate`` with a 5 ms dead time (may be
        unreachable).
    target_rate : float
        Rate (Hz) of Poisson targets.
    min_target_spikes, max_target_spikes : int
        A teacher is redrawn (up to ``teacher_tries`` times) until every output
        fires at least ``min_target_spikes`` (and at most ``max_target_spikes``)
        spikes in every pattern.
    rule : NormAD, optional
        Rule whose neuron and weight initialisation the teacher uses
        (default: ``NormAD()``).
    tolerance, corr_sigma : float
        Stored on the task for the metrics (ms).

    Returns
    -------
    SpikeTask
        ``meta["teacher"]`` holds the teacher's weights when ``targets="teacher"``.

    Notes
    -----
    The paper reports "generic spike based training problems" on 3-layer
    networks; sizes, rates, window and target generator are not confirmed
    (``reference/stidi_multispike_normad.md`` 3.6).  A teacher network is the
    usual way to make targets reachable; these defaults are this project's.
    """
    if targets not in ("teacher", "poisson"):
        raise ConfigError(f"targets must be 'teacher' or 'poisson', got {targets!r}")
    if n_patterns < 1 or n_inputs < 1 or n_outputs < 1:
        raise ConfigError("n_patterns, n_inputs and n_outputs must be >= 1")
    rng = np.random.default_rng([seed, 7])
    inputs = [poisson_trains(rng, n_inputs, input_rate, duration) for _ in range(n_patterns)]
    meta: dict[str, Any] = dict(targets=targets)
    if targets == "poisson":
        outs = [poisson_trains(rng, n_outputs, target_rate, duration, refractory=5.0) for _ in range(n_patterns)]
    else:
        rule = NormAD() if rule is None else rule
        arch = Architecture(n_inputs=n_inputs, hidden=list(hidden), n_outputs=n_outputs)
        hi = math.inf if max_target_spikes is None else max_target_spikes
        for attempt in range(teacher_tries):
            teacher = rule.build(arch, np.random.default_rng([seed, 11, attempt]))
            outs = [rule.respond(teacher, x)[-1] for x in inputs]
            counts = np.array([o.counts() for o in outs])
            if counts.min() >= min_target_spikes and counts.max() <= hi:
                break
        else:
            raise ConfigError(f"no teacher network in {teacher_tries} draws gave every output between "
                              f"{min_target_spikes} and {max_target_spikes} spikes; raise the input rate "
                              "or the initial weight scale")
        meta.update(teacher=[w.copy() for w in teacher.weights], teacher_attempt=attempt)
    return SpikeTask(
        name="mapping", inputs=inputs, targets=outs, labels=np.arange(n_patterns), hidden=tuple(hidden),
        tolerance=tolerance, corr_sigma=corr_sigma,
        description=(f"{n_patterns} pattern(s) of {n_inputs} Poisson inputs at {input_rate:g} Hz over "
                     f"{duration:g} ms onto {targets} targets"),
        meta=meta,
    )


# =========================================================================== training

@dataclass
class TaskEpoch:
    """Evaluation of every pattern after one epoch (weights frozen)."""

    epoch: int
    #: Mean Schreiber correlation over patterns.
    correlation: float
    #: Mean van Rossum distance over patterns.
    distance: float
    #: Per pattern: every desired spike matched within the tolerance.
    matched: np.ndarray
    #: Per pattern: largest timing error of the output (ms, inf if counts differ).
    max_error: np.ndarray
    #: Per pattern: correlation.
    correlations: np.ndarray
    #: Learning rate of the epoch.
    lr: float
    #: Wall-clock seconds of the epoch (training presentations only).
    seconds: float

    @property
    def converged(self) -> bool:
        return bool(np.all(self.matched))

    @property
    def fraction_matched(self) -> float:
        return float(np.mean(self.matched))

    def as_dict(self) -> dict[str, Any]:
        return dict(epoch=self.epoch, correlation=self.correlation, distance=self.distance,
                    fraction_matched=self.fraction_matched, converged=self.converged,
                    lr=self.lr, seconds=self.seconds)


class TaskTrainer:
    """Train a spike-train rule (NormAD) on a :class:`SpikeTask`, one presentation at a time.

    The same shape as :class:`spikewb.engine.training.trainer.Trainer`: :meth:`step` presents
    the next pattern, updates the weights and returns its
    :class:`~spikewb.engine.frame.Frame`; after the last pattern of an epoch the
    network is evaluated with frozen weights (:meth:`evaluate`), the
    :class:`TaskEpoch` is appended to :attr:`history` and the epoch counter
    advances.  Apps drive it step by step from a worker thread and apply
    parameter changes between steps; :meth:`fit` runs whole epochs.

    Parameters
    ----------
    rule : NormAD
        Hyperparameters (may be changed between steps).
    task : SpikeTask
    seed : int
        Seeds the weights and the presentation order.
    hidden : sequence of int, optional
        Hidden sizes (default: the task's).
    shuffle : bool
        Present the patterns in a new random order each epoch.
    record : Record, optional
        Default recording for :meth:`step`: spikes and the potential of output
        neuron 0.

    Examples
    --------
    >>> from spikewb.engine.rules.normad import NormAD
    >>> tr = TaskTrainer(NormAD(), xor_task(), seed=1)
    >>> f = tr.step()
    >>> f.time_unit, f.layer_sizes
    ('ms', (30, 40, 1))
    """

    def __init__(self, rule, task: SpikeTask, seed: int = 0, hidden: Sequence[int] | None = None,
                 shuffle: bool = True, record: Record | None = None):
        self.rule = rule
        self.task = task
        self.seed = int(seed)
        self.arch = task.architecture(hidden)
        self.shuffle = shuffle
        n_layers = len(self.arch.sizes)
        self.record = record if record is not None else Record(neurons=((n_layers - 1, 0),), spikes=True)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Fresh weights from the seed, epoch 0."""
        self.model = self.rule.build(self.arch, np.random.default_rng(self.seed))
        self.order_rng = np.random.default_rng([self.seed, 1])
        self.order = self._new_order()
        self.position = 0
        self.steps = 0
        self.history: list[TaskEpoch] = []
        self._matched = 0
        self._seen = 0
        self._started = time.perf_counter()

    def _new_order(self) -> np.ndarray:
        n = self.task.n_patterns
        return self.order_rng.permutation(n) if self.shuffle else np.arange(n)

    @property
    def epoch(self) -> int:
        return self.model.epoch

    @property
    def converged(self) -> bool:
        """Whether the last evaluation solved every pattern."""
        return bool(self.history) and self.history[-1].converged

    @property
    def epochs_to_converge(self) -> int | None:
        """Number of training epochs after which every pattern was first solved."""
        for h in self.history:
            if h.converged:
                return h.epoch + 1
        return None

    # ------------------------------------------------------------------ steps
    def step(self, record: Record | None = None) -> Frame:
        """Present the next pattern with learning; the frame of that presentation."""
        record = self.record if record is None else record
        k = int(self.order[self.position])
        x, y = self.task.inputs[k], self.task.targets[k]
        frame = self.rule.train_step(self.model, x, y, record)
        out = SpikeTrains(frame.extras["output_t"], frame.extras["output_i"], y.n, y.duration)
        matched = spikes_match(out, y, self.task.tolerance)
        corr = correlation(out, y, self.task.corr_sigma)
        self._seen += 1
        self._matched += int(matched)
        last = self.history[-1].fraction_matched if self.history else float("nan")
        extras = dict(frame.extras)
        extras.update(correlation=np.float64(corr), matched=np.bool_(matched))
        frame = frame.replace(step=self.steps, epoch=self.model.epoch, index=k, label=int(self.task.labels[k]),
                              prediction=self.task.classify(out), accuracy=self._matched / self._seen,
                              test_accuracy=last, extras=extras)
        self._advance()
        return frame

    def step_quiet(self) -> int:
        """Present the next pattern with learning, no Frame (headless speed); its error events."""
        k = int(self.order[self.position])
        n_err = self.rule.learn(self.model, self.task.inputs[k], self.task.targets[k])
        self._seen += 1
        self._matched += int(n_err == 0)
        self._advance()
        return n_err

    def _advance(self) -> None:
        self.steps += 1
        self.position += 1
        if self.position >= self.task.n_patterns:
            self.end_epoch()

    def end_epoch(self) -> TaskEpoch:
        """Evaluate every pattern with frozen weights, log, advance the epoch."""
        self.model.check_finite()
        seconds = time.perf_counter() - self._started
        result = self.evaluate()
        result.seconds = seconds
        self.history.append(result)
        self.model.epoch += 1
        self.position = 0
        self.order = self._new_order()
        self._matched = self._seen = 0
        self._started = time.perf_counter()
        return result

    def outputs(self) -> list[SpikeTrains]:
        """Output trains of every pattern under the current weights (no learning)."""
        return [self.rule.respond(self.model, x)[-1] for x in self.task.inputs]

    def evaluate(self) -> TaskEpoch:
        """Metrics of every pattern under the current weights."""
        t = self.task
        outs = self.outputs()
        corr = np.array([correlation(o, y, t.corr_sigma) for o, y in zip(outs, t.targets)])
        dist = np.array([van_rossum_distance(o, y, t.vr_tau) for o, y in zip(outs, t.targets)])
        err = np.array([max(max_timing_error(o.neuron(q), y.neuron(q)) for q in range(y.n))
                        for o, y in zip(outs, t.targets)])
        matched = err <= t.tolerance + 1e-9
        return TaskEpoch(epoch=self.model.epoch, correlation=float(corr.mean()), distance=float(dist.mean()),
                         matched=matched, max_error=err, correlations=corr,
                         lr=self.rule.learning_rate(self.model.epoch), seconds=0.0)

    def run_epoch(self, callback: Callable[[Frame], Any] | None = None,
                  record: Record | None = None) -> TaskEpoch:
        """Finish the current epoch (all its remaining patterns); its evaluation.

        With no ``callback`` and a ``record`` that records nothing, the
        presentations build no Frames (:meth:`step_quiet`).
        """
        n_before = len(self.history)
        quiet = callback is None and record is not None and not record.any
        while len(self.history) == n_before:
            if quiet:
                self.step_quiet()
                continue
            frame = self.step(record)
            if callback is not None:
                callback(frame)
        return self.history[-1]

    def fit(self, epochs: int, callback: Callable[[Frame], Any] | None = None,
            on_epoch: Callable[[TaskEpoch], Any] | None = None, record: Record | None = None,
            stop_when_converged: bool = True) -> list[TaskEpoch]:
        """Train until ``epochs`` epochs are complete, or until converged.

        ``record`` defaults to no recording when no ``callback`` wants frames.
        """
        if epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {epochs}")
        if record is None and callback is None:
            record = RECORD_QUIET
        while self.model.epoch < epochs:
            res = self.run_epoch(callback, record)
            if on_epoch is not None:
                on_epoch(res)
            if stop_when_converged and res.converged:
                break
        return self.history

    def iter_frames(self, record: Record | None = None) -> Iterator[Frame]:
        """Endless frames, one per presentation (the live app's worker loop)."""
        while True:
            yield self.step(record)


def train_task(rule, task: SpikeTask, epochs: int, callback=None, seed: int = 0, on_epoch=None,
               stop_when_converged: bool = True, **trainer_kw) -> "TaskTrainer":
    """Train a fresh network of ``rule`` on ``task``; returns the :class:`TaskTrainer`.

    ``callback(frame)`` gets every presentation's Frame, ``on_epoch(TaskEpoch)``
    every epoch's evaluation.  Stops early when every pattern is matched
    (``stop_when_converged``).

    >>> tr = train_task(NormAD(), xor_task(seed=0), epochs=1)
    >>> len(tr.history)
    1
    """
    tr = TaskTrainer(rule, task, seed=seed, **trainer_kw)
    tr.fit(epochs, callback=callback, on_epoch=on_epoch, stop_when_converged=stop_when_converged)
    return tr


@dataclass
class TrialResult:
    """Outcome of one seeded training run (see :func:`run_trials`)."""

    seed: int
    converged: bool
    #: Epochs until every pattern was matched (None if never).
    epochs: int | None
    #: Correlation and fraction of matched patterns after the last epoch.
    correlation: float
    fraction_matched: float
    seconds: float


def run_trials(rule, make_task: Callable[[int], SpikeTask], seeds: Sequence[int], epochs: int,
               hidden: Sequence[int] | None = None) -> list[TrialResult]:
    """Train one fresh network per seed (task and weights both drawn from the seed).

    ``converged_fraction([r.converged for r in results])`` is the fraction of
    converged trials the NormAD papers report.
    """
    out = []
    for seed in seeds:
        t0 = time.perf_counter()
        tr = TaskTrainer(rule, make_task(seed), seed=seed, hidden=hidden)
        tr.fit(epochs, stop_when_converged=True)
        last = tr.history[-1]
        out.append(TrialResult(seed=int(seed), converged=tr.converged, epochs=tr.epochs_to_converge,
                               correlation=last.correlation, fraction_matched=last.fraction_matched,
                               seconds=time.perf_counter() - t0))
    return out
