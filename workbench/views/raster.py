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

Event-driven rules (``Frame.time_unit`` not ``"step"``, e.g. multi-spike BP in
ms) have continuous spike times and several spikes per neuron.  Their images
are binned into ``CONTINUOUS_COLS`` columns over the sample, and every layer
small enough for one row per neuron (at most ``max_rows`` neurons and
``MAX_EXACT_EVENTS`` spikes) is drawn instead as one short vertical tick per
spike at its exact time (source ``wb-raster-events``), so two spikes of one
neuron closer than a column stay apart.
"""

from __future__ import annotations

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource, FixedTicker, LinearColorMapper, Span

from spikewb.workbench.views.base import FrameView, make_figure, set_range

_BAND = 0.9  # fraction of a band used by the image
MAX_BANDS = 12  # separator lines prepared for up to this many layers
#: White (silent) to near-black (all neurons of the row fired).
RASTER_PALETTE = tuple(f"#{v:02x}{v:02x}{min(255, v + 40):02x}" for v in np.linspace(255, 10, 32).astype(int))
#: Image columns over the sample for continuous-time (event-driven) frames.
CONTINUOUS_COLS = 240
#: A layer with more spikes than this is binned even when it is small (payload bound).
MAX_EXACT_EVENTS = 4000
#: Colour of the exact-time spike ticks (the darkest raster shade).
TICK_COLOR = RASTER_PALETTE[-1]


def exact_ticks(t: np.ndarray, i: np.ndarray, n_neurons: int, band: int) -> dict:
    """Vertical ticks ``(t, y0, y1)`` for spikes of a layer drawn one row per neuron in band ``band``.

    >>> d = exact_ticks(np.array([1.25, 2.5]), np.array([0, 1]), 2, 1)
    >>> d["t"].tolist(), [round(float(v), 3) for v in d["y0"]]
    ([1.25, 2.5], [1.05, 1.5])
    """
    row = _BAND / max(n_neurons, 1)
    y0 = band + (1 - _BAND) / 2 + np.asarray(i, np.float64) * row
    return dict(t=np.asarray(t, np.float32), y0=y0.astype(np.float32), y1=(y0 + 0.85 * row).astype(np.float32))


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


def layer_labels(frame, layers, max_rows: int, exact=None) -> dict[float, str]:
    """Y-axis labels of stacked raster bands: ``{band centre: "name (size)[\\nk per row]"}``.

    Band ``b`` (one per entry of ``layers``) is centred at ``b + 0.5``; a layer wider
    than ``max_rows`` is binned, ``k`` neurons per row, unless ``exact[b]`` says its
    spikes are drawn one tick per neuron.
    """
    labels = {}
    for b, l in enumerate(layers):
        n = frame.layer_sizes[l]
        k = max(1, int(np.ceil(n / max_rows)))
        binned = k > 1 and not (exact is not None and exact[b])
        labels[b + 0.5] = f"{frame.layer_names[l]} ({n})" + (f"\n{k} per row" if binned else "")
    return labels


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
        self.events = ColumnDataSource(data=self._no_events(), name="wb-raster-events")
        self.figure.segment(x0="t", y0="y0", x1="t", y1="y1", source=self.events, line_color=TICK_COLOR,
                            line_width=1.5)
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

    @staticmethod
    def _no_events() -> dict:
        return dict(t=np.zeros(0, np.float32), y0=np.zeros(0, np.float32), y1=np.zeros(0, np.float32),
                    layer=np.zeros(0, np.int8))

    def clear(self) -> None:
        self.source.data = self._empty()
        self.events.data = self._no_events()

    def _exact(self, frame, layer: int) -> bool:
        """Whether ``layer`` of a continuous-time frame is drawn as exact ticks."""
        return (frame.time_unit != "step" and frame.layer_sizes[layer] <= self.max_rows
                and len(frame.spike_t[layer]) <= MAX_EXACT_EVENTS)

    def _layers(self, frame) -> list[int]:
        first = 0 if self.show_input else 1
        return list(range(first, frame.n_layers))

    def _layout(self, frame, t_end: float) -> None:
        layers = self._layers(frame)
        exact = tuple(self._exact(frame, l) for l in layers)
        key = (frame.layer_names, frame.layer_sizes, t_end, tuple(layers), frame.time_unit, exact)
        if key == self._layout_key:
            return
        self._layout_key = key
        labels = layer_labels(frame, layers, self.max_rows, exact)
        self.ticker.ticks = list(labels)
        self.figure.yaxis.major_label_overrides = labels
        for k, span in enumerate(self._spans):
            b = k + 1
            span.update(location=b, visible=b < len(layers))
        label = "time step" if frame.time_unit == "step" else f"time ({frame.time_unit}, exact spike times)"
        if self.figure.xaxis[0].axis_label != label:
            self.figure.xaxis.axis_label = label
        set_range(self.figure.y_range, 0, len(layers))
        set_range(self.figure.x_range, 0, t_end)

    def update(self, snap) -> None:
        self.new_generation(snap)
        frame = snap.frame
        if not frame.spike_t:
            return
        continuous = frame.time_unit != "step"
        if continuous:  # continuous times: a fixed number of columns over the sample
            t_end = float(frame.duration) if frame.duration > 0 else 1.0
            n_cols, scale = CONTINUOUS_COLS, CONTINUOUS_COLS / t_end
        else:
            n_cols = max(1, int(round(frame.duration)))
            t_end, scale = float(n_cols), 1.0
        self._layout(frame, t_end)
        images, spikes, ticks = [], [], []
        for band, layer in enumerate(self._layers(frame)):
            t, i = frame.spike_t[layer], frame.spike_i[layer]
            n = frame.layer_sizes[layer]
            if self._exact(frame, layer):
                img = np.zeros((n, n_cols), np.uint8)
                if len(t):
                    d = exact_ticks(t, i, n, band)
                    d["layer"] = np.full(len(t), layer, np.int8)
                    ticks.append(d)
            else:
                img, _ = bin_raster(np.asarray(t, np.float64) * scale if continuous else t, i, n, n_cols,
                                    self.max_rows)
            images.append(img)
            spikes.append(len(t))
        k = len(images)
        self.source.data = dict(image=images, x=[0.0] * k, y=[b + (1 - _BAND) / 2 for b in range(k)],
                                dw=[t_end] * k, dh=[_BAND] * k, spikes=np.array(spikes, np.int32))
        if ticks:
            self.events.data = {c: np.concatenate([d[c] for d in ticks]) for c in ("t", "y0", "y1", "layer")}
        elif len(self.events.data["t"]):
            self.events.data = self._no_events()
