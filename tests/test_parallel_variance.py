"""helpers.parallel_variance: merged (count, mean, M2) equal the statistics of the concatenated
data (float64, 1e-12) for any split, empty parts included; the merge stays accurate in float32
where the one-pass shortcut does not; it works on torch tensors; bad input is refused."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.parallel_variance import Moments, merge, merge_all, moments, variance


def split(x, sizes):
    return np.split(x, np.cumsum(sizes)[:-1])


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 40), min_size=1, max_size=7).filter(lambda s: sum(s) >= 2),
       ratio=st.floats(-1e3, 1e3), scale=st.floats(1e-3, 1e3), seed=st.integers(0, 2**31))
def test_merging_any_split_gives_the_moments_of_the_whole(sizes, ratio, scale, seed):
    # offsets up to 1000 standard deviations: beyond that float64's own rounding of the data
    # (relative eps * offset / std in every deviation) reaches 1e-12, for any algorithm
    x = ratio * scale + scale * np.random.default_rng(seed).normal(size=(sum(sizes), 3))
    total = merge_all(moments(part) for part in split(x, sizes))
    assert total.count == len(x)
    np.testing.assert_allclose(total.mean, x.mean(axis=0), rtol=1e-12, atol=1e-12 * scale)
    np.testing.assert_allclose(variance(total), x.var(axis=0), rtol=1e-12)
    np.testing.assert_allclose(variance(total, ddof=1), x.var(axis=0, ddof=1), rtol=1e-12)


def test_unequal_counts_and_the_order_of_merging_do_not_matter(rng):
    x = rng.normal(5.0, 2.0, size=(101, 4))
    parts = [moments(part) for part in split(x, [1, 0, 37, 2, 61])]
    left_to_right = merge_all(parts)
    tree = merge(merge(parts[0], parts[1]), merge(merge(parts[2], parts[3]), parts[4]))
    for merged in (left_to_right, tree):
        np.testing.assert_allclose(merged.mean, x.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(merged.m2, ((x - x.mean(axis=0)) ** 2).sum(axis=0), rtol=1e-12)


def test_moments_over_several_axes_are_per_channel_statistics(rng):
    x = rng.normal(size=(3, 4, 5, 6)) * np.arange(1, 5)[None, :, None, None]
    m = moments(x, axis=(0, 2, 3))
    assert m.count == 3 * 5 * 6 and m.mean.shape == (4,)
    np.testing.assert_allclose(variance(m), x.var(axis=(0, 2, 3)), rtol=1e-12)
    parts = merge_all([moments(x[:1], axis=(0, 2, 3)), moments(x[1:], axis=(0, 2, 3))])
    np.testing.assert_allclose(variance(parts), x.var(axis=(0, 2, 3)), rtol=1e-12)


def test_an_empty_part_has_count_zero_and_leaves_the_other_unchanged(rng):
    x = rng.normal(size=(5, 2))
    empty = moments(x[:0])
    assert empty.count == 0 and empty.mean.shape == (2,) and not np.any(empty.m2)
    for merged in (merge(empty, moments(x)), merge(moments(x), empty)):
        assert merged.count == 5
        np.testing.assert_array_equal(merged.mean, moments(x).mean)
        np.testing.assert_array_equal(merged.m2, moments(x).m2)


def test_in_float32_the_merge_is_accurate_where_sums_of_squares_cancel():
    x = (np.random.default_rng(0).normal(size=4096) + 1e4).astype(np.float32)
    truth = x.astype(np.float64).var()
    merged = merge_all(moments(part) for part in split(x, [1000, 300, 1700, 1096]))
    assert merged.mean.dtype == np.float32
    assert abs(variance(merged) / truth - 1) < 1e-4
    shortcut = (x * x).mean(dtype=np.float32) - x.mean(dtype=np.float32) ** 2
    assert abs(shortcut / truth - 1) > 0.5


def test_merge_works_on_torch_tensors():
    x = torch.randn(30, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 + 7
    parts = [Moments(len(p), p.mean(0), ((p - p.mean(0)) ** 2).sum(0)) for p in x.split([4, 26])]
    merged = merge_all(parts)
    assert isinstance(merged.mean, torch.Tensor)
    torch.testing.assert_close(merged.m2 / merged.count, x.var(0, unbiased=False), rtol=1e-12, atol=0)


@pytest.mark.parametrize("call, words", [
    (lambda: merge(Moments(-1, np.zeros(2), np.zeros(2)), Moments(3, np.zeros(2), np.zeros(2))), "counts must be >= 0"),
    (lambda: merge(Moments(2, np.zeros(2), np.zeros(2)), Moments(3, np.zeros(3), np.zeros(3))), "different shapes"),
    (lambda: merge_all([]), "at least one part"),
    (lambda: variance(Moments(1, np.zeros(2), np.zeros(2)), ddof=1), "more than 1"),
    (lambda: moments(np.float64(3.0)), "at least one axis"),
    (lambda: moments(np.zeros((3, 2)), axis=2), "does not fit"),
    (lambda: moments(np.zeros((3, 2)), axis=(0, 0)), "does not fit"),
])
def test_bad_input_raises_a_clear_value_error(call, words):
    with pytest.raises(ValueError, match=words):
        call()
