"""Serve the workbench apps (``apps/*.py``) with Panel.

:func:`serve` is what ``spikewb serve`` calls; ``panel serve apps/trainer.py``
serves the same page.  Each browser tab gets its own training session; a tab
that closes stops its worker within about 1.5 s (the page watches its
connection) and its Bokeh session is cleaned up after
``unused_session_lifetime`` ms.

The limits of :mod:`spikewb.workbench.server.limits` (training slots, network size, T,
memory, idle timeout) are passed to the apps through ``SPIKEWB_*``
environment variables, so ``panel serve apps/*.py`` honours them too.
``GET /health`` answers a small JSON document (live sessions, training and
waiting counts, parked sessions, worker threads, resident memory) for
monitoring and tests.  With ``reconnect_s`` above 0 a closed or reloaded
trainer tab leaves its training parked for that long (:mod:`spikewb.workbench.server.reconnect`).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets
import threading
from pathlib import Path

from tornado.web import OutputTransform, RequestHandler

from spikewb import package_dir

log = logging.getLogger(__name__)

#: Where the app scripts live (``spikewb/apps`` in a wheel, ``apps/`` in a checkout).
APPS_DIR = package_dir("apps")


def app_files(apps_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """``{route name: script}`` for every ``*.py`` in the apps folder (not starting with ``_``)."""
    directory = Path(apps_dir) if apps_dir is not None else APPS_DIR
    if not directory.is_dir():
        raise FileNotFoundError(f"apps folder not found: {directory}")
    apps = {p.stem: p for p in sorted(directory.glob("*.py")) if not p.name.startswith("_")}
    if not apps:
        raise FileNotFoundError(f"no apps (*.py) in {directory}")
    return apps


def rss_mb() -> float:
    """Resident memory of this process in MB (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``).

    A closed page frees thousands of small objects (its Bokeh document, its views);
    without the trim the process keeps those pages and its resident size stays at
    its peak after many pages closed."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class _Trimmer:
    """Calls :func:`release_memory` after browser sessions ended (checked every ``period`` s)."""

    def __init__(self):
        self.last = 0

    def __call__(self) -> None:
        from spikewb.workbench.sessions.session import _SESSIONS
        n = len(_SESSIONS)
        if n < self.last:
            release_memory()
            n = len(_SESSIONS)
        self.last = n


def health(bokeh_sessions: int | None = None) -> dict:
    """What ``GET /health`` reports: this process's sessions, slots and memory."""
    from spikewb.workbench.server.limits import server_limits, training_pool
    from spikewb.workbench.server.reconnect import registry
    from spikewb.workbench.sessions.session import live_sessions

    pool = training_pool()
    training, waiting = pool.counts()
    sessions = live_sessions()
    workers = sorted(t.name for t in threading.enumerate() if t.name.startswith("spikewb-session-"))
    out = {
        "status": "ok",
        "pid": os.getpid(),
        "rss_mb": round(rss_mb(), 1),
        "sessions": len(sessions),
        "running": sum(1 for x in sessions if x.running),
        "training": training,
        "waiting": waiting,
        "parked": registry().count(),
        "slots": pool.size,
        "workers": workers,
        "session_objects": len(_session_objects()),
        "limits": server_limits().param.values() | {"name": None},
    }
    out["limits"].pop("name", None)
    if bokeh_sessions is not None:
        out["bokeh_sessions"] = bokeh_sessions
    return out


def _session_objects():
    from spikewb.workbench.sessions.session import _SESSIONS
    return list(_SESSIONS)


class HealthHandler(RequestHandler):
    """``GET /health``: JSON with the counts of :func:`health` (never creates a session)."""

    def get(self) -> None:
        n = None
        try:  # the Bokeh application contexts of this server hold the live browser sessions
            n = sum(len(ctx.sessions) for ctx in self.application._applications.values())
        except Exception:
            pass
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.write(json.dumps(health(n)))


def check_link(query: dict) -> dict:
    """What a trainer page opened with this query would use and say, without opening one.

    ``query`` maps names to values (str or bytes, or lists of them, as Tornado and
    ``pn.state.session_args`` give them).  Returns ``{"setup": ..., "problems": [...]}``:
    the setup the page would apply (``{}``: the defaults) and the messages the page
    would show (empty when the link is fine).  The same code path as the page: :func:`urlstate.from_query`,
    then the session's validation and the server limits.
    """
    from spikewb.workbench import urlstate
    from spikewb.workbench.sessions.session import TrainingSession

    query = dict(query)
    query.pop("inspect", None)
    setup, problems = urlstate.from_query(query)
    try:
        session = TrainingSession.served(**urlstate.session_kwargs(setup), autostart=False)
    except Exception as exc:
        problems.append(f"setup from the URL refused ({exc}); using the defaults")
        setup = {}
    else:
        session.close()
    return {"setup": json.loads(json.dumps(setup, default=str)), "problems": problems}


