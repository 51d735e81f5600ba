"""``Frame.extras`` keys are documented in :data:`spikewb.engine.frame.EXTRAS`.

Three directions: every key a rule writes when stepped with full recording is
documented; every key the workbench views read by name is documented; and
every documented key is still written somewhere in the engine (no dead docs).
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

import spikewb.engine
from spikewb.engine.data.datasets import load_dataset
from spikewb.engine.frame import EXTRAS, Record
from spikewb.engine.network import Architecture
from spikewb.engine.rules import make_rule, rule_names
from spikewb.engine.rules.normad import NormAD
from spikewb.engine.training.tasks import TaskTrainer, mapping_task, xor_task
from spikewb.engine.training.trainer import Trainer

#: Folders of the engine and the workbench, wherever the tests sit (in a checkout: the repo's
#: top-level ``engine/`` and ``workbench/``; the workbench package is located, not imported).
ENGINE = Path(spikewb.engine.__file__).resolve().parent
WORKBENCH = Path(importlib.util.find_spec("spikewb.workbench").origin).resolve().parent
FULL = Record(neurons=((1, 0), (2, 0)), spikes=True, weight_updates=True, flow=5)

RULE_CASES = [pytest.param(name, {}, id=name) for name in rule_names()]
RULE_CASES.append(pytest.param("stidi", {"arch_kind": "conv"}, id="stidi-conv"))


@pytest.fixture(scope="module")
def small_data():
    return load_dataset("mnist-5k").subset(20, 5)


def _undocumented(extras) -> list[str]:
    return sorted(k for k in extras if k not in EXTRAS)


# ------------------------------------------------------------------ a: written keys are documented
@pytest.mark.parametrize("name, kw", RULE_CASES)
def test_rule_extras_are_documented(name, kw, small_data):
    trainer = Trainer(make_rule(name, **kw), small_data, Architecture(hidden=[8]), seed=0)
    frame = trainer.step(FULL)
    assert frame.extras, f"{name} {kw}: no extras at all with full recording"
    missing = _undocumented(frame.extras)
    assert not missing, f"{name} {kw}: extras keys missing from EXTRAS: {missing}"


@pytest.mark.parametrize("record", [None, FULL], ids=["default-record", "full-record"])
@pytest.mark.parametrize("make_task", [xor_task, mapping_task], ids=["xor", "mapping"])
def test_task_trainer_extras_are_documented(make_task, record):
    frame = TaskTrainer(NormAD(), make_task(seed=0), seed=0).step(record)
    assert {"correlation", "matched", "output_t"} <= set(frame.extras)
    missing = _undocumented(frame.extras)
    assert not missing, f"NormAD TaskTrainer ({make_task.__name__}): extras keys missing from EXTRAS: {missing}"


# ------------------------------------------------------------------ b: keys the workbench reads are documented
_Q = r"""(["'])(\w+)\1"""
READ_PATTERNS = (
    re.compile(r"extras\.get\(\s*" + _Q),                       # extras.get("key"
    re.compile(r"extras\[\s*" + _Q + r"\s*\]"),                 # extras["key"]
    re.compile(_Q + r"\s+(?:not\s+)?in\s+[\w.]*extras\b"),       # "key" in frame.extras
)


def read_keys(text: str) -> set[str]:
    """String-literal keys read from an ``extras`` mapping in ``text``."""
    return {m.group(2) for pat in READ_PATTERNS for m in pat.finditer(text)}


def test_read_key_regex_finds_each_form():
    sample = """
        a = frame.extras.get("alpha", 0) + f.extras.get( 'beta')
        b = frame.extras["gamma"][k] + extras['delta']
        if "eps" in frame.extras and 'zeta' not in self.frame.extras: pass
        x = frame.extras.get(f"grad_{s}_t")          # not a literal key
        y = other.get("eta"); z = table["theta"]     # not extras
    """
    assert read_keys(sample) == {"alpha", "beta", "gamma", "delta", "eps", "zeta"}


def test_workbench_reads_only_documented_keys():
    files = sorted(WORKBENCH.rglob("*.py"))
    assert files
    found: dict[str, set[str]] = {}
    for path in files:
        for key in read_keys(path.read_text(encoding="utf-8")):
            found.setdefault(key, set()).add(str(path.relative_to(WORKBENCH.parent)))
    assert len(found) >= 10, f"the scan found only {sorted(found)}: is the regex still right?"
    bad = [f"{f}: {k!r}" for k, fs in sorted(found.items()) if k not in EXTRAS for f in sorted(fs)]
    assert not bad, "extras keys read in the workbench but missing from EXTRAS:\n" + "\n".join(bad)


# ------------------------------------------------------------------ c: descriptions and no dead keys
def test_descriptions_are_text():
    assert len(EXTRAS) >= 40
    short = [k for k, v in EXTRAS.items() if not isinstance(v, str) or len(v.strip()) < 20 or "\n" in v]
    assert not short, f"EXTRAS entries without a real one-line description: {short}"


def _engine_sources() -> list[Path]:
    return sorted((ENGINE / "rules").glob("*.py")) + sorted((ENGINE / "training").glob("*.py"))


def _written_names(path: Path) -> tuple[set[str], set[str], list[re.Pattern]]:
    """(string literals, keywords of dict()/.update() calls, f-string templates) of a source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    literals: set[str] = set()
    keywords: set[str] = set()
    templates: list[re.Pattern] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            literals.add(node.value)
        elif isinstance(node, ast.Call):
            fn = node.func
            is_dict = isinstance(fn, ast.Name) and fn.id == "dict"
            if is_dict or (isinstance(fn, ast.Attribute) and fn.attr == "update"):
                keywords.update(k.arg for k in node.keywords if k.arg)
        elif isinstance(node, ast.JoinedStr):
            parts = [re.escape(v.value) if isinstance(v, ast.Constant) else r"(\w+)" for v in node.values]
            if any(isinstance(v, ast.Constant) for v in node.values):
                templates.append(re.compile("".join(parts)))
    return literals, keywords, templates


def _written(key: str, literals, keywords, templates) -> bool:
    if key in literals or key in keywords:
        return True
    for t in templates:  # f"{name}_t" with name = "grad_pos" written as a literal in the same file
        m = t.fullmatch(key)
        if m and m.groups() and all(g in literals for g in m.groups()):
            return True
    return False


def test_no_documented_key_is_dead():
    sources = _engine_sources()
    assert len(sources) >= 5
    names = [_written_names(p) for p in sources]
    dead = [k for k in EXTRAS if not any(_written(k, *n) for n in names)]
    assert not dead, f"EXTRAS documents keys no engine rule or trainer writes: {dead}"


def test_dead_key_check_can_fail():
    names = [_written_names(p) for p in _engine_sources()]
    assert not any(_written("no_such_extras_key", *n) for n in names)
    ssnn = _written_names(ENGINE / "rules" / "ssnn.py")
    assert "grad_pos_t" not in ssnn[0] and _written("grad_pos_t", *ssnn)   # built as f"{name}_t"
