"""Rules from other installed packages (entry-point group ``spikewb.rules``) reach the CLI and the engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugin_fixture import install_toy_plugin

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    folder = install_toy_plugin(tmp_path_factory.mktemp("plugins"))
    path = os.pathsep.join([str(folder), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


def _run(args, env, timeout=300):
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_plugin_rule_is_listed_and_a_broken_one_is_reported(plugin_env):
    r = _run(["-m", "spikewb.workbench.cli", "rules"], plugin_env)
    assert r.returncode == 0, r.stderr
    assert "toy " in r.stdout and "Toy plugin rule" in r.stdout
    assert "desire" in r.stdout                                  # built-ins are still there
    assert "rule plugin 'broken' not loaded" in r.stderr


def test_plugin_rule_is_absent_without_the_package():
    r = _run(["-m", "spikewb.workbench.cli", "rules"], {**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0 and "toy " not in r.stdout


def test_plugin_rule_trains_from_the_command_line(plugin_env, tmp_path):
    r = _run(["-m", "spikewb.workbench.cli", "train", "--rule", "toy", "--epochs", "1", "--train-limit", "1000",
              "--eval-limit", "300", "--no-progress", "--out", str(tmp_path / "run")], plugin_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "784-32-10" in r.stdout                                # the plugin's own default network
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    rows = metrics if isinstance(metrics, list) else metrics.get("epochs", metrics.get("history", []))
    assert rows and rows[-1]["test_accuracy"] > 0.15  # above chance (0.1; 3 sd over 300 samples)


def test_plugin_rule_reaches_the_trainer_and_compare_setup(plugin_env):
    code = (
        "from spikewb.engine.rules import rule_names, make_rule\n"
        "import spikewb.workbench.sessions.compare as compare\n"
        "import spikewb.workbench.urlstate as urlstate\n"
        "assert 'toy' in rule_names()\n"
        "setup, problems = compare.from_query({'panes': 'toy,desire'})\n"
        "assert [p.rule for p in setup['panes']] == ['toy', 'desire'], (setup, problems)\n"
        "s, problems = urlstate.from_query({'rule': 'toy', 'lr': '0.002'})\n"
        "assert s['rule'] == 'toy' and s['lr'] == 0.002, (s, problems)\n"
        "print('ok')\n")
    r = _run(["-c", code], plugin_env)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr
