"""Single neuron: how leak, threshold, reset and refractoriness shape one LIF neuron's response.

Discrete (the engine's step-based LIF) and continuous (NormAD's conductance-free LIF in mV/ms)
forms; constant, Poisson or hand-placed input; the f-I curve against its closed form.
"""

import panel as pn

from spikewb.workbench.pages.teaching import NeuronDemo, teaching_page

pn.extension(throttled=True)

teaching_page(NeuronDemo()).servable(title="Single LIF neuron")
