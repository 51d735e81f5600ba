"""Reattaching a reloaded or reopened trainer tab to its running training (opt-in).

By default a trainer page that closes or reloads stops its training worker
(see :mod:`spikewb.workbench.pages.trainer`).  With ``spikewb serve --reconnect S``
(:attr:`~spikewb.workbench.server.limits.Limits.reconnect_s`) a page that goes away *parks*
its :class:`~spikewb.workbench.sessions.session.TrainingSession` instead: training goes on,
the session keeps its training slot, and the same browser can take it back
within ``S`` seconds.  A parked session nobody claims is closed when its time
is up.

How a page finds its training again
-----------------------------------
Two cookies, both set by the *server* (``HttpOnly; SameSite=Strict; Path=/``,
plus ``Secure`` over HTTPS), so page script can neither read nor write them:

* :data:`BROWSER_COOKIE`, a random browser id, issued with the first trainer
  page a browser opens (:func:`browser_id`);
* :data:`COOKIE`, the token of the trainer page this browser opened last,
  set on that page's HTTP response (:func:`attach_page`).

Every trainer page gets a fresh random token (:func:`new_token`) that names
its :class:`~spikewb.workbench.sessions.session.TrainingSession` in the process-wide
:class:`Registry`, together with the browser id of the request that built the
page.  When the page is about to go away (``beforeunload`` / ``pagehide``)
its script sends the token to ``POST /reattach`` (``navigator.sendBeacon``;
:class:`ReattachHandler`), which marks that page as *leaving* -- only when the
request carries the same browser id.  A page built from a request whose token
cookie names a session that is parked, or whose page is leaving, and whose
browser id is the one the session was registered with, :meth:`~Registry.claim`
s it (the token is used up) and holds it under a new token of its own.  So a
reload, or a trainer page opened in the same browser within ``S`` seconds of
closing one, takes the training back; a second tab opened beside a live one
does not (the live page is not leaving: the new tab gets its own training);
and a token replayed from another browser finds nothing, because that browser
does not send the matching browser id.

The beacon can arrive after the reload's request for the new page, so the
leaving page also sets :data:`LEAVING_COOKIE` (its public page id, 15 s, from
script on ``beforeunload``, which runs before the browser asks for the next
page); a claim whose request carries the page id of the token's page counts
that page as leaving.  The page id is not the token: alone it claims nothing.

A reload asks for the new page *before* the old page's connection closes, so
a token can be claimed while its page is still connected (leaving, not parked
yet); the old page then sees that it no longer owns the session and lets go of
it without closing it (:meth:`Registry.owns`).

Tokens and browser ids are 256-bit random, never put into a URL (a shared link
never carries one) and checked for their form before any lookup; a failed
claim (unknown token, other browser, page not leaving) uses nothing up.
Parked sessions live in this process only: with ``--num-procs`` above 1 a
reload that reaches another process starts fresh.

Examples
--------
>>> class Fake:
...     alive, closed = True, False
...     def close(self):
...         self.closed = True
>>> reg, s = Registry(), Fake()
>>> token = reg.attach(s)
>>> reg.park(token, s, 60.0), reg.count()
(True, 1)
>>> reg.claim(token) is s, reg.claim(token), reg.count()
(True, None, 0)
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from tornado.web import RequestHandler

log = logging.getLogger(__name__)

#: Name of the cookie (HttpOnly, set by the server) that carries the token of the browser's last trainer page.
COOKIE = "spikewb_reattach"
#: Name of the cookie (HttpOnly, set by the server) that carries the random id of the browser.
BROWSER_COOKIE = "spikewb_browser"
#: Name of the short-lived cookie a leaving page sets from script (its public page id, not its token).
LEAVING_COOKIE = "spikewb_leaving"
#: Seconds a page's "leaving" mark (``POST /reattach``) lets a new page of the same browser take over.
LEAVING_S = 15.0
#: Bytes of randomness in a token (``secrets.token_urlsafe`` gives 43 characters for 32).
TOKEN_BYTES = 32
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")


def new_token() -> str:
    """A fresh random token (URL-safe base64, 43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def valid_token(token: Any) -> bool:
    """Whether ``token`` has the form of a token from :func:`new_token`.

    >>> valid_token(new_token()), valid_token("x" * 42), valid_token("../" * 15), valid_token(None)
    (True, False, False, False)
    """
    return isinstance(token, str) and _TOKEN_RE.fullmatch(token) is not None


def _same(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two optional ids (None only equals None)."""
    if a is None or b is None:
        return a is None and b is None
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass
class _Entry:
    session: Any
    #: Closes the session when it runs; None while a page still shows the session.
    timer: threading.Timer | None = None
    #: Browser id of the request that built the page (None: not bound, scripts and tests).
    browser: str | None = None
    #: ``time.monotonic()`` until which the page is marked as leaving (0: not leaving).
    leaving_until: float = 0.0
    #: Public id of the page, set by its script into :data:`LEAVING_COOKIE` when it unloads.
    page_id: str = ""


class Registry:
    """Sessions of this process that a later page may take over, by token.

    A session is either *attached* (a page shows it: :meth:`attach`) or
    *parked* (its page went away: :meth:`park`); :meth:`claim` takes either
    kind.  Sessions are any objects with an ``alive`` attribute and a
    ``close()`` method (a :class:`~spikewb.workbench.sessions.session.TrainingSession`).
    Thread-safe: pages go away from the server thread and from timer threads.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def attach(self, session, browser: str | None = None) -> str:
        """Register ``session`` as shown by a new page of ``browser`` and return the page's token.

        Any other token of the same session is dropped (its parking timer
        cancelled): the new page is the session's only owner.
        """
        token = new_token()
        with self._lock:
            for old in [t for t, e in self._entries.items() if e.session is session]:
                self._drop(old)
            self._entries[token] = _Entry(session, browser=browser, page_id=new_token())
        return token

    def page_id(self, token: str | None) -> str | None:
        """The public page id of ``token``'s page (what its script marks as leaving)."""
        with self._lock:
            entry = self._entries.get(token) if token is not None else None
            return entry.page_id if entry is not None else None

    def leaving(self, token, browser: str | None = None, seconds: float = LEAVING_S) -> bool:
        """Mark the page of ``token`` as going away (for ``seconds``), if ``browser`` is its browser."""
        if not valid_token(token):
            return False
        with self._lock:
            entry = self._entries.get(token)
            if entry is None or not _same(entry.browser, browser):
                return False
            entry.leaving_until = time.monotonic() + float(seconds)
            return True

    def claim(self, token, browser: str | None = None, leaving_mark: str | None = None) -> Any | None:
        """Take the session registered under ``token``, or None.

        Only a session that is parked, or whose page is marked leaving
        (:meth:`leaving`), and only by the browser it was registered with;
        then the token is used up.  None (and nothing used up) for a malformed
        or unknown token, another browser, a page that is not leaving; None
        (token used up) for a session whose worker has ended.
        """
        if not valid_token(token):
            return None
        with self._lock:
            entry = self._entries.get(token)
            if entry is None or not _same(entry.browser, browser):
                return None
            marked = bool(leaving_mark) and bool(entry.page_id) and _same(leaving_mark, entry.page_id)
            if entry.timer is None and entry.leaving_until < time.monotonic() and not marked:
                return None  # its page is still open: a second tab gets its own training
            self._drop(token)
        if not entry.session.alive:
            return None
        return entry.session

    def park(self, token: str, session, seconds: float) -> bool:
        """Keep ``session`` under ``token`` for ``seconds``, then close it unless claimed.

        Returns False (and changes nothing) when the session belongs to another
        token now, i.e. a newer page claimed it: it is that page's to close.
        Parking a parked token again restarts its time.
        """
        if not valid_token(token):
            raise ValueError("malformed reattach token")
        with self._lock:
            entry = self._entries.get(token)
            if entry is None:
                if any(e.session is session for e in self._entries.values()):
                    return False
                entry = self._entries[token] = _Entry(session)
            elif entry.session is not session:
                return False
            entry.leaving_until = 0.0
            if entry.timer is not None:
                entry.timer.cancel()
            timer = threading.Timer(float(seconds), lambda: self._expire(token, timer))
            timer.daemon = True
            timer.name = "spikewb-reattach-expiry"
            entry.timer = timer
            timer.start()
        return True

    def owns(self, token: str | None, session) -> bool:
        """Whether ``token`` still names ``session`` (False once a newer page claimed it)."""
        with self._lock:
            entry = self._entries.get(token) if token is not None else None
            return entry is not None and entry.session is session

    def forget(self, token: str | None, session=None) -> None:
        """Drop ``token`` (only if it names ``session``, when given); closes nothing."""
        with self._lock:
            entry = self._entries.get(token) if token is not None else None
            if entry is not None and (session is None or entry.session is session):
                self._drop(token)

    def count(self) -> int:
        """Number of parked sessions (waiting to be claimed)."""
        with self._lock:
            return sum(1 for e in self._entries.values() if e.timer is not None)

    def close_all(self) -> None:
        """Close every parked session now (server shutdown, tests)."""
        with self._lock:
            parked = [t for t, e in self._entries.items() if e.timer is not None]
            entries = [self._drop(t) for t in parked]
        for e in entries:
            e.session.close()

    # ------------------------------------------------------------------ internals
    def _drop(self, token: str) -> _Entry | None:
        """Remove an entry and cancel its timer (caller holds the lock)."""
        entry = self._entries.pop(token, None)
        if entry is not None and entry.timer is not None:
            entry.timer.cancel()
        return entry

    def _expire(self, token: str, timer: threading.Timer) -> None:
        with self._lock:
            entry = self._entries.get(token)
            if entry is None or entry.timer is not timer:  # claimed, or parked again since
                return
            del self._entries[token]
        log.info("parked training session not reclaimed in time: stopping it")
        entry.session.close()


_REGISTRY: Registry | None = None
_REGISTRY_LOCK = threading.Lock()


def registry() -> Registry:
    """The process-wide registry of reattachable sessions."""
    global _REGISTRY
    with _REGISTRY_LOCK:
        if _REGISTRY is None:
            _REGISTRY = Registry()
        return _REGISTRY


# ---------------------------------------------------------------------------- HTTP side
def _tornado_request(doc):
    """The Tornado request that built the page of Bokeh document ``doc`` (None outside a server)."""
    ctx = getattr(doc, "session_context", None) if doc is not None else None
    proxy = getattr(ctx, "_request", None) if ctx is not None else None
    return getattr(proxy, "_request", None) if proxy is not None else None


def cookie_header(request, name: str, value: str, max_age: float | None = None) -> str:
    """A ``Set-Cookie`` value: ``HttpOnly; SameSite=Strict; Path=/`` (``Secure`` over HTTPS).

    >>> cookie_header(None, "a", "b", 5)
    'a=b; Path=/; HttpOnly; SameSite=Strict; Max-Age=5'
    """
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if max_age is not None:
        parts.append(f"Max-Age={max(0, int(max_age))}")
    if getattr(request, "protocol", "http") == "https":
        parts.append("Secure")
    return "; ".join(parts)


def queue_cookie(request, header: str) -> None:
    """Have :class:`spikewb.workbench.server.app.SecurityHeaders` add ``Set-Cookie: header`` to ``request``'s response."""
    if request is not None:
        cookies = getattr(request, "_spikewb_set_cookies", None)
        if cookies is None:
            cookies = []
            request._spikewb_set_cookies = cookies
        cookies.append(header)


def queued_cookies(request) -> list[str]:
    return list(getattr(request, "_spikewb_set_cookies", ()) or ())


def _cookie(request, name: str) -> str | None:
    try:
        morsel = request.cookies.get(name)
    except Exception:  # a malformed Cookie header
        return None
    return morsel.value if morsel is not None else None


def browser_id(request) -> str | None:
    """The browser id of ``request`` (cookie :data:`BROWSER_COOKIE`); a browser without a
    valid one gets a fresh id, set on this request's response.  None without a request."""
    if request is None:
        return None
    bid = getattr(request, "_spikewb_browser", None)
    if bid is not None:
        return bid
    bid = _cookie(request, BROWSER_COOKIE)
    if not valid_token(bid):
        bid = new_token()
        queue_cookie(request, cookie_header(request, BROWSER_COOKIE, bid, max_age=365 * 86400))
    request._spikewb_browser = bid
    return bid


def claim_page(doc) -> Any | None:
    """The session a new trainer page of Bokeh document ``doc`` takes over, or None
    (token cookie + browser id of the page's request, see :meth:`Registry.claim`)."""
    request = _tornado_request(doc)
    if request is None:
        return None
    token = _cookie(request, COOKIE)
    if not valid_token(token):
        return None
    mark = _cookie(request, LEAVING_COOKIE)
    return registry().claim(token, browser_id(request), mark if valid_token(mark) else None)


def attach_page(session, doc) -> str:
    """Register a trainer page's session, bound to the page's browser; the token goes into the
    :data:`COOKIE` cookie of the page's response (never into page script's reach)."""
    request = _tornado_request(doc)
    token = registry().attach(session, browser=browser_id(request))
    if request is not None:
        queue_cookie(request, cookie_header(request, COOKIE, token))
    return token


class ReattachHandler(RequestHandler):
    """``POST /reattach`` (body: a page's token): that page is going away.

    Marks the page leaving when the request's browser id is the page's
    (:meth:`Registry.leaving`) and puts the token into the :data:`COOKIE`
    cookie, so the next trainer page of this browser takes the training back.
    Answers 204 either way; nothing in the answer says whether a token exists.
    """

    def check_xsrf_cookie(self) -> None:  # the browser id cookie is SameSite=Strict
        pass

    def post(self) -> None:
        token = self.request.body[:64].decode("ascii", "replace").strip()
        self.set_header("Cache-Control", "no-store")
        if valid_token(token):
            browser = _cookie(self.request, BROWSER_COOKIE)
            if valid_token(browser) and registry().leaving(token, browser):
                self.add_header("Set-Cookie", cookie_header(self.request, COOKIE, token))
        self.set_status(204)
        self.finish()


def reattach_patterns() -> list[tuple]:
    """Tornado routes of the reattach window (for :func:`spikewb.workbench.server.app.serve`)."""
    return [(r"/reattach", ReattachHandler)]
