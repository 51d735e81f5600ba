"""The compare page: two to four learning rules (or settings) learning the same data side by side.

:class:`CompareApp` is what ``apps/compare.py`` serves.  Per browser session it
owns one :class:`~spikewb.workbench.sessions.compare.CompareSession` (one worker thread that
trains every pane on the same sample before moving on) and one periodic
callback (``refresh_hz``, 5 Hz) that takes the newest lock-step snapshot and
updates, inside one ``pn.io.hold()`` block:

* one plot with every pane's running train accuracy (solid, left axis) and
  mean epoch loss (dashed, right axis), per-epoch test accuracy as dots;
* the shared input sample, and per pane: its own encoding of that sample
  (rate code: spikes per input; time-to-first-spike: how early each input
  fired), its spike raster and its learning-signal strips, all of the same
  sample;
* per pane a readout of its own throughput (samples per second of the time
  spent in that pane's training steps) and accuracy.

Play trains only in one of the server's training slots (the ones the trainer
pages share, :mod:`spikewb.workbench.server.limits`); when all are taken the status line
says ``waiting for a free slot (#k in queue)`` and training starts by itself
when one frees.

The setup (pane rules, hidden sizes, settings, seed) is edited in the
sidebar and applied with *Apply*, which rebuilds every pane from the seed so
the comparison starts again from the same point; it is also kept in the page
URL (``?panes=desire,desire&lr2=0.003``, see :func:`spikewb.workbench.sessions.compare.from_query`).
"""

from __future__ import annotations

import html
import logging
import time

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, LinearAxis, Legend, LegendItem, LinearColorMapper, Range1d
from bokeh.palettes import Category10_10

from spikewb.engine.errors import SpikeWorkbenchError
from spikewb.engine.training.setup import RunSetup
from spikewb.engine.rules import rule_class, rule_names

from spikewb.workbench.sessions.compare import (EMBEDDED_DATASETS, MAX_PANES, MIN_PANES, CompareSession, PaneSpec, check_hidden,
                      from_query, parse_settings, to_query)
from spikewb.workbench.pagestate import ignored, parse_float, read_query, value_text
from spikewb.workbench.server.safetext import as_markdown
from spikewb.workbench.views.base import (GREYS, LivePage, image_of, make_figure, nice_ceiling, set_range,
                                          start_periodic, stop_periodic)
from spikewb.workbench.views.raster import RasterView
from spikewb.workbench.views.signal import SignalView
from spikewb.workbench.views.status import stylesheet

log = logging.getLogger(__name__)

#: Colour of pane k (curves, titles).
PANE_COLORS = tuple(Category10_10[i] for i in (0, 3, 2, 4))
#: Speed menu: label -> samples per second (0 = as fast as possible).
SPEEDS = {"full speed": 0.0, "50 samples/s": 50.0, "10 samples/s": 10.0, "2 samples/s": 2.0}
#: Curve points kept per pane in the browser.
ROLLOVER = 20000
#: Curves and readouts are refreshed at most this often (Hz); rasters every tick.
CURVE_RATE = 2.0


class EncodingView:
    """One pane's encoding of the current sample as an image.

    Rate codes show spikes per input; a code with at most one spike per
    input (time-to-first-spike) shows how early each input fired
    (bright = early, black = never).
    """

    def __init__(self, k: int, size: int = 112):
        self.source = ColumnDataSource(data=dict(image=[], x=[], y=[], dw=[], dh=[]), name=f"cmp-enc-{k}")
        self.mapper = LinearColorMapper(palette=list(GREYS), low=0, high=1)
        self.figure = make_figure("input encoding", height=size + 30, width=size + 10, sizing_mode="fixed",
                                  min_border_left=5, min_border_right=5, min_border_bottom=5)
        self.figure.image(image="image", x="x", y="y", dw="dw", dh="dh", source=self.source,
                          color_mapper=self.mapper)
        self.figure.axis.visible = False
        self.figure.grid.visible = False
        self.figure.title.text_font_size = "11px"
        self.kind = None
        self.pane = pn.pane.Bokeh(self.figure, margin=(0, 4))

    def clear(self) -> None:
        self.source.data = dict(image=[], x=[], y=[], dw=[], dh=[])

    def update(self, frame, shape) -> None:
        counts = np.asarray(frame.counts[0])
        ttfs = counts.size and counts.max() <= 1
        if ttfs:
            t, i = frame.spikes(0)
            first = np.full(counts.size, np.inf, np.float32)
            if len(t):
                np.minimum.at(first, np.asarray(i, np.int64), np.asarray(t, np.float32))
            dur = max(float(frame.duration), 1e-9)
            values = np.where(np.isfinite(first), 1.0 - first / dur, 0.0).astype(np.float32)
            kind, high = f"first-spike time (bright = early, {frame.time_unit})", 1.0
        else:
            values = counts.astype(np.float32)
            kind, high = "rate code: spikes per input", max(float(values.max()) if values.size else 1.0, 1.0)
        if kind != self.kind:
            self.kind = kind
            self.figure.title.text = kind.split(" (")[0] if ttfs else "spikes per input (rate)"
        if self.mapper.high != high:
            self.mapper.high = high
        img = image_of(values, shape)
        h, w = img.shape
        set_range(self.figure.x_range, 0, w)
        set_range(self.figure.y_range, 0, h)
        self.source.data = dict(image=[img], x=[0], y=[0], dw=[w], dh=[h])


