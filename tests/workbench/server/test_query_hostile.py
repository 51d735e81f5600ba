"""Hostile page queries: every page's parser returns notices, never raises, never escapes text.

The one reader is :func:`spikewb.workbench.pagestate.read_query` (flattening, decoding,
bounds) with :func:`~spikewb.workbench.pagestate.parse_int` / :func:`~spikewb.workbench.pagestate.parse_float`
for values; the trainer (:mod:`spikewb.workbench.urlstate`), compare (:mod:`spikewb.workbench.sessions.compare`),
results and teaching pages all go through them.  The browser side is
``tests/ui/test_injection_ui.py``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from spikewb.workbench import pagestate, urlstate

from spikewb.workbench.sessions import compare

from spikewb.workbench.server import runs
from spikewb.workbench.server.safetext import as_markdown

HOSTILE = ["nan", "NaN", "inf", "-inf", "+Infinity", "1e999", "-1e400", "\u2460", "\u0663\u0664",
           "\uff11\uff12", "1_000", "1" * 5000, "-" + "9" * 4301, "0x10", "1e", "--3", "\x00",
           '<img src=x onerror="alert(1)">', "[x](javascript:alert(1))"]


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e999", "\u2460", "\u0663", "\uff11", "1_0", "0x1f",
                                  "1" * 19, "1" * 5000, "", "--1", "1.5"])
def test_parse_int_refuses_everything_but_ascii_digits(text):
    with pytest.raises(ValueError):
        pagestate.parse_int(text)


@pytest.mark.parametrize("text,value", [("0", 0), ("-7", -7), ("+12", 12), (" 42 ", 42),
                                        ("9" * 18, int("9" * 18))])
def test_parse_int_reads_ascii_integers(text, value):
    assert pagestate.parse_int(text) == value


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e400", "\u0663.5",
                                  "1_0.5", "0x1p3", "", ".", "e5", "1" * 5000])
def test_parse_float_refuses_non_finite_and_odd_spellings(text):
    with pytest.raises(ValueError):
        pagestate.parse_float(text)


def test_parse_float_reads_plain_numbers():
    assert [pagestate.parse_float(t) for t in ("0.5", "-.5", "3e-4", "+2", "1.", "1E+3")] == \
        [0.5, -0.5, 3e-4, 2.0, 1.0, 1000.0]


def test_read_query_repeated_keys_bytes_and_bounds():
    flat, problems = pagestate.read_query({
        "seed": [b"1", b"2", b"3"],                 # repeated: last one, and said so
        "bad": [b"\xff\xfe"],                       # not UTF-8
        b"\xc3": [b"1"],                            # a key that is not UTF-8
        "k" * 5000: [b"1"],                         # huge key
        "big": [b"x" * 100_000],                    # huge value
        "ok": "plain",
    })
    assert flat == {"seed": "3", "ok": "plain"}
    text = " ".join(problems)
    assert "given 3 times" in text and "not UTF-8" in text and "longer than" in text
    assert len(problems) == 5
    assert max(len(p) for p in problems) < 300                  # the huge key is quoted shortened


def test_read_query_bounds_the_number_of_keys():
    flat, problems = pagestate.read_query({f"k{i}": "1" for i in range(10_000)})
    assert len(flat) == pagestate.MAX_KEYS
    assert any("beyond the first" in p for p in problems)


def test_read_query_never_raises_on_odd_objects():
    class Evil:
        def __str__(self):
            raise RuntimeError("no")

    for query in (None, {}, {"a": []}, {"a": [Evil()]}, {Evil(): "1"}, {"a": None}):
        flat, problems = pagestate.read_query(query)
        assert isinstance(flat, dict) and isinstance(problems, list)

    class BadMapping(dict):
        def items(self):
            raise RuntimeError("broken")
    assert pagestate.read_query(BadMapping())[0] == {}


@pytest.mark.parametrize("text", HOSTILE)
def test_trainer_query_gives_notices(text):
    query = {k: [text.encode("utf-8", "surrogatepass")] for k in
             ("seed", "hidden", "lr", "v_th", "dataset", "refresh", "rule")}
    setup, problems = urlstate.from_query(query)
    assert not {"seed", "hidden", "lr", "v_th"} & set(setup)
    assert setup.get("dataset") in (None,)
    assert problems  # every refused value is named


@pytest.mark.parametrize("text", HOSTILE)
def test_compare_query_gives_notices(text):
    setup, problems = compare.from_query({"seed": text, "lr1": text, "hidden2": text, "panes": text,
                                          "dataset": text, "v_th3": text})
    assert setup["seed"] == 0 and setup["dataset"] == "mnist-5k"
    assert [p.label() for p in setup["panes"]] == ["desire 100"] * len(setup["panes"])
    assert problems


def test_teaching_and_task_pages_give_notices():
    from spikewb.workbench.pages.spiketask import SpikeTaskDemo
    from spikewb.workbench.pages.teaching import NeuronDemo, StdpDemo

    for cls, keys in ((NeuronDemo, ("seed", "duration", "drive", "leak", "form")),
                      (StdpDemo, ("n_pairs", "delta_t", "desire", "show_desire")),
                      (SpikeTaskDemo, ("seed", "lr", "max_epochs", "speed", "task"))):
        for text in ("nan", "inf", "\u2460", "1" * 5000, "\u0663"):
            values, problems = pagestate.params_from_query(cls, {k: [text.encode()] for k in keys})
            assert values == {} and len(problems) == len(keys), (cls.__name__, text, values, problems)


def test_neuron_page_spike_times_message_is_escaped():
    from spikewb.workbench.pages.teaching import NeuronDemo

    demo = NeuronDemo(input_kind="spikes", spike_times='<img src=x onerror="alert(1)">, 5')
    assert "<img" not in demo.message.object and "&lt;img" in demo.message.object


# property: anything a URL can carry gives notices, never an exception -----------------------
_value = st.one_of(st.text(max_size=60), st.binary(max_size=30),
                   st.from_regex(r"[+-]?[0-9\u0660-\u0669\u2460-\u2473]{1,30}", fullmatch=True))


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["seed", "hidden", "lr", "v_th", "refresh", "rule", "dataset", "panes",
                                        "lr1", "hidden2", "dir", "x"]), st.lists(_value, max_size=3), max_size=8))
@example({"seed": ["\u2460"]})
@example({"seed": ["1" * 5000]})
@example({"refresh": ["nan"], "lr": ["inf"], "hidden": ["\u0663"]})
@example({"seed": [b"\xff"], "panes": ["desire,\u2460"]})
@example({"hidden": ["1," * 2000]})
def test_no_query_raises(query):
    setup, problems = urlstate.from_query(query)
    assert all(isinstance(p, str) for p in problems)
    setup, problems = compare.from_query(query)
    assert 2 <= len(setup["panes"]) <= compare.MAX_PANES


def test_notices_quote_values_shortened_and_escaped():
    payload = '"><script>window.__pwned=1</script>' + "x" * 500
    setup, problems = compare.from_query({"lr1": payload, payload: "1"})
    assert len(problems) == 2
    for p in problems:
        assert len(p) < 400
        shown = as_markdown(p)
        assert "<script" not in shown and "&lt;script" in shown


# results page: symlink loops and server paths --------------------------------------------------
@pytest.fixture
def looped_root(tmp_path):
    root = tmp_path / "runs"
    run = root / "sweep1" / "r1"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    os.symlink("loop", root / "loop")                     # points at itself
    os.symlink("b", root / "a")
    os.symlink("a", root / "b")                           # a -> b -> a
    os.symlink(root / "sweep1", root / "sweep1" / "back")  # a cycle through a real folder
    os.symlink("/", root / "out")                         # out of the root
    return root


def test_symlink_loops_do_not_break_the_results_page(looped_root, monkeypatch):
    monkeypatch.setenv(runs.ENV, str(looped_root))
    assert runs.find_sweeps() == ["sweep1"]
    for rel in ("loop", "a", "loop/x"):
        with pytest.raises(runs.ConfigError):
            runs.resolve(rel)
    import panel as pn
    from spikewb.workbench.pages.results import ResultsPage

    args = {"dir": [b"loop"], "sort": [b"<b>x</b>"]}
    monkeypatch.setattr(type(pn.state), "session_args", property(lambda self: args))
    page = ResultsPage.from_url()
    shown = " ".join(m.object for m in page.messages.objects)
    assert "symbolic link loop" in shown and "sort" in shown and "<b>" not in shown
    assert str(looped_root) not in shown and str(looped_root) not in page.summary.object
    page2 = ResultsPage(directory="loop")                 # the folder menu's path
    assert any("loop" in m.object for m in page2.messages.objects)


def test_checkpoint_messages_name_files_relative_to_the_run_root(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    (root / "sweep1").mkdir(parents=True)
    (root / "sweep1" / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip" + bytes(64))
    monkeypatch.setenv(runs.ENV, str(root))
    from spikewb.workbench.pages.trainer import TrainerWorkbench

    wb = TrainerWorkbench()
    try:
        problem = wb.checkpoint_from_url("sweep1/corrupt.npz")
        assert problem and "sweep1/corrupt.npz" in problem
        assert str(tmp_path) not in problem, problem
    finally:
        wb.close()

