"""Recordings: the frames of every N-th training sample as compact arrays, saved as one file.

A :class:`Recording` collects :class:`~spikewb.engine.frame.Frame` objects
(what :meth:`Trainer.step <spikewb.engine.training.trainer.Trainer.step>`
returns) and keeps, for every kept sample, its scalars (step, epoch, label,
prediction, loss, running accuracy, ...), the spike events (time, neuron) of
every layer, the per-neuron learning signal of every layer (thresholded and
raw), the norm of each weight layer's update and the potentials of the traced
neurons; plus the per-epoch history (:class:`EpochResult` rows).  It is what
the HoloViews plots of :mod:`spikewb.workbench.plots` draw, in a notebook or a
script, and what ``spikewb train --record N`` writes into the run folder.

Which Record to train with
--------------------------
A frame carries only what the :class:`~spikewb.engine.frame.Record` passed to
``trainer.step(record)`` / ``trainer.fit(..., record=...)`` asked for; with no
Record a frame has no spike events and no traces.  Use the recording's own
``rec.record`` (by default ``Record(spikes=True)``; for potentials name the
neurons, e.g. ``Record(spikes=True, neurons=((1, 0), (2, 3)))``: hidden
neuron 0 and output neuron 3).  There are three ways to feed a recording:

* ``trainer.fit(epochs, callback=rec, on_epoch=rec, record=rec.record)``:
  every sample is recorded, every N-th kept (simple; recording spikes and
  traces costs some time on every sample);
* :class:`RecordingTrainer` (a :class:`Trainer` with a ``recording``): only
  every N-th sample is recorded, the others run as fast as headless
  training; it also saves the recording whenever it saves a checkpoint (what
  ``spikewb train --record N`` uses);
* by hand: ``rec.add(trainer.step(rec.record))`` and ``rec.add_epoch(result)``.

File format
-----------
One NumPy ``.npz`` archive, read with ``allow_pickle=False`` and checked like
a checkpoint (:mod:`spikewb.engine.training.checkpoint`): member names,
dtypes and declared sizes before anything is allocated, then every offset
and index.  Members: ``meta`` (a JSON document: format, layers, names,
``every``, the Record, the epoch history, free ``info``); per-sample columns
``step epoch index label prediction`` (int64) and ``loss accuracy
test_accuracy lr v_th duration`` (float64); ``dw_norm`` (n, L) float64;
``signal_<l>`` and ``signal_raw_<l>`` (n, width) float32 for l = 1..L; the
ragged lists as flat arrays plus offsets: ``spike_t_<l>`` float32,
``spike_i_<l>`` int32 and ``spike_off_<l>`` (n + 1) int64 for l = 0..L;
``trace_ids`` (R, 2) int32 with ``trace_off`` (n + 1), ``trace_t`` float32
with ``time_off`` (n + 1), and ``v_trace`` float32 (sample k holds
``n_rec_k * T_k`` values, row-major).

Examples
--------
Record every 10th sample of one epoch on 60 digits (hidden neurons 0 and 1
and output neuron 3 traced):

>>> from spikewb.engine.data.datasets import load_dataset
>>> from spikewb.engine.frame import Record
>>> from spikewb.engine.network import Architecture
>>> from spikewb.engine.rules import make_rule
>>> from spikewb.engine.training.trainer import Trainer
>>> data = load_dataset("mnist-5k").subset(n_train=60, n_test=20)
>>> trainer = Trainer(make_rule("desire"), data, Architecture(n_inputs=784, hidden=[20], n_outputs=10))
>>> rec = Recording(every=10, record=Record(spikes=True, neurons=((1, 0), (1, 1), (2, 3))))
>>> _ = trainer.fit(1, callback=rec, on_epoch=rec, record=rec.record)
>>> len(rec), rec.steps.tolist(), len(rec.history)
(6, [0, 10, 20, 30, 40, 50], 1)
>>> t, neuron = rec.spikes(layer=2, sample=-1)   # output spikes of the last kept sample
>>> rec.traces(sample=0)[0].tolist()               # (layer, index) of the traced neurons
[[1, 0], [1, 1], [2, 3]]
>>> rec.signal(layer=1).shape                      # desire of the 20 hidden neurons per kept sample
(6, 20)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from spikewb.engine.errors import ConfigError, DataError
from spikewb.engine.frame import Frame, Record
from spikewb.engine.training.checkpoint import pop_meta, read_npz, write_npz
from spikewb.engine.training.trainer import EpochResult, Trainer

#: Format version written into every recording; bumped on incompatible change.
RECORDING_FORMAT = 1
#: Largest total size (bytes, as declared by the arrays' headers) read from one recording.
RECORDING_MAX_BYTES = 2 * 1024**3
#: Largest metadata document (characters); a long run's epoch history is a few hundred kB.
MAX_META_CHARS = 16 * 1024**2
#: Most layers (input included) a recording may describe.
MAX_LAYERS = 64

#: Per-sample scalar columns: name -> (Frame attribute, stored dtype).
_COLUMNS = {
    "step": ("step", np.int64), "epoch": ("epoch", np.int64), "index": ("index", np.int64),
    "label": ("label", np.int64), "prediction": ("prediction", np.int64),
    "loss": ("loss", np.float64), "accuracy": ("accuracy", np.float64),
    "test_accuracy": ("test_accuracy", np.float64), "lr": ("lr", np.float64),
    "v_th": ("v_th", np.float64), "duration": ("duration", np.float64),
}
_MEMBER = re.compile(r"^(meta|step|epoch|index|label|prediction|loss|accuracy|test_accuracy|lr|v_th|duration"
                     r"|dw_norm|signal_[0-9]{1,2}|signal_raw_[0-9]{1,2}|spike_[ti]_[0-9]{1,2}|spike_off_[0-9]{1,2}"
                     r"|trace_ids|trace_off|trace_t|time_off|v_trace)\.npy$")
_EMPTY_F = np.zeros(0, np.float32)
_EMPTY_I = np.zeros(0, np.int32)


class RecordingError(DataError):
    """A recording file cannot be read: missing, corrupt, truncated or not a recording."""


def trace_first(sizes: Iterable[int], n: int = 3) -> tuple[tuple[int, int], ...]:
    """The first ``n`` neurons of every non-input layer, as ``Record.neurons`` pairs.

    >>> trace_first([784, 20, 10], 2)
    ((1, 0), (1, 1), (2, 0), (2, 1))
    """
    sizes = list(sizes)
    return tuple((l, i) for l in range(1, len(sizes)) for i in range(min(int(n), int(sizes[l]))))


class Recording:
    """The frames of every ``every``-th training sample, as compact arrays.

    Parameters
    ----------
    every : int
        Keep the frames whose ``step`` (samples trained so far in the run,
        0-based) is a multiple of ``every``; ``every=1`` keeps all.
    record : Record, optional
        What the kept frames should carry; pass it to the trainer
        (``record=rec.record``) or use :class:`RecordingTrainer`.  Default:
        ``Record(spikes=True)`` (spike events, no potential traces).
    info : dict, optional
        Free JSON-serialisable description stored with the recording (rule,
        dataset, command line, ...).

    Notes
    -----
    Memory grows with every kept sample: spike events are a few bytes each
    (the input layer of a rate-coded digit has ~2,000 per sample), signals
    are two float32 per neuron.  Choose ``every`` so that a run keeps a few
    thousand samples, not all of them.

    Potentials (``traces``) are sampled after integration and before the
    threshold test (see :class:`~spikewb.engine.frame.Frame`), so a trace
    reaches the threshold where the neuron fires.
    """

    def __init__(self, every: int = 1, record: Record | None = None, info: dict | None = None):
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ConfigError(f"every must be an integer >= 1 (keep every N-th sample); got {every!r}")
        if record is not None and not isinstance(record, Record):
            raise ConfigError(f"record must be a spikewb Record, got {type(record).__name__}")
        self.every = int(every)
        self.record = record if record is not None else Record(spikes=True)
        self.info = dict(info or {})
        #: Per-epoch metrics of the run (``on_epoch=rec`` or :meth:`add_epoch`).
        self.history: list[EpochResult] = []
        self.layer_names: tuple[str, ...] = ()
        self.layer_sizes: tuple[int, ...] = ()
        self.signal_name = ""
        self.time_unit = "step"
        self.loss_name = "loss"
        self._widths: tuple[int, ...] = ()          # signal width per layer 1..L (size or 0)
        self._raw_widths: tuple[int, ...] = ()
        self._cols: dict[str, list] = {k: [] for k in _COLUMNS}
        self._dw: list[np.ndarray] = []
        self._sig: list[list[np.ndarray]] = []      # [layer 1..L][sample]
        self._raw: list[list[np.ndarray]] = []
        self._spk: list[list[tuple[np.ndarray, np.ndarray]]] = []   # [layer 0..L][sample]
        self._ids: list[np.ndarray] = []
        self._tt: list[np.ndarray] = []
        self._v: list[np.ndarray] = []
        self._cache: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------ collecting
    def wants(self, step: int) -> bool:
        """Whether the frame of training step ``step`` is kept."""
        return int(step) % self.every == 0

    def __call__(self, item) -> None:
        """Callback form: a Frame goes to :meth:`add`, an EpochResult to :meth:`add_epoch`."""
        if isinstance(item, EpochResult):
            self.add_epoch(item)
        else:
            self.add(item)

    def add_epoch(self, result: EpochResult) -> None:
        """Append one epoch's metrics to :attr:`history`."""
        if not isinstance(result, EpochResult):
            raise ConfigError(f"add_epoch takes an EpochResult, got {type(result).__name__}")
        self.history.append(result)

    def add(self, frame: Frame) -> bool:
        """Keep ``frame`` if its step is due (see ``every``); returns whether it was kept.

        The first kept frame fixes the network (layer sizes, names, signal
        widths); a frame of another network raises :class:`ConfigError`.
        """
        if not isinstance(frame, Frame):
            raise ConfigError(f"a Recording takes Frames (trainer.step's result), got {type(frame).__name__}")
        if not self.wants(frame.step):
            return False
        sizes = tuple(int(s) for s in frame.layer_sizes)
        n_layers = len(sizes)
        if len(frame.signal) != n_layers or len(frame.signal_raw) != n_layers or len(frame.dw_norm) != n_layers - 1:
            raise ConfigError(f"frame of step {frame.step} is malformed: {n_layers} layers but "
                              f"{len(frame.signal)} signals and {len(frame.dw_norm)} weight-update norms")
        widths = tuple(len(frame.signal[l]) for l in range(1, n_layers))
        raw_widths = tuple(len(frame.signal_raw[l]) for l in range(1, n_layers))
        if not self.layer_sizes:
            self._layout(sizes, tuple(frame.layer_names), widths, raw_widths, frame.signal_name,
                         frame.time_unit, frame.loss_name)
        elif sizes != self.layer_sizes or widths != self._widths or raw_widths != self._raw_widths:
            raise ConfigError(f"this recording holds the network {'-'.join(map(str, self.layer_sizes))}; the frame "
                              f"of step {frame.step} comes from {'-'.join(map(str, sizes))} (or has other signal "
                              "widths): start a new Recording for another network")
        for name, (attr, _) in _COLUMNS.items():
            self._cols[name].append(getattr(frame, attr))
        self._dw.append(np.array(frame.dw_norm, np.float64))
        for l in range(1, n_layers):
            self._sig[l - 1].append(np.array(frame.signal[l], np.float32).reshape(-1))
            self._raw[l - 1].append(np.array(frame.signal_raw[l], np.float32).reshape(-1))
        has_spikes = len(frame.spike_t) == n_layers and len(frame.spike_i) == n_layers
        for l in range(n_layers):
            if has_spikes:
                t = np.array(frame.spike_t[l], np.float32).reshape(-1)
                i = np.array(frame.spike_i[l], np.int32).reshape(-1)
            else:
                t, i = _EMPTY_F, _EMPTY_I
            self._spk[l].append((t, i))
        ids = np.array(frame.trace_ids, np.int32).reshape(-1, 2)
        v = np.array(frame.v_trace, np.float32)
        if v.ndim != 2 or v.shape[0] != len(ids):
            v = np.zeros((len(ids), 0), np.float32)
        n_t = v.shape[1]
        extras = frame.extras if hasattr(frame.extras, "get") else {}
        grid = extras.get("trace_t")
        if grid is not None and np.ndim(grid) == 1 and len(grid) == n_t:
            grid = np.array(grid, np.float32)
        else:  # discrete rules: one point per step; others: evenly over the sample's duration
            grid = (np.arange(n_t, dtype=np.float64) * (float(frame.duration) / n_t if n_t else 1.0)).astype(np.float32)
        self._ids.append(ids)
        self._tt.append(grid)
        self._v.append(v)
        self._cache.clear()
        return True

    def _layout(self, sizes, names, widths, raw_widths, signal_name, time_unit, loss_name) -> None:
        self.layer_sizes = tuple(sizes)
        self.layer_names = tuple(str(n) for n in names) if len(names) == len(sizes) else tuple(
            f"layer {l}" for l in range(len(sizes)))
        self._widths, self._raw_widths = tuple(widths), tuple(raw_widths)
        self.signal_name, self.time_unit, self.loss_name = str(signal_name), str(time_unit), str(loss_name)
        n_layers = len(sizes)
        self._sig = [[] for _ in range(n_layers - 1)]
        self._raw = [[] for _ in range(n_layers - 1)]
        self._spk = [[] for _ in range(n_layers)]

    def truncate(self, steps: int, epochs: int | None = None) -> None:
        """Drop the samples with ``step >= steps`` (and epochs numbered ``>= epochs``).

        A resumed run calls this with the checkpoint's position, so a
        recording saved after its checkpoint never holds a sample twice.
        """
        keep = [k for k, s in enumerate(self._cols["step"]) if s < steps]
        if len(keep) != len(self):
            take = lambda lst: [lst[k] for k in keep]  # noqa: E731
            self._cols = {name: take(vals) for name, vals in self._cols.items()}
            self._dw = take(self._dw)
            self._sig = [take(s) for s in self._sig]
            self._raw = [take(s) for s in self._raw]
            self._spk = [take(s) for s in self._spk]
            self._ids, self._tt, self._v = take(self._ids), take(self._tt), take(self._v)
            self._cache.clear()
        if epochs is not None:
            self.history = [h for h in self.history if h.epoch < epochs]

    # ------------------------------------------------------------- reading
    def __len__(self) -> int:
        return len(self._cols["step"])

    @property
    def n_samples(self) -> int:
        """Number of kept samples."""
        return len(self)

    @property
    def n_layers(self) -> int:
        """Number of layers including the input (0 before the first frame)."""
        return len(self.layer_sizes)

    def __repr__(self) -> str:
        net = "-".join(map(str, self.layer_sizes)) or "no frames yet"
        return f"Recording({len(self)} samples, every {self.every}, network {net}, {len(self.history)} epochs)"

    def _column(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = np.array(self._cols[name], _COLUMNS[name][1]).reshape(-1)
        return self._cache[name]

    #: Training step of each kept sample (int64).
    steps = property(lambda self: self._column("step"))
    #: Epoch of each kept sample (int64).
    epochs = property(lambda self: self._column("epoch"))
    #: Index of each kept sample in the training set (int64).
    indices = property(lambda self: self._column("index"))
    #: True class of each kept sample (int64).
    labels = property(lambda self: self._column("label"))
    #: Predicted class of each kept sample, -1 where the rule gives none (int64).
    predictions = property(lambda self: self._column("prediction"))
    #: Loss of each kept sample (float64, the rule's ``loss_name``).
    loss = property(lambda self: self._column("loss"))
    #: Running training accuracy of the epoch at each kept sample (fraction, float64).
    accuracy = property(lambda self: self._column("accuracy"))
    #: Test accuracy after the last completed epoch, at each kept sample (NaN before the first).
    test_accuracy = property(lambda self: self._column("test_accuracy"))
    #: Learning rate at each kept sample.
    lr = property(lambda self: self._column("lr"))
    #: Firing threshold at each kept sample (rule units).
    v_th = property(lambda self: self._column("v_th"))
    #: Duration of each kept sample (``time_unit``).
    duration = property(lambda self: self._column("duration"))

    @property
    def dw_norm(self) -> np.ndarray:
        """Frobenius norm of each weight layer's update, shape (n_samples, L), float64."""
        if "dw_norm" not in self._cache:
            self._cache["dw_norm"] = (np.stack(self._dw) if self._dw
                                      else np.zeros((0, max(self.n_layers - 1, 0)), np.float64))
        return self._cache["dw_norm"]

    def _layer(self, layer: int, lo: int = 1) -> int:
        if not self.layer_sizes:
            raise ConfigError("the recording is empty: no frame was kept yet")
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not lo <= layer < self.n_layers:
            raise ConfigError(f"layer must be an integer in {lo}..{self.n_layers - 1} "
                              f"({', '.join(f'{l}: {n}' for l, n in enumerate(self.layer_names) if l >= lo)}); "
                              f"got {layer!r}")
        return int(layer)

    def _sample(self, sample: int) -> int:
        n = len(self)
        if n == 0:
            raise ConfigError("the recording is empty: no frame was kept yet")
        if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) or not -n <= sample < n:
            raise ConfigError(f"sample must be a position among the {n} kept samples (-{n}..{n - 1}); got {sample!r}")
        return int(sample) % n

    def signal(self, layer: int) -> np.ndarray:
        """The learning signal (``signal_name``) of ``layer``, shape (n_samples, n_neurons), float32."""
        layer = self._layer(layer)
        return self._stacked(f"signal_{layer}", self._sig[layer - 1], self._widths[layer - 1])

    def signal_raw(self, layer: int) -> np.ndarray:
        """The real value the rule thresholded into :meth:`signal`, same shape."""
        layer = self._layer(layer)
        return self._stacked(f"signal_raw_{layer}", self._raw[layer - 1], self._raw_widths[layer - 1])

    def _stacked(self, key: str, rows: list[np.ndarray], width: int) -> np.ndarray:
        """``rows`` as one (n_samples, width) float32 array, kept until the next frame."""
        if key not in self._cache:
            self._cache[key] = np.stack(rows) if rows else np.zeros((0, width), np.float32)
        return self._cache[key]

    def spikes(self, layer: int, sample: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """(times float32 in ``time_unit``, neuron indices int32) of ``layer``'s spikes in one kept sample.

        Empty when the frames carried no spikes (``Record(spikes=False)``).
        """
        layer = self._layer(layer, lo=0)
        return self._spk[layer][self._sample(sample)]

    def traces(self, sample: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(trace_ids, t, v)`` of one kept sample.

        ``trace_ids`` is (n_rec, 2) int32 rows of (layer, index); ``t`` the
        (T,) float32 time grid in ``time_unit``; ``v`` the (n_rec, T) float32
        potentials (rule units), row k for ``trace_ids[k]``.
        """
        k = self._sample(sample)
        return self._ids[k], self._tt[k], self._v[k]

    # ---------------------------------------------------------------- files
    def _meta(self) -> dict[str, Any]:
        return {
            "format": RECORDING_FORMAT, "n_samples": len(self), "every": self.every,
            "layer_sizes": list(self.layer_sizes), "layer_names": list(self.layer_names),
            "signal_widths": list(self._widths), "signal_raw_widths": list(self._raw_widths),
            "signal_name": self.signal_name, "time_unit": self.time_unit, "loss_name": self.loss_name,
            "record": {"neurons": [list(map(int, p)) for p in self.record.neurons], "spikes": bool(self.record.spikes),
                       "weight_updates": bool(self.record.weight_updates), "flow": int(self.record.flow)},
            "history": [h.as_dict() for h in self.history], "info": self.info,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array of the file format (see the module docs), ``meta`` excluded."""
        out = {name: self._column(name) for name in _COLUMNS}
        if not self.layer_sizes:
            return out
        out["dw_norm"] = self.dw_norm
        for l in range(1, self.n_layers):
            out[f"signal_{l}"] = self.signal(l)
            out[f"signal_raw_{l}"] = self.signal_raw(l)
        for l in range(self.n_layers):
            ts = [t for t, _ in self._spk[l]]
            out[f"spike_t_{l}"] = np.concatenate(ts) if ts else _EMPTY_F
            out[f"spike_i_{l}"] = np.concatenate([i for _, i in self._spk[l]]) if ts else _EMPTY_I
            out[f"spike_off_{l}"] = _offsets(len(t) for t in ts)
        out["trace_ids"] = np.concatenate(self._ids) if self._ids else np.zeros((0, 2), np.int32)
        out["trace_off"] = _offsets(len(i) for i in self._ids)
        out["trace_t"] = np.concatenate(self._tt) if self._tt else _EMPTY_F
        out["time_off"] = _offsets(len(t) for t in self._tt)
        out["v_trace"] = np.concatenate([v.reshape(-1) for v in self._v]) if self._v else _EMPTY_F
        return out

    def save(self, path) -> Path:
        """Write the recording as one ``.npz`` atomically (temporary file, fsync, rename); returns the path."""
        return write_npz(path, self.arrays(), self._meta(), compress=True)

    @classmethod
    def load(cls, path, max_bytes: int = RECORDING_MAX_BYTES, name: str | None = None) -> "Recording":
        """Read a recording written by :meth:`save`; raises :class:`RecordingError` on any problem.

        Nothing is allocated before the archive's member names, dtypes and
        declared sizes are checked (at most ``max_bytes`` in all); then the
        metadata, every array's dtype and shape, every offset list (starts at
        0, never decreases, ends at its array's length) and every neuron index
        are checked.  ``name`` is how messages call the file (default: its
        base name).
        """
        path = Path(path)
        where = name if name is not None else path.name
        arrays = _read_arrays(path, max_bytes, where)
        return _from_arrays(cls, arrays, where)


def _offsets(lengths: Iterable[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.fromiter(lengths, np.int64))]).astype(np.int64)


def _split(a: np.ndarray, off: np.ndarray) -> list[np.ndarray]:
    """``a`` cut at the offsets ``off`` (n + 1 values): n pieces, one per sample."""
    return [a[lo:hi] for lo, hi in zip(off[:-1].tolist(), off[1:].tolist())]


# ------------------------------------------------------------------ reading files

def _read_arrays(path: Path, max_bytes: int, where: str) -> dict[str, np.ndarray]:
    return read_npz(path, member=_MEMBER, max_members=16 + 5 * MAX_LAYERS, max_bytes=max_bytes,
                    error=RecordingError, kind="recording",
                    members_hint="not a Spike Workbench recording",
                    made_by="Recording.save or `spikewb train --record N`", name=where)


def _int(meta: dict, key: str, where: str, lo: int, hi: int):
    v = meta.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise RecordingError(f"{where}: metadata {key!r} must be an integer in {lo}..{hi}; got {str(v)[:40]!r}")
    return v


def _text(meta: dict, key: str, where: str) -> str:
    v = meta.get(key)
    if not isinstance(v, str) or len(v) > 200:
        raise RecordingError(f"{where}: metadata {key!r} must be a short text; got {str(v)[:40]!r}")
    return v


def _int_list(v, where: str, key: str, n: int | None, lo: int, hi: int) -> list[int]:
    if (not isinstance(v, list) or (n is not None and len(v) != n)
            or any(isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi for x in v)):
        count = "" if n is None else f"{n} "
        raise RecordingError(f"{where}: metadata {key!r} must be a list of {count}integers in {lo}..{hi}; "
                             f"got {str(v)[:80]}")
    return v


def _history(rows, where: str) -> list[EpochResult]:
    keys = list(EpochResult.__dataclass_fields__)
    if not isinstance(rows, list):
        raise RecordingError(f"{where}: metadata 'history' must be a list of epoch rows")
    out = []
    for k, row in enumerate(rows):
        if not isinstance(row, dict) or sorted(row) != sorted(keys):
            raise RecordingError(f"{where}: epoch row {k} must have exactly the fields {keys}")
        for key in keys:
            v = row[key]
            ok = (isinstance(v, int) and not isinstance(v, bool) and v >= 0) if key in ("epoch", "samples") else (
                isinstance(v, (int, float)) and not isinstance(v, bool))
            if not ok:
                raise RecordingError(f"{where}: epoch row {k}: {key!r} must be a number; got {str(v)[:40]!r}")
        out.append(EpochResult(**row))
    return out


def _array(arrays: dict, key: str, where: str, kinds: str, dtype, shape: tuple) -> np.ndarray:
    """The array ``key``: present, of a dtype kind in ``kinds``, of ``shape`` (None: any length), as ``dtype``."""
    if key not in arrays:
        raise RecordingError(f"{where}: array {key!r} is missing")
    a = arrays.pop(key)
    if a.dtype.kind not in kinds:
        raise RecordingError(f"{where}: array {key!r} has dtype {a.dtype}; a recording stores it as {np.dtype(dtype)}")
    if a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape)):
        want = ", ".join("any" if s is None else str(s) for s in shape)
        want = f"({want},)" if len(shape) == 1 else f"({want})"
        raise RecordingError(f"{where}: array {key!r} has shape {a.shape}; expected {want}")
    if a.dtype.kind in "iu" and np.dtype(dtype).kind == "i" and a.size:
        info = np.iinfo(dtype)
        if a.min() < info.min or a.max() > info.max:
            raise RecordingError(f"{where}: array {key!r} holds values outside the {np.dtype(dtype)} range")
    return a.astype(dtype, copy=False)