class PaneView:
    """One pane: title, readout, its encoding, raster and learning-signal strips."""

    def __init__(self, k: int):
        self.k = k
        color = PANE_COLORS[k]
        self.title = pn.pane.HTML("", css_classes=[f"cmp-title-{k}"], sizing_mode="stretch_width", margin=(0, 4),
                                  styles={"border-left": f"6px solid {color}", "padding-left": "6px"})
        self.readout = pn.pane.HTML("&ndash;", css_classes=["cmp-rate", f"cmp-rate-{k}"],
                                    sizing_mode="stretch_width", margin=(0, 4))
        self.encoding = EncodingView(k)
        self.raster = RasterView(height=230)
        self.raster.source.name = f"cmp-raster-{k}"
        self.raster.figure.name = f"cmp-raster-fig-{k}"
        self.raster.figure.title.text = "spike raster (this sample)"
        self.signal = SignalView(height=130)
        self.signal.source.name = f"cmp-signal-{k}"
        # the views name their models for one-per-page use; several panes need unique names
        for view in (self.raster, self.signal):
            for value in vars(view).values():
                name = getattr(value, "name", None)
                if isinstance(name, str) and name.startswith("wb-"):
                    value.name = f"cmp-{name[3:]}-{k}"
        self.layout = pn.Column(self.title, pn.Row(self.encoding.pane, self.readout, sizing_mode="stretch_width"),
                                self.raster, self.signal, sizing_mode="stretch_width", margin=(4, 6),
                                styles={"flex": "1 1 0", "min-width": "0"})

    def clear(self) -> None:
        self.encoding.clear()
        self.raster.clear()
        self.signal.clear()
        self.readout.object = "&ndash;"

    def set_spec(self, spec: PaneSpec) -> None:
        self.title.object = (f"<b>Pane {self.k + 1}</b>: {html.escape(rule_class(spec.rule).title or spec.rule)}"
                             f"<br><span style='font-size:12px;color:#555'>{html.escape(spec.label())}</span>")

    def update(self, pane, shape, readout: bool) -> None:
        self.encoding.update(pane.frame, shape)
        self.raster.update(pane)
        self.signal.update(pane)
        if readout:
            f = pane.frame
            acc = f"{100 * pane.accuracy:.1f} %" if np.isfinite(pane.accuracy) else "&ndash;"
            test = (f"{100 * pane.history[-1].test_accuracy:.1f} %" if pane.history else "&ndash;")
            pred = "&ndash;" if f.prediction < 0 else str(f.prediction)
            self.readout.object = (
                f"<div style='font-size:13px;line-height:1.5'>"
                f"<b class='cmp-sps'>{pane.samples_per_s:.0f}</b> samples/s<br>"
                f"train acc. (epoch) {acc}<br>test acc. {test}<br>"
                f"predicted {pred} &middot; {html.escape(pane.network)}</div>")


