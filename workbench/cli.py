"""The ``spikewb`` command line: serve the apps, train and evaluate headless, benchmark.

Usage errors (bad file, out-of-range value, unknown rule or dataset) print one
``error:`` line and exit with status 2; numerical failures (NaN weights) exit 3.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional

import typer

from spikewb.engine.training.setup_fields import SEED_LIMIT, SetupFields, help_text

#: The declarations of rule, dataset, hidden layers and seed (defaults and help texts of ``train``).
_SETUP = SetupFields.param

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Spike Workbench: train spiking networks with spike-based learning rules and watch them live.")

REPO_ROOT = Path(__file__).resolve().parent.parent


def _cores() -> int:
    """Threads for evaluating a test set and for SSNN minibatches from the command line: the cores
    this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:                      # not on Linux
        return max(1, os.cpu_count() or 1)


def _fail(msg: str, code: int = 2) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def _parse_params(rule: str, items: list[str] | None) -> dict:
    """``-p KEY=VALUE`` options of ``rule``, each read against its declaration (RunSetup's codec)."""
    from spikewb.engine.training.setup import RunSetup

    out = {}
    for item in items or []:
        if "=" not in item:
            _fail(f"--param expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = RunSetup.parse_assignment(rule, k.strip(), v)
    return out


class _Guard:
    """Turn the engine's own errors into one-line messages and exit codes."""

    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        from spikewb.engine.errors import NumericalError, SpikeWorkbenchError
        if exc is None:
            return False
        if isinstance(exc, NumericalError):
            _fail(str(exc), 3)
        if isinstance(exc, SpikeWorkbenchError):
            _fail(str(exc), 2)
        return False


@app.command()
def serve(port: int = typer.Option(5006, help="Port to listen on."),
          address: str = typer.Option("127.0.0.1", help="Address to bind (0.0.0.0 for all interfaces)."),
          show: bool = typer.Option(False, help="Open a browser tab."),
          allow_websocket_origin: Optional[List[str]] = typer.Option(
              None, help="Extra allowed websocket origins (host[:port]) when behind a proxy (repeatable)."),
          num_procs: int = typer.Option(1, help="Number of server processes."),
          warm: bool = typer.Option(True, help="Compile the numba kernels before serving."),
          max_training: Optional[int] = typer.Option(
              None, help="Sessions training at the same time; further ones wait for a free slot "
                         "(default: SPIKEWB_MAX_TRAINING, else the number of cores)."),
          max_synapses: Optional[int] = typer.Option(
              None, help="Largest network per session in synapses (default: SPIKEWB_MAX_SYNAPSES, else 4000000)."),
          max_steps: Optional[int] = typer.Option(
              None, "--max-steps", "--max-T",
              help="Largest T (time steps per sample) (default: SPIKEWB_MAX_STEPS, else 1000)."),
          max_layers: Optional[int] = typer.Option(
              None, help="Most hidden layers per network (default: SPIKEWB_MAX_LAYERS, else 8)."),
          memory_mb: Optional[float] = typer.Option(
              None, help="Estimated memory per session in MB, checked before a network is built "
                         "(default: SPIKEWB_MEMORY_MB, else 1024)."),
          idle_timeout: Optional[float] = typer.Option(
              None, help="Seconds without page activity after which a training session is paused and "
                         "frees its slot (default: SPIKEWB_IDLE_TIMEOUT, else 900)."),
          reconnect: Optional[float] = typer.Option(
              None, "--reconnect", metavar="SECONDS",
              help="Keep a closed or reloaded trainer tab's training running this long so the same "
                   "browser can reattach to it; 0 = off (default: SPIKEWB_RECONNECT, else 0).")):
    """Serve the workbench apps in the browser (embedded default data, no download)."""
    from spikewb.engine.errors import ConfigError
    from spikewb.workbench.server.limits import Limits

    try:
        limits = Limits.from_env()
        values = {"max_training": max_training, "max_synapses": max_synapses, "max_steps": max_steps,
                  "max_layers": max_layers, "memory_mb": memory_mb, "idle_timeout_s": idle_timeout, "reconnect_s": reconnect}
        limits.param.update(**{k: v for k, v in values.items() if v is not None})
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
    try:  # the next start then reads the bytecode (~5 ms when it is up to date, ~0.2 s saved)
        compile_bytecode()
    except OSError:
        pass
    if warm:  # the default rule is warmed before listening (server.warm_up), the others soon after
        _warm_later(WARM_DELAY)
    try:
        from spikewb.workbench.server.app import serve as _serve
    except ImportError as exc:  # pragma: no cover - only before the UI lands
        _fail(f"the web workbench is not available: {exc}")
    _serve(port=port, address=address, show=show, allow_websocket_origin=allow_websocket_origin or None,
           num_procs=num_procs, limits=limits)


@app.command()
def train(rule: str = typer.Option(_SETUP["rule"].default, help=help_text("rule")),
          dataset: str = typer.Option(_SETUP["dataset"].default, help=help_text("dataset")),
          epochs: int = typer.Option(5, min=1, help="Train until this many epochs are complete."),
          hidden: Optional[str] = typer.Option(None, help=help_text("hidden") + " A --preset brings its own."),
          preset: Optional[str] = typer.Option(None, help="Paper configuration of the rule "
                                                          "(desire: mnist or fashion-mnist)."),
          seed: int = typer.Option(_SETUP["seed"].default, help=help_text("seed")),
          param: Optional[List[str]] = typer.Option(None, "--param", "-p",
                                                    help="Rule hyperparameter KEY=VALUE (repeatable)."),
          out: Path = typer.Option(Path("runs/latest"), help="Run directory (checkpoint, metrics)."),
          resume: bool = typer.Option(False, help="Continue from OUT/checkpoint.npz."),
          eval_limit: Optional[int] = typer.Option(None, help="Evaluate on the first N test samples only."),
          train_limit: Optional[int] = typer.Option(None, help="Train on the first N training samples only."),
          progress: bool = typer.Option(True, help="Show a progress bar."),
          arch: Optional[str] = typer.Option(None, help="Network kind of rules that have one (stidi: dense or "
                                                        "conv); the same as -p arch_kind=..."),
          binary: Optional[bool] = typer.Option(None, "--binary/--real", help="Binary weights (stidi); the same "
                                                                              "as -p binary=true."),
          record: Optional[int] = typer.Option(None, "--record", min=1, metavar="N",
                                               help="Keep the frames of every N-th training sample in "
                                                    "OUT/recording.npz (spikes of all layers, potentials of the "
                                                    "first 3 neurons of each non-input layer, learning signals); "
                                                    "with --resume the recording is continued.")):
    """Train a network headless, with a progress bar, per-epoch metrics and checkpoints.

    With --record N the run also keeps OUT/recording.npz, written with every
    checkpoint; plot it with spikewb.workbench.plots (docs/recordings.md).
    """
    from spikewb.engine.data.datasets import load_dataset
    from spikewb.engine.network import Architecture
    from spikewb.engine.rules import make_rule, rule_class
    from spikewb.engine.training.reproductions import rule_setup
    from spikewb.engine.training.setup import RunSetup
    from spikewb.engine.recording import RecordingTrainer
    from spikewb.engine.training.trainer import Trainer

    with _Guard():
        cls = rule_class(rule)
        params = _parse_params(cls.key, param)
        if not 0 <= seed < SEED_LIMIT:
            _fail(f"--seed must be in [0, 2^31), got {seed}")
        trainer_cls = RecordingTrainer if record else Trainer
        for name, value, flag in (("arch_kind", arch, "--arch"), ("binary", binary, "--binary")):
            if value is None:
                continue
            if name not in cls.param:
                _fail(f"{flag} does not apply to rule {rule!r} (it has no {name!r} parameter)")
            params[name] = value
        params, hidden_sizes = rule_setup(rule, preset, params,
                                          RunSetup.parse_hidden(hidden) if hidden is not None else None)
        data = load_dataset(dataset)
        if train_limit:
            data = data.subset(n_train=train_limit)
        ckpt = out / "checkpoint.npz"
        if resume and ckpt.exists():
            trainer = trainer_cls.from_checkpoint(ckpt, data=data, **params)
            typer.echo(f"resuming {ckpt} at epoch {trainer.epoch}, sample {trainer.position}")
        else:
            if resume:
                typer.echo(f"no checkpoint at {ckpt}; starting fresh")
            rule_obj = make_rule(rule, **params)
            arch = Architecture(n_inputs=data.n_features, hidden=hidden_sizes, n_outputs=data.n_classes)
            trainer = trainer_cls(rule_obj, data, arch, seed=seed)
        trainer.eval_limit = eval_limit
        trainer.eval_workers = trainer.train_workers = _cores()
        _write_config(out, trainer)
        if record:
            _attach_recording(trainer, out, record, resumed=resume and ckpt.exists())
        typer.echo(f"{rule} on {data!r}, network "
                   f"{trainer.network}, "
                   f"seed {trainer.seed}")
        _fit_with_progress(trainer, epochs, out, progress)
        best = max((h.test_accuracy for h in trainer.history), default=float("nan"))
        typer.echo(f"done: final test accuracy {trainer.last_test_accuracy:.4f}, best {best:.4f}; "
                   f"checkpoint {ckpt}, metrics {out / 'metrics.csv'}"
                   + (f", recording {trainer.recording_path} ({len(trainer.recording)} samples)" if record else ""))


def _attach_recording(trainer, out: Path, every: int, resumed: bool) -> None:
    """Give a RecordingTrainer its recording: OUT/recording.npz continued when resuming, else a new one.

    A continued recording drops what lies past the checkpoint (samples from
    ``trainer.steps`` on), so nothing is recorded twice; its epoch history is
    the checkpoint's.  The recording is written whenever the checkpoint is.
    """
    from spikewb.engine.frame import Record
    from spikewb.engine.recording import Recording, trace_first

    path = out / "recording.npz"
    sizes = tuple(trainer.model.sizes)
    if resumed and path.exists():
        rec = Recording.load(path)
        if rec.every != every:
            _fail(f"{path} keeps every {rec.every}-th sample, not every {every}-th: resume with --record "
                  f"{rec.every}, or move the recording away to start a new one")
        if rec.layer_sizes and rec.layer_sizes != sizes:
            _fail(f"{path} was recorded on the network {'-'.join(map(str, rec.layer_sizes))}, not "
                  f"{'-'.join(map(str, sizes))}: move it away to start a new one")
        rec.truncate(trainer.steps)
        typer.echo(f"continuing the recording {path} ({len(rec)} samples kept so far)")
    else:
        rec = Recording(every=every, record=Record(spikes=True, neurons=trace_first(sizes, 3)),
                        info={"rule": trainer.rule.key, "dataset": trainer.data.name, "seed": trainer.seed,
                              "network": trainer.network})
    rec.history = list(trainer.history)
    trainer.recording = rec
    trainer.recording_path = path


def _fit_with_progress(trainer, epochs: int, out: Path, progress: bool,
                       again: str = "run the same command with --resume to continue") -> None:
    """``trainer.fit`` with a progress bar, a metrics line and files after every epoch.

    The checkpoint is rewritten after every epoch; Ctrl-C (or SIGTERM) saves the
    progress so far and exits with status 130 (continue with ``--resume`` /
    ``spikewb reproduce`` again).
    """
    import signal

    from tqdm import tqdm

    from spikewb.engine.config import use_one_blas_thread

    use_one_blas_thread()
    ckpt = out / "checkpoint.npz"
    bar = tqdm(total=epochs * trainer.n_train, initial=trainer.epoch * trainer.n_train + trainer.position,
               unit="sample", disable=not progress, dynamic_ncols=True, mininterval=0.5)
    last = [time.perf_counter()]

    stop = threading.Event()

    def on_frame(frame):
        if stop.is_set():                   # between two steps: the model is never saved half-updated
            raise KeyboardInterrupt
        bar.update(1)
        now = time.perf_counter()
        if now - last[0] > 0.5:
            last[0] = now
            bar.set_postfix(epoch=frame.epoch, acc=f"{frame.accuracy:.3f}",
                            test=f"{frame.test_accuracy:.3f}", refresh=False)

    def on_epoch(result):
        _write_metrics(out, trainer.history)
        msg = (f"epoch {result.epoch}: train {result.train_accuracy:.4f}  test {result.test_accuracy:.4f}  "
               f"loss {result.loss:.4f}  lr {result.lr:.3g}  {result.seconds:.1f} s")
        bar.write(msg)
        for w in trainer.warnings:
            bar.write(f"warning: {w}")
        trainer.warnings.clear()

    def on_signal(signum, frame):
        # Ctrl-C / SIGTERM ask the loop to stop after the step in progress (an exception raised
        # inside a compiled kernel's call could leave the weights half-updated); a second one
        # stops at once
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            if signal.getsignal(sig) is not signal.SIG_IGN:      # background jobs ignore SIGINT: keep it so
                previous[sig] = signal.signal(sig, on_signal)
    try:
        trainer.fit(epochs, callback=on_frame, checkpoint_dir=out, on_epoch=on_epoch)
    except KeyboardInterrupt:
        bar.close()
        if trainer.history:
            _write_metrics(out, trainer.history)
        trainer.save(ckpt)
        typer.echo(f"interrupted; progress saved to {ckpt} (epoch {trainer.epoch}, sample {trainer.position}; "
                   f"{again})")
        raise typer.Exit(130)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    bar.close()


def _write_config(out: Path, trainer) -> None:
    out.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in trainer.meta().items() if k not in ("rng", "order_rng", "history", "running")}
    # the layers actually built (a conv STiDi net ignores arch.hidden): e.g. 784-c5x32-p2-10
    config["network"] = trainer.network
    (out / "config.json").write_text(json.dumps(config, indent=2))


