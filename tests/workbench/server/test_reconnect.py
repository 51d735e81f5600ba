"""The reattach registry (workbench/server/reconnect.py): park, claim, expiry, token checks."""

import threading
import time

import pytest

from spikewb.engine.errors import ConfigError
from spikewb.workbench.server.limits import Limits
from spikewb.workbench.server.reconnect import Registry, new_token, valid_token


class FakeSession:
    """What the registry needs of a session: ``alive`` and ``close()``."""

    def __init__(self):
        self.alive = True
        self.closed = threading.Event()

    def close(self):
        self.alive = False
        self.closed.set()


def test_park_then_claim_once():
    reg, s = Registry(), FakeSession()
    token = new_token()
    assert reg.park(token, s, 30.0) and reg.count() == 1
    assert reg.claim(token) is s
    assert reg.claim(token) is None            # a token is used up by its claim
    assert reg.count() == 0 and not s.closed.is_set()


def test_unclaimed_session_is_closed_when_its_time_is_up():
    reg, s = Registry(), FakeSession()
    token = new_token()
    t0 = time.monotonic()
    reg.park(token, s, 0.2)
    assert s.closed.wait(5), "the parked session was never closed"
    assert time.monotonic() - t0 >= 0.19
    assert reg.count() == 0 and reg.claim(token) is None


def test_claimed_session_is_not_closed_later():
    reg, s = Registry(), FakeSession()
    token = new_token()
    reg.park(token, s, 0.2)
    assert reg.claim(token) is s
    assert not s.closed.wait(0.5)              # the timer was cancelled


def test_dead_session_is_not_handed_out():
    reg, s = Registry(), FakeSession()
    token = new_token()
    reg.park(token, s, 30.0)
    s.alive = False                            # its worker ended (error, crash)
    assert reg.claim(token) is None and reg.count() == 0


@pytest.mark.parametrize("bad", [None, "", "x" * 42, "x" * 44, "a" * 42 + "/", "../" * 15 + "abc",
                                 "a" * 42 + "\u00e9", 12345, b"a" * 43])
def test_malformed_tokens_find_nothing(bad):
    reg, s = Registry(), FakeSession()
    reg.park(new_token(), s, 30.0)
    assert not valid_token(bad)
    assert reg.claim(bad) is None
    assert reg.count() == 1


def test_tokens_are_random_and_well_formed():
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200 and all(valid_token(t) for t in tokens)


def test_attached_session_taken_over_by_a_newer_page():
    """A reload claims the session while the old page is still connected; the old
    page then owns nothing and cannot park (nor, by the workbench, close) it."""
    reg, s = Registry(), FakeSession()
    old = reg.attach(s)
    assert reg.owns(old, s) and reg.count() == 0   # attached, not parked
    assert reg.claim(old) is None and reg.owns(old, s)   # its page is open: not taken, not used up
    assert reg.leaving(old)                        # the page's beforeunload beacon
    assert reg.claim(old) is s
    new = reg.attach(s)
    assert new != old and reg.owns(new, s) and not reg.owns(old, s)
    assert not reg.park(old, s, 0.1)               # the old page going away changes nothing
    assert reg.count() == 0 and not s.closed.wait(0.3)
    assert reg.park(new, s, 30.0) and reg.count() == 1


def test_attach_cancels_a_parking_under_an_older_token():
    reg, s = Registry(), FakeSession()
    old = new_token()
    reg.park(old, s, 0.2)                      # parked in the moment between a claim and an attach
    new = reg.attach(s)
    assert not s.closed.wait(0.5) and reg.count() == 0 and reg.owns(new, s)


def test_parking_again_restarts_the_time():
    reg, s = Registry(), FakeSession()
    token = new_token()
    reg.park(token, s, 0.3)
    time.sleep(0.2)
    reg.park(token, s, 0.6)
    assert not s.closed.wait(0.3)
    assert s.closed.wait(5)


