"""Membrane potential traces of the traced neurons, with the threshold line.

The session records the potential of up to four neurons (``Frame.v_trace``,
sampled after integration and before the threshold test, so a crossing is
visible).  One source holds ``t`` and one float32 column per trace; the
threshold is a :class:`~bokeh.models.Span` at the frame's ``v_th`` and
moves when the threshold is changed live.  Event-driven rules sample the
continuous potential on their own time grid (``extras["trace_t"]``, ms); the
x axis then shows that time instead of steps.
"""

from __future__ import annotations

import numpy as np
import panel as pn
from bokeh.core.properties import value
from bokeh.models import ColumnDataSource, Legend, LegendItem, Span

from spikewb.workbench.sessions.session import MAX_TRACED
from spikewb.workbench.views.base import TRACE_COLORS, FrameView, make_figure, set_range


class TraceView(FrameView):
    """Potentials of the traced neurons over the current sample."""

    def __init__(self, height: int = 240, **params):
        super().__init__(**params)
        self.source = ColumnDataSource(data=self._empty(2), name="wb-traces")
        self.figure = make_figure("Membrane potential of traced neurons", height=height)
        self.figure.xaxis.axis_label = "time step"
        self.figure.yaxis.axis_label = "v (rule units)"
        self.renderers = []
        items = []
        for k in range(MAX_TRACED):
            # lines only: markers on top doubled the browser's cost of each update (measured)
            r = self.figure.line("t", f"v{k}", source=self.source, color=TRACE_COLORS[k], line_width=2)
            self.renderers.append(r)
            items.append(LegendItem(label=value(f"neuron {k}"), renderers=[r], visible=False))
        self.legend = Legend(items=items, location="top_left", label_text_font_size="10px",
                             background_fill_alpha=0.5, spacing=0, padding=2, border_line_color=None,
                             glyph_width=14, orientation="horizontal")
        self.figure.add_layout(self.legend)  # inside the frame: a side panel costs a re-layout per update
        self.threshold = Span(location=1.0, dimension="width", line_color="#d62728", line_dash="dashed",
                              line_width=2, name="wb-threshold")
        self.figure.add_layout(self.threshold)
        self.reset_line = Span(location=0.0, dimension="width", line_color="#999999", line_width=1)
        self.figure.add_layout(self.reset_line)
        self._ids = None
        self.pane = pn.pane.Bokeh(self.figure, sizing_mode="stretch_width")

    def __panel__(self):
        return self.pane

    @staticmethod
    def _empty(n_steps: int) -> dict:
        data = {"t": np.arange(n_steps, dtype=np.float32)}
        for k in range(MAX_TRACED):
            data[f"v{k}"] = np.full(n_steps, np.nan, np.float32)
        return data

    def clear(self) -> None:
        self.source.data = self._empty(2)

    def _labels(self, frame) -> None:
        ids = tuple(map(tuple, frame.trace_ids.tolist()))
        if ids == self._ids:
            return
        self._ids = ids
        for k, item in enumerate(self.legend.items):
            if k < len(ids):
                layer, idx = ids[k]
                name = frame.layer_names[layer] if 0 <= layer < len(frame.layer_names) else f"layer {layer}"
                item.update(label=value(f"{name} #{idx}"), visible=True)
            else:
                item.visible = False

    def update(self, snap) -> None:
        self.new_generation(snap)
        frame = snap.frame
        v = frame.v_trace
        n_steps = v.shape[1] if v.ndim == 2 and v.shape[1] else int(frame.duration)
        data = self._empty(n_steps)
        grid = frame.extras.get("trace_t")
        continuous = grid is not None and len(grid) == n_steps and n_steps > 1
        if continuous:
            data["t"] = np.asarray(grid, np.float32)
        label = f"time ({frame.time_unit})" if continuous else "time step"
        if self.figure.xaxis[0].axis_label != label:
            self.figure.xaxis.axis_label = label
        for k in range(min(len(v), MAX_TRACED)):
            data[f"v{k}"] = v[k].astype(np.float32)
        self._labels(frame)
        self.source.data = data
        v_th = float(frame.v_th)
        if self.threshold.location != v_th:
            self.threshold.location = v_th
        finite = v[np.isfinite(v)] if v.size else np.zeros(0)
        lo = min(float(finite.min()) if finite.size else 0.0, -0.25 * v_th)
        hi = max(float(finite.max()) if finite.size else 0.0, 1.25 * v_th)
        # widen in steps of 0.5 threshold so the axis does not jitter every frame
        unit = 0.5 * v_th if v_th > 0 else 0.5
        lo, hi = np.floor(lo / unit) * unit, np.ceil(hi / unit) * unit
        rng = self.figure.y_range
        if lo < rng.start or hi > rng.end or (rng.end - rng.start) > 3 * (hi - lo):
            set_range(rng, float(lo), float(hi))
        if continuous:
            set_range(self.figure.x_range, float(data["t"][0]), float(data["t"][-1]))
        else:
            set_range(self.figure.x_range, -0.5, float(n_steps) - 0.5)
