"""Notebook 03's exercise checkers accept right answers and name each typical mistake; the
solutions the notebook shows pass them (the maintainers' drift check, kept here rather than in
the notebook).

Each wrong answer below is written the way a reader would write it, not with the checker's own
variant_backward, so the tests show that the checkers recognize real code."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.bn import batchnorm_backward_compact, batchnorm_forward
from helpers.exercises.backward_pass import (
    check_linear_bn_backward,
    check_mean_only_backward,
    check_weight_scaling,
    linear_bn_cases,
    reference_backward,
    reference_linear_bn_backward,
    variant_backward,
    weight_scaling_answers,
)
from helpers.lessons.backward_pass import scale_invariance

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "03_backward_pass.ipynb"


def solutions_shown_in_the_notebook() -> dict:
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    block = next("".join(cell["source"]) for cell in cells
                 if cell["cell_type"] == "markdown" and "<summary>Solutions" in "".join(cell["source"]))
    namespace = {"np": np, "batchnorm_forward": batchnorm_forward,
                 "batchnorm_backward_compact": batchnorm_backward_compact}
    for code in re.findall(r"```python\n(.*?)```", block, re.S):
        exec(code, namespace)  # noqa: S102 - the course's own notebook
    return namespace


def test_the_notebook_s_solutions_pass_the_checkers():
    solutions = solutions_shown_in_the_notebook()
    assert check_mean_only_backward(solutions["my_mean_only_backward"]).passed
    assert check_linear_bn_backward(solutions["my_linear_bn_backward"]).passed
    assert check_weight_scaling(solutions["answers"]).passed


def test_the_notebook_calls_the_checkers_and_holds_no_drift_check():
    text = NOTEBOOK.read_text(encoding="utf-8")
    for call in ("check_mean_only_backward(my_mean_only_backward)",
                 "check_linear_bn_backward(my_linear_bn_backward)", "check_weight_scaling(answers)"):
        assert call in text
    assert "assert check_" not in text


# --- BN's backward with mistakes (used inside the linear checker) --------------------------------


def test_variant_backward_without_mistakes_is_the_reference_and_autograd_agrees():
    rng = np.random.default_rng(0)
    x, dout, gamma = rng.normal(size=(7, 3)), rng.normal(size=(7, 3)), rng.normal(size=3)
    for mine, theirs in zip(variant_backward(dout, x, gamma), reference_backward(dout, x, gamma)):
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)
    xt, gt = torch.tensor(x, requires_grad=True), torch.tensor(gamma, requires_grad=True)
    y = torch.nn.functional.batch_norm(xt, None, None, gt, None, training=True, eps=1e-5)
    (y * torch.tensor(dout)).sum().backward()
    np.testing.assert_allclose(reference_backward(dout, x, gamma)[0], xt.grad.numpy(), atol=1e-12)


# --- exercise 1: mean-only BN ----------------------------------------------------------------------


def mean_only_autograd(dout, x, beta):
    """A right answer by torch autograd (float64)."""
    xt, bt = torch.tensor(x, requires_grad=True), torch.tensor(beta, requires_grad=True)
    ((xt - xt.mean(dim=0) + bt) * torch.tensor(dout)).sum().backward()
    return xt.grad, bt.grad


@pytest.mark.parametrize("answer", [
    lambda dout, x, beta: (dout - dout.mean(axis=0), dout.sum(axis=0)),
    lambda dout, x, beta: (dout - dout.sum(axis=0) / len(dout), list(dout.sum(axis=0))),
    mean_only_autograd,
], ids=["numpy", "sum / N and a list", "torch autograd"])
def test_mean_only_backward_accepts_right_answers(answer):
    feedback = check_mean_only_backward(answer)
    assert feedback.passed, str(feedback)


def full_bn_dx(dout, x, beta):
    n = len(x)
    x_hat = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    dx = (n * dout - dout.sum(0) - x_hat * (dout * x_hat).sum(0)) / (n * np.sqrt(x.var(0) + 1e-5))
    return dx, dout.sum(0)


@pytest.mark.parametrize("answer, phrase", [
    (lambda dout, x, beta: (dout, dout.sum(axis=0)), "leaves out the path through the mean"),
    (lambda dout, x, beta: (dout - dout.sum(axis=0), dout.sum(axis=0)), "carries a 1/N"),
    (lambda dout, x, beta: (dout - dout.mean(axis=1, keepdims=True), dout.sum(axis=0)), "axis 1"),
    (full_bn_dx, "full BN's dx"),
    (lambda dout, x, beta: (dout + dout.mean(axis=0), dout.sum(axis=0)), "minus sign"),
    (lambda dout, x, beta: (dout - dout.mean(axis=0), dout.mean(axis=0)), "the sum"),
    (lambda dout, x, beta: (dout - dout.mean(axis=0), (dout * x).sum(axis=0)), "only added"),
    (lambda dout, x, beta: (dout - dout.mean(axis=0), dout), "one value per example"),
    (lambda dout, x, beta: (dout - dout.mean(axis=0), dout.sum(axis=1)), "summed over the features"),
    (lambda dout, x, beta: (dout - dout.mean(axis=0),), "Return two arrays"),
    (lambda dout, x, beta: (0.9 * (dout - dout.mean(axis=0)), dout.sum(axis=0)), "dx differ"),
    (lambda dout, x, beta: dout @ x, "raised ValueError"),
    (lambda dout, x, beta: None, "None"),
])
def test_mean_only_backward_names_the_mistake(answer, phrase):
    feedback = check_mean_only_backward(answer)
    assert feedback.attempted and not feedback.passed
    assert phrase in str(feedback), str(feedback)


def test_mean_only_backward_in_float32_is_told_so():
    def float32(dout, x, beta):
        d = torch.tensor(dout, dtype=torch.float32)
        return d - d.mean(dim=0), d.sum(dim=0)

    message = str(check_mean_only_backward(float32))
    assert "computes in float32" in message and "1e-08" in message


def test_mean_only_backward_not_attempted():
    def my_mean_only_backward(dout, x, beta):
        raise NotImplementedError

    assert not check_mean_only_backward(my_mean_only_backward).attempted


# --- exercise 2: a linear layer with a bias, then BN ----------------------------------------------


def with_helpers(dout, u, weight, bias, gamma, eps=1e-5):
    z = u @ weight.T + bias
    _, cache = batchnorm_forward(z, gamma, np.zeros_like(gamma), eps)
    dz = batchnorm_backward_compact(dout, cache)[0]
    return dz @ weight, dz.T @ u, dz.sum(axis=0)


def with_autograd(dout, u, weight, bias, gamma, eps=1e-5, dtype=torch.float64):
    ut, wt, bt, gt = (torch.tensor(a, dtype=dtype, requires_grad=True) for a in (u, weight, bias, gamma))
    y = torch.nn.functional.batch_norm(ut @ wt.T + bt, None, None, gt, None, training=True, eps=eps)
    (y * torch.tensor(dout, dtype=dtype)).sum().backward()
    return ut.grad, wt.grad, bt.grad


def test_the_reference_gives_a_zero_bias_gradient_and_matches_autograd():
    for _, *case in linear_bn_cases():
        right = reference_linear_bn_backward(*case)
        for mine, torch_grad in zip(right, with_autograd(*case)):
            np.testing.assert_allclose(mine, torch_grad.numpy(), rtol=1e-9, atol=1e-12)
        assert np.abs(right[2]).max() < 1e-12 * np.abs(right[1]).max()
    assert any(eps != 1e-5 for *_, eps in linear_bn_cases())  # a hard-coded eps shows


@pytest.mark.parametrize("answer", [with_helpers, with_autograd], ids=["helpers.bn", "torch autograd"])
def test_linear_bn_backward_accepts_right_answers(answer):
    feedback = check_linear_bn_backward(answer)
    assert feedback.passed, str(feedback)


def bn_dz(dout, z, gamma, eps, *, detach=False, mean_path=True, var_path=True, ddof=0, use_eps=None):
    """BN's dL/dz written by a reader, with one of the usual slips."""
    n = len(z)
    std = np.sqrt(z.var(axis=0, ddof=ddof) + (eps if use_eps is None else use_eps))
    z_hat = (z - z.mean(axis=0)) / std
    if detach:
        return gamma * dout / std
    bracket = n * dout - (dout.sum(axis=0) if mean_path else 0)
    if var_path:
        bracket = bracket - z_hat * (dout * z_hat).sum(axis=0)
    return gamma / (n * std) * bracket


