r"""Random excitatory/inhibitory LIF networks: the CUBA and COBA benchmarks.

The two classic recurrent networks of Vogels & Abbott (2005) in the form of
Brette et al. (2007), benchmarks 1 (COBA) and 2 (CUBA): ``N`` = 4 000 leaky
integrate-and-fire neurons, the first 80 % excitatory, every ordered pair
connected independently with probability ``p`` = 0.02 (about 80 inputs per
neuron, 320 k synapses), no autapses, exponential synapses, refractory period
5 ms, time step 0.1 ms.

Equations (``v`` in mV, times in ms)
------------------------------------
CUBA, current-based; ``g_e``, ``g_i`` are currents expressed in mV:

.. math::

    \tau_m \dot v = (E_L + v_{ext} - v) + g_e + g_i, \quad
    \tau_e \dot g_e = -g_e, \quad \tau_i \dot g_i = -g_i

and a spike of an excitatory (inhibitory) neuron adds ``w_e`` (``w_i``, < 0)
to ``g_e`` (``g_i``) of each target.

COBA, conductance-based; ``g_e``, ``g_i`` are conductances in units of the
leak conductance :math:`g_L`, so :math:`\tau_m = C / g_L`:

.. math::

    \tau_m \dot v = (E_L + v_{ext} - v) + g_e (E_e - v) + g_i (E_i - v)

and a spike adds ``w_e`` (``w_i``, > 0) to ``g_e`` (``g_i``) of each target.

``v_ext`` is a constant external drive (mV): CUBA's benchmark value
:math:`E_L + v_{ext} = -49` mV is above threshold, so every neuron would fire
on its own; inhibition keeps the network asynchronous and irregular.

One time step ``t -> t + dt``, in Brian2's schedule (state update,
threshold, synaptic propagation, reset):

1. Integrate every neuron that is not refractory.  CUBA is integrated
   **exactly** (the linear system has a closed-form propagator):

   .. math::

       v \leftarrow E + (v - E) d_m + c_e g_e + c_i g_i, \quad
       d_x = e^{-dt/\tau_x}, \quad
       c_x = \frac{\tau_x}{\tau_x - \tau_m}(d_x - d_m)
       \;(= \tfrac{dt}{\tau_m} d_m \text{ if } \tau_x = \tau_m)

   with :math:`E = E_L + v_{ext}`.  COBA uses exponential Euler, exact for
   conductances held constant over the step:
   :math:`g = 1 + g_e + g_i`,
   :math:`v_\infty = (E + g_e E_e + g_i E_i)/g`,
   :math:`v \leftarrow v_\infty + (v - v_\infty) e^{-g\,dt/\tau_m}`.
   Conductances then decay exactly for everyone:
   :math:`g_e \leftarrow d_e g_e`, :math:`g_i \leftarrow d_i g_i`.
2. Threshold: a non-refractory neuron with ``v > v_th`` spikes.
3. Propagation, event-driven through a pre-major CSR matrix (``indptr``,
   ``indices``): each spiking neuron's row adds its weight to its targets'
   ``g_e`` or ``g_i`` (zero delay, seen by the next step's integration).
4. Reset ``v = v_reset``.  A neuron that fired at step ``k`` is held at
   ``v_reset`` during the updates of steps ``k+1 … k+n_ref-1`` with
   ``n_ref = round(t_ref/dt)`` and integrates again from step ``k+n_ref``;
   this is Brian2's ``timestep(t - lastspike) >= timestep(refractory)``.

Spikes are reported with the step index ``k`` (time ``k * dt`` relative to
the start of the run, as Brian2's ``SpikeMonitor`` does).

Simulation runs in chunks (:meth:`EINetwork.run`): one compiled call
advances many steps, so a UI thread can stream chunk by chunk while the
state stays in the :class:`EINetwork`.

References
----------
T. P. Vogels, L. F. Abbott, "Signal propagation and logic gating in networks
of integrate-and-fire neurons", J. Neurosci. 25 (2005) 10786-10795.

R. Brette et al., "Simulation of networks of spiking neurons: a review of
tools and strategies", J. Comput. Neurosci. 23 (2007) 349-398, appendix B
(benchmarks 1 and 2).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import param

from spikewb.engine.config import njit
from spikewb.engine.errors import ConfigError

MODELS = ("cuba", "coba")


# --------------------------------------------------------------------------- parameters
class EIParams(param.Parameterized):
    """Parameters shared by the CUBA and COBA networks (Brette et al. 2007)."""

    model = param.Selector(default="cuba", objects=list(MODELS), constant=True,
                           doc="Synapse model: 'cuba' (current-based) or 'coba' (conductance-based).")
    n_neurons = param.Integer(default=4000, bounds=(2, 1_000_000), label="Neurons",
                              doc="Number of neurons N (benchmark: 4000).")
    frac_exc = param.Number(default=0.8, bounds=(0.0, 1.0), label="Excitatory fraction",
                            doc="Fraction of excitatory neurons; they are the first round(N * frac_exc).")
    p_connect = param.Number(default=0.02, bounds=(0.0, 1.0), label="Connection probability",
                             doc="Probability of each ordered pair (no autapses) being connected "
                                 "(benchmark: 0.02, about 80 inputs per neuron).")
    dt = param.Number(default=0.1, bounds=(0.001, 1.0), label="Time step (ms)",
                      doc="Integration time step in ms (benchmark: 0.1 ms).")
    tau_m = param.Number(default=20.0, bounds=(0.5, 200.0), softbounds=(5.0, 50.0), label="Membrane time constant (ms)",
                         doc="tau_m = C / g_L in ms (Brette 2007: 20 ms).")
    tau_e = param.Number(default=5.0, bounds=(0.1, 100.0), softbounds=(0.5, 20.0), label="Excitatory synapse tau (ms)",
                         doc="Decay time constant of g_e in ms (Brette 2007: 5 ms).")
    tau_i = param.Number(default=10.0, bounds=(0.1, 100.0), softbounds=(0.5, 50.0), label="Inhibitory synapse tau (ms)",
                         doc="Decay time constant of g_i in ms (Brette 2007: 10 ms).")
    v_rest = param.Number(default=-60.0, bounds=(-100.0, 0.0), label="Resting potential E_L (mV)",
                          doc="Leak reversal potential E_L in mV (Brette 2007: -60 mV).")
    v_ext = param.Number(default=0.0, bounds=(-30.0, 40.0), softbounds=(0.0, 30.0), label="External drive (mV)",
                         doc="Constant external drive added to E_L, in mV (CUBA benchmark: 11 mV, "
                             "i.e. an effective rest of -49 mV, above threshold).")
    v_th = param.Number(default=-50.0, bounds=(-100.0, 0.0), label="Threshold (mV)",
                        doc="Spike when v > v_th, in mV (Brette 2007: -50 mV).")
    v_reset = param.Number(default=-60.0, bounds=(-100.0, 0.0), label="Reset (mV)",
                           doc="Potential after a spike and during refractoriness, in mV (-60 mV).")
    t_ref = param.Number(default=5.0, bounds=(0.0, 100.0), label="Refractory period (ms)",
                         doc="Absolute refractory period in ms (Brette 2007: 5 ms).")
    we = param.Number(default=1.62, bounds=(0.0, 50.0), label="Excitatory weight w_e",
                      doc="Increment of g_e per excitatory spike.")
    wi = param.Number(default=-9.0, bounds=(-100.0, 100.0), label="Inhibitory weight w_i",
                      doc="Increment of g_i per inhibitory spike.")
    seed = param.Integer(default=0, bounds=(0, 2**32 - 1), label="Seed",
                         doc="Seed of connectivity and initial potentials.")

    #: Parameters whose change needs a new network (connectivity / sizes).
    STRUCTURAL = ("n_neurons", "frac_exc", "p_connect", "seed", "dt")

    @property
    def n_exc(self) -> int:
        """Number of excitatory neurons (the first ``n_exc`` indices)."""
        return int(round(self.n_neurons * self.frac_exc))


class CUBA(EIParams):
    """Current-based E/I network, Brette et al. (2007) benchmark 2.

    ``w_e = 60 * 0.27 / 10 = 1.62`` mV and ``w_i = -20 * 4.5 / 10 = -9`` mV are
    Vogels & Abbott's conductance jumps times a typical driving force, divided
    by g_L = 10 nS.  Initial ``v`` uniform in [v_reset, v_th], ``g = 0``.
    """

    model = param.Selector(default="cuba", objects=list(MODELS), constant=True)
    v_ext = param.Number(default=11.0)
    we = param.Number(default=1.62, bounds=(0.0, 50.0), softbounds=(0.0, 10.0), label="Excitatory weight w_e (mV)",
                      doc="Jump of the excitatory current g_e per excitatory spike, in mV "
                          "(Brette 2007: 1.62 mV).")
    wi = param.Number(default=-9.0, bounds=(-100.0, 0.0), softbounds=(-60.0, 0.0), label="Inhibitory weight w_i (mV)",
                      doc="Jump of the inhibitory current g_i per inhibitory spike, in mV; negative "
                          "(Brette 2007: -9 mV).")


class COBA(EIParams):
    """Conductance-based E/I network, Brette et al. (2007) benchmark 1.

    ``w_e = 6 nS / 10 nS = 0.6`` and ``w_i = 67 nS / 10 nS = 6.7`` in units of
    g_L.  The drive ``v_ext = 20`` mV (effective rest -40 mV) and the initial
    ``v ~ N(-55, 5)`` mV with ``g = 0`` follow the COBA benchmark scripts used
    in simulator comparisons (Vitay et al. 2015, ANNarchy / Brian2 versions);
    Brette 2007 instead starts from random conductances without drive, which
    with this connectivity often falls silent.
    """

    model = param.Selector(default="coba", objects=list(MODELS), constant=True)
    v_ext = param.Number(default=20.0)
    we = param.Number(default=0.6, bounds=(0.0, 20.0), softbounds=(0.0, 3.0), label="Excitatory weight w_e (x g_L)",
                      doc="Jump of g_e per excitatory spike in units of g_L (Brette 2007: 6 nS / 10 nS).")
    wi = param.Number(default=6.7, bounds=(0.0, 100.0), softbounds=(0.0, 30.0), label="Inhibitory weight w_i (x g_L)",
                      doc="Jump of g_i per inhibitory spike in units of g_L (Brette 2007: 67 nS / 10 nS).")
    e_exc = param.Number(default=0.0, bounds=(-100.0, 100.0), label="Excitatory reversal E_e (mV)",
                         doc="Reversal potential of g_e in mV (0 mV).")
    e_inh = param.Number(default=-80.0, bounds=(-120.0, 0.0), label="Inhibitory reversal E_i (mV)",
                         doc="Reversal potential of g_i in mV (-80 mV).")


#: Named parameter sets of the CUBA network that put it in different regimes
#: (measured with seed 1, N = 4000, statistics after a 300 ms transient).
REGIMES = {
    # Brette 2007 benchmark 2 as published: ~5.5 Hz, ISI CV ~0.6 (Brian2 2.9 gives the same).
    "benchmark": dict(),
    # Strong, inhibition-dominated coupling: ~5 Hz, CV ~1, weak synchrony (asynchronous irregular).
    "asynchronous irregular": dict(we=5.0, wi=-45.0),
    # Uncoupled neurons driven above threshold: every neuron a clock at ~19 Hz, CV 0.
    "regular": dict(we=0.0, wi=0.0),
    # Slow inhibition: population oscillation, ~2.4 Hz per neuron, large population Fano factor.
    "oscillatory": dict(tau_i=40.0),
}


def make_params(model: str = "cuba", regime: str | None = None, **values) -> EIParams:
    """Parameters of the ``'cuba'`` or ``'coba'`` network with overrides.

    ``regime`` (CUBA only) starts from one of :data:`REGIMES`.

    >>> make_params("coba", we=0.5).we
    0.5
    >>> make_params("cuba", regime="regular").we
    0.0
    """
    if regime is not None:
        if model != "cuba" or regime not in REGIMES:
            raise ConfigError(f"unknown regime {regime!r} for model {model!r}; CUBA regimes: {list(REGIMES)}")
        values = {**REGIMES[regime], **values}
    classes = {"cuba": CUBA, "coba": COBA}
    if model not in classes:
        raise ConfigError(f"unknown E/I network model {model!r}; choose one of {list(classes)}")
    try:
        return classes[model](**values)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


# --------------------------------------------------------------------------- connectivity
def random_csr(n: int, p: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-probability random connectivity without autapses, pre-major CSR.

    Parameters
    ----------
    n : int
        Number of neurons.
    p : float
        Connection probability of each ordered pair ``(pre, post)``, ``pre != post``.
    rng : numpy.random.Generator

    Returns
    -------
    indptr : int64 array, shape (n + 1,)
        Row ``pre`` holds targets ``indices[indptr[pre]:indptr[pre + 1]]``.
    indices : int32 array, shape (n_synapses,)
        Target neurons, sorted within each row.
    """
    if n < 2 or p <= 0:
        return np.zeros(n + 1, np.int64), np.zeros(0, np.int32)
    counts = rng.binomial(n - 1, p, size=n)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.empty(indptr[-1], np.int32)
    for pre in range(n):
        k = counts[pre]
        if k == 0:
            continue
        tgt = np.sort(rng.choice(n - 1, size=k, replace=False))
        tgt += tgt >= pre  # skip the autapse
        indices[indptr[pre]:indptr[pre + 1]] = tgt
    return indptr, indices


