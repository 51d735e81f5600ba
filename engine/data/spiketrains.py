"""Spike trains as data: a compact multi-neuron container, distances between trains, Poisson trains.

Plain NumPy (and one numba kernel for the pairwise kernel sums); no learning
rule and no trainer lives here, so rules and tasks can both build on it.
Times are in ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from spikewb.engine.config import njit
from spikewb.engine.errors import ConfigError



@dataclass(frozen=True, eq=False)
class SpikeTrains:
    """Spike events of a population of ``n`` neurons in a window ``[0, duration)``.

    Parameters
    ----------
    t : float64 array (n_spikes,)
        Spike times in ms, ascending (ties ordered by neuron).
    i : int32 array (n_spikes,)
        Neuron index of each spike, ``0 <= i < n``.
    n : int
        Number of neurons.
    duration : float
        Window length in ms.

    Examples
    --------
    >>> s = SpikeTrains.from_lists([[5.0, 1.0], [], [3.0]], duration=10.0)
    >>> s.t.tolist(), s.i.tolist()
    ([1.0, 3.0, 5.0], [0, 2, 0])
    >>> s.neuron(0).tolist(), s.counts().tolist()
    ([1.0, 5.0], [2, 0, 1])
    """

    t: np.ndarray
    i: np.ndarray
    n: int
    duration: float

    def __post_init__(self):
        t = np.ascontiguousarray(self.t, dtype=np.float64).reshape(-1)
        i = np.ascontiguousarray(self.i, dtype=np.int32).reshape(-1)
        if t.shape != i.shape:
            raise ConfigError(f"spike times ({t.size}) and neuron indices ({i.size}) differ in length")
        if self.n < 0 or (i.size and (i.min() < 0 or i.max() >= self.n)):
            raise ConfigError(f"neuron indices must lie in 0..{self.n - 1}")
        if not np.all(np.isfinite(t)):
            raise ConfigError("spike times must be finite")
        if not (self.duration > 0):
            raise ConfigError(f"duration must be positive, got {self.duration}")
        order = np.lexsort((i, t))
        object.__setattr__(self, "t", t[order])
        object.__setattr__(self, "i", i[order])
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "duration", float(self.duration))
        object.__setattr__(self, "_rasters", {})

    @classmethod
    def from_lists(cls, trains: Sequence[Sequence[float]], duration: float) -> "SpikeTrains":
        """One list of spike times (ms) per neuron."""
        ts = [np.asarray(tr, dtype=np.float64).reshape(-1) for tr in trains]
        t = np.concatenate(ts) if ts else np.zeros(0)
        i = np.concatenate([np.full(len(tr), k, np.int32) for k, tr in enumerate(ts)]) if ts else np.zeros(0, np.int32)
        return cls(t, i, len(ts), duration)

    @classmethod
    def from_raster(cls, raster: np.ndarray, dt: float) -> "SpikeTrains":
        """From a (n_steps, n) 0/1 raster on a grid of ``dt`` ms (spike at ``step * dt``)."""
        steps, idx = np.nonzero(raster)
        return cls(steps * float(dt), idx, raster.shape[1], raster.shape[0] * float(dt))

    @classmethod
    def empty(cls, n: int, duration: float) -> "SpikeTrains":
        return cls(np.zeros(0), np.zeros(0, np.int32), n, duration)

    def __len__(self) -> int:
        return int(self.t.size)

    def neuron(self, k: int) -> np.ndarray:
        """Spike times (ms) of neuron ``k``, ascending."""
        return self.t[self.i == k]

    def to_lists(self) -> list[list[float]]:
        return [self.neuron(k).tolist() for k in range(self.n)]

    def counts(self) -> np.ndarray:
        """Spikes per neuron (int32, length ``n``)."""
        return np.bincount(self.i, minlength=self.n).astype(np.int32)

    def n_steps(self, dt: float) -> int:
        """Grid steps that cover the window at resolution ``dt``."""
        return int(round(self.duration / dt))

    def raster(self, dt: float, n_steps: int | None = None) -> np.ndarray:
        """0/1 uint8 raster (n_steps, n): spike at ``t`` goes to step ``round(t / dt)``.

        Spikes outside ``[0, n_steps)`` are dropped.  Two spikes of one neuron
        in the same step count once.  The array is cached per grid and
        read-only; copy it to modify.
        """
        n_steps = self.n_steps(dt) if n_steps is None else int(n_steps)
        key = (float(dt), n_steps)
        out = self._rasters.get(key)
        if out is None:
            out = np.zeros((n_steps, self.n), np.uint8)
            steps = np.rint(self.t / dt).astype(np.int64)
            ok = (steps >= 0) & (steps < n_steps)
            out[steps[ok], self.i[ok]] = 1
            out.flags.writeable = False
            if len(self._rasters) > 4:
                self._rasters.clear()
            self._rasters[key] = out
        return out

    def shifted(self, offset: float) -> "SpikeTrains":
        """The same trains with every spike moved by ``offset`` ms."""
        return SpikeTrains(self.t + offset, self.i, self.n, self.duration)


# =========================================================================== metrics

@njit
def _pair_kernel_sum(a, b, mode, scale):
    """``sum_{x in a, y in b} k(x - y)``; mode 0: ``exp(-d^2/scale)``, 1: ``exp(-|d|/scale)``.

    Both arrays ascending; pairs further apart than the kernel's reach
    (``|d| > 12 sqrt(scale)`` resp. ``40 scale``, contribution < 1e-17) are skipped.
    """
    reach = 12.0 * math.sqrt(scale) if mode == 0 else 40.0 * scale
    total = 0.0
    start = 0
    nb = b.shape[0]
    for x in a:
        while start < nb and b[start] < x - reach:
            start += 1
        k = start
        while k < nb and b[k] <= x + reach:
            d = x - b[k]
            if mode == 0:
                total += math.exp(-d * d / scale)
            else:
                total += math.exp(-abs(d) / scale)
            k += 1
    return total


def _times(x) -> np.ndarray:
    return np.sort(np.ascontiguousarray(x, dtype=np.float64).reshape(-1))


def correlation_times(a, b, sigma: float = 2.0) -> float:
    """Schreiber correlation of two single-neuron trains (times in ms).

    1.0 when both are empty, 0.0 when exactly one is.

    Examples
    --------
    >>> correlation_times([10.0, 30.0], [10.0, 30.0])
    1.0
    >>> round(correlation_times([10.0], [12.0], sigma=2.0), 4)   # exp(-4 / 16)
    0.7788
    """
    a, b = _times(a), _times(b)
    if a.size == 0 and b.size == 0:
        return 1.0
    if a.size == 0 or b.size == 0:
        return 0.0
    if sigma <= 0:
        raise ConfigError(f"correlation width sigma must be positive, got {sigma}")
    s = 4.0 * sigma * sigma
    kab = _pair_kernel_sum(a, b, 0, s)
    return float(min(1.0, kab / math.sqrt(_pair_kernel_sum(a, a, 0, s) * _pair_kernel_sum(b, b, 0, s))))


def van_rossum_times(a, b, tau: float = 5.0) -> float:
    """Van Rossum distance of two single-neuron trains (times in ms), see module Notes.

    Examples
    --------
    >>> round(van_rossum_times([], [10.0]) ** 2, 12)
    0.5
    >>> van_rossum_times([10.0], [10.0])
    0.0
    """
    a, b = _times(a), _times(b)
    if tau <= 0:
        raise ConfigError(f"van Rossum tau must be positive, got {tau}")
    d2 = 0.5 * (_pair_kernel_sum(a, a, 1, tau) + _pair_kernel_sum(b, b, 1, tau)
                - 2.0 * _pair_kernel_sum(a, b, 1, tau))
    return float(math.sqrt(max(d2, 0.0)))


def _check_pair(a: SpikeTrains, b: SpikeTrains) -> None:
    if a.n != b.n:
        raise ConfigError(f"cannot compare trains of {a.n} and {b.n} neurons")


def correlation(a: SpikeTrains, b: SpikeTrains, sigma: float = 2.0) -> float:
    """Mean over neurons of the Schreiber correlation (see :func:`correlation_times`)."""
    _check_pair(a, b)
    if a.n == 0:
        return 1.0
    return float(np.mean([correlation_times(a.neuron(k), b.neuron(k), sigma) for k in range(a.n)]))


def van_rossum_distance(a: SpikeTrains, b: SpikeTrains, tau: float = 5.0) -> float:
    """Population van Rossum distance ``sqrt(sum_k D_k^2)`` over neurons ``k``."""
    _check_pair(a, b)
    return float(math.sqrt(sum(van_rossum_times(a.neuron(k), b.neuron(k), tau) ** 2 for k in range(a.n))))


def max_timing_error(actual, desired) -> float:
    """Largest |t_actual - t_desired| after pairing in order; ``inf`` if the counts differ.

    >>> max_timing_error([10.2, 20.0], [10.0, 20.5])
    0.5
    """
    a, d = _times(actual), _times(desired)
    if a.size != d.size:
        return math.inf
    return float(np.max(np.abs(a - d))) if a.size else 0.0


def spikes_match(actual: SpikeTrains, desired: SpikeTrains, tol: float = 1.0) -> bool:
    """Every neuron fires exactly as many spikes as desired, each within ``tol`` ms."""
    _check_pair(actual, desired)
    return all(max_timing_error(actual.neuron(k), desired.neuron(k)) <= tol + 1e-9 for k in range(actual.n))


def converged_fraction(flags) -> float:
    """Fraction of true values (converged trials); NaN for an empty list.

    >>> converged_fraction([True, False, True, True])
    0.75
    """
    flags = np.asarray(list(flags), bool)
    return float(flags.mean()) if flags.size else float("nan")



def poisson_trains(rng: np.random.Generator, n: int, rate_hz: float, duration: float,
                   refractory: float = 0.0) -> SpikeTrains:
    """Homogeneous Poisson trains (rate in Hz, times in ms) with an optional dead time."""
    if rate_hz < 0:
        raise ConfigError(f"rate must be >= 0 Hz, got {rate_hz}")
    trains = []
    lam = rate_hz / 1000.0
    for _ in range(n):
        k = rng.poisson(lam * duration)
        t = np.sort(rng.uniform(0.0, duration, k))
        if refractory > 0 and t.size > 1:
            keep = [t[0]]
            for x in t[1:]:
                if x - keep[-1] >= refractory:
                    keep.append(x)
            t = np.array(keep)
        trains.append(t)
    return SpikeTrains.from_lists(trains, duration)