def _write_metrics(out: Path, history) -> None:
    rows = [h.as_dict() for h in history]
    tmp = out / "metrics.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, out / "metrics.csv")
    tmp = out / "metrics.json.tmp"
    tmp.write_text(json.dumps(rows, indent=1))
    os.replace(tmp, out / "metrics.json")


@app.command("eval")
def evaluate(checkpoint: Path = typer.Argument(..., help="A checkpoint.npz written by `spikewb train`."),
             dataset: Optional[str] = typer.Option(None, help="Dataset (default: the one trained on)."),
             split: str = typer.Option("test", help="test or train."),
             limit: Optional[int] = typer.Option(None, help="Only the first N samples.")):
    """Evaluate a checkpoint's accuracy on a dataset."""
    from spikewb.engine.data.datasets import load_dataset
    from spikewb.engine.training.trainer import Trainer

    with _Guard():
        if split not in ("test", "train"):
            _fail(f"--split must be test or train, got {split!r}")
        data = load_dataset(dataset) if dataset else None
        trainer = Trainer.from_checkpoint(checkpoint, data=data)
        trainer.eval_workers = _cores()
        t0 = time.perf_counter()
        acc = trainer.evaluate(split, limit=limit)
        n = limit or len(trainer.data.y_test if split == "test" else trainer.data.y_train)
        typer.echo(f"{trainer.rule.key} "
                   f"{trainer.network} "
                   f"epoch {trainer.epoch} on "
                   f"{trainer.data.name} {split} ({n} samples): accuracy {acc:.4f} "
                   f"({time.perf_counter() - t0:.1f} s)")