# --------------------------------------------------------------------------- kernels
@njit
def _propagate(spiking, n_spk, indptr, indices, n_exc, we, wi, ge, gi):
    """Add ``we`` (``wi``) to ``ge`` (``gi``) of every target of each spiking neuron.

    Parameters
    ----------
    spiking : int32 array, shape (>= n_spk,)
        Indices of the neurons that fired this step.
    n_spk : int
        How many entries of ``spiking`` are valid.
    indptr, indices : CSR arrays (see :func:`random_csr`)
    n_exc : int
        Neurons ``< n_exc`` are excitatory.
    we, wi : float
        Weights of excitatory / inhibitory synapses.
    ge, gi : float64 arrays, shape (n,)
        Synaptic variables, updated in place.

    Returns
    -------
    int
        Number of synaptic events delivered.
    """
    events = 0
    for s in range(n_spk):
        pre = spiking[s]
        a = indptr[pre]
        b = indptr[pre + 1]
        events += b - a
        if pre < n_exc:
            for k in range(a, b):
                ge[indices[k]] += we
        else:
            for k in range(a, b):
                gi[indices[k]] += wi
    return events


@njit
def _run_chunk(coba, v, ge, gi, ref, indptr, indices, n_exc, n_steps,
               e_eff, d_m, d_e, d_i, c_e, c_i, dt_over_tau_m, e_exc, e_inh,
               v_th, v_reset, n_ref, we, wi,
               rec_idx, v_rec, spk_step, spk_idx, pop_count, spiking, stats):
    """Advance the network up to ``n_steps`` steps (schedule in the module docstring).

    Parameters
    ----------
    coba : bool
        False: CUBA exact propagator; True: COBA exponential Euler.
    v, ge, gi : float64 arrays, shape (n,)
        State (mV; mV or units of g_L), updated in place.
    ref : int32 array, shape (n,)
        Remaining refractory updates per neuron, updated in place.
    indptr, indices : int64 (n + 1,), int32 (n_syn,)
        Pre-major CSR connectivity.
    n_exc, n_steps : int
    e_eff : float
        ``E_L + v_ext`` (mV).
    d_m, d_e, d_i : float
        ``exp(-dt / tau)`` of membrane, excitatory and inhibitory synapse.
    c_e, c_i : float
        CUBA propagator coefficients of ``ge``, ``gi`` into ``v``.
    dt_over_tau_m : float
        ``dt / tau_m`` (COBA).
    e_exc, e_inh : float
        COBA reversal potentials (mV).
    v_th, v_reset : float
        Threshold and reset (mV).
    n_ref : int
        Refractory period in steps.
    we, wi : float
        Synaptic weights.
    rec_idx : int64 array, shape (n_rec,)
        Neurons whose potential is recorded.
    v_rec : float32 array, shape (n_rec, >= n_steps)
        Output: potential after integration, before reset (a spike shows as
        one sample above ``v_th``).
    spk_step, spk_idx : int32 arrays, shape (capacity,)
        Output: step (relative to this call) and neuron of each spike.
    pop_count : int32 array, shape (>= n_steps,)
        Output: number of spikes in each step.
    spiking : int32 array, shape (n,)
        Scratch.
    stats : int64 array, shape (2,)
        In: ``stats[0]`` spikes already in the buffers.  Out: ``stats[0]``
        spikes in the buffers, ``stats[1]`` += synaptic events delivered.

    Returns
    -------
    int
        Steps done; fewer than ``n_steps`` when the spike buffers could
        overflow in the next step (the caller drains them and calls again).
    """
    n = v.shape[0]
    cap = spk_step.shape[0]
    n_rec = rec_idx.shape[0]
    n_tot = stats[0]
    events = 0
    for t in range(n_steps):
        if n_tot + n > cap:
            stats[0] = n_tot
            stats[1] += events
            return t
        # 1. state update (branch-free selects so the loops vectorise)
        if coba:
            for i in range(n):
                r = ref[i]
                g = 1.0 + ge[i] + gi[i]
                v_inf = (e_eff + ge[i] * e_exc + gi[i] * e_inh) / g
                vn = v_inf + (v[i] - v_inf) * math.exp(-g * dt_over_tau_m)
                v[i] = vn if r == 0 else v[i]
                ref[i] = r - 1 if r > 0 else 0
                ge[i] *= d_e
                gi[i] *= d_i
        else:
            for i in range(n):
                r = ref[i]
                vn = e_eff + (v[i] - e_eff) * d_m + c_e * ge[i] + c_i * gi[i]
                v[i] = vn if r == 0 else v[i]
                ref[i] = r - 1 if r > 0 else 0
                ge[i] *= d_e
                gi[i] *= d_i
        for r in range(n_rec):
            v_rec[r, t] = v[rec_idx[r]]
        # 2. threshold (refractory neurons sit at v_reset < v_th unless v_reset > v_th)
        n_spk = 0
        for i in range(n):
            if v[i] > v_th and ref[i] == 0:
                spiking[n_spk] = i
                n_spk += 1
        pop_count[t] = n_spk
        # 3. propagation, 4. reset
        events += _propagate(spiking, n_spk, indptr, indices, n_exc, we, wi, ge, gi)
        for s in range(n_spk):
            i = spiking[s]
            v[i] = v_reset
            ref[i] = n_ref - 1 if n_ref > 0 else 0
            spk_step[n_tot] = t
            spk_idx[n_tot] = i
            n_tot += 1
    stats[0] = n_tot
    stats[1] += events
    return n_steps


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Chunk:
    """What one :meth:`EINetwork.run` call produced.

    Attributes
    ----------
    t0 : float
        Time of the first step of the chunk, ms since the last reset.
    dt : float
        Time step, ms.
    n_steps : int
        Steps simulated.
    spike_t : float64 array, shape (n_spikes,)
        Spike times in ms since the last reset (``step * dt``).
    spike_i : int32 array, shape (n_spikes,)
        Neuron of each spike, in time order.
    pop_count : int32 array, shape (n_steps,)
        Spikes per step; the population rate in Hz is
        ``pop_count / (n_neurons * dt * 1e-3)``.
    rec_idx : int64 array, shape (n_rec,)
        Recorded neurons.
    v_rec : float32 array, shape (n_rec, n_steps)
        Their potentials (mV) after integration, before reset, at times
        ``t0 + (k + 1) * dt`` (the end of step ``k``).
    n_events : int
        Synaptic events delivered in the chunk.
    wall : float
        Wall-clock seconds spent in the kernel.
    """

    t0: float
    dt: float
    n_steps: int
    spike_t: np.ndarray
    spike_i: np.ndarray
    pop_count: np.ndarray
    rec_idx: np.ndarray
    v_rec: np.ndarray
    n_events: int
    wall: float


