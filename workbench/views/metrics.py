"""Learning curves: running train accuracy, per-epoch test accuracy, loss.

The running curves are streamed (one point per shown frame, rollover keeps
the last ``rollover`` points); the per-epoch points are replaced only when an
epoch completes (``Snapshot.history`` grows), so this view costs a few bytes
per update.

A stored paper reproduction (``spikewb reproduce``, see
:mod:`spikewb.engine.training.reproductions`) can be overlaid: its per-epoch
test accuracy is drawn dashed against the same axis, samples trained, so the
live run and the paper setting compare at equal training.  Only names of known
reproductions are offered; their metrics files are read bounded and validated.
"""

from __future__ import annotations

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource, Legend, LegendItem, Range1d

from spikewb.engine.errors import SpikeWorkbenchError
from spikewb.engine.training import reproductions
from spikewb.workbench.views.base import FrameView, make_figure, nice_ceiling, set_range

#: Choice of the overlay menu that shows no reproduction.
NO_OVERLAY = "none"


class MetricsView(FrameView):
    """Running train accuracy and per-epoch test accuracy; loss below."""

    max_rate = 1.0

    def __init__(self, height: int = 200, rollover: int = 4000, **params):
        super().__init__(**params)
        self.rollover = rollover
        self.running = ColumnDataSource(data=self._empty_running(), name="wb-accuracy")
        self.epochs = ColumnDataSource(data=self._empty_epochs(), name="wb-epochs")
        self.acc = make_figure("Accuracy", height=height, x_range=Range1d(0, 100), y_range=Range1d(0, 1))
        self.acc.xaxis.axis_label = "samples trained"
        r1 = self.acc.line("step", "acc", source=self.running, color="#1f77b4", line_width=2)
        r2 = self.acc.line("step", "test", source=self.epochs, color="#d62728", line_width=2)
        r3 = self.acc.scatter("step", "test", source=self.epochs, color="#d62728", size=7)
        r4 = self.acc.scatter("step", "train", source=self.epochs, color="#1f77b4", size=6, marker="square")
        self.overlay = ColumnDataSource(data=self._empty_overlay(), name="wb-overlay")
        r5 = self.acc.line("step", "test", source=self.overlay, color="#555555", line_width=2, line_dash="dashed")
        r6 = self.acc.scatter("step", "test", source=self.overlay, color="#555555", size=5, marker="diamond")
        self.overlay_item = LegendItem(label="reproduction (test)", renderers=[r5, r6], visible=False)
        self.acc.add_layout(Legend(items=[LegendItem(label="train (running, this epoch)", renderers=[r1, r4]),
                                          LegendItem(label="test (per epoch)", renderers=[r2, r3]),
                                          self.overlay_item],
                                   location="bottom_right", label_text_font_size="10px",
                                   background_fill_alpha=0.6, spacing=0, padding=4))
        self._overlay_end = 0.0
        names = reproductions.stored()
        self.overlay_select = pn.widgets.Select(
            name="Overlay a stored reproduction (test accuracy, dashed)", options=[NO_OVERLAY, *names],
            value=NO_OVERLAY, disabled=not names, width=320, margin=(2, 10))
        self.overlay_note = pn.widgets.StaticText(value="" if names else "no stored reproductions "
                                                  "(spikewb reproduce NAME writes them)", margin=(2, 10),
                                                  css_classes=["wb-overlay-note"])
        self.overlay_select.param.watch(lambda e: self.show_overlay(e.new), "value")
        self.loss = make_figure("Loss", height=int(height * 0.7), x_range=self.acc.x_range,
                                y_range=Range1d(0, 0.1))
        self.loss.xaxis.axis_label = "samples trained"
        self.loss.line("step", "loss", source=self.running, color="#ff7f0e", line_width=2)
        self._n_epochs = 0
        self._loss_name = None
        self._loss_max = 0.0
        self.pane = pn.Column(pn.Row(self.overlay_select, self.overlay_note, sizing_mode="stretch_width"),
                              pn.pane.Bokeh(self.acc, sizing_mode="stretch_width"),
                              pn.pane.Bokeh(self.loss, sizing_mode="stretch_width"),
                              sizing_mode="stretch_width")

    def __panel__(self):
        return self.pane

    @staticmethod
    def _empty_running() -> dict:
        return dict(step=np.zeros(0, np.float64), acc=np.zeros(0, np.float32), loss=np.zeros(0, np.float32))

    @staticmethod
    def _empty_overlay() -> dict:
        return dict(step=np.zeros(0, np.float64), test=np.zeros(0, np.float32), epoch=np.zeros(0, np.int32))

    def show_overlay(self, name: str) -> None:
        """Overlay the stored reproduction ``name`` (:data:`NO_OVERLAY`: remove it)."""
        data, note, end = self._empty_overlay(), "", 0.0
        if name != NO_OVERLAY:
            try:
                curve = reproductions.stored_curve(name)
            except SpikeWorkbenchError as exc:
                note = f"not shown: {exc}"
            else:
                data = dict(step=np.array(curve["samples"], np.float64), test=np.array(curve["test"], np.float32),
                            epoch=np.array(curve["epoch"], np.int32))
                best = max(curve["test"], default=float("nan"))
                note = (f"{name}: {len(curve['test'])} epochs of {curve['samples'][0]:,.0f} samples, "
                        f"last {100 * curve['test'][-1]:.2f} %, best {100 * best:.2f} %") if curve["test"] else ""
                end = curve["samples"][-1] if curve["samples"] else 0.0
        self.overlay.data = data
        self.overlay_item.visible = bool(len(data["step"]))
        self.overlay_item.label = {"value": f"{name} (test, stored)"} if len(data["step"]) else \
            {"value": "reproduction (test)"}
        self.overlay_note.value = note
        self._overlay_end = end
        rng = self.acc.x_range
        if end > rng.end:
            set_range(rng, 0.0, nice_ceiling(end * 1.02))

    @staticmethod
    def _empty_epochs() -> dict:
        return dict(step=np.zeros(0, np.float64), test=np.zeros(0, np.float32), train=np.zeros(0, np.float32))

    def clear(self) -> None:
        self.running.data = self._empty_running()
        self.epochs.data = self._empty_epochs()
        self._n_epochs = 0
        self._loss_max = 0.0
        set_range(self.acc.x_range, 0, nice_ceiling(self._overlay_end * 1.02) if self._overlay_end else 100)

    def update(self, snap) -> None:
        self.new_generation(snap)
        frame = snap.frame
        if frame.loss_name != self._loss_name:
            self._loss_name = frame.loss_name
            self.loss.title.text = f"Loss: {frame.loss_name} (mean over the epoch so far)"
        acc = frame.accuracy if np.isfinite(frame.accuracy) else np.nan
        self.running.stream(dict(step=np.array([snap.samples], np.float64),
                                 acc=np.array([acc], np.float32),
                                 loss=np.array([snap.epoch_loss], np.float32)), rollover=self.rollover)
        # fixed ranges, widened in nice steps (no auto-ranging work in the browser)
        rng = self.acc.x_range
        first = float(self.running.data["step"][0]) if len(self.running.data["step"]) else 0.0
        if snap.samples > rng.end or first > rng.start + 0.5 * (rng.end - rng.start):
            set_range(rng, first if first > rng.end * 0.5 else 0.0, nice_ceiling(max(snap.samples, 1) * 1.1))
        if np.isfinite(snap.epoch_loss) and snap.epoch_loss > self._loss_max:
            self._loss_max = float(snap.epoch_loss)
            set_range(self.loss.y_range, 0, nice_ceiling(self._loss_max * 1.1))
        if len(snap.history) != self._n_epochs:
            self._n_epochs = len(snap.history)
            steps = np.cumsum([h.samples for h in snap.history]).astype(np.float64)
            self.epochs.data = dict(step=steps,
                                    test=np.array([h.test_accuracy for h in snap.history], np.float32),
                                    train=np.array([h.train_accuracy for h in snap.history], np.float32))
