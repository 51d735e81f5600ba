"""The tau-sweep experiment of multi-spike timing BP as a panel of the trainer page.

The paper's central finding is that the spike count of a multi-spike network,
and its accuracy, depend on the synaptic and membrane time constants.  This
panel runs the engine's study (:func:`spikewb.engine.training.experiments.tau_sweep`) on
the page's dataset with the page's hyperparameters: for each chosen ``tau_s``
(``tau_m = ratio * tau_s``) a fresh small network is trained, and the same
network restricted to one spike per neuron is trained next to it.  It plots
test accuracy and mean spikes per neuron against ``tau_s`` for both.

The run happens on the project's one background worker
(:class:`~spikewb.workbench.sessions.worker.CommandWorker`, a thread of its own
beside the page's training worker), one time constant per step; the page reads
its progress and rows with :meth:`TauSweepPanel.poll`, called from a periodic
callback that exists only while a run is in progress.  The
defaults are deliberately small (5 time constants, 600 training and 200 test
samples, one 100-neuron hidden layer: about 10 s alone on one core, 20-30 s
next to a training page on a 2-core machine; one epoch of so few samples
already shows the shape of the curve); the settings are bounded so a click
cannot start an hours-long job (use ``spikewb experiment tau-sweep`` for full
runs).

A sweep trains, so on a served page it takes one of the server's training
slots for its duration (the pool of the page's session,
:mod:`spikewb.workbench.server.limits`), in the same first-come queue as the training
pages.  While every slot is in use the panel says so with its place in the
queue and waits; if none frees within ``SLOT_WAIT_S`` (two minutes) it gives
up with a message rather than start long after the click.  Cancel leaves
the queue.  A session without a pool (scripts, tests) needs no slot.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, Range1d

from spikewb.engine.training import experiments
from spikewb.workbench.sessions.worker import CommandWorker
from spikewb.workbench.views.base import make_figure, set_range

log = logging.getLogger(__name__)

#: Rule parameters the sweep sets itself (everything else comes from the page's rule).
SWEPT = ("tau_s", "tau_m")
#: Colours of the multi-spike and single-spike curves.
MODE_COLORS = {"multi": "#1f77b4", "single": "#ff7f0e"}
#: One sweep at a time per server process: the pages' training workers share the same cores.
_SWEEP_SLOT = threading.Lock()


class _Cancelled(Exception):
    """Raised inside the sweep's progress callback to stop it."""


def parse_taus(text: str) -> list[float]:
    """Comma-separated positive values in ms, sorted and de-duplicated.

    >>> parse_taus("5, 2.5,10, 5")
    [2.5, 5.0, 10.0]
    """
    try:
        values = sorted({float(v) for v in str(text).replace(";", ",").split(",") if v.strip()})
    except ValueError:
        raise ValueError(f"time constants must be comma-separated numbers in ms, got {text!r}") from None
    if not values:
        raise ValueError("give at least one time constant tau_s (ms)")
    if any(not np.isfinite(v) or v <= 0 for v in values):
        raise ValueError(f"time constants must be positive, got {values}")
    return values


