"""Notebook 02's exercise checkers accept right answers and name the usual mistakes."""

import numpy as np
import pytest
import torch

from helpers.bn import batchnorm_forward
from helpers.exercises.forward_transform import check_batchnorm_forward, check_identity_parameters

# --- right answers, written in different ways ------------------------------------------------------


def reference_forward(x, gamma, beta, eps=1e-5):
    return batchnorm_forward(x, gamma, beta, eps)[0]


def plain_numpy_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def np_var_forward(x, gamma, beta, eps=1e-5):
    return gamma * (x - x.mean(0)) / np.sqrt(np.var(x, axis=0) + eps) + beta


def torch_forward(x, gamma, beta, eps=1e-5):  # returns a tensor: the checker accepts it
    return torch.nn.functional.batch_norm(torch.from_numpy(x), None, None, torch.from_numpy(gamma),
                                          torch.from_numpy(beta), training=True, eps=eps)


@pytest.mark.parametrize("forward", [reference_forward, plain_numpy_forward, np_var_forward, torch_forward])
def test_the_checker_accepts_correct_forward_passes(forward):
    feedback = check_batchnorm_forward(forward)
    assert feedback.passed and feedback.attempted, str(feedback)
    assert str(feedback).startswith("[correct]")


def test_a_tuple_like_helpers_bn_returns_is_accepted_with_a_note():
    feedback = check_batchnorm_forward(lambda x, gamma, beta, eps: batchnorm_forward(x, gamma, beta, eps))
    assert feedback.passed
    assert sum("returned a tuple" in message for message in feedback.messages) == 1


def test_an_unattempted_exercise_gives_a_friendly_note():
    def my_batchnorm_forward(x, gamma, beta, eps=1e-5):
        raise NotImplementedError

    feedback = check_batchnorm_forward(my_batchnorm_forward)
    assert not feedback.passed and not feedback.attempted
    assert str(feedback).startswith("[not attempted]")
    assert "not attempted" in feedback._repr_html_()


# --- the usual mistakes, each with its own message ---------------------------------------------------


def stats(x, axis=0, ddof=0):
    return x.mean(axis=axis, keepdims=True), x.var(axis=axis, ddof=ddof, keepdims=True)


def per_example(x, gamma, beta, eps=1e-5):
    mu, var = stats(x, axis=1)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def whole_array(x, gamma, beta, eps=1e-5):
    return gamma * (x - x.mean()) / np.sqrt(x.var() + eps) + beta


def unbiased(x, gamma, beta, eps=1e-5):
    return gamma * (x - x.mean(0)) / np.sqrt(x.var(0, ddof=1) + eps) + beta


def torch_var_default(x, gamma, beta, eps=1e-5):  # torch.var divides by N - 1 by default
    t = torch.from_numpy(x)
    return (gamma * ((t - t.mean(0)) / torch.sqrt(t.var(0) + eps)).numpy()) + beta


def no_eps_but_safe_for_constants(x, gamma, beta, eps=1e-5):
    # eps missing, with a guard that hides the NaN on the constant feature
    std = np.sqrt(x.var(0))
    return gamma * (x - x.mean(0)) / np.where(std == 0, 1.0, std) + beta


def eps_outside_sqrt(x, gamma, beta, eps=1e-5):
    return gamma * (x - x.mean(0)) / (np.sqrt(x.var(0)) + eps) + beta


def no_sqrt(x, gamma, beta, eps=1e-5):
    return gamma * (x - x.mean(0)) / (x.var(0) + eps) + beta


def swapped(x, gamma, beta, eps=1e-5):
    return beta * (x - x.mean(0)) / np.sqrt(x.var(0) + eps) + gamma


def no_affine(x, gamma, beta, eps=1e-5):
    return (x - x.mean(0)) / np.sqrt(x.var(0) + eps)


def not_centred(x, gamma, beta, eps=1e-5):
    return gamma * x / np.sqrt(x.var(0) + eps) + beta


def one_pass_variance(x, gamma, beta, eps=1e-5):
    mu = x.mean(0)
    var = (x**2).mean(0) - mu**2  # cancels catastrophically when |mu| >> std
    with np.errstate(invalid="ignore"):
        return gamma * (x - mu) / np.sqrt(var + eps) + beta


MISTAKES = [
    (per_example, "per example (over axis 1"),
    (whole_array, "over the whole array"),
    (unbiased, "divides by N - 1"),
    (torch_var_default, "torch.var's default"),
    (no_eps_but_safe_for_constants, "eps is missing"),
    (eps_outside_sqrt, "eps is outside the square root"),
    (no_sqrt, "without the square root"),
    (swapped, "gamma and beta are swapped"),
    (no_affine, "You return x_hat"),
    (not_centred, "did not subtract the mean"),
    (one_pass_variance, "mean(x**2) - mean(x)**2"),
]