def test_forget_and_close_all():
    reg, a, b = Registry(), FakeSession(), FakeSession()
    ta, tb = reg.attach(a), new_token()
    reg.park(tb, b, 30.0)
    reg.forget(ta, b)                          # not b's token: kept
    assert reg.owns(ta, a)
    reg.forget(ta)
    assert not reg.owns(ta, a)
    reg.close_all()
    assert b.closed.is_set() and not a.closed.is_set() and reg.count() == 0


def test_reconnect_limit_from_environment():
    assert Limits().reconnect_s == 0.0
    assert Limits.from_env({"SPIKEWB_RECONNECT": "30"}).reconnect_s == 30.0
    assert Limits.from_env(Limits(reconnect_s=5).to_env()).reconnect_s == 5
    with pytest.raises(ConfigError):
        Limits.from_env({"SPIKEWB_RECONNECT": "-1"})


# ---------------------------------------------------------------------------- browser binding
def test_claim_needs_the_browser_that_registered_the_page():
    reg, s = Registry(), FakeSession()
    mine, other = new_token(), new_token()
    token = reg.attach(s, browser=mine)
    assert not reg.leaving(token, other)           # another browser cannot mark the page leaving
    assert reg.claim(token, mine) is None          # open page, not leaving
    assert reg.park(token, s, 30.0)
    assert reg.claim(token, other) is None         # a replayed token from another browser
    assert reg.claim(token, None) is None          # ... or from one without a browser id
    assert reg.count() == 1 and reg.owns(token, s)  # nothing used up by the failed claims
    assert reg.claim(token, mine) is s
    assert reg.claim(token, mine) is None


def test_leaving_mark_runs_out():
    reg, s = Registry(), FakeSession()
    b = new_token()
    token = reg.attach(s, browser=b)
    assert reg.leaving(token, b, seconds=0.2)
    time.sleep(0.3)
    assert reg.claim(token, b) is None and reg.owns(token, s)


def test_cookie_helpers_are_httponly_and_strict():
    from types import SimpleNamespace
    from http.cookies import SimpleCookie

    from spikewb.workbench.server import reconnect

    req = SimpleNamespace(protocol="https", cookies=SimpleCookie())
    bid = reconnect.browser_id(req)
    assert reconnect.valid_token(bid) and reconnect.browser_id(req) == bid
    (header,) = reconnect.queued_cookies(req)
    assert header.startswith(f"{reconnect.BROWSER_COOKIE}={bid};")
    for part in ("HttpOnly", "SameSite=Strict", "Secure", "Path=/"):
        assert part in header.split("; ")
    # a browser that has a well-formed id keeps it; a malformed one gets a new id
    kept = SimpleNamespace(protocol="http", cookies=SimpleCookie({reconnect.BROWSER_COOKIE: bid}))
    assert reconnect.browser_id(kept) == bid and reconnect.queued_cookies(kept) == []
    bad = SimpleNamespace(protocol="http", cookies=SimpleCookie({reconnect.BROWSER_COOKIE: "x" * 10}))
    assert reconnect.browser_id(bad) != "x" * 10 and len(reconnect.queued_cookies(bad)) == 1


def test_a_leaving_mark_with_the_pages_id_claims_an_attached_session():
    """A reload's request can beat the leave beacon; the page-id cookie set on beforeunload
    marks the page as leaving. Only its own page id, from its own browser, counts."""
    reg, s = Registry(), FakeSession()
    token = reg.attach(s, browser="B" * 43)
    pid = reg.page_id(token)
    assert pid and pid != token
    assert reg.claim(token, "B" * 43) is None                       # no mark: a second tab
    assert reg.claim(token, "B" * 43, leaving_mark="x" * 43) is None  # another page's id
    assert reg.claim(token, "C" * 43, leaving_mark=pid) is None      # another browser
    assert reg.claim(token, "B" * 43, leaving_mark=pid) is s         # the reload
    assert reg.claim(token, "B" * 43, leaving_mark=pid) is None      # used up
