"""Output spike counts of the current sample against the rule's target.

Bars are the output layer's spike counts (``Frame.counts[-1]``); the black
tick on each bar is the target count (``Frame.target``, Desire BP: ``T - m``
for the label, 0 for the others).  The label's bar is green, a wrong
prediction's bar red; a caption in the plot says label and prediction.
"""

from __future__ import annotations

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource, FixedTicker, Label

from spikewb.workbench.views.base import FrameView, make_figure, nice_ceiling, set_range

_OTHER, _LABEL, _WRONG = "#9ecae1", "#2ca02c", "#d62728"


class OutputView(FrameView):
    """Output spike counts versus target for the current sample."""

    def __init__(self, height: int = 220, **params):
        super().__init__(**params)
        self.source = ColumnDataSource(data=self._empty(), name="wb-output")
        self.figure = make_figure("Output spike counts vs target", height=height)
        self.figure.vbar(x="x", top="count", width=0.7, source=self.source, fill_color="color", line_color=None)
        self.figure.rect(x="x", y="target", width=0.9, height=3, height_units="screen", source=self.source,
                         fill_color="#222222", line_color=None)
        self.figure.yaxis.axis_label = "spikes"
        # label / prediction as an annotation: changing the title text would re-layout the plot
        self.caption = Label(x=0, y=0, text="", text_font_size="11px", text_align="right",
                             text_baseline="top", background_fill_color="white", background_fill_alpha=0.7,
                             x_offset=-4, y_offset=-4)
        self.figure.add_layout(self.caption)
        self.ticker = FixedTicker(ticks=[])
        self.figure.xaxis.ticker = self.ticker
        self._classes = None
        self.pane = pn.pane.Bokeh(self.figure, sizing_mode="stretch_width")

    def __panel__(self):
        return self.pane

    @staticmethod
    def _empty() -> dict:
        return dict(x=np.zeros(0, np.uint16), count=np.zeros(0, np.float32), target=np.zeros(0, np.float32),
                    color=[])

    def clear(self) -> None:
        self.source.data = self._empty()

    def update(self, snap) -> None:
        self.new_generation(snap)
        frame = snap.frame
        counts = frame.counts[-1].astype(np.float32)
        n = len(counts)
        names = tuple(snap.class_names) if len(snap.class_names) == n else tuple(str(i) for i in range(n))
        if names != self._classes:
            self._classes = names
            step = max(1, n // 20)
            ticks = list(range(0, n, step))
            self.ticker.ticks = ticks
            self.figure.xaxis.major_label_overrides = {t: names[t] for t in ticks}
            self.figure.xaxis.major_label_orientation = 0.6 if max(map(len, names)) > 3 else 0
            set_range(self.figure.x_range, -0.6, n - 0.4)
        target = frame.target.astype(np.float32) if frame.target.size == n else np.full(n, np.nan, np.float32)
        colors = [_OTHER] * n
        if 0 <= frame.prediction < n and frame.prediction != frame.label:
            colors[frame.prediction] = _WRONG
        if 0 <= frame.label < n:
            colors[frame.label] = _LABEL
        top = max(float(frame.duration), float(counts.max(initial=0)), float(np.nanmax(target, initial=0)))
        y_top = nice_ceiling(top * 1.05)
        set_range(self.figure.y_range, 0, y_top)
        if self.caption.y != y_top or self.caption.x != n - 0.4:
            self.caption.update(x=n - 0.4, y=y_top)
        pred = names[frame.prediction] if 0 <= frame.prediction < n else "none (tie)"
        mark = "\u2713" if frame.correct else "\u2717"
        label = names[frame.label] if 0 <= frame.label < n else str(frame.label)
        caption = f"label {label}, predicted {pred} {mark}"
        if self.caption.text != caption:
            self.caption.text = caption
        self.source.data = dict(x=np.arange(n, dtype=np.uint16), count=counts, target=target, color=colors)
