"""The landing page: every app in ``apps/`` with a thumbnail and its one-line description.

An app's description is the first sentence of its module docstring; its
thumbnail is ``assets/thumbnails/<app>.png`` (made by
``python scripts/make_thumbnails.py`` from screenshots of the running apps).
"""

from __future__ import annotations

import ast
import base64
import html
from pathlib import Path

import panel as pn

from spikewb import package_dir

from spikewb.workbench.pagestate import guard_panel_query

guard_panel_query()  # Panel's own reading of the address must not blank the page

APPS = package_dir("apps")
THUMBS = package_dir("assets") / "thumbnails"
#: Display order; apps not listed come after, alphabetically.
ORDER = ("trainer", "neuron", "stdp", "xor", "mapping", "compare", "results", "dynamics", "sweeps")


def describe(path: Path) -> tuple[str, str]:
    """(title, one line) from an app's module docstring."""
    try:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    except (OSError, SyntaxError):
        doc = ""
    first = doc.strip().split("\n\n")[0].replace("\n", " ")
    title, _, rest = first.partition(":")
    if not rest:
        return path.stem.replace("_", " ").capitalize(), first
    rest = rest.strip()
    return title.strip(), rest[:1].upper() + rest[1:]


def apps() -> list[tuple[str, str, str]]:
    """(route, title, description) for every app, index excluded."""
    found = {p.stem: p for p in APPS.glob("*.py") if not p.name.startswith("_") and p.stem != "index"}
    names = [n for n in ORDER if n in found] + sorted(n for n in found if n not in ORDER)
    return [(n, *describe(found[n])) for n in names]


def _card(route: str, title: str, line: str) -> str:
    thumb = THUMBS / f"{route}.png"
    if thumb.exists():
        img = (f'<img alt="{html.escape(title)}" src="data:image/png;base64,'
               f'{base64.b64encode(thumb.read_bytes()).decode()}">')
    else:
        img = f'<div class="no-thumb">{html.escape(title)}</div>'
    return (f'<a class="app-card" href="./{html.escape(route)}">{img}'
            f'<h3>{html.escape(title)}</h3><p>{html.escape(line)}</p></a>')


CSS = """
.app-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 18px; }
.app-card { display: block; border: 1px solid #d0d7e2; border-radius: 8px; padding: 12px; color: #1b2a41;
            text-decoration: none; background: #fff; }
.app-card:hover, .app-card:focus { border-color: #23395d; box-shadow: 0 2px 8px rgba(0,0,0,.15); outline: none; }
.app-card img { width: 100%; height: 170px; object-fit: cover; object-position: top left; border-radius: 4px; }
.app-card .no-thumb { height: 170px; display: flex; align-items: center; justify-content: center;
                      background: #eef2f7; font-size: 20px; border-radius: 4px; }
.app-card h3 { margin: 10px 0 4px 0; font-size: 18px; }
.app-card p { margin: 0; font-size: 14px; color: #44546a; }
"""


def page():
    cards = "".join(_card(*a) for a in apps())
    intro = pn.pane.Markdown(
        "Train spiking networks with spike-based learning rules and watch them learn: membrane "
        "potentials, spike rasters and the per-neuron learning signal, live. Every page keeps its "
        "setup in its address, so a link reproduces it.", sizing_mode="stretch_width")
    grid = pn.pane.HTML(f'<style>{CSS}</style><div class="app-grid">{cards}</div>', sizing_mode="stretch_width")
    return pn.template.BootstrapTemplate(title="Spike Workbench", main=[intro, grid], header_background="#23395d")
