"""Checks every registered rule must pass (the scikit-learn common-checks habit).

Ids read ``<rule>-<check>``, so ``pytest -k "desire and determin"`` picks one
pair.  A rule that cannot pass a check declares it in a ClassVar
``xfail_checks = {"check_name": "reason"}`` and the check becomes an xfail.
Rules whose natural input is not an image (``input_kind != "image"``) are
exercised on their own tasks by their own tests.
"""

import numpy as np
import param
import pytest

from spikewb.engine.frame import Frame, Record
from spikewb.engine.network import Architecture
from spikewb.engine.rules import rule_class, rule_names


def _image_rules():
    return [n for n in rule_names() if getattr(rule_class(n), "input_kind", "image") == "image"]


def _setup(name, tiny, seed=0):
    rule = rule_class(name)()
    arch = Architecture(n_inputs=tiny.n_features, hidden=[32], n_outputs=tiny.n_classes)
    model = rule.build(arch, np.random.default_rng(seed))
    return rule, model


def _x(tiny, k=0):
    return tiny.x_train[k].astype(np.float32) / np.float32(255)


def check_builds_with_defaults(name, tiny):
    rule, model = _setup(name, tiny)
    assert model.rule == name
    assert [w.shape for w in model.weights] == [(784, 32), (32, 10)]
    assert all(np.all(np.isfinite(w)) for w in model.weights)


def check_build_is_deterministic(name, tiny):
    _, m1 = _setup(name, tiny, seed=5)
    _, m2 = _setup(name, tiny, seed=5)
    for a, b in zip(m1.weights, m2.weights):
        np.testing.assert_array_equal(a, b)


def check_same_seed_same_first_frame(name, tiny):
    frames = []
    for _ in range(2):
        rule, model = _setup(name, tiny, seed=9)
        frames.append(rule.train_step(model, _x(tiny), int(tiny.y_train[0]), Record()))
    a, b = frames
    assert a.prediction == b.prediction and a.loss == b.loss
    for ca, cb in zip(a.counts, b.counts):
        np.testing.assert_array_equal(ca, cb)


def check_frame_fields(name, tiny):
    rule, model = _setup(name, tiny)
    f = rule.train_step(model, _x(tiny), int(tiny.y_train[0]), Record(neurons=((1, 0),)))
    assert isinstance(f, Frame)
    n = len(model.sizes)
    assert f.layer_sizes == model.sizes and len(f.layer_names) == n
    assert len(f.counts) == n and len(f.signal) == n and len(f.signal_raw) == n and len(f.dw_norm) == n - 1
    for l in range(1, n):
        assert f.signal[l].shape == (model.sizes[l],) and f.signal[l].dtype == np.float32
        assert np.all(np.isfinite(f.signal[l])) and np.all(np.isfinite(f.signal_raw[l]))
    assert np.isfinite(f.loss) and all(np.isfinite(f.dw_norm))
    assert f.signal_name == rule.signals
    assert f.v_trace.shape[0] == 1 and np.all(np.isfinite(f.v_trace))
    assert -1 <= f.prediction < model.sizes[-1]


def check_predict_batched_and_pure(name, tiny):
    rule, model = _setup(name, tiny)
    X = tiny.x_test[:6].astype(np.float32) / 255
    X0 = X.copy()
    w0 = [w.copy() for w in model.weights]
    batch = rule.predict(model, X)
    single = np.array([rule.predict(model, X[k:k + 1])[0] for k in range(6)])
    np.testing.assert_array_equal(batch, single)
    np.testing.assert_array_equal(X, X0)
    for a, b in zip(model.weights, w0):
        np.testing.assert_array_equal(a, b)


def check_train_step_leaves_input_alone(name, tiny):
    rule, model = _setup(name, tiny)
    x = _x(tiny)
    x0 = x.copy()
    rule.train_step(model, x, 1, Record())
    np.testing.assert_array_equal(x, x0)


def check_out_of_bounds_rejected(name, tiny):
    cls = rule_class(name)
    tried = 0
    for pname, p in cls.param.objects("existing").items():
        if isinstance(p, param.Number) and p.bounds is not None and not p.constant:
            lo, hi = p.bounds
            if hi is not None:
                with pytest.raises(ValueError, match=pname):
                    cls(**{pname: hi + abs(hi) + 1.0})
                tried += 1
            if lo is not None:
                with pytest.raises(ValueError, match=pname):
                    cls(**{pname: lo - abs(lo) - 1.0})
    assert tried > 0


def check_hyperparameters_untouched_by_training(name, tiny):
    rule, model = _setup(name, tiny)
    before = rule.param.values()
    for k in range(3):
        rule.train_step(model, _x(tiny, k), int(tiny.y_train[k]), Record())
    assert rule.param.values() == before


CHECKS = [check_builds_with_defaults, check_build_is_deterministic, check_same_seed_same_first_frame,
          check_frame_fields, check_predict_batched_and_pure, check_train_step_leaves_input_alone,
          check_out_of_bounds_rejected, check_hyperparameters_untouched_by_training]


def _cases():
    for name in _image_rules():
        xfails = getattr(rule_class(name), "xfail_checks", {})
        for check in CHECKS:
            marks = [pytest.mark.xfail(reason=xfails[check.__name__], strict=True)] \
                if check.__name__ in xfails else []
            yield pytest.param(name, check, id=f"{name}-{check.__name__}", marks=marks)


@pytest.mark.parametrize("name,check", list(_cases()))
def test_common(name, check, tiny):
    check(name, tiny)


def test_unknown_rule_lists_valid_names():
    from spikewb.engine.errors import ConfigError
    with pytest.raises(ConfigError, match="available rules: .*desire"):
        rule_class("no-such-rule")


@pytest.mark.parametrize("name", rule_names())
def test_every_rule_can_be_sized_for_the_server_limits(name):
    """Each registered rule tells its clock steps per sample (0 only when event-driven)."""
    rule = rule_class(name)()
    steps = rule.time_steps()
    assert isinstance(steps, int) and steps >= 0
    assert (steps == 0) == type(rule).event_driven, (name, steps)