class CurvesView:
    """Accuracy (left axis) and loss (right axis) of every pane in one plot."""

    def __init__(self):
        self.sources = [ColumnDataSource(data=self._empty(), name=f"cmp-curve-{k}") for k in range(MAX_PANES)]
        self.tests = [ColumnDataSource(data=dict(step=[], test=[]), name=f"cmp-test-{k}") for k in range(MAX_PANES)]
        self.figure = make_figure("Accuracy (solid, left) and loss (dashed, right) of every pane", height=300,
                                  x_range=Range1d(0, 100), y_range=Range1d(0, 1), name="cmp-curves-fig")
        self.figure.xaxis.axis_label = "samples trained (the same samples in every pane)"
        self.figure.yaxis.axis_label = "train accuracy"
        self.figure.extra_y_ranges = {"loss": Range1d(0, 0.1)}
        self.figure.add_layout(LinearAxis(y_range_name="loss", axis_label="loss (epoch mean)"), "right")
        self.acc, self.loss, self.dots = [], [], []
        items = []
        for k in range(MAX_PANES):
            c = PANE_COLORS[k]
            a = self.figure.line("step", "acc", source=self.sources[k], color=c, line_width=2)
            l_ = self.figure.line("step", "loss", source=self.sources[k], color=c, line_width=1.5,
                                  line_dash="dashed", y_range_name="loss")
            d = self.figure.scatter("step", "test", source=self.tests[k], color=c, size=8, marker="circle")
            self.acc.append(a)
            self.loss.append(l_)
            self.dots.append(d)
            items.append(LegendItem(label=f"pane {k + 1}", renderers=[a, l_, d]))
        self.legend = Legend(items=items, location="top_left", label_text_font_size="11px",
                             background_fill_alpha=0.6, spacing=0, padding=4, orientation="horizontal")
        self.figure.add_layout(self.legend)
        self.sent = [0] * MAX_PANES
        self.n_tests = [0] * MAX_PANES
        self.loss_max = 0.0
        self.pane = pn.pane.Bokeh(self.figure, sizing_mode="stretch_width")

    @staticmethod
    def _empty() -> dict:
        return dict(step=np.zeros(0, np.float64), acc=np.zeros(0, np.float32), loss=np.zeros(0, np.float32))

    def clear(self, n: int, specs=()) -> None:
        for k in range(MAX_PANES):
            self.sources[k].data = self._empty()
            self.tests[k].data = dict(step=[], test=[])
            on = k < n
            for r in (self.acc[k], self.loss[k], self.dots[k]):
                r.visible = on
            self.legend.items[k].visible = on
            if on and k < len(specs):
                self.legend.items[k].label = {"value": f"{k + 1}: {specs[k].label()}"[:48]}
        self.sent = [0] * MAX_PANES
        self.n_tests = [0] * MAX_PANES
        self.loss_max = 0.0
        set_range(self.figure.x_range, 0, 100)
        set_range(self.figure.extra_y_ranges["loss"], 0, 0.1)

    def update(self, comparison) -> None:
        last = 0
        for k, (st, t) in enumerate(zip(comparison.stats, comparison.trainers)):
            n = len(st.loss)  # the worker appends loss last: the three lists have at least n items
            if n > self.sent[k]:
                sl = slice(self.sent[k], n)
                loss = np.asarray(st.loss[sl], np.float32)
                self.sources[k].stream(dict(step=np.asarray(st.steps[sl], np.float64),
                                            acc=np.asarray(st.accuracy[sl], np.float32), loss=loss),
                                       rollover=ROLLOVER)
                self.sent[k] = n
                finite = loss[np.isfinite(loss)]
                if finite.size and float(finite.max()) > self.loss_max:
                    self.loss_max = float(finite.max())
                    set_range(self.figure.extra_y_ranges["loss"], 0, nice_ceiling(self.loss_max * 1.1))
            if n:
                last = max(last, st.steps[n - 1])
            hist = list(t.history)
            if len(hist) != self.n_tests[k]:
                self.n_tests[k] = len(hist)
                self.tests[k].data = dict(step=np.cumsum([h.samples for h in hist]).astype(np.float64),
                                          test=np.array([h.test_accuracy for h in hist], np.float32))
        rng = self.figure.x_range
        if last > rng.end:
            set_range(rng, 0, nice_ceiling(last * 1.1))


class SampleView:
    """The shared input sample (pixels) with its index and label."""

    def __init__(self, size: int = 112):
        self.source = ColumnDataSource(data=dict(image=[], x=[], y=[], dw=[], dh=[]), name="cmp-sample")
        self.figure = make_figure("sample", height=size + 30, width=size + 10, sizing_mode="fixed",
                                  min_border_left=5, min_border_right=5, min_border_bottom=5)
        self.figure.image(image="image", x="x", y="y", dw="dw", dh="dh", source=self.source,
                          color_mapper=LinearColorMapper(palette=list(GREYS), low=0, high=255))
        self.figure.axis.visible = False
        self.figure.grid.visible = False
        self.figure.title.text_font_size = "11px"
        self.pane = pn.pane.Bokeh(self.figure, margin=(0, 4))

    def update(self, snap, class_names) -> None:
        img = image_of(snap.image, snap.image_shape)
        h, w = img.shape
        set_range(self.figure.x_range, 0, w)
        set_range(self.figure.y_range, 0, h)
        name = class_names[snap.label] if 0 <= snap.label < len(class_names) else str(snap.label)
        self.figure.title.text = f"sample #{snap.index}: {name}"
        self.source.data = dict(image=[img], x=[0], y=[0], dw=[w], dh=[h])


