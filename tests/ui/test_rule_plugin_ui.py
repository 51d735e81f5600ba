"""A rule from another installed package appears on the served pages and trains there.

The toy package (``tests/plugin_fixture.py``) is found through the standard
entry-point machinery (its ``*.dist-info`` on ``PYTHONPATH``), exactly as an
installed third-party package would be; nothing in this repository names it.
"""

from __future__ import annotations

import os

import pytest

from tests.plugin_fixture import install_toy_plugin

from .conftest import ROOT, wait_until

pytestmark = pytest.mark.ui
T = 90


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory):
    folder = install_toy_plugin(tmp_path_factory.mktemp("plugins"))
    return os.pathsep.join([str(folder), str(ROOT), os.environ.get("PYTHONPATH", "")])


def test_plugin_rule_in_the_trainer_menu_and_it_trains(app_server, open_url, plugin_path):
    server = app_server("trainer", env={"PYTHONPATH": plugin_path})
    p = open_url(server.url + "?rule=toy")
    options = p.page.evaluate("() => Array.from(Bokeh.documents[0].all_models)"
                              ".filter(m => m.type === 'Select' || (m.options && m.value !== undefined))"
                              ".flatMap(m => (m.options || []).map(o => Array.isArray(o) ? o.join('|') : String(o)))")
    assert any("(toy)" in o for o in options), options
    assert any("(desire)" in o for o in options)
    p.button("\u25b6 Train").click()
    wait_until(lambda: p.samples() > 20, T, message="the plugin rule training")
    chosen = p.page.evaluate("() => Array.from(Bokeh.documents[0].all_models)"
                             ".filter(m => m.type === 'Select' || (m.options && m.value !== undefined))"
                             ".map(m => String(m.value))")
    assert any("toy" in v for v in chosen), chosen              # the menu shows the plugin rule as chosen
    p.button("\u23f8 Pause").click()
    assert p.errors == [], p.errors


def test_plugin_rule_in_a_compare_pane(app_server, browser, plugin_path):
    server = app_server("compare", env={"PYTHONPATH": plugin_path})
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(server.url + "?panes=toy,desire")
        page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle",
                               timeout=T * 1000)
        titled = ("() => Array.from(Bokeh.documents[0].all_models)"
                  ".some(m => typeof m.text === 'string' && m.text.includes('Toy plugin rule'))")
        wait_until(lambda: page.evaluate(titled), T, message="the toy pane's title")
    finally:
        ctx.close()
