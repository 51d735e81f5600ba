"""A recorded run as one self-contained HTML file: scrub through the samples offline.

:func:`export_html` turns a :class:`~spikewb.engine.recording.Recording` into a
single HTML file that needs no server and makes no outside request: BokehJS
and every number are inline.  A slider (and the previous / next buttons, and
the arrow keys) moves through the kept samples; the spike raster of every
layer, the traced neurons' potentials with the threshold, the per-neuron
learning signal of every layer and a marker on the accuracy curve follow it,
all in the browser.  A teacher can mail the file or put it on a USB stick.

Everything taken from the recording (layer names, ``info`` fields such as the
rule or dataset) is shown as text, never interpreted as HTML.  The file's size
is bounded: at most ``max_samples`` evenly spaced kept samples and at most
``max_events`` spike events go in (fewer samples are taken, evenly, until the
events fit), so a long recording still gives a file a mail client takes.

From the command line: ``spikewb export RUN_OR_RECORDING --html out.html``.

Examples
--------
Record one short epoch with the public API (``import spikewb``) and write it:

>>> import tempfile, pathlib
>>> import spikewb
>>> digits = spikewb.load_dataset("mnist-5k").subset(n_train=40, n_test=10)
>>> net = spikewb.Architecture(n_inputs=784, hidden=[20], n_outputs=10)
>>> run = spikewb.Recording(every=10, record=spikewb.Record(spikes=True, neurons=((1, 0), (2, 3))))
>>> _ = spikewb.Trainer(spikewb.make_rule("desire"), digits, net).fit(1, callback=run, on_epoch=run,
...                                                                 record=run.record)
>>> out = export_html(run, pathlib.Path(tempfile.mkdtemp()) / "run.html", title="Desire BP, 40 digits")
>>> summary = export_summary(out)
>>> summary["samples"], summary["loaded_files"]
(4, 0)
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from spikewb.engine.errors import ConfigError
from spikewb.engine.recording import Recording

#: Most kept samples written into one file (evenly spaced over the recording).
MAX_SAMPLES = 400
#: Most spike events written into one file (about 12 bytes each in the file).
MAX_EVENTS = 2_000_000
#: Most traced neurons drawn (one line each).
MAX_TRACES = 10
#: Colours of the layers in the raster and of the traced neurons (Bokeh Category10).
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf")
#: Diverging colours of the learning signal: blue negative, white zero, red positive (ColorBrewer RdBu).
SIGNAL_PALETTE = ("#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582", "#d6604d",
                  "#b2182b")

#: Runs in the browser whenever the slider moves: cut the chosen sample's slice out of the stores.
_SHOW_SAMPLE = """
const sd = samples.data;
const n = sd.step.length;
const k = Math.max(0, Math.min(n - 1, Math.round(slider.value) - 1));   // the slider counts from 1
const ea = sd.ev_a[k], eb = sd.ev_b[k];
raster.data = {t: events.data.t.slice(ea, eb), y: events.data.y.slice(ea, eb),
               layer: events.data.layer.slice(ea, eb)};
const T = sd.tt_b[k] - sd.tt_a[k];
const tt = times.data.t.slice(sd.tt_a[k], sd.tt_b[k]);
const nrec = T > 0 ? Math.round((sd.v_b[k] - sd.v_a[k]) / T) : 0;
for (let r = 0; r < lines.length; r++) {
  if (r < nrec) {
    const o = sd.v_a[k] + r * T;
    lines[r].data = {t: tt, v: volts.data.v.slice(o, o + T)};
  } else {
    lines[r].data = {t: [], v: []};
  }
}
threshold.location = sd.v_th[k];
const W = signal.data.x.length;
signal.data = {x: signal.data.x, y: signal.data.y, w: signal.data.w, neuron: signal.data.neuron,
               v: signals.data.v.slice(k * W, (k + 1) * W)};
marker.location = sd.step[k];
const pred = sd.prediction[k] < 0 ? "none" : String(sd.prediction[k]);
info.text = "kept sample " + (k + 1) + " of " + n + " \\u00b7 training step " + sd.step[k]
  + " \\u00b7 epoch " + sd.epoch[k] + " \\u00b7 label " + sd.label[k] + " \\u00b7 predicted " + pred
  + " \\u00b7 loss " + sd.loss[k].toPrecision(3)
  + " \\u00b7 running accuracy " + (100 * sd.accuracy[k]).toFixed(1) + " %";
