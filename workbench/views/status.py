"""Status line and message area of the trainer page.

:class:`StatusView` renders the session's counters (samples, rate, epoch,
accuracies, "frames shown / produced") and the current frame's threshold and
learning rate; every value sits in a ``<span class="wb-...">`` so browser
tests can read it.  :class:`MessageArea` shows the last message of each kind
(errors stay until replaced) and the session's error slot.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource, CustomJS, Div

from spikewb.engine.data.datasets import ASSETS

from spikewb.workbench.server.safetext import as_html, as_markdown, scrub_paths

_CSS_PATH = Path(ASSETS) / "workbench.css"


def stylesheet() -> str:
    """The workbench CSS (``assets/workbench.css``), empty if missing."""
    try:
        return _CSS_PATH.read_text()
    except OSError:
        return ""


_BAR = ("display:flex;flex-wrap:wrap;gap:4px 14px;align-items:baseline;font-size:13px;padding:6px 8px;"
        "background:#f4f6fa;border:1px solid #dde3ec;border-radius:4px;font-variant-numeric:tabular-nums")
_BADGE = "font-weight:600;padding:1px 8px;border-radius:10px;color:white;background:#7f7f7f"
_STATE_COLORS = {"running": "#2ca02c", "paused": "#7f7f7f", "error": "#d62728", "waiting": "#e67e00"}

#: The status line: (css class of the value, label before it, label after it, tooltip).
FIELDS = (
    ("wb-state", "", "", "training state"),
    ("wb-samples", "samples", "", "samples trained since the last reset or rebuild"),
    ("wb-rate", "", "samples/s", "training rate"),
    ("wb-epoch", "epoch", "", "current epoch (0-based)"),
    ("wb-train-acc", "train acc", "", "running training accuracy of this epoch"),
    ("wb-test-acc", "test acc", "", "test accuracy after the last completed epoch"),
    ("wb-frames", "frames shown / produced", "", "frames drawn by this page / full frames published by the trainer"),
    ("wb-vth", "frame v<sub>th</sub>", "", "threshold recorded in the frame on screen"),
    ("wb-lr", "lr", "", "learning rate used for the frame on screen"),
    ("wb-net", "", "", "rule, layer sizes and dataset"),
)

# Writes the values into the static skeleton: a text change inside a fixed element
# costs the browser a small style recalc, while a new Div text re-lays out the page
# (measured ~50 ms per update on the reference machine).
_UPDATE_JS = """
const d = source.data;
let root = div.__wb_root;
if (!root || !root.isConnected) {
  root = null;
  const find = (node) => {
    for (const el of node.querySelectorAll('*')) {
      if (el.shadowRoot) {
        if (el.shadowRoot.querySelector('.wb-status')) return el.shadowRoot;
        const hit = find(el.shadowRoot);
        if (hit) return hit;
      }
    }
    return null;
  };
  root = find(document);
  div.__wb_root = root;
}
if (!root) return;
for (let k = 0; k < d.key.length; k++) {
  const el = root.querySelector('.' + d.key[k]);
  if (el && el.textContent !== d.text[k]) el.textContent = d.text[k];
}
const badge = root.querySelector('.wb-state');
if (badge && d.color.length) badge.style.background = d.color[0];
"""


#: Seconds after which unchanged status values are sent again.
RESEND = 1.0


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %" if x is not None and np.isfinite(x) else "\u2013"


def skeleton(values: dict[str, str] | None = None, color: str | None = None) -> str:
    """The HTML of the status line, with ``values`` (dashes where missing).

    Later values are written into this skeleton by the browser (``_UPDATE_JS``)."""
    values = values or {}
    badge = _BADGE if color is None else _BADGE.replace("#7f7f7f", color)
    parts = []
    for cls, before, after, tip in FIELDS:
        text = as_html(values.get(cls, "\u2013"))
        if cls == "wb-state":
            parts.append(f'<span class="wb-state" style="{badge}" title="{tip}">{text}</span>')
        elif cls == "wb-net":
            parts.append(f'<span class="wb-item" style="color:#555;margin-left:auto" title="{tip}">'
                         f'<span class="wb-net">{text}</span></span>')
        else:
            parts.append(f'<span class="wb-item" title="{tip}">{before} <b class="{cls}">{text}</b> {after}</span>')
    return f'<div class="wb-status" style="{_BAR}">' + "".join(parts) + "</div>"


class StatusView(pn.viewable.Viewer):
    """One line of live counters and readouts.

    The line is a static :class:`~bokeh.models.Div` skeleton; the values
    travel in a tiny :class:`~bokeh.models.ColumnDataSource` (``key``,
    ``text``) and a ``CustomJS`` callback writes them into the skeleton's
    ``<span>`` elements.  Replacing the Div's text instead would make Bokeh
    lay out the whole page again on every update.  Each value keeps a CSS
    class (``wb-samples``, ``wb-vth``, ...) for browser tests.
    """

    def __init__(self, **params):
        super().__init__(**params)
        self.div = Div(text=skeleton(), sizing_mode="stretch_width", css_classes=["wb-status-pane"],
                       name="wb-status")
        self.source = ColumnDataSource(data=dict(key=[], text=[], color=[], n=[]), name="wb-status-data")
        self.source.js_on_change("data", CustomJS(args=dict(source=self.source, div=self.div), code=_UPDATE_JS))
        self.div.tags = [self.source]  # keeps the source in the document
        self.pane = pn.pane.Bokeh(self.div, sizing_mode="stretch_width", margin=(0, 5))
        self._last = None
        self._sent_at = 0.0
        self._sends = 0
        self._frame = None
        self.values: dict[str, str] = {}

    def __panel__(self):
        return self.pane

    def remember(self, snap) -> None:
        """Keep the newest snapshot for the next (rate-limited) update."""
        self._frame = snap

    def update(self, session, snap=None) -> None:
        if snap is not None:
            self._frame = snap
        snap = self._frame
        if snap is not None and snap.generation != session.generation:
            snap = None
        if session.error:
            state, cls = "stopped on error", "error"
        elif session.running:
            state, cls = "training", "running"
        elif getattr(session, "waiting", False):  # every training slot of the server is taken
            state, cls = session.waiting_text(), "waiting"
        elif getattr(session, "notice", ""):  # paused by itself (idle timeout)
            state, cls = "paused (idle)", "paused"
        else:
            state, cls = "paused", "paused"
        f = snap.frame if snap is not None else None
        test = snap.history[-1].test_accuracy if snap is not None and snap.history else float("nan")
        dash = "\u2013"
        values = {
            "wb-state": state,
            "wb-samples": str(session.samples),
            "wb-rate": f"{session.samples_per_s:.0f}",
            "wb-epoch": str(session.epoch),
            "wb-train-acc": _pct(f.accuracy) if f else dash,
            "wb-test-acc": _pct(test),
            "wb-frames": f"{session.frames_shown} / {session.frames_produced}",
            "wb-vth": f"{f.v_th:.4g}" if f else dash,
            "wb-lr": f"{f.lr:.3g}" if f else dash,
            "wb-net": f"{session.rule_name} \u00b7 {session.network} \u00b7 {session.dataset}",
        }
        key = (tuple(values.items()), cls)
        now = time.monotonic()
        # unchanged values are re-sent once a second: a page that connected after the last
        # change (its skeleton still shows dashes) gets filled in that way
        if key == self._last and now - self._sent_at < RESEND:
            return
        self._last, self._sent_at = key, now
        self._sends += 1
        self.values = values
        if self._sends == 1:  # the first values go into the HTML itself: a page shows them at once
            self.div.text = skeleton(values, _STATE_COLORS[cls])
        self.source.data = dict(key=list(values), text=list(values.values()),
                                color=[_STATE_COLORS[cls]] * len(values), n=[self._sends] * len(values))


class MessageArea(pn.viewable.Viewer):
    """The last message (success / info / warning / danger) and the session error."""

    def __init__(self, **params):
        super().__init__(**params)
        self.alert = pn.pane.Alert("", alert_type="info", visible=False, sizing_mode="stretch_width",
                                   margin=(0, 5), css_classes=["wb-message"])
        self.error = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width",
                                   margin=(0, 5), css_classes=["wb-session-error"])
        self.warning = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width",
                                     margin=(0, 5), css_classes=["wb-warning"])
        self._shown_at = 0.0
        self._kind = None
        self._error_text = None
        self._warning_text = None
        self._notice = ""
        self._waiting = False

    def __panel__(self):
        return pn.Column(self.error, self.alert, self.warning, sizing_mode="stretch_width", margin=0)

    def show(self, kind: str, text: str) -> None:
        """Show a message (plain text, shown literally); ``kind`` is an alert type (success, info, warning, danger)."""
        self._show(kind, as_markdown(text))

    def show_list(self, kind: str, items) -> None:
        """Show several messages (plain text each) as one bulleted notice."""
        self._show(kind, "\n".join(f"* {as_markdown(t)}" for t in items))

    def _show(self, kind: str, markdown: str) -> None:
        self.alert.param.update(object=markdown, alert_type=kind, visible=True)
        self._shown_at = time.monotonic()
        self._kind = kind

    def update(self, session, snap=None) -> None:
        """Mirror the session's error slot and warnings; let success / info messages fade after 8 s."""
        notice, waiting = getattr(session, "notice", ""), bool(getattr(session, "waiting", False))
        if notice != self._notice:  # paused by itself (idle timeout)
            self._notice = notice
            if notice:
                self.show("warning", f"Training {notice}.")
        if waiting != self._waiting:
            self._waiting = waiting
            if waiting:
                self.show("info", "Every training slot of this server is in use: this session waits and "
                                  "starts training by itself when one frees (Pause leaves the queue).")
        err = session.error
        if err != self._error_text:
            self._error_text = err
            if err:
                self.error.object = (f"**Training stopped:** {as_markdown(scrub_paths(err))}  \n"
                                     "Change the settings and press **Reset** to continue.")
            self.error.visible = bool(err)
        warn = "; ".join(snap.warnings) if snap is not None and snap.warnings else None
        if snap is not None and warn != self._warning_text:
            self._warning_text = warn
            if warn:
                self.warning.object = as_markdown(warn)
            self.warning.visible = bool(warn)
        if self.alert.visible and self._kind in ("success", "info") and time.monotonic() - self._shown_at > 8:
            self.alert.visible = False