class CheckLinkHandler(RequestHandler):
    """``GET /check-link?<query>``: JSON of :func:`check_link` for a trainer link's query."""

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.write(json.dumps(check_link(self.request.query_arguments)))


# ---------------------------------------------------------------------------- security headers
#: ``script-src`` besides the per-response nonce: the server's own script files ('self') and
#: 'unsafe-eval', which BokehJS needs to run ``CustomJS`` callbacks (it compiles their code with
#: ``new Function``; the workbench's copy-link buttons and the trainer's connection watch use them).
#: No 'unsafe-inline': an inline ``<script>`` or ``on...=`` handler that did not come in the
#: server's own page (every such tag gets the response's nonce) does not run.
SCRIPT_SRC = "'self' 'unsafe-eval'"
#: The policy; ``{nonce}`` is filled in per response.  ``style-src`` must allow 'unsafe-inline':
#: Bokeh and Panel style every component with inline ``<style>`` elements and ``style`` attributes.
CSP = ("default-src 'self'; "
       "script-src {script_src}; "
       "style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; "
       "font-src 'self' data:; "
       "connect-src 'self'; "
       "worker-src 'self' blob:; "
       "object-src 'none'; "
       "base-uri 'self'; "
       "form-action 'self'; "
       "frame-ancestors 'none'")
#: Headers on every response of ``spikewb serve`` besides the CSP.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers without CSP level 2
}
_SCRIPT_TAG = re.compile(rb"<script(?=[\s>])", re.IGNORECASE)


def content_security_policy(nonce: str | None = None) -> str:
    """The CSP header value; with a ``nonce``, inline scripts carrying it may run.

    >>> "'unsafe-inline'" in content_security_policy("abc").split("script-src", 1)[1].split(";")[0]
    False
    >>> "'nonce-abc'" in content_security_policy("abc")
    True
    """
    script_src = SCRIPT_SRC + (f" 'nonce-{nonce}'" if nonce else "")
    return CSP.format(script_src=script_src)


def add_nonce(html: bytes, nonce: str) -> bytes:
    """Give every ``<script`` tag of a page the response's nonce.

    Only the page as the server renders it passes here: Bokeh's page template
    and its bootstrap script.  Text from links or files never is in it (a
    server session's document reaches the browser over the websocket, as data
    that BokehJS renders), so the nonce marks the app's own scripts only.

    >>> add_nonce(b'<script type="x">1</script><scripts><SCRIPT>', "n")
    b'<script nonce="n" type="x">1</script><scripts><SCRIPT nonce="n">'
    """
    return _SCRIPT_TAG.sub(lambda m: m.group(0) + f' nonce="{nonce}"'.encode(), html)


class SecurityHeaders(OutputTransform):
    """Tornado output transform: CSP (nonce per HTML response) and the other security headers.

    Applied to every handler of the server (pages, static files, websocket
    handshakes, ``/health``), because it is passed as the Tornado application's
    ``transforms``.
    """

    def __init__(self, request):
        super().__init__(request)
        self.request = request
        self._nonce: str | None = None

    def transform_first_chunk(self, status_code, headers, chunk, finishing):
        from spikewb.workbench.server.reconnect import queued_cookies
        for name, value in SECURITY_HEADERS.items():
            headers.setdefault(name, value)
        for cookie in queued_cookies(self.request):  # the reattach cookies of a trainer page (HttpOnly)
            headers.add("Set-Cookie", cookie)
        ctype = headers.get("Content-Type", "")
        if ctype.startswith("text/html") and status_code != 304:
            self._nonce = base64.urlsafe_b64encode(secrets.token_bytes(18)).decode().rstrip("=")
            chunk = add_nonce(chunk, self._nonce)
            if "Content-Length" in headers:
                if finishing:
                    headers["Content-Length"] = str(len(chunk))
                else:  # the length is not known any more: let Tornado chunk the body
                    del headers["Content-Length"]
        headers["Content-Security-Policy"] = content_security_policy(self._nonce)
        return status_code, headers, chunk

    def transform_chunk(self, chunk, finishing):
        return add_nonce(chunk, self._nonce) if self._nonce else chunk


def warm_up() -> None:
    """Compile (or load from cache) the numba kernels and load the default data once,
    so the first page does not wait for it."""
    from spikewb.workbench.sessions.session import TrainingSession

    import gc

    s = TrainingSession(hidden=[8], autostart=False)
    try:
        s.trainer.step()
    finally:
        s.close()
    # the session sits in reference cycles; collect it now, before freeze_startup_objects()
    # moves every object that exists out of the collector's reach (it then lived as long as
    # the process and /health counted it among the session objects forever)
    del s
    gc.collect()


