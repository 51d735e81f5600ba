"""Spike raster of every layer for the current sample, as one binned image per layer.

Each layer is a band of equal height (input at the bottom, output at the
top) showing an image of *rows x time steps*.  Layers of up to
``max_rows`` neurons get one row per neuron (a classic raster: a dark cell is
a spike); wider layers are pre-binned into ``max_rows`` rows of ``k``
neighbouring neurons and a cell's darkness is the fraction of the row's
neurons that fired at that step.  This keeps the payload and the browser's
drawing cost constant (a few kB of ``uint8`` per update, four image draws)
however many spikes there are, the approach recommended for rasters beyond
a few thousand points (``reference/performance.md`` 3.2).  All layers share
one :class:`~bokeh.models.ColumnDataSource` (``wb-raster``), replaced whole
per shown frame.
"""

from __future__ import annotations

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource, FixedTicker, LinearColorMapper, Span

from .base import FrameView, make_figure, set_range

_BAND = 0.9  # fraction of a band used by the image
MAX_BANDS = 12  # separator lines prepared for up to this many layers
#: White (silent) to near-black (all neurons of the row fired).
RASTER_PALETTE = tuple(f"#{v:02x}{v:02x}{min(255, v + 40):02x}" for v in np.linspace(255, 10, 32).astype(int))


def bin_raster(t: np.ndarray, i: np.ndarray, n_neurons: int, n_steps: int, max_rows: int) -> tuple[np.ndarray, int]:
    """Spike events -> ``(rows, n_steps)`` uint8 image, 255 * sqrt(fraction of the row's neurons firing).

    The square root keeps sparse activity of binned rows visible; a row of one
    neuron is 0 or 255.  Returns the image and ``k``, the neurons per row.

    >>> img, k = bin_raster(np.array([0, 1, 1]), np.array([0, 0, 3]), 4, 2, 2)
    >>> k, img.tolist()
    (2, [[180, 180], [0, 180]])
    """
    k = max(1, int(np.ceil(n_neurons / max_rows)))
    rows = int(np.ceil(n_neurons / k))
    counts = np.zeros((rows, n_steps), np.int32)
    if len(t):
        tt = np.clip(np.asarray(t).astype(np.int64), 0, n_steps - 1)
        np.add.at(counts, (np.asarray(i, np.int64) // k, tt), 1)
    img = np.minimum(np.round(255.0 * np.sqrt(counts / k)), 255).astype(np.uint8)
    return img, k


class RasterView(FrameView):
    """Spike raster per layer (time on x, layers as bands on y)."""

    def __init__(self, height: int = 300, max_rows: int = 100, show_input: bool = True, **params):
        super().__init__(**params)
        self.max_rows = max_rows
        self.show_input = show_input
        self.source = ColumnDataSource(data=self._empty(), name="wb-raster")
        self.mapper = LinearColorMapper(palette=list(RASTER_PALETTE), low=0, high=255)
        self.figure = make_figure("Spike raster (current sample)", height=height, name="wb-raster-fig")
        self.figure.image(image="image", x="x", y="y", dw="dw", dh="dh", source=self.source,
                          color_mapper=self.mapper)
        self.figure.xaxis.axis_label = "time step"
        # models are created once: assigning a new model later makes Bokeh re-walk the
        # whole document (slow for a page this size); only plain properties change later
        self.ticker = FixedTicker(ticks=[])
        self.figure.yaxis.ticker = self.ticker
        self.figure.ygrid.visible = False
        self.figure.yaxis.major_label_text_font_size = "11px"
        self.figure.css_classes = ["wb-raster-pane"]
        self._spans = [Span(location=0, dimension="width", line_color="#bbbbbb", line_width=1, visible=False)
                       for _ in range(MAX_BANDS)]
        for span in self._spans:
            self.figure.add_layout(span)
        self._layout_key = None
        self.pane = pn.pane.Bokeh(self.figure, sizing_mode="stretch_width")

    def __panel__(self):
        return self.pane

    @staticmethod
    def _empty() -> dict:
        return dict(image=[], x=[], y=[], dw=[], dh=[], spikes=np.zeros(0, np.int32))

    def clear(self) -> None:
        self.source.data = self._empty()

    def _layers(self, frame) -> list[int]:
        first = 0 if self.show_input else 1
        return list(range(first, frame.n_layers))

    def _layout(self, frame, n_steps: int) -> None:
        layers = self._layers(frame)
        key = (frame.layer_names, frame.layer_sizes, n_steps, tuple(layers))
        if key == self._layout_key:
            return
        self._layout_key = key
        ticks = [b + 0.5 for b in range(len(layers))]
        self.ticker.ticks = ticks
        labels = {}
        for t, l in zip(ticks, layers):
            n = frame.layer_sizes[l]
            k = max(1, int(np.ceil(n / self.max_rows)))
            labels[t] = f"{frame.layer_names[l]} ({n})" + (f"\n{k} per row" if k > 1 else "")
        self.figure.yaxis.major_label_overrides = labels
        for k, span in enumerate(self._spans):
            b = k + 1
            span.update(location=b, visible=b < len(layers))
        set_range(self.figure.y_range, 0, len(layers))
        set_range(self.figure.x_range, 0, n_steps)

    def update(self, snap) -> None:
        self.new_generation(snap)
        frame = snap.frame
        if not frame.spike_t:
            return
        n_steps = max(1, int(round(frame.duration)))
        self._layout(frame, n_steps)
        images, spikes = [], []
        for layer in self._layers(frame):
            t, i = frame.spike_t[layer], frame.spike_i[layer]
            img, _ = bin_raster(t, i, frame.layer_sizes[layer], n_steps, self.max_rows)
            images.append(img)
            spikes.append(len(t))
        n = len(images)
        self.source.data = dict(image=images, x=[0.0] * n, y=[b + (1 - _BAND) / 2 for b in range(n)],
                                dw=[float(n_steps)] * n, dh=[_BAND] * n, spikes=np.array(spikes, np.int32))