@app.command()
def export(source: Path = typer.Argument(..., help="A run folder (its recording.npz) or a recording .npz "
                                                   "(`spikewb train --record N`)."),
           html: Optional[Path] = typer.Option(None, help="The HTML file to write (default: next to the "
                                                           "recording, same name with .html)."),
           title: Optional[str] = typer.Option(None, help="Heading of the page (default: rule and dataset)."),
           max_samples: int = typer.Option(400, min=1, max=100_000,
                                           help="Most kept samples in the file (evenly spaced).")):
    """Write a recorded run as one self-contained HTML file: no server, no network, a slider scrubs the samples."""
    from spikewb.engine.recording import Recording
    from spikewb.workbench.export import export_html, export_summary

    with _Guard():
        path = source / "recording.npz" if source.is_dir() else source
        if not path.is_file():
            _fail(f"no recording at {path}: train with `spikewb train ... --record N --out RUN` first")
        rec = Recording.load(path)
        out = html if html is not None else path.with_suffix(".html")
        t0 = time.perf_counter()
        try:
            export_html(rec, out, title=title, max_samples=max_samples)
        except OSError as exc:
            _fail(f"cannot write {out}: {exc.strerror or exc}")
        info = export_summary(out)
        typer.echo(f"wrote {out}: {info['samples']} of {len(rec)} kept samples, {info['bytes'] / 1e6:.1f} MB, "
                   f"opens from disk with no server ({time.perf_counter() - t0:.1f} s)")


