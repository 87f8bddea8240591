"""The notebook 05 checkers accept the reference and name the typical mistakes."""

import numpy as np
import pytest

from helpers.bn import batchnorm_forward, spatial_batchnorm_forward
from helpers.exercises.convolutional_bn import (
    check_group_norm,
    check_normalization_axes,
    check_spatial_batchnorm_forward,
)
from helpers.norms import group_normalize, normalize

# -- spatial batch norm ------------------------------------------------------------------


def reference_spatial(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    rows = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, _ = batchnorm_forward(rows, gamma, beta, eps)
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2)


def no_transpose(x, gamma, beta, eps=1e-5):
    c = x.shape[1]
    return batchnorm_forward(x.reshape(-1, c), gamma, beta, eps)[0].reshape(x.shape)


def no_transpose_back(x, gamma, beta, eps=1e-5):
    c = x.shape[1]
    return batchnorm_forward(x.transpose(0, 2, 3, 1).reshape(-1, c), gamma, beta, eps)[0].reshape(x.shape)


def channels_last_output(x, gamma, beta, eps=1e-5):
    n, c, h, w = x.shape
    return batchnorm_forward(x.transpose(0, 2, 3, 1).reshape(-1, c), gamma, beta, eps)[0].reshape(n, h, w, c)


def rows_output(x, gamma, beta, eps=1e-5):
    c = x.shape[1]
    return batchnorm_forward(x.transpose(0, 2, 3, 1).reshape(-1, c), gamma, beta, eps)[0]


def per_activation(x, gamma, beta, eps=1e-5):
    return gamma[:, None, None] * normalize(x, 0, eps) + beta[:, None, None]


def per_sample_channel(x, gamma, beta, eps=1e-5):
    return gamma[:, None, None] * normalize(x, (2, 3), eps) + beta[:, None, None]


def per_sample(x, gamma, beta, eps=1e-5):
    return gamma[:, None, None] * normalize(x, (1, 2, 3), eps) + beta[:, None, None]


def unbiased(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), ddof=1, keepdims=True)
    return gamma[:, None, None] * (x - mean) / np.sqrt(var + eps) + beta[:, None, None]


