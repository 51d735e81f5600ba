"""STDP window: a pre/post spike pair, the classic window, and Desire BP's desire-signed causal update.

Move the spike timing and watch the weight change; repeat the pairing and watch the weight saturate.
"""

import panel as pn

from spikewb.workbench.pages.teaching import StdpDemo, teaching_page

pn.extension()

teaching_page(StdpDemo()).servable(title="STDP window")
