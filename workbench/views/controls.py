"""Widgets generated from the engine's ``param`` classes, wired to a session.

Each rule hyperparameter is declared once in its rule class (default, bounds,
label with the unit, doc); :func:`widget_for` turns that declaration into a
widget (label from ``label``, tooltip from ``doc``, slider range from the soft
bounds).  The widgets are *not* linked to the live rule object: a change is
validated against the declaration and then sent to
:meth:`TrainingSession.apply <workbench.session.TrainingSession.apply>`, which
applies it between two samples.  A refused value shows its message under the
widget and the widget goes back to the last accepted value.

Changes that need a new network (rule, dataset, hidden layers, seed and the
rule's own ``structural`` parameters such as the precision) are collected and
shown with a *Rebuild* / *Cancel* confirmation instead of being applied.
"""

from __future__ import annotations

import asyncio
import io
import logging
import textwrap
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

import numpy as np
import panel as pn
import param
from panel.io.state import set_curdoc

from spikewb.engine.errors import SpikeWorkbenchError
from spikewb.engine.rules import rule_class, rule_names
from spikewb.engine.training.setup import RunSetup

from spikewb.workbench.server.safetext import as_html, display_name
from spikewb.workbench.sessions.session import MAX_TRACED, TrainingSession, dataset_from_idx, parse_traced

log = logging.getLogger(__name__)

#: Threads that parse uploaded files, so a large upload never stalls the server's event loop
#: (and with it every other page); shared by all sessions of the process.
FILE_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="spikewb-files")


class StatusText(pn.widgets.StaticText):
    """A line of (already escaped) HTML whose text changes cheaply on a served page.

    Why not ``pn.pane.HTML``: inside the page template, the first change of a pane's
    ``object`` re-sends the pane's *whole* property set, including a longer
    ``stylesheets`` list with new ``ImportedStyleSheet`` models (the template applied
    its design non-isolated, the pane's update asks for the isolated list).  New model
    references make Bokeh walk the page's whole model graph
    (``DocumentModelManager.recompute``: about 500 models, 55-60 ms on an idle core,
    100-675 ms on the busy shared 2-core test machine) on the server's event loop, which
    then answers nobody, ``/health`` included.  A widget sends only the property that
    changed (``text``), so setting :attr:`object` costs well under a millisecond.
    Used for the texts an upload changes (status lines, the rebuild confirmation).
    """

    @property
    def object(self) -> str:
        return self.value or ""

    @object.setter
    def object(self, text: str) -> None:
        self.value = text


Notify = Callable[[str, str], None]

#: The rebuild confirmation looks like a Bootstrap warning alert.
CONFIRM_STYLE = {"background-color": "#fff3cd", "color": "#664d03", "border": "1px solid #ffe69c",
                 "border-radius": "6px", "padding": "8px 12px", "font-size": "14px"}
#: Colour of a status line that reports success (errors keep the red of the upload panes).
OK_COLOR = "#1a6b35"

#: Speed menu: label -> samples per second (0 = as fast as possible).
SPEEDS = {
    "full speed": 0.0,
    "200 samples/s": 200.0,
    "50 samples/s": 50.0,
    "10 samples/s (every sample shown)": 10.0,
    "2 samples/s": 2.0,
    "0.5 samples/s": 0.5,
}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return str(v)


