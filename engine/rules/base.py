"""The learning-rule interface and the rule registry.

Every rule is a :class:`LearningRule` subclass registered under a short name.
The rule object holds hyperparameters only (declared once as ``param``
parameters with paper default, bounds, unit in the label and a doc line);
weights and state live in the :class:`~spikewb.engine.network.Model` that
:meth:`LearningRule.build` returns.  The shared surface:

``build(arch, rng) -> Model``
    Weights and state for an architecture.
``train_step(model, x, y, record) -> Frame``
    One forward pass, learning-signal computation and weight update.
``predict(model, X) -> ndarray``
    Batched class decisions (-1 where the rule's decision rule gives none).
``signals``
    Name of the per-neuron learning signal, for labelling views.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, ClassVar, Mapping

import numpy as np
import param

from spikewb.engine.errors import ConfigError
from spikewb.engine.frame import Frame, Record
from spikewb.engine.network import Architecture, Model
from spikewb.engine.network import layer_names as network_layer_names

log = logging.getLogger(__name__)

_REGISTRY: dict[str, type["LearningRule"]] = {}
#: Entry-point group through which other installed packages add rules.
ENTRY_POINT_GROUP = "spikewb.rules"
_PLUGINS_LOADED = False
_PLUGIN_LOCK = threading.Lock()
#: Plugins that could not be loaded: ``{entry point name: reason}`` (shown by ``spikewb rules``).
PLUGIN_ERRORS: dict[str, str] = {}


@dataclass(frozen=True)
class ArraySpec:
    """What one model-state array must look like (the schema a checkpoint is checked against).

    ``kind`` is ``"f"`` (floating point) or ``"i"`` (integer, signed or
    unsigned); a loaded array of the same kind is cast to ``dtype``.  ``lo`` /
    ``hi`` bound its values (inclusive); floating arrays must be finite.
    ``required`` arrays must be present in a checkpoint (those the rule's
    ``build`` creates); the others (state a rule creates lazily during
    training, e.g. look-ahead weights) may be absent.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    lo: float | None = None
    hi: float | None = None
    required: bool = True

    @property
    def kind(self) -> str:
        return "f" if np.dtype(self.dtype).kind == "f" else "i"

    @classmethod
    def like(cls, a: np.ndarray, **kw) -> "ArraySpec":
        return cls(tuple(int(n) for n in a.shape), np.dtype(a.dtype), **kw)


def label_in_range(y, n_out: int) -> int:
    """``y`` as a class index in ``0..n_out-1`` (kernels index with it); DataError otherwise."""
    from spikewb.engine.errors import DataError
    if isinstance(y, (bool, np.bool_)) or not isinstance(y, (int, np.integer)) or not 0 <= int(y) < n_out:
        raise DataError(f"label {y!r} outside 0..{n_out - 1}")
    return int(y)


def steps_per_sample(params: Mapping[str, Any], key: str = "?", event_driven: bool = False) -> int:
    """Clock steps one training sample costs, from a rule's parameter values.

    ``n_steps`` where the rule has one (Desire BP, SSNN-BP); ``t_sample / dt``
    for clock-driven rules (NormAD); 0 for event-driven rules, whose cost does
    not grow with a step count.  Anything else fails closed with
    :class:`ConfigError`, so no rule escapes a step limit by naming its clock
    differently.

    >>> steps_per_sample({"n_steps": 20}), steps_per_sample({"t_sample": 100.0, "dt": 0.1})
    (20, 1000)
    >>> steps_per_sample({"t_max": 30.0}, "multispike", event_driven=True)
    0
    """
    def whole(value, name: str) -> int:
        try:
            n = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} = {value!r} is not a number of time steps") from None
        if not n >= 0 or n > 1e12:                       # NaN fails the first comparison
            raise ConfigError(f"{name} = {value!r} is not a usable number of time steps")
        return int(n)

    if params.get("n_steps") is not None:
        return whole(params["n_steps"], "n_steps")
    t, dt = params.get("t_sample"), params.get("dt")
    if t is not None and dt is not None:
        t, dt = float(t), float(dt)
        if not (t >= 0 and dt > 0) or t / dt > 1e12:
            raise ConfigError(f"t_sample = {t} ms with dt = {dt} ms gives no usable number of time steps")
        return int(round(t / dt))
    if event_driven:
        return 0
    shown = ", ".join(n for n in sorted(params) if n not in ("name", "key"))[:200] or "none"
    raise ConfigError(f"cannot tell the time steps per sample of rule {key!r} (parameters: {shown}); "
                      "a rule without n_steps or t_sample/dt declares event_driven or overrides "
                      "LearningRule.time_steps")


