"""The sweep results page: a sortable run table, overlaid accuracy curves, parameter vs accuracy.

:class:`ResultsPage` is what ``apps/results.py`` serves.  It reads one sweep
folder (written by ``spikewb sweep``) with the same loaders as the HTML
report (:func:`spikewb.engine.training.sweep.collect`, :func:`spikewb.workbench.views.sweep_report.table_data`)
and shows:

* a :class:`panel.widgets.Tabulator` of every run (the varying settings,
  status, epochs done, final and best test accuracy, the error of a failed
  run) with an *open* link per run checkpoint: it opens the live trainer on
  that checkpoint (``/trainer?checkpoint=...``);
* the test-accuracy curves of the runs selected in the table, overlaid;
* best test accuracy against one varying setting (chosen in a menu).

Folders are chosen from the sweeps found under the run root
(:mod:`spikewb.workbench.server.runs`: ``$SPIKEWB_RUNS`` or ``runs/``), or with ``?dir=``
relative to it; a path outside the root is refused.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from urllib.parse import quote as url_quote, urlencode

import numpy as np
import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, FixedTicker, HoverTool, Range1d
from bokeh.palettes import Category10_10

from spikewb.engine.errors import ConfigError
from spikewb.engine.training.sweep import collect

from spikewb.workbench.server import runs as runroot
from spikewb.workbench.pagestate import ignored, read_query, unknown
from spikewb.workbench.server.safetext import as_html, as_markdown, quote, scrub_paths
from spikewb.workbench.views.sweep_report import table_data
from spikewb.workbench.views.base import make_figure
from spikewb.workbench.views.status import stylesheet

log = logging.getLogger(__name__)

#: Route of the trainer app, relative to this page.
TRAINER = "./trainer"
#: Runs selected (curves shown) when a folder opens.
DEFAULT_SELECTED = 10


def open_link(run_dir: str, root: Path) -> str:
    """HTML link opening the run's checkpoint in the trainer ('' when there is none)."""
    ckpt = Path(run_dir) / "checkpoint.npz"
    if not ckpt.is_file():
        return ""
    try:
        rel = runroot.relative(ckpt, root)
    except (ValueError, OSError, RuntimeError):  # a link out of the root, or a loop
        return ""
    return f'<a href="{TRAINER}?checkpoint={url_quote(rel, safe="/")}" target="_blank">open</a>'


