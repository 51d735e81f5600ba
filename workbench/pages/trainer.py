"""The live training workbench: one session, its controls and all live views.

:class:`TrainerWorkbench` is what ``apps/trainer.py`` serves.  Per browser
session it creates one :class:`~spikewb.workbench.sessions.session.TrainingSession` (worker
thread), one :class:`~spikewb.workbench.views.controls.ControlPanel`, the views, and one
periodic callback (``refresh_hz``, 10 Hz by default) that pulls the newest
snapshot and updates every view inside one ``pn.io.hold()`` block.  An
exception in a view is caught and shown in the page (the other views keep
updating); closing the tab stops the callback and the worker thread
(``pn.state.on_session_destroyed``).

With a reattach window (``spikewb serve --reconnect S``, see
:mod:`spikewb.workbench.server.reconnect`) a page that closes or reloads parks its session
instead of stopping it, and the next trainer page of the same browser within
``S`` seconds takes it over (the URL setup is then ignored).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import panel as pn
import param

from spikewb.engine.data.datasets import ASSETS

from spikewb.workbench import urlstate

from spikewb.workbench.server import reconnect
from spikewb.workbench.pagestate import ignored, parse_float, parse_int
from spikewb.workbench.server.safetext import scrub_paths
from spikewb.workbench.views.controls import ControlPanel
from spikewb.workbench.sessions.session import TrainingSession
from spikewb.workbench.views.base import LivePage, start_periodic, stop_periodic
from spikewb.workbench.views.inputs import InputView
from spikewb.workbench.views.metrics import MetricsView
from spikewb.workbench.views.output import OutputView
from spikewb.workbench.views.raster import RasterView
from spikewb.workbench.views.signal import SignalView
from spikewb.workbench.views.status import MessageArea, StatusView, stylesheet
from spikewb.workbench.views.traces import TraceView
from spikewb.workbench.views.weights import WeightsView
from spikewb.workbench.views.inspector import InspectorView
from spikewb.workbench.views.gradients import GradientRasterView
from spikewb.workbench.views.tausweep import TauSweepPanel

log = logging.getLogger(__name__)

TUTORIAL = Path(ASSETS) / "tutorials" / "trainer.md"
#: Seconds without any browser connection after which a session's worker is stopped
#: (a timer started when the server sees the websocket close; see ``_hook_disconnect``).
DISCONNECT_GRACE = 0.5
#: Largest share of wall time one view's updates may take: a view slower than this share
#: of the refresh period is updated less often.  Server-side view work holds the GIL the
#: training worker needs, so a slow view costs training throughput directly.
VIEW_BUDGET = 0.1
#: A throttled view is never left more than this many seconds behind.
MAX_VIEW_DELAY = 2.0
#: Updates per second of the status line (a text change costs the browser ~10 ms).
STATUS_RATE = 5.0


class TrainerWorkbench(LivePage, pn.viewable.Viewer):
    """Controls + live views for one training session.

    Displayed in a notebook (or ``.show()``, ``.servable()``) it is the whole page,
    training live (:class:`~spikewb.workbench.views.base.LivePage`); served,
    :meth:`template` adds the page header.
    """

    SIDEBAR_WIDTH = 340

    refresh_hz = param.Number(5.0, bounds=(1.0, 30.0), label="View refresh (Hz)",
                              doc="Rate of the page's periodic callback (URL option ?refresh=). Each plot "
                                  "update costs a software-rendered browser 10-30 ms of main-thread time; "
                                  "at 5 Hz the page uses about a third of a core, leaving the other core to "
                                  "training on a 2-core machine (see docs/apps/trainer.md).")
    sync_url = param.Boolean(True, doc="Keep the setup in the page URL (shareable link).")

    def __init__(self, session: TrainingSession | None = None, setup: dict | None = None, *,
                 rule: str | None = None, dataset: str | None = None, hidden=None, seed: int | None = None,
                 **params):
        """A workbench on ``session``, or on a new session built from the setup.

        In a notebook or script name the setup directly, e.g.
        ``TrainerWorkbench(rule="stidi", hidden=[200], dataset="fashion-5k")``;
        a bad value raises (a served page's ``setup`` comes from its URL and falls
        back to the defaults with a notice instead).
        """
        super().__init__(**params)
        named = {k: v for k, v in dict(rule=rule, dataset=dataset, hidden=hidden, seed=seed).items()
                 if v is not None}
        if session is None and named:
            session = TrainingSession.served(**urlstate.session_kwargs({**(setup or {}), **named}))
        self.url_problems: list[str] = []
        #: Seconds a page that goes away leaves its training parked (0: stop it at once).
        self.reconnect_s = 0.0
        #: This page's token in the reattach registry (None: reattaching is off).
        self._token: str | None = None
        self._release_lock = threading.Lock()
        self._released = False
        #: True when this page took over a running session of an earlier page.
        self.reattached = False
        self._replay = None
        if session is None:
            session = self._reattach()
        if session is None:
            kwargs = urlstate.session_kwargs(setup or {})
            try:  # served: the server's training slots and limits (workbench/server/limits.py)
                session = TrainingSession.served(**kwargs)
            except Exception as exc:  # a bad URL must not break the page: fall back to defaults
                self.url_problems.append(f"setup from the URL refused ({scrub_paths(exc)}); using the defaults")
                session = TrainingSession.served()
        self.session = session
        # publish a little faster than the page refreshes so each tick finds a new frame
        self.session.publish_interval = 0.5 / float(self.refresh_hz)
        self.messages = MessageArea()
        self.status = StatusView()
        self.controls = ControlPanel(self.session, notify=self.messages.show,
                                     recent_frames=lambda: [snap.frame for snap in self.inspector.buffer.items()])
        self.input_view = InputView()
        self.raster_view = RasterView()
        self.trace_view = TraceView()
        self.signal_view = SignalView()
        self.output_view = OutputView()
        self.metrics_view = MetricsView()
        self.weights_view = WeightsView()
        self.inspector = InspectorView(self.session)
        # rule-specific parts: they show themselves only for their rule
        self.gradient_view = GradientRasterView(visible=self.session.rule_name == "ssnn")
        self.tau_sweep = TauSweepPanel(self.session)
        self.views = [self.input_view, self.output_view, self.weights_view, self.raster_view,
                      self.trace_view, self.signal_view, self.metrics_view, self.inspector]
        self.views += [self.gradient_view, self.tau_sweep]
        self._callback = None
        self._view_errors: dict[str, str] = {}
        self._view_due: dict[int, float] = {}
        #: Per throttled view, the newest snapshot it skipped (delivered when it is due).
        self._view_pending: dict[int, object] = {}
        self._status_due = 0.0
        #: Seconds spent in each view's update (diagnostics, benchmarks).
        self.view_seconds: dict[str, float] = {}
        self._last_setup = None
        self._was_connected = False
        self._disconnected_since = None
        self.ticks = 0
        self.tick_seconds = 0.0
        for p in self.url_problems:
            self.messages.show("warning", p)
        if self.reconnect_s > 0:
            self._token = reconnect.attach_page(self.session, pn.state.curdoc)  # HttpOnly cookies
        #: Shown at the first update after the browser connected (a page can take seconds to
        #: load, and info messages fade 8 s after they are shown).
        self._reattach_note = (f"Reattached to your running training ({self.session.samples:,} samples so "
                               "far); the setup in the link was not applied." if self.reattached else None)
        self.status.update(self.session)  # the page opens with the values, not dashes

    def _reattach(self) -> TrainingSession | None:
        """The running session this browser left (cookie token), when served with a reattach window."""
        doc = pn.state.curdoc
        if doc is None or doc.session_context is None:
            return None
        from spikewb.workbench.server.limits import server_limits
        self.reconnect_s = float(server_limits().reconnect_s)
        if self.reconnect_s <= 0:
            return None
        session = reconnect.claim_page(doc)  # token cookie + browser id, both HttpOnly
        if session is None:
            return None
        log.info("page reattached to a running training session (%d samples)", session.samples)
        # the earlier page's inspector recording belongs to a page that is gone
        session.observers[:] = []
        session.set_extra_record()
        session.touch()
        self.reattached = True
        self._replay = session.latest  # the earlier page took it: show it once, training may be paused
        return session

    # ------------------------------------------------------------------ factory
    @classmethod
    def from_url(cls, **params) -> "TrainerWorkbench":
        """A workbench whose setup comes from the page URL (problems are shown in the page)."""
        query = urlstate.read_location()
        inspect = query.pop("inspect", None)
        checkpoint = query.pop("checkpoint", None)  # a file in the run folder (results page links)
        setup, problems = urlstate.from_query(query)
        refresh = urlstate.query_value(query, "refresh")
        if refresh is not None and "refresh_hz" not in params:  # page option (benchmarks, slow machines)
            try:
                params["refresh_hz"] = min(max(parse_float(refresh), 1.0), 30.0)
            except ValueError as exc:
                problems.append(ignored("refresh", refresh, f"{exc}: a rate in Hz"))
        wb = cls(setup=setup, **params)
        if wb.reattached:  # the running training is kept: nothing of the link is applied
            return wb
        if checkpoint is not None:
            problem = wb.checkpoint_from_url(checkpoint)
            if problem:
                problems.append(problem)
        if inspect is not None:
            problem = wb.inspect_from_url(inspect)
            if problem:
                problems.append(problem)
        wb.url_problems.extend(problems)
        if wb.url_problems:  # one notice listing everything the link asked for and did not get
            wb.messages.show_list("warning", wb.url_problems)
        return wb

    # ------------------------------------------------------------------ server hooks
    def start(self) -> None:
        """Start the periodic callback and register the teardown (inside a server session)."""
        if self._callback is not None:
            return
        self._callback = start_periodic(self.tick, self.refresh_hz, self._session_destroyed)
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:
            doc.on_change(self._browser_activity)  # idle timeout (workbench/server/limits.py)
            if self._token is not None:
                self._install_reattach_cookie(doc)

    def _install_reattach_cookie(self, doc) -> None:
        """Tell the server when this page goes away (``beforeunload`` / ``pagehide``).

        The token and browser cookies are set by the server, HttpOnly (page script
        cannot read them; workbench/server/reconnect.py); the page only sends its token to
        ``POST /reattach``, which marks the page as leaving so that the next page of
        the same browser takes the training over (a second tab beside a live page
        does not).  Because a reload requests the new page before the beacon may have
        arrived, the script also sets a 15-second cookie with the page's public id
        (not its token) on ``beforeunload``; the new page's request carries it.
        Never part of the URL.
        """
        from bokeh.models import CustomJS

        page_id = reconnect.registry().page_id(self._token) or ""
        code = f"""
