"""Spike XOR: a two-layer network learns XOR on spike patterns with NormAD, live.

Watch the output neuron's potential and its error marks until each pattern's output spike
sits within 1 ms of its target.
"""

import panel as pn

from spikewb.workbench.pages.spiketask import SpikeTaskDemo
from spikewb.workbench.pages.teaching import teaching_page

pn.extension()

teaching_page(SpikeTaskDemo(task="xor")).servable(title="Spike XOR with NormAD")
