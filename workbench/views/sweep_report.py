"""Sweep results as Bokeh figures: a sortable run table, overlaid accuracy curves,
and a parameter-vs-accuracy plot.  Used by ``spikewb sweep --report DIR``
(standalone HTML, inline resources, no network needed) and by the results app.
"""

from __future__ import annotations

import json
from pathlib import Path

from bokeh.embed import file_html
from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource, DataTable, Div, HoverTool, TableColumn
from bokeh.palettes import Category10_10
from bokeh.plotting import figure
from bokeh.resources import INLINE

from spikewb.engine.training.sweep import collect

from spikewb.workbench.server.safetext import as_html, display_name, scrub_paths


def _flat(value) -> str:
    return "/".join(map(str, value)) if isinstance(value, list) else str(value)


def table_data(runs: list[dict]) -> tuple[dict[str, list], list[str]]:
    """Columns of the run table (one row per run) and the names of varying keys."""
    keys = sorted({k for r in runs for k in r["config"]})
    varying = [k for k in keys if len({json.dumps(r["config"].get(k)) for r in runs}) > 1]
    data: dict[str, list] = {"run": [], "status": [], "epochs_done": [], "final_test": [], "best_test": [],
                             "error": []}
    for k in varying:
        data[k] = []
    for r in runs:
        m = r["metrics"]
        data["run"].append(r["run"])
        data["status"].append(r["status"].get("status", "pending"))
        data["epochs_done"].append(len(m))
        data["final_test"].append(round(100 * m[-1]["test_accuracy"], 2) if m else float("nan"))
        data["best_test"].append(round(100 * max(x["test_accuracy"] for x in m), 2) if m else float("nan"))
        data["error"].append(r["status"].get("error", ""))
        for k in varying:
            data[k].append(_flat(r["config"].get(k)))
    return data, varying


def build(out: str | Path):
    """The Bokeh layout for the sweep directory ``out``."""
    runs = collect(out)
    data, varying = table_data(runs)
    data["error"] = [scrub_paths(e, out) for e in data["error"]]  # no server folders in a shared report
    src = ColumnDataSource(data)
    cols = [TableColumn(field=k, title=k) for k in ["run", *varying, "status", "epochs_done", "final_test",
                                                     "best_test", "error"]]
    table = DataTable(source=src, columns=cols, sortable=True, width=900, height=min(60 + 28 * len(runs), 400),
                      index_position=None)
    curves = figure(title="Test accuracy per epoch", x_axis_label="epoch", y_axis_label="test accuracy (%)",
                    width=600, height=350, tools="pan,wheel_zoom,box_zoom,reset,save")
    for i, r in enumerate(runs):
        m = r["metrics"]
        if not m:
            continue
        color = Category10_10[i % 10]
        xs = [x["epoch"] for x in m]
        ys = [100 * x["test_accuracy"] for x in m]
        curves.line(xs, ys, color=color, legend_label=r["run"][:40], line_width=2)
        curves.scatter(xs, ys, color=color, size=5)
    if curves.legend:
        curves.legend.location = "bottom_right"
        curves.legend.click_policy = "hide"
        curves.legend.label_text_font_size = "8pt"
    plots = [curves]
    for k in varying:
        vals = data[k]
        try:
            xs = [float(v) for v in vals]
            p = figure(title=f"{k} vs best test accuracy", x_axis_label=k, y_axis_label="best test accuracy (%)",
                       width=350, height=350, x_axis_type="log" if min(xs) > 0 and max(xs) / min(xs) > 20 else "linear")
            s = ColumnDataSource(dict(x=xs, y=data["best_test"], run=data["run"]))
        except ValueError:
            cats = sorted(set(vals))
            p = figure(title=f"{k} vs best test accuracy", x_range=cats, x_axis_label=k,
                       y_axis_label="best test accuracy (%)", width=350, height=350)
            s = ColumnDataSource(dict(x=vals, y=data["best_test"], run=data["run"]))
        p.scatter("x", "y", source=s, size=9)
        p.add_tools(HoverTool(tooltips=[("run", "@run"), ("accuracy", "@y")]))
        plots.append(p)
    n_done = data["status"].count("done")
    n_failed = data["status"].count("failed")
    head = Div(text=f"<h2>Sweep {as_html(display_name(out))}</h2><p>{len(runs)} runs: {n_done} done, "
                    f"{n_failed} failed.</p>")
    return column(head, table, row(*plots))


def write_report(out: str | Path, path: str | Path | None = None) -> Path:
    """Write a standalone HTML report for sweep directory ``out``; returns its path."""
    out = Path(out)
    path = Path(path) if path else out / "report.html"
    doc = file_html(build(out), INLINE, title=f"Sweep {out.name}")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(doc)
    tmp.replace(path)
    return path
