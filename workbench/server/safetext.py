"""The one escaping boundary: text that came from outside, made safe to show on a page.

Everything a visitor or a file controls (URL keys and values, uploaded file names,
anything read from an uploaded or stored file, run folder names, exception
messages that may quote any of these) reaches a page only through this module:

* :func:`as_html` for ``pn.pane.HTML`` objects and Bokeh ``Div`` text;
* :func:`as_markdown` for ``pn.pane.Markdown`` and ``pn.pane.Alert`` objects
  (Markdown would otherwise turn ``[x](javascript:...)`` or ``*`` into markup);
* :func:`quote` to cite a value in a notice ("URL setting x='...' ignored"),
  shortened and with control characters made visible;
* :func:`display_name` to name a file by its path relative to a root the
  visitor already knows (the data or run folder), never by the server's
  absolute path.

All functions accept any object, never raise, and return plain ``str``.

>>> as_html('<img src=x onerror="alert(1)">')
'&lt;img src=x onerror=&quot;alert(1)&quot;&gt;'
>>> as_markdown('*b* [a](u)')
'\\\\*b\\\\* \\\\[a\\\\]\\\\(u\\\\)'
>>> quote('x' * 100, limit=10)
"'xxxxxxxxx…'"
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

#: Longest quoted value in a notice (characters, before quoting).
MAX_QUOTE = 60
#: Longest outside text shown at all (exception messages included).
MAX_TEXT = 2000

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# ASCII punctuation that Markdown (CommonMark) may read as markup; & < > " ' are
# left to html.escape, which must run after this (an escaped "&lt;" stays text).
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:=])")


def _text(value: object) -> str:
    try:
        s = value if isinstance(value, str) else str(value)
    except Exception:                                   # a hostile __str__ must not break a page
        s = f"<unprintable {type(value).__name__}>"
    return s


def shorten(value: object, limit: int = MAX_TEXT) -> str:
    """``value`` as text of at most ``limit`` characters (an ellipsis marks a cut),
    with control and bidi-override characters replaced by U+FFFD."""
    s = _CONTROL.sub("\ufffd", _text(value)[: limit + 1])
    return s if len(s) <= limit else s[: max(limit - 1, 0)] + "\u2026"


def quote(value: object, limit: int = MAX_QUOTE) -> str:
    """A value cited in a message: shortened, quoted, still *unescaped* text."""
    return "'" + shorten(value, limit).replace("'", "\u2019") + "'"


def as_html(value: object, limit: int = MAX_TEXT) -> str:
    """Outside text for an HTML context (element content or a quoted attribute)."""
    return html.escape(shorten(value, limit), quote=True)


def as_markdown(value: object, limit: int = MAX_TEXT) -> str:
    """Outside text for a Markdown context: shown literally, no markup, no raw HTML."""
    s = _MD_SPECIAL.sub(r"\\\1", shorten(value, limit))
    return html.escape(s, quote=True).replace("\n", "  \n")


def display_name(path: object, root: object | None = None) -> str:
    """A file named for a message: relative to ``root`` when inside it, else its base name.

    Never the server's absolute path.  Not escaped: pass the result through
    :func:`as_html` / :func:`as_markdown` when it goes to a page.

    >>> display_name("/srv/app/runs/sweep1/corrupt.npz", "/srv/app/runs")
    'sweep1/corrupt.npz'
    >>> display_name("/etc/passwd", "/srv/app/runs")
    'passwd'
    """
    try:
        p = Path(os.fspath(path))
        if root is not None:
            try:
                return p.relative_to(Path(os.fspath(root))).as_posix() or p.name
            except ValueError:
                pass
        return p.name or "?"
    except Exception:
        return "?"


def scrub_paths(message: object, *roots: object) -> str:
    """An exception message with the server's absolute folders removed.

    Each root (and the current working folder) is replaced by nothing, so
    ``/srv/app/runs/sweep1/x.npz`` reads ``sweep1/x.npz``.
    """
    s = _text(message)
    prefixes = [os.fspath(r) for r in roots if r is not None] + [os.getcwd(), str(Path.home())]
    for pre in sorted({str(Path(p)) for p in prefixes if p}, key=len, reverse=True):
        if pre not in ("/", "."):
            s = s.replace(pre.rstrip("/") + "/", "").replace(pre, ".")
    return s