@app.command()
def reproduce(name: Optional[str] = typer.Argument(None, help="Reproduction to run (see --list)."),
              epochs: Optional[int] = typer.Option(None, min=1, help="Train until this many epochs are complete "
                                                                      "(default: the paper's)."),
              out: Optional[Path] = typer.Option(None, help="Run folder (default: reproductions/NAME); "
                                                            "a checkpoint there is resumed."),
              dataset: Optional[str] = typer.Option(None, help="Another dataset than the paper's "
                                                               "(name or IDX folder; for quick checks)."),
              seed: int = typer.Option(0, help="Seed of a fresh run (a resumed run keeps its own)."),
              train_limit: Optional[int] = typer.Option(None, help="Train on the first N training samples only."),
              eval_limit: Optional[int] = typer.Option(None, help="Evaluate on the first N test samples only."),
              progress: bool = typer.Option(True, help="Show a progress bar."),
              list_: bool = typer.Option(False, "--list", help="List the reproductions and exit."),
              table: Optional[Path] = typer.Option(None, help="Print the Markdown table of the results stored "
                                                              "under this folder (e.g. reproductions) and exit."),
              readme: bool = typer.Option(False, help="With --table: also write it into the README's "
                                                      "reproduction table.")):
    """Run a paper's setting end to end (resumable) and compare with the published accuracy.

    Official datasets are read from the cache or from a folder named like the
    set inside any folder of ``$SPIKEWB_DATA`` (e.g. ``SPIKEWB_DATA=../shared/data``).
    Interrupt with Ctrl-C at any time: the same command continues where it stopped.
    """
    from spikewb.engine.data.datasets import load_dataset
    from spikewb.engine.training import reproductions as rp

    with _Guard():
        if list_:
            for r in rp.REPRODUCTIONS.values():
                paper = "no published number" if r.published is None else f"paper {r.published:.2f} %"
                typer.echo(f"{r.name:24s} {r.rule:10s} {r.dataset:14s} {r.epochs:4d} epochs  {paper}\n"
                           f"{'':24s} {r.source}" + (f"\n{'':24s} note: {r.notes}" if r.notes else ""))
            return
        if table is not None:
            text = rp.table(table)
            typer.echo(text)
            if readme:
                from spikewb.workbench.benchrun import update_readme
                update_readme(REPO_ROOT / "README.md", text + "\n", rp.README_START, rp.README_END)
            return
        if name is None:
            _fail(f"name a reproduction: {', '.join(sorted(rp.REPRODUCTIONS))} (or --list)")
        repro = rp.get(name)
        epochs = epochs or repro.epochs
        out = out or Path("reproductions") / repro.name
        data = load_dataset(dataset or repro.dataset)
        if train_limit:
            data = data.subset(n_train=train_limit)
        trainer, resumed = rp.build_trainer(repro, data, out, seed=seed)
        trainer.eval_limit = eval_limit
        trainer.eval_workers = trainer.train_workers = _cores()
        _write_config(out, trainer)
        if resumed:
            typer.echo(f"resuming {out / 'checkpoint.npz'} at epoch {trainer.epoch}, sample {trainer.position}")
        typer.echo(f"{repro.name}: {repro.rule} on {data!r}, network {trainer.network}, "
                   f"{epochs} epochs (paper {repro.epochs})")
        t0 = time.perf_counter()
        try:
            _fit_with_progress(trainer, epochs, out, progress, again="run the same command to continue")
        finally:
            if trainer.history:
                command = repro.command(epochs, dataset=dataset, train_limit=train_limit, eval_limit=eval_limit,
                                        out=None if out == Path("reproductions") / repro.name else out)
                rp.write_result(out, rp.result_of(repro, trainer, dataset or repro.dataset,
                                                  time.perf_counter() - t0, epochs, command))
        last = 100.0 * trainer.history[-1].test_accuracy
        best = 100.0 * max(h.test_accuracy for h in trainer.history)
        paper = "no published number" if repro.published is None else f"published {repro.published:.2f} %"
        typer.echo(f"{repro.name}: test accuracy {last:.2f} % after {len(trainer.history)} epochs "
                   f"(best {best:.2f} %); {paper} after {repro.epochs} epochs ({repro.source})")


