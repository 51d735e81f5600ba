"""Per-neuron inspection state: a sample-by-sample history and a replay buffer.

:class:`NeuronHistory` keeps, for one selected neuron, the learning signal of
**every** training sample (not only the published frames) in a bounded ring
buffer: the session's worker thread calls :meth:`NeuronHistory.observe` with
each Frame, which costs a few scalar reads.  :class:`ReplayBuffer` keeps the
last published snapshots so a paused page can scrub back through them.
Neither imports Panel; both are safe to use from two threads.
"""

from __future__ import annotations

import csv
import io
import threading
from collections import deque

import numpy as np

COLUMNS = ("step", "epoch", "index", "label", "prediction", "signal", "signal_raw", "count")


class NeuronHistory:
    """Ring buffer of one neuron's per-sample learning signal.

    Parameters
    ----------
    layer, index : int
        The neuron (layer 1..L, index within the layer).
    capacity : int
        Samples kept (oldest dropped first).
    """

    def __init__(self, layer: int, index: int, capacity: int = 500):
        self.layer = int(layer)
        self.index = int(index)
        self._lock = threading.Lock()
        self._rows: deque[tuple] = deque(maxlen=int(capacity))

    @property
    def capacity(self) -> int:
        return self._rows.maxlen or 0

    def resize(self, capacity: int) -> None:
        with self._lock:
            self._rows = deque(self._rows, maxlen=int(capacity))

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def observe(self, frame) -> None:
        """Record ``frame``'s values for this neuron (ignored if it has no such neuron)."""
        l, i = self.layer, self.index
        if l >= len(frame.signal) or i >= len(frame.signal[l]):
            return
        raw = frame.signal_raw[l][i] if l < len(frame.signal_raw) and i < len(frame.signal_raw[l]) else np.nan
        row = (frame.step, frame.epoch, frame.index, frame.label, frame.prediction,
               float(frame.signal[l][i]), float(raw), int(frame.counts[l][i]))
        with self._lock:
            self._rows.append(row)

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def arrays(self) -> dict[str, np.ndarray]:
        """The history as columns (oldest first)."""
        with self._lock:
            rows = list(self._rows)
        if not rows:
            return {c: np.zeros(0) for c in COLUMNS}
        data = np.array(rows, dtype=np.float64)
        return {c: data[:, k] for k, c in enumerate(COLUMNS)}

    def to_csv(self) -> str:
        """CSV text: one row per sample, with a header naming the neuron."""
        with self._lock:
            rows = list(self._rows)
        buf = io.StringIO()
        buf.write(f"# neuron layer {self.layer} index {self.index}\n")
        w = csv.writer(buf)
        w.writerow(COLUMNS)
        w.writerows(rows)
        return buf.getvalue()


class ReplayBuffer:
    """The last ``capacity`` published snapshots, oldest first."""

    def __init__(self, capacity: int = 100):
        self._lock = threading.Lock()
        self._items: deque = deque(maxlen=int(capacity))

    def push(self, snapshot) -> None:
        with self._lock:
            if self._items and self._items[-1] is snapshot:
                return
            self._items.append(snapshot)

    def resize(self, capacity: int) -> None:
        with self._lock:
            self._items = deque(self._items, maxlen=int(capacity))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def get(self, k: int):
        """Snapshot ``k`` (0 = oldest; negative counts from the newest)."""
        with self._lock:
            return self._items[k]

    def items(self) -> list:
        """All kept snapshots, oldest first (a copy)."""
        with self._lock:
            return list(self._items)
