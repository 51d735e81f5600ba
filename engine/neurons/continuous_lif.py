"""The continuous-time LIF neuron of NormAD (conductance units), with its closed-form f-I curve.

Used by the NormAD rule (:mod:`spikewb.engine.rules.normad`, whose layer kernel
integrates the same equation for whole layers) and by the teaching pages
(single-neuron demo).  Parameters are in the paper's units (pF, nS, mV, ms);
currents in nA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spikewb.engine.config import njit
from spikewb.engine.errors import ConfigError


@njit
def _lif_current_run(i_ext, rho, inv_gl, inv_tau, e_l, v_th, ref_steps, clamp, v_out, spk_out):
    """One continuous-time LIF neuron driven by a given current (same steps as NormAD's layer kernel).

    ``i_ext[n]`` (nA) is the current over ``[t_n, t_{n+1})``; ``v_out[n]`` is
    ``V(t_n)`` before the threshold test; ``spk_out[n] = 1`` marks a spike at
    ``t_n``.  Returns the number of spikes.
    """
    v = e_l
    ref = 0
    total = 0
    for n in range(i_ext.shape[0]):
        if ref > 0:
            ref -= 1
        elif n > 0:
            v_inf = e_l + i_ext[n - 1] * inv_gl
            v = v_inf + (v - v_inf) * rho
            if clamp and v < e_l:
                v = e_l
        v_out[n] = v
        if v >= v_th and ref == 0:
            spk_out[n] = 1
            total += 1
            v = e_l
            ref = ref_steps
    return total


@dataclass(frozen=True)
class ContinuousLIF:
    r"""The continuous-time LIF neuron of NormAD, with its closed-form f-I curve.

    Parameters are in the paper's units (pF, nS, mV, ms); currents in nA.
    The equations and the time stepping are in the Notes of
    :mod:`spikewb.engine.rules.normad` (the rule that uses this neuron); the
    layer kernel there steps the same way as :func:`_lif_current_run`.

    Examples
    --------
    >>> n = ContinuousLIF()
    >>> n.tau_m, round(n.rheobase, 6)           # C / g_L (ms), g_L (V_T - E_L) (nA)
    (10.0, 2.7)
    >>> round(n.rate(3.0), 2)                   # 1000 / (3 + 10 ln(3 / 0.3)) Hz
    38.42
    """

    c_m: float = 300.0
    g_l: float = 30.0
    e_l: float = -70.0
    v_th: float = 20.0
    t_ref: float = 3.0
    dt: float = 0.1
    integrator: str = "heun"
    clamp: bool = True

    @property
    def tau_m(self) -> float:
        """Membrane time constant ``C / g_L`` (ms)."""
        return self.c_m / self.g_l

    @property
    def rheobase(self) -> float:
        """Smallest constant current (nA) that makes the neuron fire: ``g_L (V_T - E_L)``."""
        return self.g_l * (self.v_th - self.e_l) * 1e-3

    @property
    def rho(self) -> float:
        """Per-step contraction of ``V - V_inf`` under the chosen integrator."""
        a = self.dt / self.tau_m
        if self.integrator == "exact":
            return math.exp(-a)
        return 1.0 - a + 0.5 * a * a

    @property
    def ref_steps(self) -> int:
        return int(round(self.t_ref / self.dt))

    def isi(self, current) -> np.ndarray:
        r"""Closed-form inter-spike interval (ms), inf at or below rheobase.

        :math:`t_{ref} + \tau_m \ln\frac{I}{I - I_{rh}}`: from reset at :math:`E_L`, the
        potential relaxes towards :math:`E_L + I/g_L` and reaches :math:`V_T` after
        :math:`\tau_m \ln\frac{I/g_L}{I/g_L - (V_T - E_L)}`.
        """
        i = np.asarray(current, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = self.t_ref + self.tau_m * np.log(i / (i - self.rheobase))
        return np.where(i > self.rheobase, out, np.inf)

    def rate(self, current) -> np.ndarray | float:
        """Closed-form firing rate (Hz) for a constant current (nA); 0 at or below rheobase."""
        r = 1000.0 / self.isi(current)
        return float(r) if np.ndim(r) == 0 else r

    def simulate(self, current, n_steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Potential (mV, before threshold and reset, per step) and spike times (ms).

        ``current`` is one value per step (nA, held over the step) or a scalar
        with ``n_steps``.
        """
        i = np.asarray(current, dtype=np.float64)
        if i.ndim == 0:
            if n_steps is None:
                raise ConfigError("a constant current needs n_steps")
            i = np.full(int(n_steps), float(i))
        i = np.ascontiguousarray(i.reshape(-1))
        v = np.zeros(i.size)
        s = np.zeros(i.size, np.uint8)
        _lif_current_run(i, self.rho, 1000.0 / self.g_l, 1.0 / self.tau_m, self.e_l, self.v_th,
                         self.ref_steps, self.clamp, v, s)
        return v, np.flatnonzero(s) * self.dt

    def simulated_rate(self, current: float, duration: float = 1000.0) -> float:
        """Firing rate (Hz) measured from the mean inter-spike interval of a simulation."""
        _, t = self.simulate(current, int(round(duration / self.dt)))
        if t.size < 2:
            return 0.0
        return float(1000.0 / np.mean(np.diff(t)))
