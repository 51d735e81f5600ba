"""Spike-train mapping: a three-layer network learns to turn Poisson inputs into a target spike train (NormAD).

The target is made by a teacher network, so it is reachable; the correlation with it rises
towards 1 as training goes on.
"""

import panel as pn

from spikewb.workbench.pages.spiketask import SpikeTaskDemo
from spikewb.workbench.pages.teaching import teaching_page

pn.extension()

teaching_page(SpikeTaskDemo(task="mapping")).servable(title="Spike-train mapping with NormAD")
