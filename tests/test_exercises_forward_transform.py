"""Notebook 02's exercise checkers accept right answers (however written) and name the usual
mistakes; the solutions the notebook shows pass them (the maintainers' drift check, kept here
rather than in the notebook)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.exercises.forward_transform import (
    check_drop_bias,
    check_mean_only_bn,
    drop_bias_cases,
    mean_only_cases,
    reference_drop_bias,
    reference_mean_only_bn,
)

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "02_forward_transform.ipynb"


def solutions_shown_in_the_notebook() -> dict:
    """The functions of the notebook's "Solutions" block, executed: {name: function}."""
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    block = next("".join(cell["source"]) for cell in cells
                 if cell["cell_type"] == "markdown" and "<summary>Solutions" in "".join(cell["source"]))
    namespace = {"np": np}
    for code in re.findall(r"```python\n(.*?)```", block, re.S):
        exec(code, namespace)  # noqa: S102 - the course's own notebook
    return namespace


def test_the_notebook_s_solutions_pass_the_checkers():
    solutions = solutions_shown_in_the_notebook()
    assert check_mean_only_bn(solutions["my_mean_only_bn"]).passed
    assert check_drop_bias(solutions["drop_bias"]).passed


def test_the_notebook_calls_the_checkers_on_the_readers_functions():
    text = NOTEBOOK.read_text(encoding="utf-8")
    assert "check_mean_only_bn(my_mean_only_bn)" in text and "check_drop_bias(drop_bias)" in text
    assert "assert check_" not in text  # the drift check lives here, not in the notebook


# --- exercise 1: mean-only BN ------------------------------------------------------------------


@pytest.mark.parametrize("answer", [
    lambda x, beta: x - x.mean(axis=0) + beta,
    lambda x, beta: x - x.sum(axis=0) / len(x) + beta,
    lambda x, beta: (torch.from_numpy(x) - torch.from_numpy(x).mean(dim=0) + torch.from_numpy(beta)),
    lambda x, beta: (x - x.mean(axis=0, keepdims=True) + beta).tolist(),
], ids=["numpy", "sum / N", "torch float64", "a list"])
def test_mean_only_accepts_right_answers(answer):
    feedback = check_mean_only_bn(answer)
    assert feedback.passed and feedback.attempted, str(feedback)


def test_mean_only_reference_has_mean_beta_and_keeps_the_spread():
    for _, x, beta in mean_only_cases():
        y = reference_mean_only_bn(x, beta)
        np.testing.assert_allclose(y.mean(axis=0), beta, atol=1e-8)
        np.testing.assert_allclose(y.std(axis=0), x.std(axis=0), rtol=1e-6)
    assert all(x.shape[0] != x.shape[1] for _, x, _ in mean_only_cases())


@pytest.mark.parametrize("answer, phrase", [
    (lambda x, beta: (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5) + beta, "full batch normalization"),
    (lambda x, beta: x - x.mean(axis=1, keepdims=True) + beta, "each example's own mean"),
    (lambda x, beta: x - x.mean() + beta, "one mean over the whole array"),
    (lambda x, beta: x - x.mean(axis=0), "beta is missing"),
    (lambda x, beta: x - x.mean(axis=0) - beta, "wrong sign"),
    (lambda x, beta: x + beta, "did not subtract the batch mean"),
    (lambda x, beta: x - x.sum(axis=0) + beta, "sum over the batch, not the mean"),
    (lambda x, beta: x - x.sum(axis=0) / (len(x) - 1) + beta, "N - 1"),
    (lambda x, beta: x - x.mean(axis=0) + beta + 0.01 * np.sin(x), "differs from the reference"),
])
def test_mean_only_names_the_mistake(answer, phrase):
    feedback = check_mean_only_bn(answer)
    assert feedback.attempted and not feedback.passed
    assert phrase in str(feedback), str(feedback)


@pytest.mark.parametrize("answer", [
    lambda x, beta: x.astype(np.float32) - x.astype(np.float32).mean(axis=0) + beta.astype(np.float32),
    lambda x, beta: (torch.tensor(x, dtype=torch.float32) - torch.tensor(x, dtype=torch.float32).mean(dim=0)
                     + torch.tensor(beta, dtype=torch.float32)),
], ids=["numpy float32", "torch float32"])
def test_a_right_formula_in_float32_is_told_it_is_float32_and_the_tolerance(answer):
    message = str(check_mean_only_bn(answer))
    assert "computes in float32" in message and "1e-09" in message and "float64" in message
    assert "differs from the reference" not in message


def test_a_float32_step_inside_a_float64_answer_is_suspected():
    def rounded_inside(x, beta):
        return (x - x.mean(axis=0)).astype(np.float32).astype(np.float64) + beta

    message = str(check_mean_only_bn(rounded_inside))
    assert "about as well as a float32 computation would" in message


