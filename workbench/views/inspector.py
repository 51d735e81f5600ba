"""The neuron inspector and the error-flow view.

Pick a neuron (click it in the error-flow view, or type layer and index) and
the inspector shows, for the current sample and live: its potential with
threshold, spikes and input current; its spike count against its target; its
learning signal now and over the last N samples; where that signal came from
(the signed contributions ``W_ji g_i`` of the layer above, top contributors,
with the threshold that turned their sum into the signal); and what it did:
this sample's update of its incoming weights (an image for the first layer)
and its contribution to the layer below.  A replay slider scrubs back through
the last published frames while training is paused; the history exports as CSV.

All numbers come from the Frames (``extras["contrib"]``, ``["contrib_down"]``,
``["dw_in"]``, ``["flow"]``) that the session records only while the inspector
is open, for the selected neuron only.

The plots (about 300 Bokeh models, a quarter of the trainer page) are built
the first time the inspector is switched on; until then the page holds only
its controls, so it opens and renders faster (``spikewb bench coldstart``).

Rule-specific plots appear when the frame carries their data:

* event-driven rules (multi-spike timing BP): the potential is drawn on the
  rule's continuous time grid (``extras["trace_t"]``, ms) with its exact
  threshold crossings, and a small plot shows one bar per spike of the neuron:
  its gradient dL/dt_k (``extras["spike_grad"]``, including what flows back
  through the resets of later spikes; dots: the direct part
  ``["spike_grad_direct"]``), aligned in time with the potential;
* composite neurons (SSNN-BP): the potentials of the neuron's positive and
  negative gradient units (``extras["v_grad_pos"]``, ``["v_grad_neg"]``) with
  their threshold and their spikes, under the forward potential.
"""

from __future__ import annotations

import io

import numpy as np
import panel as pn
import param
from bokeh.models import BasicTickFormatter, ColumnDataSource, LinearColorMapper, Range1d, Span
from bokeh.plotting import figure

from spikewb.workbench.sessions.inspection import NeuronHistory, ReplayBuffer
from spikewb.workbench.views.base import SIGNED, image_of, make_figure, owned as _own, set_range

TOP_K = 12
#: Left border (px) of the potential plot and the plots sharing its time axis.
LEFT_BORDER = 80
FLOW_LINKS = 24



def _top(values: np.ndarray, k: int = TOP_K) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest ``|values|``, largest first."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    k = min(k, values.size)
    idx = np.argpartition(-np.abs(values), k - 1)[:k]
    idx = idx[np.argsort(-np.abs(values[idx]))]
    return idx, values[idx]


