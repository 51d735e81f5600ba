"""Recurrent E/I network dynamics: CUBA and COBA networks of 4 000 LIF neurons, live.

Shows the Vogels-Abbott / Brette 2007 benchmark networks simulated by the numba
engine with a spike raster, population rate, membrane potentials, ISI and CV
histograms; sliders move the network between regular, asynchronous-irregular and
oscillatory regimes.  Serve with ``panel serve apps/dynamics.py``.
"""

import panel as pn

from workbench.dynamics_view import DynamicsView

pn.extension(throttled=True)

view = DynamicsView()
pn.template.FastListTemplate(title="Spike Workbench: E/I network dynamics", main=[view],
                             main_max_width="1400px").servable()
