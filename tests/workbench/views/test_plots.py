"""HoloViews plots of a recording: element types, the recorded numbers in their data, composition, Bokeh rendering."""

from __future__ import annotations

import doctest

import holoviews as hv
import numpy as np
import pytest
from bokeh.model import Model

from spikewb.engine.errors import ConfigError
from spikewb.engine.frame import Record
from spikewb.engine.network import Architecture
from spikewb.engine.recording import Recording
from spikewb.engine.rules import make_rule
from spikewb.engine.training.trainer import Trainer
from spikewb.workbench import plots
from spikewb.workbench.plots import accuracy, potentials, raster, signal_heatmap, weight_change

TRACED = ((1, 0), (2, 3))


@pytest.fixture(scope="module")
def rec():
    """The module docstring's recording: Desire BP, 60 digits, one epoch, every 5th sample."""
    from spikewb.engine.data.datasets import load_dataset
    data = load_dataset("mnist-5k").subset(n_train=60, n_test=20)
    trainer = Trainer(make_rule("desire"), data, Architecture(n_inputs=784, hidden=[20], n_outputs=10))
    rec = Recording(every=5, record=Record(spikes=True, neurons=TRACED))
    trainer.fit(1, callback=rec, on_epoch=rec, record=rec.record)
    return rec


@pytest.fixture(scope="module")
def bokeh():
    return hv.renderer("bokeh")


def _render(obj):
    model = hv.render(obj, backend="bokeh")
    assert isinstance(model, Model)
    return model


@pytest.mark.parametrize("layer", [0, 1, 2])
@pytest.mark.parametrize("sample", [0, 5, -1])
def test_raster_points_are_the_recorded_spike_events(rec, layer, sample):
    r = raster(rec, layer, sample)
    assert isinstance(r, hv.Scatter)
    assert [d.name for d in r.kdims] == ["time"] and [d.name for d in r.vdims] == ["neuron"]
    t, i = rec.spikes(layer, sample)
    assert len(t) > 0 or layer == 2
    np.testing.assert_array_equal(r.dimension_values("time"), t)
    np.testing.assert_array_equal(r.dimension_values("neuron"), i)
    assert f"step {rec.steps[sample]}" in r.opts.get("plot", backend="bokeh").kwargs["title"]


def test_potentials_hold_the_traces_and_the_threshold(rec):
    p = potentials(rec, sample=3)
    assert isinstance(p, hv.Overlay)
    curves = [e for e in p if isinstance(e, hv.Curve)]
    lines = [e for e in p if isinstance(e, hv.HLine)]
    assert len(curves) == 2 and len(lines) == 1
    ids, t, v = rec.traces(3)
    for row, c in enumerate(curves):
        np.testing.assert_array_equal(c.dimension_values("time"), t)
        np.testing.assert_array_equal(c.dimension_values("v"), v[row])
    assert [c.label for c in curves] == [f"{rec.layer_names[1]} #0", f"{rec.layer_names[2]} #3"]
    assert lines[0].data == rec.v_th[3] == make_rule("desire").v_th
    only = potentials(rec, neurons=[(2, 3)], sample=3)
    np.testing.assert_array_equal(only.get(0).dimension_values("v"), v[1])
    with pytest.raises(ConfigError, match="not traced"):
        potentials(rec, neurons=[(1, 7)])
    untraced = Recording(every=5)
    untraced.add(_first_frame())
    with pytest.raises(ConfigError, match="no neuron was traced"):
        potentials(untraced)


def _first_frame():
    from spikewb.engine.data.datasets import load_dataset
    data = load_dataset("mnist-5k").subset(n_train=20, n_test=10)
    trainer = Trainer(make_rule("desire"), data, Architecture(n_inputs=784, hidden=[20], n_outputs=10))
    return trainer.step(Record(spikes=True))


@pytest.mark.parametrize("raw", [False, True])
def test_signal_heatmap_is_the_signal_over_samples_and_neurons(rec, raw):
    img = signal_heatmap(rec, 1, raw=raw)
    assert isinstance(img, hv.Image)
    assert [d.name for d in img.kdims] == ["sample", "neuron"]
    z = rec.signal_raw(1) if raw else rec.signal(1)
    np.testing.assert_array_equal(img.dimension_values("signal", flat=False), z.T)
    np.testing.assert_array_equal(np.unique(img.dimension_values("sample")), np.arange(len(rec)))
    assert set(np.unique(rec.signal(2))) <= {-1.0, 0.0, 1.0}      # desire is ternary
    with pytest.raises(ConfigError, match="layer"):
        signal_heatmap(rec, 0)


def test_accuracy_curve_and_epoch_points(rec):
    acc = accuracy(rec)
    assert isinstance(acc, hv.Overlay)
    curve, points = acc.get(0), acc.get(1)
    assert isinstance(curve, hv.Curve) and isinstance(points, hv.Scatter)
    np.testing.assert_array_equal(curve.dimension_values("step"), rec.steps)
    np.testing.assert_array_equal(curve.dimension_values("accuracy"), rec.accuracy)
    assert points.dimension_values("step").tolist() == [60]
    assert points.dimension_values("accuracy").tolist() == [rec.history[0].test_accuracy]


def test_weight_change_has_one_curve_per_weight_layer(rec):
    w = weight_change(rec)
    assert isinstance(w, hv.Overlay) and len(w) == 2
    for l, c in enumerate(w, start=1):
        assert isinstance(c, hv.Curve) and c.label.startswith(f"w{l}:")
        np.testing.assert_array_equal(c.dimension_values("step"), rec.steps)
        np.testing.assert_array_equal(c.dimension_values("dw_norm"), rec.dw_norm[:, l - 1])


def test_plots_compose_and_render_to_bokeh(rec, bokeh):
    layout = raster(rec, 1) + potentials(rec)
    assert isinstance(layout, hv.Layout)
    overlay = raster(rec, 1) * raster(rec, 2)
    assert isinstance(overlay, hv.Overlay)
    assert isinstance(potentials(rec) * hv.VLine(5.0), hv.Overlay)
    everything = (raster(rec, 0) + raster(rec, 2) + potentials(rec) + signal_heatmap(rec, 1)
                  + accuracy(rec) + weight_change(rec)).cols(2)
    for obj in (*everything, layout, overlay, everything):
        _render(obj)
    fig = _render(raster(rec, 1))
    assert fig.xaxis[0].axis_label == "time (step)" and fig.yaxis[0].axis_label == "neuron (hidden 1)"
    html = bokeh.html(everything)           # the standalone page a script would save
    assert "bk-root" in html or "Bokeh" in html


def test_empty_or_wrong_inputs_are_refused(rec):
    for fn in (lambda r: raster(r, 1), potentials, lambda r: signal_heatmap(r, 1), accuracy, weight_change):
        with pytest.raises(ConfigError, match="empty"):
            fn(Recording())
        with pytest.raises(ConfigError, match="Recording"):
            fn({"not": "a recording"})
    with pytest.raises(ConfigError, match="sample"):
        raster(rec, 1, sample=999)


def test_docstring_examples_run(rec):
    result = doctest.testmod(plots, extraglobs={"rec": rec},
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 5 and result.failed == 0
