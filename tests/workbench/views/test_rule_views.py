"""The rule-specific parts of the trainer page draw exactly what the engine recorded.

Frames come from a few real training steps of multi-spike timing BP and SSNN-BP
on MNIST digits; the views are updated with them outside a server and the
numbers in their Bokeh sources are compared with the frames (issues 8 and 9).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from spikewb.engine.frame import Record
from spikewb.engine.network import Architecture
from spikewb.engine.rules import make_rule
from spikewb.workbench.sessions.session import Snapshot
from spikewb.workbench.views.gradients import GradientRasterView
from spikewb.workbench.views.inspector import InspectorView
from spikewb.workbench.views.raster import RasterView
from spikewb.workbench.views.signal import SignalView
from spikewb.workbench.views.traces import TraceView


def snapshot(frame, rule: str, seq: int = 1, generation: int = 0) -> Snapshot:
    return Snapshot(seq=seq, frame=frame, generation=generation, image=None, image_shape=(28, 28),
                    class_names=tuple(str(c) for c in range(10)), samples=frame.step + 1, samples_per_s=0.0,
                    epoch_loss=float("nan"), history=(), rule=rule, network="")


def train(rule, hidden, data, neurons, n: int = 4, seed: int = 3):
    """``n`` real training steps; returns the rule, the model and the frames (full record)."""
    model = rule.build(Architecture(hidden=hidden), np.random.default_rng(seed))
    frames = []
    for k in range(n):
        x = data.x_train[k].astype(np.float32) / np.float32(255)
        frame = rule.train_step(model, x, int(data.y_train[k]),
                                Record(neurons=neurons, spikes=True, weight_updates=True))
        frames.append(frame.replace(step=k))
    return model, frames


class StubSession:
    """What the inspector reads from a session (no worker thread)."""

    running = True

    def __init__(self, rule, sizes):
        self.rule = rule
        self.sizes = tuple(sizes)
        self.observers = []
        self.extra = None

    def set_extra_record(self, **kw):
        self.extra = kw


def column(src, name) -> np.ndarray:
    return np.asarray(src.data[name])


# ----------------------------------------------------------------------------- multi-spike
OUT = 2  # layer of the output in a 784-H-10 net


@pytest.fixture(scope="module")
def multispike(mnist5k):
    rule = make_rule("multispike")
    neurons = ((1, 3), *((OUT, j) for j in range(10)))  # every output neuron: some fire often
    model, frames = train(rule, [40], mnist5k, neurons)
    return rule, model, frames, neurons


def test_raster_draws_every_multispike_spike_at_its_exact_time(multispike):
    _, _, frames, _ = multispike
    f = frames[-1]
    assert f.time_unit == "ms"
    view = RasterView()
    view.update(snapshot(f, "multispike"))
    # the per-band spike totals are the frame's
    assert column(view.source, "spikes").tolist() == [len(t) for t in f.spike_t]
    ev = view.events.data
    for layer in (1, OUT):  # small layers: one exact tick per spike
        sel = np.asarray(ev["layer"]) == layer
        np.testing.assert_array_equal(np.sort(np.asarray(ev["t"])[sel]), np.sort(f.spike_t[layer]),
                                      err_msg=f"layer {layer}")
        # each neuron's ticks are in its own row, in the order of neuron index
        n = f.layer_sizes[layer]
        rows = np.round((np.asarray(ev["y0"])[sel] - layer - 0.05) / (0.9 / n)).astype(int)
        np.testing.assert_array_equal(np.bincount(rows, minlength=n), np.bincount(f.spike_i[layer], minlength=n))
    # several spikes per neuron really are there and stay separate
    counts = np.bincount(f.spike_i[OUT], minlength=f.layer_sizes[OUT])
    assert counts.max() >= 2
    assert not np.any(np.asarray(ev["layer"]) == 0)  # the 784 inputs are binned, not ticks
    img_in = view.source.data["image"][0]
    assert img_in.shape[1] == 240 and img_in.any()
    assert view.figure.x_range.end == pytest.approx(f.duration)
    assert "ms" in view.figure.xaxis[0].axis_label


def test_trace_view_uses_the_continuous_time_grid(multispike):
    _, _, frames, _ = multispike
    f = frames[-1]
    view = TraceView()
    view.update(snapshot(f, "multispike"))
    np.testing.assert_allclose(column(view.source, "t"), f.extras["trace_t"])
    np.testing.assert_allclose(column(view.source, "v0"), f.v_trace[0])
    assert view.figure.x_range.end == pytest.approx(float(f.extras["trace_t"][-1]))


def test_inspector_shows_crossings_and_per_spike_gradients(multispike):
    rule, model, frames, neurons = multispike
    for k, (layer, idx) in enumerate(neurons):
        insp = InspectorView(StubSession(rule, model.sizes))
        insp.select(layer, idx)
        for f in frames:
            insp.update(snapshot(f, "multispike"))
        f = frames[-1]
        np.testing.assert_allclose(column(insp.v_src, "t"), f.extras["trace_t"])
        np.testing.assert_allclose(column(insp.v_src, "v"), f.v_trace[k])
        st, si = f.spikes(layer)
        np.testing.assert_allclose(column(insp.spk_src, "t"), st[si == idx])   # exact crossings
        assert np.all(column(insp.spk_src, "y") == np.float32(f.v_th))
        # one bar per spike: its dL/dt_k, at its time
        assert insp.sg_pane.visible and not insp.gv_pane.visible
        np.testing.assert_array_equal(column(insp.sg_src, "t"), f.extras["spike_t_rec"][k])
        np.testing.assert_array_equal(column(insp.sg_src, "grad"), f.extras["spike_grad"][k])
        np.testing.assert_array_equal(column(insp.sg_src, "direct"), f.extras["spike_grad_direct"][k])
        assert len(column(insp.sg_src, "grad")) == int(f.counts[layer][idx])
        assert "\u03c4_m 10 ms" in insp.summary.object and "\u03c4_s 5 ms" in insp.summary.object
    # some output neurons fire several times, and the loss reaches their spikes
    f = frames[-1]
    assert f.counts[OUT].max() >= 2
    assert any(np.any(np.asarray(g) != 0) for g in f.extras["spike_grad"][1:])


# ----------------------------------------------------------------------------- SSNN-BP
@pytest.fixture(scope="module")
def ssnn(mnist5k):
    rule = make_rule("ssnn", batch_size=2)
    neurons = ((1, 0), (2, int(mnist5k.y_train[3])))
    model, frames = train(rule, [60], mnist5k, neurons, n=4)
    return rule, model, frames, neurons


def test_gradient_rasters_get_exactly_the_frames_streams(ssnn):
    _, _, frames, _ = ssnn
    view = GradientRasterView()
    assert not view.layout.visible
    f = frames[-1]
    view.update(snapshot(f, "ssnn"))
    assert view.layout.visible
    layers = range(1, f.n_layers)
    expect = {"fwd": [len(f.spike_t[l]) for l in layers],
              "pos": [len(f.extras["grad_pos_t"][l]) for l in layers],
              "neg": [len(f.extras["grad_neg_t"][l]) for l in layers]}
    for key, src in view.sources.items():
        assert column(src, "spikes").tolist() == expect[key], key
    assert sum(expect["pos"]) > 0 and sum(expect["neg"]) > 0
    # the output band (10 neurons, one row each): a dark cell per gradient spike
    for key, name in (("pos", "grad_pos"), ("neg", "grad_neg")):
        img = view.sources[key].data["image"][-1]
        expected = np.zeros((f.layer_sizes[-1], int(f.duration)), np.uint8)
        expected[f.extras[f"{name}_i"][-1], f.extras[f"{name}_t"][-1].astype(int)] = 255
        np.testing.assert_array_equal(img, expected, err_msg=key)
    # per neuron, the streams add up to the counts the rule reports
    for l in layers:
        pos = np.bincount(f.extras["grad_pos_i"][l], minlength=f.layer_sizes[l])
        np.testing.assert_array_equal(pos, f.extras["grad_pos_counts"][l])


def test_gradient_rasters_hide_for_other_rules(multispike, ssnn):
    view = GradientRasterView(visible=True)
    view.update(snapshot(multispike[2][-1], "multispike"))
    assert not view.layout.visible
    view.update(snapshot(ssnn[2][-1], "ssnn"))
    assert view.layout.visible


def test_signal_strip_shows_positive_minus_negative_counts(ssnn):
    _, _, frames, _ = ssnn
    f = frames[-1]
    view = SignalView()
    view.update(snapshot(f, "ssnn"))
    for band, l in enumerate(range(1, f.n_layers)):
        expected = (f.extras["grad_pos_counts"][l].astype(np.float32)
                    - f.extras["grad_neg_counts"][l].astype(np.float32))
        np.testing.assert_array_equal(view.source.data["image"][band][0], expected)
    assert "(+) count" in view.figure.title.text


def test_inspector_shows_the_composite_neurons_three_potentials(ssnn):
    rule, model, frames, neurons = ssnn
    for k, (layer, idx) in enumerate(neurons):
        insp = InspectorView(StubSession(rule, model.sizes))
        insp.select(layer, idx)
        f = frames[-1]
        insp.update(snapshot(f, "ssnn"))
        np.testing.assert_array_equal(column(insp.v_src, "v"), f.v_trace[k])          # forward unit
        np.testing.assert_array_equal(column(insp.gv_src, "pos"), f.extras["v_grad_pos"][k])
        np.testing.assert_array_equal(column(insp.gv_src, "neg"), f.extras["v_grad_neg"][k])
        assert insp.gv_pane.visible and not insp.sg_pane.visible
        n_pos = int(f.extras["grad_pos_counts"][layer][idx])
        n_neg = int(f.extras["grad_neg_counts"][layer][idx])
        assert len(column(insp.gs_src, "t")) == n_pos + n_neg
        assert insp.gs_src.data["color"].count("#b2182b") == n_pos
        assert insp.gth.location == pytest.approx(rule.v_th_grad)
        # every gradient spike sits where its unit's potential is above the threshold
        t = column(insp.gs_src, "t").astype(int)
        colors = np.array(insp.gs_src.data["color"])
        v = np.where(colors == "#b2182b", f.extras["v_grad_pos"][k][t], f.extras["v_grad_neg"][k][t])
        assert np.all(v > rule.v_th_grad)


# ----------------------------------------------------------------------------- tau sweep and live taus
class SweepSession:
    rule_name = "multispike"
    seed = 0

    def __init__(self, data, **params):
        self.rule = make_rule("multispike", **params)
        self.trainer = type("T", (), {"data": data})()


def test_tau_sweep_panel_plots_multi_and_single(mnist5k):
    from spikewb.workbench.views.tausweep import TauSweepPanel
    panel = TauSweepPanel(SweepSession(mnist5k), taus="2, 5", n_train=24, n_test=12, hidden=8)
    assert panel.card.visible
    assert panel.run(background=False)
    assert panel.progress == 1.0 and not panel.running and panel.error == ""
    assert [(r["mode"], r["tau_s"]) for r in panel.rows] == [("multi", 2.0), ("multi", 5.0),
                                                             ("single", 2.0), ("single", 5.0)]
    for mode in ("multi", "single"):
        src = panel.sources[mode]
        assert column(src, "tau_s").tolist() == [2.0, 5.0]
        acc = column(src, "test_accuracy")
        assert np.all((acc >= 0) & (acc <= 1))
    assert np.all(column(panel.sources["single"], "hidden_spikes") <= 1.0)
    assert "Done" in panel.status.object
    # the defaults stay small enough for a click
    d = TauSweepPanel(SweepSession(mnist5k))
    assert d.n_train <= 1000 and d.n_test <= 500 and d.hidden <= 200


def test_tau_sweep_panel_refuses_bad_settings(mnist5k):
    from spikewb.workbench.views.tausweep import TauSweepPanel
    panel = TauSweepPanel(SweepSession(mnist5k), taus="5, x")
    assert not panel.run(background=False) and "comma-separated" in panel.error
    panel = TauSweepPanel(SweepSession(mnist5k), taus="5", ratio=1.0000001)
    assert not panel.run(background=False) and "alpha-kernel" in panel.error
    panel = TauSweepPanel(SweepSession(mnist5k), taus="0.01, 5")
    assert not panel.run(background=False) and "exceeds" in panel.error
    assert panel.rows == [] and not panel.running
    # one sweep per server process at a time
    from spikewb.workbench.views import tausweep
    with tausweep._SWEEP_SLOT:
        panel = TauSweepPanel(SweepSession(mnist5k), taus="5", n_train=10, n_test=10, hidden=4)
        assert not panel.run(background=False) and panel.error == "busy"
        assert "Another page" in panel.status.object


def _until(cond, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_tau_sweep_waits_for_a_training_slot_and_frees_it(mnist5k, monkeypatch):
    from spikewb.workbench.server.limits import SlotPool
    from spikewb.workbench.views.tausweep import TauSweepPanel

    pool = SlotPool(1)
    session = SweepSession(mnist5k)
    session.pool = pool                                     # as a served page's session has
    assert pool.request("trainer page")                     # another owner holds the only slot
    panel = TauSweepPanel(session, taus="5", n_train=10, n_test=10, hidden=4, single_spike=False)
    try:
        assert panel.run()
        _until(lambda: panel.slot_position() == 1)
        panel.poll()
        assert panel.running and "Waiting for a free training slot (#1 in queue)" in panel.status.object
        time.sleep(0.3)
        assert panel.rows == [] and panel._fraction == 0.0     # nothing trains while it waits
        pool.release("trainer page")                        # the slot frees: the sweep starts by itself
        panel.join(60)
        panel.poll()
        assert not panel.running and panel.error == "" and len(panel.rows) == 1
        assert "Done" in panel.status.object
        assert pool.counts() == (0, 0)                      # and gives the slot back when done
        # with a free slot it runs at once, holding the slot for its duration
        import spikewb.engine.training.experiments as experiments
        held, plain = [], experiments.tau_sweep

        def spy(**kwargs):
            held.append(pool.holds(panel))
            return plain(**kwargs)
        monkeypatch.setattr(experiments, "tau_sweep", spy)
        assert panel.run(background=False)
        assert held == [True] and panel.error == "" and pool.counts() == (0, 0)
    finally:
        panel.cancel()
        panel.join(10)


def test_tau_sweep_gives_up_or_cancels_while_waiting(mnist5k):
    from spikewb.workbench.server.limits import SlotPool
    from spikewb.workbench.views.tausweep import TauSweepPanel

    pool = SlotPool(1)
    session = SweepSession(mnist5k)
    session.pool = pool
    pool.request("trainer page")
    panel = TauSweepPanel(session, taus="5", n_train=10, n_test=10, hidden=4)
    panel.SLOT_WAIT_S = 0.3
    assert panel.run(background=False)                      # refused after the wait, with a message
    assert "no training slot freed within" in panel.error and panel.rows == []
    assert "Not run" in panel.status.object and not panel.running
    assert pool.counts() == (1, 0)                          # out of the queue again
    panel.SLOT_WAIT_S = 60.0
    assert panel.run()
    _until(lambda: panel.slot_position() == 1)
    panel.cancel()                                          # Cancel leaves the queue
    panel.join(10)
    panel.poll()
    assert panel.error == "cancelled" and pool.counts() == (1, 0) and not panel.running


def test_tau_sliders_apply_live_without_rebuild():
    from spikewb.workbench.views.controls import ControlPanel, SliderInput
    from spikewb.workbench.sessions.session import TrainingSession

    session = TrainingSession(rule="multispike", hidden=[20], eval_limit=20)
    notes = []
    try:
        controls = ControlPanel(session, notify=lambda kind, text: notes.append((kind, text)))
        for name in ("tau_m", "tau_s"):
            field = controls.rule_fields[name]
            assert isinstance(field.widget, SliderInput), f"{name} is a slider"
            assert field.panel in controls.live_box.objects, f"{name} is applied live"
        session.play()
        deadline = time.monotonic() + 60
        while session.samples < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        generation, before = session.generation, session.samples
        controls.rule_fields["tau_m"].widget.value = 14.0
        controls.rule_fields["tau_s"].widget.value = 4.0
        while (session.rule.tau_m, session.rule.tau_s) != (14.0, 4.0) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (session.rule.tau_m, session.rule.tau_s) == (14.0, 4.0)
        assert session.generation == generation and not controls.pending     # no rebuild, none asked for
        while session.samples < before + 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert session.samples >= before + 10 and not session.error            # training went on
        frame = session.step().result(timeout=30)
        assert frame.extras["tau"].tolist() == [14.0, 4.0]                    # frames use the new taus
        # equal time constants cannot run: refused at the widget, the worker never sees them
        controls.rule_fields["tau_s"].widget.value = 14.0
        assert controls.rule_fields["tau_s"].error.visible
        assert "alpha-kernel" in controls.rule_fields["tau_s"].error.object
        assert session.rule.tau_s == 4.0 and controls.rule_fields["tau_s"].widget.value == 4.0
        session.step().result(timeout=30)
        assert not session.error
    finally:
        session.close()


# ----------------------------------------------------------------------------- page wiring
def test_page_has_the_rule_views_and_throttled_views_catch_up(multispike):
    """The rule views are part of the page; a view skipped by the throttle still gets the
    newest snapshot once it is due, even when training stopped publishing (pause, step)."""
    from spikewb.workbench.sessions.session import TrainingSession
    from spikewb.workbench.pages.trainer import TrainerWorkbench

    session = TrainingSession(rule="multispike", hidden=[20], autostart=False)
    try:
        wb = TrainerWorkbench(session=session)
        assert wb.gradient_view in wb.views and wb.tau_sweep in wb.views
        assert wb.tau_sweep.card.visible and not wb.gradient_view.layout.visible

        class Recorder:
            def __init__(self):
                self.seen = []

            def update(self, snap):
                self.seen.append(snap.seq)

        view = Recorder()
        wb.views = [view]
        frame = multispike[2][-1]
        queue = [snapshot(frame, "multispike", seq=k, generation=session.generation) for k in (1, 2)]
        session.take = lambda: queue.pop(0) if queue else None
        wb.tick()                                              # seq 1 shown
        wb._view_due[id(view)] = time.perf_counter() + 0.2    # the view is throttled ...
        wb.tick()                                              # ... and skips seq 2, the last one
        assert view.seen == [1]
        time.sleep(0.25)
        wb.tick()                                              # no new snapshot: the skipped one is shown
        assert view.seen == [1, 2]
        wb.tick()
        assert view.seen == [1, 2]                             # once
    finally:
        session.close()


def test_rule_parts_and_inspector_plots_are_built_only_when_needed(multispike, ssnn):
    """A page opens without the Bokeh models it does not show yet (first-page time, issue 11):
    the inspector's plots appear when it is switched on, the SSNN gradient rasters with the
    first frame that carries gradient streams, the tau-sweep card with multi-spike BP."""
    from bokeh.document import Document

    from spikewb.workbench.sessions.session import TrainingSession
    from spikewb.workbench.pages.trainer import TrainerWorkbench

    def n_models(wb) -> int:
        doc = Document()
        doc.add_root(wb.main().get_root(doc))
        return len(doc.models)

    session = TrainingSession(rule="desire", hidden=[20], autostart=False)
    try:
        wb = TrainerWorkbench(session=session)
        lazy = n_models(wb)
        assert not wb.inspector.figures_built and wb.tau_sweep.card is None and not wb.gradient_view.figures
        # the inspector's plots: built on switching it on, then rendered from the last frame
        wb.inspector.update(snapshot(multispike[2][-1], "multispike"))
        wb.inspector.select(1, 3)
        assert wb.inspector.figures_built and wb.inspector.plots.objects[1].object is wb.inspector.v_fig
        assert len(column(wb.inspector.v_src, "v")) > 0
        # a multi-spike frame brings the tau sweep's card, an SSNN frame the gradient rasters
        wb.tau_sweep.update(snapshot(multispike[2][-1], "multispike"))
        assert wb.tau_sweep.card is not None and wb.tau_sweep.card.visible
        wb.tau_sweep.update(snapshot(ssnn[2][-1], "ssnn"))
        assert not wb.tau_sweep.card.visible
        wb.gradient_view.update(snapshot(ssnn[2][-1], "ssnn"))
        assert len(wb.gradient_view.figures) == 3 and wb.gradient_view.layout.visible
        full = n_models(wb)
        assert full > lazy + 400, (lazy, full)  # the parts left out are most of a page
    finally:
        session.close()
