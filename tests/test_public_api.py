"""The top-level API (``import spikewb``): every public name, lazy loading, the default network."""

from __future__ import annotations

import subprocess
import sys

import pytest

import spikewb
from spikewb.engine.data.datasets import load_dataset
from spikewb.engine.rules import make_rule, rule_class, rule_names
from spikewb.engine.training.trainer import Trainer


def test_every_public_name_resolves_to_its_module_object():
    assert set(spikewb.__all__) >= {"load_dataset", "Trainer", "make_rule", "Frame", "Record", "Architecture",
                                    "TrainerWorkbench", "REPRODUCTIONS"}
    for name in spikewb.__all__:
        value = getattr(spikewb, name)
        assert value is not None, name
    assert spikewb.Trainer is Trainer and spikewb.make_rule is make_rule
    assert set(spikewb._PUBLIC) <= set(dir(spikewb))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        spikewb.nope  # noqa: B018


def test_import_spikewb_and_engine_names_load_no_ui_library():
    code = ("import sys, spikewb; spikewb.Trainer; spikewb.load_dataset; spikewb.make_rule('desire'); "
            "bad = sorted(m for m in ('panel', 'bokeh', 'holoviews', 'tornado') if m in sys.modules); "
            "print(bad); assert not bad")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", rule_names())
def test_trainer_without_arch_builds_the_rules_own_network(name):
    data = load_dataset("mnist-5k").subset(n_train=8, n_test=4)
    trainer = Trainer(make_rule(name), data)
    hidden = list(rule_class(name).default_hidden)
    assert list(trainer.arch.hidden) == hidden
    assert list(trainer.model.sizes) == [data.n_features, *hidden, data.n_classes]


def test_ssnn_default_is_its_paper_network_not_desires():
    data = load_dataset("mnist-5k").subset(n_train=8, n_test=4)
    assert Trainer(make_rule("ssnn"), data).arch.describe() == "784-1000-10"


def test_network_label_is_the_rules_own_description():
    data = load_dataset("mnist-5k").subset(n_train=8, n_test=4)
    assert Trainer(make_rule("desire"), data).network == "784-1000-100-10"
    conv = Trainer(make_rule("stidi", arch_kind="conv"), data)
    assert conv.network == conv.rule.describe_network(conv.model) and "c5x" in conv.network
