"""Bad input raises ValueError with a message that says what was expected."""

import numpy as np
import pytest

from helpers import bn

ONE, ZERO = np.ones(3), np.zeros(3)


@pytest.mark.parametrize(
    "call, expected",
    [
        (lambda: bn.batchnorm_forward(np.ones(3), ONE, ZERO), r"2 dimensions \(N, D\)"),
        (lambda: bn.batchnorm_forward(np.ones((2, 3, 1, 1)), ONE, ZERO), r"2 dimensions \(N, D\)"),
        (lambda: bn.batchnorm_forward(np.ones((1, 3)), ONE, ZERO), "more than one value per feature.*N = 1"),
        (lambda: bn.batchnorm_forward(np.ones((4, 3)), np.ones(2), ZERO), r"gamma must have shape \(3,\)"),
        (lambda: bn.batchnorm_forward(np.ones((4, 3)), ONE, np.zeros((3, 1))), r"beta must have shape \(3,\)"),
        (lambda: bn.batchnorm_forward(np.ones((4, 3)), ONE, ZERO, eps=0), "eps must be a positive"),
        (lambda: bn.batchnorm_forward(np.ones((4, 3)), ONE, ZERO, eps=-1e-5), "eps must be a positive"),
        (lambda: bn.spatial_batchnorm_forward(np.ones((4, 3)), ONE, ZERO), r"4 dimensions \(N, C, H, W\)"),
        (lambda: bn.spatial_batchnorm_forward(np.ones((1, 3, 1, 1)), ONE, ZERO), r"N \* H \* W = 1"),
        (lambda: bn.spatial_batchnorm_forward(np.ones((2, 3, 2, 2)), np.ones(4), ZERO), r"gamma must have shape \(3,\)"),
        (lambda: bn.batchnorm_inference(np.ones(3), ONE, ZERO, ZERO, ONE), r"\(N, D\) or \(N, C, H, W\)"),
        (lambda: bn.batchnorm_inference(np.ones((2, 3)), ONE, ZERO, ZERO, np.ones(2)), r"running_var must have shape \(3,\)"),
        (lambda: bn.batchnorm_inference(np.ones((2, 3)), ONE, ZERO, ZERO, ONE, eps=0.0), "eps must be a positive"),
        (lambda: bn.update_running_stats(ZERO, ONE, ZERO, ONE, n=1), "n, the number of values.*>= 2"),
        (lambda: bn.update_running_stats(ZERO, ONE, ZERO, np.ones(2), n=4), r"batch_var must have shape \(3,\)"),
        (lambda: bn.update_running_stats(ZERO, ONE, ZERO, ONE, n=4, momentum=1.5), r"momentum must be a number in \[0, 1\]"),
        (lambda: bn.fold_batchnorm(np.ones(3), None, ONE, ZERO, ZERO, ONE), "weight must be"),
        (lambda: bn.fold_batchnorm(np.ones((3, 2)), np.ones(2), ONE, ZERO, ZERO, ONE), r"bias must have shape \(3,\)"),
        (lambda: bn.fold_batchnorm(np.ones((3, 2)), None, np.ones(2), ZERO, ZERO, ONE), r"gamma must have shape \(3,\)"),
        (lambda: bn.BatchNorm(0), "num_features must be a positive integer"),
        (lambda: bn.BatchNorm(3, eps=0), "eps must be a positive"),
        (lambda: bn.BatchNorm(3, momentum=-0.1), "momentum must be None or a number"),
        (lambda: bn.BatchNorm(3)(np.ones((4, 2))), "x must have 3 features on axis 1"),
        (lambda: bn.BatchNorm(3)(np.ones((4, 3, 2, 2, 1))), r"\(N, C\), \(N, C, L\) or \(N, C, H, W\)"),
        (lambda: bn.BatchNorm(3)(np.ones((1, 3))), "more than one value per feature"),
        (lambda: bn.BatchNorm(3).backward(np.ones((2, 3))), "backward needs a forward pass first"),
    ],
)
def test_bad_input_raises_a_clear_value_error(call, expected):
    with pytest.raises(ValueError, match=expected):
        call()


def test_backward_rejects_dout_of_the_wrong_shape():
    _, cache = bn.batchnorm_forward(np.random.default_rng(0).normal(size=(4, 3)), ONE, ZERO)
    for backward in (bn.batchnorm_backward, bn.batchnorm_backward_compact):
        with pytest.raises(ValueError, match=r"dout must have the shape of the forward output \(4, 3\)"):
            backward(np.ones((3, 4)), cache)