def _message(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if isinstance(exc, (SpikeWorkbenchError, ValueError)) else f"{type(exc).__name__}: {text}"


class SliderInput(pn.viewable.Viewer):
    """A number box (label, unit, tooltip) with a slider over the soft bounds below it.

    The box is the value's source of truth and is not clamped, so a value
    outside the slider's range can be typed (and refused with a message by
    :class:`Field` when it breaks the hard bounds).
    """

    value = param.Parameter()

    def __init__(self, *, name: str, value, start, end, step, integer: bool = False,
                 description: str | None = None, format: str | None = None, **params):
        super().__init__(value=value, name=name, **params)
        box = pn.widgets.IntInput if integer else pn.widgets.FloatInput
        self.input = box(name=name, value=value, step=step, description=description,
                         sizing_mode="stretch_width", margin=(2, 8, 0, 8))
        slider = pn.widgets.IntSlider if integer else pn.widgets.FloatSlider
        kw = dict(format=format) if format else {}
        self.slider = slider(start=start, end=end, step=step, value=min(max(value, start), end), show_value=False,
                             sizing_mode="stretch_width", margin=(0, 14, 6, 14), **kw)
        self.input.param.watch(self._from_input, "value")
        self.slider.param.watch(self._from_slider, "value_throttled")
        self.param.watch(self._from_value, "value")
        self.layout = pn.Column(self.input, self.slider, sizing_mode="stretch_width", margin=0)

    def __panel__(self):
        return self.layout

    def _from_input(self, event) -> None:
        if event.new is not None and event.new != self.value:
            self.value = event.new

    def _from_slider(self, event) -> None:
        if event.new is not None and event.new != self.value:
            self.value = event.new

    def _from_value(self, event) -> None:
        if self.input.value != event.new:
            self.input.value = event.new
        v = min(max(event.new, self.slider.start), self.slider.end) if event.new is not None else None
        if v is not None and self.slider.value != v:
            self.slider.value = v


def widget_for(p: param.Parameter, value: Any, *, structural: bool = False, options=None):
    """A widget for one parameter declaration (label, unit and tooltip from ``p``).

    Bounds are *not* enforced by the widget (so a typed value beyond them can
    be refused with a message); sliders cover the soft bounds.  ``options``
    (a list or a ``{label: value}`` dict) makes a drop-down of a declaration
    whose choices are only known at run time (the rules, the datasets).
    """
    label = p.label or p.name
    if structural:
        label += " \u27f3"
    doc = textwrap.dedent(p.doc or "").strip()
    if structural:
        doc += " Changing it builds a new network (asks first)."
    kw = dict(name=label, sizing_mode="stretch_width", margin=(2, 8))
    desc = dict(description=doc or None)
    if isinstance(p, param.Boolean):
        return pn.widgets.Checkbox(value=bool(value), **kw)
    if options is not None:
        return pn.widgets.Select(options=options, value=value, **kw, **desc)
    if isinstance(p, param.Selector):
        return pn.widgets.Select(options=list(p.objects), value=value, **kw, **desc)
    if isinstance(p, param.Integer):
        lo, hi = p.get_soft_bounds()
        if lo is not None and hi is not None and hi - lo <= 1000:
            return SliderInput(name=label, value=int(value), start=int(lo), end=int(hi), step=int(p.step or 1),
                               integer=True, description=doc or None)
        return pn.widgets.IntInput(value=int(value), step=int(p.step or 1), **kw, **desc)
    if isinstance(p, param.Number):
        lo, hi = p.get_soft_bounds()
        step = p.step
        if lo is not None and hi is not None and hi > lo:
            step = step or (hi - lo) / 100
            if step >= 0.001:
                digits = max(0, int(np.ceil(-np.log10(step))))
                return SliderInput(name=label, value=float(value), start=float(lo), end=float(hi),
                                   step=float(step), description=doc or None,
                                   format="0[.]" + "0" * max(digits, 2))
        return pn.widgets.FloatInput(value=float(value), step=float(step) if step else None, **kw, **desc)
    if isinstance(p, param.List):
        return pn.widgets.TextInput(value=_fmt(list(value)), **kw, **desc)
    if isinstance(p, param.String):
        return pn.widgets.TextInput(value=str(value), **kw, **desc)
    return pn.widgets.LiteralInput(value=value, **kw, **desc)


class Field:
    """A widget plus its error line; forwards accepted values, reverts refused ones."""

    def __init__(self, key: str, widget, on_value: Callable[[str, Any], None],
                 parse: Callable[[Any], Any] | None = None, css_class: str | None = None,
                 tooltip: str | None = None):
        self.key = key
        self.widget = widget
        self.on_value = on_value
        self.parse = parse or (lambda v: v)
        self.good = widget.value
        self._silent = False
        self.error = pn.pane.HTML("", visible=False, sizing_mode="stretch_width", margin=(0, 10, 4, 10),
                                  css_classes=["wb-field-error"],
                                  styles={"color": "#b00020", "font-size": "12px"})
        classes = ["wb-field", f"wb-param-{css_class or key}"]
        head = widget
        if tooltip and "description" not in widget.param and not isinstance(widget, SliderInput):
            head = pn.Row(widget, pn.widgets.TooltipIcon(value=tooltip, margin=(8, 4)), sizing_mode="stretch_width",
                          margin=0)
        self.panel = pn.Column(head, self.error, sizing_mode="stretch_width", margin=0, css_classes=classes)
        widget.param.watch(self._changed, "value")

    def _changed(self, event) -> None:
        if self._silent:
            return
        try:
            self.on_value(self.key, self.parse(event.new))
        except Exception as exc:  # refused: say why, go back to the last good value
            self.show_error(f"{self.widget.name.rstrip(' ⟳')}: {_message(exc)}")
            self.set(self.good)
        else:
            self.good = event.new
            self.clear_error()

    def show_error(self, text: str) -> None:
        self.error.object = f"&#9888; {as_html(text)}"
        self.error.visible = True

    def clear_error(self) -> None:
        if self.error.visible:
            self.error.visible = False
            self.error.object = ""

    def set(self, value: Any) -> None:
        """Set the widget without triggering a change."""
        self._silent = True
        try:
            if self.widget.value != value:
                self.widget.value = value
            self.good = value
        finally:
            self._silent = False


class ControlPanel(pn.viewable.Viewer):
    """All controls of the trainer page, bound to one :class:`TrainingSession`.

    ``notify(kind, text)`` shows a message in the page (kind: ``success``,
    ``info``, ``warning``, ``danger``).  Call :meth:`poll` from the page's
    periodic callback: it reports finished commands and re-syncs the widgets
    after a rebuild, reset or checkpoint load.
    """

    def __init__(self, session: TrainingSession, notify: Notify,
                 recent_frames: Callable[[], list] | None = None, **params):
        super().__init__(**params)
        self.session = session
        self.notify = notify
        #: The frames the page showed last, oldest first (for the offline HTML download).
        self.recent_frames = recent_frames or (lambda: [])
        self._futures: list[tuple[Future, str]] = []
        #: Uploads being parsed in :data:`FILE_THREADS`, with what to do on the page when done.
        self._file_jobs: list[tuple[Future, Callable[[Future], None]]] = []
        self.pending: dict[str, Any] = {}
        self._generation = session.generation

        # ------------------------------------------------------------ run buttons
        self.train_button = pn.widgets.Button(label="\u25b6 Train", button_type="success", width=80,
                                              description="Train continuously (samples in the background).")
        self.pause_button = pn.widgets.Button(label="\u23f8 Pause", button_type="warning", width=80, disabled=True,
                                              description="Stop after the current sample.")
        self.step_button = pn.widgets.Button(label="Step", button_type="primary", width=60,
                                             description="Pause and train exactly one sample, shown in full.")
        self.reset_button = pn.widgets.Button(label="Reset", button_type="danger", width=60,
                                              description="Fresh weights from the seed; progress is lost.")
        self.train_button.on_click(lambda e: self._guard(self.session.play))
        self.pause_button.on_click(lambda e: self._guard(self.session.pause))
        self.step_button.on_click(lambda e: self._track(self.session.step(), "step"))
        self.reset_button.on_click(lambda e: self._track(self.session.reset(), "reset"))
        speed_label = {v: k for k, v in SPEEDS.items()}.get(float(session.speed), "full speed")
        self.speed = pn.widgets.Select(name="Speed (samples/s)", options=SPEEDS, value=SPEEDS[speed_label],
                                       description=session.param["speed"].doc, sizing_mode="stretch_width")
        self.speed.param.watch(lambda e: setattr(self.session, "speed", float(e.new)), "value")

        # ------------------------------------------------------------ network & data
        setup = RunSetup.param              # labels and tooltips of the four fields that rebuild the network
        titles = {f"{rule_class(k).title or k} ({k})": k for k in rule_names()}
        self.rule_field = Field("rule", widget_for(setup["rule"], session.rule_name, structural=True,
                                                   options=titles), self._structural)
        self.dataset_field = Field("dataset", widget_for(setup["dataset"], session.dataset, structural=True,
                                                         options=session.datasets()), self._structural)
        self.hidden_field = Field("hidden", widget_for(setup["hidden"], session.hidden, structural=True),
                                  self._structural, parse=self._parse_hidden)
        self.seed_field = Field("seed", widget_for(setup["seed"], int(session.seed), structural=True),
                                self._structural)
        self.confirm_text = StatusText(value="", visible=False, sizing_mode="stretch_width", margin=(4, 8),
                                       css_classes=["wb-confirm"], styles=CONFIRM_STYLE)
        self.rebuild_button = pn.widgets.Button(label="Rebuild network", button_type="danger", visible=False)
        self.cancel_button = pn.widgets.Button(label="Cancel", button_type="light", visible=False)
        self.rebuild_button.on_click(lambda e: self.confirm())
        self.cancel_button.on_click(lambda e: self.cancel())

        # ------------------------------------------------------------ rule parameters
        self.rule_fields: dict[str, Field] = {}
        self.structural_box = pn.Column(sizing_mode="stretch_width", margin=0)
        self.live_box = pn.Column(sizing_mode="stretch_width", margin=0)
        self._build_rule_fields()

        # ------------------------------------------------------------ recording
        self.traced_field = Field("traced", pn.widgets.TextInput(
            name="Traced neurons (layer:index, up to %d)" % MAX_TRACED,
            value=", ".join(f"{l}:{i}" for l, i in session.traced), sizing_mode="stretch_width",
            description="Neurons whose membrane potential is recorded and drawn, e.g. 1:0, 2:5, 3:7 "
                        "(layer 1 = first hidden layer, last layer = output)."),
            self._live, parse=self._parse_traced)

        # ------------------------------------------------------------ files
        self.data_upload = pn.widgets.FileInput(multiple=True, sizing_mode="stretch_width",
                                                css_classes=["wb-upload-data"], name="Upload IDX data")
        self.data_upload.param.watch(self._upload_data, "value")
        self.data_error = StatusText(value="", visible=False, css_classes=["wb-upload-error"],
                                     styles={"color": "#b00020", "font-size": "12px"}, sizing_mode="stretch_width")
        self.ckpt_upload = pn.widgets.FileInput(accept=".npz", sizing_mode="stretch_width",
                                                css_classes=["wb-upload-ckpt"], name="Load checkpoint")
        self.ckpt_upload.param.watch(self._upload_checkpoint, "value")
        self.ckpt_error = StatusText(value="", visible=False, css_classes=["wb-upload-error"],
                                     styles={"color": "#b00020", "font-size": "12px"}, sizing_mode="stretch_width")
        self.save_button = pn.widgets.FileDownload(callback=self._checkpoint_file, filename="spikewb-checkpoint.npz",
                                                   label="Save checkpoint (.npz)", button_type="primary",
                                                   sizing_mode="stretch_width", css_classes=["wb-save-ckpt"])
        self.csv_button = pn.widgets.FileDownload(callback=self._metrics_file, filename="spikewb-metrics.csv",
                                                  label="Download metrics (.csv)", button_type="light",
                                                  sizing_mode="stretch_width")
        self.html_button = pn.widgets.FileDownload(
            callback=self._html_file, filename="spikewb-recent-samples.html", button_type="light",
            label="Recent samples as offline HTML", sizing_mode="stretch_width", css_classes=["wb-export-html"],
            description="One HTML file of the last samples this page showed (spikes, traced potentials, learning "
                        "signals): opens from disk with no server; a slider scrubs through the samples.")

    # ================================================================ layout
    def __panel__(self):
        small = {"font-size": "12px", "color": "#555"}
        return pn.Column(
            pn.Row(self.train_button, self.pause_button, self.step_button, self.reset_button, margin=(0, 0, 4, 0)),
            self.speed,
            pn.Card(self.rule_field.panel, self.dataset_field.panel, self.hidden_field.panel, self.seed_field.panel,
                    self.structural_box, self.confirm_text, pn.Row(self.rebuild_button, self.cancel_button),
                    title="Network and data (\u27f3 = rebuild)", sizing_mode="stretch_width", margin=(6, 0)),
            pn.Card(self.live_box, title="Hyperparameters (applied live)", sizing_mode="stretch_width",
                    margin=(6, 0)),
            pn.Card(self.traced_field.panel, title="Recording", sizing_mode="stretch_width", margin=(6, 0),
                    collapsed=False),
            pn.Card(pn.pane.HTML("Data: one <i>images</i> + one <i>labels</i> IDX file (.gz or plain), "
                                 "or the four train-/t10k- files.", styles=small, margin=(0, 8)),
                    self.data_upload, self.data_error,
                    pn.pane.HTML("Checkpoint (.npz) saved by this workbench or <code>spikewb train</code>.",
                                 styles=small, margin=(0, 8)),
                    self.ckpt_upload, self.ckpt_error, self.save_button, self.csv_button, self.html_button,
                    title="Files", sizing_mode="stretch_width", margin=(6, 0)),
            sizing_mode="stretch_width", margin=0,
        )

    # ================================================================ rule params
    def _build_rule_fields(self) -> None:
        rule = self.session.rule
        structural = set(type(rule).structural)
        self.rule_fields = {}
        self._rule_cls = type(rule)
        live, struct = [], []
        params = [p for n, p in rule.param.objects("existing").items() if n != "name"]
        params.sort(key=lambda p: (p.precedence if p.precedence is not None else 0.5))
        for p in params:
            if p.precedence is not None and p.precedence < 0:
                continue
            is_struct = p.name in structural
            w = widget_for(p, getattr(rule, p.name), structural=is_struct)
            parse = None
            if isinstance(p, param.List):
                parse = (lambda text: [int(s) for s in str(text).replace(" ", "").split(",") if s])
            field = Field(p.name, w, self._structural if is_struct else self._live, parse=parse,
                          tooltip=textwrap.dedent(p.doc or "").strip() or None)
            self.rule_fields[p.name] = field
            (struct if is_struct else live).append(field.panel)
        self.structural_box.objects = struct
        self.live_box.objects = live

    # ================================================================ change handlers
    def _live(self, key: str, value: Any) -> None:
        # apply() validates once, here in the page's thread (the declaration's bounds, the
        # constraints between the rule's parameters, the server's limits): a refused value
        # never reaches the training worker
        self._track(self.session.apply(**{key: value}), None)

    def _structural(self, key: str, value: Any) -> None:
        self.session.validate(**{key: value})
        if self._is_current(key, value):
            self.pending.pop(key, None)
        else:
            self.pending[key] = value
        self._show_pending()

    def _is_current(self, key: str, value: Any) -> bool:
        s = self.session
        if key == "rule":
            return value == s.rule_name
        if key == "hidden":
            return list(value) == list(s.hidden)
        if key == "dataset":
            return value == s.dataset
        if key == "seed":
            return int(value) == int(s.seed)
        return getattr(s.rule, key, None) == value

    def _show_pending(self) -> None:
        show = bool(self.pending)
        if show:
            items = "; ".join(f"{k} \u2192 {as_html(_fmt(v), 200)}" for k, v in self.pending.items())
            self.confirm_text.object = (f"<b>Rebuild the network?</b> {items}. "
                                        "The trained weights and the progress are discarded.")
        self.confirm_text.visible = show
        self.rebuild_button.visible = show
        self.cancel_button.visible = show

    def confirm(self) -> None:
        """Apply the pending structural changes (one rebuild)."""
        if not self.pending:
            return
        changes, self.pending = dict(self.pending), {}
        self._show_pending()
        try:
            fut = self.session.apply(**changes)
        except Exception as exc:
            self.notify("danger", f"Rebuild refused: {_message(exc)}")
            self.refresh()
            return
        self._track(fut, "rebuild")

    def cancel(self) -> None:
        """Drop the pending structural changes and show the current setup again."""
        self.pending = {}
        self._show_pending()
        self.refresh()

    @staticmethod
    def _parse_hidden(text: str) -> list[int]:
        return RunSetup.parse_hidden(str(text))

    def _parse_traced(self, text: str) -> list[tuple[int, int]]:
        traced = parse_traced(str(text))
        return self.session._check_traced(traced, self.session.sizes)

    def _guard(self, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception as exc:
            self.notify("danger", _message(exc))

    # ================================================================ files
    def _background(self, work: Callable[[], Any], done: Callable[[Future], None]) -> Future:
        """Run ``work()`` in a file thread; ``done(future)`` then runs on this page's
        document (next tick), or from :meth:`poll` when there is no served document."""
        fut = FILE_THREADS.submit(work)
        doc = pn.state.curdoc
        served = doc is not None and getattr(doc, "session_context", None) is not None
        self._file_jobs.append((fut, done))
        if served:
            def on_page() -> None:
                with set_curdoc(doc):
                    for f in [f for f, _ in self._file_jobs if f.done()]:
                        self._finish_file_job(f)

            def finished(f: Future) -> None:
                try:
                    doc.add_next_tick_callback(on_page)
                except Exception:  # the page closed meanwhile: nothing to show
                    pass
            fut.add_done_callback(finished)
        return fut

    def _finish_file_job(self, fut: Future) -> None:
        for k, (f, done) in enumerate(self._file_jobs):
            if f is fut:
                del self._file_jobs[k]
                done(fut)
                return

    def _show_file_error(self, pane, text: str) -> None:
        pane.object = f"&#9888; {as_html(text)}"
        pane.visible = True
        self.notify("danger", text)

    def _upload_data(self, event) -> None:
        values, names = self.data_upload.value, self.data_upload.filename
        if values is None or (isinstance(values, list) and not values):
            return
        if not isinstance(values, list):
            values, names = [values], [names]
        names = [display_name(n) if n else f"file{k}" for k, n in enumerate(names or [])]
        names += [f"file{k}" for k in range(len(names), len(values))]
        files = dict(zip(names, values))
        budget = self.session.upload_budget()
        self.data_error.object = "Reading " + as_html(", ".join(names), 300) + " \u2026"
        self.data_error.visible = True
        self._background(lambda: dataset_from_idx(files, max_bytes=budget), self._data_parsed)

    def _data_parsed(self, fut: Future) -> None:
        try:
            data = fut.result()
            name = self.session.add_dataset(data)
        except Exception as exc:
            self._show_file_error(self.data_error, f"Upload refused: {_message(exc)}")
            return
        # Said in the upload's own status line, not with notify(): the first message of the
        # page's message area re-renders that pane (see StatusText), a model-graph walk on
        # the event loop that stalled every page of the server for up to ~0.7 s.
        self.data_error.object = (f'<span style="color: {OK_COLOR}">&#10003; '
                                  + as_html(f"Uploaded {name}: {len(data.y_train)} train / {len(data.y_test)} test "
                                            f"samples, {data.n_features} inputs, {data.n_classes} classes. "
                                            "Confirm the rebuild to train on it.") + "</span>")
        self.data_error.visible = True
        self.dataset_field.widget.options = self.session.datasets()
        self.dataset_field.widget.value = name  # asks for the rebuild

    def _upload_checkpoint(self, event) -> None:
        data = self.ckpt_upload.value
        if data is None:
            return
        name = display_name(self.ckpt_upload.filename) if self.ckpt_upload.filename else "uploaded file"
        self.ckpt_error.object = "Reading " + as_html(name, 200) + " \u2026"
        self.ckpt_error.visible = True
        self._background(lambda: self.session.load_checkpoint(data, name=name), self._checkpoint_read)

    def _checkpoint_read(self, fut: Future) -> None:
        try:
            load = fut.result()
        except Exception as exc:
            self._show_file_error(self.ckpt_error, f"Checkpoint refused: {_message(exc)}")
            return
        self.ckpt_error.visible = False
        self.ckpt_error.object = ""
        self._track(load, "checkpoint")

    async def _checkpoint_file(self):
        # a coroutine, so the server's event loop (every page on it) keeps running while the
        # worker finishes its sample and writes the checkpoint
        try:
            data = await asyncio.wait_for(asyncio.wrap_future(self.session.checkpoint_bytes()), 30)
        except Exception as exc:
            self.notify("danger", f"Could not save the checkpoint: {_message(exc)}")
            return io.BytesIO(b"")
        self.notify("success", f"Checkpoint saved ({len(data) / 1e6:.1f} MB, {self.session.samples} samples).")
        return io.BytesIO(data)

    def _metrics_file(self):
        return io.StringIO(self.session.metrics_csv())

    async def _html_file(self):
        from spikewb.workbench.export import export_html_text, recording_of

        frames = self.recent_frames()
        rec = recording_of(frames, info={"rule": self.session.rule_name, "dataset": self.session.dataset})
        if len(rec) == 0:
            self.notify("warning", "Nothing to export yet: train or step first (the file holds the last samples "
                                   "the page showed).")
            return io.StringIO("")
        title = f"Spike Workbench: {rec.info['rule']} on {rec.info['dataset']}, last {len(rec)} samples shown"
        try:
            # rendering takes 0.4-2 s: in a file thread, not on the event loop every page shares
            html = await asyncio.wrap_future(FILE_THREADS.submit(export_html_text, rec, title))
        except Exception as exc:
            self.notify("danger", f"Could not export the samples: {_message(exc)}")
            return io.StringIO("")
        self.notify("success", f"Exported {len(rec)} samples as offline HTML ({len(html) / 1e6:.1f} MB).")
        return io.StringIO(html)

    # ================================================================ periodic
    def _track(self, fut: Future, what: str | None) -> None:
        self._futures.append((fut, what))

    def poll(self) -> None:
        """Report finished commands; re-sync widgets after a new generation.  Call periodically."""
        for fut, _ in [job for job in self._file_jobs if job[0].done()]:
            self._finish_file_job(fut)
        if self._futures:
            still = []
            for fut, what in self._futures:
                if not fut.done():
                    still.append((fut, what))
                    continue
                if fut.cancelled():
                    continue
                exc = fut.exception()
                if exc is not None:
                    text = f"{(what or 'change').capitalize()} failed: {_message(exc)}"
                    if what == "checkpoint":
                        self._show_file_error(self.ckpt_error, f"Checkpoint refused: {_message(exc)}")
                    else:
                        self.notify("danger", text)
                    if what in ("rebuild", "checkpoint"):
                        self.refresh()
                elif what in ("rebuild", "checkpoint", "reset"):
                    result = fut.result()
                    self.notify("success", result if isinstance(result, str) else
                                "Network reset: fresh weights from the seed.")
            self._futures = still
        running = bool(self.session.running or getattr(self.session, "waiting", False))
        if self.train_button.disabled != running:
            self.train_button.disabled = running
            self.pause_button.disabled = not running
        if self.session.generation != self._generation:
            self._generation = self.session.generation
            self.refresh()

    def refresh(self) -> None:
        """Show the session's applied setup in every widget (after rebuild / load / cancel)."""
        s = self.session
        self.rule_field.set(s.rule_name)
        self.dataset_field.widget.options = s.datasets()
        self.dataset_field.set(s.dataset)
        self.hidden_field.set(_fmt(list(s.hidden)))
        self.seed_field.set(int(s.seed))
        self.traced_field.set(", ".join(f"{l}:{i}" for l, i in s.traced))
        for f in (self.rule_field, self.dataset_field, self.hidden_field, self.seed_field, self.traced_field):
            f.clear_error()
        if type(s.rule) is self._rule_cls:
            for name, f in self.rule_fields.items():
                v = getattr(s.rule, name)
                f.set(_fmt(v) if isinstance(f.widget, pn.widgets.TextInput) else v)
                f.clear_error()
        else:
            self._build_rule_fields()
        if self.pending:
            self.pending = {}
            self._show_pending()