def freeze_startup_objects() -> None:
    """Import the trainer page's modules, then move every object that exists now out of the
    garbage collector's reach (``gc.freeze``).

    After the imports of Panel, Bokeh and numba the process tracks ~220,000
    objects that live as long as it does; every full collection walked all of
    them: 0.13-0.17 s, once every second or third page built and as often
    while training, with the GIL held (the page and the training worker both
    wait).  Frozen, a full collection costs 0.03-0.07 s.
    """
    import gc

    try:
        import spikewb.workbench.pages.trainer  # noqa: F401  (the first page would import it anyway)
    except ImportError:  # pragma: no cover - the apps still report their own import errors
        pass
    gc.freeze()  # no collection first: it would cost 0.09 s to free ~100 objects of the imports


def reattach_patterns() -> list[tuple]:
    from spikewb.workbench.server.reconnect import reattach_patterns as patterns
    return patterns()


def serve(port: int = 5006, address: str = "127.0.0.1", show: bool = False, apps_dir=None,
          allow_websocket_origin: list[str] | None = None, num_procs: int = 1, warm: bool = True,
          threaded: bool = False, limits=None, **kwargs):
    """Serve every app in ``apps/`` (each at ``/<name>``; the landing page ``index`` also at ``/``).

    Parameters
    ----------
    port, address
        Where to listen (``port=0`` picks a free port).
    show
        Open a browser tab.
    apps_dir
        Folder of app scripts (default: the package's ``apps/``).
    allow_websocket_origin
        Extra ``host:port`` origins allowed to open the websocket (e.g. behind a
        proxy); the listening address is always allowed.
    num_procs
        Server processes (sessions are independent; each has its own worker).
    limits
        :class:`~spikewb.workbench.server.limits.Limits` for every session (default: from the
        ``SPIKEWB_*`` environment, else the built-in defaults).
    kwargs
        Passed to :func:`panel.serve`.

    Returns
    -------
    The Bokeh server (when ``threaded``, a thread running it); blocks otherwise.
    """
    import panel as pn

    from spikewb.workbench.server.limits import configure, server_limits

    configure(limits if limits is not None else server_limits())
    apps = app_files(apps_dir)
    if warm:
        warm_up()
    freeze_startup_objects()
    routes = {name: str(path) for name, path in apps.items()}
    # the landing page lists every app; without it the trainer opens at "/"
    index = "index" if "index" in routes else ("trainer" if "trainer" in routes else next(iter(routes)))
    origins = list(allow_websocket_origin or [])
    for host in {address, "localhost", "127.0.0.1"}:
        origins.append(f"{host}:{port}")
    opts = dict(port=port, address=address, show=show, websocket_origin=origins, num_procs=num_procs,
                title="Spike Workbench", threaded=threaded,
                check_unused_sessions_milliseconds=2000,
                extra_patterns=[(r"/health", HealthHandler), (r"/check-link", CheckLinkHandler),
                                *reattach_patterns()],
                transforms=[SecurityHeaders])
    opts.update(kwargs)
    # hand the memory of closed pages back to the OS (see release_memory)
    pn.state.schedule_task("spikewb-release-memory", _Trimmer(), period="5s")
    lim = server_limits()
    log.info("serving %s on http://%s:%s/%s (training slots %d, max %s synapses, T <= %d, %.0f MB per "
             "session, idle pause after %.0f s, reattach window %.0f s)", ", ".join(routes), address, port, index,
             lim.max_training, f"{lim.max_synapses:,}", lim.max_steps, lim.memory_mb, lim.idle_timeout_s,
             lim.reconnect_s)
    return pn.serve({**routes, "/": routes[index]} if len(routes) > 1 else routes, **opts)


def main(argv: list[str] | None = None) -> None:
    """``python -m workbench.server [--port N] [--address A] [--show]``."""
    import argparse

    ap = argparse.ArgumentParser(description="Serve the Spike Workbench apps")
    ap.add_argument("--port", type=int, default=5006)
    ap.add_argument("--address", default="127.0.0.1")
    ap.add_argument("--show", action="store_true")
    ap.add_argument("--allow-websocket-origin", action="append", default=None)
    ap.add_argument("--num-procs", type=int, default=1)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    serve(port=args.port, address=args.address, show=args.show,
          allow_websocket_origin=args.allow_websocket_origin, num_procs=args.num_procs)


if __name__ == "__main__":
    main()