@pytest.mark.parametrize("answer, phrase", [
    (lambda x, beta: None, "None"),
    (lambda x, beta: x.mean(axis=0), "shape"),
    (lambda x, beta: x @ x, "raised ValueError"),
    (lambda x, beta: x.__isub__(x.mean(axis=0)), "in place"),
])
def test_mean_only_explains_unusable_answers(answer, phrase):
    assert phrase in str(check_mean_only_bn(answer))


def test_mean_only_not_attempted_is_a_friendly_note():
    def my_mean_only_bn(x, beta):
        raise NotImplementedError

    feedback = check_mean_only_bn(my_mean_only_bn)
    assert not feedback.attempted and str(feedback).startswith("[not attempted]")


# --- exercise 2: drop the bias -------------------------------------------------------------------


def test_drop_bias_reference_keeps_both_modes_and_the_cases_are_not_trivial():
    from helpers.bn import batchnorm_forward, batchnorm_inference

    for _, u, weight, bias, gamma, beta, running_mean, running_var in drop_bias_cases():
        z = u @ weight.T
        new = reference_drop_bias(bias, gamma, beta, running_mean, running_var)
        np.testing.assert_allclose(batchnorm_forward(z, *new[:2])[0], batchnorm_forward(z + bias, gamma, beta)[0],
                                   atol=1e-12)
        np.testing.assert_allclose(batchnorm_inference(z, *new), batchnorm_inference(z + bias, gamma, beta,
                                                                                      running_mean, running_var),
                                   atol=1e-12)
        assert np.abs(bias).min() > 0.1 and not np.allclose(gamma, 1)


@pytest.mark.parametrize("answer", [
    lambda b, gamma, beta, mean, var: (gamma, beta, mean - b, var),
    lambda b, gamma, beta, mean, var: [gamma.copy(), beta.copy(), np.subtract(mean, b), var.copy()],
    lambda b, gamma, beta, mean, var: tuple(torch.from_numpy(a) for a in (gamma, beta, mean - b, var)),
], ids=["numpy", "a list of copies", "torch float64"])
def test_drop_bias_accepts_right_answers(answer):
    feedback = check_drop_bias(answer)
    assert feedback.passed, str(feedback)


@pytest.mark.parametrize("answer, phrase", [
    (lambda b, gamma, beta, mean, var: (gamma, beta + b, mean, var), "You added b to beta"),
    (lambda b, gamma, beta, mean, var: (gamma, beta + b, mean - b, var), "You added b to beta"),
    (lambda b, gamma, beta, mean, var: (gamma, beta + gamma * b / np.sqrt(var + 1e-5), mean, var),
     "keeps eval mode right but breaks training mode"),
    (lambda b, gamma, beta, mean, var: (gamma, beta, mean, var), "the running mean must be too"),
    (lambda b, gamma, beta, mean, var: (gamma, beta, mean + b, var), "wrong way"),
    (lambda b, gamma, beta, mean, var: (gamma, beta, mean - b, var - b**2), "variance by b²"),
    (lambda b, gamma, beta, mean, var: (gamma, beta, mean - b, var * 2), "running variance changed"),
    (lambda b, gamma, beta, mean, var: (gamma * 2, beta, mean - b, var), "gamma changed"),
    (lambda b, gamma, beta, mean, var: (gamma, beta - b, mean, var), "subtracted b from beta"),
    (lambda b, gamma, beta, mean, var: (gamma, beta, mean - b, -var), "running variance changed"),
    (lambda b, gamma, beta, mean, var: (gamma, beta, mean - 1.1 * b, var), "eval-mode output differs"),
    (lambda b, gamma, beta, mean, var: (gamma, beta, mean - b), "Return four arrays"),
    (lambda b, gamma, beta, mean, var: (gamma, beta, mean - b, var[:1]), "shape"),
])
def test_drop_bias_names_the_mistake(answer, phrase):
    feedback = check_drop_bias(answer)
    assert feedback.attempted and not feedback.passed
    assert phrase in str(feedback), str(feedback)


def test_drop_bias_in_float32_is_told_so():
    def float32(b, gamma, beta, mean, var):
        return tuple(a.astype(np.float32) for a in (gamma, beta, mean - b, var))

    message = str(check_drop_bias(float32))
    assert "computes in float32" in message and "1e-09" in message


def test_drop_bias_must_not_change_its_inputs():
    def in_place(b, gamma, beta, mean, var):
        mean -= b
        return gamma, beta, mean, var

    assert "in place" in str(check_drop_bias(in_place))


def test_drop_bias_not_attempted():
    def drop_bias(bias, gamma, beta, running_mean, running_var):
        raise NotImplementedError

    assert not check_drop_bias(drop_bias).attempted
