"""Recurrent E/I network dynamics: CUBA and COBA networks of 4 000 LIF neurons, live.

Shows the Vogels-Abbott / Brette 2007 benchmark networks simulated by the numba
engine with a spike raster, population rate, membrane potentials, ISI and CV
histograms; sliders move the network between regular, asynchronous-irregular and
oscillatory regimes.  Serve with ``panel serve apps/dynamics.py``.
"""

import panel as pn

from spikewb.workbench.pages.dynamics import DynamicsView

pn.extension(throttled=True)

view = DynamicsView()
# The Bootstrap template like every other page: FastListTemplate (its FAST design) links the
# "Open Sans" font from fonts.googleapis.com and puts inline onclick handlers into the page,
# which the server's Content-Security-Policy blocks (docs/deployment.md).
pn.template.BootstrapTemplate(title="Spike Workbench: E/I network dynamics", main=[view],
                              main_max_width="1400px", header_background="#23395d").servable()