def linear_with(**slip):
    def answer(dout, u, weight, bias, gamma, eps=1e-5):
        dz = bn_dz(dout, u @ weight.T + bias, gamma, eps, **slip)
        return dz @ weight, dz.T @ u, dz.sum(axis=0)
    return answer


@pytest.mark.parametrize("answer, phrase", [
    (lambda dout, u, w, b, g, eps=1e-5: (*with_helpers(dout, u, w, b, g, eps)[:2], dout.sum(axis=0)),
     "dbias = sum(dout) is dbeta"),
    (lambda dout, u, w, b, g, eps=1e-5: (*with_helpers(dout, u, w, b, g, eps)[:2], (g * dout).sum(axis=0)),
     "skips BN's backward"),
    (lambda dout, u, w, b, g, eps=1e-5: (dout @ w, dout.T @ u, dout.sum(axis=0)), "straight to the linear layer"),
    (linear_with(detach=True), "detached statistics"),
    (linear_with(mean_path=False), "path through the mean is missing"),
    (linear_with(var_path=False), "path through the variance is missing"),
    (linear_with(ddof=1), "N - 1"),
    (linear_with(use_eps=0.0), "eps is missing"),
    (linear_with(use_eps=1e-5), "ignores its eps argument"),
    (lambda dout, u, w, b, g, eps=1e-5: (with_helpers(dout, u, w, b, g, eps)[0],
                                         with_helpers(dout, u, w, b, g, eps)[1].T,
                                         with_helpers(dout, u, w, b, g, eps)[2]), "that of weight.T"),
    (lambda dout, u, w, b, g, eps=1e-5: (dout @ np.ones((w.shape[0], w.shape[0])), *with_helpers(dout, u, w, b, g, eps)[1:]),
     "the shape of z"),
    (lambda dout, u, w, b, g, eps=1e-5: (*with_helpers(dout, u, w, b, g, eps)[:2], dout), "shared by the N rows"),
    (lambda dout, u, w, b, g, eps=1e-5: (*with_helpers(dout, u, w, b, g, eps)[:2], 0.01 * dout.sum(axis=0)),
     "what can the bias change"),
    (lambda dout, u, w, b, g, eps=1e-5: with_helpers(dout, u, w, b, g, eps)[:2], "Return three arrays"),
])
def test_linear_bn_backward_names_the_mistake(answer, phrase):
    feedback = check_linear_bn_backward(answer)
    assert feedback.attempted and not feedback.passed
    assert phrase in str(feedback), str(feedback)


