"""The current input sample and its spike encoding.

Left: the sample's pixel intensities (grey).  Right: the number of spikes
each input neuron fired over the sample (``Frame.counts[0]``), i.e. what the
network actually receives after the rate code (and input dropout).
"""

from __future__ import annotations

import panel as pn
from bokeh.models import ColumnDataSource, Label, LinearColorMapper
from bokeh.palettes import Magma256

from spikewb.workbench.views.base import GREYS, FrameView, image_of, make_figure, set_range


class InputView(FrameView):
    """Input image and its spike-count encoding side by side."""

    max_rate = 5.0

    def __init__(self, size: int = 150, **params):
        super().__init__(**params)
        self.pixels = ColumnDataSource(data=dict(image=[], x=[], y=[], dw=[], dh=[]), name="wb-input")
        self.spikes = ColumnDataSource(data=dict(image=[], x=[], y=[], dw=[], dh=[]), name="wb-encoding")
        self.grey = LinearColorMapper(palette=list(GREYS), low=0, high=255)
        self.hot = LinearColorMapper(palette=list(Magma256), low=0, high=20)
        self.figure = make_figure("Input sample and its spike encoding", sizing_mode="fixed",
                                  height=size + 40, width=int(size * 1.9) + 20, min_border_left=10,
                                  min_border_right=10, min_border_bottom=5)
        self.figure.image(image="image", x="x", y="y", dw="dw", dh="dh", source=self.pixels,
                          color_mapper=self.grey)
        self.figure.image(image="image", x="x", y="y", dw="dw", dh="dh", source=self.spikes,
                          color_mapper=self.hot)
        self.figure.axis.visible = False
        self.figure.grid.visible = False
        self.left = Label(x=0, y=0, text="pixels", text_font_size="10px", y_offset=-14)
        self.right = Label(x=0, y=0, text="spikes per input", text_font_size="10px", y_offset=-14)
        self.figure.add_layout(self.left)
        self.figure.add_layout(self.right)
        self._shape = None
        self.pane = pn.pane.Bokeh(self.figure)

    def __panel__(self):
        return self.pane

    def clear(self) -> None:
        self.pixels.data = dict(image=[], x=[], y=[], dw=[], dh=[])
        self.spikes.data = dict(image=[], x=[], y=[], dw=[], dh=[])

    def update(self, snap) -> None:
        self.new_generation(snap)
        frame = snap.frame
        enc = image_of(frame.counts[0], snap.image_shape)
        h, w = enc.shape
        gap = max(2, w // 10)
        if self._shape != (h, w):
            self._shape = (h, w)
            set_range(self.figure.x_range, 0, 2 * w + gap)
            set_range(self.figure.y_range, -0.1 * h if h > 1 else -1, h)
            self.right.x = w + gap
        hi = max(float(frame.duration), 1.0)
        if self.hot.high != hi:
            self.hot.high = hi
        if snap.image is not None:
            self.pixels.data = dict(image=[image_of(snap.image, snap.image_shape)], x=[0], y=[0], dw=[w], dh=[h])
        self.spikes.data = dict(image=[enc], x=[w + gap], y=[0], dw=[w], dh=[h])
