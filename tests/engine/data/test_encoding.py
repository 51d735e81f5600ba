import numpy as np
import pytest

from spikewb.engine.data.encoding import rate_bernoulli, rate_deterministic, time_to_first_spike
from spikewb.engine.errors import DataError
from tests.naive import rate_encode


def test_deterministic_rate_counts_and_spacing():
    out = rate_deterministic(np.array([1.0, 0.5, 0.25, 0.0]), 8)
    assert out.shape == (9, 4) and out[8].sum() == 0
    assert out[:8].sum(0).tolist() == [8, 4, 2, 0]
    assert np.flatnonzero(out[:8, 1]).tolist() == [1, 3, 5, 7]


def test_deterministic_rate_matches_naive_on_real_digit(mnist5k):
    x = mnist5k.x_train[0].astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(rate_deterministic(x, 20)[:20], rate_encode(x, 20))


def test_uint8_input_and_mask():
    x = np.array([255, 255], np.uint8)
    out = rate_deterministic(x, 3, mask=np.array([1, 0], np.uint8))
    assert out[:3, 0].tolist() == [1, 1, 1] and out[:, 1].sum() == 0


@pytest.mark.parametrize("bad", [np.array([0.5, np.nan]), np.array([1.5]), np.array([-0.1])])
def test_bad_intensities_rejected(bad):
    with pytest.raises(DataError, match=r"\[0, 1\]|NaN"):
        rate_deterministic(bad, 5)


def test_bernoulli_rate():
    rng = np.random.default_rng(0)
    out = rate_bernoulli(np.full(2000, 0.3), 50, rng)
    assert abs(out[:50].mean() - 0.3) < 0.01


def test_ttfs():
    np.testing.assert_allclose(time_to_first_spike(np.array([1.0, 0.5, 0.0]), 10.0), [0.0, 5.0, np.inf])
