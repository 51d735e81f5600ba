"""HoloViews plots of a recorded run, for notebooks and scripts.

Each function takes a :class:`~spikewb.engine.recording.Recording` and returns
a HoloViews element (or overlay) holding the recorded numbers; they compose
with ``+`` (side by side, an ``hv.Layout``) and ``*`` (on the same axes, an
``hv.Overlay``).  Dimensions are shared by name where the quantity is the
same (``time`` within a sample, ``step`` over training), so composed plots
link their axes.

The functions only build elements.  Loading a plotting extension is the
caller's business (``hv.extension("bokeh")`` in a notebook,
``hv.render(obj, backend="bokeh")`` or ``hv.save(obj, "run.html")`` in a
script); styling options are set for the Bokeh backend, which importing this
module registers (it does not change the current backend if one is loaded).

Examples
--------
Record one short epoch and lay out the spikes of the output layer next to the
potentials of the traced neurons:

>>> import holoviews as hv
>>> from spikewb.engine.data.datasets import load_dataset
>>> from spikewb.engine.frame import Record
>>> from spikewb.engine.network import Architecture
>>> from spikewb.engine.recording import Recording
>>> from spikewb.engine.rules import make_rule
>>> from spikewb.engine.training.trainer import Trainer
>>> data = load_dataset("mnist-5k").subset(n_train=60, n_test=20)
>>> trainer = Trainer(make_rule("desire"), data, Architecture(n_inputs=784, hidden=[20], n_outputs=10))
>>> rec = Recording(every=5, record=Record(spikes=True, neurons=((1, 0), (2, 3))))
>>> _ = trainer.fit(1, callback=rec, on_epoch=rec, record=rec.record)
>>> layout = raster(rec, layer=2) + potentials(rec) + accuracy(rec)
>>> type(layout).__name__
'Layout'

The function examples below use this ``rec``.
"""

from __future__ import annotations

from typing import Iterable

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the bokeh options; sets no backend if one is loaded)
import numpy as np

from spikewb.engine.errors import ConfigError
from spikewb.engine.recording import Recording

#: Colours of the traced neurons and the weight layers (Bokeh Category10).
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
#: Colour of the threshold line and the test-accuracy points.
RED = "#d62728"
#: Size of every plot's data area in pixels (legends and colour bars come on top); override with ``.opts``.
FRAME = dict(frame_width=360, frame_height=220)


def _time(rec: Recording) -> hv.Dimension:
    return hv.Dimension("time", label="time", unit=rec.time_unit)


_STEP = hv.Dimension("step", label="training sample")


def _neuron(rec: Recording, layer: int) -> hv.Dimension:
    # the label names the layer, so composed plots share a neuron axis only within one layer
    return hv.Dimension("neuron", label=f"neuron ({rec.layer_names[layer]})")


def _check(rec) -> Recording:
    if not isinstance(rec, Recording):
        raise ConfigError(f"expected a spikewb Recording, got {type(rec).__name__}")
    if len(rec) == 0:
        raise ConfigError("the recording is empty: no frame was kept yet (train with callback=rec)")
    return rec


def _sample_title(rec: Recording, k: int) -> str:
    return f"step {int(rec.steps[k])} (label {int(rec.labels[k])})"


def raster(rec: Recording, layer: int, sample: int = -1) -> hv.Scatter:
    """Spike raster of one layer in one kept sample: an ``hv.Scatter`` of (time, neuron).

    Parameters
    ----------
    rec : Recording
        Recorded with spikes (``Record(spikes=True)``); otherwise the raster is empty.
    layer : int
        0 (input) .. L (output).
    sample : int
        Position among the kept samples; -1 is the last one.

    Returns
    -------
    hv.Scatter
        Key dimension ``time`` (``rec.time_unit``), value dimension ``neuron``;
        one point per spike event, in the recorded order.

    Examples
    --------
    >>> r = raster(rec, layer=1, sample=0)
    >>> t, i = rec.spikes(1, 0)
    >>> bool(np.array_equal(r.dimension_values("neuron"), i))
    True
    """
    rec = _check(rec)
    t, i = rec.spikes(layer, sample)
    k = int(sample) % len(rec)
    name = rec.layer_names[layer]
    return hv.Scatter((t, i), kdims=[_time(rec)], vdims=[_neuron(rec, layer)], label=name).opts(
        **FRAME, title=f"{name}, {_sample_title(rec, k)}", marker="square", size=3, color="black",
        ylim=(-0.5, rec.layer_sizes[layer] - 0.5), tools=["hover"], backend="bokeh")


