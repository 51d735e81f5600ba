"""Named paper settings that ``spikewb reproduce NAME`` runs end to end.

A :class:`Reproduction` names everything a published number depends on that
the engine can set: the rule and its parameters (usually one of the rule's
:attr:`~spikewb.engine.rules.base.LearningRule.presets`), the hidden layers, the
dataset and the paper's epoch count, together with the published test accuracy
and where it comes from.  :func:`build_trainer` turns one into a
:class:`~spikewb.engine.training.trainer.Trainer`, resuming from the run
folder's checkpoint when there is one; the caller trains it (``Trainer.fit``
with ``checkpoint_dir``, which rewrites the checkpoint after every epoch), so an
interrupted reproduction continues at the epoch it reached.

:func:`write_result` stores what a run reached (``result.json`` beside the
checkpoint and ``metrics.csv``) and :func:`table` renders every stored result
as the README's reproduction table, so the table is generated from the runs
and never typed by hand.

Published numbers and their sources are in ``../shared/reference`` (summarised
in ``docs/rules/*.md``); ``published`` is None where no number for the setting
was found.

Examples
--------
>>> sorted(REPRODUCTIONS)[:2]
['desire-fashion', 'multispike-fashion-tau']
>>> REPRODUCTIONS["desire-fashion"].published
87.56
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from spikewb.engine.errors import ConfigError

#: Name of the file a finished (or stopped) reproduction writes into its run folder.
RESULT_FILE = "result.json"


@dataclass(frozen=True)
class Reproduction:
    """One paper setting: what to train, for how long, and the number to compare with."""

    name: str
    rule: str
    #: Paper's dataset (a name :func:`~spikewb.engine.data.datasets.load_dataset` knows).
    dataset: str
    #: The paper's number of epochs (``spikewb reproduce --epochs`` runs fewer).
    epochs: int
    #: Published test accuracy in percent, or None where none was found.
    published: float | None
    #: Where the published number and the setting come from.
    source: str
    #: A preset of the rule (``LearningRule.presets``) applied first, or None.
    preset: str | None = None
    #: Rule parameters applied on top of the preset.
    params: Mapping[str, Any] = field(default_factory=dict)
    #: Hidden layer sizes (None: the preset's, else the rule's default network).
    hidden: tuple[int, ...] | None = None
    #: What differs from the paper, in a sentence (shown by ``spikewb reproduce --list``).
    notes: str = ""

    def command(self, epochs: int | None = None, **options) -> str:
        """The shell command that runs (or resumes) this reproduction (``options``: other CLI options).

        >>> REPRODUCTIONS["desire-fashion"].command(72, train_limit=None, dataset="fashion-5k")
        'spikewb reproduce desire-fashion --epochs 72 --dataset fashion-5k'
        """
        extra = "" if epochs in (None, self.epochs) else f" --epochs {epochs}"
        for key, value in options.items():
            if value is not None:
                extra += f" --{key.replace('_', '-')} {value}"
        return f"spikewb reproduce {self.name}{extra}"


REPRODUCTIONS: dict[str, Reproduction] = {r.name: r for r in (
    Reproduction(
        "desire-fashion", "desire", "fashion-mnist", epochs=600, published=87.56, preset="fashion-mnist",
        source="Gerlinghoff et al. 2023 (arXiv 2211.05412), 784-1000-100-10; setting from the authors' code",
        notes="the paper's 600 epochs take ~24 h here; exp(-0.04 e) leaves 6 % of the total learning "
              "rate after epoch 72"),
    Reproduction(
        "stidi-conv-fashion", "stidi", "fashion-mnist", epochs=100, published=92.8,
        params={"arch_kind": "conv"},
        source="Mirsadeghi et al., STiDi-BP CSNN (arXiv 2108.13621), R-CSNN on Fashion-MNIST",
        notes="architecture and epochs reconstructed (docs/rules/stidi.md)"),
    Reproduction(
        "stidi-binary-fashion", "stidi", "fashion-mnist", epochs=100, published=92.0,
        params={"arch_kind": "conv", "binary": True},
        source="STiDi-BP CSNN (arXiv 2108.13621): B-CSNN about 0.8 points below 92.8 (abstract)",
        notes="published value inferred from the abstract's 0.8-point drop"),
    Reproduction(
        "multispike-fashion-tau", "multispike", "fashion-mnist", epochs=100, published=None,
        source="Yamamoto, Sakemi, Aihara (arXiv 2211.16113); no Fashion-MNIST number found",
        notes="one point of the tau curve (default tau); `spikewb experiment tau-sweep` runs the curve"),
    Reproduction(
        "ssnn-fashion", "ssnn", "fashion-mnist", epochs=51, published=None, preset="rate-t51",
        source="SSNN-BP authors' rate notebook (T = 51); no Fashion-MNIST number found",
        notes="the notebook's learning rate for MNIST; its comment suggests 0.12 for Fashion-MNIST"),
)}


def get(name: str) -> Reproduction:
    """The reproduction called ``name``; a :class:`ConfigError` naming the choices otherwise."""
    try:
        return REPRODUCTIONS[str(name)]
    except KeyError:
        raise ConfigError(f"unknown reproduction {name!r}; choose from {', '.join(sorted(REPRODUCTIONS))}") from None


def rule_setup(rule: str, preset: str | None = None, params: Mapping[str, Any] | None = None,
               hidden=None) -> tuple[dict, list[int]]:
    """Rule parameters and hidden sizes: the rule's default network, then ``preset``, then the rest.

    ``params`` override the preset's parameters and ``hidden`` its layers
    (``spikewb train --preset P -p k=v --hidden ...`` and the reproductions
    both go through here).

    >>> rule_setup("desire", "fashion-mnist")[1]
    [1000, 100]
    """
    from spikewb.engine.rules import rule_class

    cls = rule_class(rule)
    sizes = list(cls.default_hidden)
    merged: dict[str, Any] = {}
    if preset is not None:
        if preset not in cls.presets:
            raise ConfigError(f"rule {rule!r} has no preset {preset!r}; presets: {sorted(cls.presets) or 'none'}")
        cfg = dict(cls.presets[preset])
        sizes = list(cfg.pop("hidden", sizes))
        cfg.pop("epochs", None)
        merged.update(cfg)
    merged.update(params or {})
    if hidden is not None:
        sizes = [int(h) for h in hidden]
    return merged, sizes


def build_trainer(repro: Reproduction, data, out: str | Path, seed: int = 0,
                  params: Mapping[str, Any] | None = None):
    """A trainer for ``repro`` on ``data``: resumed from ``out/checkpoint.npz`` when it exists.

    Returns ``(trainer, resumed)``.  A checkpoint of another rule than the
    reproduction's is refused (a folder reused for the wrong run).
    """
    from spikewb.engine.network import Architecture
    from spikewb.engine.rules import make_rule
    from spikewb.engine.training.trainer import Trainer

    rule_params, hidden = rule_setup(repro.rule, repro.preset, {**repro.params, **(params or {})}, repro.hidden)
    ckpt = Path(out) / "checkpoint.npz"
    if ckpt.exists():
        trainer = Trainer.from_checkpoint(ckpt, data=data)
        if trainer.rule.key != repro.rule:
            raise ConfigError(f"{ckpt.name} in the run folder holds a {trainer.rule.key} run, "
                              f"not {repro.rule}; choose another --out")
        return trainer, True
    rule = make_rule(repro.rule, **rule_params)
    arch = Architecture(n_inputs=data.n_features, hidden=hidden, n_outputs=data.n_classes)
    return Trainer(rule, data, arch, seed=seed), False


def result_of(repro: Reproduction, trainer, dataset: str, wall_s: float, epochs_asked: int,
              command: str | None = None) -> dict:
    """What a run reached, as stored in ``result.json`` (``command``: how it was run)."""
    hist = trainer.history
    reached = 100.0 * hist[-1].test_accuracy if hist else None
    best = 100.0 * max(h.test_accuracy for h in hist) if hist else None
    return {
        "name": repro.name,
        "rule": repro.rule,
        "dataset": dataset,
        "network": trainer.arch.describe(),
        "epochs_run": len(hist),
        "epochs_paper": repro.epochs,
        "epochs_asked": epochs_asked,
        "test_accuracy": reached,
        "best_test_accuracy": best,
        "published": repro.published,
        "wall_s": round(sum(h.seconds for h in hist), 1),
        "this_session_wall_s": round(wall_s, 1),
        "eval_samples": (trainer.eval_limit or len(trainer.data.y_test)),
        "command": command or repro.command(epochs_asked),
        "source": repro.source,
        "notes": repro.notes,
    }


def write_result(out: str | Path, result: dict) -> Path:
    """Write ``result`` to ``out/result.json`` (atomically)."""
    path = Path(out) / RESULT_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, path)
    return path


def _pct(v) -> str:
    return "-" if v is None else f"{v:.2f} %"


def _duration(s: float) -> str:
    s = float(s)
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.0f} min"


def table(root: str | Path) -> str:
    """Markdown table of every ``*/result.json`` under ``root`` (one row per reproduction).

    >>> print(table("/nonexistent"))
    | reproduction | paper | reached (final / best) | epochs run / paper | wall time | command |
    |---|---|---|---|---|---|
    """
    rows = ["| reproduction | paper | reached (final / best) | epochs run / paper | wall time | command |",
            "|---|---|---|---|---|---|"]
    root = Path(root)
    paths = sorted(root.glob(f"*/{RESULT_FILE}")) if root.is_dir() else []
    for path in paths:
        try:
            r = json.loads(path.read_text())
            rows.append(f"| {r['name']} ({r['network']}, {r['dataset']}) | {_pct(r['published'])} | "
                        f"{_pct(r['test_accuracy'])} / {_pct(r['best_test_accuracy'])} | "
                        f"{r['epochs_run']} / {r['epochs_paper']} | {_duration(r['wall_s'])} | "
                        f"`{r['command']}` |")
        except (OSError, ValueError, KeyError, TypeError):
            rows.append(f"| {path.parent.name} | unreadable {RESULT_FILE} | | | | |")
    return "\n".join(rows)
