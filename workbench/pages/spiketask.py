"""NormAD learning a spike task live: spike XOR or spike-train mapping.

A :class:`SpikeTaskDemo` owns an :class:`spikewb.engine.training.tasks.TaskTrainer` that a worker
thread steps (one pattern per step) while the page shows, at 10 Hz, the newest
Frame: the input, hidden and output spikes with the desired output spikes
overlaid, the output neuron's potential with threshold and error marks, and the
per-epoch metrics (correlation, van Rossum distance, patterns matched).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, Range1d, Span

from spikewb.engine.rules.normad import NormAD
from spikewb.engine.training.tasks import TaskTrainer, mapping_task, xor_task

from spikewb.workbench.pages.teaching import Demo, _fig
from spikewb.workbench.sessions.slots import SlotUser
from spikewb.workbench.sessions.worker import CommandWorker
from spikewb.workbench.views.base import owned as _own

log = logging.getLogger(__name__)

LAYER_COLORS = ("#7f7f7f", "#1f77b4", "#2ca02c", "#9467bd", "#d62728")


class SpikeTaskDemo(Demo, CommandWorker, SlotUser):
    """Supervised spike learning with NormAD, one pattern at a time.

    The background work is the project's one worker (:class:`CommandWorker`):
    Step, Reset and rate changes are commands run between two patterns,
    Train / Pause take and give back a training slot of the server, and an
    exception stops training and shows in the status until the next start.
    """

    tutorial = "xor"

    task = param.Selector(default="xor", objects=["xor", "mapping"], label="Task",
                          doc="xor: two inputs coded as spike patterns, output spike at 25 ms (XOR 1) or "
                              "35 ms (XOR 0); mapping: Poisson inputs to a teacher-generated target train.")
    seed = param.Integer(0, bounds=(0, 2**31 - 1), label="Seed",
                         doc="Seeds the task (patterns, teacher) and the initial weights.")
    lr = param.Number(0.2, bounds=(0.0, 10.0), softbounds=(0.0, 1.0), step=0.01, label="Output learning rate (nA)",
                      doc="NormAD's output-layer rate (authors' code: 0.2 nA).")
    lr_hidden = param.Number(0.01, bounds=(0.0, 10.0), softbounds=(0.0, 0.1), step=0.001,
                             label="Hidden learning rate (nA)", doc="Multi-layer NormAD hidden-layer rate (tuned).")
    max_epochs = param.Integer(300, bounds=(1, 100_000), softbounds=(10, 1000), label="Stop after epochs",
                               doc="Training pauses after this many epochs.")
    stop_converged = param.Boolean(True, label="Stop when converged",
                                   doc="Pause once every pattern's output matches its target within 1 ms.")
    speed = param.Number(0.0, bounds=(0.0, 1000.0), softbounds=(0.0, 200.0), step=5.0,
                         label="Speed (patterns/s, 0 = full)", doc="Slow training down to watch it.")
    epoch = param.Integer(0, constant=True, label="Epoch", doc="Completed epochs (read-only).")
    status = param.String("ready", constant=True, label="Status", doc="What the trainer is doing.")

    url_keys = ("task", "seed", "lr", "lr_hidden", "max_epochs", "stop_converged", "speed")
    controls = (*url_keys, "epoch", "status")

    def __init__(self, **params):
        super().__init__(**params)
        CommandWorker.__init__(self, "spiketask")
        self.title = "Spike XOR with NormAD" if self.task == "xor" else "Spike-train mapping with NormAD"
        self.tutorial = "xor" if self.task == "xor" else "mapping"
        # worker state (CommandWorker): written by the worker thread, shown by the page's callback
        self.running = False
        self.waiting = False
        self.error = ""
        self._status_text = "ready"
        self._last_publish = 0.0
        self._latest = None
        self._shown = None
        self._callback = None
        self.trainer = self._new_trainer()
        self.play_button = pn.widgets.Button(label="Train", button_type="primary", width=90)
        self.step_button = pn.widgets.Button(label="Step", width=70)
        self.reset_button = pn.widgets.Button(label="Reset", width=70)
        self.error_box = pn.pane.Alert("", alert_type="danger", visible=False)
        self.play_button.on_click(lambda *_: self.toggle())
        self.step_button.on_click(lambda *_: self._submit(self._step_once, "step"))
        self.reset_button.on_click(lambda *_: self._submit(self._reset, "reset"))
        self._build_plots()
        self.param.watch(lambda *_: self._submit(self._reset, "reset"), ["task", "seed"])
        self.param.watch(lambda *_: self._submit(self._apply_rates, "learning rates"), ["lr", "lr_hidden"])
        # On a served page the worker starts once the browser's websocket is connected
        # (start_streaming -> pn.state.onload) and trains only while it holds one of the
        # server's training slots (workbench/server/limits.py); a plain GET starts nothing.
        doc = pn.state.curdoc
        if doc is None or doc.session_context is None:  # scripts, notebooks, tests: at once
            self.start()

    def start(self, pool=None) -> None:
        """Start the worker thread (idempotent); with a ``pool`` it trains only while holding a slot."""
        if pool is not None:
            self.pool = pool
        CommandWorker.start(self)

    # ------------------------------------------------------------------ model
    def _new_trainer(self) -> TaskTrainer:
        rule = NormAD(lr=self.lr, lr_hidden=self.lr_hidden)
        task = xor_task(seed=self.seed) if self.task == "xor" else mapping_task(seed=self.seed)
        return TaskTrainer(rule, task, seed=self.seed)

    def toggle(self) -> None:
        """Train, or pause (also leaves the queue for a slot)."""
        if self.running or self.waiting:
            self._halt()
            self._status_text = "paused"
        else:
            if self.error:                  # a new start after an error begins from a fresh trainer
                self._set_state(error="")
                self._submit(self._reset, "reset")
            self._play()
            self._status_text = "training"

    # ------------------------------------------------------------------ worker thread (commands, steps)
    def _reset(self) -> None:
        self.trainer = self._new_trainer()
        self._set_state(error="")
        self._latest = None
        self._shown = None

    def _apply_rates(self) -> None:
        self.trainer.rule.param.update(lr=self.lr, lr_hidden=self.lr_hidden)

    def _step_once(self) -> None:
        self._advance(publish=True)

    def _train_step(self) -> None:
        self._advance(publish=False)

    def _advance(self, publish: bool) -> None:
        """One pattern; the page sees at most ~20 frames per second."""
        frame = self.trainer.step()
        hist = list(self.trainer.history)
        now = time.perf_counter()
        if publish or now - self._last_publish > 0.05:
            self._latest = (frame, hist)
            self._last_publish = now
        if self.running and (len(hist) >= self.max_epochs or (self.stop_converged and self.trainer.converged)):
            self._latest = (frame, hist)
            self._halt()
            self._status_text = "converged" if self.trainer.converged else f"stopped at {len(hist)} epochs"

    def status_text(self) -> str:
        """What the worker is doing, for the page's status field."""
        if self.error:
            return f"error: {self.error}"
        if self.waiting:
            return self.waiting_text()
        return self._status_text

    def close(self) -> None:
        """Stop the worker and the page callback; gives the slot back (idempotent)."""
        if self._callback is not None:
            self._callback.stop()
            self._callback = None
        self._close_worker(2.0)

    # ------------------------------------------------------------------ views
    def _build_plots(self):
        self.raster_src = ColumnDataSource(dict(t=[], y=[], c=[]))
        self.desired_src = ColumnDataSource(dict(t=[], y=[]))
        self.v_src = ColumnDataSource(dict(t=[], v=[]))
        self.out_src = ColumnDataSource(dict(t=[], y=[]))
        self.des_v_src = ColumnDataSource(dict(t=[], y=[]))
        self.err_plus = ColumnDataSource(dict(t=[], y=[]))
        self.err_minus = ColumnDataSource(dict(t=[], y=[]))
        self.metric_src = ColumnDataSource(dict(epoch=[], corr=[], matched=[], dist=[]))
        self.raster_fig = _fig("Spikes of this pattern (desired output: red crosses)", "time (ms)", "neuron",
                               height=300, x_range=Range1d(0, 50))
        self.raster_fig.scatter("t", "y", source=self.raster_src, color="c", size=4)
        self.raster_fig.scatter("t", "y", source=self.desired_src, marker="x", size=14, line_width=3,
                                color="#d62728", legend_label="desired")
        self.raster_fig.legend.location = "top_left"
        self.v_fig = _fig("Output neuron potential", "time (ms)", "V (mV)", height=240,
                          x_range=self.raster_fig.x_range)
        self.v_fig.line("t", "v", source=self.v_src, line_width=2, legend_label="V")
        self.v_fig.scatter("t", "y", source=self.out_src, marker="triangle", size=11, color="#1f77b4",
                           legend_label="output spike")
        self.v_fig.scatter("t", "y", source=self.des_v_src, marker="x", size=14, line_width=3, color="#d62728",
                           legend_label="desired spike")
        # fixed colours: a legend entry for a colour *column* breaks in the browser when it is empty
        self.v_fig.scatter("t", "y", source=self.err_plus, marker="circle", size=9, color="#2ca02c", alpha=0.8,
                           legend_label="error + (missing spike)")
        self.v_fig.scatter("t", "y", source=self.err_minus, marker="circle", size=9, color="#ff7f0e", alpha=0.8,
                           legend_label="error - (extra spike)")
        self.v_th_line = Span(location=20.0, dimension="width", line_dash="dashed", line_color="#d62728")
        self.v_fig.add_layout(self.v_th_line)
        self.v_fig.legend.location = "bottom_left"
        self.metric_fig = _fig("Per epoch: correlation and patterns matched (within 1 ms)", "epoch", "fraction",
                               height=220, y_range=Range1d(-0.02, 1.02))
        self.metric_fig.line("epoch", "corr", source=self.metric_src, line_width=2, legend_label="correlation")
        self.metric_fig.line("epoch", "matched", source=self.metric_src, line_width=2, color="#2ca02c",
                             legend_label="matched")
        self.metric_fig.legend.location = "bottom_right"
        self.dist_fig = _fig("Per epoch: van Rossum distance", "epoch", "distance", height=180)
        self.dist_fig.line("epoch", "dist", source=self.metric_src, line_width=2, color="#9467bd")
        self.info = pn.pane.Markdown("", css_classes=["task-info"])

    def update(self) -> None:
        status = self.status_text()
        if self.status != status:
            with param.edit_constant(self):
                self.status = status
        label = "Pause" if self.running or self.waiting else "Train"
        if self.play_button.label != label:
            self.play_button.label = label
        latest = self._latest
        if latest is None or latest is self._shown:
            return
        self._shown = latest
        frame, hist = latest
        ts, ys, cs = [], [], []
        offset = 0
        for l in range(frame.n_layers):
            t, i = frame.spikes(l)
            ts.append(t)
            ys.append(i + offset)
            cs.extend([LAYER_COLORS[min(l, len(LAYER_COLORS) - 1)]] * len(t))
            offset += frame.layer_sizes[l] + 2
        out_off = offset - frame.layer_sizes[-1] - 2
        dt_, di = frame.extras.get("desired_t", np.zeros(0)), frame.extras.get("desired_i", np.zeros(0))
        with pn.io.hold():
            self.raster_src.data = dict(t=_own(np.concatenate(ts)), y=_own(np.concatenate(ys), np.int32), c=cs)
            self.desired_src.data = dict(t=_own(dt_), y=_own(np.asarray(di) + out_off, np.int32))
            self.raster_fig.x_range.end = frame.duration
            v = frame.v_trace[0] if frame.v_trace.size else np.zeros(0)
            tv = np.arange(len(v)) * (frame.duration / max(len(v), 1))
            self.v_src.data = dict(t=_own(tv), v=_own(v))
            top = frame.v_th + 5.0
            ot = frame.extras.get("output_t", np.zeros(0))
            self.out_src.data = dict(t=_own(ot), y=_own(np.full(len(ot), top)))
            self.des_v_src.data = dict(t=_own(dt_), y=_own(np.full(len(dt_), top + 4)))
            et = frame.extras.get("error_t", np.zeros(0))
            sign = frame.extras.get("error_sign", np.zeros(len(et)))
            sign = np.asarray(sign)
            for src, sel in ((self.err_plus, sign > 0), (self.err_minus, sign <= 0)):
                src.data = dict(t=_own(np.asarray(et)[sel]), y=_own(np.full(int(sel.sum()), frame.v_th)))
            self.v_th_line.location = frame.v_th
            if hist:
                self.metric_src.data = dict(epoch=[h.epoch for h in hist], corr=[h.correlation for h in hist],
                                            matched=[float(np.mean(h.matched)) for h in hist],
                                            dist=[h.distance for h in hist])
            with param.edit_constant(self):
                self.epoch = len(hist)
            pattern = frame.label
            names = {0: "0 XOR 0", 1: "0 XOR 1", 2: "1 XOR 0", 3: "1 XOR 1"} if self.task == "xor" else {}
            self.info.object = (f"**Pattern** {names.get(pattern, pattern)} · output spikes "
                                f"{len(ot)} · desired {len(dt_)} · correlation {float(frame.extras.get('correlation', 0)):.3f}")

    def start_streaming(self) -> None:
        if self._callback is None:
            self._callback = pn.state.add_periodic_callback(self.update, period=100)
            self.start_when_connected()

    def set_scale(self, s: float):
        for f, h in ((self.raster_fig, 300), (self.v_fig, 240), (self.metric_fig, 220), (self.dist_fig, 180)):
            f.height = int(h * s)

    def __panel__(self):
        buttons = pn.Row(self.play_button, self.step_button, self.reset_button, self.info)
        return pn.Column(buttons, self.error_box,
                         *(pn.pane.Bokeh(f, sizing_mode="stretch_width")
                           for f in (self.raster_fig, self.v_fig, self.metric_fig, self.dist_fig)),
                         sizing_mode="stretch_width")
