"""Live view of a recurrent E/I network (CUBA / COBA) for one browser session.

:class:`DynamicsView` is a :class:`panel.viewable.Viewer`: it owns an
:class:`spikewb.engine.networks.ei.EINetwork`, simulates it on the shared background
worker (:class:`~spikewb.workbench.sessions.worker.CommandWorker`) chunk by chunk (the numba kernel releases the GIL), and draws a spike raster,
the population rate, the potentials of a few neurons and the ISI / CV
histograms.  Sliders for the weights, the external drive and the time
constants are generated from the engine's parameter class with
:class:`panel.Param` and act live; a regime menu loads named parameter sets
(:data:`spikewb.engine.networks.ei.REGIMES`).

Data flow (``reference/live_streaming.md``, pattern B3): the worker publishes
a :class:`Snapshot` of NumPy arrays into a one-slot mailbox (newest wins);
one periodic callback per session (10 Hz) takes it and replaces the data of
raw Bokeh ``ColumnDataSource`` objects inside one ``pn.io.hold()`` block.
The worker never touches Panel or Bokeh objects.  Errors in the callback or
the worker are shown in the page.  The worker and the callback stop when the
session is destroyed.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections import deque
from dataclasses import dataclass

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, Range1d, Span
from bokeh.plotting import figure
from bokeh.transform import linear_cmap

from spikewb.engine.networks.ei import EINetwork, EIParams, REGIMES, isi_cv, isis, make_params

from spikewb.workbench.pagestate import guard_panel_query
from spikewb.workbench.sessions.slots import SlotUser
from spikewb.workbench.sessions.worker import CommandWorker

guard_panel_query()  # a link with odd query values must not blank this page either

log = logging.getLogger(__name__)

#: Parameters that get a slider (live, no rebuild).
LIVE = ["we", "wi", "v_ext", "tau_m", "tau_e", "tau_i"]
SPEEDS = {"0.1x real time": 0.1, "0.25x real time": 0.25, "1x real time": 1.0, "as fast as possible": 0.0}
E_COLOR, I_COLOR = "#1f5fa8", "#c8302b"


@dataclass(frozen=True)
class Snapshot:
    """One frame for the page: compact arrays over the last ``window`` ms."""

    seq: int
    t_end: float          # simulated time at the end of the window, s
    spike_t: np.ndarray   # float32, s
    spike_row: np.ndarray  # uint16, raster row
    spike_kind: np.ndarray  # uint8, 0 excitatory / 1 inhibitory
    rate_t: np.ndarray    # float32, s (bin centres)
    rate: np.ndarray      # float32, Hz
    v_t: np.ndarray       # float32, s
    v: np.ndarray         # float32, (n_rec, len(v_t)), mV
    isi_edges: np.ndarray
    isi_counts: np.ndarray
    cv_edges: np.ndarray
    cv_counts: np.ndarray
    stats: dict


class _Ring:
    """Recent history: ``length`` ms of population counts and potentials, ``spike_length`` ms of spikes."""

    #: At most this many spikes are kept (runaway regimes fire ~10^5 spikes per second).
    MAX_SPIKES = 300_000

    def __init__(self, length: float, dt: float, n_rec: int, spike_length: float = 5000.0):
        self.length, self.dt = length, dt
        self.spike_length = max(spike_length, length)
        k = int(round(length / dt))
        self.pop = np.zeros(k, np.int32)
        self.v = np.full((n_rec, k), np.nan, np.float32)
        self.spike_t = np.zeros(0)
        self.spike_i = np.zeros(0, np.int32)
        self.t_end = 0.0

    def add(self, chunk) -> None:
        m = chunk.n_steps
        self.pop = np.concatenate([self.pop, chunk.pop_count])[-len(self.pop):]
        self.v = np.concatenate([self.v, chunk.v_rec], axis=1)[:, -self.v.shape[1]:]
        self.t_end = chunk.t0 + m * chunk.dt
        keep = self.spike_t > self.t_end - self.spike_length
        self.spike_t = np.concatenate([self.spike_t[keep], chunk.spike_t])[-self.MAX_SPIKES:]
        self.spike_i = np.concatenate([self.spike_i[keep], chunk.spike_i])[-self.MAX_SPIKES:]


class DynamicsView(pn.viewable.Viewer, CommandWorker, SlotUser):
    """Interactive CUBA / COBA network: raster, rates, potentials, ISI and CV histograms."""

    model = param.Selector(default="cuba", objects=["cuba", "coba"], label="Network",
                           doc="cuba: current-based synapses; coba: conductance-based (Brette 2007).")
    regime = param.Selector(default="benchmark", objects=list(REGIMES), label="Regime",
                            doc="Load a named parameter set (CUBA) that puts the network in a regime.")
    playing = param.Boolean(default=True, label="Play", doc="Simulate continuously.")
    speed = param.Selector(default="1x real time", objects=list(SPEEDS), label="Speed",
                           doc="Simulated time per wall-clock time.")
    window = param.Number(default=1000.0, bounds=(200.0, 5000.0), label="Window (ms)",
                          doc="Time shown in the raster, rate and potential plots (ms).")
    n_show = param.Integer(default=500, bounds=(50, 4000), label="Raster neurons",
                           doc="Neurons shown in the raster (80 % excitatory, bottom).")
    stats_window = param.Number(default=5000.0, bounds=(500.0, 60000.0), label="Statistics window (ms)",
                                doc="Spikes of the last this many ms enter the ISI / CV histograms and the "
                                    "mean rate and CV in the status line.")
    record = param.List(default=[0, 1, 3200], item_type=int, doc="Neurons whose potential is plotted.")
    chunk_ms = param.Number(default=20.0, bounds=(1.0, 500.0), doc="Simulated ms per compiled call.")
    period_ms = param.Integer(default=100, bounds=(20, 2000), doc="Page update period (ms).")
    MAX_RASTER = 60_000  # points sent to the browser per frame (reference/performance.md 3.2)

    status = param.String(default="", constant=True, doc="Simulated time, rate, CV, speed.")
    error = param.String(default="", constant=True, doc="Last error, shown in the page.")
    frames_produced = param.Integer(default=0, constant=True)
    frames_shown = param.Integer(default=0, constant=True)

    def __init__(self, net_params: EIParams | None = None, **params):
        if net_params is not None:
            params["model"] = net_params.model
        super().__init__(**params)
        CommandWorker.__init__(self, "dynamics")
        self.running = False
        self.waiting = False
        self._next_publish = 0.0
        self.net_params = net_params if net_params is not None else make_params(self.model)
        if self.model != "cuba":
            self.param.regime.objects = ["benchmark"]
        self._mailbox: Snapshot | None = None
        self._seq_shown = -1
        self._callback = None
        self._cost = deque(maxlen=50)  # (wall s, simulated ms) of recent chunks
        self._build_plots()
        self._controls = pn.Column(sizing_mode="stretch_width")
        self._refresh_controls()
        # Nothing is built or simulated yet: on a served page the worker starts once the browser's
        # websocket is connected (start_streaming -> pn.state.onload) and builds the network when it
        # holds one of the server's training slots (workbench/server/limits.py); a plain GET costs nothing.
        self._net: EINetwork | None = None
        self._ring: _Ring | None = None
        doc = pn.state.curdoc
        if doc is None or doc.session_context is None:  # scripts, notebooks, tests: at once
            self.start()

    def start(self, pool=None) -> None:
        """Start the worker (idempotent); with a ``pool`` it simulates only while holding a slot."""
        if pool is not None:
            self.pool = pool
        CommandWorker.start(self)
        if self.playing and not (self.running or self.waiting):
            self._play()

    def slot_wait_text(self) -> str | None:
        """The page's note while it waits for a training slot (None when not waiting)."""
        pool = self.pool
        if pool is None or not self.playing or not self.waiting:
            return None
        place = self.slot_position()
        if place is None:
            return None
        return (f"**waiting for a free simulation slot** (place {place} in the queue; this server runs at most "
                f"{pool.size} trainings and simulations at once)")

    # ------------------------------------------------------------------ control (UI thread)
    def reset(self, *_):
        """Back to t = 0 with the same connectivity."""
        self._queue(("reset",))

    def rebuild(self, *_):
        """New connectivity from the current parameters."""
        self._queue(("rebuild",))

    def close(self) -> None:
        """Stop the worker and the page callback; gives the slot back (idempotent)."""
        if self._callback is not None:
            try:
                self._callback.stop()
            except Exception:  # already stopped with its session
                pass
            self._callback = None
        self._close_worker(1.0)

    def _queue(self, cmd) -> None:
        """Run ``cmd`` in the worker between two chunks (and show the result while paused)."""
        def run():
            self._apply(cmd)
            if not self.running:        # a paused page shows the change at once
                self._show_paused()
        self._submit(run, cmd[0])

    @param.depends("playing", watch=True)
    def _on_play(self):
        if not self.playing:
            self._halt()
            self._submit(self._show_paused, "pause")   # a paused page shows its last state once
        elif not (self.running or self.waiting) and self.alive:
            if self.error:
                self._set_state(error="")
            self._play()

    @param.depends("model", watch=True)
    def _on_model(self):
        self.net_params = make_params(self.model, seed=self.net_params.seed)
        self.param.regime.objects = list(REGIMES) if self.model == "cuba" else ["benchmark"]
        with param.parameterized.discard_events(self):
            self.regime = "benchmark"
        self._refresh_controls()
        self._queue(("new", self.net_params))

    @param.depends("regime", watch=True)
    def _on_regime(self):
        p = self.net_params
        values = {k: p.param[k].default for k in LIVE}
        if self.model == "cuba":
            values.update(REGIMES[self.regime])
        p.param.update(**values)

    def _refresh_controls(self):
        widgets = {k: {"type": pn.widgets.FloatSlider, "throttled": True} for k in LIVE}
        self._controls[:] = [pn.Param(self.net_params, parameters=LIVE, widgets=widgets, show_name=False,
                                      sizing_mode="stretch_width")]

    # ------------------------------------------------------------------ worker thread (CommandWorker hooks)
    def _set_state(self, **values) -> None:
        error = values.pop("error", None)
        for key, value in values.items():
            setattr(self, key, value)
        if error is not None:
            with param.edit_constant(self):
                self.error = error
            if error:                     # a failed chunk pauses the page (Play starts it again)
                self.playing = False

    def _step_interval(self) -> float:
        factor = SPEEDS[self.speed]
        return self.chunk_ms / 1e3 / factor if factor > 0 else 0.0

    def _train_step(self) -> None:
        """Simulate one chunk (the network is built by the first slot this page gets)."""
        if self._net is None:
            self._build_network()
        chunk = self._net.run(self.chunk_ms, record=self._rec_idx())
        self._ring.add(chunk)
        self._cost.append((chunk.wall, chunk.n_steps * chunk.dt))
        now = time.perf_counter()
        if now >= self._next_publish:
            self._publish()
            self._next_publish = now + self.period_ms / 1e3 * 0.9

    def _build_network(self) -> None:
        self._net = EINetwork(self.net_params)
        self._ring = _Ring(self.window, self.net_params.dt, len(self._rec_idx()), self.stats_window)

    def _show_paused(self) -> None:
        if self._net is not None:
            self._publish()

    def _rec_idx(self) -> np.ndarray:
        n = self._net.params.n_neurons
        return np.array([i for i in self.record if 0 <= i < n], np.int64)

    def _apply(self, cmd):
        kind = cmd[0]
        if self._net is None:           # nothing built yet: the first chunk builds from net_params
            return
        if kind == "new":
            self._net = EINetwork(cmd[1])
        elif kind == "rebuild":
            self._net.rebuild()
        elif kind == "reset":
            if self._net.needs_rebuild:
                self._net.rebuild()
            else:
                self._net.reset()
        self._ring = _Ring(self.window, self._net.params.dt, len(self._rec_idx()), self.stats_window)
        self._cost.clear()
        with param.edit_constant(self):
            self.error = ""

    def _compute_per_sim_second(self) -> float:
        # median over recent chunks: the first chunk may include compilation
        ratios = sorted(w / (ms / 1e3) for w, ms in self._cost if ms > 0)
        return ratios[len(ratios) // 2] if ratios else float("nan")

    def _publish(self):
        p = self._net.params
        ring = self._ring
        n, n_exc = p.n_neurons, p.n_exc
        n_show = min(self.n_show, n)
        show_e = int(round(n_show * n_exc / n)) if n else 0
        show_i = n_show - show_e
        t_end = ring.t_end
        win = min(self.window, max(t_end, p.dt))
        stat_win = min(ring.spike_length, max(t_end, p.dt))
        if ring.spike_t.size:  # the spike cap may have shortened the statistics window
            stat_win = min(stat_win, max(t_end - ring.spike_t[0], p.dt))
        i = ring.spike_i
        is_e = i < n_exc
        sel = ((is_e & (i < show_e)) | (~is_e & (i < n_exc + show_i))) & (ring.spike_t > t_end - win)
        if np.count_nonzero(sel) > self.MAX_RASTER:  # keep the newest points only
            sel &= np.cumsum(sel[::-1])[::-1] <= self.MAX_RASTER
        rows = np.where(is_e, i, i - n_exc + show_e)[sel].astype(np.uint16)
        rate_bin = 2.0
        k = max(int(round(rate_bin / p.dt)), 1)
        pop = ring.pop[-int(round(win / p.dt)) // k * k:] if t_end > 0 else ring.pop[:0]
        rate = pop.reshape(-1, k).sum(axis=1) / (n * k * p.dt * 1e-3) if pop.size else np.zeros(0)
        rate_t = t_end - (len(rate) - np.arange(len(rate)) - 0.5) * rate_bin
        n_v = min(ring.v.shape[1], int(round(win / p.dt)))
        stride = max(n_v // 2000, 1)
        v = ring.v[:, ring.v.shape[1] - n_v::stride]
        v_t = t_end - (n_v - np.arange(0, n_v, stride)) * p.dt + p.dt
        intervals = isis(ring.spike_t, ring.spike_i)
        isi_counts, isi_edges = np.histogram(intervals, bins=40, range=(0.0, 200.0))
        cv = isi_cv(ring.spike_t, ring.spike_i, n)
        cv = cv[np.isfinite(cv)]
        cv_counts, cv_edges = np.histogram(cv, bins=30, range=(0.0, 3.0))
        rate_hz = ring.spike_i.size / n / (stat_win * 1e-3)
        stats = dict(t=t_end / 1e3, rate=rate_hz, cv=float(cv.mean()) if cv.size else float("nan"),
                     rtf=self._compute_per_sim_second(),
                     synapses=self._net.n_synapses, playing=self.playing)
        self._mailbox = Snapshot(
            seq=(self._mailbox.seq + 1) if self._mailbox else 0, t_end=t_end / 1e3,
            spike_t=(ring.spike_t[sel] / 1e3).astype(np.float32), spike_row=rows,
            spike_kind=(~is_e[sel]).astype(np.uint8), rate_t=(rate_t / 1e3).astype(np.float32),
            rate=rate.astype(np.float32), v_t=(v_t / 1e3).astype(np.float32), v=v.astype(np.float32),
            isi_edges=isi_edges.astype(np.float32), isi_counts=isi_counts.astype(np.float32),
            cv_edges=cv_edges.astype(np.float32), cv_counts=cv_counts.astype(np.float32), stats=stats)
        with param.edit_constant(self):
            self.frames_produced += 1

    # ------------------------------------------------------------------ page (session IOLoop)
    def _build_plots(self):
        kw = dict(sizing_mode="stretch_width", toolbar_location=None, output_backend="canvas")
        self._x = Range1d(0.0, self.window / 1e3)
        self.raster_src = ColumnDataSource(dict(t=np.zeros(0, np.float32), row=np.zeros(0, np.uint16),
                                                kind=np.zeros(0, np.uint8)), name="dynamics-raster")
        self.raster_fig = figure(height=260, x_range=self._x, y_range=Range1d(-1, self.n_show + 1),
                                 title="Spike raster (blue: excitatory, red: inhibitory)", **kw)
        self.raster_fig.scatter("t", "row", source=self.raster_src, size=2, line_color=None,
                                color=linear_cmap("kind", [E_COLOR, I_COLOR], 0, 1))
        self.raster_fig.yaxis.axis_label = "neuron"
        self.rate_src = ColumnDataSource(dict(t=np.zeros(0, np.float32), rate=np.zeros(0, np.float32)),
                                         name="dynamics-rate")
        self.rate_fig = figure(height=150, x_range=self._x, title="Population rate (2 ms bins)", **kw)
        self.rate_fig.line("t", "rate", source=self.rate_src, color="black")
        self.rate_fig.yaxis.axis_label = "Hz"
        cols = {f"v{k}": np.zeros(0, np.float32) for k in range(len(self.record))}
        self.v_src = ColumnDataSource(dict(t=np.zeros(0, np.float32), **cols), name="dynamics-v")
        self.v_fig = figure(height=180, x_range=self._x, y_range=Range1d(-75, -35),
                            title=f"Membrane potential of neurons {self.record}", **kw)
        for k, color in zip(range(len(self.record)), ["#1f5fa8", "#2ca02c", "#c8302b", "#9467bd"]):
            self.v_fig.line("t", f"v{k}", source=self.v_src, color=color, legend_label=f"#{self.record[k]}")
        self._th = Span(location=-50, dimension="width", line_dash="dashed", line_color="gray")
        self.v_fig.add_layout(self._th)
        self.v_fig.legend.location = "top_left"
        self.v_fig.xaxis.axis_label = "time (s)"
        self.v_fig.yaxis.axis_label = "mV"
        self.isi_src = ColumnDataSource(dict(left=np.zeros(0, np.float32), right=np.zeros(0, np.float32),
                                             top=np.zeros(0, np.float32)), name="dynamics-isi")
        self.isi_fig = figure(height=200, title="ISI histogram (last 5 s)", **kw)
        self.isi_fig.quad(left="left", right="right", top="top", bottom=0, source=self.isi_src, color="#555")
        self.isi_fig.xaxis.axis_label = "ISI (ms)"
        self.cv_src = ColumnDataSource(dict(left=np.zeros(0, np.float32), right=np.zeros(0, np.float32),
                                            top=np.zeros(0, np.float32)), name="dynamics-cv")
        self.cv_fig = figure(height=200, title="ISI CV per neuron (last 5 s)", **kw)
        self.cv_fig.quad(left="left", right="right", top="top", bottom=0, source=self.cv_src, color="#888")
        self.cv_fig.add_layout(Span(location=1.0, dimension="height", line_dash="dashed", line_color="red"))
        self.cv_fig.xaxis.axis_label = "CV (Poisson = 1)"

    def update(self):
        """Periodic callback: take the newest snapshot and redraw (runs on the session's IOLoop)."""
        try:
            waiting = self.slot_wait_text()
            if waiting is not None:
                if self.status != waiting:
                    with param.edit_constant(self):
                        self.status = waiting
                return
            snap = self._mailbox
            if snap is None or snap.seq == self._seq_shown:
                return
            self._seq_shown = snap.seq
            n_rec = snap.v.shape[0]
            with pn.io.hold():
                self.raster_src.data = dict(t=snap.spike_t, row=snap.spike_row, kind=snap.spike_kind)
                self.rate_src.data = dict(t=snap.rate_t, rate=snap.rate)
                vcols = {f"v{k}": (snap.v[k] if k < n_rec else np.full(len(snap.v_t), np.nan, np.float32))
                         for k in range(len(self.record))}
                self.v_src.data = dict(t=snap.v_t, **vcols)
                self.isi_src.data = dict(left=snap.isi_edges[:-1], right=snap.isi_edges[1:], top=snap.isi_counts)
                self.cv_src.data = dict(left=snap.cv_edges[:-1], right=snap.cv_edges[1:], top=snap.cv_counts)
                start = max(snap.t_end - self.window / 1e3, 0.0)
                self._x.start, self._x.end = start, start + self.window / 1e3
                self.raster_fig.y_range.end = min(self.n_show, self._net.params.n_neurons) + 1
                self._th.location = self._net.params.v_th
                s = snap.stats
                with param.edit_constant(self):
                    self.frames_shown += 1
                    self.status = (("**paused** · " if not s["playing"] else "")
                                   + f"t = {s['t']:.2f} s simulated · mean rate {s['rate']:.2f} Hz · "
                                   f"mean ISI CV {s['cv']:.2f} · {s['synapses']:,} synapses · "
                                   f"{s['rtf']:.3f} s compute per simulated s · "
                                   f"frames shown/produced {self.frames_shown}/{self.frames_produced}")
        except Exception as exc:
            log.exception("dynamics page update")
            with param.edit_constant(self):
                self.error = f"display error: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=2)}"

    def start_streaming(self):
        """Attach the periodic callback to the current session and stop everything with it."""
        if self._callback is not None or pn.state.curdoc is None:
            return
        self._callback = pn.state.add_periodic_callback(self.update, period=self.period_ms)
        self.start_when_connected()

    def __panel__(self):
        self.start_streaming()
        play = pn.widgets.Toggle.from_param(self.param.playing, name="▶ Play / ❚❚ Pause", button_type="primary")
        reset = pn.widgets.Button(label="Reset", button_type="default")
        reset.on_click(self.reset)
        new = pn.widgets.Button(label="New connectivity", button_type="default")
        new.on_click(lambda e: (self.net_params.param.update(seed=self.net_params.seed + 1), self.rebuild()))
        status = pn.pane.Markdown(self.param.status, sizing_mode="stretch_width", name="status")
        error = pn.pane.Alert(self.param.error, alert_type="danger",
                              visible=self.param.error.rx.pipe(bool), sizing_mode="stretch_width")
        sidebar = pn.Column(
            pn.widgets.RadioButtonGroup.from_param(self.param.model, button_type="default"),
            pn.widgets.Select.from_param(self.param.regime),
            pn.Row(play, reset), new,
            pn.widgets.Select.from_param(self.param.speed),
            "#### Live parameters", self._controls,
            sizing_mode="stretch_width")
        main = pn.Column(
            status, error,
            pn.pane.Bokeh(self.raster_fig, sizing_mode="stretch_width"),
            pn.pane.Bokeh(self.rate_fig, sizing_mode="stretch_width"),
            pn.pane.Bokeh(self.v_fig, sizing_mode="stretch_width"),
            pn.Row(pn.pane.Bokeh(self.isi_fig, sizing_mode="stretch_width"),
                   pn.pane.Bokeh(self.cv_fig, sizing_mode="stretch_width"), sizing_mode="stretch_width"),
            sizing_mode="stretch_width")
        return pn.Row(pn.Column(sidebar, width=320), main, sizing_mode="stretch_width")