@app.command()
def rules():
    """List the learning rules and their parameters."""
    from spikewb.engine.rules import rule_class, rule_names
    from spikewb.engine.rules.base import PLUGIN_ERRORS
    for name in rule_names():
        cls = rule_class(name)
        typer.echo(f"{name:12s} {cls.title}  (signal: {cls.signals})")
        for pname, p in cls.param.objects("existing").items():
            if pname == "name":
                continue
            typer.echo(f"    {pname:14s} default {p.default!r:12}  {p.doc or ''}")
    for name, reason in PLUGIN_ERRORS.items():
        typer.echo(f"rule plugin {name!r} not loaded: {reason}", err=True)


@app.command()
def datasets(download: Optional[str] = typer.Option(None, help="Download an official set (mnist, fashion-mnist) into the cache.")):
    """List the datasets, or download one into the cache."""
    from spikewb.engine.data import datasets as ds
    with _Guard():
        if download:
            path = ds.download(download)
            typer.echo(f"{download} is in {path}")
            return
        for name in ds.EMBEDDED:
            typer.echo(f"{name:14s} embedded ({ds.EMBEDDED[name]})")
        for name in ds.OFFICIAL:
            where = ds.cache_dir() / name
            typer.echo(f"{name:14s} official; cache {where} ({'present' if where.is_dir() else 'not downloaded'})")


#: Seconds after ``spikewb serve`` starts before the other rules' kernels are loaded.
WARM_DELAY = 15.0


def _warm_later(delay: float) -> threading.Thread:
    """Load every rule's kernels in a low-priority background thread after ``delay`` s.

    Loading all kernels from the numba cache takes 1.5-3 s of CPU; doing it before
    the server listens delayed the first page by that much.  A rule picked before
    the thread is done compiles on first use instead (numba serialises compiles).
    """
    def run():
        time.sleep(delay)
        try:  # Linux: per-thread niceness, so the warm-up yields to page requests and training
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            pass
        try:
            _warm_kernels(quiet=True)
        except Exception:  # never fatal: kernels then compile on first use
            logging.getLogger(__name__).exception("background kernel warm-up failed")

    thread = threading.Thread(target=run, name="spikewb-warm", daemon=True)
    thread.start()
    return thread


