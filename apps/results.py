"""Sweep results: a sortable table of a sweep's runs, their accuracy curves, and accuracy against each setting.

Reads the sweep folders under the run folder (``$SPIKEWB_RUNS``, default ``runs/``); ``?dir=NAME``
opens one of them. Each run's checkpoint opens in the live trainer.
"""

import panel as pn

from spikewb.workbench.pages.results import ResultsPage

pn.extension("tabulator")

ResultsPage.from_url().template().servable(title="Sweep results")