def potentials(rec: Recording, neurons: Iterable[tuple[int, int]] | None = None, sample: int = -1) -> hv.Overlay:
    """Membrane potentials of the traced neurons in one kept sample, with the threshold.

    Parameters
    ----------
    rec : Recording
        Recorded with traced neurons (``Record(neurons=((layer, index), ...))``).
    neurons : iterable of (layer, index), optional
        A subset of the traced neurons (default: all of them).
    sample : int
        Position among the kept samples; -1 is the last one.

    Returns
    -------
    hv.Overlay
        One ``hv.Curve`` (``time`` -> ``v``) per neuron, labelled "<layer> #<index>",
        and an ``hv.HLine`` at the sample's threshold ``v_th``.

    Notes
    -----
    Potentials are sampled after integration and before the threshold test,
    so a curve reaches the threshold where the neuron fires (see
    :class:`~spikewb.engine.frame.Frame`).

    Examples
    --------
    >>> p = potentials(rec, neurons=[(2, 3)])
    >>> [type(e).__name__ for e in p]
    ['Curve', 'HLine']
    """
    rec = _check(rec)
    ids, t, v = rec.traces(sample)
    k = int(sample) % len(rec)
    traced = [tuple(map(int, p)) for p in ids.tolist()]
    if not traced:
        raise ConfigError("no neuron was traced in this recording: record with e.g. "
                          "Record(spikes=True, neurons=((1, 0), (2, 3)))")
    want = traced if neurons is None else [tuple(int(x) for x in p) for p in neurons]
    missing = [p for p in want if p not in traced]
    if missing:
        raise ConfigError(f"neurons {missing} were not traced; this recording traced {traced}")
    time = _time(rec)
    v_dim = hv.Dimension("v", label="v (rule units)")
    v_th = float(rec.v_th[k])
    curves = []
    for n, p in enumerate(want):
        row = traced.index(p)
        name = rec.layer_names[p[0]] if 0 <= p[0] < rec.n_layers else f"layer {p[0]}"
        curves.append(hv.Curve((t, v[row]), kdims=[time], vdims=[v_dim], label=f"{name} #{p[1]}").opts(
            color=COLORS[n % len(COLORS)], line_width=2, tools=["hover"], backend="bokeh"))
    threshold = hv.HLine(v_th, kdims=[time, v_dim], label="threshold").opts(
        color=RED, line_dash="dashed", line_width=2, backend="bokeh")
    return hv.Overlay([*curves, threshold]).opts(
        **FRAME, title=f"potentials, {_sample_title(rec, k)}", legend_position="right", backend="bokeh")


