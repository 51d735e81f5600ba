"""The training setup <-> the page URL query string.

The setup is the rule, its hyperparameters, the hidden layer sizes, the
dataset and the seed: everything needed to rebuild the same network.  The
names and types come from the same ``param`` declarations the widgets use
(no second list to keep in step): rule hyperparameters are written only when
they differ from the rule's defaults, so a default setup has a short URL.

>>> q = to_query({"rule": "desire", "hidden": [500], "v_th": 0.5, "seed": 3})
>>> q["hidden"], q["v_th"]
('500', '0.5')
>>> setup, problems = from_query(q)
>>> setup["hidden"], setup["v_th"], problems
([500], 0.5, [])
"""

from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import urlencode

from spikewb.engine.training.setup import RunSetup, SetupProblem

from spikewb.workbench.pagestate import ignored, read_query, unknown
from spikewb.workbench.pagestate import value_text as _text
from spikewb.workbench.server.safetext import quote, shorten

#: Session-level keys and how to read them.
SESSION_KEYS = RunSetup.FIELDS
#: Query keys that are never part of the setup (Panel's own, e.g. theme; page options).
IGNORED = {"theme", "embed", "refresh"}


def setup_of(session) -> dict[str, Any]:
    """The reproducible setup of a session (rule params only where not default)."""
    return RunSetup.of_rule(session.rule, rule=session.rule_name, dataset=session.dataset,
                            hidden=session.hidden, seed=session.seed).as_dict()


def problem_text(p: SetupProblem) -> str:
    """A :class:`SetupProblem` as the notice a page shows (plain text: escape where shown)."""
    if p.reason is None:
        return unknown(p.key)
    if p.key == "rule":
        return f"URL setting rule={quote(p.text)} ignored ({shorten(p.reason, 200)})"
    return ignored(p.key, p.text, p.reason)


def to_query(setup: Mapping[str, Any]) -> dict[str, str]:
    """Setup values as query-string text (lists comma-separated)."""
    return {k: _text(v) for k, v in setup.items()}


def to_search(setup: Mapping[str, Any]) -> str:
    """``?rule=desire&hidden=1000,100...`` for a setup."""
    return "?" + urlencode(to_query(setup), safe=",:")


def query_value(query: Mapping[str, Any], key: str) -> str | None:
    """One query value as text (the last one if repeated), or None when absent or unreadable."""
    if key not in query:
        return None
    return read_query({key: query[key]})[0].get(key)


def from_query(query: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Parse a query mapping (values str, bytes or lists of them) into a setup.

    Returns ``(setup, problems)``: values that cannot be used are left out and
    described in ``problems`` (plain text, for the page to show escaped) rather
    than raising.  The reading itself is :meth:`RunSetup.from_text`'s.
    """
    flat, problems = read_query(query)
    flat = {k: v for k, v in flat.items() if k not in IGNORED}
    setup, found = RunSetup.from_text(flat)
    refused = {p.key for p in found}
    out = {k: v for k, v in setup.as_dict().items() if k in flat and k not in refused}
    out["rule"] = setup.rule
    return out, problems + [problem_text(p) for p in found]


def session_kwargs(setup: Mapping[str, Any]) -> dict[str, Any]:
    """Split a setup into ``TrainingSession(...)`` keyword arguments."""
    kw: dict[str, Any] = {}
    rule_params = {}
    for k, v in setup.items():
        if k in SESSION_KEYS:
            kw[k] = v
        else:
            rule_params[k] = v
    kw["rule_params"] = rule_params
    return kw


def read_location() -> dict[str, Any]:
    """The query arguments of the page being served (``{}`` outside a server session)."""
    import panel as pn
    args = getattr(pn.state, "session_args", None) or {}
    return dict(args)


def write_location(setup: Mapping[str, Any]) -> None:
    """Replace the page URL's query with ``setup`` (no reload)."""
    import panel as pn
    loc = pn.state.location
    if loc is None:
        return
    search = to_search(setup)
    if loc.search != search:
        loc.search = search
