"""The per-neuron learning signal of every layer as signed heat strips.

``Frame.signal`` holds, per neuron layer, the rule's own per-neuron signal
(Desire BP: the ternary desire -1 "spike less" / 0 / +1 "spike more"; other
rules: spike-time or membrane errors).  Each layer is one strip of an image
glyph, blue for negative, white for zero, red for positive, on a symmetric
colour scale; the title carries the rule's signal name (``Frame.signal_name``).

SSNN-BP's signal is carried by two spike streams per neuron: the strip shows
the count of positive minus the count of negative gradient spikes of the
sample (``extras["grad_pos_counts"] - extras["grad_neg_counts"]``).
"""

from __future__ import annotations

import numpy as np
import panel as pn
from bokeh.models import ColorBar, ColumnDataSource, FixedTicker, LinearColorMapper

from spikewb.workbench.views.base import SIGNED, FrameView, make_figure, set_range

_STRIP = 0.8


def strip_values(frame) -> list[np.ndarray]:
    """The per-neuron values the strip shows, per layer 0..L (float32).

    ``Frame.signal``, except for rules with +/- gradient spike streams (SSNN-BP),
    where it is the positive minus the negative gradient spike count.
    """
    pos, neg = frame.extras.get("grad_pos_counts"), frame.extras.get("grad_neg_counts")
    if pos is not None and neg is not None and len(pos) == len(neg) == frame.n_layers:
        return [(np.asarray(p, np.float32) - np.asarray(n, np.float32)) for p, n in zip(pos, neg)]
    return [np.asarray(v, np.float32) for v in frame.signal]


class SignalView(FrameView):
    """Signed heat strip of the learning signal per neuron layer."""

    max_rate = 5.0

    def __init__(self, height: int = 200, **params):
        super().__init__(**params)
        self.source = ColumnDataSource(data=self._empty(), name="wb-signal")
        self.mapper = LinearColorMapper(palette=list(SIGNED), low=-1.0, high=1.0)
        self.figure = make_figure("Learning signal per neuron", height=height)
        self.figure.image(image="image", x="x", y="y", dw="dw", dh="dh", source=self.source,
                          color_mapper=self.mapper)
        self.figure.xaxis.axis_label = "neuron (fraction of layer width)"
        self.ticker = FixedTicker(ticks=[])
        self.figure.yaxis.ticker = self.ticker
        self.figure.ygrid.visible = False
        self.colorbar = ColorBar(color_mapper=self.mapper, width=8, padding=2, label_standoff=4,
                                 major_label_text_font_size="10px")
        self.figure.add_layout(self.colorbar, "right")
        set_range(self.figure.x_range, 0, 1)
        self._layout_key = None
        self._title = None
        self.pane = pn.pane.Bokeh(self.figure, sizing_mode="stretch_width")

    def __panel__(self):
        return self.pane

    @staticmethod
    def _empty() -> dict:
        return dict(image=[], x=[], y=[], dw=[], dh=[])

    def clear(self) -> None:
        self.source.data = self._empty()

    def update(self, snap) -> None:
        self.new_generation(snap)
        frame = snap.frame
        layers = [l for l in range(1, frame.n_layers) if l < len(frame.signal) and frame.signal[l].size]
        if not layers:
            return
        key = (frame.layer_names, frame.layer_sizes)
        if key != self._layout_key:
            self._layout_key = key
            ticks = [b + 0.5 for b in range(len(layers))]
            self.ticker.ticks = ticks
            self.figure.yaxis.major_label_overrides = {
                t: f"{frame.layer_names[l]} ({frame.layer_sizes[l]})" for t, l in zip(ticks, layers)}
            set_range(self.figure.y_range, 0, len(layers))
        values = strip_values(frame)
        if "grad_pos_counts" in frame.extras:
            title = "gradient spikes per neuron: (+) count \u2212 (\u2212) count (blue < 0 < red)"
        else:
            title = f"{frame.signal_name} per neuron (blue < 0 < red)"
        if title != self._title:
            self._title = title
            self.figure.title.text = title
        images = [np.ascontiguousarray(values[l].reshape(1, -1)) for l in layers]
        m = max(float(np.max(np.abs(im))) if im.size else 0.0 for im in images)
        m = 1.0 if m <= 1.0 or not np.isfinite(m) else float(m)
        if self.mapper.high != m:
            self.mapper.update(low=-m, high=m)
        n = len(layers)
        self.source.data = dict(image=images, x=[0.0] * n, y=[b + (1 - _STRIP) / 2 for b in range(n)],
                                dw=[1.0] * n, dh=[_STRIP] * n)
