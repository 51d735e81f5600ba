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

from spikewb.engine.data.datasets import available
from spikewb.engine.network import Architecture
from spikewb.engine.rules import rule_class

from spikewb.workbench.pagestate import ignored, parse_int, parse_int_list, read_query, unknown
from spikewb.workbench.pagestate import parse_value as _parse
from spikewb.workbench.pagestate import value_text as _text
from spikewb.workbench.server.safetext import quote, shorten

#: Session-level keys and how to read them.
SESSION_KEYS = ("rule", "dataset", "hidden", "seed")
#: Query keys that are never part of the setup (Panel's own, e.g. theme; page options).
IGNORED = {"theme", "embed", "refresh"}


def setup_of(session) -> dict[str, Any]:
    """The reproducible setup of a session (rule params only where not default)."""
    rule = session.rule
    cls = type(rule)
    setup: dict[str, Any] = {"rule": session.rule_name, "dataset": session.dataset,
                             "hidden": list(session.hidden), "seed": int(session.seed)}
    for name, p in cls.param.objects("existing").items():
        if name == "name":
            continue
        v = getattr(rule, name)
        if v != p.default:
            setup[name] = v
    return setup


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
    than raising.
    """
    flat, problems = read_query(query)
    setup: dict[str, Any] = {}
    rule_key = flat.get("rule", "desire")
    try:
        cls = rule_class(rule_key)
        setup["rule"] = rule_key
    except Exception as exc:  # ConfigError: unknown rule
        problems.append(f"URL setting rule={quote(rule_key)} ignored ({shorten(exc, 200)}); desire used")
        cls = rule_class("desire")
    for k, text in flat.items():
        if k in IGNORED or k == "rule":
            continue
        try:
            if k == "hidden":
                setup[k] = Architecture.parse_hidden(",".join(map(str, parse_int_list(text))))
            elif k == "seed":
                seed = parse_int(text)
                if not 0 <= seed < 2**31:
                    raise ValueError("expected an integer in [0, 2^31)")
                setup[k] = seed
            elif k == "dataset":  # a name only: a link never names a folder on the server
                if text not in available():
                    raise ValueError(f"choose one of {', '.join(available())}")
                setup[k] = text
            elif k in cls.param and k != "name":
                value = _parse(cls.param[k], text)
                cls(**{k: value})  # bounds and types checked by the declaration
                setup[k] = value
            else:
                problems.append(unknown(k))
        except Exception as exc:  # ValueError, TypeError, ConfigError: never out of a page build
            problems.append(ignored(k, text, exc))
    return setup, problems


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