def _warm_kernels(quiet: bool = False) -> float:
    """Compile (or load from the numba cache) the kernels of every rule on a tiny net."""
    import numpy as np

    from spikewb.engine.data.datasets import load_dataset
    from spikewb.engine.network import Architecture
    from spikewb.engine.rules import make_rule, rule_names
    from spikewb.engine.training.trainer import Trainer

    t0 = time.perf_counter()
    data = load_dataset("mnist-5k").subset(8, 4)
    for name in rule_names():
        try:
            tr = Trainer(make_rule(name), data, Architecture(hidden=[8]), seed=0)
            tr.step()
            tr.rule.predict(tr.model, data.x_test[:1].astype(np.float32) / 255.0)
        except Exception as exc:  # a rule that cannot run on images is warmed by its own app
            logging.getLogger(__name__).debug("warm-up of %s skipped: %s", name, exc)
        from spikewb.engine.rules import rule_class
        rule_class(name).warm_kernels()           # kernels a short image step misses (NormAD's tasks)
    dt = time.perf_counter() - t0
    if not quiet:
        typer.echo(f"kernels ready in {dt:.1f} s")
    return dt


def compile_bytecode() -> None:
    """Write the Python bytecode (``__pycache__``) of the project's own packages.

    pip does this when it installs a package, but not for an editable install, and
    with ``PYTHONDONTWRITEBYTECODE`` set Python never writes it itself: every
    start of ``spikewb serve`` then recompiles ~60 modules (~0.2 s).  Explicit
    compilation writes the files whatever that variable says.
    """
    import compileall

    for name in ("engine", "workbench", "apps"):
        folder = REPO_ROOT / name
        if folder.is_dir() and os.access(folder, os.W_OK):
            compileall.compile_dir(str(folder), quiet=1, workers=1)


@app.command()
def warm():
    """Compile the numba kernels into the on-disk cache and the project's bytecode (first start is then fast)."""
    compile_bytecode()
    _warm_kernels()


@app.command()
def bench(names: Optional[List[str]] = typer.Argument(None, help="Benchmarks to run (default: all), "
                                                                  "e.g. desire ui stidi."),
          quick: bool = typer.Option(False, help="Small sizes, a few seconds each (CI smoke mode)."),
          out: Path = typer.Option(Path("bench-results"), help="Where to write results.csv / results.md."),
          readme: bool = typer.Option(False, help="Then write the README's performance table from "
                                                  "OUT/latest.csv (the newest full run of every benchmark); "
                                                  "with no NAMES, only do that.")):
    """Run benchmarks from tests/bench side by side with their references; write CSV + Markdown."""
    from spikewb.workbench.benchrun import (date_span, discover, machine, read_rows, readme_table, run_benchmarks,
                                    update_readme)
    if readme and not names:
        rows = read_rows(out / "latest.csv")
        if not rows:
            _fail(f"no benchmark results in {out / 'latest.csv'}: run `spikewb bench` (full, not --quick) first")
        stamp = date_span(rows)
        header = (f"Generated from `{out / 'latest.csv'}` ({machine()}, {stamp}); "
                  "reproduce with `spikewb bench && spikewb bench --readme`.")
        try:
            update_readme(REPO_ROOT / "README.md", readme_table(rows, header))
        except (OSError, ValueError) as exc:
            _fail(str(exc))
        typer.echo(f"README performance table: {len(rows)} rows from {out / 'latest.csv'}")
        return
    available = discover()
    if not available:
        _fail(f"no benchmarks found (expected {REPO_ROOT / 'tests' / 'bench'}; run from a source checkout)")
    chosen = names or sorted(available)
    unknown = [n for n in chosen if n not in available]
    if unknown:
        _fail(f"unknown benchmark(s) {unknown}; available: {sorted(available)}")
    with _Guard():
        table = run_benchmarks(chosen, quick=quick, out=out, echo=typer.echo)
    typer.echo(table)
    if readme:
        if quick:
            _fail("--readme takes full runs only (quick sizes are not performance figures)")
        bench(names=None, quick=False, out=out, readme=True)


