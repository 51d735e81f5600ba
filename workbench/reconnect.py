"""Reattaching a reloaded or reopened trainer tab to its running training (opt-in).

By default a trainer page that closes or reloads stops its training worker
(see :mod:`workbench.views.workbench`).  With ``spikewb serve --reconnect S``
(:attr:`~workbench.limits.Limits.reconnect_s`) a page that goes away *parks*
its :class:`~workbench.session.TrainingSession` instead: training goes on,
the session keeps its training slot, and the same browser can take it back
within ``S`` seconds.  A parked session nobody claims is closed when its time
is up.

How a page finds its training again
-----------------------------------
Every trainer page is given a fresh random token (:func:`new_token`) that
names its session in the process-wide :class:`Registry`.  The page's
JavaScript writes the token into the cookie :data:`COOKIE` only when the page
is about to go away (``beforeunload`` / ``pagehide``) and deletes the cookie
as soon as a page is ready.  So a reload, or a trainer page opened in the
same browser within ``S`` seconds of closing one, sends the token; a second
tab opened next to a live one does not (it gets its own training).  The next
page :meth:`~Registry.claim` s the session with the token, which uses the
token up, and holds the session under a new token of its own.

A reload asks for the new page *before* the old page's connection closes, so
a token can be claimed while its page is still connected (not parked yet);
the old page then sees that it no longer owns the session and lets go of it
without closing it (:meth:`Registry.owns`).

Tokens are 256-bit random, single use, never put into a URL (a shared link
never carries one) and checked for their form before any lookup.  Parked
sessions live in this process only: with ``--num-procs`` above 1 a reload
that reaches another process starts fresh.

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

import logging
import re
import secrets
import threading
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: Name of the cookie that carries a page's token while the page goes away.
COOKIE = "spikewb_reattach"
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


@dataclass
class _Entry:
    session: Any
    #: Closes the session when it runs; None while a page still shows the session.
    timer: threading.Timer | None = None


class Registry:
    """Sessions of this process that a later page may take over, by token.

    A session is either *attached* (a page shows it: :meth:`attach`) or
    *parked* (its page went away: :meth:`park`); :meth:`claim` takes either
    kind.  Sessions are any objects with an ``alive`` attribute and a
    ``close()`` method (a :class:`~workbench.session.TrainingSession`).
    Thread-safe: pages go away from the server thread and from timer threads.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def attach(self, session) -> str:
        """Register ``session`` as shown by a new page and return the page's token.

        Any other token of the same session is dropped (its parking timer
        cancelled): the new page is the session's only owner.
        """
        token = new_token()
        with self._lock:
            for old in [t for t, e in self._entries.items() if e.session is session]:
                self._drop(old)
            self._entries[token] = _Entry(session)
        return token

    def claim(self, token) -> Any | None:
        """Take the session registered under ``token`` (parked or attached), or None.

        The token is used up either way.  None for a malformed or unknown token,
        one whose parking time ran out, and a session whose worker has ended.
        """
        if not valid_token(token):
            return None
        with self._lock:
            entry = self._drop(token)
        if entry is None:
            return None
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