def _offset_array(arrays: dict, key: str, where: str, n: int, total: int) -> np.ndarray:
    off = _array(arrays, key, where, "iu", np.int64, (n + 1,))
    if off[0] != 0 or off[-1] != total or np.any(np.diff(off) < 0):
        raise RecordingError(f"{where}: offsets {key!r} must start at 0, never decrease and end at {total} "
                             f"(the length of the array they index); got {off[0]}..{off[-1]}")
    return off


def _from_arrays(cls, arrays: dict[str, np.ndarray], where: str) -> Recording:
    meta = pop_meta(arrays, where, RecordingError, "recording", RECORDING_FORMAT, MAX_META_CHARS)
    n = _int(meta, "n_samples", where, 0, 2**40)
    every = _int(meta, "every", where, 1, 2**40)
    sizes = _int_list(meta.get("layer_sizes"), where, "layer_sizes", None, 1, 2**31 - 1)
    if len(sizes) == 1 or len(sizes) > MAX_LAYERS or (n > 0 and not sizes):
        raise RecordingError(f"{where}: metadata 'layer_sizes' must list 2..{MAX_LAYERS} layers; got {len(sizes)}")
    n_layers = len(sizes)
    names = meta.get("layer_names")
    if not isinstance(names, list) or len(names) != n_layers or any(
            not isinstance(s, str) or len(s) > 200 for s in names):
        raise RecordingError(f"{where}: metadata 'layer_names' must be {n_layers} short texts")
    L = max(n_layers - 1, 0)
    widths = _int_list(meta.get("signal_widths"), where, "signal_widths", L, 0, 2**31 - 1)
    raw_widths = _int_list(meta.get("signal_raw_widths"), where, "signal_raw_widths", L, 0, 2**31 - 1)
    for l, (w, rw) in enumerate(zip(widths, raw_widths), start=1):
        if w not in (0, sizes[l]) or rw not in (0, sizes[l]):
            raise RecordingError(f"{where}: signal widths of layer {l} ({w}, {rw}) must be 0 or the layer's "
                                 f"size {sizes[l]}")
    rec_meta = meta.get("record")
    if not isinstance(rec_meta, dict) or set(rec_meta) != {"neurons", "spikes", "weight_updates", "flow"}:
        raise RecordingError(f"{where}: metadata 'record' must hold neurons, spikes, weight_updates and flow")
    neurons = rec_meta["neurons"]
    if not isinstance(neurons, list) or len(neurons) > 10_000 or any(
            not isinstance(p, list) or len(p) != 2 or any(isinstance(x, bool) or not isinstance(x, int)
                                                          or not 0 <= x < 2**31 for x in p) for p in neurons):
        raise RecordingError(f"{where}: metadata record 'neurons' must be a list of [layer, index] pairs")
    if not isinstance(rec_meta["spikes"], bool) or not isinstance(rec_meta["weight_updates"], bool):
        raise RecordingError(f"{where}: metadata record 'spikes' and 'weight_updates' must be true or false")
    flow = rec_meta["flow"]
    if isinstance(flow, bool) or not isinstance(flow, int) or not 0 <= flow < 2**31:
        raise RecordingError(f"{where}: metadata record 'flow' must be an integer >= 0")
    info = meta.get("info")
    if not isinstance(info, dict):
        raise RecordingError(f"{where}: metadata 'info' must be a JSON object")
    record = Record(neurons=tuple((a, b) for a, b in neurons), spikes=rec_meta["spikes"],
                    weight_updates=rec_meta["weight_updates"], flow=flow)
    rec = cls(every=every, record=record, info=info)
    rec.history = _history(meta.get("history"), where)
    if n_layers:
        rec._layout(tuple(sizes), tuple(names), tuple(widths), tuple(raw_widths), _text(meta, "signal_name", where),
                    _text(meta, "time_unit", where), _text(meta, "loss_name", where))

    for name, (_, dtype) in _COLUMNS.items():
        col = _array(arrays, name, where, "iu" if np.dtype(dtype).kind == "i" else "fiu", dtype, (n,))
        rec._cols[name] = col.tolist()
    if n_layers:
        dw = _array(arrays, "dw_norm", where, "f", np.float64, (n, L))
        rec._dw = list(dw)
        for l in range(1, n_layers):
            sig = _array(arrays, f"signal_{l}", where, "f", np.float32, (n, widths[l - 1]))
            raw_sig = _array(arrays, f"signal_raw_{l}", where, "f", np.float32, (n, raw_widths[l - 1]))
            rec._sig[l - 1], rec._raw[l - 1] = list(sig), list(raw_sig)
        for l in range(n_layers):
            t = _array(arrays, f"spike_t_{l}", where, "f", np.float32, (None,))
            i = _array(arrays, f"spike_i_{l}", where, "iu", np.int32, (len(t),))
            off = _offset_array(arrays, f"spike_off_{l}", where, n, len(t))
            if len(i) and (i.min() < 0 or i.max() >= sizes[l]):
                raise RecordingError(f"{where}: spike neuron indices of layer {l} must lie in 0..{sizes[l] - 1}")
            if not np.all(np.isfinite(t)):
                raise RecordingError(f"{where}: spike times of layer {l} are not all finite")
            rec._spk[l] = list(zip(_split(t, off), _split(i, off)))
        ids = _array(arrays, "trace_ids", where, "iu", np.int32, (None, 2))
        trace_off = _offset_array(arrays, "trace_off", where, n, len(ids))
        if len(ids) and (ids[:, 0].min() < 0 or ids[:, 0].max() >= n_layers or ids[:, 1].min() < 0
                         or np.any(ids[:, 1] >= np.asarray(sizes)[ids[:, 0]])):
            raise RecordingError(f"{where}: traced neurons must be (layer, index) pairs inside the network "
                                 f"{'-'.join(map(str, sizes))}")
        tt = _array(arrays, "trace_t", where, "f", np.float32, (None,))
        time_off = _offset_array(arrays, "time_off", where, n, len(tt))
        v = _array(arrays, "v_trace", where, "f", np.float32, (None,))
        n_rec, n_t = np.diff(trace_off), np.diff(time_off)
        v_off = _offsets(n_rec * n_t)
        if v_off[-1] != len(v):
            raise RecordingError(f"{where}: 'v_trace' holds {len(v)} values; the traced neurons and time grids "
                                 f"declare {v_off[-1]}")
        rec._ids = _split(ids, trace_off)
        rec._tt = _split(tt, time_off)
        rec._v = [v[a:b].reshape(int(r), int(s)) for a, b, r, s in zip(v_off[:-1], v_off[1:], n_rec, n_t)]
    if arrays:
        raise RecordingError(f"{where}: unexpected arrays {sorted(arrays)[:5]} for a network of {n_layers} layers")
    return rec