def test_a_batch_of_one_is_fine_in_eval_mode():
    layer = bn.BatchNorm(3).eval()
    out = layer(np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(out, np.array([[1.0, 2.0, 3.0]]) / np.sqrt(1 + 1e-5))


# --- arguments of the wrong type name the argument and what was expected ----------------------

X = np.arange(12.0).reshape(4, 3)


@pytest.mark.parametrize("call, expected", [
    (lambda: bn.batchnorm_forward(X, ONE, ZERO, eps=None), "eps must be a positive number.*None"),
    (lambda: bn.batchnorm_forward(X, ONE, ZERO, eps="1e-5"), "eps must be a positive number.*'1e-5'"),
    (lambda: bn.spatial_batchnorm_forward(X[:, :, None, None], ONE, ZERO, eps="1e-5"), "eps must be a positive number"),
    (lambda: bn.batchnorm_inference(X, ONE, ZERO, ZERO, ONE, eps=None), "eps must be a positive number"),
    (lambda: bn.fold_batchnorm(np.ones((3, 2)), None, ONE, ZERO, ZERO, ONE, eps="1e-5"), "eps must be a positive number"),
    (lambda: bn.BatchNorm(3, eps=None), "eps must be a positive number"),
    (lambda: bn.BatchNorm(3, momentum="0.1"), "momentum must be None or a number in \\[0, 1\\].*'0.1'"),
    (lambda: bn.update_running_stats(ZERO, ONE, ZERO, ONE, n=4, momentum="0.1"), "momentum must be a number in \\[0, 1\\].*'0.1'"),
    (lambda: bn.BatchNorm("3"), "num_features must be a positive integer.*'3'"),
    (lambda: bn.batchnorm_backward(np.ones((4, 3)), None), "cache must be the BatchNormCache.*None"),
    (lambda: bn.batchnorm_backward_compact(np.ones((4, 3)), None), "cache must be the BatchNormCache.*None"),
    (lambda: bn.spatial_batchnorm_backward(np.ones((2, 3, 1, 2)), None), "cache must be the cache.*spatial_batchnorm_forward"),
])
def test_arguments_of_the_wrong_type_raise_a_clear_type_error(call, expected):
    with pytest.raises(TypeError, match=expected):
        call()


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 2.5, -1, True])
def test_num_features_must_be_a_positive_integer(value):
    with pytest.raises((ValueError, TypeError), match="num_features must be a positive integer"):
        bn.BatchNorm(value)


def test_passing_the_whole_forward_result_as_the_cache_is_explained():
    result = bn.batchnorm_forward(X, ONE, ZERO)  # (out, cache), not cache
    for backward in (bn.batchnorm_backward, bn.batchnorm_backward_compact):
        with pytest.raises(TypeError, match=r"got a tuple.*\(out, cache\).*out, cache = batchnorm_forward"):
            backward(np.ones((4, 3)), result)


def test_a_spatial_cache_in_the_2d_backward_and_the_reverse_are_explained():
    x4 = np.arange(24.0).reshape(2, 3, 2, 2)
    _, spatial_cache = bn.spatial_batchnorm_forward(x4, ONE, ZERO)
    _, cache_2d = bn.batchnorm_forward(X, ONE, ZERO)
    with pytest.raises(TypeError, match="spatial_batchnorm_forward.*spatial_batchnorm_backward"):
        bn.batchnorm_backward(np.ones((4, 3)), spatial_cache)
    with pytest.raises(TypeError, match="batchnorm_forward.*batchnorm_backward"):
        bn.spatial_batchnorm_backward(np.ones((2, 3, 2, 2)), cache_2d)
    with pytest.raises(TypeError, match=r"got a tuple.*\(out, cache\)"):
        bn.spatial_batchnorm_backward(np.ones((2, 3, 2, 2)), bn.spatial_batchnorm_forward(x4, ONE, ZERO))


def test_backward_after_a_failed_forward_says_so_instead_of_blaming_dout():
    layer = bn.BatchNorm(3)
    layer(X)
    with pytest.raises(ValueError, match="more than one value per feature"):
        layer(X[:1])
    with pytest.raises(ValueError, match="last call to forward failed"):
        layer.backward(np.ones((4, 3)))
    layer(X)  # a good forward makes backward possible again
    assert layer.backward(np.ones((4, 3))).shape == (4, 3)


def test_a_failed_forward_changes_no_running_statistics():
    layer = bn.BatchNorm(3)
    layer(X)
    before = (layer.running_mean.copy(), layer.running_var.copy(), layer.num_batches_tracked)
    for bad in (X[:1], X[:, :2], np.ones((4, 3, 2, 2, 1))):
        with pytest.raises(ValueError):
            layer(bad)
    np.testing.assert_array_equal(layer.running_mean, before[0])
    np.testing.assert_array_equal(layer.running_var, before[1])
    assert layer.num_batches_tracked == before[2]


@pytest.mark.parametrize("running_var", [np.array([1.0, -0.5, 1.0]), np.array([1.0, np.nan, 1.0])])
def test_fold_batchnorm_refuses_a_negative_or_nan_running_variance(running_var):
    with pytest.raises(ValueError, match="running_var"):
        bn.fold_batchnorm(np.ones((3, 2)), None, ONE, ZERO, ZERO, running_var)
    with pytest.raises(ValueError, match="running_var"):
        bn.batchnorm_inference(np.ones((2, 3)), ONE, ZERO, ZERO, running_var)


def test_update_running_stats_refuses_a_negative_batch_variance():
    with pytest.raises(ValueError, match="batch_var must be non-negative"):
        bn.update_running_stats(ZERO, ONE, ZERO, np.array([1.0, -1e-3, 1.0]), n=4)
    with pytest.raises(ValueError, match="running_var must be non-negative"):
        bn.update_running_stats(ZERO, np.array([1.0, -1.0, 1.0]), ZERO, ONE, n=4)
