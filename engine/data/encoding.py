r"""Spike encoders: turn intensities in [0, 1] into spike trains.

All encoders return ``uint8`` spike buffers with ``T + 1`` rows (see
:mod:`spikewb.engine.neurons.lif`): row ``t`` holds the spikes of step ``t``, the last row
is empty.  Intensities outside [0, 1] are rejected, NaN included.

* :func:`rate_deterministic` -- a non-leaky integrate-and-fire neuron per pixel
  with constant input ``p``: :math:`U \leftarrow U + p`, spike when
  :math:`U \ge 1`, then :math:`U \leftarrow U - 1`.  A pixel gives about
  :math:`\lfloor T p \rfloor` evenly spaced spikes (Desire BP's input layer).
* :func:`rate_bernoulli` -- independent Bernoulli spikes with probability
  ``p * max_rate`` per step.
* :func:`time_to_first_spike` -- one spike per pixel at ``t = t_max (1 - p)``
  (returned as times, not a buffer).
"""

from __future__ import annotations

import numpy as np

from spikewb.engine.config import njit
from spikewb.engine.errors import ConfigError, DataError


@njit
def _intensity_status(x):
    """0 if every ``x`` is finite and in [0, 1]; 1 if one is NaN or Inf; 2 if one is out of range."""
    bad_range = False
    for i in range(x.shape[0]):
        v = x[i]
        if not (v >= 0.0 and v <= 1.0):                  # NaN fails both comparisons
            if not np.isfinite(v):
                return 1
            bad_range = True
    return 2 if bad_range else 0


def _check_intensity(x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    x = np.ascontiguousarray(x, dtype=np.float32)
    status = _intensity_status(x.ravel())               # one pass; no temporaries for valid input
    if status == 1:
        raise DataError("input intensities contain NaN or Inf; expected values in [0, 1]")
    if status == 2:
        raise DataError(
            f"input intensities must lie in [0, 1]; got range [{x.min():.3g}, {x.max():.3g}]. "
            "Scale images by 1/255 first.")
    return x


@njit
def _rate_deterministic(x, n_steps, mask, out):
    """Write the rate code of ``x`` into every row of ``out`` (rows from ``n_steps`` on: 0).

    Branch-free and step-major: each step updates all potentials ``u`` (float32) and
    writes a whole row, ``u`` loses 1 where it fired and 0 elsewhere (``u - 0 == u``),
    so the spikes are bit-for-bit those of the per-pixel loop with a branch.  A masked
    pixel integrates like the others but its spikes are not written.
    """
    n = x.shape[0]
    one = np.float32(1.0)
    u = np.zeros(n, dtype=np.float32)
    for t in range(n_steps):
        row = out[t]
        for i in range(n):
            v = u[i] + np.float32(x[i])
            fire = v >= one
            row[i] = np.uint8(fire) & mask[i]
            u[i] = v - np.float32(fire)
    for t in range(n_steps, out.shape[0]):
        row = out[t]
        for i in range(n):
            row[i] = 0
    return out


def rate_deterministic(x, n_steps: int, mask=None, out=None) -> np.ndarray:
    """Deterministic rate code of a flat intensity vector.

    Parameters
    ----------
    x : array, shape (n,)
        Intensities in [0, 1] (``uint8`` images are divided by 255).
    n_steps : int
        Number of time steps ``T``.
    mask : uint8 array, shape (n,), optional
        Dropout mask; a masked input never spikes.

    Returns
    -------
    uint8 array, shape (T + 1, n)

    Examples
    --------
    >>> rate_deterministic(np.array([1.0, 0.5, 0.0]), 4)[:4].T.tolist()
    [[1, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 0]]
    """
    if n_steps < 1:
        raise ConfigError(f"n_steps must be >= 1, got {n_steps}")
    x = _check_intensity(x).ravel()
    if mask is None:
        mask = np.ones(x.shape[0], np.uint8)
    if out is None:
        out = np.empty((n_steps + 1, x.shape[0]), np.uint8)       # every row is written
    return _rate_deterministic(x, int(n_steps), mask, out)


def rate_bernoulli(x, n_steps: int, rng: np.random.Generator, max_rate: float = 1.0,
                   mask=None) -> np.ndarray:
    """Bernoulli spikes with probability ``x * max_rate`` per step.

    Returns a ``uint8`` buffer of shape ``(T + 1, n)`` (last row empty).
    """
    if not 0.0 <= max_rate <= 1.0:
        raise ConfigError(f"max_rate must lie in [0, 1], got {max_rate}")
    x = _check_intensity(x).ravel()
    out = np.zeros((n_steps + 1, x.shape[0]), np.uint8)
    out[:n_steps] = rng.random((n_steps, x.shape[0]), dtype=np.float32) < x * max_rate
    if mask is not None:
        out[:n_steps] &= np.asarray(mask, np.uint8)
    return out


def time_to_first_spike(x, t_max: float) -> np.ndarray:
    """Single-spike latency code ``t = t_max (1 - x)``; ``x == 0`` never fires (inf).

    Examples
    --------
    >>> time_to_first_spike(np.array([1.0, 0.25, 0.0]), 8.0).tolist()
    [0.0, 6.0, inf]
    """
    x = _check_intensity(x).ravel()
    t = (t_max * (1.0 - x)).astype(np.float32)
    t[x <= 0.0] = np.inf
    return t
