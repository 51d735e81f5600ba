"""Teaching demos: one LIF neuron, and the STDP window (plain and desire-modulated).

Each demo is a ``pn.viewable.Viewer`` whose parameters are the whole state of
the page: :func:`teaching_page` wraps it with a shareable URL (validated on
load, rewritten on every change), a copy-link button, a presentation mode that
hides the controls and enlarges the plots, and a tutorial text from
``assets/tutorials``.  The numbers come from :mod:`spikewb.engine.neurons.demo_models` and the
NormAD neuron (:class:`spikewb.engine.neurons.continuous_lif.ContinuousLIF`); plots are plain
Bokeh figures whose sources are replaced when a parameter moves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, Span
from bokeh.plotting import figure

from spikewb import package_dir
from spikewb.engine.neurons import demo_models as teaching
from spikewb.engine.neurons.continuous_lif import ContinuousLIF

from spikewb.workbench.pagestate import UrlState
from spikewb.workbench.server.safetext import as_markdown

TUTORIALS = package_dir("assets") / "tutorials"
PLOT_TOOLS = "pan,wheel_zoom,box_zoom,reset,save"


def tutorial_text(name: str) -> str:
    path = TUTORIALS / f"{name}.md"
    return path.read_text() if path.exists() else ""


def _fig(title: str, x_label: str, y_label: str, height: int = 260, **kw):
    f = figure(title=title, x_axis_label=x_label, y_axis_label=y_label, height=height,
               sizing_mode="stretch_width", tools=PLOT_TOOLS, toolbar_location="right", **kw)
    f.title.text_font_size = "12pt"
    return f


class Demo(pn.viewable.Viewer):
    """Base of the teaching demos: URL-synced parameters plus presentation mode."""

    present = param.Boolean(False, label="Presentation mode",
                            doc="Hide the controls and tutorial, enlarge the plots (for projecting).")

    #: Parameters kept in the URL (besides ``present``).
    url_keys: tuple[str, ...] = ()
    #: Parameters shown as controls, in order.
    controls: tuple[str, ...] = ()
    widgets: dict = {}
    tutorial: str = ""
    title: str = ""

    def control_panel(self):
        return pn.Param(self, parameters=list(self.controls), widgets=self.widgets, show_name=False,
                        sizing_mode="stretch_width")


def teaching_page(demo: Demo):
    """The served page for ``demo``: notice, toolbar, controls | plots | tutorial."""
    state = UrlState(demo, (*demo.url_keys, "present"))
    problems = state.restore()
    state.watch()
    pn.state.onload(state.write)        # after the browser has reported its own URL
    notice = pn.pane.Alert("\n".join(f"* {as_markdown(p)}" for p in problems), alert_type="warning",
                           visible=bool(problems), css_classes=["url-notice"], sizing_mode="stretch_width")
    copy = pn.widgets.Button(label="Copy link", button_type="primary", width=120,
                             description="Copy this page's address (it restores the exact setup)")
    copy.js_on_click(code="""
        const url = window.location.href;
        if (navigator.clipboard) { navigator.clipboard.writeText(url); }
        btn.label = 'Link copied';
        setTimeout(() => { btn.label = 'Copy link'; }, 1500);
    """, args={"btn": copy})
    present = pn.widgets.Toggle.from_param(demo.param.present, width=170, button_type="default")
    home = pn.pane.HTML('<a href="./" class="home-link">All apps</a>', width=80)
    controls = pn.Column(demo.control_panel(), width=320, css_classes=["teaching-controls"])
    tutorial = pn.Card(pn.pane.Markdown(tutorial_text(demo.tutorial), sizing_mode="stretch_width"),
                       title="Tutorial", width=360, collapsed=False, css_classes=["teaching-tutorial"])
    plots = demo.__panel__()

    def _mode(present: bool):
        controls.visible = not present
        tutorial.visible = not present
        demo.set_scale(1.6 if present else 1.0)

    demo.param.watch(lambda e: _mode(e.new), "present")
    _mode(demo.present)
    if hasattr(demo, "start_streaming") and pn.state.curdoc is not None:
        demo.start_streaming()
    body = pn.Row(controls, plots, tutorial, sizing_mode="stretch_width")
    tmpl = pn.template.BootstrapTemplate(title=demo.title, main=[notice, pn.Row(home, copy, present), body],
                                         header_background="#23395d")
    return tmpl


class NeuronDemo(Demo):
    """One LIF neuron: how leak, threshold, reset and refractoriness shape its response."""

    title = "Single LIF neuron"
    tutorial = "neuron"

    form = param.Selector(default="discrete", objects=["discrete", "continuous"], label="Neuron form",
                          doc="discrete: the engine's step-based LIF (dimensionless); continuous: the NormAD "
                              "neuron (C = 300 pF, mV, ms, nA).")
    input_kind = param.Selector(default="constant", objects=["constant", "poisson", "spikes"], label="Input",
                                doc="constant current; a Poisson spike train through an exponential synapse; "
                                    "or spikes at the times you type.")
    drive = param.Number(0.3, bounds=(0.0, 10.0), softbounds=(0.0, 1.0), step=0.01,
                         label="Constant input (per step)",
                         doc="Discrete form: input added to V each step (rheobase: threshold x (1 - leak)).")
    drive_na = param.Number(3.0, bounds=(0.0, 100.0), softbounds=(0.0, 10.0), step=0.05,
                            label="Constant current (nA)",
                            doc="Continuous form: injected current (rheobase g_L (V_T - E_L) = 2.7 nA by default).")
    rate = param.Number(0.2, bounds=(0.0, 1.0), step=0.01, label="Poisson spikes per step (per 0.1 ms)",
                        doc="Probability of an input spike in each step (continuous: per 0.1 ms step).")
    weight = param.Number(0.5, bounds=(-20.0, 20.0), softbounds=(0.0, 5.0), step=0.05,
                          label="Synaptic weight (per step | nA)",
                          doc="Current jump per input spike (Poisson or typed spikes).")
    tau_syn = param.Number(2.0, bounds=(0.1, 100.0), softbounds=(0.1, 20.0), step=0.1,
                           label="Synaptic time constant (steps | ms)", doc="Decay time of the synaptic current.")
    spike_times = param.String("5, 8, 11, 30", label="Input spike times (steps | ms)",
                               doc="Comma-separated input spike times for the 'spikes' input.")
    leak = param.Number(0.75, bounds=(0.0, 1.0), inclusive_bounds=(False, True), step=0.01,
                        label="Leak lambda (kept per step)", doc="Discrete form: fraction of V kept each step.")
    tau_m = param.Number(10.0, bounds=(0.5, 200.0), softbounds=(1.0, 50.0), step=0.5,
                         label="Membrane time constant (ms)", doc="Continuous form: C / g_L (paper: 10 ms).")
    v_th = param.Number(1.0, bounds=(0.01, 100.0), softbounds=(0.1, 4.0), step=0.05,
                        label="Threshold", doc="Discrete form: firing threshold (dimensionless, Desire BP: 1.0).")
    vt_mv = param.Number(20.0, bounds=(-60.0, 100.0), softbounds=(-50.0, 40.0), step=0.5,
                         label="Threshold V_T (mV)", doc="Continuous form: threshold (NormAD: 20 mV; rest E_L = -70 mV).")
    reset = param.Selector(default="subtract", objects=list(teaching.RESET_MODES), label="Reset",
                           doc="Discrete form: subtract the threshold (Desire BP) or set V to the reset value.")
    v_reset = param.Number(0.0, bounds=(-100.0, 100.0), softbounds=(-1.0, 1.0), step=0.05,
                           label="Reset value", doc="Discrete form, 'to value' reset: V after a spike.")
    refractory = param.Number(0.0, bounds=(0.0, 100.0), softbounds=(0.0, 20.0), step=1.0,
                              label="Refractory period (steps | ms)", doc="Time after a spike with V held.")
    duration = param.Integer(60, bounds=(5, 5000), softbounds=(10, 500), label="Duration (steps | ms)",
                             doc="Length of the simulation.")
    seed = param.Integer(0, bounds=(0, 2**31 - 1), label="Seed", doc="Seed of the Poisson input.")
    show_fi = param.Boolean(True, label="Show f-I curve", doc="Firing rate against constant input.")
    n_spikes = param.Integer(0, constant=True, label="Output spikes", doc="Spikes in the trace (read-only).")

    url_keys = ("form", "input_kind", "drive", "drive_na", "rate", "weight", "tau_syn", "spike_times", "leak",
                "tau_m", "v_th", "vt_mv", "reset", "v_reset", "refractory", "duration", "seed", "show_fi")
    controls = (*url_keys, "n_spikes")
    #: Controls that apply to one form only.
    only = {"discrete": ("drive", "leak", "v_th", "reset", "v_reset"),
            "continuous": ("drive_na", "tau_m", "vt_mv")}
    widgets = {"drive": {"type": pn.widgets.FloatSlider, "throttled": True},
               "leak": {"type": pn.widgets.FloatSlider, "throttled": True},
               "v_th": {"type": pn.widgets.FloatSlider, "throttled": True},
               "tau_m": {"type": pn.widgets.FloatSlider, "throttled": True}}

    def __init__(self, **params):
        super().__init__(**params)
        self._scale = 1.0
        self.trace_src = ColumnDataSource(dict(t=[], v=[]))
        self.spike_src = ColumnDataSource(dict(t=[], y=[]))
        self.input_src = ColumnDataSource(dict(t=[], i=[]))
        self.fi_sim = ColumnDataSource(dict(i=[], r=[]))
        self.fi_ana = ColumnDataSource(dict(i=[], r=[]))
        self.fi_now = ColumnDataSource(dict(i=[], r=[]))
        self.message = pn.pane.Markdown("", css_classes=["neuron-message"])
        self.trace_fig = _fig("Membrane potential", "time", "V")
        self.trace_fig.line("t", "v", source=self.trace_src, line_width=2, color="#1f77b4", legend_label="V")
        self.trace_fig.scatter("t", "y", source=self.spike_src, marker="triangle", size=11, color="#d62728",
                               legend_label="spike")
        self.th_line = Span(location=1.0, dimension="width", line_dash="dashed", line_color="#d62728")
        self.reset_line = Span(location=0.0, dimension="width", line_dash="dotted", line_color="#777777")
        self.trace_fig.add_layout(self.th_line)
        self.trace_fig.add_layout(self.reset_line)
        self.trace_fig.legend.location = "top_left"
        self.input_fig = _fig("Input current", "time", "I", height=160, x_range=self.trace_fig.x_range)
        self.input_fig.line("t", "i", source=self.input_src, color="#2ca02c", line_width=2)
        self.fi_fig = _fig("f-I curve: simulated vs closed form", "constant input", "rate")
        self.fi_fig.line("i", "r", source=self.fi_ana, color="#ff7f0e", line_width=3, legend_label="closed form")
        self.fi_fig.scatter("i", "r", source=self.fi_sim, size=6, color="#1f77b4", legend_label="simulated")
        self.fi_fig.scatter("i", "r", source=self.fi_now, size=14, marker="diamond", color="#d62728",
                            legend_label="this input")
        self.fi_fig.legend.location = "top_left"
        self._update()
        self.param.watch(lambda *_: self._update(), [k for k in self.url_keys if k != "show_fi"])
        self.param.watch(lambda e: setattr(self.fi_pane, "visible", e.new), "show_fi")
        self.fi_pane = pn.pane.Bokeh(self.fi_fig, sizing_mode="stretch_width", visible=self.show_fi)

    # ----------------------------------------------------------------- model
    #: Controls that apply to some input kinds only.
    input_of = {"drive": ("constant",), "drive_na": ("constant",), "rate": ("poisson",), "seed": ("poisson",),
                "weight": ("poisson", "spikes"), "tau_syn": ("poisson", "spikes"), "spike_times": ("spikes",)}

    @param.depends("form", "input_kind", watch=True, on_init=True)
    def _show_relevant(self):
        """Hide the controls that do not apply to the chosen form and input."""
        other = "continuous" if self.form == "discrete" else "discrete"
        for n in self.controls:
            shown = n not in self.only[other] and self.input_kind in self.input_of.get(n, (self.input_kind,))
            self.param[n].precedence = 1 if shown else -1

    def _neuron(self) -> ContinuousLIF:
        return ContinuousLIF(g_l=300.0 / self.tau_m, v_th=self.vt_mv, t_ref=self.refractory)

    def _input(self, n_steps: int, dt: float) -> tuple[np.ndarray, list[str]]:
        problems: list[str] = []
        decay = float(np.exp(-dt / self.tau_syn))
        if self.input_kind == "constant":
            return np.full(n_steps, self.drive if self.form == "discrete" else self.drive_na), problems
        if self.input_kind == "poisson":
            steps = teaching.poisson_steps(self.rate, n_steps, np.random.default_rng(self.seed))
        else:
            times, problems = teaching.parse_spike_times(self.spike_times, n_steps * dt)
            steps = np.round(times / dt).astype(np.int64)
        return teaching.synaptic_current(steps, n_steps, self.weight, decay), problems

    def simulate(self) -> dict:
        """Trace, spikes and f-I curves for the current parameters (also used by tests)."""
        if self.form == "discrete":
            n = int(self.duration)
            i_ext, problems = self._input(n, 1.0)
            v, s = teaching.discrete_lif(i_ext, self.leak, self.v_th, self.v_reset, self.reset,
                                         int(round(self.refractory)))
            t = np.arange(n, dtype=float)
            spike_t = s.astype(float)
            hi = max(5.0 * self.v_th * (1 - self.leak), 1.2 * self.drive, 1e-3)
            currents = np.linspace(0.0, hi, 40)
            sim = np.array([len(teaching.discrete_lif(np.full(400, c), self.leak, self.v_th, self.v_reset,
                                                      self.reset, int(round(self.refractory)))[1]) / 400.0
                            for c in currents])
            if self.reset == "to value":
                ana = teaching.discrete_rate(currents, self.leak, self.v_th, self.v_reset, int(round(self.refractory)))
            else:
                ana = np.full_like(currents, np.nan)
                problems = problems + ["The closed-form f-I curve assumes reset to a value; "
                                       "with reset by subtraction only the simulated points are shown."]
            unit_t, unit_r, reset_level = "step", "spikes / step", (self.v_reset if self.reset == "to value" else None)
        else:
            nrn = self._neuron()
            n = int(round(self.duration / nrn.dt))
            i_ext, problems = self._input(n, nrn.dt)
            v, spike_t = nrn.simulate(i_ext)
            t = np.arange(n) * nrn.dt
            currents = np.linspace(0.0, max(3.0 * nrn.rheobase, 1.0, 1.2 * self.drive_na), 40)
            sim = np.array([nrn.simulated_rate(c, 500.0) for c in currents])
            ana = np.asarray(nrn.rate(currents), float)
            unit_t, unit_r, reset_level = "ms", "Hz", nrn.e_l
        return dict(t=t, v=v, i=i_ext, spike_t=spike_t, currents=currents, sim=sim, ana=ana, problems=problems,
                    unit_t=unit_t, unit_r=unit_r, reset_level=reset_level)

    def _update(self):
        r = self.simulate()
        v = r["v"]
        self.trace_src.data = dict(t=r["t"], v=v)
        th = self.v_th if self.form == "discrete" else self.vt_mv
        top = float(max(np.max(v, initial=th), th)) + 0.05 * abs(th)
        self.spike_src.data = dict(t=r["spike_t"], y=np.full(len(r["spike_t"]), top))
        self.input_src.data = dict(t=r["t"], i=r["i"])
        self.fi_sim.data = dict(i=r["currents"], r=r["sim"])
        self.fi_ana.data = dict(i=r["currents"], r=r["ana"])
        if self.input_kind == "constant":
            drive = self.drive if self.form == "discrete" else self.drive_na
            rate_now = r["sim"][np.argmin(np.abs(r["currents"] - drive))] if len(r["currents"]) else 0
            self.fi_now.data = dict(i=[drive], r=[rate_now])
        else:
            self.fi_now.data = dict(i=[], r=[])
        self.th_line.location = self.v_th if self.form == "discrete" else self.vt_mv
        self.reset_line.visible = r["reset_level"] is not None
        if r["reset_level"] is not None:
            self.reset_line.location = r["reset_level"]
        self.trace_fig.xaxis.axis_label = f"time ({r['unit_t']})"
        self.input_fig.xaxis.axis_label = f"time ({r['unit_t']})"
        self.fi_fig.yaxis.axis_label = f"rate ({r['unit_r']})"
        self.trace_fig.yaxis.axis_label = "V (mV)" if self.form == "continuous" else "V"
        with param.edit_constant(self):
            self.n_spikes = int(len(r["spike_t"]))
        self.message.object = "\n".join(f"* {as_markdown(p)}" for p in r["problems"])

    def set_scale(self, s: float):
        self._scale = s
        for f, h in ((self.trace_fig, 260), (self.input_fig, 160), (self.fi_fig, 260)):
            f.height = int(h * s)
            f.title.text_font_size = f"{12 * s:.0f}pt"

    def __panel__(self):
        return pn.Column(pn.pane.Bokeh(self.trace_fig, sizing_mode="stretch_width"),
                         pn.pane.Bokeh(self.input_fig, sizing_mode="stretch_width"),
                         self.fi_pane, self.message, sizing_mode="stretch_width")


class StdpDemo(Demo):
    """A pre/post spike pair: the STDP window, and Desire BP's desire-signed causal window."""

    title = "STDP window"
    tutorial = "stdp"

    delta_t = param.Number(10.0, bounds=(-100.0, 100.0), softbounds=(-60.0, 60.0), step=1.0,
                           label="t_post - t_pre (ms)", doc="Timing of the postsynaptic spike after the presynaptic one.")
    a_plus = param.Number(0.01, bounds=(0.0, 1.0), softbounds=(0.0, 0.05), step=0.001, label="A+ (potentiation)",
                          doc="Largest weight increase (pre just before post).")
    a_minus = param.Number(0.012, bounds=(0.0, 1.0), softbounds=(0.0, 0.05), step=0.001, label="A- (depression)",
                           doc="Largest weight decrease (post just before pre).")
    tau_plus = param.Number(20.0, bounds=(0.5, 200.0), softbounds=(1.0, 60.0), step=0.5, label="tau+ (ms)",
                            doc="Decay of the potentiation side.")
    tau_minus = param.Number(20.0, bounds=(0.5, 200.0), softbounds=(1.0, 60.0), step=0.5, label="tau- (ms)",
                             doc="Decay of the depression side.")
    n_pairs = param.Integer(60, bounds=(1, 1000), softbounds=(1, 200), label="Pairings",
                            doc="Number of repeated pairings in the weight plot.")
    w0 = param.Number(0.5, bounds=(0.0, 1.0), step=0.01, label="Initial weight (of w_max = 1)",
                      doc="Starting weight of the repeated pairings (soft bounds at 0 and 1).")
    show_desire = param.Boolean(True, label="Show desire-modulated STDP",
                                doc="Overlay Desire BP's update: causal half only, sign set by the desire.")
    desire = param.Selector(default=1, objects=[1, -1], label="Desire (+1 spike more, -1 spike less)",
                            doc="Desire of the postsynaptic neuron in Desire BP.")
    leak = param.Number(0.75, bounds=(0.0, 1.0), inclusive_bounds=(False, False), step=0.01,
                        label="Trace leak lambda (per 1 ms step)",
                        doc="Desire BP's presynaptic trace keeps this fraction per step (paper: 0.75).")

    url_keys = ("delta_t", "a_plus", "a_minus", "tau_plus", "tau_minus", "n_pairs", "w0", "show_desire",
                "desire", "leak")
    controls = url_keys
    widgets = {"delta_t": {"type": pn.widgets.FloatSlider, "throttled": False}}

    def __init__(self, **params):
        super().__init__(**params)
        self.pair_src = ColumnDataSource(dict(t=[], y=[], y1=[], who=[]))
        self.win_src = ColumnDataSource(dict(dt=[], dw=[]))
        self.des_src = ColumnDataSource(dict(dt=[], dw=[]))
        self.now_src = ColumnDataSource(dict(dt=[], dw=[]))
        self.w_src = ColumnDataSource(dict(k=[], w=[]))
        self.wd_src = ColumnDataSource(dict(k=[], w=[]))
        self.pair_fig = _fig("Spike pair", "time (ms)", "", height=150, y_range=(-0.5, 1.5))
        self.pair_fig.segment(x0="t", y0="y", x1="t", y1="y1", source=self.pair_src, line_width=4, color="#1f3a5f")
        self.pair_fig.yaxis.ticker = [0.2, 1.2]
        self.pair_fig.yaxis.major_label_overrides = {0.2: "pre", 1.2: "post"}
        self.win_fig = _fig("Weight change against spike timing", "t_post - t_pre (ms)", "relative change")
        self.win_fig.line("dt", "dw", source=self.win_src, line_width=3, color="#1f77b4", legend_label="STDP")
        self.des_glyph = self.win_fig.scatter("dt", "dw", source=self.des_src, size=5, color="#ff7f0e",
                                              legend_label="desire-modulated (Desire BP)")
        self.win_fig.scatter("dt", "dw", source=self.now_src, size=14, marker="diamond", color="#d62728",
                             legend_label="this pair")
        self.win_fig.add_layout(Span(location=0, dimension="width", line_color="#999999"))
        self.win_fig.add_layout(Span(location=0, dimension="height", line_color="#999999"))
        self.win_fig.legend.location = "top_left"
        self.w_fig = _fig("Weight over repeated pairings", "pairing", "weight")
        self.w_fig.line("k", "w", source=self.w_src, line_width=3, color="#1f77b4", legend_label="STDP (soft bounds)")
        self.wd_glyph = self.w_fig.line("k", "w", source=self.wd_src, line_width=3, color="#ff7f0e",
                                        line_dash="dashed", legend_label="desire-modulated")
        self.w_fig.legend.location = "top_left"
        self._update()
        self.param.watch(lambda *_: self._update(), list(self.url_keys))

    def window(self):
        kw = dict(a_plus=self.a_plus, a_minus=self.a_minus, tau_plus=self.tau_plus, tau_minus=self.tau_minus)
        dts = np.linspace(-80, 80, 321)
        dt_steps = np.arange(-80, 81)
        des = teaching.desire_stdp_window(dt_steps, float(self.desire), self.leak, self.a_plus, n_steps=200)
        w = teaching.repeated_pairings(self.delta_t, self.n_pairs, self.w0, **kw)
        d_now = float(teaching.desire_stdp_window(int(round(self.delta_t)), float(self.desire), self.leak,
                                                  self.a_plus, n_steps=256))
        wd = self.w0 + d_now * np.arange(self.n_pairs + 1)
        return dict(dts=dts, stdp=teaching.stdp_window(dts, **kw), dt_steps=dt_steps, desire=des, w=w, wd=wd,
                    now=float(teaching.stdp_window(self.delta_t, **kw)))

    def _update(self):
        r = self.window()
        t_pre, t_post = 0.0, float(self.delta_t)
        self.pair_src.data = dict(t=[t_pre, t_post], y=[0.0, 1.0], y1=[0.4, 1.4], who=["pre", "post"])
        self.pair_fig.x_range.start, self.pair_fig.x_range.end = min(t_pre, t_post) - 20, max(t_pre, t_post) + 20
        self.win_src.data = dict(dt=r["dts"], dw=r["stdp"])
        self.des_src.data = dict(dt=r["dt_steps"], dw=r["desire"])
        self.now_src.data = dict(dt=[self.delta_t], dw=[r["now"]])
        self.w_src.data = dict(k=np.arange(len(r["w"])), w=r["w"])
        self.wd_src.data = dict(k=np.arange(len(r["wd"])), w=r["wd"])
        self.des_glyph.visible = self.show_desire
        self.wd_glyph.visible = self.show_desire

    def set_scale(self, s: float):
        for f, h in ((self.pair_fig, 150), (self.win_fig, 260), (self.w_fig, 260)):
            f.height = int(h * s)
            f.title.text_font_size = f"{12 * s:.0f}pt"

    def __panel__(self):
        return pn.Column(*(pn.pane.Bokeh(f, sizing_mode="stretch_width")
                           for f in (self.pair_fig, self.win_fig, self.w_fig)), sizing_mode="stretch_width")
