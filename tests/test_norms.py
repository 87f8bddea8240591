"""helpers.norms (batch, layer, instance and group normalization of feature maps) against
torch's normalization layers (float64), and its bad input."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.norms import (
    group_normalize,
    layer_norm,
    masked_batch_norm,
    normalization_axes,
    normalize,
    normalize_feature_map,
    shares_statistics_with,
    statistics_labels,
    values_per_statistic,
)

TOL = 1e-10


def feature_map(rng, shape, offset=3.0, scale=2.0):
    return offset + scale * rng.standard_normal(shape)


def torch_reference(x, kind, num_groups=None):
    t = torch.from_numpy(x)
    n, c, h, w = x.shape
    if kind == "batch":
        return torch.nn.functional.batch_norm(t, None, None, training=True).numpy()
    if kind == "layer":
        layer = torch.nn.LayerNorm([c, h, w], dtype=torch.float64)
    elif kind == "instance":
        layer = torch.nn.InstanceNorm2d(c)
    else:
        layer = torch.nn.GroupNorm(num_groups, c, dtype=torch.float64)
    with torch.no_grad():
        return layer(t).numpy()


@pytest.mark.parametrize("kind, groups", [("batch", None), ("layer", None), ("instance", None),
                                          ("group", 1), ("group", 2), ("group", 3), ("group", 6)])
def test_normalize_feature_map_matches_torch(rng, kind, groups):
    x = feature_map(rng, (4, 6, 5, 7))
    np.testing.assert_allclose(normalize_feature_map(x, kind, groups), torch_reference(x, kind, groups),
                               rtol=0, atol=TOL)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 4), groups=st.sampled_from([1, 2, 4]), per_group=st.integers(1, 3),
       h=st.integers(2, 5), w=st.integers(1, 5), offset=st.floats(-100, 100),
       log_scale=st.floats(-2, 2), seed=st.integers(0, 2**31 - 1))
def test_group_normalize_matches_torch_property(n, groups, per_group, h, w, offset, log_scale, seed):
    rng = np.random.default_rng(seed)
    c = groups * per_group
    x = feature_map(rng, (n, c, h, w), offset, 10.0**log_scale)
    np.testing.assert_allclose(group_normalize(x, groups), torch_reference(x, "group", groups),
                               rtol=0, atol=TOL)


def test_normalize_by_axes_matches_the_named_versions(rng):
    x = feature_map(rng, (3, 4, 5, 6))
    for kind in ("batch", "layer", "instance"):
        np.testing.assert_array_equal(normalize(x, normalization_axes(kind)),
                                      normalize_feature_map(x, kind))
    np.testing.assert_allclose(group_normalize(x, 1), normalize_feature_map(x, "layer"), atol=1e-12)
    np.testing.assert_allclose(group_normalize(x, 4), normalize_feature_map(x, "instance"), atol=1e-12)
    np.testing.assert_array_equal(normalize(x, (-1, -2, 0)), normalize(x, (0, 2, 3)))


def test_normalize_float32_keeps_dtype_and_is_accurate(rng):
    x = (1e4 + 1e-2 * rng.standard_normal((4, 3, 5, 5))).astype(np.float32)
    out = normalize(x, (0, 2, 3))
    assert out.dtype == np.float32
    exact = normalize(x.astype(np.float64), (0, 2, 3))
    assert np.abs(out - exact).max() < 1e-5


def test_labels_and_masks():
    assert statistics_labels("batch", 2, 3).tolist() == [[0, 1, 2], [0, 1, 2]]
    assert statistics_labels("layer", 2, 3).tolist() == [[0, 0, 0], [1, 1, 1]]
    assert statistics_labels("instance", 2, 3).tolist() == [[0, 1, 2], [3, 4, 5]]
    assert statistics_labels("group", 2, 4, 2).tolist() == [[0, 0, 1, 1], [2, 2, 3, 3]]
    mask = shares_statistics_with("group", 3, 6, sample=1, channel=4, num_groups=3)
    assert mask.sum() == 2 and mask[1, 4] and mask[1, 5]


def test_labels_agree_with_the_computation(rng):
    """Values with the same label are normalized with one mean: check by perturbing one group."""
    x = feature_map(rng, (3, 6, 4, 4))
    for kind, groups in [("batch", None), ("layer", None), ("instance", None), ("group", 3)]:
        labels = statistics_labels(kind, 3, 6, groups)
        base = normalize_feature_map(x, kind, groups)
        shifted = x.copy()
        shifted[labels == labels[0, 0]] += 5.0  # a constant added to one statistics set
        np.testing.assert_allclose(normalize_feature_map(shifted, kind, groups), base, atol=1e-10)


def test_values_per_statistic():
    assert values_per_statistic("batch", (8, 16, 28, 28)) == 8 * 28 * 28
    assert values_per_statistic("layer", (8, 16, 28, 28)) == 16 * 28 * 28
    assert values_per_statistic("instance", (8, 16, 28, 28)) == 28 * 28
    assert values_per_statistic("group", (8, 16, 28, 28), 4) == 4 * 28 * 28


@pytest.mark.parametrize("call, words", [
    (lambda: group_normalize(np.zeros((2, 6, 3, 3)), 4), "must divide"),
    (lambda: normalize_feature_map(np.zeros((2, 6, 3)), "batch"), "4 dimensions"),
    (lambda: normalize_feature_map(np.zeros((2, 6, 3, 3)), "weight"), "kind must be one of"),
    (lambda: normalize(np.zeros((2, 3)), (2,)), "out of range"),
    (lambda: normalize(np.zeros((2, 3)), ("a",)), "integers"),
    (lambda: normalize(np.zeros((1, 3)), 0), "at least 2 values"),
    (lambda: normalize(np.zeros((2, 3)), 0, eps=0), "eps"),
    (lambda: normalization_axes("group"), "reshape"),
    (lambda: shares_statistics_with("batch", 2, 3, 2, 0), "must lie"),
])
def test_bad_input_raises_a_clear_value_error(call, words):
    with pytest.raises(ValueError, match=words):
        call()


# --- sequences: layer norm and masked batch statistics (notebook 08) ---------------------


@pytest.mark.parametrize("shape, k", [((4, 7, 5), 1), ((3, 4, 5, 6), 3), ((2, 6, 3), 2), ((9, 4), 1)])
@pytest.mark.parametrize("affine", [False, True])
def test_layer_norm_matches_torch(rng, shape, k, affine):
    x = feature_map(rng, shape)
    trailing = shape[-k:]
    gamma, beta = (rng.normal(size=trailing), rng.normal(size=trailing)) if affine else (None, None)
    expected = torch.nn.functional.layer_norm(
        torch.from_numpy(x), trailing, None if gamma is None else torch.from_numpy(gamma),
        None if beta is None else torch.from_numpy(beta), eps=1e-5).numpy()
    np.testing.assert_allclose(layer_norm(x, k, gamma, beta), expected, rtol=0, atol=TOL)


def test_layer_norm_of_a_token_does_not_depend_on_its_batch(rng):
    x = feature_map(rng, (3, 4, 6))
    np.testing.assert_allclose(layer_norm(x)[1:2], layer_norm(x[1:2]), rtol=0, atol=0)


def test_masked_batch_norm_uses_the_real_tokens_only(rng):
    x = feature_map(rng, (3, 5, 2))
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=bool)
    padded = np.where(mask[..., None], x, 0.0)
    out, mean, var = masked_batch_norm(padded, mask)
    real = x[mask]  # (9, 2)
    expected = torch.nn.functional.batch_norm(torch.from_numpy(real), None, None, training=True).numpy()
    np.testing.assert_allclose(out[mask], expected, rtol=0, atol=TOL)
    np.testing.assert_allclose(mean, real.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(var, real.var(axis=0), rtol=1e-12)


def test_bad_sequence_input_is_refused(rng):
    x = feature_map(rng, (2, 3, 4))
    with pytest.raises(ValueError, match="normalized_ndim"):
        layer_norm(x, 4)
    with pytest.raises(ValueError, match="gamma must have shape"):
        layer_norm(x, 1, gamma=np.ones(3))
    with pytest.raises(ValueError, match="bool array"):
        masked_batch_norm(x, np.ones((2, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        masked_batch_norm(x, np.eye(2, 3, dtype=bool) & np.array([[True], [False]]))
    with pytest.raises(ValueError, match=r"\(N, T, D\)"):
        masked_batch_norm(x[0], np.ones((3, 4), dtype=bool))
