"""Live training workbench: pick a learning rule, press Train, watch the network learn.

Serve with ``spikewb serve`` or ``panel serve apps/trainer.py``.  Every browser
tab gets its own training session (worker thread); the setup is kept in the
page URL so a link restores it.
"""

import panel as pn

from spikewb.workbench.pages.trainer import TrainerWorkbench

pn.extension(throttled=True)

TrainerWorkbench.from_url().template().servable(title="Spike Workbench")