class PaneEditor:
    """Sidebar widgets of one pane's setup: rule, hidden sizes, settings (name=value ...)."""

    def __init__(self, k: int):
        self.k = k
        self.rule = pn.widgets.Select(name=f"Pane {k + 1}: learning rule", options=rule_names(), value="desire",
                                      sizing_mode="stretch_width", margin=(2, 8))
        self.hidden = pn.widgets.TextInput(name="Hidden layers (comma-separated sizes)", value="100",
                                           sizing_mode="stretch_width", margin=(2, 8))
        self.settings = pn.widgets.TextInput(name="Settings (name=value ...)", value="", placeholder="lr=0.003",
                                             sizing_mode="stretch_width", margin=(2, 8))
        self.rule.param.watch(lambda e: self._describe(), "value")
        self._describe()
        self.layout = pn.Column(self.rule, self.hidden, self.settings, sizing_mode="stretch_width",
                                styles={"border-left": f"4px solid {PANE_COLORS[k]}"}, margin=(4, 0))

    def _describe(self) -> None:
        cls = rule_class(self.rule.value)
        names = ", ".join(f"{k}={value_text(p.default)}" for k, p in cls.param.objects("existing").items()
                          if k != "name")
        self.settings.description = f"Hyperparameters of {cls.key} and their defaults: {names}"

    def show(self, spec: PaneSpec) -> None:
        self.rule.value = spec.rule
        self.hidden.value = ",".join(map(str, spec.hidden))
        self.settings.value = " ".join(f"{k}={value_text(v)}" for k, v in sorted(spec.params.items()))

    def spec(self) -> PaneSpec:
        """The pane's validated spec (raises ConfigError naming the pane)."""
        try:
            hidden = check_hidden(RunSetup.parse_hidden(self.hidden.value))
            params = parse_settings(self.rule.value, self.settings.value)
            return PaneSpec(self.rule.value, hidden, params).validated()
        except (SpikeWorkbenchError, ValueError) as exc:
            raise type(exc)(f"pane {self.k + 1}: {exc}") from None


