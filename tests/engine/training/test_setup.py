"""RunSetup: the one declaration of a run's setup, and its text codec used by every entry point."""

from __future__ import annotations

import param
import pytest

from spikewb.engine.errors import ConfigError
from spikewb.engine.rules import rule_class, rule_names
from spikewb.engine.text import parse_value, value_text
from spikewb.engine.training import sweep
from spikewb.engine.training.setup import RunSetup, SetupProblem
from spikewb.workbench import urlstate
from spikewb.workbench.sessions import compare


def _declared(rule: str):
    cls = rule_class(rule)
    return [(k, p) for k, p in cls.param.objects("existing").items() if k != "name"]


@pytest.mark.parametrize("rule", rule_names())
def test_every_hyperparameter_default_survives_text_and_back(rule):
    """Each declared default written as text and read back is the same value, for every rule."""
    for key, p in _declared(rule):
        if p.default is None:
            continue
        text = value_text(p.default)
        back = RunSetup.parse_param(rule, key, text)
        if isinstance(p.default, float):
            assert back == pytest.approx(p.default, rel=1e-9), (key, text)
        else:
            assert back == (list(p.default) if isinstance(p.default, tuple) else p.default), (key, text, back)


def test_a_setup_round_trips_through_its_text():
    setup = RunSetup(rule="stidi", dataset="fashion-5k", hidden=[64, 32], seed=7,
                     params={"lr": 0.0125, "binary": True, "arch_kind": "dense"})
    text = setup.to_text()
    assert text == {"rule": "stidi", "dataset": "fashion-5k", "hidden": "64,32", "seed": "7", "lr": "0.0125",
                    "binary": "true", "arch_kind": "dense"}
    back, problems = RunSetup.from_text(text)
    assert problems == [] and back.as_dict() == setup.as_dict()
    assert back.label() == "stidi 64-32 arch_kind=dense binary=true lr=0.0125"


@pytest.mark.parametrize("key,text,why", [
    ("seed", "\u0663", "whole number"),            # Arabic-Indic digit three: int() would take it
    ("seed", "2147483648", "2^31"),
    ("hidden", "\uff14\uff10\uff10", "whole numbers"),  # fullwidth 400
    ("hidden", "400,-1", "positive"),
    ("hidden", "1e3", "whole numbers"),
    ("lr", "nan", "finite"),
    ("lr", "1e999", "finite"),
    ("lr", "-1", ""),                               # bounds of the declaration
    ("dataset", "../../etc/passwd", "choose one of"),
    ("dataset", "/root", "choose one of"),
])
def test_hostile_text_is_refused_and_the_default_kept(key, text, why):
    setup, problems = RunSetup.from_text({"rule": "desire", key: text})
    assert len(problems) == 1 and problems[0].key == key and problems[0].text == text, problems
    assert why in problems[0].reason
    assert setup.as_dict() == RunSetup().as_dict()


def test_unknown_keys_and_rules_are_reported_not_raised():
    setup, problems = RunSetup.from_text({"rule": "<script>", "colour": "red", "name": "x"})
    assert setup.rule == "desire"
    assert problems[0].key == "rule" and "choose one of" in problems[0].reason
    assert {p.key for p in problems if p.reason is None} == {"colour", "name"}


def test_changing_the_rule_drops_the_other_rules_hyperparameters():
    base = RunSetup(rule="desire", params={"lr": 0.001})
    setup, problems = RunSetup.from_text({"rule": "ssnn"}, defaults=base)
    assert setup.rule == "ssnn" and setup.params == {} and problems == []


@pytest.mark.parametrize("key,text", [("lr", "3e-4"), ("v_th", ".25"), ("dropout_hid", "0.2")])
def test_every_entry_point_reads_a_value_the_same_way(key, text):
    """URL of the trainer, a compare pane, ``-p``, the compare settings box and a sweep grid agree."""
    expected = parse_value(rule_class("desire").param[key], text)
    via_url = urlstate.from_query({key: [text.encode()]})[0][key]
    via_pane = compare.from_query({"panes": "desire,desire", f"{key}2": text})[0]["panes"][1].params[key]
    via_cli = RunSetup.parse_assignment("desire", key, text)
    via_box = compare.parse_settings("desire", f"{key}={text}")[key]
    via_grid = sweep.setup_of({"rule": "desire", key: sweep.parse_grid(f"{key}={text}")[key][0]}).params[key]
    assert via_url == via_pane == via_cli == via_box == via_grid == expected


def test_hidden_is_read_the_same_everywhere():
    assert (urlstate.from_query({"hidden": "400, 100"})[0]["hidden"]
            == list(compare.from_query({"panes": "desire,desire", "hidden1": "400,100"})[0]["panes"][0].hidden)
            == sweep.parse_grid("hidden=400/100")["hidden"][0] == RunSetup.parse_hidden("400,100") == [400, 100])


def test_sweep_combinations_are_checked_against_the_rule():
    with pytest.raises(ConfigError, match="no parameter"):
        sweep.setup_of({"rule": "desire", "colour": 1})
    with pytest.raises(ConfigError, match="lr"):
        sweep.setup_of({"rule": "desire", "lr": "abc"})       # a YAML string read with the declaration
    assert sweep.setup_of({"rule": "desire", "lr": "3e-4"}).params == {"lr": 3e-4}
    with pytest.raises(ConfigError):
        sweep.parse_grid("seed=-1")


def test_list_parameters_take_brackets_or_bare_commas():
    p = param.List(item_type=int)
    assert parse_value(p, "[4, 8]") == parse_value(p, "4,8") == [4, 8]


def test_setup_of_a_built_rule_keeps_only_changed_hyperparameters():
    rule = RunSetup(rule="desire", params={"lr": 0.002}).make_rule()
    setup = RunSetup.of_rule(rule, dataset="fashion-5k", hidden=[50], seed=2)
    assert setup.as_dict() == {"rule": "desire", "dataset": "fashion-5k", "seed": 2, "hidden": [50], "lr": 0.002}
    assert isinstance(RunSetup.from_text({"x": "1"})[1][0], SetupProblem)