# --------------------------------------------------------------------------- simulator
class EINetwork:
    """A built E/I network with its state, simulated chunk by chunk.

    Parameters
    ----------
    params : EIParams, optional
        :class:`CUBA` (default) or :class:`COBA` parameters.  Non-structural
        values (weights, drive, time constants, threshold, reset, refractory
        period) are read at every :meth:`run` call, so changing them between
        chunks applies live; structural ones (:attr:`EIParams.STRUCTURAL`) need
        :meth:`rebuild`.

    Examples
    --------
    >>> net = EINetwork(make_params("cuba", n_neurons=200, p_connect=0.1, seed=1))
    >>> chunk = net.run(50.0, record=[0, 1])
    >>> chunk.n_steps, chunk.v_rec.shape
    (500, (2, 500))
    """

    def __init__(self, params: EIParams | None = None):
        self.params = params if params is not None else CUBA()
        self.rebuild()

    # -- construction
    def rebuild(self) -> None:
        """Draw connectivity and initial state from ``params.seed``."""
        p = self.params
        if p.n_neurons * p.n_neurons * p.p_connect > 5e8:
            raise ConfigError(f"n_neurons={p.n_neurons} with p_connect={p.p_connect} would create "
                              f"about {p.n_neurons ** 2 * p.p_connect:.3g} synapses; reduce one of them")
        self._built_from = {k: getattr(p, k) for k in EIParams.STRUCTURAL}
        rng = np.random.default_rng(p.seed)
        self.indptr, self.indices = random_csr(p.n_neurons, p.p_connect, rng)
        self._init_rng_state = rng.bit_generator.state
        self.reset()

    def reset(self) -> None:
        """Back to the initial state drawn at build time (same connectivity)."""
        p = self.params
        n = p.n_neurons
        rng = np.random.default_rng()
        rng.bit_generator.state = self._init_rng_state
        self.ge = np.zeros(n)
        self.gi = np.zeros(n)
        if p.model == "coba":
            self.v = rng.normal(p.v_rest + 5.0, 5.0, n)
        else:
            self.v = p.v_reset + rng.random(n) * (p.v_th - p.v_reset)
        self.ref = np.zeros(n, np.int32)
        self.step = 0
        self.n_spikes = 0
        self.n_events = 0
        self._spiking = np.empty(n, np.int32)
        self._cap = max(4 * n, 65536)
        self._spk_step = np.empty(self._cap, np.int32)
        self._spk_idx = np.empty(self._cap, np.int32)

    @property
    def needs_rebuild(self) -> bool:
        """True when a structural parameter changed since the last build."""
        return any(getattr(self.params, k) != v for k, v in self._built_from.items())

    @property
    def n_synapses(self) -> int:
        return int(self.indptr[-1])

    @property
    def time(self) -> float:
        """Simulated time since the last reset, ms."""
        return self.step * self._built_from["dt"]

    # -- coefficients
    def coefficients(self) -> dict:
        """Per-step constants of the integration, from the current parameters."""
        p = self.params
        dt = self._built_from["dt"]
        d_m = math.exp(-dt / p.tau_m)
        d_e = math.exp(-dt / p.tau_e)
        d_i = math.exp(-dt / p.tau_i)

        def coef(tau, d):
            if abs(tau - p.tau_m) < 1e-12:
                return dt / p.tau_m * d_m
            return tau / (tau - p.tau_m) * (d - d_m)

        return dict(e_eff=p.v_rest + p.v_ext, d_m=d_m, d_e=d_e, d_i=d_i, c_e=coef(p.tau_e, d_e),
                    c_i=coef(p.tau_i, d_i), dt_over_tau_m=dt / p.tau_m,
                    e_exc=getattr(p, "e_exc", 0.0), e_inh=getattr(p, "e_inh", 0.0),
                    n_ref=int(round(p.t_ref / dt)))

    # -- simulation
    def run(self, duration: float, record=()) -> Chunk:
        """Simulate ``duration`` ms (rounded to whole steps) from the current state.

        Parameters
        ----------
        duration : float
            Biological time in ms.
        record : sequence of int
            Neurons whose potential is recorded (costs ``4 * len(record)``
            bytes per step).

        Returns
        -------
        Chunk
        """
        if self.needs_rebuild:
            raise ConfigError("a structural parameter (size, connectivity, seed or dt) changed; "
                              "call rebuild() before run()")
        p = self.params
        dt = self._built_from["dt"]
        n_steps = int(round(duration / dt))
        if n_steps < 0:
            raise ConfigError(f"duration must be >= 0 ms, got {duration}")
        rec_idx = np.asarray(record, dtype=np.int64).reshape(-1)
        if rec_idx.size and (rec_idx.min() < 0 or rec_idx.max() >= p.n_neurons):
            raise ConfigError(f"recorded neurons must lie in [0, {p.n_neurons}), got {rec_idx.tolist()}")
        c = self.coefficients()
        v_rec = np.empty((rec_idx.size, n_steps), np.float32)
        pop = np.empty(n_steps, np.int32)
        stats = np.zeros(2, np.int64)
        steps_t, idx_parts = [], []
        done = 0
        t_wall = time.perf_counter()
        while True:
            stats[0] = 0
            got = _run_chunk(p.model == "coba", self.v, self.ge, self.gi, self.ref, self.indptr, self.indices,
                             p.n_exc, n_steps - done, c["e_eff"], c["d_m"], c["d_e"], c["d_i"], c["c_e"],
                             c["c_i"], c["dt_over_tau_m"], c["e_exc"], c["e_inh"], p.v_th, p.v_reset,
                             c["n_ref"], p.we, p.wi, rec_idx, v_rec[:, done:], self._spk_step, self._spk_idx,
                             pop[done:], self._spiking, stats)
            k = int(stats[0])
            steps_t.append(self._spk_step[:k] + (self.step + done))
            idx_parts.append(self._spk_idx[:k].copy())
            done += got
            if done >= n_steps:
                break
        wall = time.perf_counter() - t_wall
        spike_steps = np.concatenate(steps_t) if steps_t else np.zeros(0, np.int64)
        spike_i = np.concatenate(idx_parts) if idx_parts else np.zeros(0, np.int32)
        t0 = self.step * dt
        self.step += n_steps
        self.n_spikes += spike_i.size
        self.n_events += int(stats[1])
        return Chunk(t0=t0, dt=dt, n_steps=n_steps, spike_t=spike_steps.astype(np.float64) * dt,
                     spike_i=spike_i, pop_count=pop, rec_idx=rec_idx, v_rec=v_rec,
                     n_events=int(stats[1]), wall=wall)


