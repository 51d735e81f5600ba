"""The trainer's network-and-data widgets and the CLI options come from one declaration."""

from __future__ import annotations

import pytest
import typer

from spikewb.engine.rules import rule_names
from spikewb.engine.training.setup import RunSetup
from spikewb.engine.training.setup_fields import SetupFields, help_text

FIELDS = ("rule", "dataset", "hidden", "seed")


@pytest.fixture(scope="module")
def controls():
    from spikewb.workbench.sessions.session import TrainingSession
    from spikewb.workbench.views.controls import ControlPanel

    session = TrainingSession(rule="desire", hidden=[20, 10], seed=7, eval_limit=20)
    try:
        yield ControlPanel(session, notify=lambda kind, text: None)
    finally:
        session.close()


def test_run_setup_inherits_the_four_declarations():
    for name in FIELDS:
        assert RunSetup.param[name] is SetupFields.param[name]
        assert RunSetup.param[name].label and RunSetup.param[name].doc
    assert RunSetup.FIELDS == FIELDS


@pytest.mark.parametrize("name", FIELDS)
def test_trainer_widget_label_and_tooltip_are_the_declaration(controls, name):
    widget = getattr(controls, f"{name}_field").widget
    p = SetupFields.param[name]
    assert widget.name == p.label + " \u27f3"                       # structural marker
    assert widget.description.startswith(p.doc)
    assert widget.description.endswith("Changing it builds a new network (asks first).")


def test_trainer_widgets_show_the_session_setup(controls):
    assert controls.rule_field.widget.value == "desire"
    assert set(controls.rule_field.widget.options.values()) == set(rule_names())
    assert controls.dataset_field.widget.value == "mnist-5k"
    assert controls.hidden_field.widget.value == "20, 10"
    assert controls.seed_field.widget.value == 7


def test_train_options_take_default_and_help_from_the_declaration():
    from spikewb.workbench.cli import app

    train = typer.main.get_command(app).commands["train"]
    options = {p.name: p for p in train.params}
    for name in FIELDS:
        assert options[name].help.startswith(help_text(name)), name
    for name in ("rule", "dataset", "seed"):
        assert options[name].default == SetupFields.param[name].default, name