@app.command()
def sweep(config: Optional[Path] = typer.Argument(None, help="Sweep file (YAML): grid: {key: [values]} "
                                                              "plus fixed keys (rule, dataset, epochs, ...)."),
          grid: Optional[str] = typer.Option(None, help='Grid, e.g. "lr=1e-5,3e-5 hidden=400,1000/100".'),
          rule: str = typer.Option("desire", help="Learning rule for every run."),
          dataset: str = typer.Option("mnist-5k", help="Dataset for every run."),
          epochs: int = typer.Option(3, min=1, help="Epochs per run."),
          seed: int = typer.Option(0, help="Seed for every run (put seed in the grid to vary it)."),
          hidden: str = typer.Option("100", help="Hidden sizes when not in the grid, e.g. 400 or 1000,100."),
          train_limit: Optional[int] = typer.Option(None, help="Train on the first N samples only."),
          eval_limit: Optional[int] = typer.Option(None, help="Evaluate on the first N test samples only."),
          out: Path = typer.Option(Path("runs/sweep"), help="Sweep directory (one run directory per combination)."),
          scheduler: Optional[str] = typer.Option(None, help="Address of a running Dask scheduler "
                                                             "(default: a LocalCluster on this machine)."),
          workers: Optional[int] = typer.Option(None, help="LocalCluster worker processes (default: cores)."),
          report: Optional[Path] = typer.Option(None, help="Only write an HTML report for this sweep directory."),
          progress: bool = typer.Option(True, help="Show progress bars.")):
    """Run a hyperparameter grid as independent Dask tasks; resumable; --report writes HTML."""
    from spikewb.engine.training.setup import RunSetup
    from spikewb.engine.training.sweep import expand, load_config_file, parse_grid, run_sweep, setup_of
    from spikewb.workbench.views.sweep_report import write_report

    with _Guard():
        if report is not None:
            if not report.is_dir():
                _fail(f"no sweep directory at {report}")
            typer.echo(f"report written to {write_report(report)}")
            return
        base = {"rule": rule, "dataset": dataset, "epochs": epochs, "seed": seed,
                "hidden": RunSetup.parse_hidden(hidden)}
        if train_limit:
            base["train_limit"] = train_limit
        if eval_limit:
            base["eval_limit"] = eval_limit
        if config is not None:
            g, fixed = load_config_file(config)
            base.update(fixed)
        elif grid:
            g = parse_grid(grid)
        else:
            _fail("give a sweep file or --grid")
        combos = expand(g, base)
        for c in combos:                              # validate every combination before any task starts
            setup_of(c)
        typer.echo(f"{len(combos)} run(s) into {out}" + (f" on {scheduler}" if scheduler else ""))
        results = run_sweep(combos, out, scheduler=scheduler, n_workers=workers, progress=progress,
                            echo=typer.echo)
        failed = [r for r in results if r.get("status") == "failed"]
        path = write_report(out)
        typer.echo(f"{len(results) - len(failed)} done, {len(failed)} failed; report {path}")
        if failed:
            raise typer.Exit(1)


EXPERIMENTS = {
    "tau-sweep": ("multispike", "tau_s", "Multi-spike timing BP: test accuracy and spike count against tau_s "
                                        "(tau_m = 2 tau_s), next to the single-spike-restricted network"),
    "t-sweep": ("ssnn", "T", "SSNN-BP: test accuracy against the spike-train length T"),
}


