"""Hyperparameter sweeps on Dask distributed.

Every combination of a grid is one independent task that trains a network into
its own run directory::

    OUT/
      sweep.json                 the sweep's specification
      <run id>/config.json       the combination (rule, parameters, dataset, ...)
      <run id>/metrics.json|csv  per-epoch metrics, rewritten after every epoch
      <run id>/checkpoint.npz    the latest checkpoint (atomic)
      <run id>/status.json       {"status": "done" | "failed" | "running", ...}

A sweep is resumable: runs whose ``status.json`` says ``done`` are skipped when
the sweep is started again; failed and interrupted runs are run again (an
interrupted run resumes from its checkpoint).  A failing combination records
its error and traceback and does not stop the others.

Tasks run on a ``distributed.LocalCluster`` (one single-threaded worker process
per core) unless a scheduler address is given, in which case any cluster works,
provided every worker sees ``OUT`` (a shared filesystem) and has this package
installed.  Progress over epochs reaches the client through a Dask ``Queue``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from spikewb.engine.errors import ConfigError
from spikewb.engine.text import parse_int
from spikewb.engine.training.setup import RunSetup

#: Keys of a combination that are not rule hyperparameters: the run setup's fields and the schedule.
SCHEDULE_KEYS = ("epochs", "train_limit", "eval_limit")
SPECIAL_KEYS = (*RunSetup.FIELDS, *SCHEDULE_KEYS)


def _value(key: str, text: str):
    """One grid value: a setup field or a schedule count read as such, else JSON / text.

    Rule hyperparameters stay loosely typed here (the grid may vary the rule
    itself); :func:`setup_of` checks every combination against its rule.
    """
    if key == "hidden":
        return RunSetup.parse_hidden(text.replace("/", ","))
    if key == "seed":
        return RunSetup.parse_seed(text)
    if key in SCHEDULE_KEYS:
        return parse_int(text)
    if key in ("rule", "dataset"):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_grid(text: str) -> dict[str, list]:
    """Parse ``"lr=1e-5,3e-5 hidden=400,1000"`` into ``{"lr": [1e-5, 3e-5], "hidden": [[400], [1000]]}``.

    Hidden layer lists use ``/`` between layers inside one value: ``hidden=400/100,1000/100``.

    >>> parse_grid("lr=1e-5,3e-5 hidden=400,1000/100")
    {'lr': [1e-05, 3e-05], 'hidden': [[400], [1000, 100]]}
    """
    grid: dict[str, list] = {}
    for item in text.split():
        if "=" not in item:
            raise ConfigError(f"grid entries look like KEY=V1,V2,...; got {item!r}")
        key, values = item.split("=", 1)
        vals = [v for v in values.split(",") if v != ""]
        if not vals:
            raise ConfigError(f"grid key {key!r} has no values")
        try:
            grid[key] = [_value(key, v) for v in vals]
        except ValueError as exc:
            raise ConfigError(f"grid key {key!r}: {exc}") from None
    return grid


def setup_of(spec: Mapping[str, Any]) -> RunSetup:
    """The :class:`RunSetup` of one combination, every value checked (raises ConfigError).

    Rule hyperparameters given as text (a YAML file's strings) are read against
    the rule's declarations, like a link's or ``-p``'s.
    """
    rule = str(spec.get("rule", "desire"))
    params = {}
    for k, v in spec.items():
        if k in SPECIAL_KEYS:
            continue
        params[k] = RunSetup.parse_assignment(rule, k, v) if isinstance(v, str) else v
    setup = RunSetup(rule=rule, dataset=str(spec.get("dataset", "mnist-5k")), seed=int(spec.get("seed", 0)),
                     hidden=[int(h) for h in spec.get("hidden", [100])], params=params)
    setup.make_rule()                       # unknown names, types and bounds raise ConfigError
    return setup


def expand(grid: dict[str, list], base: dict[str, Any]) -> list[dict[str, Any]]:
    """All combinations of ``grid`` on top of ``base`` (cartesian product, grid order)."""
    keys = list(grid)
    combos = []
    for values in itertools.product(*(grid[k] for k in keys)):
        combos.append({**base, **dict(zip(keys, values))})
    return combos


def run_id(spec: dict[str, Any], varying: Iterable[str]) -> str:
    """A readable, filesystem-safe directory name from the varying keys."""
    parts = []
    for k in varying:
        v = spec[k]
        v = "-".join(map(str, v)) if isinstance(v, list) else v
        parts.append(f"{k}={v}")
    name = "_".join(parts) or "run"
    return re.sub(r"[^A-Za-z0-9=._+-]", "_", name)[:120]


def _atomic_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)


def read_status(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(run_dir) / "status.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {"status": "pending"}


def train_run(spec: dict[str, Any], run_dir: str | os.PathLike, progress: Callable[[int], None] | None = None
              ) -> dict[str, Any]:
    """Train one combination into ``run_dir``; never raises (errors are recorded).

    Returns the final status dict.
    """
    from spikewb.engine.data.datasets import load_dataset
    from spikewb.engine.training.trainer import Trainer

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    status = read_status(run_dir)
    if status.get("status") == "done":
        return status
    _atomic_json(run_dir / "config.json", spec)
    t0 = time.perf_counter()
    _atomic_json(run_dir / "status.json", {"status": "running", "pid": os.getpid(), "started": time.time()})
    try:
        setup = setup_of(spec)
        data = load_dataset(setup.dataset)
        if spec.get("train_limit") or spec.get("eval_limit"):
            data = data.subset(spec.get("train_limit"), spec.get("eval_limit"))
        ckpt = run_dir / "checkpoint.npz"
        if ckpt.exists():
            trainer = Trainer.from_checkpoint(ckpt, data=data)
        else:
            trainer = Trainer(setup.make_rule(), data, setup.architecture(data.n_features, data.n_classes),
                              seed=setup.seed)

        def on_epoch(result):
            rows = [h.as_dict() for h in trainer.history]
            _atomic_json(run_dir / "metrics.json", rows)
            header = list(rows[0])
            lines = [",".join(header)] + [",".join(str(r[h]) for h in header) for r in rows]
            tmp = run_dir / "metrics.csv.tmp"
            tmp.write_text("\n".join(lines) + "\n")
            os.replace(tmp, run_dir / "metrics.csv")
            if progress is not None:
                progress(result.epoch)

        trainer.fit(int(spec.get("epochs", 1)), checkpoint_dir=run_dir, on_epoch=on_epoch)
        hist = trainer.history
        status = {"status": "done", "seconds": time.perf_counter() - t0,
                  "final_test_accuracy": hist[-1].test_accuracy if hist else None,
                  "best_test_accuracy": max((h.test_accuracy for h in hist), default=None)}
    except Exception as exc:  # recorded, so the other runs go on
        status = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                  "traceback": traceback.format_exc(), "seconds": time.perf_counter() - t0}
    _atomic_json(run_dir / "status.json", status)
    return status


def _task(spec: dict[str, Any], run_dir: str, queue_name: str | None) -> dict[str, Any]:
    """The Dask task: train and report each finished epoch through a Dask queue."""
    from spikewb.engine.config import use_one_blas_thread

    use_one_blas_thread()  # one BLAS thread per worker process: the processes share the cores
    progress = None
    if queue_name:
        from distributed import Queue
        q = Queue(queue_name)
        progress = lambda epoch: q.put([run_dir, epoch])  # noqa: E731
    return {"run_dir": run_dir, **train_run(spec, run_dir, progress)}


def plan(out: Path, combos: list[dict[str, Any]]) -> list[tuple[dict, Path]]:
    """Pair each combination with its run directory (ids unique within the sweep)."""
    varying = [k for k in combos[0] if len({json.dumps(c.get(k)) for c in combos}) > 1] if combos else []
    seen: dict[str, int] = {}
    out_runs = []
    for spec in combos:
        rid = run_id(spec, varying)
        if rid in seen:
            seen[rid] += 1
            rid = f"{rid}_{seen[rid]}"
        else:
            seen[rid] = 0
        out_runs.append((spec, out / rid))
    return out_runs


def run_sweep(combos: list[dict[str, Any]], out: str | os.PathLike, scheduler: str | None = None,
              n_workers: int | None = None, progress: bool = True,
              echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run every combination on Dask; returns one status dict per combination."""
    import logging

    from distributed import Client, LocalCluster, Queue, as_completed
    from tqdm import tqdm

    logging.getLogger("distributed").setLevel(logging.WARNING)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = plan(out, combos)
    _atomic_json(out / "sweep.json", {"combinations": combos, "created": time.time()})
    todo = [(s, d) for s, d in runs if read_status(d).get("status") != "done"]
    skipped = len(runs) - len(todo)
    if skipped:
        echo(f"{skipped} finished run(s) skipped")
    results = [{"run_dir": str(d), **read_status(d)} for s, d in runs if (s, d) not in todo]
    if not todo:
        return results
    cluster = None
    if scheduler:
        client = Client(scheduler, timeout="20s")
    else:
        n = n_workers or os.cpu_count() or 1
        cluster = LocalCluster(n_workers=min(n, len(todo)), threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
        client = Client(cluster)
    qname = f"spikewb-progress-{os.getpid()}-{time.time_ns()}"
    try:
        queue = Queue(qname, client=client)
        total_epochs = sum(int(s.get("epochs", 1)) for s, _ in todo)
        bar_runs = tqdm(total=len(todo), desc="runs", unit="run", disable=not progress, position=0)
        bar_epochs = tqdm(total=total_epochs, desc="epochs", unit="epoch", disable=not progress, position=1)
        futures = [client.submit(_task, s, str(d), qname, pure=False, key=f"run-{d.name}-{time.time_ns()}")
                   for s, d in todo]
        pending = as_completed(futures)
        for fut in pending:
            while queue.qsize():
                queue.get()
                bar_epochs.update(1)
            res = fut.result()
            results.append(res)
            bar_runs.update(1)
            if res.get("status") == "failed":
                bar_runs.write(f"failed: {Path(res['run_dir']).name}: {res.get('error')}")
        while queue.qsize():
            queue.get()
            bar_epochs.update(1)
        bar_runs.close()
        bar_epochs.close()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return results


def collect(out: str | os.PathLike) -> list[dict[str, Any]]:
    """Every run under ``out``: config, status and metrics (for reports and the results page)."""
    rows = []
    for d in sorted(Path(out).iterdir()):
        if not (d / "config.json").exists():
            continue
        try:
            config = json.loads((d / "config.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        try:
            metrics = json.loads((d / "metrics.json").read_text())
        except (OSError, json.JSONDecodeError):
            metrics = []
        rows.append({"run": d.name, "dir": str(d), "config": config, "status": read_status(d), "metrics": metrics})
    return rows


def load_config_file(path: str | os.PathLike) -> tuple[dict[str, list], dict[str, Any]]:
    """Read a YAML (or JSON) sweep file: ``{grid: {key: [values]}, <fixed key>: value, ...}``."""
    import yaml
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read sweep file {path}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("grid"), dict):
        raise ConfigError(f"{path}: a sweep file needs a 'grid:' mapping of key -> list of values")
    grid = {k: (v if isinstance(v, list) else [v]) for k, v in doc.pop("grid").items()}
    return grid, doc