@pytest.mark.parametrize("forward, expected", MISTAKES, ids=[f.__name__ for f, _ in MISTAKES])
def test_the_checker_names_each_usual_mistake(forward, expected):
    feedback = check_batchnorm_forward(forward)
    assert feedback.attempted and not feedback.passed
    assert len(feedback.messages) == 1
    assert expected in feedback.messages[0], feedback.messages[0]


def test_missing_eps_shows_up_as_nan_on_a_constant_feature():
    def no_eps(x, gamma, beta, eps=1e-5):
        with np.errstate(divide="ignore", invalid="ignore"):
            return gamma * (x - x.mean(0)) / np.sqrt(x.var(0)) + beta

    feedback = check_batchnorm_forward(no_eps)
    # the first hidden case has no constant feature: there, the missing eps is recognized directly
    assert "eps is missing" in feedback.messages[0]

    def no_eps_exact_on_the_first_cases(x, gamma, beta, eps=1e-5):
        # a forward pass that is right except for a constant feature (divides 0 by 0 there)
        var = x.var(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return gamma * (x - x.mean(0)) / np.sqrt(np.where(var == 0, 0.0, var + eps)) + beta

    feedback = check_batchnorm_forward(no_eps_exact_on_the_first_cases)
    assert "constant feature" in feedback.messages[0] and "NaN" in feedback.messages[0]


def test_wrong_shape_none_in_place_and_exceptions_are_explained():
    shape = check_batchnorm_forward(lambda x, gamma, beta, eps: x.mean(axis=0))
    assert "shape (3,)" in shape.messages[0] and "(6, 3)" in shape.messages[0]

    none = check_batchnorm_forward(lambda x, gamma, beta, eps: None)
    assert "return" in none.messages[0]

    def in_place(x, gamma, beta, eps=1e-5):
        x -= x.mean(0)
        return gamma * x / np.sqrt(x.var(0) + eps) + beta

    assert "in place" in check_batchnorm_forward(in_place).messages[0]

    def broadcast_error(x, gamma, beta, eps=1e-5):
        return x - x.mean(axis=1)  # (6, 3) - (6,)

    message = check_batchnorm_forward(broadcast_error).messages[0]
    assert "raised ValueError" in message and "axis=0" in message

    def typo(x, gamma, beta, eps=1e-5):
        return gamma * undefined_name  # noqa: F821

    assert "NameError" in check_batchnorm_forward(typo).messages[0]


def test_an_unknown_mistake_gets_a_description_of_what_is_off():
    def swapped_and_unbiased(x, gamma, beta, eps=1e-5):
        return beta * (x - x.mean(0)) / np.sqrt(x.var(0, ddof=1) + eps) + gamma

    message = check_batchnorm_forward(swapped_and_unbiased).messages[0]
    assert "should equal beta" in message and "swapped" in message


# --- identity recovery ----------------------------------------------------------------------------


def test_identity_checker_accepts_the_right_parameters():
    feedback = check_identity_parameters(lambda x, eps: (np.sqrt(x.var(axis=0) + eps), x.mean(axis=0)))
    assert feedback.passed, str(feedback)


@pytest.mark.parametrize("parameters, expected", [
    (lambda x, eps: (np.sqrt(x.var(0)), x.mean(0)), "leaves out eps"),
    (lambda x, eps: (np.sqrt(x.var(0, ddof=1) + eps), x.mean(0)), "unbiased variance (N - 1)"),
    (lambda x, eps: (np.sqrt(x.var(0, ddof=1)), x.mean(0)), "unbiased variance and leaves out eps"),
    (lambda x, eps: (x.mean(0), np.sqrt(x.var(0) + eps)), "swapped"),
    (lambda x, eps: (x.var(0) + eps, x.mean(0)), "not the variance"),
    (lambda x, eps: (x.std(0), np.zeros(x.shape[1])), "Undo the normalization"),
    (lambda x, eps: np.sqrt(x.var(0) + eps), "Return two arrays"),
    (lambda x, eps: (np.sqrt(x.var() + eps), x.mean()), "shape (3,)"),
], ids=["no eps", "unbiased", "unbiased no eps", "swapped", "variance", "other", "one array", "scalars"])
def test_identity_checker_names_the_mistake(parameters, expected):
    feedback = check_identity_parameters(parameters)
    assert not feedback.passed and feedback.attempted
    assert expected in feedback.messages[0], feedback.messages[0]


def test_identity_checker_not_attempted():
    def my_identity_parameters(x, eps=1e-5):
        raise NotImplementedError

    feedback = check_identity_parameters(my_identity_parameters)
    assert not feedback.attempted and str(feedback).startswith("[not attempted]")
