"""Shareable pages: a Parameterized object's state <-> the page URL, validated.

:func:`params_from_query` reads query arguments into values for a
``param.Parameterized`` class, checking each against its declaration (type,
bounds, allowed objects).  Every page reads its query through :func:`read_query`
(flattening, decoding, size bounds, repeated keys) and its values through
:func:`parse_value` / :func:`parse_int` / :func:`parse_float` (ASCII digits,
finite numbers only).  Problems are plain text quoting the visitor's value
with :func:`spikewb.workbench.server.safetext.quote`; whoever shows them escapes them
(:func:`spikewb.workbench.server.safetext.as_markdown` / :func:`~spikewb.workbench.server.safetext.as_html`).  Anything unknown, malformed or out of range is left
at its default and described in the returned problem list, which the page
shows as a notice: a URL can never raise, and can never name a file.

:class:`UrlState` ties one object to ``pn.state.location``: restore on load,
rewrite the query (no reload) whenever a synced parameter changes.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping
from urllib.parse import urlencode

import param

from spikewb.engine.text import parse_float, parse_int, parse_int_list, parse_value, value_text
from spikewb.workbench.server.safetext import quote, shorten

__all__ = ["parse_float", "parse_int", "parse_int_list", "parse_value", "value_text", "read_query", "ignored",
           "unknown", "params_from_query", "query_of", "UrlState", "guard_panel_query"]

IGNORED_KEYS = {"theme", "embed"}
#: Most query keys read from one URL (the rest are ignored with a notice).
MAX_KEYS = 64
#: Longest key and longest value read (characters); longer ones are ignored with a notice.
MAX_KEY_LEN, MAX_VALUE_LEN = 100, 2000

def _as_text(v: Any, what: str) -> str:
    if isinstance(v, (bytes, bytearray)):
        try:
            return bytes(v).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{what} is not UTF-8 text") from None
    return v if isinstance(v, str) else str(v)


def read_query(query: Mapping[str, Any] | None) -> tuple[dict[str, str], list[str]]:
    """The one reader of a page's query: ``{key: text}`` and the problems found. Never raises.

    Accepts what Panel gives (``{key: [bytes, ...]}``) as well as plain strings.
    A key given several times keeps its last value (and says so); keys or values
    that are not UTF-8, longer than :data:`MAX_KEY_LEN` / :data:`MAX_VALUE_LEN`,
    and keys beyond the first :data:`MAX_KEYS` are left out with a notice.

    >>> read_query({"seed": [b"1", b"2"], "x": [bytes([255])]})
    ({'seed': '2'}, ["URL setting 'seed' given 2 times; the last one is used", "URL setting 'x' ignored: its value is not UTF-8 text; default used"])
    """
    flat: dict[str, str] = {}
    problems: list[str] = []
    try:
        items = list((query or {}).items())
    except Exception:
        return {}, ["the URL query could not be read; defaults used"]
    if len(items) > MAX_KEYS:
        problems.append(f"{len(items) - MAX_KEYS} URL settings beyond the first {MAX_KEYS} ignored")
        items = items[:MAX_KEYS]
    for raw_key, v in items:
        try:
            try:
                key = _as_text(raw_key, "its name")
            except ValueError:
                problems.append("a URL setting whose name is not UTF-8 text ignored")
                continue
            if len(key) > MAX_KEY_LEN:
                problems.append(f"URL setting {quote(key)} ignored: its name is longer than "
                                f"{MAX_KEY_LEN} characters")
                continue
            if isinstance(v, (list, tuple)):
                if len(v) > 1:
                    problems.append(f"URL setting {quote(key)} given {len(v)} times; the last one is used")
                v = v[-1] if v else ""
            text = _as_text(v, "its value")
            if len(text) > MAX_VALUE_LEN:
                problems.append(f"URL setting {quote(key)} ignored: its value is longer than "
                                f"{MAX_VALUE_LEN} characters; default used")
                continue
            flat[key] = text
        except ValueError as exc:
            problems.append(f"URL setting {quote(raw_key)} ignored: {exc}; default used")
        except Exception as exc:                      # never let a URL break a page build
            problems.append(f"URL setting {quote(raw_key)} ignored ({shorten(exc, 120)}); default used")
    return flat, problems


def ignored(key: str, text: str, why: object) -> str:
    """The notice for one unusable setting (plain text: escape it where it is shown)."""
    return f"URL setting {key}={quote(text)} ignored ({shorten(why, 160)}); default used"


def unknown(key: str, extra: str = "") -> str:
    """The notice for a key the page does not read (plain text)."""
    return f"unknown URL setting {quote(key)} ignored{extra}"


def guard_panel_query() -> None:
    """Make Panel's own reading of the page address unable to fail.

    Panel parses ``pn.state.location``'s query with ``int()`` on any value for which
    ``str.isdigit()`` holds, which raises for ``\u2460`` or more than 4,300 digits;
    it does so while it builds every templated page, so such a link blanked the
    page before any of this module's checks ran.  Values Panel cannot convert are
    kept as text (the pages read their settings through :func:`read_query`).
    Idempotent; called when this module is imported.
    """
    try:
        from urllib.parse import parse_qsl

        from panel.io import location
    except ImportError:
        return
    original = location.parse_query
    if getattr(original, "_spikewb_guarded", False):
        return

    def parse_query(query: str) -> dict[str, Any]:
        try:
            return original(query)
        except Exception:
            out: dict[str, Any] = {}
            for k, v in parse_qsl(query[1:]):
                try:
                    out.update(original("?" + urlencode({k: v})))
                except Exception:
                    out[k] = v
            return out

    parse_query._spikewb_guarded = True
    location.parse_query = parse_query


guard_panel_query()


def params_from_query(cls: type[param.Parameterized], query: Mapping[str, Any],
                      keys: Iterable[str] | None = None) -> tuple[dict[str, Any], list[str]]:
    """Validated values for ``cls`` from a query mapping, and the problems found."""
    allowed = set(keys) if keys is not None else {k for k in cls.param if k != "name"}
    values: dict[str, Any] = {}
    flat, problems = read_query(query)
    for k, text in flat.items():
        if k in IGNORED_KEYS:
            continue
        if k not in allowed:
            problems.append(unknown(k))
            continue
        p = cls.param[k]
        try:
            value = parse_value(p, text)
            cls(**{k: value})                       # the declaration checks bounds and types
        except Exception as exc:                    # ValueError, TypeError, or anything a check raises
            problems.append(ignored(k, text, exc))
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
