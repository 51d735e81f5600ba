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


def _rate_with_branch(x, n_steps, mask):
    """The per-pixel loop with a branch that the branch-free kernel replaced (float32 potentials)."""
    x = np.asarray(x, np.float32)
    out = np.zeros((n_steps + 1, x.size), np.uint8)
    u = np.zeros(x.size, np.float32)
    for t in range(n_steps):
        u = u + x
        fire = u >= np.float32(1.0)
        out[t] = fire & (mask != 0)
        u = np.where(fire, u - np.float32(1.0), u)
    return out


def test_branch_free_kernel_bit_identical_to_the_branching_loop(mnist5k):
    """Random intensities (uniform, on the 1/255 grid, exact 0 / 1, one ulp around k/8) and real
    digits, with and without a mask and an output buffer full of garbage: identical spikes."""
    rng = np.random.default_rng(7)
    cases = [mnist5k.x_train[k].astype(np.float32) / np.float32(255) for k in range(20)]
    for k in range(60):
        n = int(rng.integers(0, 900))
        x = rng.random(n, dtype=np.float32)
        if k % 3 == 1:
            x = (np.round(x * 255) / 255).astype(np.float32)
        if k % 3 == 2:
            x = np.nextafter(np.float32(rng.integers(0, 9, n) / 8), np.float32(rng.integers(0, 2, n)),
                             dtype=np.float32)
        x[rng.random(n) < 0.1] = 1.0
        x[rng.random(n) < 0.1] = 0.0
        cases.append(x)
    for k, x in enumerate(cases):
        T = (20, 1, 7, 64)[k % 4]
        mask = (rng.random(x.size) >= 0.3).astype(np.uint8) if k % 2 else np.ones(x.size, np.uint8)
        expect = _rate_with_branch(x, T, mask)
        np.testing.assert_array_equal(rate_deterministic(x, T, mask), expect)
        out = np.full((T + 1, x.size), 7, np.uint8)
        assert rate_deterministic(x, T, mask, out=out) is out
        np.testing.assert_array_equal(out, expect)


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