def simulate(params: EIParams | None = None, duration: float = 1000.0, record=()) -> Chunk:
    """Build a network from ``params`` and run it for ``duration`` ms in one chunk."""
    return EINetwork(params).run(duration, record)


# --------------------------------------------------------------------------- statistics
def firing_rates(spike_i: np.ndarray, n_neurons: int, duration: float) -> np.ndarray:
    """Per-neuron firing rate in Hz.

    Parameters
    ----------
    spike_i : int array
        Neuron of each spike.
    n_neurons : int
    duration : float
        Observation window in ms.

    >>> firing_rates(np.array([0, 0, 1]), 3, 1000.0).tolist()
    [2.0, 1.0, 0.0]
    """
    counts = np.bincount(np.asarray(spike_i, np.int64), minlength=n_neurons)[:n_neurons]
    return counts / (duration * 1e-3)


def isi_cv(spike_t: np.ndarray, spike_i: np.ndarray, n_neurons: int, min_spikes: int = 3) -> np.ndarray:
    """Coefficient of variation (std / mean) of each neuron's inter-spike intervals.

    Neurons with fewer than ``min_spikes`` spikes get NaN.  A Poisson process
    has CV 1, a clock CV 0.

    >>> t = np.array([0., 10., 20., 30., 0., 1., 30.])
    >>> i = np.array([0, 0, 0, 0, 1, 1, 1])
    >>> np.round(isi_cv(t, i, 3), 3).tolist()
    [0.0, 0.933, nan]
    """
    t, i = _sorted_by_neuron(spike_t, spike_i)
    cv = np.full(n_neurons, np.nan)
    if t.size == 0:
        return cv
    isi, owner = _isis(t, i)
    n_isi = np.bincount(owner, minlength=n_neurons)
    s1 = np.bincount(owner, weights=isi, minlength=n_neurons)
    s2 = np.bincount(owner, weights=isi * isi, minlength=n_neurons)
    ok = n_isi >= max(min_spikes - 1, 1)
    mean = s1[ok] / n_isi[ok]
    var = np.maximum(s2[ok] / n_isi[ok] - mean * mean, 0.0)
    cv[ok] = np.sqrt(var) / np.where(mean > 0, mean, np.nan)
    return cv