class InspectorView(pn.viewable.Viewer):
    """Everything about one neuron; reads Snapshots, drives the session's extra recording."""

    layer = param.Integer(1, bounds=(1, None), label="Layer", doc="Layer of the inspected neuron (1 = first hidden).")
    index = param.Integer(0, bounds=(0, None), label="Neuron", doc="Index of the neuron in its layer.")
    history_len = param.Integer(500, bounds=(10, 100_000), label="History (samples)",
                                doc="How many past samples the signal history keeps.")
    replay_len = param.Integer(100, bounds=(2, 2000), label="Replay buffer (frames)",
                               doc="How many published frames can be scrubbed back through while paused.")
    replay = param.Integer(0, bounds=(0, None), label="Replay (0 = live)",
                           doc="Frames back from the newest; only while training is paused.")
    active = param.Boolean(False, label="Inspect", doc="Record and show the selected neuron (costs a little speed).")

    def __init__(self, session, **params):
        super().__init__(**params)
        self.session = session
        self.history = NeuronHistory(self.layer, self.index, self.history_len)
        self.buffer = ReplayBuffer(self.replay_len)
        self._snap = None
        self._build_controls()
        if self.active:
            self.build_figures()
        self.param.watch(self._selection_changed, ["layer", "index", "active"])
        self.param.watch(lambda e: self.history.resize(e.new), "history_len")
        self.param.watch(lambda e: self.buffer.resize(e.new), "replay_len")
        self.param.watch(lambda e: self._render(), "replay")

    # ---------------------------------------------------------------- recording
    def _selection_changed(self, *_):
        sizes = self.session.sizes
        self.layer = min(max(self.layer, 1), len(sizes) - 1)
        self.index = min(max(self.index, 0), sizes[self.layer] - 1)
        self._detach()
        self.history = NeuronHistory(self.layer, self.index, self.history_len)
        if self.active:
            self.session.observers.append(self.history.observe)
            self.session.set_extra_record(neurons=[(self.layer, self.index)], weight_updates=True,
                                          flow=FLOW_LINKS)
        else:
            self.session.set_extra_record()
        self.title.object = self._title()
        if self.active:
            self.build_figures()

    def _detach(self):
        self.session.observers[:] = [o for o in self.session.observers
                                     if getattr(o, "__self__", None) is not self.history]

    def select(self, layer: int, index: int) -> None:
        """Inspect neuron (layer, index) and open the inspector."""
        self.param.update(layer=int(layer), index=int(index), active=True)

    def close(self):
        self._detach()
        self.session.set_extra_record()

    # ---------------------------------------------------------------- figures
    def _build_controls(self):
        """The parts shown from the start: title, controls, CSV export and the slots of the plots."""
        self.title = pn.pane.Markdown(self._title(), css_classes=["insp-title"])
        self.summary = pn.pane.Markdown("", css_classes=["insp-summary"])
        self.csv = pn.widgets.FileDownload(callback=lambda: io.StringIO(self.history.to_csv()),
                                           filename="neuron-history.csv", label="Export history (CSV)",
                                           button_type="default", width=200)
        self.figures_built = False
        hint = pn.pane.Markdown(
            "Tick **Inspect** (or open a link with `?inspect=layer:index`) to record one "
            "neuron: its potential and spikes, its learning signal over the last samples, where that signal "
            "came from, its weight update, and the error flow through all layers (click a neuron there to "
            "follow it).", css_classes=["insp-hint"], sizing_mode="stretch_width", styles={"color": "#555"})
        #: filled by :meth:`build_figures`
        self.plots = pn.Column(hint, sizing_mode="stretch_width", margin=0)
        self.plots_below = pn.Column(sizing_mode="stretch_width", margin=0)

    def build_figures(self) -> None:
        """Create the plots (once) and put them into the page; called when the inspector is switched on."""
        if self.figures_built:
            return
        self.figures_built = True
        self._build_figures()
        self.plots.objects = [self.summary, pn.pane.Bokeh(self.v_fig, sizing_mode="stretch_width"),
                              self.sg_pane, self.gv_pane,
                              pn.pane.Bokeh(self.hist_fig, sizing_mode="stretch_width")]
        self.plots_below.objects = [
            pn.Row(pn.pane.Bokeh(self.con_fig, sizing_mode="stretch_width"),
                   pn.pane.Bokeh(self.dw_fig, width=260), sizing_mode="stretch_width"),
            pn.pane.Bokeh(self.down_fig, sizing_mode="stretch_width"),
            self.flow]
        self._render()

    def _build_figures(self):
        self.v_src = ColumnDataSource(dict(t=[], v=[], i=[]))
        self.spk_src = ColumnDataSource(dict(t=[], y=[]))
        # the plots under it share its time axis: one left border keeps their x axes aligned
        self.v_fig = make_figure("Membrane potential (before reset) and input current", height=200,
                                 x_range=Range1d(0, 20), y_range=Range1d(-1, 2), tools="hover",
                                 min_border_left=LEFT_BORDER)
        self.v_fig.line("t", "v", source=self.v_src, line_width=2, legend_label="V")
        self.v_fig.line("t", "i", source=self.v_src, line_width=1, color="#2ca02c", line_dash="dotted",
                        legend_label="input current")
        self.v_fig.scatter("t", "y", source=self.spk_src, marker="triangle", size=10, color="#d62728",
                           legend_label="spike (reset follows)")
        self.th = Span(location=1.0, dimension="width", line_dash="dashed", line_color="#d62728")
        self.v_fig.add_layout(self.th)
        self.v_fig.legend.location = "top_left"
        self.v_fig.legend.label_text_font_size = "9px"
        self._build_rule_plots()
        self.hist_src = ColumnDataSource(dict(step=[], signal=[], label=[]))
        self.hist_fig = make_figure("Learning signal, last samples", height=160, x_range=Range1d(0, 1),
                                    y_range=Range1d(-1.2, 1.2), tools="hover")
        self.hist_fig.scatter("step", "signal", source=self.hist_src, size=4, alpha=0.6)
        self.hist_fig.hover.tooltips = [("sample", "@step"), ("label", "@label"), ("signal", "@signal")]
        self.con_src = ColumnDataSource(dict(x=[], top=[], color=[], name=[]))
        self.con_fig = make_figure("Where the signal came from: W_ji g_i of the layer above (top)", height=200,
                                   x_range=Range1d(-0.5, TOP_K - 0.5), y_range=Range1d(-1, 1), tools="hover")
        self.con_fig.vbar(x="x", top="top", width=0.8, color="color", source=self.con_src)
        self.con_fig.hover.tooltips = [("from neuron", "@name"), ("contribution", "@top")]
        self.sum_line = Span(location=0, dimension="width", line_color="#000000", line_width=2)
        self.th_plus = Span(location=0.05, dimension="width", line_dash="dashed", line_color="#777777")
        self.th_minus = Span(location=-0.05, dimension="width", line_dash="dashed", line_color="#777777")
        for s in (self.sum_line, self.th_plus, self.th_minus):
            self.con_fig.add_layout(s)
        self.dw_mapper = LinearColorMapper(palette=SIGNED, low=-1e-6, high=1e-6)
        self.dw_src = ColumnDataSource(dict(image=[np.zeros((1, 1), np.float32)]))
        self.dw_fig = make_figure("This sample's update of its incoming weights", height=200,
                                  x_range=Range1d(0, 28), y_range=Range1d(0, 28), tools="hover")
        self.dw_fig.image(image="image", x=0, y=0, dw=28, dh=28, color_mapper=self.dw_mapper, source=self.dw_src)
        self.down_src = ColumnDataSource(dict(x=[], top=[], color=[], name=[]))
        self.down_fig = make_figure("Its contribution to the layer below: W_ji g_i (top)", height=160,
                                    x_range=Range1d(-0.5, TOP_K - 0.5), y_range=Range1d(-1, 1), tools="hover")
        self.down_fig.vbar(x="x", top="top", width=0.8, color="color", source=self.down_src)
        self.down_fig.hover.tooltips = [("to neuron", "@name"), ("contribution", "@top")]
        self.flow = ErrorFlowView(on_select=self.select)

    def _build_rule_plots(self):
        """Per-spike gradients (event-driven rules) and gradient-unit potentials (SSNN-BP)."""
        # one bar per spike of the neuron at its exact time, same time axis as the potential
        self.sg_src = ColumnDataSource(dict(t=[], grad=[], direct=[], k=[], color=[]), name="wb-insp-spike-grad")
        self.sg_fig = make_figure("Per-spike gradient dL/dt_k", height=150, x_range=self.v_fig.x_range,
                                  y_range=Range1d(-1, 1), tools="hover", name="wb-insp-spike-grad-fig",
                                  min_border_left=LEFT_BORDER)
        self.sg_fig.yaxis.formatter = BasicTickFormatter(precision=1, power_limit_low=-2)
        self.sg_fig.yaxis.ticker.desired_num_ticks = 3
        self.sg_fig.vbar(x="t", top="grad", width=0.25, color="color", source=self.sg_src)
        self.sg_fig.scatter("t", "direct", source=self.sg_src, size=6, color="#000000", marker="circle")
        self.sg_fig.add_layout(Span(location=0, dimension="width", line_color="#777777", line_width=1))
        self.sg_fig.hover.tooltips = [("spike", "@k"), ("t (ms)", "@t"), ("dL/dt_k (1/ms)", "@grad"),
                                      ("direct", "@direct")]
        self.sg_fig.xaxis.axis_label = "time (ms)"
        self.sg_fig.yaxis.axis_label = "1/ms"
        # a Bokeh pane does not pass ``visible`` on to its figure: a Column carries it
        self.sg_pane = pn.Column(pn.pane.Bokeh(self.sg_fig, sizing_mode="stretch_width"), visible=False,
                                 sizing_mode="stretch_width", margin=0, css_classes=["insp-spike-grad"])
        # SSNN-BP: the two gradient units of the composite neuron
        self.gv_src = ColumnDataSource(dict(t=[], pos=[], neg=[]), name="wb-insp-grad-v")
        self.gs_src = ColumnDataSource(dict(t=[], y=[], color=[]), name="wb-insp-grad-spikes")
        self.gv_fig = make_figure("Gradient units: potentials and spikes (+ red, \u2212 blue)", height=170,
                                  x_range=self.v_fig.x_range, y_range=Range1d(-1, 1), tools="hover",
                                  name="wb-insp-grad-v-fig", min_border_left=LEFT_BORDER)
        self.gv_fig.line("t", "pos", source=self.gv_src, line_width=2, color="#b2182b", legend_label="V+ (positive unit)")
        self.gv_fig.line("t", "neg", source=self.gv_src, line_width=2, color="#2166ac", legend_label="V\u2212 (negative unit)")
        self.gv_fig.scatter("t", "y", source=self.gs_src, marker="triangle", size=9, color="color")
        self.gth = Span(location=5.0, dimension="width", line_dash="dashed", line_color="#555555")
        self.gv_fig.add_layout(self.gth)
        self.gv_fig.xaxis.axis_label = "time step"
        self.gv_fig.legend.location = "top_left"
        self.gv_fig.legend.label_text_font_size = "9px"
        self.gv_fig.legend.orientation = "horizontal"
        self.gv_pane = pn.Column(pn.pane.Bokeh(self.gv_fig, sizing_mode="stretch_width"), visible=False,
                                 sizing_mode="stretch_width", margin=0, css_classes=["insp-grad-units"])

    def _render_spike_grads(self, f, k, l, i) -> None:
        """Bars of dL/dt_k per spike of the neuron (frames with ``extras["spike_grad"]``)."""
        grads = f.extras.get("spike_grad")
        show = grads is not None and k is not None and k < len(grads)
        if self.sg_pane.visible != show:
            self.sg_pane.visible = show
        if not show:
            return
        t = f.extras["spike_t_rec"][k]
        g = np.asarray(grads[k], np.float32)
        d = np.asarray(f.extras.get("spike_grad_direct", (g,))[k], np.float32)
        self.sg_src.data = dict(t=_own(t), grad=_own(g), direct=_own(d), k=_own(np.arange(len(g)), np.int32),
                                color=["#d6604d" if v > 0 else "#4393c3" for v in g])
        amp = float(max(np.abs(g).max(initial=0), np.abs(d).max(initial=0), 1e-9)) * 1.2
        set_range(self.sg_fig.y_range, -amp, amp)
        width = max(float(f.duration) / 120.0, 1e-3)
        self.sg_fig.renderers[0].glyph.width = width
        self.sg_fig.title.text = (f"Per-spike gradient dL/dt_k of neuron {l}:{i}: {len(g)} spike(s), "
                                  f"sum {float(g.sum()):+.3g} /ms (bars: total incl. later resets; dots: direct)")

    def _render_grad_units(self, f, k, l, i, t) -> None:
        """Potentials and spikes of the neuron's +/- gradient units (frames with ``extras["v_grad_pos"]``)."""
        vp, vn = f.extras.get("v_grad_pos"), f.extras.get("v_grad_neg")
        show = vp is not None and vn is not None and k is not None and k < len(vp) and vp.shape[1] == len(t)
        if self.gv_pane.visible != show:
            self.gv_pane.visible = show
        if not show:
            return
        pos, neg = np.asarray(vp[k], np.float32), np.asarray(vn[k], np.float32)
        th = float(f.extras.get("v_th_grad", 1.0))  # the rule records its gradient units' threshold
        self.gv_src.data = dict(t=_own(t), pos=_own(pos), neg=_own(neg))
        times, ys, colors, n = [], [], [], {}
        # each unit fires where its own potential exceeds the threshold (V- is the negated current's)
        for stream, color in (("pos", "#b2182b"), ("neg", "#2166ac")):
            st, si = f.extras.get(f"grad_{stream}_t", ()), f.extras.get(f"grad_{stream}_i", ())
            sel = np.asarray(st[l][si[l] == i], np.float32) if l < len(st) else np.zeros(0, np.float32)
            times.append(sel)
            ys.append(np.full(len(sel), th, np.float32))
            colors += [color] * len(sel)
            n[stream] = len(sel)
        self.gs_src.data = dict(t=_own(np.concatenate(times)), y=_own(np.concatenate(ys)), color=colors)
        self.gth.location = th
        lo = float(min(pos.min(initial=0), neg.min(initial=0), -th))
        hi = float(max(pos.max(initial=0), neg.max(initial=0), th))
        pad = 0.1 * (hi - lo) + 1e-3
        set_range(self.gv_fig.y_range, lo - pad, hi + 2 * pad)
        self.gv_fig.title.text = (f"Gradient units of neuron {l}:{i}: {n['pos']} positive, {n['neg']} negative "
                                  f"spike(s) (threshold {th:g}; + red, \u2212 blue)")

    def _title(self) -> str:
        return f"### Neuron {self.layer}:{self.index}" + ("" if self.active else " (inspector off)")

    # ---------------------------------------------------------------- updates
    def update(self, snap) -> None:
        """Called by the page's periodic callback with each new snapshot."""
        if snap is None:
            return
        self.buffer.push(snap)
        n = len(self.buffer)
        if self.param.replay.bounds[1] != n - 1:
            self.param.replay.bounds = (0, max(n - 1, 0))
        if self.replay == 0 or self.session.running:
            if self.replay:
                self.replay = 0
            self._snap = snap
            self._render()

    def _render(self):
        if not self.figures_built:
            return
        snap = self._snap if self.replay == 0 else self.buffer.get(-1 - min(self.replay, len(self.buffer) - 1))
        if snap is None:
            return
        f = snap.frame
        self.flow.show(f, (self.layer, self.index))
        if not self.active:
            return
        l, i = self.layer, self.index
        if l >= f.n_layers or i >= f.layer_sizes[l]:
            return
        ids = [tuple(x) for x in f.trace_ids.tolist()]
        k = ids.index((l, i)) if (l, i) in ids else None
        # potential and input current
        t = None
        if k is not None and f.v_trace.shape[1]:
            v, cur = f.v_trace[k], f.i_trace[k]
            grid = f.extras.get("trace_t")
            continuous = grid is not None and len(grid) == len(v)
            t = np.asarray(grid, np.float32) if continuous else np.arange(len(v), dtype=np.float32)
            self.v_src.data = dict(t=_own(t), v=_own(v), i=_own(cur))
            st, si = f.spikes(l)
            times = st[si == i]
            self.spk_src.data = dict(t=_own(times), y=_own(np.full(len(times), f.v_th)))
            lo, hi = float(min(v.min(initial=0), cur.min(initial=0))), float(max(v.max(initial=0), f.v_th))
            if continuous:
                set_range(self.v_fig.x_range, 0.0, float(f.duration))
                title = (f"Continuous membrane potential ({f.time_unit}) with its {len(times)} exact threshold "
                         "crossing(s), and input current")
            else:
                set_range(self.v_fig.x_range, -0.5, len(v) - 0.5)
                title = "Membrane potential (before reset) and input current"
            if self.v_fig.title.text != title:
                self.v_fig.title.text = title
            set_range(self.v_fig.y_range, lo - 0.1 * abs(hi - lo) - 1e-3, hi + 0.15 * abs(hi - lo) + 1e-3)
        self.th.location = f.v_th
        self._render_spike_grads(f, k, l, i)
        self._render_grad_units(f, k, l, i, t if t is not None else np.zeros(0, np.float32))
        # signal history
        h = self.history.arrays()
        if len(h["step"]):
            self.hist_src.data = dict(step=_own(h["step"], np.float64), signal=_own(h["signal"]),
                                      label=_own(h["label"], np.int32))
            set_range(self.hist_fig.x_range, float(h["step"][0]) - 1, float(h["step"][-1]) + 1)
            amp = float(max(np.abs(h["signal"]).max(initial=0), 1e-6))
            set_range(self.hist_fig.y_range, -1.2 * amp, 1.2 * amp)
        # where it came from
        rule = self.session.rule
        contrib = f.extras.get("contrib", ())
        if k is not None and k < len(contrib) and contrib[k].size:
            idx, vals = _top(contrib[k])
            total = float(contrib[k].sum())
            alpha = float(rule.signal_threshold(l, f.n_layers) or 0.0)
            self.con_src.data = dict(x=_own(np.arange(len(idx))), top=_own(vals),
                                     color=["#d6604d" if v > 0 else "#4393c3" for v in vals],
                                     name=[f"{l + 1}:{j}" for j in idx])
            amp = float(max(np.abs(vals).max(initial=0), abs(total), alpha, 1e-6)) * 1.15
            set_range(self.con_fig.y_range, -amp, amp)
            self.sum_line.location, self.th_plus.location, self.th_minus.location = total, alpha, -alpha
            self.con_fig.title.text = (f"From layer {l + 1}: sum {total:+.4g} vs threshold ±{alpha:g} "
                                       f"-> signal {f.signal[l][i]:+g} (top {len(idx)} of {contrib[k].size})")
        elif l == 1 and f.n_layers > 2 and not (k is not None and k < len(contrib)):
            self.con_src.data = dict(x=[], top=[], color=[], name=[])
        elif l == f.n_layers - 1:
            self.con_src.data = dict(x=[], top=[], color=[], name=[])
            raw = float(f.signal_raw[l][i]) if f.signal_raw[l].size else float("nan")
            alpha = rule.signal_threshold(l, f.n_layers)  # only rules that threshold the error have one
            limit = f" (threshold {alpha:g})" if alpha is not None else ""
            self.con_fig.title.text = f"Output neuron: error {raw:.3g}{limit} -> signal {f.signal[l][i]:+.3g}"
        # what it did
        dw = f.extras.get("dw_in", ())
        if k is not None and k < len(dw) and dw[k].size:
            d = dw[k]
            amp = float(max(np.abs(d).max(initial=0), 1e-12))
            self.dw_mapper.update(low=-amp, high=amp)
            shape = snap.image_shape if l == 1 else (1, d.size)
            img = image_of(d, shape)
            self.dw_src.data = dict(image=[img])
            set_range(self.dw_fig.x_range, 0, img.shape[1])
            set_range(self.dw_fig.y_range, 0, img.shape[0])
            self.dw_fig.renderers[0].glyph.update(dw=img.shape[1], dh=img.shape[0])
            self.dw_fig.title.text = f"Update of its {d.size} incoming weights (|max| {amp:.3g})"
        if l == 1:
            self.down_fig.title.text = "First hidden layer: the layer below is the input (pixels carry no signal)"
        down = f.extras.get("contrib_down", ())
        if k is not None and k < len(down) and down[k].size:
            idx, vals = _top(down[k])
            self.down_src.data = dict(x=_own(np.arange(len(idx))), top=_own(vals),
                                      color=["#d6604d" if v > 0 else "#4393c3" for v in vals],
                                      name=[f"{l - 1}:{j}" for j in idx])
            amp = float(max(np.abs(vals).max(initial=0), 1e-6)) * 1.15
            set_range(self.down_fig.y_range, -amp, amp)
        count = int(f.counts[l][i])
        target = (f"{f.target[i]:g}" if l == f.n_layers - 1 and f.target.size > i else "none (hidden neuron)")
        where = "live" if self.replay == 0 else f"replay, {self.replay} frame(s) back"
        taus = f.extras.get("tau")
        tau_text = (f" · \u03c4_m {float(taus[0]):g} ms, \u03c4_s {float(taus[1]):g} ms"
                    if taus is not None and len(taus) == 2 else "")
        self.summary.object = (f"Sample {f.step} (label {f.label}, {where}) · spikes **{count}** · target "
                               f"{target} · {f.signal_name} **{f.signal[l][i]:+g}** · history {len(self.history)} samples"
                               f"{tau_text}")

    def controls(self):
        w = dict(sizing_mode="stretch_width")
        return pn.Column(
            pn.widgets.Checkbox.from_param(self.param.active, css_classes=["insp-active"], **w),
            pn.widgets.IntInput.from_param(self.param.layer, css_classes=["insp-layer"], **w),
            pn.widgets.IntInput.from_param(self.param.index, css_classes=["insp-index"], **w),
            pn.widgets.IntSlider.from_param(self.param.history_len, **w),
            pn.widgets.IntSlider.from_param(self.param.replay_len, **w),
            pn.widgets.IntSlider.from_param(self.param.replay, css_classes=["insp-replay"], **w),
            sizing_mode="stretch_width")

    def __panel__(self):
        return pn.Column(
            pn.Row(pn.Column(self.title, self.controls(), self.csv, width=300), self.plots,
                   sizing_mode="stretch_width"),
            self.plots_below, sizing_mode="stretch_width", css_classes=["inspector"])