class CompareApp(LivePage, pn.viewable.Viewer):
    """Controls and side-by-side views of one :class:`CompareSession`."""

    refresh_hz = param.Number(5.0, bounds=(1.0, 30.0), doc="Rate of the page's periodic callback (?refresh=).")

    def __init__(self, session: CompareSession | None = None, setup: dict | None = None, **params):
        super().__init__(**params)
        self.problems: list[str] = []
        if session is None:
            setup = setup or {}
            try:
                session = CompareSession.served(setup.get("panes"),
                                                dataset=setup.get("dataset", EMBEDDED_DATASETS[0]),
                                                seed=setup.get("seed", 0))
            except Exception as exc:  # a bad URL must not break the page
                self.problems.append(f"setup refused ({exc}); using the defaults")
                session = CompareSession.served()
        self.session = session
        self.session.publish_interval = 0.5 / float(self.refresh_hz)
        self.messages = pn.Column(sizing_mode="stretch_width", margin=0)
        self.status = pn.pane.HTML("", css_classes=["cmp-status"], sizing_mode="stretch_width", margin=(0, 8))
        self.curves = CurvesView()
        self.sample = SampleView()
        self.panes = [PaneView(k) for k in range(MAX_PANES)]
        self.pane_row = pn.Row(*(p.layout for p in self.panes), sizing_mode="stretch_width")
        # controls
        self.play_button = pn.widgets.Button(label="\u25b6 Play", button_type="success", width=90)
        self.pause_button = pn.widgets.Button(label="Pause", width=90)
        self.step_button = pn.widgets.Button(label="Step", button_type="primary", width=90)
        self.reset_button = pn.widgets.Button(label="Reset", button_type="danger", width=90)
        self.speed = pn.widgets.Select(name="Speed", options=list(SPEEDS), value="full speed",
                                       sizing_mode="stretch_width", margin=(2, 8),
                                       description="Upper limit on lock-step samples per second (all panes).")
        self.n_panes = pn.widgets.IntInput(name="Panes", value=self.session.comparison.n_panes, start=MIN_PANES,
                                           end=MAX_PANES, sizing_mode="stretch_width", margin=(2, 8))
        self.seed = pn.widgets.IntInput(name="Seed (weights and sample order, all panes)",
                                        value=self.session.comparison.seed, start=0, end=2**31 - 1,
                                        sizing_mode="stretch_width", margin=(2, 8))
        self.dataset = pn.widgets.Select(name="Dataset", options=list(EMBEDDED_DATASETS),
                                         value=self.session.comparison.dataset, sizing_mode="stretch_width",
                                         margin=(2, 8))
        self.editors = [PaneEditor(k) for k in range(MAX_PANES)]
        self.apply_button = pn.widgets.Button(label="Apply (rebuild all panes)", button_type="primary",
                                              sizing_mode="stretch_width", margin=(6, 8))
        self.play_button.on_click(lambda e: self._act(self.session.play))
        self.pause_button.on_click(lambda e: self._act(self.session.pause))
        self.step_button.on_click(lambda e: self._act(self.session.step))
        self.reset_button.on_click(lambda e: self._act(self.session.reset))
        self.apply_button.on_click(lambda e: self.apply())
        self.speed.param.watch(lambda e: setattr(self.session, "speed", SPEEDS[e.new]), "value")
        self.n_panes.param.watch(lambda e: self._show_editors(), "value")
        self._callback = None
        self._generation = self.session.generation
        self._curve_due = 0.0
        self._status_due = 0.0
        self._class_names = tuple(self.session.comparison.data.class_names)
        self._last_search = None
        self._waiting = False
        self._layout_for(self.session.setup)
        for p in self.problems:
            self.notify("warning", p)

    # ------------------------------------------------------------------ factory
    @classmethod
    def from_url(cls, **params) -> "CompareApp":
        query = dict(getattr(pn.state, "session_args", None) or {})
        setup, problems = from_query(query)
        refresh = read_query({"refresh": query["refresh"]})[0].get("refresh") if "refresh" in query else None
        if refresh:
            try:
                params.setdefault("refresh_hz", min(max(parse_float(refresh), 1.0), 30.0))
            except ValueError as exc:
                problems.append(ignored("refresh", refresh, f"{exc}: a rate in Hz"))
        app = cls(setup=setup, **params)
        if problems:  # one notice listing all of them
            app.notify("warning", *problems)
        return app

    # ------------------------------------------------------------------ actions
    def notify(self, kind: str, *texts: str) -> None:
        """Show a notice (plain text, shown literally; one bullet per text when several)."""
        text = "\n".join(f"* {as_markdown(t)}" for t in texts) if len(texts) > 1 else as_markdown(texts[0])
        alert = pn.pane.Alert(text, alert_type=kind, sizing_mode="stretch_width", margin=(2, 8),
                              css_classes=[f"cmp-msg-{kind}"])
        self.messages.objects = [*self.messages.objects[-3:], alert]

    def _act(self, fn) -> None:
        try:
            fn()
        except Exception as exc:
            self.notify("danger", f"{type(exc).__name__}: {exc}")

    def _show_editors(self) -> None:
        n = int(self.n_panes.value or MIN_PANES)
        for k, ed in enumerate(self.editors):
            ed.layout.visible = k < n

    def _layout_for(self, setup) -> None:
        specs = setup["panes"]
        self.n_panes.value = len(specs)
        for ed, spec in zip(self.editors, specs):
            ed.show(spec)
        self._show_editors()
        for k, pv in enumerate(self.panes):
            pv.layout.visible = k < len(specs)
            pv.clear()
            if k < len(specs):
                pv.set_spec(specs[k])
        self.curves.clear(len(specs), specs)

    def apply(self) -> bool:
        """Validate the sidebar setup and rebuild every pane from the seed."""
        try:
            n = int(self.n_panes.value)
            specs = [ed.spec() for ed in self.editors[:n]]
            self.session.rebuild(specs, seed=int(self.seed.value), dataset=self.dataset.value).result(120)
        except Exception as exc:
            self.notify("danger", f"not applied: {exc}")
            return False
        self._class_names = tuple(self.session.comparison.data.class_names)
        self.messages.objects = []
        self._layout_for(self.session.setup)
        self._generation = self.session.generation
        self.notify("info", f"rebuilt {n} panes from seed {self.session.comparison.seed}; press Play")
        return True

    # ------------------------------------------------------------------ server hooks
    def start(self) -> None:
        if self._callback is not None:
            return
        self._callback = start_periodic(self.tick, self.refresh_hz, self._session_destroyed)

    def _session_destroyed(self, session_context) -> None:
        self.close()

    def close(self) -> None:
        cb, self._callback = self._callback, None
        stop_periodic(cb)
        self.session.close()

    # ------------------------------------------------------------------ periodic
    def tick(self) -> None:
        """Take the newest lock-step snapshot and update every pane (one hold block)."""
        now = time.perf_counter()
        try:
            snap = self.session.take()
            with pn.io.hold():
                if self.session.generation != self._generation:
                    self._generation = self.session.generation
                    self._layout_for(self.session.setup)
                curves_due = now >= self._curve_due
                if snap is not None and snap.generation == self._generation:
                    self.sample.update(snap, self._class_names)
                    for pv, pane in zip(self.panes, snap.panes):
                        pv.update(pane, snap.image_shape, readout=curves_due or not self.session.running)
                if curves_due:
                    self._curve_due = now + 1.0 / CURVE_RATE - 0.5 / float(self.refresh_hz)
                    self.curves.update(self.session.comparison)
                if now >= self._status_due or snap is not None:
                    self._status_due = now + 0.5
                    self._update_status()
                self._sync_url()
        except Exception as exc:
            log.exception("compare update failed")
            self.notify("danger", f"display update failed: {type(exc).__name__}: {exc}")

    def _update_status(self) -> None:
        s = self.session
        if s.waiting != self._waiting:
            self._waiting = s.waiting
            if s.waiting:
                self.notify("info", "Every training slot of this server is in use: the comparison waits and "
                                    "starts by itself when one frees (Pause leaves the queue).")
        if s.error:
            state = "error"
        elif s.running:
            state = "training"
        elif s.waiting:
            state = s.waiting_text()
        else:
            state = "paused"
        c = s.comparison
        epoch = c.trainers[0].epoch
        err = f" &middot; <b style='color:#b00'>{html.escape(s.error)}</b>" if s.error else ""
        self.status.object = (
            f"<div style='font-size:14px'><b class='cmp-state'>{state}</b> &middot; "
            f"<b class='cmp-samples'>{s.samples}</b> samples in every pane &middot; epoch {epoch} &middot; "
            f"{s.wall_rate:.0f} lock-step samples/s &middot; seed {c.seed} &middot; {html.escape(c.dataset)}"
            f"{err}</div>")

    def _sync_url(self) -> None:
        loc = pn.state.location
        if loc is None:
            return
        from urllib.parse import urlencode
        search = "?" + urlencode(to_query(self.session.setup), safe=",")
        if search != self._last_search:
            self._last_search = search
            if loc.search != search:
                loc.search = search

    # ------------------------------------------------------------------ layout
    def main(self):
        buttons = pn.Row(self.play_button, self.pause_button, self.step_button, self.reset_button,
                         margin=(4, 8))
        return pn.Column(
            pn.Row(buttons, self.status, sizing_mode="stretch_width"),
            self.messages,
            pn.Row(self.sample.pane, self.curves.pane, sizing_mode="stretch_width"),
            self.pane_row,
            sizing_mode="stretch_width")

    def sidebar(self):
        help_text = pn.pane.Markdown(
            "Every pane trains **the same samples in the same order** from the same seed; the rasters "
            "and learning signals show the same sample in every pane. Change the setup, then **Apply** "
            "(every pane starts again). Settings are `name=value` pairs of the pane's rule (hover the "
            "box for the list).", sizing_mode="stretch_width", margin=(0, 8), styles={"font-size": "13px"})
        return pn.Column(self.speed, self.n_panes, *(ed.layout for ed in self.editors), self.seed, self.dataset,
                         self.apply_button, help_text, sizing_mode="stretch_width")

    def template(self, title: str = "Spike Workbench \u00b7 compare rules"):
        tmpl = pn.template.BootstrapTemplate(title=title, sidebar=[self.sidebar()], main=[self.main()],
                                             sidebar_width=300, header_background="#23395d",
                                             raw_css=[stylesheet()])
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            self.start()
        return tmpl