def isis(spike_t: np.ndarray, spike_i: np.ndarray) -> np.ndarray:
    """All inter-spike intervals (ms) of all neurons, concatenated."""
    t, i = _sorted_by_neuron(spike_t, spike_i)
    return _isis(t, i)[0] if t.size else np.zeros(0)


def _sorted_by_neuron(spike_t, spike_i):
    t = np.asarray(spike_t, np.float64)
    i = np.asarray(spike_i, np.int64)
    order = np.lexsort((t, i))
    return t[order], i[order]


def _isis(t, i):
    same = i[1:] == i[:-1]
    return (t[1:] - t[:-1])[same], i[1:][same]


def population_rate(pop_count: np.ndarray, n_neurons: int, dt: float, bin_ms: float = 1.0) -> np.ndarray:
    """Population rate in Hz, averaged over bins of ``bin_ms`` (whole steps).

    >>> population_rate(np.array([1, 0, 3, 0]), 10, 0.5, 1.0).tolist()
    [100.0, 300.0]
    """
    k = max(int(round(bin_ms / dt)), 1)
    n_bins = len(pop_count) // k
    binned = np.asarray(pop_count[: n_bins * k], np.float64).reshape(n_bins, k).sum(axis=1)
    return binned / (n_neurons * k * dt * 1e-3)