def signal_heatmap(rec: Recording, layer: int, raw: bool = False) -> hv.Image:
    """The learning signal of one layer over the kept samples: an ``hv.Image`` (sample x neuron).

    Parameters
    ----------
    rec : Recording
    layer : int
        1 .. L (the input layer has no signal).
    raw : bool
        Show the real value the rule thresholded (``rec.signal_raw``) instead
        of the signal itself (``rec.signal``; Desire BP: desire in {-1, 0, +1}).

    Returns
    -------
    hv.Image
        Key dimensions ``sample`` (position among the kept samples, 0..n-1;
        the training step is ``rec.steps[sample]``) and ``neuron``; value
        dimension ``signal``.  Its value array (``img.dimension_values("signal",
        flat=False)``) is ``rec.signal(layer).T``.  Diverging colours centred on 0.

    Examples
    --------
    >>> img = signal_heatmap(rec, layer=1)
    >>> img.dimension_values("signal", flat=False).shape == rec.signal(1).T.shape
    True
    """
    rec = _check(rec)
    z = rec.signal_raw(layer) if raw else rec.signal(layer)
    n, width = z.shape
    if width == 0:
        raise ConfigError(f"the rule recorded no {'raw ' if raw else ''}signal for layer {layer}")
    what = f"{rec.signal_name}{' (raw)' if raw else ''}"
    sample_dim = hv.Dimension("sample", label=f"kept sample (every {rec.every}-th training sample)")
    img = hv.Image((np.arange(n), np.arange(width), z.T), kdims=[sample_dim, _neuron(rec, layer)],
                   vdims=[hv.Dimension("signal", label=what)])
    return img.opts(**FRAME, title=f"{what}, {rec.layer_names[layer]}", cmap="RdBu_r", symmetric=True,
                    colorbar=True, tools=["hover"], backend="bokeh")


def accuracy(rec: Recording) -> hv.Overlay:
    """Running training accuracy at the kept samples and the test accuracy after each epoch.

    Returns
    -------
    hv.Overlay
        An ``hv.Curve`` ``step`` -> ``accuracy`` (the running accuracy of the
        current epoch, restarting each epoch) and an ``hv.Scatter`` of the test
        accuracy of each epoch in ``rec.history``, placed at the step where the
        epoch ended (empty without history: pass ``on_epoch=rec`` to ``fit``).

    Examples
    --------
    >>> acc = accuracy(rec)
    >>> acc.get(1).dimension_values("accuracy").tolist() == [h.test_accuracy for h in rec.history]
    True
    """
    rec = _check(rec)
    acc = hv.Dimension("accuracy", label="accuracy", range=(0.0, 1.0))
    running = hv.Curve((rec.steps, rec.accuracy), kdims=[_STEP], vdims=[acc], label="training (running)").opts(
        color=COLORS[0], line_width=2, tools=["hover"], backend="bokeh")
    ends = np.cumsum([h.samples for h in rec.history]).astype(np.int64)
    test = hv.Scatter((ends, np.array([h.test_accuracy for h in rec.history], np.float64)), kdims=[_STEP],
                      vdims=[acc], label="test (after epoch)").opts(
        color=RED, size=8, marker="circle", tools=["hover"], backend="bokeh")
    return (running * test).opts(**FRAME, title="accuracy", legend_position="bottom_right", backend="bokeh")


def weight_change(rec: Recording) -> hv.Overlay:
    """Norm of each weight layer's update at the kept samples: one ``hv.Curve`` per weight layer.

    Returns
    -------
    hv.Overlay
        Curves ``step`` -> ``dw_norm`` labelled "w<l>: <layer l-1> -> <layer l>",
        weight layer ``l`` in column ``l - 1`` of ``rec.dw_norm``.

    Examples
    --------
    >>> w = weight_change(rec)
    >>> len(w) == rec.dw_norm.shape[1]
    True
    """
    rec = _check(rec)
    dw = hv.Dimension("dw_norm", label="|dW| (Frobenius norm)")
    curves = []
    for l in range(1, rec.n_layers):
        label = f"w{l}: {rec.layer_names[l - 1]} -> {rec.layer_names[l]}"
        curves.append(hv.Curve((rec.steps, rec.dw_norm[:, l - 1]), kdims=[_STEP], vdims=[dw], label=label).opts(
            color=COLORS[(l - 1) % len(COLORS)], line_width=2, tools=["hover"], backend="bokeh"))
    return hv.Overlay(curves).opts(**FRAME, title="weight updates", legend_position="right", backend="bokeh")
