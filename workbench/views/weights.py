"""First-layer weights as receptive-field images (low rate).

The session copies the incoming weights of a few first-layer neurons at most
every ``weights_interval`` seconds (``Snapshot.fields``); this view tiles
them into one image (a grid of input-shaped tiles separated by a blank
line) on a symmetric diverging scale, so one image glyph update carries all
fields.  Snapshots without fields leave the picture unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource, LinearColorMapper

from spikewb.workbench.views.base import SIGNED, FrameView, make_figure, set_range


def tile_fields(fields: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
    """Tile ``(n, features)`` fields into one float32 image with NaN gaps.

    Returns an array flipped for Bokeh (origin bottom-left).

    >>> tile_fields(np.ones((4, 4), np.float32), (2, 2)).shape
    (5, 5)
    """
    n = len(fields)
    if len(image_shape) >= 2 and int(np.prod(image_shape[:2])) == fields.shape[1]:
        h, w = int(image_shape[0]), int(image_shape[1])
    else:
        h, w = 1, fields.shape[1]
    cols = max(1, math.ceil(math.sqrt(n))) if h > 1 else 1
    rows = math.ceil(n / cols)
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan, np.float32)
    for k in range(n):
        r, c = divmod(k, cols)
        out[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = fields[k].reshape(h, w)
    return np.ascontiguousarray(out[::-1])


class WeightsView(FrameView):
    """Receptive fields of first-layer neurons."""

    max_rate = 1.0

    def __init__(self, size: int = 190, **params):
        super().__init__(**params)
        self.source = ColumnDataSource(data=dict(image=[], x=[], y=[], dw=[], dh=[]), name="wb-weights")
        self.mapper = LinearColorMapper(palette=list(SIGNED), low=-0.1, high=0.1, nan_color=(0, 0, 0, 0))
        self.figure = make_figure("First-layer receptive fields", sizing_mode="fixed", height=size + 40,
                                  width=size + 20, min_border_left=10, min_border_right=10, min_border_bottom=5)
        self.figure.image(image="image", x="x", y="y", dw="dw", dh="dh", source=self.source,
                          color_mapper=self.mapper)
        self.figure.axis.visible = False
        self.figure.grid.visible = False
        self._version = None
        self.pane = pn.pane.Bokeh(self.figure)

    def __panel__(self):
        return self.pane

    def clear(self) -> None:
        self.source.data = dict(image=[], x=[], y=[], dw=[], dh=[])
        self._version = None

    def update(self, snap) -> None:
        self.new_generation(snap)
        if snap.fields is None or not len(snap.fields) or snap.fields_version == self._version:
            return
        self._version = snap.fields_version
        img = tile_fields(snap.fields, snap.image_shape)
        finite = np.abs(snap.fields[np.isfinite(snap.fields)])
        m = float(np.percentile(finite, 99)) if finite.size else 1.0
        m = m if m > 0 else 1.0
        self.mapper.update(low=-m, high=m)
        h, w = img.shape
        set_range(self.figure.x_range, 0, w)
        set_range(self.figure.y_range, 0, h)
        self.figure.title.text = f"Layer-1 receptive fields (±{m:.2g})"
        self.source.data = dict(image=[img], x=[0], y=[0], dw=[w], dh=[h])
