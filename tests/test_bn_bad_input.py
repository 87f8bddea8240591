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
        (lambda: bn.BatchNorm(3)(np.ones((4, 3, 2))), r"\(N, C\) or \(N, C, H, W\)"),
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