"""

#: Buttons and arrow keys move the slider by ``delta`` (its own callback then redraws).
_MOVE = """
const v = Math.max(slider.start, Math.min(slider.end, Math.round(slider.value) + delta));
if (v !== slider.value) slider.value = v;
"""

#: Left / right arrow keys scrub, unless the focus is in a text field.
_KEYS = """
document.addEventListener("keydown", (e) => {
  const tag = (e.target && e.target.tagName) || "";
  if (tag === "INPUT" || tag === "TEXTAREA") return;
  const d = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
  if (d === 0) return;
  const v = Math.max(slider.start, Math.min(slider.end, Math.round(slider.value) + d));
  if (v !== slider.value) slider.value = v;
});
"""


def choose_samples(event_counts: np.ndarray, max_samples: int = MAX_SAMPLES,
                   max_events: int = MAX_EVENTS) -> np.ndarray:
    """Positions of the kept samples that go into the file, evenly spaced from the first.

    At most ``max_samples`` of them; while their spike events exceed
    ``max_events``, every other one is dropped (one sample always stays).

    >>> choose_samples(np.full(10, 100), max_samples=4).tolist()
    [0, 3, 6, 9]
    >>> choose_samples(np.full(10, 100), max_samples=10, max_events=500).tolist()
    [0, 2, 4, 6, 8]
    """
    counts = np.asarray(event_counts, np.int64)
    n = len(counts)
    if n == 0:
        return np.zeros(0, np.int64)
    take = np.unique(np.linspace(0, n - 1, min(n, max(1, int(max_samples)))).round().astype(np.int64))
    while len(take) > 1 and int(counts[take].sum()) > max_events:
        take = take[::2]
    return take


def _layer_colors(n_layers: int) -> tuple[str, ...]:
    return tuple(COLORS[l % len(COLORS)] for l in range(n_layers))


def _text(v, limit: int = 120) -> str:
    """A value from the recording as one short line of plain text."""
    s = re.sub(r"[\x00-\x1f\x7f]", " ", str(v))
    return s if len(s) <= limit else s[:limit - 1] + "\u2026"


def _stores(rec: Recording, take: np.ndarray) -> dict:
    """The recording's chosen samples as flat arrays with per-sample offsets (the JavaScript's stores)."""
    sizes = rec.layer_sizes
    n_layers = len(sizes)
    ev_t, ev_y, ev_l, ev_off = [], [], [], [0]
    tt, tt_off, vv, v_off = [], [0], [], [0]
    for k in take:
        for l in range(n_layers):
            t, i = rec.spikes(l, int(k))
            ok = (i >= 0) & (i < sizes[l])
            ev_t.append(t[ok].astype(np.float32))
            # layer l fills the band [l, l + 1) of the raster's y axis
            ev_y.append((l + (i[ok].astype(np.float32) + 0.5) / float(sizes[l])).astype(np.float32))
            ev_l.append(np.full(int(ok.sum()), l, np.float32))
        ev_off.append(ev_off[-1] + sum(len(a) for a in ev_t[-n_layers:]))
        ids, grid, v = rec.traces(int(k))
        v = v[:MAX_TRACES] if v.shape[1] == len(grid) else np.zeros((0, len(grid)), np.float32)
        tt.append(grid.astype(np.float32))
        tt_off.append(tt_off[-1] + len(grid))
        vv.append(v.reshape(-1).astype(np.float32))
        v_off.append(v_off[-1] + v.size)
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.float32)  # noqa: E731
    sig = np.concatenate([rec.signal(l)[take] for l in range(1, n_layers)], axis=1) if n_layers > 1 else \
        np.zeros((len(take), 0), np.float32)
    sig = np.nan_to_num(sig.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return dict(ev_t=cat(ev_t), ev_y=cat(ev_y), ev_l=cat(ev_l), ev_off=np.array(ev_off, np.int64),
                tt=cat(tt), tt_off=np.array(tt_off, np.int64), v=cat(vv), v_off=np.array(v_off, np.int64),
                sig=sig)


def _trace_labels(rec: Recording, take: np.ndarray) -> list[str]:
    """Legend labels of the traced neurons (from the sample with the most traces)."""
    best = max((rec.traces(int(k))[0] for k in take), key=len, default=np.zeros((0, 2), np.int32))
    names = rec.layer_names
    return [f"{_text(names[int(l)], 40) if 0 <= int(l) < len(names) else int(l)} #{int(i)}"
            for l, i in best[:MAX_TRACES]]


def build_document(rec: Recording, title: str | None = None, max_samples: int = MAX_SAMPLES,
                   max_events: int = MAX_EVENTS):
    """The Bokeh document of :func:`export_html` (for embedding elsewhere); returns ``(document, n_samples)``."""
    from bokeh.document import Document
    from bokeh.layouts import column, row
    from bokeh.models import (Button, ColorBar, ColumnDataSource, CustomJS, Div, FixedTicker, LinearColorMapper,
                              Range1d, Slider, Span)
    from bokeh.plotting import figure

    if not isinstance(rec, Recording):
        raise ConfigError(f"expected a spikewb Recording, got {type(rec).__name__}")
    if len(rec) == 0 or rec.n_layers == 0:
        raise ConfigError("the recording is empty: no frame was kept, nothing to export")
    sizes, names = rec.layer_sizes, rec.layer_names
    n_layers = len(sizes)
    counts = np.zeros(len(rec), np.int64)
    for l in range(n_layers):
        counts += np.array([len(rec.spikes(l, k)[0]) for k in range(len(rec))], np.int64)
    take = choose_samples(counts, max_samples, max_events)
    st = _stores(rec, take)
    n = len(take)
    layer_colors = _layer_colors(n_layers)
    unit = _text(rec.time_unit, 20)

    # ---- stores (never drawn) and per-sample scalars
    events = ColumnDataSource(dict(t=st["ev_t"], y=st["ev_y"], layer=st["ev_l"]), name="exp-events")
    times = ColumnDataSource(dict(t=st["tt"]), name="exp-times")
    volts = ColumnDataSource(dict(v=st["v"]), name="exp-volts")
    signals = ColumnDataSource(dict(v=st["sig"].reshape(-1)), name="exp-signals")
    col = lambda a, dt=np.float64: np.asarray(a, dt)[take]  # noqa: E731
    samples = ColumnDataSource(dict(
        step=col(rec.steps, np.int64), epoch=col(rec.epochs, np.int64), label=col(rec.labels, np.int64),
        prediction=col(rec.predictions, np.int64), loss=np.nan_to_num(col(rec.loss)),
        accuracy=np.nan_to_num(col(rec.accuracy)), v_th=np.nan_to_num(col(rec.v_th)),
        ev_a=st["ev_off"][:-1], ev_b=st["ev_off"][1:], tt_a=st["tt_off"][:-1], tt_b=st["tt_off"][1:],
        v_a=st["v_off"][:-1], v_b=st["v_off"][1:]), name="exp-samples")

    # ---- the raster: one band per layer
    duration = float(np.nanmax(rec.duration[take])) if n else 1.0
    duration = duration if np.isfinite(duration) and duration > 0 else 1.0
    raster = ColumnDataSource(dict(t=[], y=[], layer=[]), name="exp-raster")
    layer_map = LinearColorMapper(palette=list(layer_colors), low=-0.5, high=n_layers - 0.5)
    fig_r = figure(title="Spike raster (one band per layer)", height=320, sizing_mode="stretch_width",
                   x_range=Range1d(0, duration), y_range=Range1d(0, n_layers), tools="xpan,xwheel_zoom,reset",
                   x_axis_label=f"time ({unit})", name="exp-raster-fig")
    fig_r.scatter("t", "y", source=raster, marker="dash", angle=np.pi / 2, size=5, line_width=1.5,
                  color={"field": "layer", "transform": layer_map})
    fig_r.yaxis.ticker = FixedTicker(ticks=[l + 0.5 for l in range(n_layers)])
    fig_r.yaxis.major_label_overrides = {l + 0.5: f"{_text(names[l], 30)} ({sizes[l]})" for l in range(n_layers)}
    for l in range(1, n_layers):
        fig_r.add_layout(Span(location=l, dimension="width", line_color="#bbbbbb", line_width=1))

    # ---- potentials of the traced neurons, with the threshold
    labels = _trace_labels(rec, take)
    fig_v = figure(title="Membrane potentials of the traced neurons", height=260, sizing_mode="stretch_width",
                   x_range=fig_r.x_range, tools="xpan,xwheel_zoom,reset", x_axis_label=f"time ({unit})",
                   y_axis_label="potential", name="exp-potentials-fig")
    lines = []
    for r, label in enumerate(labels):
        src = ColumnDataSource(dict(t=[], v=[]), name=f"exp-trace-{r}")
        fig_v.line("t", "v", source=src, line_width=1.8, color=COLORS[r % len(COLORS)], legend_label=label)
        lines.append(src)
    threshold = Span(location=float(np.nan_to_num(rec.v_th[take][-1])), dimension="width", line_dash="dashed",
                     line_color="#d62728", line_width=1.5, name="exp-threshold")
    fig_v.add_layout(threshold)
    if labels:
        fig_v.legend.location = "top_left"
        fig_v.legend.orientation = "horizontal"
        fig_v.legend.label_text_font_size = "9pt"
    else:
        fig_v.title.text = "Membrane potentials: no neuron was traced in this recording"

    # ---- learning signal of every non-input layer, one row of cells per layer
    xs, ys, ws, ns = [], [], [], []
    for l in range(1, n_layers):
        w = rec.signal(l).shape[1]
        if w:
            xs.append((np.arange(w) + 0.5) / w)
            ws.append(np.full(w, 1.0 / w))
            ys.append(np.full(w, float(l)))
            ns.append(np.arange(w))
    cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)  # noqa: E731
    signal = ColumnDataSource(dict(x=cat(xs, np.float32), y=cat(ys, np.float32), w=cat(ws, np.float32),
                                   neuron=cat(ns, np.int32), v=np.zeros(st["sig"].shape[1], np.float32)),
                              name="exp-signal")
    amp = float(np.abs(st["sig"]).max(initial=0.0)) or 1.0
    sig_map = LinearColorMapper(palette=list(SIGNAL_PALETTE), low=-amp, high=amp)
    signal_name = _text(rec.signal_name or "learning signal", 60)
    fig_s = figure(title=f"Learning signal per neuron: {signal_name}", height=60 + 34 * max(n_layers - 1, 1),
                   sizing_mode="stretch_width", x_range=Range1d(0, 1), y_range=Range1d(0.5, n_layers - 0.5),
                   tools="hover", tooltips=[("neuron", "@neuron"), ("signal", "@v")], name="exp-signal-fig",
                   x_axis_label="neuron (position within its layer)")
    fig_s.rect("x", "y", width="w", height=0.9, source=signal, line_color=None,
               fill_color={"field": "v", "transform": sig_map})
    fig_s.yaxis.ticker = FixedTicker(ticks=list(range(1, n_layers)))
    fig_s.yaxis.major_label_overrides = {l: _text(names[l], 30) for l in range(1, n_layers)}
    fig_s.add_layout(ColorBar(color_mapper=sig_map, width=10), "right")

    # ---- accuracy over training, with a marker at the shown sample
    fig_a = figure(title="Running training accuracy (and test accuracy after each epoch)", height=220,
                   sizing_mode="stretch_width", tools="xpan,xwheel_zoom,reset", x_axis_label="training sample",
                   y_axis_label="accuracy (%)", y_range=Range1d(0, 100), name="exp-accuracy-fig")
    fig_a.line(rec.steps.astype(np.float64), 100 * np.nan_to_num(rec.accuracy), color="#1f77b4", line_width=2,
               legend_label="running (this epoch)")
    test = rec.test_accuracy
    ok = np.isfinite(test)
    if ok.any():
        fig_a.scatter(rec.steps[ok].astype(np.float64), 100 * test[ok], color="#d62728", size=6,
                      legend_label="test (last epoch)")
    fig_a.legend.location = "bottom_right"
    marker = Span(location=int(rec.steps[take][-1]), dimension="height", line_color="#555555", line_dash="dotted",
                  line_width=2, name="exp-marker")
    fig_a.add_layout(marker)

    # ---- the controls
    slider = Slider(start=1, end=max(n, 2), value=n, step=1, title="Kept sample", disabled=n < 2,
                    sizing_mode="stretch_width", name="exp-slider")
    info = Div(text="", render_as_text=True, name="exp-info", styles={"font-size": "14px"})
    args = dict(slider=slider, samples=samples, events=events, raster=raster, times=times, volts=volts,
                lines=lines, threshold=threshold, signals=signals, signal=signal, marker=marker, info=info)
    show = CustomJS(args=args, code=_SHOW_SAMPLE)
    slider.js_on_change("value", show)
    prev_b = Button(label="\u25c0 Previous", width=110, name="exp-prev")
    next_b = Button(label="Next \u25b6", width=110, name="exp-next")
    prev_b.js_on_event("button_click", CustomJS(args=dict(slider=slider, delta=-1), code=_MOVE))
    next_b.js_on_event("button_click", CustomJS(args=dict(slider=slider, delta=1), code=_MOVE))

    head = Div(text=_text(title or _default_title(rec), 200), render_as_text=True, name="exp-title",
               styles={"font-size": "20px", "font-weight": "bold"})
    about = Div(text=(f"Network {'-'.join(map(str, sizes))}; {n} of {len(rec)} kept samples in this file "
                      f"(every {rec.every}-th training sample was kept). Move with the slider, the buttons or "
                      "the left / right arrow keys."), render_as_text=True, name="exp-about")
    layout = column(head, about, row(prev_b, next_b, slider, sizing_mode="stretch_width"), info,
                    fig_r, fig_v, fig_s, fig_a, sizing_mode="stretch_width", name="exp-root")
    doc = Document(title=_text(title or _default_title(rec), 200))
    doc.add_root(layout)
    # draw the first view in the browser with the code the slider runs, and listen to the arrow keys
    doc.js_on_event("document_ready", show)
    doc.js_on_event("document_ready", CustomJS(args=dict(slider=slider), code=_KEYS))
    return doc, n


def _default_title(rec: Recording) -> str:
    info = rec.info if isinstance(rec.info, dict) else {}
    parts = [_text(info[k], 40) for k in ("rule", "dataset") if k in info]
    return "Recorded run" + (": " + ", ".join(parts) if parts else "")


def export_html(rec: Recording, path, title: str | None = None, max_samples: int = MAX_SAMPLES,
                max_events: int = MAX_EVENTS) -> Path:
    """Write ``rec`` as one self-contained HTML file (no server, no outside request); returns the path.

    Parameters
    ----------
    rec : Recording
        A recording with at least one kept sample.
    path : str or Path
        The file to write (its folder must exist); written atomically.
    title : str, optional
        Heading and ``<title>`` of the page (shown as text); default names the
        rule and dataset from ``rec.info``.
    max_samples, max_events : int
        Bounds on what goes into the file (see :func:`choose_samples`).
    """
    html = export_html_text(rec, title, max_samples, max_events)
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


def export_html_text(rec: Recording, title: str | None = None, max_samples: int = MAX_SAMPLES,
                     max_events: int = MAX_EVENTS) -> str:
    """The page :func:`export_html` writes, as a string (the trainer page's download uses it)."""
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    for name, v in (("max_samples", max_samples), ("max_events", max_events)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {v!r}")
    doc, _ = build_document(rec, title, int(max_samples), int(max_events))
    html = _SERVER_SCRIPT.sub("", file_html(doc, INLINE, title=doc.title))
    left = _loaded_files(html)
    if left:  # a library added a file the page would have to fetch: refuse rather than write a page that breaks
        raise RuntimeError(f"the exported page would load {len(left)} outside file(s): {left[:3]}")
    return html


def recording_of(frames, info: dict | None = None) -> Recording:
    """A :class:`Recording` of ``frames`` (e.g. the last frames a page showed), in their order.

    Frames of another network than the newest frame's (from before a rebuild)
    are left out, so the recording holds one network.
    """
    frames = list(frames)
    rec = Recording(every=1, info=info)
    if not frames:
        return rec
    sizes = tuple(frames[-1].layer_sizes)
    for f in frames:
        if tuple(f.layer_sizes) == sizes:
            try:
                rec.add(f)
            except ConfigError:   # same sizes, other signal widths: another rule's frame
                continue
    return rec


#: A script or style-sheet tag that loads a file from the serving Panel's ``static/`` folder.  Once
#: Panel is imported and configured (inside ``spikewb serve``), it adds its ES-module shim and its
#: style sheets this way to every inline Bokeh bundle; the exported document holds Bokeh models
#: only and needs none of them, and from disk each would be a failed request.
_SERVER_SCRIPT = re.compile(r'<script\b[^>]*\bsrc\s*=\s*"static/[^"]*"[^>]*>\s*</script>\s*'
                            r'|<link\b[^>]*\bhref\s*=\s*"static/[^"]*"[^>]*>\s*', re.IGNORECASE)
#: A tag of the page that loads a file: a script, style sheet, image or frame with a source of its own.
_SCRIPT_BODY = re.compile(r"(<script\b[^>]*>).*?</script>", re.IGNORECASE | re.DOTALL)
_LOADS = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=", re.IGNORECASE)


def _loaded_files(html: str) -> list[str]:
    """The tags of the page (not strings inside its scripts) that load a file from a URL."""
    return _LOADS.findall(_SCRIPT_BODY.sub(r"\1</script>", html))


def export_summary(path) -> dict:
    """What an exported file holds: ``samples`` (kept samples in it), ``bytes`` and
    ``loaded_files`` (tags that load a script, style sheet or image from a URL; 0: all inline).

    The browser test (``tests/ui/test_export_ui.py``) is the stronger check: it
    opens the file with every request but the file itself refused.
    """
    text = Path(path).read_text(encoding="utf-8")
    n = re.search(r"; (\d+) of \d+ kept samples in this file", text)
    return {"samples": int(n.group(1)) if n else 0, "bytes": len(text.encode()),
            "loaded_files": len(_loaded_files(text))}