class TauSweepPanel(pn.viewable.Viewer, CommandWorker):
    """Controls, progress and result plots of the tau sweep (multi-spike vs single-spike)."""

    taus = param.String("1, 2.5, 5, 10, 20", label="tau_s values (ms, comma-separated)",
                        doc="Synaptic time constants to train at; tau_m = ratio * tau_s. At most 8.")
    ratio = param.Number(2.0, bounds=(0.05, 20.0), step=0.1, label="Ratio tau_m / tau_s",
                         doc="2 uses the closed-form spike-time solver (fast); other ratios use bracketed Newton.")
    n_train = param.Integer(600, bounds=(10, 2000), label="Training samples per setting",
                            doc="First N training samples of the page's dataset (one epoch).")
    n_test = param.Integer(200, bounds=(10, 1000), label="Test samples",
                           doc="First N test samples: accuracy and mean spike counts.")
    hidden = param.Integer(100, bounds=(1, 1000), label="Hidden neurons",
                           doc="One hidden layer of this size (small keeps a run short).")
    single_spike = param.Boolean(True, label="Also train the single-spike version",
                                 doc="The same network with both spike buffers set to 1, trained next to it.")

    running = param.Boolean(False, constant=True, doc="Whether a sweep is in progress.")
    progress = param.Number(0.0, bounds=(0.0, 1.0), constant=True, doc="Fraction of training samples done.")

    MAX_TAUS = 8
    #: Longest wait for a free training slot (s) before the run gives up.
    SLOT_WAIT_S = 120.0

    #: Steps (one time constant each) as fast as they go (CommandWorker pacing).
    speed = 0.0

    def __init__(self, session, visible: bool | None = None, **params):
        super().__init__(**params)
        CommandWorker.__init__(self, "spikewb-tau-sweep")
        self.session = session
        self.rows: list[dict] = []
        self.error = ""
        self.waiting = False
        self._lock = threading.Lock()
        self._pending: list[dict] = []
        self._fraction = 0.0
        self._cancel = threading.Event()
        self._active = False          # a sweep was started and has not ended
        self._finished = False
        self._callback = None
        self._started = 0.0
        self._no_slot = False
        self._plan: list[float] = []
        self._kwargs: dict = {}
        self._n_settings = 0
        self._deadline = 0.0
        #: The card (~130 Bokeh models) is built when the page first trains multi-spike BP;
        #: until then the page holds this empty slot.
        self.slot = pn.Column(sizing_mode="stretch_width", margin=0)
        self.card: pn.Card | None = None
        shown = session.rule_name == "multispike" if visible is None else visible
        if shown:
            self._build()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        if self.card is not None:
            return
        w = dict(sizing_mode="stretch_width", margin=(2, 8))
        self.taus_input = pn.widgets.TextInput.from_param(self.param.taus, css_classes=["wb-tau-values"], **w)
        self.ratio_input = pn.widgets.FloatInput.from_param(self.param.ratio, **w)
        self.train_input = pn.widgets.IntInput.from_param(self.param.n_train, css_classes=["wb-tau-train"], **w)
        self.test_input = pn.widgets.IntInput.from_param(self.param.n_test, css_classes=["wb-tau-test"], **w)
        self.hidden_input = pn.widgets.IntInput.from_param(self.param.hidden, **w)
        self.single_box = pn.widgets.Checkbox.from_param(self.param.single_spike, **w)
        self.run_button = pn.widgets.Button(label="Run sweep", button_type="primary", width=110,
                                            css_classes=["wb-tau-run"],
                                            description="Train one small network per tau_s (and its single-spike "
                                                        "twin) in the background; training on the page goes on. "
                                                        "The sweep takes one of the server's training slots "
                                                        "(it waits while all are in use).")
        self.cancel_button = pn.widgets.Button(label="Cancel", button_type="light", width=80, disabled=True,
                                               css_classes=["wb-tau-cancel"])
        self.run_button.on_click(lambda e: self.run())
        self.cancel_button.on_click(lambda e: self.cancel())
        self.bar = pn.indicators.Progress(value=0, max=1000, bar_color="primary", sizing_mode="stretch_width",
                                          height=14, margin=(6, 8), css_classes=["wb-tau-progress"])
        self.status = pn.pane.HTML("Not run yet.", css_classes=["wb-tau-status"], sizing_mode="stretch_width",
                                   styles={"font-size": "12px", "color": "#444"}, margin=(0, 8))
        self.sources = {m: ColumnDataSource(self._empty(), name=f"wb-tausweep-{m}") for m in MODE_COLORS}
        self.acc_fig = make_figure("Test accuracy vs tau_s", height=230, x_range=Range1d(1, 20),
                                   y_range=Range1d(0, 1), name="wb-tausweep-acc", x_axis_type="log")
        self.spk_fig = make_figure("Mean spikes per neuron vs tau_s", height=230, x_range=self.acc_fig.x_range,
                                   y_range=Range1d(0, 1), name="wb-tausweep-spikes", x_axis_type="log")
        for mode, color in MODE_COLORS.items():
            src = self.sources[mode]
            label = "multi-spike" if mode == "multi" else "single-spike"
            self.acc_fig.line("tau_s", "test_accuracy", source=src, color=color, line_width=2, legend_label=label)
            self.acc_fig.scatter("tau_s", "test_accuracy", source=src, color=color, size=7, legend_label=label)
            self.spk_fig.line("tau_s", "hidden_spikes", source=src, color=color, line_width=2,
                              legend_label=f"{label}, hidden")
            self.spk_fig.scatter("tau_s", "output_spikes", source=src, color=color, size=7, marker="square",
                                 legend_label=f"{label}, output")
        for fig, label in ((self.acc_fig, "test accuracy"), (self.spk_fig, "spikes per neuron")):
            fig.xaxis.axis_label = "tau_s (ms), log scale"
            fig.yaxis.axis_label = label
            legend = fig.legend[0]
            legend.label_text_font_size = "9px"
            legend.spacing, legend.padding, legend.border_line_color = 0, 2, None
            fig.add_layout(legend, "right")  # beside the plot: the points stay readable (rare updates)
        controls = pn.Column(self.taus_input, self.ratio_input, self.train_input, self.test_input,
                             self.hidden_input, self.single_box,
                             pn.Row(self.run_button, self.cancel_button, margin=(4, 4)),
                             width=300, margin=0)
        plots = pn.Column(pn.Row(pn.pane.Bokeh(self.acc_fig, sizing_mode="stretch_width"),
                                 pn.pane.Bokeh(self.spk_fig, sizing_mode="stretch_width"),
                                 sizing_mode="stretch_width"),
                          self.bar, self.status, sizing_mode="stretch_width")
        self.card = pn.Card(
            pn.pane.HTML("Trains a fresh small network per synaptic time constant on this page's dataset and "
                         "hyperparameters (tau_m = ratio &times; tau_s), and the same network allowed one spike "
                         "per neuron next to it. Full runs: <code>spikewb experiment tau-sweep</code>.",
                         styles={"font-size": "12px", "color": "#555"}, sizing_mode="stretch_width", margin=(0, 8)),
            pn.Row(controls, plots, sizing_mode="stretch_width"),
            title="Tau sweep: accuracy and spike count against the time constants", collapsed=True,
            sizing_mode="stretch_width", margin=(4, 4), css_classes=["wb-tausweep-card"])
        self.slot.objects = [self.card]

    def __panel__(self):
        return self.slot

    @staticmethod
    def _empty() -> dict:
        return dict(tau_s=[], test_accuracy=[], hidden_spikes=[], output_spikes=[])

    # ------------------------------------------------------------------ view protocol
    def update(self, snap) -> None:
        """Show the card only while the page trains multi-spike BP (a page view update)."""
        show = snap.rule == "multispike"
        if show:
            self._build()
        if self.card is not None and self.card.visible != show:
            self.card.visible = show

    # ------------------------------------------------------------------ running
    def settings(self) -> dict:
        """Keyword arguments of :func:`~spikewb.engine.training.experiments.tau_sweep` for the current choices."""
        taus = parse_taus(self.taus)
        if len(taus) > self.MAX_TAUS:
            raise ValueError(f"at most {self.MAX_TAUS} time constants per run, got {len(taus)}")
        rule = self.session.rule
        params = {k: v for k, v in rule.config().items() if k not in SWEPT} if rule.key == "multispike" else {}
        from spikewb.engine.neurons.cuba import check_taus
        for tau in taus:  # the kernels' limits, said before anything starts
            check_taus(float(self.ratio) * tau, tau, float(params.get("t_max", 30.0)))
        limits = getattr(self.session, "limits", None)
        if limits is not None:  # the server's limits, like the trainer's own network (event-driven: no T)
            from spikewb.workbench.server.limits import check_network
            data = self.session.trainer.data
            check_network((int(data.n_features), int(self.hidden), int(data.n_classes)), 0, limits)
        return dict(dataset=self.session.trainer.data, tau_s_values=tuple(taus), ratio=float(self.ratio),
                    epochs=1, n_train=int(self.n_train), n_test=int(self.n_test), hidden=(int(self.hidden),),
                    single_spike=bool(self.single_spike), seed=int(self.session.seed), **params)

    def run(self, background: bool = True) -> bool:
        """Start a sweep; False when refused.  ``background=False`` returns when it has ended."""
        if self.running or self._active:
            return False
        self._build()
        try:
            kwargs = self.settings()
        except Exception as exc:
            self.error = str(exc)
            self.status.object = f"&#9888; {exc}"
            return False
        if not _SWEEP_SLOT.acquire(blocking=False):
            self.error = "busy"
            self.status.object = ("&#9888; Another page of this server is running a tau sweep; "
                                  "try again when it has finished.")
            return False
        self.rows, self._pending, self._fraction, self.error, self._finished = [], [], 0.0, "", False
        self._no_slot = False
        self._cancel.clear()
        self._plan, self._kwargs = list(kwargs["tau_s_values"]), kwargs
        self._n_settings = len(self._plan)
        for src in self.sources.values():
            src.data = self._empty()
        with param.edit_constant(self):
            self.param.update(running=True, progress=0.0)
        self.run_button.disabled, self.cancel_button.disabled = True, False
        self.bar.value = 0
        n = len(kwargs["tau_s_values"]) * (2 if kwargs["single_spike"] else 1)
        self.status.object = f"Running {n} trainings of {kwargs['n_train']} samples ..."
        self._started = time.perf_counter()
        self.pool = getattr(self.session, "pool", None)   # the page session's training slots
        self._deadline = time.monotonic() + float(self.SLOT_WAIT_S)
        self._active = True
        self.start()
        self._play()                                       # trains now, or queues for a slot
        if not background:
            self.join()
            self.poll()
            return True
        self._start_polling()
        return True

    def cancel(self) -> None:
        """Stop the sweep after the sample in progress; a sweep still waiting leaves the queue."""
        self._cancel.set()
        if self._active and self.waiting:
            self._end("cancelled")

    def join(self, timeout: float | None = None) -> None:
        """Wait until the sweep has ended (tests, synchronous runs); gives up waiting for a slot
        after ``SLOT_WAIT_S``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._active and (deadline is None or time.monotonic() < deadline):
            self._check_wait()
            time.sleep(0.02)

    def close(self) -> None:
        """Cancel any sweep and end the worker thread (the page is going away)."""
        self.cancel()
        if self._callback is not None:
            self._callback.stop()
            self._callback = None
        self._close_worker(0.1)   # a step in progress stops at its next sample; the page need not wait

    # ------------------------------------------------------------------ worker (CommandWorker hooks)
    def _set_state(self, **values) -> None:
        values.pop("running", None)       # the panel's own ``running`` is set by poll() on the page's thread
        for key, value in values.items():
            setattr(self, key, value)

    def _slot_unwanted(self) -> bool:
        return self._cancel.is_set() or not self._active

    def _check_wait(self) -> None:
        """Give up when no slot freed within ``SLOT_WAIT_S`` (poll / join)."""
        if self._active and self.waiting and time.monotonic() >= self._deadline:
            self._no_slot = True
            self._end(f"no training slot freed within {self.SLOT_WAIT_S:.0f} s; every slot of this server "
                      "is training. Pause training on a page (this one included) or try again later")

    def _end(self, error: str) -> None:
        """End the sweep once: give the slot (or queue place) and the one-sweep lock back."""
        with self._lock:
            if not self._active:
                return
            self.error = error
            self._plan = []
        self._halt()
        _SWEEP_SLOT.release()
        self._finished = True
        self._active = False

    def _train_step(self) -> None:
        """One time constant: the multi-spike network and its single-spike twin."""
        if self._cancel.is_set():
            self._end("cancelled")
            return
        if not self._plan:
            self._end("")
            return
        done = self._n_settings - len(self._plan)
        if done == 0:
            self._started = time.perf_counter()  # the run's time, without the wait
        tau = self._plan[0]

        def on_row(row):
            with self._lock:
                self._pending.append(dict(row))

        def on_progress(fraction):
            if self._cancel.is_set():
                raise _Cancelled()
            self._fraction = (done + fraction) / max(self._n_settings, 1)

        try:
            experiments.tau_sweep(callback=on_row, progress=on_progress,
                                  **{**self._kwargs, "tau_s_values": (tau,)})
        except _Cancelled:
            self._end("cancelled")
            return
        except Exception as exc:  # shown in the panel, never swallowed
            log.exception("tau sweep failed")
            self._end(f"{type(exc).__name__}: {exc}")
            return
        with self._lock:
            if self._plan:
                self._plan.pop(0)
            last = not self._plan
        if last:
            self._end("")

    def _start_polling(self) -> None:
        if pn.state.curdoc is None or pn.state.curdoc.session_context is None:
            return
        self._callback = pn.state.add_periodic_callback(self.poll, period=400)

    def poll(self) -> None:
        """Move finished rows and the progress into the widgets (server thread)."""
        with self._lock:
            new, self._pending = self._pending, []
        if new:
            self.rows.extend(new)
            self.rows.sort(key=lambda r: (r["mode"], r["tau_s"]))   # multi-spike rows first, by tau
            self._plot()
        self._check_wait()
        finished = self._finished
        fraction = 1.0 if finished and not self.error else self._fraction
        with param.edit_constant(self):
            self.progress = min(max(float(fraction), 0.0), 1.0)
        self.bar.value = int(round(1000 * self.progress))
        seconds = time.perf_counter() - self._started
        if not finished and self.waiting:
            pos = self.slot_position()
            here = self.pool is not None and self.pool.holds(self.session)
            self.status.object = (
                f"Waiting for a free training slot{f' (#{pos} in queue)' if pos else ''}, {seconds:.0f} s: "
                f"every slot of this server is training. The sweep starts by itself when one frees"
                f"{' (pausing the training on this page frees one)' if here else ''}; "
                f"it gives up after {self.SLOT_WAIT_S:.0f} s.")
            return
        if not finished:
            self.status.object = (f"Running: {100 * self.progress:.0f} % of the training samples, "
                                  f"{len(self.rows)} setting(s) done, {seconds:.0f} s")
            return
        if self._callback is not None:
            self._callback.stop()
            self._callback = None
        with param.edit_constant(self):
            self.running = False
        self.run_button.disabled, self.cancel_button.disabled = False, True
        if self._no_slot:
            self.status.object = f"&#9888; Not run: {self.error}."
        elif self.error:
            self.status.object = f"&#9888; Sweep stopped ({self.error}) after {len(self.rows)} setting(s)."
        else:
            best = max((r for r in self.rows if r["mode"] == "multi"), key=lambda r: r["test_accuracy"],
                       default=None)
            text = f"Done in {seconds:.1f} s: {len(self.rows)} setting(s)."
            if best is not None:
                text += (f" Best multi-spike test accuracy {100 * best['test_accuracy']:.1f} % at "
                         f"tau_s = {best['tau_s']:g} ms ({best['hidden_spikes']:.2f} hidden spikes per neuron).")
            self.status.object = text

    def _plot(self) -> None:
        for mode, src in self.sources.items():
            rows = sorted((r for r in self.rows if r["mode"] == mode), key=lambda r: r["tau_s"])
            src.data = {c: np.array([r[c] for r in rows], np.float64) for c in self._empty()}
        taus = [r["tau_s"] for r in self.rows]
        if taus:
            lo, hi = min(taus), max(taus)
            set_range(self.acc_fig.x_range, lo / 1.3, hi * 1.3)
            spikes = [max(r["hidden_spikes"], r["output_spikes"]) for r in self.rows]
            top = max(max(spikes) * 1.15, 1.2)
            set_range(self.spk_fig.y_range, 0.0, float(top))
            set_range(self.acc_fig.y_range, 0.0, 1.0)
