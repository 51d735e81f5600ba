"""Checkpoint fuzzer: hostile variants of a real checkpoint of every rule, each loaded and stepped.

For every rule, a child process (``tests/checkpoint_fuzz_child.py``) trains two
samples on a tiny network, saves a checkpoint and writes variants of it: for
every array wrong shapes ((1,), empty, 0-d, short, transposed), wrong dtypes
(complex, str, object, bool, int for floats, float for ints), NaN / Inf,
negative and huge values, a header declaring 10^12 elements, the array
missing; for the stored sample order duplicates, out-of-range and negative
indices; extra arrays (unknown state, unknown member, huge header, an extra
weight layer); hostile metadata (rule names holding HTML, bad types,
positions, generator states).  Each variant is loaded with
``Trainer.from_checkpoint`` and trained for one sample *in the child*, so a
segfault ends the child (exit -11), not the test run.

The parent requires: exit status 0, every variant reported, and each one
either refused with the engine's own error (a ``SpikeWorkbenchError``
subclass with a message) or -- only where harmless, e.g. a float32 / float64
cast or an optional array left out -- a step that leaves the weights finite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CHILD = ROOT / "tests" / "checkpoint_fuzz_child.py"
RULES = ("desire", "stidi", "multispike", "ssnn", "normad")


def run_child(rule: str, workdir: Path, engine_root: Path = ROOT, timeout: float = 240) -> tuple[int, list[dict], str]:
    """Run the fuzzer child for ``rule`` with ``engine_root`` first on the import path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(engine_root), str(ROOT)]),
           "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache")),
           "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, str(CHILD), rule, str(workdir)], capture_output=True, text=True,
                          env=env, cwd=str(workdir), timeout=timeout)
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, records, proc.stderr[-3000:]


def judge(records: list[dict]) -> list[str]:
    """Problems with the reported outcomes (empty: all fine)."""
    problems = []
    ends = {r["variant"]: r for r in records if r.get("phase") == "end"}
    starts = [r["variant"] for r in records if r.get("phase") == "start"]
    for v in starts:
        if v not in ends:
            problems.append(f"{v}: started but never finished (the interpreter died)")
    for v, r in ends.items():
        if r["outcome"] == "error":
            if r["expect"] == "ok":
                problems.append(f"{v}: the valid checkpoint was refused: {r['type']}: {r['message']}")
            elif not r["clear"] or not r["message"].strip():
                problems.append(f"{v}: raw {r['type']} instead of a clear message: {r['message']}")
        elif r["expect"] == "refuse":
            problems.append(f"{v}: accepted, but it must be refused")
        elif not r["finite"]:
            problems.append(f"{v}: accepted, and the step left NaN/Inf weights")
    return problems


@pytest.fixture(scope="module")
def fuzz_results(tmp_path_factory):
    """All five rules, two children at a time (about 30 s on two cores)."""
    def one(rule):
        return rule, run_child(rule, tmp_path_factory.mktemp(f"fuzz-{rule}"))
    with ThreadPoolExecutor(2) as pool:
        return dict(pool.map(one, RULES))


@pytest.mark.parametrize("rule", RULES)
def test_every_variant_ends_in_a_clear_message_or_a_finite_step(fuzz_results, rule):
    rc, records, stderr = fuzz_results[rule]
    assert rc == 0, f"the fuzzer child for {rule} exited with {rc} (-11: segfault)\n{stderr}"
    done = [r for r in records if r.get("phase") == "done"]
    assert done, f"the child for {rule} did not finish\n{stderr}"
    ends = [r for r in records if r.get("phase") == "end"]
    assert len(ends) == done[0]["variants"] >= 60, f"{rule}: only {len(ends)} variants ran"
    assert ends[0]["variant"] == "baseline" and ends[0]["outcome"] == "ok", ends[0]
    problems = judge(records)
    assert not problems, f"{rule}: {len(problems)} of {len(ends)} variants mishandled:\n" + "\n".join(problems)
    refused = sum(r["outcome"] == "error" for r in ends)
    assert refused >= 0.8 * (len(ends) - 1), f"{rule}: only {refused} of {len(ends)} variants refused"


def test_messages_name_the_file_not_the_server_path(fuzz_results):
    for rule, (_, records, _) in fuzz_results.items():
        for r in records:
            if r.get("phase") == "end" and r["outcome"] == "error":
                assert str(ROOT) not in r["message"] and "/tmp" not in r["message"], (rule, r)


def test_old_multispike_segfault_is_caught(tmp_path):
    """The judge flags a child that died mid-variant (what the old code did: exit -11)."""
    records = [{"variant": "baseline", "phase": "start", "expect": "ok"},
               {"variant": "baseline", "phase": "end", "expect": "ok", "outcome": "ok", "finite": True},
               {"variant": "state_adam_m0:shape_1", "phase": "start", "expect": "refuse"}]
    assert judge(records) == ["state_adam_m0:shape_1: started but never finished (the interpreter died)"]