def test_linear_bn_backward_in_float32_is_told_it_is_float32_not_that_it_is_wrong():
    def float32(*args, **kwargs):
        return with_autograd(*args, **kwargs, dtype=torch.float32)

    message = str(check_linear_bn_backward(float32))
    assert "computes in float32" in message and "1e-08" in message
    assert "ignores its eps argument" not in message  # not mistaken for a hard-coded eps


def test_linear_bn_backward_not_attempted():
    def my_linear_bn_backward(dout, u, weight, bias, gamma, eps=1e-5):
        raise NotImplementedError

    feedback = check_linear_bn_backward(my_linear_bn_backward)
    assert not feedback.attempted and str(feedback).startswith("[not attempted]")


# --- exercise 3: the weights scaled by 10 -------------------------------------------------------------


def test_the_scaling_answers_are_what_autograd_measures():
    """The checker's answers are §9's measurements at a = 10 (up to eps)."""
    measured = scale_invariance([1.0, 10.0])
    answers = weight_scaling_answers()
    assert measured["output_change"][1] < 1e-5 and answers["output"] == 1
    assert measured["grad_u_change"][1] < 1e-5 and answers["grad_input"] == 1
    np.testing.assert_allclose(measured["grad_w_norm_ratio"][1], answers["grad_weight"], rtol=1e-5)
    # relative update: |lr * grad(aW)| / |aW| against |lr * grad(W)| / |W|
    np.testing.assert_allclose(measured["grad_w_norm_ratio"][1] / 10, answers["relative_update"], rtol=1e-5)


def test_weight_scaling_accepts_right_answers_and_explains_them():
    feedback = check_weight_scaling({"output": 1, "grad_input": 1.0, "grad_weight": 0.1, "relative_update": "0.01"})
    assert feedback.passed and str(feedback).startswith("[correct]"), str(feedback)
    assert "scale invariant" in str(feedback)


@pytest.mark.parametrize("answers, phrase", [
    ({"output": 10, "grad_input": 1, "grad_weight": 0.1, "relative_update": 0.01}, "without BN"),
    ({"output": 1, "grad_input": 1, "grad_weight": 10, "relative_update": 0.01}, "inverse of the factor"),
    ({"output": 1, "grad_input": 1, "grad_weight": 0.01, "relative_update": 0.01}, "1/a² is the relative update"),
    ({"output": 1, "grad_input": 1, "grad_weight": 0.1, "relative_update": 0.1}, "divides by |W|"),
    ({"output": 1, "grad_input": 0.1, "grad_weight": 0.1, "relative_update": 0.01}, "derivative with respect to u"),
    ({"output": 1, "grad_input": 1, "grad_weight": 0.1, "relative_update": None}, "no answer yet"),
    ({"output": 1, "grad_input": 1, "grad_weight": "a tenth", "relative_update": 0.01}, "give a number"),
    ({"output": 1, "grad_input": 1, "grad_weight": 0.1, "relative_update": 0.01, "loss": 1}, "Unknown keys"),
    ([1, 1, 0.1, 0.01], "Give a dict"),
])
def test_weight_scaling_names_the_slip(answers, phrase):
    feedback = check_weight_scaling(answers)
    assert not feedback.passed and phrase in str(feedback), str(feedback)


def test_weight_scaling_not_attempted_asks_for_the_answers():
    feedback = check_weight_scaling(dict.fromkeys(("output", "grad_input", "grad_weight", "relative_update")))
    assert not feedback.attempted and "fill in the answers above" in str(feedback)
