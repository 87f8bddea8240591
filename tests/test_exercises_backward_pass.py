"""The checker of notebook 03's exercise accepts the reference and names each typical mistake.

Each wrong answer below is written the way a reader would write it, not with the checker's
own variant_backward, so the test shows the checker recognizes real code."""

import numpy as np
import pytest

from helpers.exercises.backward_pass import (
    check_batchnorm_backward,
    hidden_cases,
    reference_backward,
)


def closed_form(dout, x, gamma, eps=1e-5):
    """A reader's correct answer."""
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    std = np.sqrt(var + eps)
    x_hat = (x - mu) / std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma / (n * std) * (n * dout - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta


def with_statistics(x, eps, ddof=0):
    mu = x.mean(axis=0)
    std = np.sqrt(x.var(axis=0, ddof=ddof) + eps)
    return (x - mu) / std, std


def unbiased(dout, x, gamma, eps=1e-5):
    n = x.shape[0]
    x_hat, std = with_statistics(x, eps, ddof=1)
    dbeta, dgamma = dout.sum(0), (dout * x_hat).sum(0)
    return gamma / (n * std) * (n * dout - dbeta - x_hat * dgamma), dgamma, dbeta


def no_eps(dout, x, gamma, eps=1e-5):
    return closed_form(dout, x, gamma, eps=0.0)


def hard_coded_eps(dout, x, gamma, eps=1e-5):
    return closed_form(dout, x, gamma, 1e-5)


def detached(dout, x, gamma, eps=1e-5):
    x_hat, std = with_statistics(x, eps)
    return gamma * dout / std, (dout * x_hat).sum(0), dout.sum(0)


def no_mean_term(dout, x, gamma, eps=1e-5):
    n = x.shape[0]
    x_hat, std = with_statistics(x, eps)
    dgamma = (dout * x_hat).sum(0)
    return gamma / (n * std) * (n * dout - x_hat * dgamma), dgamma, dout.sum(0)


def no_variance_term(dout, x, gamma, eps=1e-5):
    """The popular formula: dmu without its dvar term, and no dvar path into dx."""
    n = x.shape[0]
    x_hat, std = with_statistics(x, eps)
    dx_hat = dout * gamma
    dmu = -(dx_hat / std).sum(0)
    return dx_hat / std + dmu / n, (dout * x_hat).sum(0), dout.sum(0)


def swapped(dout, x, gamma, eps=1e-5):
    dx, dgamma, dbeta = closed_form(dout, x, gamma, eps)
    return dx, dbeta, dgamma


def not_summed(dout, x, gamma, eps=1e-5):
    """The seed note's dgamma and dbeta: no sum over the batch."""
    x_hat, _ = with_statistics(x, eps)
    dx, _, _ = closed_form(dout, x, gamma, eps)
    return dx, dout * x_hat, dout


def summed_over_features(dout, x, gamma, eps=1e-5):
    x_hat, _ = with_statistics(x, eps)
    dx, _, _ = closed_form(dout, x, gamma, eps)
    return dx, (dout * x_hat).sum(axis=1), dout.sum(axis=1)


def keepdims(dout, x, gamma, eps=1e-5):
    dx, dgamma, dbeta = closed_form(dout, x, gamma, eps)
    return dx, dgamma[None, :], dbeta[None, :]


def forgot_one_over_n(dout, x, gamma, eps=1e-5):
    dx, dgamma, dbeta = closed_form(dout, x, gamma, eps)
    return dx * x.shape[0], dgamma, dbeta


def forgot_gamma(dout, x, gamma, eps=1e-5):
    dx, dgamma, dbeta = closed_form(dout, x, gamma, eps)
    return dx / gamma, dgamma, dbeta


def dgamma_from_centred(dout, x, gamma, eps=1e-5):
    dx, _, dbeta = closed_form(dout, x, gamma, eps)
    return dx, (dout * (x - x.mean(0))).sum(0), dbeta


def dbeta_mean(dout, x, gamma, eps=1e-5):
    dx, dgamma, _ = closed_form(dout, x, gamma, eps)
    return dx, dgamma, dout.mean(0)


def returns_two(dout, x, gamma, eps=1e-5):
    return closed_form(dout, x, gamma, eps)[:2]


def raises_type_error(dout, x, gamma, eps=1e-5):
    return dout @ x  # (N, D) @ (N, D): shapes do not align


def not_attempted(dout, x, gamma, eps=1e-5):
    raise NotImplementedError


def random_garbage(dout, x, gamma, eps=1e-5):
    dx, dgamma, dbeta = closed_form(dout, x, gamma, eps)
    return dx + 0.1 * np.sin(x), dgamma, dbeta


def test_the_hidden_cases_exercise_eps_and_small_batches():
    cases = hidden_cases()
    assert all(x.shape[0] != x.shape[1] for _, x, _, _ in cases)
    assert min(x.shape[0] for _, x, _, _ in cases) <= 4
    assert min(x.var(axis=0).min() / eps for _, x, _, eps in cases) < 1.0


def test_reference_matches_helpers_bn_and_a_readers_closed_form():
    for case in hidden_cases():
        for mine, theirs in zip(closed_form(*case), reference_backward(*case)):
            np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)


def test_accepts_a_correct_answer():
    feedback = check_batchnorm_backward(closed_form)
    assert feedback.passed and feedback.attempted, str(feedback)


def test_not_attempted_is_a_friendly_note():
    feedback = check_batchnorm_backward(not_attempted)
    assert not feedback.attempted and not feedback.passed
    assert "not attempted" in str(feedback)


@pytest.mark.parametrize("function, expected", [
    (unbiased, "N - 1"),
    (no_eps, "eps is missing"),
    (hard_coded_eps, "ignores its eps argument"),
    (detached, "detached statistics"),
    (no_mean_term, "path through the mean is missing"),
    (no_variance_term, "path through the variance is missing"),
    (swapped, "swapped"),
    (not_summed, "sums over the batch"),
    (summed_over_features, "summed over the features"),
    (keepdims, "keepdims"),
    (forgot_one_over_n, "N times too large"),
    (forgot_gamma, "gamma is missing"),
    (dgamma_from_centred, "instead of x_hat"),
    (dbeta_mean, "mean over the batch"),
    (returns_two, "Return three arrays"),
    (raises_type_error, "raised ValueError"),
    (random_garbage, "dx differs from the reference"),
])
def test_names_the_mistake(function, expected):
    feedback = check_batchnorm_backward(function)
    assert feedback.attempted and not feedback.passed
    assert expected in str(feedback), str(feedback)


def test_feedback_renders_as_html():
    html = check_batchnorm_backward(detached)._repr_html_()
    assert "detached" in html and "<li>" in html
