"""Spike Workbench: the list of apps, each with a picture and one line."""

import panel as pn

from spikewb.workbench.pages.index import page

pn.extension()

page().servable(title="Spike Workbench")
