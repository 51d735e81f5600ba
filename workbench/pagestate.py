"""Shareable pages: a Parameterized object's state <-> the page URL, validated.

:func:`params_from_query` reads query arguments into values for a
``param.Parameterized`` class, checking each against its declaration (type,
bounds, allowed objects).  Anything unknown, malformed or out of range is left
at its default and described in the returned problem list, which the page
shows as a notice: a URL can never raise, and can never name a file.

:class:`UrlState` ties one object to ``pn.state.location``: restore on load,
rewrite the query (no reload) whenever a synced parameter changes.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping
from urllib.parse import urlencode

import param

IGNORED_KEYS = {"theme", "embed"}


def parse_value(p: param.Parameter, text: str) -> Any:
    """Text from a URL as a value for parameter ``p`` (raises ValueError)."""
    if isinstance(p, param.Boolean):
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {text!r}")
    if isinstance(p, param.Integer):
        return int(text)
    if isinstance(p, param.Number):
        return float(text)
    if isinstance(p, param.ListSelector):
        return [s for s in text.split(",") if s]
    if isinstance(p, param.List):
        return [int(s) for s in text.replace(" ", "").split(",") if s]
    if isinstance(p, param.Selector):
        for obj in p.objects:                      # match by text, keep the object's own type
            if str(obj) == text:
                return obj
        raise ValueError(f"must be one of {[str(o) for o in p.objects]}")
    return text


def value_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    if isinstance(v, float):
        return f"{v:.10g}"
    return str(v)


def _flatten(query: Mapping[str, Any]) -> dict[str, str]:
    flat = {}
    for k, v in query.items():
        if isinstance(v, (list, tuple)):
            v = v[-1] if v else ""
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        flat[str(k)] = str(v)
    return flat


def params_from_query(cls: type[param.Parameterized], query: Mapping[str, Any],
                      keys: Iterable[str] | None = None) -> tuple[dict[str, Any], list[str]]:
    """Validated values for ``cls`` from a query mapping, and the problems found."""
    allowed = set(keys) if keys is not None else {k for k in cls.param if k != "name"}
    values: dict[str, Any] = {}
    problems: list[str] = []
    for k, text in _flatten(query).items():
        if k in IGNORED_KEYS:
            continue
        if k not in allowed:
            problems.append(f"unknown URL setting {k!r} ignored")
            continue
        p = cls.param[k]
        try:
            value = parse_value(p, text)
            cls(**{k: value})                       # the declaration checks bounds and types
        except (ValueError, TypeError) as exc:
            problems.append(f"URL setting {k}={text[:40]!r} ignored ({str(exc)[:160]}); default used")
            continue
        values[k] = value
    return values, problems


def query_of(obj: param.Parameterized, keys: Iterable[str]) -> dict[str, str]:
    """Synced parameters that differ from their defaults, as query text."""
    out = {}
    for k in keys:
        v = getattr(obj, k)
        if v != obj.param[k].default:
            out[k] = value_text(v)
    return out


class UrlState:
    """Keep ``obj``'s parameters ``keys`` in the page URL (Panel server sessions only)."""

    def __init__(self, obj: param.Parameterized, keys: Iterable[str]):
        self.obj = obj
        self.keys = [k for k in keys]
        self.problems: list[str] = []

    def restore(self) -> list[str]:
        """Apply the page's query to ``obj``; returns (and keeps) the problems."""
        import panel as pn
        args = getattr(pn.state, "session_args", None) or {}
        values, self.problems = params_from_query(type(self.obj), args, self.keys)
        if values:
            self.obj.param.update(**values)
        return self.problems

    def watch(self) -> None:
        """Rewrite the URL query whenever a synced parameter changes."""
        self.obj.param.watch(lambda *_: self.write(), self.keys)
        self.write()

    def search(self) -> str:
        q = query_of(self.obj, self.keys)
        return ("?" + urlencode(q, safe=",:")) if q else ""

    def write(self) -> None:
        import panel as pn
        loc = pn.state.location
        if loc is None:
            return
        s = self.search()
        if loc.search != s:
            loc.search = s