const token = {json.dumps(self._token)};
const pageId = {json.dumps(page_id)};
let sent = false;
const leave = () => {{
  if (sent) return;
  sent = true;
  // before the next page is requested (a reload asks for it before this page's beacon may
  // have arrived): this page's public id in a short-lived cookie marks it as leaving
  document.cookie = "{reconnect.LEAVING_COOKIE}=" + pageId + "; path=/; max-age=15; samesite=strict" +
                    (location.protocol === "https:" ? "; secure" : "");
  const url = new URL("reattach", location.href.replace(/[^/]*([?#].*)?$/, "")).href;
  if (!(navigator.sendBeacon && navigator.sendBeacon(url, token))) {{
    fetch(url, {{method: "POST", body: token, keepalive: true, credentials: "same-origin"}});
  }}
}};
window.addEventListener("beforeunload", leave);
window.addEventListener("pagehide", leave);
"""
        doc.js_on_event("document_ready", CustomJS(code=code))

    def _browser_activity(self, event) -> None:
        """A change the browser sent (widget value, ...) restarts the session's idle timer."""
        from bokeh.server.session import ServerSession
        if isinstance(getattr(event, "setter", None), ServerSession):
            self.session.touch()

    def _session_destroyed(self, session_context) -> None:
        self.close()

    def _watch_connection(self) -> None:
        """Close the session ``DISCONNECT_GRACE`` s after its last browser connection went away.

        Bokeh destroys an unused session only after ``unused_session_lifetime``
        (15 s by default, and it must be long enough for a slow first page
        load); the worker would train for nobody until then.
        """
        doc = pn.state.curdoc
        ctx = getattr(doc, "session_context", None) if doc is not None else None
        server_session = getattr(ctx, "_session", None)
        count = getattr(server_session, "connection_count", None)
        if count is None:
            return
        if not getattr(self, "_hooked", False):
            self._hooked = True
            self._hook_disconnect(server_session)
        now = time.monotonic()
        if count > 0:
            self._was_connected = True
            self._disconnected_since = None
        elif self._was_connected:
            if self._disconnected_since is None:
                self._disconnected_since = now
            elif now - self._disconnected_since > DISCONNECT_GRACE:
                self.close()

    def _hook_disconnect(self, server_session) -> None:
        """Stop the worker ``DISCONNECT_GRACE`` s after the page's last connection closed,
        from a timer thread: it does not wait for the next tick, which a busy server delays
        (the tick's own check stays as the fallback and stops the periodic callback)."""
        unsubscribe = server_session.unsubscribe

        def gone():
            if server_session.connection_count == 0 and self.session.alive:
                self._release_session()

        def on_unsubscribe(connection):
            unsubscribe(connection)
            if server_session.connection_count == 0:
                timer = threading.Timer(DISCONNECT_GRACE, gone)
                timer.daemon = True
                timer.start()

        server_session.unsubscribe = on_unsubscribe

    def close(self) -> None:
        """Stop the periodic callback and let go of the session (:meth:`_release_session`)."""
        cb, self._callback = self._callback, None
        self.tau_sweep.close()
        stop_periodic(cb)
        self._release_session()

    def _release_session(self) -> None:
        """What happens to the session when this page goes away (every teardown path, once).

        Without a reattach window: stop the worker.  With one: park a healthy
        session that has trained (alive, no error, at least one sample) in
        :func:`reconnect.registry` for ``reconnect_s`` seconds; leave alone a
        session a newer page claimed; stop anything else.  A page closed before
        it trained parks nothing: its setup is in its link, and an idle parked
        session would only hold a worker thread and memory for the window.
        """
        with self._release_lock:
            if self._released:
                return
            self._released = True
        token = self._token
        if token is None:
            log.info("page gone: stopping its training worker")
            self.session.close()
            return
        reg = reconnect.registry()
        if not reg.owns(token, self.session):
            log.info("training session taken over by a newer page: left running")
            return
        if self.session.alive and not self.session.error and self.session.samples > 0:
            self.inspector.close()  # stop this page's extra recording
            if reg.park(token, self.session, self.reconnect_s):
                log.info("training session parked for %.0f s (reattach window)", self.reconnect_s)
            return  # parked, or claimed in the meantime
        reg.forget(token, self.session)
        log.info("page gone: stopping its training worker")
        self.session.close()

    @property
    def owns_session(self) -> bool:
        """False once a newer page took this page's session over (reattach)."""
        return self._token is None or reconnect.registry().owns(self._token, self.session)

    # ------------------------------------------------------------------ periodic
    def tick(self) -> None:
        """Pull the newest snapshot and update every view (one hold block)."""
        t0 = time.perf_counter()
        if not self.owns_session:  # reloaded: the new page shows this training now
            self.messages.show("warning", "This training continues in a newer page of this browser.")
            self.close()
            return
        try:
            snap = self.session.take()
            if snap is None and self._replay is not None:
                snap = self._replay
            self._replay = None
            if self._reattach_note is not None and self._was_connected:
                self.messages.show("info", self._reattach_note)
                self._reattach_note = None
            with pn.io.hold():
                if snap is not None:
                    for view in self.views:
                        self._update_view(view, snap)
                elif self._view_pending:  # throttled views catch up once training stops publishing
                    for view in self.views:
                        pending = self._view_pending.get(id(view))
                        if pending is not None and pending.generation != self.session.generation:
                            self._view_pending.pop(id(view), None)  # from before a reset / rebuild
                        elif pending is not None:
                            self._update_view(view, pending)
                if t0 >= self._status_due:
                    self._status_due = t0 + 1.0 / STATUS_RATE - 0.5 / float(self.refresh_hz)
                    self.status.update(self.session, snap)
                elif snap is not None:
                    self.status.remember(snap)
                self.messages.update(self.session, snap)
                self.controls.poll()
                if self.sync_url:
                    self._sync_url()
        except Exception as exc:  # never silent: show it in the page
            log.exception("periodic update failed")
            self.messages.show("danger", f"Display update failed: {type(exc).__name__}: {exc}")
        self.ticks += 1
        self.tick_seconds += time.perf_counter() - t0
        self._watch_connection()

    def _update_view(self, view, snap) -> None:
        """Update one view; a view slower than ``VIEW_BUDGET`` of the refresh period
        is updated less often, so it cannot starve the others (or the trainer)."""
        name = type(view).__name__
        t0 = time.perf_counter()
        if t0 < self._view_due.get(id(view), 0.0):
            # keep the newest skipped snapshot: after a pause or a step no newer one may come
            self._view_pending[id(view)] = snap
            return
        self._view_pending.pop(id(view), None)
        try:
            view.update(snap)
            cost = time.perf_counter() - t0
            budget = VIEW_BUDGET / float(self.refresh_hz)
            due = t0 + min(cost * (1.0 / VIEW_BUDGET), MAX_VIEW_DELAY) if cost > budget else 0.0
            rate = getattr(view, "max_rate", None)
            if rate:
                due = max(due, t0 + 1.0 / float(rate) - 0.5 / float(self.refresh_hz))
            self._view_due[id(view)] = due
            self.view_seconds[name] = self.view_seconds.get(name, 0.0) + cost
        except Exception as exc:
            text = f"{name} failed: {type(exc).__name__}: {exc}"
            if self._view_errors.get(name) != text:
                self._view_errors[name] = text
                log.exception("view update failed")
                self.messages.show("danger", text)
        else:
            self._view_errors.pop(name, None)

    def checkpoint_from_url(self, value) -> str | None:
        """Load ``?checkpoint=REL`` (relative to the run folder, never outside it); returns a problem or None."""
        from spikewb.workbench.server.runs import checkpoint_path, run_root
        text = urlstate.query_value({"c": value}, "c") or ""
        try:
            message = self.session.load_checkpoint(checkpoint_path(text)).result(timeout=60)
        except Exception as exc:
            return ignored("checkpoint", text, scrub_paths(exc, run_root()))
        self.messages.show("info", message)
        return None

    def inspect_from_url(self, value) -> str | None:
        """Select the inspected neuron from a URL value ``"layer:index"``; returns a problem or None."""
        text = urlstate.query_value({"i": value}, "i") or ""
        try:
            parts = text.split(":")
            if len(parts) != 2:
                raise ValueError("expected layer:index")
            layer, index = parse_int(parts[0]), parse_int(parts[1])
            sizes = self.session.sizes
            if not (1 <= layer < len(sizes) and 0 <= index < sizes[layer]):
                raise ValueError(f"no neuron {layer}:{index} in {'-'.join(map(str, sizes))}")
        except ValueError as exc:
            return ignored("inspect", text, f"{exc}; expected layer:index")
        self.inspector.select(layer, index)
        return None

    def _sync_url(self) -> None:
        setup = urlstate.setup_of(self.session)
        if self.inspector.active:
            setup["inspect"] = f"{self.inspector.layer}:{self.inspector.index}"
        if not self.session.dataset.startswith("upload:") and setup != self._last_setup:
            self._last_setup = setup
            urlstate.write_location(setup)

    # ------------------------------------------------------------------ layout
    def main(self):
        """The main area: status, messages and the views."""
        card = dict(sizing_mode="stretch_width", margin=(4, 4))
        return pn.Column(
            self.status,
            self.messages,
            pn.Row(pn.Column(self.input_view, margin=(4, 4)), pn.Column(self.output_view, **card),
                   pn.Column(self.weights_view, margin=(4, 4)), sizing_mode="stretch_width"),
            pn.Row(pn.Column(self.raster_view, **card, styles={"flex": "2 1 0"}),
                   pn.Column(self.trace_view, self.signal_view, **card, styles={"flex": "1.4 1 0"}),
                   sizing_mode="stretch_width"),
            self.gradient_view,
            pn.Row(pn.Column(self.metrics_view, **card), sizing_mode="stretch_width"),
            pn.Card(self.inspector, title="Neuron inspector: where a neuron's error comes from",
                    collapsed=False, sizing_mode="stretch_width", margin=(4, 4), css_classes=["inspector-card"]),
            self.tau_sweep,
            sizing_mode="stretch_width",
        )

    def sidebar(self):
        """The controls (and the short how-to)."""
        items = [self.controls]
        if TUTORIAL.is_file():
            items.append(pn.Card(pn.pane.Markdown(TUTORIAL.read_text(), sizing_mode="stretch_width"),
                                 title="How to use", collapsed=True, sizing_mode="stretch_width", margin=(6, 0)))
        return pn.Column(*items, sizing_mode="stretch_width", margin=0)

    def template(self, title: str = "Spike Workbench \u00b7 live training"):
        """The whole page in a ``pn.template.BootstrapTemplate``; starts the callback when served."""
        tmpl = pn.template.BootstrapTemplate(
            title=title, sidebar=[self.sidebar()], main=[self.main()], sidebar_width=340,
            header_background="#23395d", raw_css=[stylesheet()])
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            self.start()
        return tmpl