def synchrony(pop_count: np.ndarray, dt: float, bin_ms: float = 5.0) -> float:
    """Fano factor of the binned population spike count (0 for AI-like, >> 1 for synchronous).

    Uses bins of ``bin_ms``; a population of independent Poisson neurons gives
    about 1, synchronous oscillations give much more.
    """
    k = max(int(round(bin_ms / dt)), 1)
    n_bins = len(pop_count) // k
    if n_bins < 2:
        return float("nan")
    binned = np.asarray(pop_count[: n_bins * k], np.float64).reshape(n_bins, k).sum(axis=1)
    m = binned.mean()
    return float(binned.var() / m) if m > 0 else float("nan")


def summary(chunk: Chunk, n_neurons: int, skip_ms: float = 0.0) -> dict:
    """Mean rate (Hz), mean ISI CV, population Fano factor, spikes and events of a run.

    ``skip_ms`` drops the initial transient from the statistics.
    """
    keep = chunk.spike_t >= chunk.t0 + skip_ms
    k0 = int(round(skip_ms / chunk.dt))
    duration = (chunk.n_steps - k0) * chunk.dt
    rates = firing_rates(chunk.spike_i[keep], n_neurons, duration)
    cv = isi_cv(chunk.spike_t[keep], chunk.spike_i[keep], n_neurons)
    return dict(rate=float(rates.mean()), cv=float(np.nanmean(cv)) if np.isfinite(cv).any() else float("nan"),
                fano=synchrony(chunk.pop_count[k0:], chunk.dt),
                n_spikes=int(keep.sum()), n_events=chunk.n_events)