class ErrorFlowView(pn.viewable.Viewer):
    """Layers as columns of neurons coloured by their signed signal; strongest contributions as links.

    Clicking a neuron selects it for the inspector.
    """

    def __init__(self, on_select=None, **params):
        super().__init__(**params)
        self.on_select = on_select
        self.src = ColumnDataSource(dict(x=[], y=[], value=[], layer=[], index=[]), name="flow_neurons")
        self.links = ColumnDataSource(dict(x0=[], y0=[], x1=[], y1=[], w=[], color=[]))
        self.sel = ColumnDataSource(dict(x=[], y=[]))
        self.mapper = LinearColorMapper(palette=SIGNED, low=-1, high=1)
        self.fig = figure(title="Error flow (output at the right; click a neuron to inspect it)", height=280,
                          sizing_mode="stretch_width", tools="tap,hover", toolbar_location=None,
                          x_range=Range1d(-0.5, 3.5), y_range=Range1d(-0.02, 1.02))
        self.fig.segment("x0", "y0", "x1", "y1", source=self.links, line_width="w", color="color", alpha=0.6)
        self.fig.scatter("x", "y", source=self.src, size=7, marker="square", line_color=None,
                         fill_color={"field": "value", "transform": self.mapper})
        self.fig.scatter("x", "y", source=self.sel, size=16, marker="circle", fill_color=None,
                         line_color="#000000", line_width=2)
        self.fig.hover.tooltips = [("neuron", "@layer:@index"), ("signal", "@value")]
        self.fig.yaxis.visible = False
        self.fig.xgrid.visible = False
        self.fig.ygrid.visible = False
        self.src.selected.on_change("indices", self._tapped)
        self._sizes = None

    def _tapped(self, attr, old, new):
        if not new or self.on_select is None:
            return
        k = new[0]
        layer, index = int(self.src.data["layer"][k]), int(self.src.data["index"][k])
        self.src.selected.indices = []
        doc = self.src.document
        if doc is None:
            self.on_select(layer, index)
            return
        # a raw Bokeh callback runs without Panel's current document: set it, or the
        # Panel widgets changed by the selection never reach this page
        from panel.io.state import set_curdoc

        def later():
            with set_curdoc(doc):
                self.on_select(layer, index)
        doc.add_next_tick_callback(later)

    @staticmethod
    def _y(n: int) -> np.ndarray:
        return (np.arange(n) + 0.5) / n

    def show(self, frame, selected) -> None:
        sizes = frame.layer_sizes
        xs, ys, vals, ls, idx = [], [], [], [], []
        for l in range(1, len(sizes)):
            sig = frame.signal[l]
            n = len(sig)
            xs.append(np.full(n, l, np.float32))
            ys.append(self._y(n).astype(np.float32))
            vals.append(sig.astype(np.float32))
            ls.append(np.full(n, l, np.int32))
            idx.append(np.arange(n, dtype=np.int32))
        amp = float(max(max((np.abs(v).max(initial=0) for v in vals), default=0), 1e-6))
        self.mapper.update(low=-amp, high=amp)
        self.src.data = dict(x=_own(np.concatenate(xs)), y=_own(np.concatenate(ys)), value=_own(np.concatenate(vals)),
                             layer=_own(np.concatenate(ls), np.int32), index=_own(np.concatenate(idx), np.int32))
        flow = frame.extras.get("flow")
        if flow is not None and len(flow):
            lu, iu, jd, v = flow[:, 0].astype(int), flow[:, 1].astype(int), flow[:, 2].astype(int), flow[:, 3]
            y_up = np.array([self._y(sizes[a])[b] for a, b in zip(lu, iu)], np.float32)
            y_dn = np.array([self._y(sizes[a - 1])[b] for a, b in zip(lu, jd)], np.float32)
            w = 1.0 + 4.0 * np.abs(v) / max(np.abs(v).max(), 1e-12)
            self.links.data = dict(x0=_own(lu), y0=_own(y_up), x1=_own(lu - 1), y1=_own(y_dn), w=_own(w),
                                   color=["#d6604d" if x > 0 else "#4393c3" for x in v])
        else:
            self.links.data = dict(x0=[], y0=[], x1=[], y1=[], w=[], color=[])
        l, i = selected
        if 1 <= l < len(sizes) and 0 <= i < sizes[l]:
            self.sel.data = dict(x=_own([l]), y=_own([self._y(sizes[l])[i]]))
        set_range(self.fig.x_range, 0.5, len(sizes) - 0.5)
        self.fig.xaxis.ticker = list(range(1, len(sizes)))
        self.fig.xaxis.major_label_overrides = {l: frame.layer_names[l] for l in range(1, len(sizes))}

    def __panel__(self):
        return pn.pane.Bokeh(self.fig, sizing_mode="stretch_width")
