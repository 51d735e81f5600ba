"""The three spike streams of SSNN-BP's composite neurons, side by side.

In SSNN-BP every neuron is a composite of a forward unit and two gradient
units; the backward pass runs in spikes of the positive and the negative
gradient unit.  This view draws, for the current sample, three rasters with
the same layout (neuron layers as bands, output at the top, time steps on x):
the forward spikes (``Frame.spike_t`` / ``spike_i``), the positive gradient
spikes (``extras["grad_pos_t"]`` / ``["grad_pos_i"]``) and the negative ones
(``["grad_neg_t"]`` / ``["grad_neg_i"]``).  A weight changes where a forward
spike of the layer below meets a gradient spike of the layer above in the same
step, so reading the three panels together shows where learning happens.

Layers are binned like the main raster (:func:`~spikewb.workbench.views.raster.bin_raster`,
at most ``max_rows`` rows per band).  Each panel has its own source
(``wb-grad-fwd``, ``wb-grad-pos``, ``wb-grad-neg``) whose ``spikes`` column
holds the number of events of each band.  The view is shown only for frames
that carry gradient streams (rule ``ssnn``) and hides itself otherwise.
"""

from __future__ import annotations

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource, FixedTicker, LinearColorMapper, Range1d, Span

from spikewb.workbench.views.base import FrameView, make_figure, set_range
from spikewb.workbench.views.raster import MAX_BANDS, RASTER_PALETTE, bin_raster, layer_labels

_BAND = 0.9


def _ramp(r: int, g: int, b: int, n: int = 32) -> tuple[str, ...]:
    """White to the colour (r, g, b) in ``n`` steps."""
    f = np.linspace(0.0, 1.0, n)
    return tuple(f"#{int(255 + (r - 255) * x):02x}{int(255 + (g - 255) * x):02x}{int(255 + (b - 255) * x):02x}"
                 for x in f)


#: (key, title, source name, palette) of the three panels.
STREAMS = (
    ("fwd", "Forward spikes", "wb-grad-fwd", RASTER_PALETTE),
    ("pos", "Positive gradient spikes (+)", "wb-grad-pos", _ramp(178, 24, 43)),
    ("neg", "Negative gradient spikes (\u2212)", "wb-grad-neg", _ramp(33, 102, 172)),
)


def stream_events(frame, stream: str, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """(times, neuron indices) of one stream (``fwd``, ``pos``, ``neg``) of ``layer``."""
    if stream == "fwd":
        return frame.spikes(layer)
    t = frame.extras.get(f"grad_{stream}_t")
    i = frame.extras.get(f"grad_{stream}_i")
    if t is None or i is None or layer >= len(t):
        return np.zeros(0, np.float32), np.zeros(0, np.int32)
    return t[layer], i[layer]


def has_streams(frame) -> bool:
    """Whether the frame carries gradient spike rasters (SSNN-BP with spikes recorded)."""
    return "grad_pos_t" in frame.extras and "grad_neg_t" in frame.extras and bool(frame.spike_t)


class GradientRasterView(FrameView):
    """Forward, positive-gradient and negative-gradient rasters of every neuron layer."""

    def __init__(self, height: int = 260, max_rows: int = 100, visible: bool = False, **params):
        super().__init__(**params)
        self.max_rows = max_rows
        self.height = height
        self.sources: dict[str, ColumnDataSource] = {}
        self.figures = []
        # the figures (~120 Bokeh models) are built when a frame with gradient streams first
        # arrives: a page training another rule never creates them
        self.layout = pn.Column(visible=visible, sizing_mode="stretch_width", margin=(4, 4),
                                css_classes=["wb-grad-rasters"])
        if visible:
            self._build()

    def _build(self) -> None:
        if self.figures:
            return
        height = self.height
        self.x_range = Range1d(0, 1)
        self.y_range = Range1d(0, 1)
        self.ticker = FixedTicker(ticks=[])
        self._spans: list[Span] = []
        for k, (key, title, name, palette) in enumerate(STREAMS):
            src = ColumnDataSource(data=self._empty(), name=name)
            fig = make_figure(title, height=height, x_range=self.x_range, y_range=self.y_range,
                              name=f"{name}-fig", min_border_left=80)
            fig.image(image="image", x="x", y="y", dw="dw", dh="dh", source=src,
                      color_mapper=LinearColorMapper(palette=list(palette), low=0, high=255))
            fig.xaxis.axis_label = "time step"
            fig.yaxis.ticker = self.ticker
            fig.yaxis.major_label_text_font_size = "11px"
            fig.ygrid.visible = False
            for _ in range(MAX_BANDS):
                span = Span(location=0, dimension="width", line_color="#bbbbbb", line_width=1, visible=False)
                fig.add_layout(span)
                self._spans.append(span)
            self.sources[key] = src
            self.figures.append(fig)
        self._layout_key = None
        self.note = pn.pane.HTML(
            "Each neuron is a forward unit plus a positive and a negative gradient unit. A weight "
            "moves up (down) where a forward spike of the layer below meets a + (\u2212) gradient spike "
            "of the neuron in the same step.", styles={"font-size": "12px", "color": "#555"},
            sizing_mode="stretch_width", margin=(0, 8))
        self.layout.objects = [
            pn.pane.Markdown("**Composite neurons: forward and gradient spike streams (SSNN-BP)**",
                             margin=(0, 8)),
            pn.Row(*(pn.pane.Bokeh(f, sizing_mode="stretch_width") for f in self.figures),
                   sizing_mode="stretch_width"),
            self.note]

    def __panel__(self):
        return self.layout

    @staticmethod
    def _empty() -> dict:
        return dict(image=[], x=[], y=[], dw=[], dh=[], spikes=np.zeros(0, np.int32))

    def clear(self) -> None:
        for src in self.sources.values():
            src.data = self._empty()

    def _layout(self, frame, n_steps: int) -> None:
        layers = list(range(1, frame.n_layers))
        key = (frame.layer_names, frame.layer_sizes, n_steps)
        if key == self._layout_key:
            return
        self._layout_key = key
        labels = layer_labels(frame, layers, self.max_rows)
        self.ticker.ticks = list(labels)
        for fig in self.figures:  # labels on all three: equal plot widths, each panel readable alone
            fig.yaxis.major_label_overrides = labels
        for k, span in enumerate(self._spans):
            b = k % MAX_BANDS + 1
            span.update(location=b, visible=b < len(layers))
        set_range(self.y_range, 0, len(layers))
        set_range(self.x_range, 0, n_steps)

    def update(self, snap) -> None:
        self.new_generation(snap)
        frame = snap.frame
        show = has_streams(frame)
        if show:
            self._build()
        if self.layout.visible != show:
            self.layout.visible = show
        if not show:
            return
        n_steps = max(1, int(round(frame.duration)))
        self._layout(frame, n_steps)
        layers = list(range(1, frame.n_layers))
        for key, src in self.sources.items():
            images, spikes = [], []
            for layer in layers:
                t, i = stream_events(frame, key, layer)
                img, _ = bin_raster(t, i, frame.layer_sizes[layer], n_steps, self.max_rows)
                images.append(img)
                spikes.append(len(t))
            n = len(images)
            src.data = dict(image=images, x=[0.0] * n, y=[b + (1 - _BAND) / 2 for b in range(n)],
                            dw=[float(n_steps)] * n, dh=[_BAND] * n, spikes=np.array(spikes, np.int32))