def scheduled_lr(lr: float, schedule: str, decay: float, epoch: int) -> float:
    """The shared schedule: ``lr`` if ``schedule == "constant"``, else ``lr * exp(-decay * epoch)``."""
    if schedule == "constant":
        return float(lr)
    return float(lr * math.exp(-decay * epoch))


class LearningRule(param.Parameterized):
    """Base class of all learning rules: hyperparameters shared by every rule."""

    #: Short registry key ("desire", ...).
    key: ClassVar[str] = ""
    #: Name of the per-neuron learning signal the views show.
    signals: ClassVar[str] = "error"
    #: One-line description for menus.
    title: ClassVar[str] = ""
    #: Parameters whose change needs a new network (else applied live).
    structural: ClassVar[tuple[str, ...]] = ("dtype",)
    #: Hidden layer sizes used when none are given (the paper's network).
    default_hidden: ClassVar[tuple[int, ...]] = (1000, 100)
    #: What the rule trains on: "image" (classification through the Trainer) or "spikes".
    input_kind: ClassVar[str] = "image"
    #: Whether a sample's cost is set by spike events rather than a clock step count
    #: (then :meth:`time_steps` is 0 and only synapses and memory bound the network).
    event_driven: ClassVar[bool] = False
    #: Unit of spike times in this rule's Frames: "step" (clock-driven) or "ms".
    time_unit: ClassVar[str] = "step"
    #: What ``Frame.loss`` measures (the learning-curve label); a rule whose loss depends on
    #: its parameters overrides it with a property.
    loss_name: ClassVar[str] = "loss"
    #: Named paper configurations for ``spikewb train --preset NAME``: parameter values,
    #: plus ``hidden`` (layer sizes) and ``epochs`` where the paper gives them.
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    lr = param.Number(1e-3, bounds=(0.0, 10.0), softbounds=(0.0, 1e-2), step=1e-6,
                      label="Learning rate", doc="Base learning rate eta_0 (dimensionless).")
    lr_schedule = param.Selector(default="exponential", objects=["exponential", "constant"],
                                 label="LR schedule",
                                 doc="exponential: eta(e) = eta_0 exp(-decay e) per epoch e; "
                                     "constant: eta_0 throughout.")
    lr_decay = param.Number(0.0, bounds=(0.0, 10.0), softbounds=(0.0, 0.2), step=0.005,
                            label="LR decay (1/epoch)",
                            doc="Exponential learning-rate decay per epoch.")
    dtype = param.Selector(default="float32", objects=["float32", "float64"], label="Precision",
                           doc="Floating-point type of weights and potentials.")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)

    # -- helpers shared by all rules -------------------------------------------------
    def learning_rate(self, epoch: int) -> float:
        """Learning rate for ``epoch`` (0-based) under the schedule."""
        return scheduled_lr(self.lr, self.lr_schedule, self.lr_decay, epoch)

    @property
    def float_type(self) -> type:
        return np.float32 if self.dtype == "float32" else np.float64

    def config(self) -> dict:
        """Hyperparameters as a JSON-serialisable dict (for checkpoints and URLs)."""
        return {k: v for k, v in self.param.values().items() if k != "name"}

    def make_frame(self, model: Model, record: Record, *, label: int, prediction: int, loss: float, lr: float,
                   duration: float, counts, signal, signal_raw, dw_norm, target=None, spikes=None,
                   v_trace=None, i_trace=None, extras: Mapping[str, Any] | None = None,
                   layer_names: tuple[str, ...] | None = None, v_th: float | None = None) -> Frame:
        """The Frame of one training step, with every field that all rules fill alike.

        A rule hands over what its step computed; this fills in the rest the
        same way for every rule: ``epoch`` from the model, ``v_th`` (the rule's
        ``v_th`` unless given),
        ``signal_name`` (:attr:`signals`), ``time_unit``, ``loss_name``, the
        layer names and sizes, ``trace_ids`` from ``record``.  Per-layer
        sequences (``counts``, ``signal``, ``signal_raw``) may give one entry
        per neuron layer (the input's empty entry is added) or one per layer;
        ``None`` entries become zeros of the layer's size.  ``spikes`` is a
        ``(spike_t, spike_i)`` pair of per-layer event arrays (see
        :func:`~spikewb.engine.frame.raster_events`) and is dropped unless
        ``record.spikes``.  ``step`` and ``index`` are the trainer's to set.
        """
        sizes = tuple(int(n) for n in model.sizes)
        spike_t, spike_i = spikes if (spikes is not None and record.spikes) else ((), ())

        def per_layer(values, dtype):
            values = list(values)
            if len(values) == len(sizes) - 1:
                values = [None] + values
            if len(values) != len(sizes):
                raise ValueError(f"{len(values)} per-layer entries for {len(sizes)} layers")
            return tuple(np.zeros(0 if l == 0 else n, dtype) if v is None else np.asarray(v).astype(dtype, copy=False)
                         for l, (n, v) in enumerate(zip(sizes, values)))

        return Frame(
            step=0, epoch=int(model.epoch), index=-1, label=int(label), prediction=int(prediction),
            loss=float(loss), lr=float(lr), v_th=float(self.v_th if v_th is None else v_th),
            duration=float(duration),
            layer_names=layer_names or network_layer_names(len(sizes)), layer_sizes=sizes,
            counts=per_layer(counts, np.int32), signal=per_layer(signal, np.float32),
            signal_name=self.signals, signal_raw=per_layer(signal_raw, np.float32),
            dw_norm=tuple(float(v) for v in dw_norm),
            target=np.zeros(0, np.float32) if target is None else np.asarray(target, np.float32),
            spike_t=tuple(np.asarray(t).astype(np.float32, copy=False) for t in spike_t),
            spike_i=tuple(np.asarray(i).astype(np.int32, copy=False) for i in spike_i),
            trace_ids=np.array(record.neurons, np.int32).reshape(-1, 2),
            v_trace=np.zeros((0, 0), np.float32) if v_trace is None else v_trace,
            i_trace=np.zeros((0, 0), np.float32) if i_trace is None else i_trace,
            time_unit=self.time_unit, loss_name=self.loss_name, extras=dict(extras or {}),
        )

    # -- interface ------------------------------------------------------------------
    def build(self, arch: Architecture, rng: np.random.Generator) -> Model:
        raise NotImplementedError

    def train_step(self, model: Model, x: np.ndarray, y: int, record: Record | None = None) -> Frame:
        raise NotImplementedError

    def predict(self, model: Model, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def time_steps(self) -> int:
        """Clock steps one training sample costs: what a server's ``max_steps`` limit bounds.

        Read from ``n_steps`` or ``t_sample / dt``; 0 for :attr:`event_driven`
        rules; a rule that has neither overrides this (else ConfigError).
        """
        return steps_per_sample(self.param.values(), self.key, self.event_driven)

    def describe_network(self, model: Model) -> str:
        """The model's layers as a label, e.g. ``784-400-10`` (rules with other layer kinds,
        such as convolutions, override it)."""
        return "-".join(str(n) for n in model.sizes)

    def signal_threshold(self, layer: int, n_layers: int) -> float | None:
        """Threshold that turns layer ``layer``'s raw signal (``Frame.signal_raw``) into its
        learning signal (``Frame.signal``), for the views to draw; None where the rule has
        none (the default).  ``n_layers`` counts the input layer."""
        return None

    @classmethod
    def warm_kernels(cls) -> None:
        """Compile (or load from numba's cache) the kernels one short training step on
        images does not reach, e.g. a rule's spike-task mode; called by ``spikewb warm``
        and at server start.  Default: nothing."""

    def check_params(self) -> None:
        """Refuse combinations of hyperparameters the rule cannot run (raises ConfigError).

        Single values are checked by their declarations on assignment; this is
        for rules whose parameters constrain each other.  A session's
        ``validate`` calls it on the candidate rule before a change is applied,
        so a refused combination never reaches the training worker.
        """

    def state_schema(self, model: Model) -> dict[str, ArraySpec]:
        """Every state array a model of this rule may hold, with its shape, dtype and range.

        ``model`` is a freshly built model (:meth:`build`): its own state arrays
        are the schema (required, same shape and dtype kind, finite); rules that
        create more state while training add it (optional) in
        :meth:`extra_state_schema`.  Checkpoints are checked against this before
        any array reaches a kernel (:meth:`spikewb.engine.training.trainer.Trainer.load_state`).
        """
        schema = {k: ArraySpec.like(v) for k, v in model.state.items()}
        schema.update(self.extra_state_schema(model))
        return schema

    def extra_state_schema(self, model: Model) -> dict[str, ArraySpec]:
        """State arrays not made by :meth:`build` (created lazily while training), or
        tighter ranges for those that are; empty by default."""
        return {}

    def check_model(self, model: Model) -> None:
        """Refuse a model built by another rule or for other layer sizes."""
        if model.rule != self.key:
            raise ConfigError(f"model was built by rule {model.rule!r}, not {self.key!r}")


def register(cls: type[LearningRule]) -> type[LearningRule]:
    """Class decorator adding a rule to the registry under ``cls.key``."""
    if not (isinstance(cls, type) and issubclass(cls, LearningRule)):
        raise TypeError(f"{cls!r} is not a LearningRule subclass")
    if not cls.key:
        raise ValueError(f"{cls.__name__} has no short name")
    if cls.key in _REGISTRY and _REGISTRY[cls.key] is not cls:
        raise ValueError(f"a rule named {cls.key!r} is already registered ({_REGISTRY[cls.key].__name__})")
    _REGISTRY[cls.key] = cls
    return cls


def load_plugins() -> None:
    """Register the rules other installed packages declare in the ``spikewb.rules`` group (once).

    Each entry point names a :class:`LearningRule` subclass, e.g. in the plugin's
    ``pyproject.toml``::

        [project.entry-points."spikewb.rules"]
        toy = "toyrule:ToyRule"

    The class is registered under its own ``key``.  A plugin that fails to import,
    is not a rule, or takes a name that is already used is skipped with a logged
    warning (and listed in :data:`PLUGIN_ERRORS`): one broken package must not take
    the built-in rules down with it.
    """
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    with _PLUGIN_LOCK:
        if _PLUGINS_LOADED:
            return
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                register(ep.load())               # refuses non-rules and names already taken
            except Exception as exc:                      # noqa: BLE001 - any failure of foreign code
                PLUGIN_ERRORS[ep.name] = f"{type(exc).__name__}: {exc}"
                log.warning("rule plugin %r (%s) skipped: %s", ep.name, ep.value, exc)
        _PLUGINS_LOADED = True


def rule_names() -> list[str]:
    """Names of all registered rules (built-in and from installed plugins)."""
    load_plugins()
    return sorted(_REGISTRY)


def rule_class(name: str) -> type[LearningRule]:
    """The rule class registered as ``name``; an unknown name lists the valid ones."""
    load_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown learning rule {name!r}; available rules: "
                          f"{', '.join(rule_names()) or 'none'}") from None


def make_rule(name: str, **params) -> LearningRule:
    """Instantiate rule ``name`` with hyperparameters (unknown ones are refused)."""
    cls = rule_class(name)
    unknown = sorted(set(params) - set(cls.param))
    if unknown:
        raise ConfigError(f"rule {name!r} has no parameter(s) {unknown}; its parameters are "
                          f"{sorted(k for k in cls.param if k != 'name')}")
    try:
        return cls(**params)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
