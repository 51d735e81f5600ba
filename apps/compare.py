"""Compare rules: two to four learning rules or settings learning the same samples side by side.

Every pane trains on the same samples in the same order from the same seed; accuracy and loss
of all panes share one plot, and the rasters and learning signals show the same sample.
"""

import panel as pn

from spikewb.workbench.pages.compare import CompareApp

pn.extension(throttled=True)

CompareApp.from_url().template().servable(title="Compare rules")