@app.command()
def experiment(name: str = typer.Argument(..., help=f"One of: {', '.join(EXPERIMENTS)}."),
               dataset: str = typer.Option("fashion-5k", help="Dataset name or IDX directory."),
               values: Optional[str] = typer.Option(None, help="Comma-separated values of the swept quantity "
                                                                "(tau_s in ms, or T in steps)."),
               epochs: int = typer.Option(1, min=1, help="Epochs per setting."),
               hidden: str = typer.Option("", help="Hidden sizes (default: the experiment's)."),
               train_limit: Optional[int] = typer.Option(None, help="Train on the first N samples only."),
               eval_limit: Optional[int] = typer.Option(None, help="Evaluate on the first N test samples only."),
               seed: int = typer.Option(0, help="Seed (the same for every setting)."),
               out: Path = typer.Option(Path("runs/experiments"), help="Where to write NAME.csv/.json/.html.")):
    """Built-in studies: tau-sweep (multi-spike BP) and t-sweep (SSNN-BP)."""
    from spikewb.engine.network import Architecture

    if name not in EXPERIMENTS:
        _fail(f"unknown experiment {name!r}; available: {', '.join(EXPERIMENTS)}")
    rule, key, title = EXPERIMENTS[name]
    with _Guard():
        kw = dict(dataset=dataset, epochs=epochs, n_train=train_limit, n_test=eval_limit, seed=seed,
                  callback=lambda row: typer.echo("  " + "  ".join(f"{k}={_short(v)}" for k, v in row.items())))
        if hidden:
            kw["hidden"] = tuple(Architecture.parse_hidden(hidden))
        try:
            parsed = [float(v) for v in values.split(",")] if values else None
        except ValueError:
            _fail(f"--values must be comma-separated numbers, got {values!r}")
        typer.echo(title)
        if name == "tau-sweep":
            from spikewb.engine.training.experiments import tau_sweep
            rows = tau_sweep(**kw, **({"tau_s_values": parsed} if parsed else {}))
        else:
            from spikewb.engine.training.experiments import t_sweep
            rows = t_sweep(**kw, **({"t_values": [int(v) for v in parsed]} if parsed else {}))
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.json").write_text(json.dumps(rows, indent=1))
        with open(out / f"{name}.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        html = _experiment_plot(name, rows, key if key in rows[0] else next(iter(rows[0])), title)
        typer.echo(f"results: {out / (name + '.csv')}, plot: {html.write(out / (name + '.html'))}")


def _short(v):
    return f"{v:.4g}" if isinstance(v, float) else v


class _Html:
    def __init__(self, layout, title):
        self.layout, self.title = layout, title

    def write(self, path: Path) -> Path:
        from bokeh.embed import file_html
        from bokeh.resources import INLINE
        path.write_text(file_html(self.layout, INLINE, title=self.title))
        return path


def _experiment_plot(name: str, rows: list[dict], key: str, title: str) -> _Html:
    """Final-epoch test accuracy (and spike counts where present) against the swept value."""
    from bokeh.layouts import row as brow
    from bokeh.plotting import figure

    last = max(r["epoch"] for r in rows)
    final = [r for r in rows if r["epoch"] == last]
    modes = sorted({r.get("mode", "") for r in final})
    colors = ("#1f77b4", "#d62728", "#2ca02c")
    acc = figure(title=title[:80], x_axis_label=key, y_axis_label="test accuracy (%)", width=520, height=360)
    figs = [acc]
    spikes = None
    if any("hidden_spikes" in r for r in final):
        spikes = figure(title="mean spikes per hidden neuron", x_axis_label=key, y_axis_label="spikes",
                        width=420, height=360)
        figs.append(spikes)
    for c, mode in zip(colors, modes):
        sel = sorted((r for r in final if r.get("mode", "") == mode), key=lambda r: r[key])
        xs = [r[key] for r in sel]
        label = mode or "test accuracy"
        acc.line(xs, [100 * r["test_accuracy"] for r in sel], color=c, line_width=2, legend_label=label)
        acc.scatter(xs, [100 * r["test_accuracy"] for r in sel], color=c, size=7)
        if spikes is not None:
            spikes.line(xs, [r["hidden_spikes"] for r in sel], color=c, line_width=2, legend_label=label)
    return _Html(brow(*figs), title)


#: Allocator settings of a serving process (see :func:`server_allocator_env`).
SERVE_ALLOCATOR_ENV = {"PYTHONMALLOC": "malloc", "MALLOC_ARENA_MAX": "2"}


def server_allocator_env(argv: list[str], environ) -> dict[str, str] | None:
    """The environment to re-run ``spikewb serve`` in, or None to run as is.

    Every browser page builds ~1,000 Bokeh models from tens of thousands of small
    Python objects.  Under CPython's own small-object allocator a few objects
    that outlive a page pin whole 256 KiB arenas, and each worker thread gets a
    glibc arena of its own, so a server that served 20 pages stayed ~155 MB
    above its start after all of them closed (``make test-load``).  With Python
    objects on glibc ``malloc`` and two glibc arenas, the periodic
    ``malloc_trim`` (:func:`spikewb.workbench.server.app.release_memory`) hands the pages
    back: +7 MB after the same 20 pages.  Both settings are only read at
    interpreter start, hence the re-exec.  Linux only; an explicit
    ``PYTHONMALLOC`` (or ``SPIKEWB_KEEP_ALLOCATOR=1``) is left alone.

    >>> server_allocator_env(["serve", "--port", "5006"], {})["PYTHONMALLOC"]
    'malloc'
    >>> server_allocator_env(["train"], {}) is None
    True
    >>> server_allocator_env(["serve"], {"PYTHONMALLOC": "pymalloc"}) is None
    True
    """
    if not argv or argv[0] != "serve" or not sys.platform.startswith("linux"):
        return None
    if "PYTHONMALLOC" in environ or environ.get("SPIKEWB_KEEP_ALLOCATOR"):
        return None
    return {**environ, **{k: environ.get(k, v) for k, v in SERVE_ALLOCATOR_ENV.items()}}


def main():  # console-script entry point
    env = server_allocator_env(sys.argv[1:], os.environ)
    if env is not None:
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, "-m", "spikewb.workbench.cli", *sys.argv[1:]], env)
    logging.basicConfig(level=os.environ.get("SPIKEWB_LOGLEVEL", "WARNING"),
                        format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
