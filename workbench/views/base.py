"""Shared pieces of the live views: the view base class and figure helpers.

Every live view is a :class:`FrameView`: a :class:`panel.viewable.Viewer`
wrapping raw Bokeh figures (``pn.pane.Bokeh``) whose
:class:`~bokeh.models.ColumnDataSource` objects are *updated*, never
re-rendered.  The page's single periodic callback calls
:meth:`FrameView.update` with each new :class:`~spikewb.workbench.sessions.session.Snapshot`
inside one ``pn.io.hold()`` block, so all views reach the browser in one
message.  Payloads are kept small: compact dtypes (uint8 / uint16 /
float32), fixed ranges changed only when the content needs it, no tools.

Views read only the snapshot (its Frame and the small arrays the session
copied next to it); they never touch the model.
"""

from __future__ import annotations

import sys

import numpy as np
import panel as pn
from bokeh.models import Range1d
from bokeh.palettes import Category10_10, RdBu11
from bokeh.plotting import figure

#: Colours of layers 0..L (input, hidden..., output).
LAYER_COLORS = ("#7f7f7f", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#d62728")
#: Colours of traced neurons.
TRACE_COLORS = tuple(Category10_10[i] for i in (0, 1, 2, 3))
#: Signed diverging palette: negative blue, zero white, positive red.
SIGNED = tuple(RdBu11)
#: Grey ramp for intensities (black = 0).
GREYS = tuple(f"#{v:02x}{v:02x}{v:02x}" for v in np.linspace(255, 0, 64).astype(int)[::-1])


def owned(x, dtype=np.float32) -> np.ndarray:
    """A fresh, owning, contiguous 1-D copy for a ColumnDataSource.

    Bokeh's binary transport has mis-read views into larger buffers; owned
    copies in compact dtypes are always safe and small.
    """
    return np.array(x, dtype=dtype, copy=True, order="C").reshape(-1)


def make_figure(title: str = "", height: int = 220, x_range=None, y_range=None, **kw):
    """A Bokeh figure without tools, fixed ranges by default, stretching in width."""
    opts = dict(title=title, height=height, sizing_mode="stretch_width", tools="", toolbar_location=None,
                x_range=x_range if x_range is not None else Range1d(0, 1),
                y_range=y_range if y_range is not None else Range1d(0, 1),
                output_backend="canvas", min_border_left=40, min_border_right=10)
    opts.update(kw)
    if opts.get("height") is None:
        opts.pop("height")
    fig = figure(**opts)
    fig.title.text_font_size = "12px"
    fig.xgrid.visible = False
    fig.outline_line_color = None
    return fig


def set_range(rng: Range1d, start: float, end: float) -> None:
    """Change a fixed range only when it really changes (no message otherwise)."""
    if rng.start != start or rng.end != end:
        rng.update(start=start, end=end)


def nice_ceiling(value: float) -> float:
    """Round up to 1, 2 or 5 times a power of ten (stable axis limits).

    >>> nice_ceiling(0.7), nice_ceiling(13), nice_ceiling(0)
    (1.0, 20.0, 1.0)
    """
    if not np.isfinite(value) or value <= 0:
        return 1.0
    exp = np.floor(np.log10(value))
    for m in (1.0, 2.0, 5.0, 10.0):
        if value <= m * 10 ** exp + 1e-12:
            return float(m * 10 ** exp)
    return float(10 ** (exp + 1))


def image_of(flat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A flat sample as a 2-D float32 image, flipped for Bokeh (origin bottom-left)."""
    flat = np.asarray(flat)
    if len(shape) >= 2 and int(np.prod(shape[:2])) == flat.size:
        img = flat.reshape(shape[0], shape[1])
    else:  # not an image: one row
        img = flat.reshape(1, -1)
    return np.ascontiguousarray(img[::-1], dtype=np.float32)


class LivePage:
    """What the live pages (trainer, compare) share as Panel components outside a served template.

    A page provides ``sidebar()``, ``main()``, ``start()`` and ``SIDEBAR_WIDTH``.
    ``__panel__`` (what a notebook cell, ``.show()`` and ``.servable()`` display)
    is the whole page, sidebar left, built once, and starts the periodic update
    in the current server session or on the notebook kernel's event loop
    (:func:`start_periodic` starts nothing where nothing would run it).
    """

    SIDEBAR_WIDTH = 300
    _layout = None

    def show(self, **kwargs):
        """Serve this object in a browser tab from this process (``pn.serve`` keywords: ``port``,
        ``threaded``, ``open`` ...); the layout is built inside the served session, so its periodic
        update runs there.  One tab at a time: the views hold one document's plots."""
        kwargs.setdefault("title", "Spike Workbench")
        return pn.serve(self.__panel__, **kwargs)

    def __panel__(self):
        if self._layout is None:
            self._layout = pn.Row(pn.Column(self.sidebar(), width=self.SIDEBAR_WIDTH, margin=(0, 10, 0, 0)),
                                  self.main(), sizing_mode="stretch_width", css_classes=["wb-inline"])
        self.start()
        return self._layout


class FrameView(pn.viewable.Viewer):
    """Base of the live views: ``update(snapshot)``, ``clear()`` and a layout.

    ``max_rate`` (Hz, None = every refresh) caps how often the page updates the
    view: each plot update costs the browser roughly 10 ms of main-thread time
    in software rendering, so slow-changing views (learning curves, weights)
    are refreshed less often than the raster.
    """

    #: Most updates per second the page sends this view (None: every refresh).
    max_rate: float | None = None

    def __init__(self, **params):
        super().__init__(**params)
        self._generation = None

    def update(self, snap) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def clear(self) -> None:
        """Empty the plots (after a reset or a rebuild)."""

    def new_generation(self, snap) -> bool:
        """True (and clears) when the snapshot belongs to a new network / reset."""
        if snap.generation != self._generation:
            self._generation = snap.generation
            self.clear()
            return True
        return False


# BokehJS 3.9 consults the CSS cascade (``getComputedStyle(el).getPropertyValue("--bk-...")``)
# before every visual property read on every paint, to support CSS theming of canvas visuals
# (bokeh/bokeh#13828; the cost is discussed in bokeh/bokeh#15286).  The workbench defines no
# ``--bk-*`` variables, yet a profile of the trainer page while training showed 28 % of the
# browser's main thread in ``getPropertyValue`` (plus the style recalculations it forces).
# This shim answers those reads with "" (what an undefined custom property gives), so Bokeh
# falls back to the model values at once.  Other property names are untouched.
_CSS_SHIM = """
if (!window.__wb_css_shim) {
  window.__wb_css_shim = true;
  const proto = CSSStyleDeclaration.prototype;
  const original = proto.getPropertyValue;
  proto.getPropertyValue = function (name) {
    if (typeof name === "string" && name.startsWith("--bk-")) return "";
    return original.call(this, name);
  };
}
"""


def install_render_shim(doc=None) -> None:
    """Install the ``--bk-*`` CSS-read shortcut (see ``_CSS_SHIM``) in a served document."""
    from bokeh.models import CustomJS

    doc = doc if doc is not None else pn.state.curdoc
    if doc is None or getattr(doc, "_wb_css_shim", False):
        return
    doc.js_on_event("document_ready", CustomJS(code=_CSS_SHIM))
    doc._wb_css_shim = True


#: GIL switch interval (s) while a page is served.  The worker releases the GIL in every
#: numba kernel and BLAS call; with Python's default 5 ms the server thread then keeps
#: the GIL for up to 5 ms each time it is busy, so each release can cost the worker that
#: long (the "convoy effect").  A shorter interval hands it back sooner.
SWITCH_INTERVAL = 0.0005


def start_periodic(tick, refresh_hz: float, on_destroyed=None):
    """Start a page's periodic callback in the current server session and return it.

    Returns ``None`` (and starts nothing) where nothing would run it: outside a
    server session with no running event loop (a notebook kernel has one).

    Shared by the live pages: lowers the GIL switch interval, installs the CSS-read
    shim, runs ``tick`` every ``1 / refresh_hz`` s as a *background* callback (no busy
    indicator, no log record per call), registers it so Panel stops it with the
    session, and calls ``on_destroyed(session_context)`` when the session ends.
    """
    import asyncio

    from panel.io.callbacks import PeriodicCallback

    doc = pn.state.curdoc
    served = doc is not None and doc.session_context is not None
    try:
        looping = asyncio.get_running_loop().is_running()
    except RuntimeError:
        looping = False
    if not (served or looping):
        # a plain script, or a layout built before it is served (``.show()``): nothing would run
        # the callback; the page starts it when it is displayed in a session or a notebook
        return None
    if sys.getswitchinterval() > SWITCH_INTERVAL:
        sys.setswitchinterval(SWITCH_INTERVAL)
    doc = pn.state.curdoc
    install_render_shim(doc)
    callback = PeriodicCallback(callback=tick, period=int(round(1000 / refresh_hz)), background=True, log=False)
    callback.start()
    periodic = getattr(pn.state, "_periodic", None)
    if doc is not None and isinstance(periodic, dict):
        periodic.setdefault(doc, []).append(callback)
    if on_destroyed is not None and doc is not None and doc.session_context is not None:
        # Bokeh checks the signature: exactly one argument named session_context
        pn.state.on_session_destroyed(on_destroyed)
    return callback


def stop_periodic(callback) -> None:
    """Stop a callback from :func:`start_periodic` (``None`` and repeated stops are fine)."""
    if callback is not None:
        try:
            callback.stop()
        except Exception:  # already stopped with its session
            pass
