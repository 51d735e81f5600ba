r"""SSNN-BP: stochastic composite neurons with spike-coded gradients (Biswas, Saraswat, Ganguly).

Each neuron is a *composite* of a forward unit and two gradient units (a
positive and a negative stream).  All units are Spike Response Model units
with a causal FIR kernel (:mod:`spikewb.engine.neurons.srm`); the forward pass, the error and
the back-propagated gradient are all spike trains of the same ``T`` steps, and
a weight changes by +1 / -1 whenever a presynaptic forward spike coincides
with a postsynaptic positive / negative gradient spike (an RPU-style local
update).  A winner-take-all output with lateral inhibition plays the role of
softmax.  The implementation follows the authors' public code
(``SNNalgo/SSNN-BP``) as summarised in ``reference/desire_ssnn.md`` section 2;
the paper body was not available, so everything the notes tag [INF] or [UNV]
is a parameter (see the docs page ``docs/rules/ssnn.md``).

Notes
-----
Encoding: input spikes :math:`x_j(t) \sim \mathrm{Bernoulli}(p_j r_{in})`
(pixel :math:`p_j \in [0,1]`, ``input_rate`` :math:`r_{in} = 1`); target
train :math:`\hat y_i(t) \sim \mathrm{Bernoulli}(r_{tgt}[i = y])`.

SRM unit (forward :math:`\tau = T/10`, gradient :math:`\tau_b = T/100`,
window :math:`M = \lfloor T/2 \rfloor`, threshold :math:`\theta = 5`):

.. math::

    V_i(t) = \sum_{d=1}^{M} \bigl(1 - e^{-d/\tau}\bigr) I_i(t-d), \qquad
    z_i(t) = [V_i(t) > \theta]

(``threshold = "fixed"``, what the authors' graph executes; ``"adaptive"``
raises the threshold by :math:`\theta` after each spike, what it was written
to do.)  Hidden layer :math:`h = z(\kappa * (x W_1)) \odot m_h`, output
:math:`I_y = h W_2`, then ``wta_iter`` relaxation passes
:math:`I_{y,i}(t) \leftarrow I_{y,i}(t) - w_{inh} \sum_{k \ne i} y_k(t)`
with the spikes recomputed after each pass (``wta = "relaxation"``), or one
causal per-step pass (``wta = "causal"``).

Output gradient streams, error current
:math:`E_i(t) = g_E\,\theta\,(\hat y_i(t) - y_i(t))` with :math:`g_E = 1.5`:

.. math::

    \delta^+_i(t) = [\kappa_b * E_i\,(t) > \theta_b], \qquad
    \delta^-_i(t) = [\kappa_b * (-E_i)\,(t) > \theta_b].

Hidden gradient streams, with the (non-causal) gate
:math:`g_h = [\sum_t h_h(t) > 0]`:

.. math::

    B_h(t) = \tfrac12\, g_h \sum_i \tilde W_{2,hi}\,(\delta^+_i - \delta^-_i)(t),
    \qquad \delta^\pm_h(t) = [\kappa_b * (\pm B_h)\,(t) > \theta_b]

where :math:`\tilde W_2` is :math:`W_2` (``backward_w = "raw"``, setup commit)
or :math:`(W_2 - \mu/C)/\sigma` with :math:`\mu, \sigma` the mean and std over
hidden neurons of the row sums :math:`\sum_i W_{2,hi}` (``"normalised"``,
post-publication HEAD).  Deeper nets repeat the hidden step layer by layer
([INF]: the authors only have two weight layers).

Update over a minibatch of :math:`B` samples (``update = "coincidence"``):
:math:`\Delta W_{ji} = \frac{1}{BT}\sum_b \sum_t x_j(t)(\delta^+_i - \delta^-_i)(t)`;
``"rate"``: :math:`\Delta W_{ji} = \frac{1}{B}\sum_b \bar x_j\,
(\bar\delta^+_i - \bar\delta^-_i)` with time averages :math:`\bar\cdot`.
Optimiser, once per minibatch (:math:`\Delta W` is already the descent
direction).  ``momentum`` :math:`\beta = 0` (default): plain SGD
:math:`W \leftarrow W + \eta\,\Delta W`, the sample passes use :math:`W`; this
is what the authors' notebooks *execute* (their momentum variable is a
``tf.Variable`` of zeros that is never assigned: the line meant to update it
rebinds a Python name, so the look-ahead is :math:`W` and the step is
:math:`\eta\,\Delta W`).  :math:`\beta > 0`: Nesterov momentum, what the
notebooks were *written* to do (:math:`\beta = 0.9`): the sample passes use
the look-ahead weights :math:`W + \beta M`; after the batch
:math:`M \leftarrow \beta M + \eta\,\Delta W`, :math:`W \leftarrow W + M`.

Dropout: one mask per minibatch and neuron (input 0.2, hidden 0.3), applied
to spikes, **without** :math:`1/(1-p)` rescaling, none at test.

Minibatches under a one-sample-at-a-time trainer: ``train_step`` adds the
sample's counts to accumulators in ``model.state`` and applies the update on
every ``batch_size``-th sample; a partial batch at the end of an epoch carries
over into the next.  ``model.weights`` hold :math:`W` (not the look-ahead).
With momentum on, the velocity ``mom<l>`` and the minibatch's look-ahead
weights ``look<l>`` are state arrays made lazily at the first step; with it
off neither exists (a velocity left from an earlier momentum run is dropped at
the next step, and switching momentum on starts from zero velocity).

Decision rule: argmax of the output spike counts, ties to the lowest index
(the authors' ``argmax``; a silent output therefore predicts class 0).
:meth:`SSNNBP.predict` draws its input spikes from a generator seeded by the
sample's bytes, so a prediction does not depend on the batch it is in and
does not consume the model's generator; it uses the look-ahead weights
:math:`W + \beta M` as the authors' graph does [INF] (:math:`W` itself with
momentum off).

Frame extras: ``batch_applied`` (bool), ``grad_pos_counts`` / ``grad_neg_counts``
(per layer 0..L, int32 per neuron; ``Frame.signal`` is their difference);
with ``Record(spikes=True)`` the gradient rasters ``grad_pos_t`` / ``grad_pos_i``
and ``grad_neg_t`` / ``grad_neg_i`` (per layer, layer 0 empty) and the target
train ``target_t`` / ``target_i``; per recorded neuron (rows aligned with
``trace_ids``) the gradient-unit potentials ``v_grad_pos`` and ``v_grad_neg``
(float32 (n_rec, T); the negative unit sees the negated current), and, when
neurons are recorded, ``v_th_grad`` (their threshold).

References
----------
A. Biswas, V. Saraswat, U. Ganguly, "A temporally and spatially local
spike-based backpropagation algorithm to enable training in hardware",
Neuromorphic Computing and Engineering 3 (2023) 034009,
doi:10.1088/2634-4386/acf1c5 (arXiv:2207.09755).
"""