class ResultsPage(pn.viewable.Viewer):
    """Results of one sweep folder under the run root."""

    def __init__(self, directory: str | None = None, root: Path | None = None, **params):
        super().__init__(**params)
        self.root = (root or runroot.run_root()).resolve()
        self.messages = pn.Column(sizing_mode="stretch_width", margin=0)
        sweeps = runroot.find_sweeps(self.root)
        self.folder = pn.widgets.Select(name="Sweep folder (in the run folder)", options=sweeps or ["."],
                                        sizing_mode="stretch_width", margin=(2, 8),
                                        description="Sweeps found under the run folder ($SPIKEWB_RUNS or runs/)")
        self.reload = pn.widgets.Button(label="\u27f3 Reload", width=100, margin=(22, 8, 2, 8))
        self.summary = pn.pane.HTML("", css_classes=["res-summary"], sizing_mode="stretch_width", margin=(0, 8))
        self.table = pn.widgets.Tabulator(pd.DataFrame(), selectable="checkbox", show_index=False,
                                          disabled=True, sizing_mode="stretch_width", height=320,
                                          layout="fit_data_fill", css_classes=["res-table"],
                                          formatters={"open": {"type": "html"}})
        self.curve_source = ColumnDataSource(dict(xs=[], ys=[], run=[], color=[]), name="res-curves")
        self.curves = make_figure("Test accuracy per epoch (runs selected in the table)", height=330,
                                  x_range=Range1d(0, 1), y_range=Range1d(0, 100))
        self.curves.multi_line("xs", "ys", source=self.curve_source, color="color", line_width=2,
                               legend_field="run")
        self.curves.xaxis.axis_label = "epoch"
        self.curves.yaxis.axis_label = "test accuracy (%)"
        self.curves.legend.location = "bottom_right"
        self.curves.legend.label_text_font_size = "10px"
        self.curves.legend.background_fill_alpha = 0.6
        self.param_source = ColumnDataSource(dict(x=[], y=[], run=[], label=[]), name="res-param")
        self.param_fig = make_figure("best test accuracy vs setting", height=330, x_range=Range1d(0, 1),
                                     y_range=Range1d(0, 100))
        self.param_fig.scatter("x", "y", source=self.param_source, size=10, color="#1f77b4")
        self.param_fig.add_tools(HoverTool(tooltips=[("run", "@run"), ("value", "@label"),
                                                     ("best test", "@y{0.00} %")]))
        self.param_fig.yaxis.axis_label = "best test accuracy (%)"
        self.param_ticker = FixedTicker(ticks=[])
        self.x_param = pn.widgets.Select(name="Setting on the x axis", options=[], sizing_mode="fixed",
                                         width=220, margin=(2, 8))
        self.runs: list[dict] = []
        self.data: dict[str, list] = {}
        self.varying: list[str] = []
        start = directory if directory is not None else (sweeps[0] if sweeps else ".")
        if start not in self.folder.options:
            self.folder.options = [*self.folder.options, start]
        self.folder.value = start
        self.reload.on_click(lambda e: self.load(self.folder.value))
        self.folder.param.watch(lambda e: self.load(e.new), "value")
        self.table.param.watch(lambda e: self._draw_curves(), "selection")
        self.x_param.param.watch(lambda e: self._draw_param(), "value")
        self.load(start)

    # ------------------------------------------------------------------ factory
    @classmethod
    def from_url(cls, **params) -> "ResultsPage":
        flat, problems = read_query(getattr(pn.state, "session_args", None))
        text = flat.get("dir")
        directory = None
        if text:
            try:
                path = runroot.resolve(text)
                if not path.is_dir():
                    raise ConfigError("no such folder in the run folder")
                directory = runroot.relative(path)
            except ConfigError as exc:
                problems.append(ignored("dir", text, exc))
        problems += [unknown(k) for k in flat if k not in ("dir", "theme")]
        page = cls(directory=directory, **params)
        if problems:
            page.notify("warning", *problems)
        return page

    def notify(self, kind: str, *texts: str) -> None:
        """Show a notice (plain text, one bullet per text when several); the last three stay."""
        body = "\n".join(f"* {as_markdown(t)}" for t in texts) if len(texts) > 1 else as_markdown(texts[0])
        self.messages.objects = [*self.messages.objects[-2:],
                                 pn.pane.Alert(body, alert_type=kind, sizing_mode="stretch_width", margin=(2, 8),
                                               css_classes=["res-notice"])]

    # ------------------------------------------------------------------ data
    def load(self, rel: str) -> None:
        """Read the sweep folder ``rel`` (relative to the root) and redraw everything."""
        try:
            path = runroot.resolve(rel or ".", self.root)
            runs = collect(path) if path.is_dir() else []
        except (ConfigError, OSError, RuntimeError) as exc:  # RuntimeError: a symbolic link loop
            self.notify("danger", f"cannot read {quote(rel)}: {scrub_paths(exc, self.root)}")
            runs, path = [], self.root
        self.runs = runs
        self.data, self.varying = table_data(runs) if runs else ({}, [])
        frame = pd.DataFrame({k: self.data[k] for k in ["run", *self.varying, "status", "epochs_done",
                                                         "final_test", "best_test"]} if runs else {})
        if runs:
            frame["open"] = [open_link(r["dir"], self.root) for r in runs]
            frame["error"] = [scrub_paths(e, self.root) if e else e for e in self.data["error"]]
            frame = frame.rename(columns={"final_test": "final test %", "best_test": "best test %",
                                          "epochs_done": "epochs done"})
        self.table.value = frame
        self.table.height = min(70 + 36 * len(runs), 420)
        self.table.selection = [i for i, r in enumerate(runs) if r["metrics"]][:DEFAULT_SELECTED]
        n_done = self.data.get("status", []).count("done")
        n_failed = self.data.get("status", []).count("failed")
        try:
            where = runroot.relative(path, self.root)
        except (ValueError, OSError, RuntimeError):
            where = "?"
        if runs:
            self.summary.object = (f"<b>{as_html(where)}</b>: <span class='res-count'>{len(runs)}</span> runs, "
                                   f"{n_done} done, {n_failed} failed. <i>open</i> loads a run's checkpoint "
                                   f"into the live trainer (or run <code>spikewb eval RUN/checkpoint.npz</code>).")
        else:
            self.summary.object = (f"No runs in <b>{as_html(where)}</b> (of the run folder, <code>$SPIKEWB_RUNS</code>"
                                   " or <code>runs/</code>)."
                                   " Start one with <code>spikewb sweep --grid \"lr=1e-3,3e-3\" --out "
                                   "runs/sweep</code>.")
        from spikewb.engine.training.sweep import SPECIAL_KEYS
        # hyperparameters first: epochs or data limits rarely answer "which setting is best"
        choices = sorted(self.varying, key=lambda k: (k in SPECIAL_KEYS and k not in ("hidden", "rule"), k))
        self.x_param.options = choices
        if choices:
            self.x_param.value = choices[0]
        self._draw_curves()
        self._draw_param()
        self._sync_url(str(rel))

    def _draw_curves(self) -> None:
        xs, ys, names, colors = [], [], [], []
        for j, i in enumerate(self.table.selection or []):
            if i >= len(self.runs):
                continue
            m = self.runs[i]["metrics"]
            if not m:
                continue
            xs.append(np.array([x["epoch"] for x in m], np.float64))
            ys.append(np.array([100 * x["test_accuracy"] for x in m], np.float64))
            names.append(self.runs[i]["run"][:40])
            colors.append(Category10_10[j % 10])
        self.curve_source.data = dict(xs=xs, ys=ys, run=names, color=colors)
        last = max((float(x[-1]) for x in xs if len(x)), default=1.0)
        self.curves.x_range.update(start=0, end=max(last, 1.0))

    def _draw_param(self) -> None:
        key = self.x_param.value
        if not key or key not in self.data:
            self.param_source.data = dict(x=[], y=[], run=[], label=[])
            self.param_fig.title.text = "best test accuracy vs setting (no setting varies)"
            return
        # runs with an accuracy only (a failed run has none and would only stretch the axis)
        keep = [i for i, v in enumerate(self.data["best_test"]) if np.isfinite(float(v))]
        labels = [str(self.data[key][i]) for i in keep]
        y = [float(self.data["best_test"][i]) for i in keep]
        names = [self.data["run"][i] for i in keep]
        if not keep:
            self.param_source.data = dict(x=[], y=[], run=[], label=[])
            self.param_fig.title.text = f"best test accuracy vs {key} (no finished run)"
            return
        try:
            values = [float(v) for v in labels]
            positive = min(values) > 0
            log_scale = positive and max(values) / min(values) > 20
            x = [math.log10(v) for v in values] if log_scale else values
            lo, hi = min(x), max(x)
            pad = 0.1 * (hi - lo) or 0.5
            self.param_fig.xaxis.ticker = self.param_ticker
            ticks = sorted(set(x))
            self.param_ticker.ticks = ticks
            self.param_fig.xaxis.major_label_overrides = {
                t: (f"{10 ** t:.3g}" if log_scale else f"{t:.4g}") for t in ticks}
            self.param_fig.x_range.update(start=lo - pad, end=hi + pad)
            self.param_fig.xaxis.axis_label = f"{key} (log scale)" if log_scale else key
        except ValueError:  # categorical: one position per value
            cats = sorted(set(labels))
            x = [float(cats.index(v)) for v in labels]
            self.param_fig.xaxis.ticker = self.param_ticker
            self.param_ticker.ticks = [float(i) for i in range(len(cats))]
            self.param_fig.xaxis.major_label_overrides = {float(i): c for i, c in enumerate(cats)}
            self.param_fig.x_range.update(start=-0.5, end=len(cats) - 0.5)
            self.param_fig.xaxis.axis_label = key
        self.param_fig.title.text = f"best test accuracy vs {key}"
        self.param_source.data = dict(x=x, y=y, run=names, label=labels)

    def _sync_url(self, rel: str) -> None:
        loc = pn.state.location
        if loc is None:
            return
        search = "?" + urlencode({"dir": rel}, safe="/") if rel not in ("", ".") else ""
        if loc.search != search:
            loc.search = search

    # ------------------------------------------------------------------ layout
    def __panel__(self):
        return self.main()

    def main(self):
        return pn.Column(
            pn.Row(self.folder, self.reload, sizing_mode="stretch_width"),
            self.messages, self.summary, self.table,
            pn.Row(pn.Column(self.curves, sizing_mode="stretch_width", styles={"flex": "3 1 0"}),
                   pn.Column(self.x_param, self.param_fig, sizing_mode="stretch_width", styles={"flex": "2 1 0"}),
                   sizing_mode="stretch_width"),
            sizing_mode="stretch_width")

    def template(self, title: str = "Spike Workbench \u00b7 sweep results"):
        return pn.template.BootstrapTemplate(title=title, main=[self.main()], header_background="#23395d",
                                             raw_css=[stylesheet()])
