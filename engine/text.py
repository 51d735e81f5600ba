"""Settings written as text and read back: the one text codec of the project.

URL queries, ``-p KEY=VALUE`` on the command line, sweep grids and the
compare page's settings box all read values through these functions, so a
number means the same thing wherever it is typed.  Only ASCII digits and
finite numbers are accepted (Python's ``int`` and ``float`` also take other
scripts' digits, ``_`` separators, ``nan`` and ``inf``, which no setting
needs); a value is read against its ``param`` declaration with
:func:`parse_value` and written back with :func:`value_text`.

>>> value_text(parse_value(param.List(item_type=int), "400, 100"))
'400,100'
"""

from __future__ import annotations

import math
import re
from typing import Any

import param

# ASCII digits only: Python's int() and float() also take other scripts' digits
# ("\u0663", fullwidth digits) and "_" separators, which no link needs.
_INT = re.compile(r"[+-]?[0-9]{1,18}", re.ASCII)
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?", re.ASCII)


def parse_int(text: str) -> int:
    """A whole number written with ASCII digits (at most 18); raises ValueError otherwise.

    >>> parse_int(" -42 ")
    -42
    >>> parse_int("\u2460")
    Traceback (most recent call last):
    ...
    ValueError: expected a whole number (digits 0-9, at most 18 of them)
    """
    s = str(text).strip()
    if len(s) > 20 or not _INT.fullmatch(s):
        raise ValueError("expected a whole number (digits 0-9, at most 18 of them)")
    return int(s)


def parse_float(text: str) -> float:
    """A finite decimal number (``1e-3``, ``.5``); NaN, infinities and other scripts' digits refused.

    >>> parse_float("3e-4")
    0.0003
    >>> parse_float("nan")
    Traceback (most recent call last):
    ...
    ValueError: expected a finite number such as 0.5 or 1e-3
    """
    s = str(text).strip()
    if len(s) > 40 or not _FLOAT.fullmatch(s):
        raise ValueError("expected a finite number such as 0.5 or 1e-3")
    v = float(s)
    if not math.isfinite(v):
        raise ValueError("expected a finite number such as 0.5 or 1e-3")
    return v


def parse_int_list(text: str) -> list[int]:
    """Comma-separated whole numbers (``"400, 100"``), each as :func:`parse_int` reads it."""
    return [parse_int(s) for s in str(text).replace(" ", "").split(",") if s]


def parse_value(p: param.Parameter, text: str) -> Any:
    """Setting text as a value for parameter ``p``, by its declared type (raises ValueError).

    Bounds are not checked here: the declaration checks them when the value is set.
    """
    if isinstance(p, param.Boolean):
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {text!r}")
    if isinstance(p, param.Integer):
        return parse_int(text)
    if isinstance(p, param.Number):
        return parse_float(text)
    if isinstance(p, (param.ListSelector, param.List)):
        inner = text.strip()
        if inner.startswith("[") and inner.endswith("]"):     # "[4, 8]" as well as "4,8"
            inner = inner[1:-1]
        if isinstance(p, param.ListSelector):
            return [s.strip() for s in inner.split(",") if s.strip()]
        return parse_int_list(inner)
    if isinstance(p, param.Selector):
        for obj in p.objects:                      # match by text, keep the object's own type
            if str(obj) == text:
                return obj
        raise ValueError(f"must be one of {[str(o) for o in p.objects]}")
    return text


def value_text(v: Any) -> str:
    """A value as setting text: booleans ``true``/``false``, lists comma-separated, floats with 10 digits."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    if isinstance(v, float):
        return f"{v:.10g}"
    return str(v)