from __future__ import annotations

import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import numpy as np
import param

from spikewb.engine.neurons import srm
from spikewb.engine.data.encoding import rate_bernoulli
from spikewb.engine.errors import ConfigError, DataError, NumericalError
from spikewb.engine.frame import Frame, Record, RECORD_NONE, raster_events
from spikewb.engine.network import Architecture, Model
from spikewb.engine.rules.base import ArraySpec, LearningRule, register

#: Authors' configurations (``reference/desire_ssnn.md`` 2.8), for the Trainer / CLI.  Both
#: notebooks *execute* plain SGD (their momentum variable is never assigned), hence momentum 0.
PRESETS = {
    # rate notebook nearest the paper (838cf62), with HEAD's H = 1000
    "rate-t51": dict(hidden=[1000], n_steps=51, update="rate", backward_w="raw", batch_size=50,
                     lr=0.06, momentum=0.0, epochs=51),
    # RPU v2 notebook
    "rpu-t301": dict(hidden=[1000], n_steps=301, update="coincidence", backward_w="normalised",
                     batch_size=50, lr=0.04, momentum=0.0, epochs=51),
}

#: Seed mixed with each sample's bytes for the input spikes drawn by ``predict``.
PREDICT_SEED = 0x55A


def target_train(label: int, n_classes: int, n_steps: int, rate: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Target spike train, uint8 (T, C): the label neuron fires Bernoulli(``rate``), others never."""
    out = np.zeros((n_steps, n_classes), np.uint8)
    out[:, label] = rng.random(n_steps) < rate
    return out


def normalised_backward(w: np.ndarray) -> np.ndarray:
    """Authors' HEAD backward copy ``(W - mu/C) / sigma`` of pre-major ``w`` (H, C).

    ``mu`` and ``sigma`` are the mean and standard deviation, over the rows
    (hidden neurons), of the row sums ``sum_i w[h, i]``.
    """
    r = w.astype(np.float64).sum(axis=1)
    sigma = r.std()
    if sigma == 0.0:
        sigma = 1.0
    return ((w - r.mean() / w.shape[1]) / sigma).astype(w.dtype)


def argmax_lowest(counts: np.ndarray) -> int:
    """Index of the largest count, ties to the lowest index (``np.argmax``).

    >>> argmax_lowest(np.array([1, 4, 4])), argmax_lowest(np.array([0, 0]))
    (1, 0)
    """
    return int(np.argmax(counts))


@register
class SSNNBP(LearningRule):
    """SSNN-BP: SRM composite neurons, +/- gradient spike streams, WTA output.

    Defaults are the authors' executed model (fixed threshold) at T = 51 with
    the RPU (coincidence) update and the normalised backward weights of their
    H = 1000 configurations; see the module docstring for the equations and
    ``PRESETS`` for the notebook configurations.
    """

    presets: ClassVar[dict] = PRESETS
    key: ClassVar[str] = "ssnn"
    title: ClassVar[str] = "SSNN-BP (spike-coded gradients, WTA)"
    signals: ClassVar[str] = "gradient spikes (+ minus -)"
    loss_name: ClassVar[str] = "output rate error (MSE vs target train)"
    structural: ClassVar[tuple[str, ...]] = ("dtype",)
    xfail_checks: ClassVar[dict[str, str]] = {}
    default_hidden: ClassVar[tuple[int, ...]] = (1000,)

    lr = param.Number(0.04, bounds=(0.0, 10.0), softbounds=(0.0, 0.5), step=1e-3,
                      label="Learning rate",
                      doc="eta applied to the batch-averaged update (authors: 0.04 RPU v2 notebook, "
                          "0.005 RPU v1; rate notebooks 0.06-0.1 divided by the batch).")
    lr_schedule = param.Selector(default="constant", objects=["exponential", "constant"],
                                 label="LR schedule", doc="The authors keep eta constant.")
    n_steps = param.Integer(51, bounds=(3, 2001), label="Time steps T",
                            doc="Spike-train length; also sets the kernel window M = floor(T/2) and "
                                "tau = T/10 (authors: 51 rate notebooks, 101/201/301 RPU notebooks).")
    v_th = param.Number(5.0, bounds=(0.0, 1000.0), inclusive_bounds=(False, True), softbounds=(0.5, 20.0),
                        step=0.1, label="Threshold theta",
                        doc="Forward-unit threshold, strict > (authors' th_val = 5, dimensionless).")
    v_th_grad = param.Number(5.0, bounds=(0.0, 1000.0), inclusive_bounds=(False, True),
                             softbounds=(0.5, 20.0), step=0.1, label="Gradient threshold theta_b",
                             doc="Threshold of the gradient units (authors: 5).")
    tau_frac = param.Number(0.1, bounds=(0.0, 10.0), inclusive_bounds=(False, True), step=0.01,
                            label="Forward tau / T",
                            doc="Forward kernel tau = tau_frac * T steps (authors: T/10).")
    tau_grad_frac = param.Number(0.01, bounds=(0.0, 10.0), inclusive_bounds=(False, True), step=0.001,
                                 label="Gradient tau / T",
                                 doc="Gradient kernel tau_b = tau_grad_frac * T steps (authors: T/100).")
    threshold = param.Selector(default="fixed", objects=["fixed", "adaptive"], label="Threshold model",
                               doc="fixed: spike whenever V > theta (what the authors' TF1 graph executes); "
                                   "adaptive: theta grows by theta after each spike (what the code was "
                                   "written to do; which one the paper means is unverified).")
    input_rate = param.Number(1.0, bounds=(0.0, 1.0), step=0.01, label="Input rate (per step)",
                              doc="Spike probability per step of a pixel of intensity 1 "
                                  "(authors: max_in_spikes / T = 1).")
    target_rate = param.Number(0.5, bounds=(0.0, 1.0), step=0.01, label="Target rate (per step)",
                               doc="Spike probability per step of the label neuron's target train "
                                   "(authors: 25/51 setup commit, 35/51 HEAD, 151/301 RPU notebooks).")
    error_gain = param.Number(1.5, bounds=(0.0, 100.0), step=0.1, label="Error gain (x theta)",
                              doc="Output error current E = gain * theta * (target - output) (authors: 1.5).")
    backproj_scale = param.Number(0.5, bounds=(0.0, 100.0), step=0.05, label="Back-projection scale",
                                  doc="Hidden gradient current B = scale * W2 (d+ - d-) (authors: 0.5).")
    backward_w = param.Selector(default="normalised", objects=["raw", "normalised"], label="Backward weights",
                                doc="normalised: (W2 - mu/C)/sigma over hidden row sums (HEAD and RPU v2, the "
                                    "H = 1000 configurations); raw: W2 (setup commit with H = 1280, nearest the "
                                    "paper date; with threshold 5 the hidden gradient units then rarely fire).")
    update = param.Selector(default="coincidence", objects=["coincidence", "rate"], label="Update",
                            doc="coincidence: count pre-spike x gradient-spike coincidences (RPU, the paper's "
                                "headline); rate: product of time-averaged rates (RateSNN).")
    wta = param.Selector(default="relaxation", objects=["relaxation", "causal"], label="WTA",
                         doc="relaxation: whole-train passes with accumulating inhibition (authors); "
                             "causal: one per-step pass (inferred alternative).")
    wta_iter = param.Integer(5, bounds=(0, 100), label="WTA passes",
                             doc="Relaxation passes of the WTA output (authors' self_iter = 5).")
    w_inh = param.Number(1.0, bounds=(0.0, 100.0), step=0.1, label="Lateral inhibition weight",
                         doc="Inhibitory current per spike of another output neuron (authors: 1).")
    momentum = param.Number(0.0, bounds=(0.0, 1.0), inclusive_bounds=(True, False), step=0.01,
                            label="Nesterov momentum beta (0 = plain SGD)",
                            doc="0: plain SGD W += eta dW, what the authors' notebooks execute (their momentum "
                                "variable is never assigned, so the look-ahead is W and the step eta dW); "
                                "> 0: Nesterov momentum with look-ahead W + beta M, what the notebooks were "
                                "written to do (beta = 0.9; a steady step ~1/(1 - beta) = 10x larger).")
    batch_size = param.Integer(50, bounds=(1, 100_000), label="Minibatch",
                               doc="Samples per weight update (authors: 50 RPU, 50/100 rate notebooks).")
    dropout_in = param.Number(0.2, bounds=(0.0, 1.0), inclusive_bounds=(True, False), step=0.01,
                              label="Input dropout", doc="Per minibatch and pixel, no rescaling (authors: 0.2).")
    dropout_hid = param.Number(0.3, bounds=(0.0, 1.0), inclusive_bounds=(True, False), step=0.01,
                               label="Hidden dropout",
                               doc="Per minibatch and hidden neuron, no rescaling (authors: 0.3).")
    init_gain = param.Number(4.0, bounds=(0.0, 100.0), step=0.1, label="Init variance x fan_in",
                             doc="W ~ N(0, gain / fan_in) (authors: 4).")

    # ---------------------------------------------------------------- helpers
    @property
    def window(self) -> int:
        return srm.window(self.n_steps)

    @property
    def tau(self) -> float:
        return float(self.tau_frac * self.n_steps)

    @property
    def tau_grad(self) -> float:
        return float(self.tau_grad_frac * self.n_steps)

    # ---------------------------------------------------------------- build
    def build(self, arch: Architecture, rng: np.random.Generator) -> Model:
        """Weights ``N(0, init_gain / fan_in)`` pre-major; zero accumulators (any velocity comes later)."""
        arch.validate()
        sizes = arch.sizes
        ft = self.float_type
        weights = [np.ascontiguousarray(rng.normal(0.0, np.sqrt(self.init_gain / n_pre), (n_pre, n_post))
                                        .astype(ft)) for n_pre, n_post in zip(sizes[:-1], sizes[1:])]
        model = Model(self.key, sizes, weights, rng)
        self._init_state(model, velocity=False)
        return model

    @property
    def uses_momentum(self) -> bool:
        """Whether the update is Nesterov momentum (``momentum > 0``) rather than plain SGD."""
        return float(self.momentum) > 0.0

    def _init_state(self, model: Model, velocity: bool = True) -> None:
        """Accumulators, masks and the count; the velocity ``mom<l>`` only when stepping with
        momentum on (``velocity``); with momentum off, velocity and look-ahead are dropped."""
        st = model.state
        nesterov = self.uses_momentum
        for l, w in enumerate(model.weights):
            if not nesterov:                      # plain SGD keeps no velocity and no look-ahead
                st.pop(f"mom{l}", None)
                st.pop(f"look{l}", None)
            elif velocity and f"mom{l}" not in st:
                st[f"mom{l}"] = np.zeros_like(w)
            if f"acc{l}" not in st:
                st[f"acc{l}"] = np.zeros(w.shape, np.float64)
        for l, n in enumerate(model.sizes[:-1]):
            if f"mask{l}" not in st:
                st[f"mask{l}"] = np.ones(n, np.uint8)
        if "n_acc" not in st:
            st["n_acc"] = np.zeros(1, np.int64)

    def extra_state_schema(self, model: Model) -> dict[str, ArraySpec]:
        """Velocity and look-ahead weights (momentum only, made lazily), 0/1 masks, a count.

        ``mom<l>`` / ``look<l>`` are optional whatever ``momentum`` is, so a
        checkpoint saved with momentum on loads into a rule with it off (the
        velocity is then dropped) and the other way round (zero velocity).
        """
        out: dict[str, ArraySpec] = {}
        for l, w in enumerate(model.weights):
            out[f"mom{l}"] = ArraySpec.like(w, required=False)
            out[f"look{l}"] = ArraySpec.like(w, required=False)
        for l, n in enumerate(model.sizes[:-1]):
            out[f"mask{l}"] = ArraySpec((int(n),), np.dtype(np.uint8), lo=0, hi=1)
        out["n_acc"] = ArraySpec((1,), np.dtype(np.int64), lo=0, hi=2**31)
        return out

    def lookahead(self, model: Model) -> list[np.ndarray]:
        """Weights the passes use: Nesterov look-ahead ``W + beta M`` (fresh arrays) with
        momentum on; ``model.weights`` themselves (not copies: read only) with it off."""
        if not self.uses_momentum:
            return list(model.weights)
        beta = model.weights[0].dtype.type(self.momentum)
        out = []
        for l, w in enumerate(model.weights):
            m = model.state.get(f"mom{l}")
            out.append(np.ascontiguousarray(w + beta * m) if m is not None else w)
        return out

    # ---------------------------------------------------------------- forward
    def _forward(self, weights, x_spikes, masks, record: Record | None, sizes):
        """Forward spikes of all layers.  Returns (spikes, potentials, currents) per layer 0..L.

        ``potentials`` / ``currents`` are kept (float64 (T, N)) only for layers
        with recorded neurons; other entries are None.
        """
        T = x_spikes.shape[0]
        n_layers = len(sizes)
        m = self.window
        adaptive = self.threshold == "adaptive"
        want = {layer for layer, _ in record.neurons} if record is not None else set()
        spikes = [x_spikes if masks is None else x_spikes & masks[0]]
        pots, curs = [None], [None]
        for l in range(1, n_layers):
            i_syn = np.empty((T, sizes[l]), np.float64)
            srm.input_current(spikes[l - 1], weights[l - 1], i_syn)
            v = np.empty((T, sizes[l]), np.float64)
            z = np.empty((T, sizes[l]), np.uint8)
            if l < n_layers - 1:
                srm.srm_layer(i_syn, self.tau, m, float(self.v_th), adaptive, v, z)
                if masks is not None:
                    z &= masks[l]
            elif self.wta == "relaxation":
                srm.wta_relaxation(i_syn, self.tau, m, float(self.v_th), adaptive, int(self.wta_iter),
                                   float(self.w_inh), v, z)
            else:
                srm.wta_causal(i_syn, self.tau, m, float(self.v_th), adaptive, float(self.w_inh), v, z)
            spikes.append(z)
            pots.append(v if l in want else None)
            curs.append(i_syn if l in want else None)
        return spikes, pots, curs

    def _grad_units(self, current):
        """Positive and negative gradient spikes (uint8 (T, N)) and the positive potential."""
        T, n = current.shape
        adaptive = self.threshold == "adaptive"
        v = np.empty((T, n), np.float64)
        srm.srm_potential_incremental(current, self.tau_grad, self.window, v)
        dpos = np.empty((T, n), np.uint8)
        dneg = np.empty((T, n), np.uint8)
        srm.srm_spikes(v, float(self.v_th_grad), adaptive, dpos)
        srm.srm_spikes(-v, float(self.v_th_grad), adaptive, dneg)
        return dpos, dneg, v

    def _check_x(self, model: Model, x) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 1 or x.shape[0] != model.sizes[0]:
            raise DataError(f"sample has shape {x.shape}; the network expects a flat vector of "
                            f"{model.sizes[0]} intensities")
        return x

    # ---------------------------------------------------------------- step
    def train_step(self, model: Model, x: np.ndarray, y: int, record: Record | None = None) -> Frame:
        """Encode one sample, run the composite neurons and accumulate (apply per minibatch)."""
        self.check_model(model)
        x, y = self._checked_sample(model, x, y)
        self._init_state(model)
        self._new_batch_masks(model)
        return self.step_spikes(model, *self._encode(model, x, y), y, record)

    def _checked_sample(self, model: Model, x, y) -> tuple[np.ndarray, int]:
        x = self._check_x(model, x)
        if not 0 <= int(y) < model.sizes[-1]:
            raise DataError(f"label {y} outside 0..{model.sizes[-1] - 1}")
        return x, int(y)

    def _encode(self, model: Model, x: np.ndarray, y: int) -> tuple[np.ndarray, np.ndarray]:
        """Input and target spike trains of one sample, drawn from ``model.rng``."""
        T = int(self.n_steps)
        xs = rate_bernoulli(x, T, model.rng, float(self.input_rate))[:T]
        return xs, target_train(y, model.sizes[-1], T, float(self.target_rate), model.rng)

    def _new_batch_masks(self, model: Model) -> None:
        st = model.state
        if int(st["n_acc"][0]) != 0:
            return
        sizes = model.sizes
        for l in range(len(sizes) - 1):
            p = self.dropout_in if l == 0 else self.dropout_hid
            st[f"mask{l}"] = ((model.rng.random(sizes[l]) >= p).astype(np.uint8) if p > 0
                              else np.ones(sizes[l], np.uint8))

    def step_spikes(self, model: Model, x_spikes: np.ndarray, y_spikes: np.ndarray, label: int,
                    record: Record | None = None) -> Frame:
        """The step after encoding: forward, gradient streams, accumulation, batch update.

        Parameters
        ----------
        x_spikes : uint8 array (T, n_in)
            Input spikes before dropout.
        y_spikes : uint8 array (T, C)
            Target spike train.
        label : int
        record : Record

        The dropout masks are ``model.state["mask<l>"]`` (drawn by
        :meth:`train_step` at the start of each minibatch).
        """
        self.check_model(model)
        self._init_state(model)
        record = RECORD_NONE if record is None else record
        x_spikes, y_spikes = self._checked_trains(model, x_spikes, y_spikes)
        look, masks, lr = self._batch_weights(model)
        acc = [model.state[f"acc{l}"] for l in range(len(model.sizes) - 1)]
        passes = self._passes(look, masks, x_spikes, y_spikes, record, model.sizes, lr, acc)
        return self._close_sample(model, passes, label, lr, record)

    def batch_room(self, model: Model) -> int:
        """Samples left in the current minibatch: :meth:`train_batch` takes at most this many."""
        self._init_state(model)
        return int(self.batch_size) - int(model.state["n_acc"][0])

    def train_batch(self, model: Model, X, Y, workers: int = 2) -> list[Frame]:
        """Train on ``X[k], Y[k]`` in order, exactly as ``len(X)`` calls of :meth:`train_step`
        would, with the forward and gradient passes spread over ``workers`` threads.

        Inside a minibatch the weights the passes read do not change (they change in
        :meth:`_apply`, at its end), so once their spike trains are drawn the samples are
        independent. The trains are drawn here from ``model.rng`` in :meth:`train_step`'s
        order. The coincidence counts are integers, so adding up each thread's
        accumulator gives the same float64 sums; the ``rate`` update's outer products
        are added afterwards in sample order. Frames, the sample count and the minibatch
        update follow in sample order, so weights, state and frames equal the serial ones
        bit for bit. No recording (the trainer's headless runs).

        Parameters
        ----------
        X : sequence of arrays
            Intensities in [0, 1], at most :meth:`batch_room` samples.
        Y : sequence of int
            Labels.
        workers : int
            Threads (the kernels release the GIL); 1 runs :meth:`train_step` per sample.
        """
        self.check_model(model)
        n, room = len(X), self.batch_room(model)
        if n > room:
            raise ConfigError(f"{n} samples do not fit the {room} left in this minibatch")
        if workers <= 1 or n < 2:
            return [self.train_step(model, X[k], Y[k]) for k in range(n)]
        sizes = model.sizes
        samples = [self._checked_sample(model, x, y) for x, y in zip(X, Y)]
        ys = [y for _, y in samples]
        self._new_batch_masks(model)          # a new minibatch draws its masks before its first sample
        trains = [self._checked_trains(model, *self._encode(model, x, y)) for x, y in samples]
        look, masks, lr = self._batch_weights(model)
        shared = [model.state[f"acc{l}"] for l in range(len(sizes) - 1)]
        accs = [[np.zeros_like(a) for a in shared] for _ in range(workers)]

        def run(w: int) -> list:
            return [(k, self._passes(look, masks, *trains[k], RECORD_NONE, sizes, lr, accs[w]))
                    for k in range(w, n, workers)]

        passes = [None] * n
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spikewb-ssnn") as pool:
            for part in pool.map(run, range(workers)):
                for k, p in part:
                    passes[k] = p
        for own in accs:
            for a, b in zip(shared, own):
                a += b
        return [self._close_sample(model, passes[k], ys[k], lr, RECORD_NONE) for k in range(n)]

    def _checked_trains(self, model: Model, x_spikes, y_spikes) -> tuple[np.ndarray, np.ndarray]:
        T = x_spikes.shape[0]
        if T != int(self.n_steps) or y_spikes.shape != (T, model.sizes[-1]):
            raise ConfigError(f"spike trains of {T} / {y_spikes.shape} steps do not match T = {self.n_steps}")
        return np.ascontiguousarray(x_spikes, np.uint8), np.ascontiguousarray(y_spikes, np.uint8)

    def _batch_weights(self, model: Model) -> tuple[list, list, float]:
        """The weights the passes read (fixed for a minibatch), the dropout masks and the rate."""
        st = model.state
        n_w = len(model.sizes) - 1
        if not self.uses_momentum:               # plain SGD: W changes only in _apply, after the passes
            look = list(model.weights)
        else:
            if int(st["n_acc"][0]) == 0 or any(f"look{l}" not in st for l in range(n_w)):
                for l, w in enumerate(self.lookahead(model)):
                    st[f"look{l}"] = w if w is not model.weights[l] else w.copy()
            look = [st[f"look{l}"] for l in range(n_w)]
        return look, [st[f"mask{l}"] for l in range(n_w)], self.learning_rate(model.epoch)

    def _passes(self, look, masks, x_spikes, y_spikes, record: Record, sizes, lr: float, acc: list) -> dict:
        """One sample's forward pass and gradient streams; the coincidence counts go into ``acc``
        (the ``rate`` update's outer products are left to :meth:`_close_sample`). Reads no
        model state, so samples of one minibatch can run on several threads."""
        n_layers = len(sizes)
        T = x_spikes.shape[0]
        spikes, pots, curs = self._forward(look, x_spikes, masks, record, sizes)

        # gradient streams, output then hidden layers
        dpos = [None] * n_layers
        dneg = [None] * n_layers
        gpot = [None] * n_layers
        graw = [None] * n_layers
        err = float(self.error_gain * self.v_th) * (y_spikes.astype(np.float64) - spikes[-1])
        dpos[-1], dneg[-1], gpot[-1] = self._grad_units(err)
        graw[-1] = err.sum(axis=0)
        for l in range(n_layers - 2, 0, -1):
            w_bp = look[l] if self.backward_w == "raw" else normalised_backward(look[l])
            gate = (spikes[l].sum(axis=0) > 0).astype(np.uint8)
            b = np.empty((T, sizes[l]), np.float64)
            srm.backproject(dpos[l + 1], dneg[l + 1], w_bp, float(self.backproj_scale), gate, b)
            dpos[l], dneg[l], gpot[l] = self._grad_units(b)
            graw[l] = b.sum(axis=0)

        # this sample's update; its norm (scaled as applied) for the frame
        scale = lr / (float(self.batch_size) * T)
        dw_norm, outer = [], []
        for l in range(1, n_layers):
            pre = spikes[l - 1]
            if self.update == "coincidence":
                sq = srm.coincidence_accumulate(pre, dpos[l], dneg[l], acc[l - 1])
            else:
                sx = pre.sum(axis=0, dtype=np.float64)
                sd = dpos[l].sum(axis=0, dtype=np.float64) - dneg[l].sum(axis=0, dtype=np.float64)
                outer.append((l - 1, sx, sd / T))
                sq = float(sx @ sx) * float(sd @ sd) / T ** 2
            dw_norm.append(scale * np.sqrt(max(sq, 0.0)))
        return dict(T=T, spikes=spikes, pots=pots, curs=curs, dpos=dpos, dneg=dneg, gpot=gpot, graw=graw,
                    dw_norm=dw_norm, outer=outer, y_spikes=y_spikes)

    def _close_sample(self, model: Model, p: dict, label: int, lr: float, record: Record) -> Frame:
        """Count the sample into the minibatch (the update when it is full) and build its frame."""
        st = model.state
        for l, sx, sd in p["outer"]:
            st[f"acc{l}"] += np.outer(sx, sd)
        st["n_acc"][0] += 1
        applied = False
        if int(st["n_acc"][0]) >= int(self.batch_size):
            self._apply(model, lr)
            applied = True
        T, spikes, y_spikes = p["T"], p["spikes"], p["y_spikes"]
        counts = [s.sum(axis=0, dtype=np.int32) for s in spikes]
        tcount = y_spikes.sum(axis=0, dtype=np.int32)
        loss = float(np.mean(((counts[-1] - tcount) / float(T)) ** 2))
        return self._frame(model, label, T, counts, tcount, spikes, p["dpos"], p["dneg"], p["gpot"], p["graw"],
                           p["pots"], p["curs"], p["dw_norm"], loss, lr, record, y_spikes, applied)

    def _apply(self, model: Model, lr: float) -> None:
        """Update from the accumulators (plain SGD, or Nesterov with momentum); resets them.

        ``dW = acc / (n T)`` over the ``n`` accumulated samples; plain SGD
        ``W += eta dW``; Nesterov ``M = beta M + eta dW``, ``W += M``.
        """
        self._init_state(model)
        st = model.state
        n = max(int(st["n_acc"][0]), 1)
        T = int(self.n_steps)
        beta = float(self.momentum)
        for l, w in enumerate(model.weights):
            acc = st[f"acc{l}"]
            step = (acc * (lr / (n * T))).astype(w.dtype)
            if beta > 0.0:
                mom = st[f"mom{l}"]
                mom *= mom.dtype.type(beta)
                mom += step
                w += mom
            else:
                w += step
            acc[:] = 0.0
        st["n_acc"][0] = 0
        for l, w in enumerate(model.weights, start=1):
            if not np.all(np.isfinite(w)):
                raise NumericalError(f"weight layer {l} became NaN/Inf at epoch {model.epoch}; lower the "
                                     "learning rate and reset the network")

    def flush(self, model: Model) -> bool:
        """Apply a partial minibatch now (e.g. at the end of training). Returns whether one was pending."""
        self.check_model(model)
        if int(model.state.get("n_acc", np.zeros(1))[0]) == 0:
            return False
        self._apply(model, self.learning_rate(model.epoch))
        return True

    # ---------------------------------------------------------------- frame
    def _frame(self, model, label, T, counts, tcount, spikes, dpos, dneg, gpot, graw, pots, curs,
               dw_norm, loss, lr, record, y_spikes, applied) -> Frame:
        sizes = model.sizes
        n_layers = len(sizes)
        empty_f = np.zeros(0, np.float32)
        empty_i = np.zeros(0, np.int32)

        extras: dict = {"batch_applied": np.array(applied)}
        if record.spikes:                   # rows are steps here (no initial-state row)
            for name, streams in (("grad_pos", dpos), ("grad_neg", dneg)):
                t, i = raster_events(streams[1:], shift_from=len(streams))
                extras[f"{name}_t"], extras[f"{name}_i"] = (empty_f, *t), (empty_i, *i)
            t, i = raster_events([y_spikes], shift_from=1)
            extras["target_t"], extras["target_i"] = t[0], i[0]
        n_rec = len(record.neurons)
        v_trace = np.zeros((n_rec, T), np.float32)
        i_trace = np.zeros((n_rec, T), np.float32)
        vg_pos = np.zeros((n_rec, T), np.float32)
        vg_neg = np.zeros((n_rec, T), np.float32)
        for k, (layer, idx) in enumerate(record.neurons):
            if 1 <= layer < n_layers and 0 <= idx < sizes[layer]:
                v_trace[k] = pots[layer][:, idx]
                i_trace[k] = curs[layer][:, idx]
                vg_pos[k] = gpot[layer][:, idx]
                vg_neg[k] = -gpot[layer][:, idx]
        extras["v_grad_pos"] = vg_pos
        extras["v_grad_neg"] = vg_neg
        if n_rec:  # threshold of the gradient units, drawn with their potentials
            extras["v_th_grad"] = np.array(float(self.v_th_grad), np.float32)
        extras["grad_pos_counts"] = tuple([empty_i] + [d.sum(axis=0, dtype=np.int32) for d in dpos[1:]])
        extras["grad_neg_counts"] = tuple([empty_i] + [d.sum(axis=0, dtype=np.int32) for d in dneg[1:]])
        signal = [p - n for p, n in zip(extras["grad_pos_counts"][1:], extras["grad_neg_counts"][1:])]
        return self.make_frame(
            model, record, label=label, prediction=argmax_lowest(counts[-1]), loss=loss, lr=lr, duration=T,
            counts=counts, signal=signal, signal_raw=graw[1:], dw_norm=dw_norm, target=tcount,
            spikes=raster_events(spikes, shift_from=len(spikes)) if record.spikes else None,
            v_trace=v_trace, i_trace=i_trace, extras=extras)

    # ---------------------------------------------------------------- predict
    def output_counts(self, model: Model, X: np.ndarray) -> np.ndarray:
        """Output spike counts (n, C) at the look-ahead weights (``W`` without momentum), no dropout.

        Input spikes come from ``default_rng([PREDICT_SEED, crc32(sample bytes)])``.
        """
        self.check_model(model)
        X = np.atleast_2d(np.asarray(X))
        if X.shape[1] != model.sizes[0]:
            raise DataError(f"samples have {X.shape[1]} features; the network expects {model.sizes[0]}")
        look = self.lookahead(model)
        T = int(self.n_steps)
        out = np.zeros((len(X), model.sizes[-1]), np.int32)
        for n in range(len(X)):
            x = np.ascontiguousarray(X[n], np.float32)
            rng = np.random.default_rng([PREDICT_SEED, zlib.crc32(x.tobytes())])
            xs = rate_bernoulli(x, T, rng, float(self.input_rate))[:T]
            spikes, _, _ = self._forward(look, xs, None, None, model.sizes)
            out[n] = spikes[-1].sum(axis=0)
        return out

    def predict(self, model: Model, X: np.ndarray) -> np.ndarray:
        """Class decisions for a batch: argmax of output counts, ties to the lowest index."""
        counts = self.output_counts(model, X)
        return np.array([argmax_lowest(c) for c in counts], np.int64)
