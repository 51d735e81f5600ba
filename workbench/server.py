"""Serve the workbench apps (``apps/*.py``) with Panel.

:func:`serve` is what ``spikewb serve`` calls; ``panel serve apps/trainer.py``
serves the same page.  Each browser tab gets its own training session; tabs
closed for ``unused_session_lifetime`` ms are cleaned up, which stops their
worker threads.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

#: Where the app scripts live (``apps/`` next to the packages).
APPS_DIR = Path(__file__).resolve().parent.parent / "apps"


def app_files(apps_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """``{route name: script}`` for every ``*.py`` in the apps folder (not starting with ``_``)."""
    directory = Path(apps_dir) if apps_dir is not None else APPS_DIR
    if not directory.is_dir():
        raise FileNotFoundError(f"apps folder not found: {directory}")
    apps = {p.stem: p for p in sorted(directory.glob("*.py")) if not p.name.startswith("_")}
    if not apps:
        raise FileNotFoundError(f"no apps (*.py) in {directory}")
    return apps


def warm_up() -> None:
    """Compile (or load from cache) the numba kernels and load the default data once,
    so the first page does not wait for it."""
    from .session import TrainingSession

    s = TrainingSession(hidden=[8], autostart=False)
    try:
        s.trainer.step()
    finally:
        s.close()


def serve(port: int = 5006, address: str = "127.0.0.1", show: bool = False, apps_dir=None,
          allow_websocket_origin: list[str] | None = None, num_procs: int = 1, warm: bool = True,
          threaded: bool = False, **kwargs):
    """Serve every app in ``apps/`` (each at ``/<name>``; the landing page ``index`` also at ``/``).

    Parameters
    ----------
    port, address
        Where to listen (``port=0`` picks a free port).
    show
        Open a browser tab.
    apps_dir
        Folder of app scripts (default: the package's ``apps/``).
    allow_websocket_origin
        Extra ``host:port`` origins allowed to open the websocket (e.g. behind a
        proxy); the listening address is always allowed.
    num_procs
        Server processes (sessions are independent; each has its own worker).
    kwargs
        Passed to :func:`panel.serve`.

    Returns
    -------
    The Bokeh server (when ``threaded``, a thread running it); blocks otherwise.
    """
    import panel as pn

    apps = app_files(apps_dir)
    if warm:
        warm_up()
    routes = {name: str(path) for name, path in apps.items()}
    # the landing page lists every app; without it the trainer opens at "/"
    index = "index" if "index" in routes else ("trainer" if "trainer" in routes else next(iter(routes)))
    origins = list(allow_websocket_origin or [])
    for host in {address, "localhost", "127.0.0.1"}:
        origins.append(f"{host}:{port}")
    opts = dict(port=port, address=address, show=show, websocket_origin=origins, num_procs=num_procs,
                title="Spike Workbench", threaded=threaded,
                check_unused_sessions_milliseconds=2000)
    opts.update(kwargs)
    log.info("serving %s on http://%s:%s/%s", ", ".join(routes), address, port, index)
    return pn.serve({**routes, "/": routes[index]} if len(routes) > 1 else routes, **opts)


def main(argv: list[str] | None = None) -> None:
    """``python -m workbench.server [--port N] [--address A] [--show]``."""
    import argparse

    ap = argparse.ArgumentParser(description="Serve the Spike Workbench apps")
    ap.add_argument("--port", type=int, default=5006)
    ap.add_argument("--address", default="127.0.0.1")
    ap.add_argument("--show", action="store_true")
    ap.add_argument("--allow-websocket-origin", action="append", default=None)
    ap.add_argument("--num-procs", type=int, default=1)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    serve(port=args.port, address=args.address, show=args.show,
          allow_websocket_origin=args.allow_websocket_origin, num_procs=args.num_procs)


if __name__ == "__main__":
    main()