# ------------------------------------------------------------------- training

class RecordingTrainer(Trainer):
    """A :class:`Trainer` that records every N-th sample into :attr:`recording`.

    On the steps the recording keeps, the step runs with ``recording.record``
    (merged with any Record the caller passes) and the frame is added; the
    other steps run with the caller's Record only (none: headless speed).
    Completed epochs go to the recording's history.  Whenever the trainer
    saves a checkpoint (every epoch in ``fit(checkpoint_dir=...)``, on
    Ctrl-C in ``spikewb train``) it also saves the recording to
    :attr:`recording_path`, if set, so the two files always agree.

    Examples
    --------
    >>> from spikewb.engine.data.datasets import load_dataset
    >>> from spikewb.engine.network import Architecture
    >>> from spikewb.engine.rules import make_rule
    >>> data = load_dataset("mnist-5k").subset(n_train=20, n_test=10)
    >>> trainer = RecordingTrainer(make_rule("desire"), data, Architecture(n_inputs=784, hidden=[10], n_outputs=10))
    >>> trainer.recording = Recording(every=5, record=Record(spikes=True, neurons=trace_first(trainer.model.sizes, 2)))
    >>> _ = trainer.fit(1)
    >>> trainer.recording.steps.tolist(), trainer.recording.traces()[0].tolist()
    ([0, 5, 10, 15], [[1, 0], [1, 1], [2, 0], [2, 1]])
    """

    #: The recording fed by :meth:`step` (None: records nothing, a plain Trainer).
    recording: Recording | None = None
    #: Where :meth:`save` also writes the recording (None: not written).
    recording_path: Path | None = None

    def step(self, record: Record | None = None) -> Frame:
        rec = self.recording
        if rec is None or not rec.wants(self.steps):
            return super().step(record)
        frame = super().step(_union(rec.record, record))
        rec.add(frame)
        return frame

    def step_batch(self, limit: int | None = None) -> list[Frame]:
        # a sample the recording keeps goes through step() (it records); the ones before it can
        # be trained together
        rec = self.recording
        if rec is None:
            return super().step_batch(limit)
        free = 0
        while free < (limit or rec.every) and not rec.wants(self.steps + free):
            free += 1
        return [self.step()] if free == 0 else super().step_batch(free)

    def end_epoch(self) -> EpochResult:
        result = super().end_epoch()
        if self.recording is not None:
            self.recording.add_epoch(result)
        return result

    def save(self, path) -> Path:
        out = super().save(path)
        if self.recording is not None and self.recording_path is not None:
            self.recording.save(self.recording_path)
        return out


def _union(a: Record, b: Record | None) -> Record:
    """A Record asking for everything ``a`` or ``b`` asks for."""
    if b is None or b == a:
        return a
    neurons = tuple(dict.fromkeys(tuple(a.neurons) + tuple(b.neurons)))
    return Record(neurons=neurons, spikes=a.spikes or b.spikes, weight_updates=a.weight_updates or b.weight_updates,
                  flow=max(a.flow, b.flow))