def no_eps(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    return gamma[:, None, None] * (x - mean) / np.sqrt(var) + beta[:, None, None]


def not_attempted(x, gamma, beta, eps=1e-5):
    raise NotImplementedError


def crashes(x, gamma, beta, eps=1e-5):
    return x @ gamma  # a shape error inside the reader's code


def test_spatial_checker_accepts_reference_and_helper():
    assert check_spatial_batchnorm_forward(reference_spatial).passed
    assert check_spatial_batchnorm_forward(spatial_batchnorm_forward).passed  # (out, cache)


@pytest.mark.parametrize("function, words", [
    (no_transpose, "without transposing"),
    (no_transpose_back, "laid out wrongly"),
    (channels_last_output, "(N, H, W, C)"),
    (rows_output, "(N*H*W, C)"),
    (per_activation, "per (c, h, w)"),
    (per_sample_channel, "instance norm"),
    (per_sample, "layer norm"),
    (unbiased, "unbiased"),
    (no_eps, "eps is missing"),
    (crashes, "raised"),
])
def test_spatial_checker_names_the_mistake(function, words):
    feedback = check_spatial_batchnorm_forward(function)
    assert not feedback.passed and feedback.attempted
    assert any(words in message for message in feedback.messages), feedback.messages


def test_spatial_checker_not_attempted_is_friendly():
    feedback = check_spatial_batchnorm_forward(not_attempted)
    assert not feedback.attempted and not feedback.passed
    assert "not attempted" in str(feedback)


# -- which axes --------------------------------------------------------------------------


def test_axes_checker_accepts_any_order_and_negative_axes():
    answers = {"batch": (3, 0, 2), "layer": [-1, -2, 1], "instance": (2, 3), "group": (2, 3, 4)}
    assert check_normalization_axes(lambda: answers).passed


@pytest.mark.parametrize("kind, wrong, words", [
    ("batch", (0,), "fully connected"),
    ("batch", (2, 3), "instance norm"),
    ("layer", (0, 2, 3), "batch norm"),
    ("instance", (1, 2, 3), "layer norm"),
    ("group", (1, 2, 3, 4), "layer norm"),
    ("group", (1, 3, 4), "axis 1 indexes the groups"),
    ("group", (7,), "not a tuple of axes"),
])
def test_axes_checker_names_the_mistake(kind, wrong, words):
    answers = {"batch": (0, 2, 3), "layer": (1, 2, 3), "instance": (2, 3), "group": (2, 3, 4)}
    answers[kind] = wrong
    feedback = check_normalization_axes(lambda: answers)
    assert not feedback.passed
    assert any(message.startswith(kind) and words in message for message in feedback.messages), feedback.messages


def test_axes_checker_unattempted_and_incomplete():
    def unattempted():
        raise NotImplementedError

    assert not check_normalization_axes(unattempted).attempted
    feedback = check_normalization_axes(lambda: {"batch": (0, 2, 3), "layer": ...})
    assert not feedback.passed and any("no answer yet" in m for m in feedback.messages)


# -- group norm --------------------------------------------------------------------------


def reference_group(x, num_groups, eps=1e-5):
    n, c, h, w = x.shape
    grouped = x.reshape(n, num_groups, c // num_groups, h, w)
    mean = grouped.mean(axis=(2, 3, 4), keepdims=True)
    var = grouped.var(axis=(2, 3, 4), keepdims=True)
    return ((grouped - mean) / np.sqrt(var + eps)).reshape(x.shape)


def interleaved_group(x, num_groups, eps=1e-5):
    n, c, h, w = x.shape
    return normalize(x.reshape(n, c // num_groups, num_groups, h, w), (1, 3, 4), eps).reshape(x.shape)


def layer_instead(x, num_groups, eps=1e-5):
    return normalize(x, (1, 2, 3), eps)


def group_no_eps(x, num_groups, eps=1e-5):
    n, c, h, w = x.shape
    grouped = x.reshape(n, num_groups, c // num_groups, h, w)
    mean = grouped.mean(axis=(2, 3, 4), keepdims=True)
    return ((grouped - mean) / grouped.std(axis=(2, 3, 4), keepdims=True)).reshape(x.shape)


def test_group_checker_accepts_reference_and_helper():
    assert check_group_norm(reference_group).passed
    assert check_group_norm(group_normalize).passed


@pytest.mark.parametrize("function, words", [
    (interleaved_group, "interleaved"),
    (layer_instead, "layer norm"),
    (group_no_eps, "eps is missing"),
])
def test_group_checker_names_the_mistake(function, words):
    feedback = check_group_norm(function)
    assert not feedback.passed
    assert any(words in message for message in feedback.messages), feedback.messages


def test_group_checker_not_attempted():
    def stub(x, num_groups, eps=1e-5):
        raise NotImplementedError

    assert not check_group_norm(stub).attempted


# -- float32 answers and any wrong choice of axes, named -----------------------------------------


def float32_spatial(x, gamma, beta, eps=1e-5):
    return reference_spatial(x.astype(np.float32), gamma.astype(np.float32), beta.astype(np.float32), eps)


def test_a_correct_answer_in_float32_is_told_so_with_the_tolerance():
    for feedback in (check_spatial_batchnorm_forward(float32_spatial),
                     check_group_norm(lambda x, g, eps=1e-5: reference_group(x.astype(np.float32), g, eps))):
        assert not feedback.passed
        assert "computes in float32" in feedback.messages[0] and "1e-08" in feedback.messages[0]


def test_a_float32_answer_with_a_real_mistake_gets_the_mistake_named():
    feedback = check_spatial_batchnorm_forward(
        lambda x, gamma, beta, eps=1e-5: unbiased(x.astype(np.float32), gamma.astype(np.float32),
                                                  beta.astype(np.float32), eps))
    assert "unbiased" in feedback.messages[0], feedback.messages


def test_any_wrong_group_axes_are_named():
    answers = {"batch": (0, 2, 3), "layer": (1, 2, 3), "instance": (2, 3), "group": (1, 2)}
    feedback = check_normalization_axes(lambda: answers)
    assert feedback.messages[-1] == (
        "group: (1, 2) averages over G, C/G (axes 1, 2): one mean and variance per (N, H, W); "
        "group norm averages over C/G, H, W (axes 2, 3, 4): one mean and variance per (N, G).")


def test_a_group_norm_over_other_axes_of_the_grouped_array_is_named():
    def over_groups_and_positions(x, num_groups, eps=1e-5):
        n, c, h, w = x.shape
        return normalize(x.reshape(n, num_groups, c // num_groups, h, w), (1, 3, 4), eps).reshape(x.shape)

    feedback = check_group_norm(over_groups_and_positions)
    assert not feedback.passed
    assert ("your normalization averages over G, H, W (axes 1, 3, 4): one mean and variance per "
            "(N, C/G). Group norm averages over C/G, H, W (axes 2, 3, 4)") in feedback.messages[0]


def test_a_spatial_forward_over_other_axes_is_named():
    def over_n_c_w(x, gamma, beta, eps=1e-5):
        return gamma[:, None, None] * normalize(x, (0, 1, 3), eps) + beta[:, None, None]

    feedback = check_spatial_batchnorm_forward(over_n_c_w)
    assert feedback.messages == ["Your normalization averages over N, C, W (axes 0, 1, 3): one mean "
                                 "and variance per H. Batch norm averages over N, H, W (axes 0, 2, 3): "
                                 "one mean and variance per C."]
