"""Notebook 07's exercise checkers accept the reference and name the typical mistakes."""

import numpy as np
import pytest

from helpers.exercises.why_bn_works import (
    check_gradient_walk,
    check_group_statistics,
    check_small_batch_prediction,
)
from helpers.lessons.why_bn_works import group_statistics, probe_along_gradient


def not_implemented(*args):
    raise NotImplementedError


# --- GroupNorm's statistics -------------------------------------------------------------------


def test_group_statistics_accepts_the_reference_and_an_independent_solution():
    assert check_group_statistics(group_statistics).passed

    def mine(x, num_groups):
        n = x.shape[0]
        grouped = np.asarray(x).reshape(n, num_groups, -1)
        return grouped.mean(axis=-1), grouped.var(axis=-1)

    assert check_group_statistics(mine).passed


def _grouped(x, g):
    return np.asarray(x, dtype=float).reshape(x.shape[0], g, -1)


@pytest.mark.parametrize("mistake, words", [
    (lambda x, g: (lambda t: (t.mean(2), t.var(2)))(
        x.reshape(x.shape[0], x.shape[1] // g, g, -1).transpose(0, 2, 1, 3).reshape(x.shape[0], g, -1)),
     "interleave"),
    (lambda x, g: (lambda t: (np.tile(t.mean(axis=(0, 2)), (x.shape[0], 1)),
                              np.tile(t.var(axis=(0, 2)), (x.shape[0], 1))))(_grouped(x, g)),
     "over the batch too"),
    (lambda x, g: (_grouped(x, g).mean(2), _grouped(x, g).var(2, ddof=1)), "n - 1"),
    (lambda x, g: (_grouped(x, g).mean(2), _grouped(x, g).std(2)), "standard deviation"),
    (lambda x, g: (_grouped(x, g).var(2), _grouped(x, g).mean(2)), "wrong order"),
    (lambda x, g: (_grouped(x, g).mean(axis=(0, 2)), _grouped(x, g).var(axis=(0, 2))), "averaged over the examples"),
    (lambda x, g: (x.reshape(x.shape[0], x.shape[1], -1).mean(2), x.reshape(x.shape[0], x.shape[1], -1).var(2)),
     "InstanceNorm"),
    (lambda x, g: (_grouped(x, g).mean(2) + 1e-3, _grouped(x, g).var(2)), "differ from the reference"),
    (lambda x, g: None, "return"),
])
def test_group_statistics_names_the_mistake(mistake, words):
    feedback = check_group_statistics(mistake)
    assert not feedback.passed and feedback.attempted
    assert words in " ".join(feedback.messages), feedback.messages


def test_group_statistics_not_attempted_and_errors():
    feedback = check_group_statistics(not_implemented)
    assert not feedback.attempted and "not attempted" in str(feedback)

    def broken(x, g):
        raise ZeroDivisionError("oops")

    assert "ZeroDivisionError" in str(check_group_statistics(broken))

    def in_place(x, g):
        x -= 1
        return group_statistics(x + 1, g)

    assert "in place" in str(check_group_statistics(in_place))


# --- the walk along the gradient --------------------------------------------------------------


def reference_walk(loss_and_gradient, w, step_sizes):
    probe = probe_along_gradient(loss_and_gradient, w, step_sizes)
    return probe.losses, probe.grad_changes


def test_gradient_walk_accepts_the_reference_and_an_independent_solution():
    assert check_gradient_walk(reference_walk).passed

    def mine(loss_and_gradient, w, step_sizes):
        _, g = loss_and_gradient(w)
        losses, changes = [], []
        for eta in step_sizes:
            loss, g_new = loss_and_gradient(w - eta * g)
            losses.append(loss)
            changes.append(np.sqrt(np.sum((g_new - g) ** 2)))
        return losses, changes

    assert check_gradient_walk(mine).passed


def _walk(direction=-1.0, unit=False, change="norm", relative_loss=False):
    def walk(loss_and_gradient, w, step_sizes):
        loss0, g = loss_and_gradient(w)
        d = g / np.linalg.norm(g) if unit else g
        losses, changes = [], []
        for eta in step_sizes:
            loss, g_new = loss_and_gradient(w + direction * eta * d)
            losses.append(loss - loss0 if relative_loss else loss)
            if change == "norms":
                changes.append(abs(np.linalg.norm(g_new) - np.linalg.norm(g)))
            elif change == "squared":
                changes.append(np.sum((g_new - g) ** 2))
            else:
                changes.append(np.linalg.norm(g_new - g))
        return np.array(losses), np.array(changes)

    return walk


@pytest.mark.parametrize("mistake, words", [
    (_walk(direction=+1.0), "uphill"),
    (_walk(unit=True), "unit vector"),
    (_walk(change="norms"), "length of the difference"),
    (_walk(change="squared"), "squared norm"),
    (_walk(relative_loss=True), "differences from the start"),
    (lambda f, w, s: (np.zeros(len(s)), np.zeros(len(s))), "expected"),
    (lambda f, w, s: (np.zeros(len(s) + 1), np.zeros(len(s))), "one loss and one gradient change per step size"),
    (lambda f, w, s: [1.0, 2.0, 3.0], "Return two arrays"),
])
def test_gradient_walk_names_the_mistake(mistake, words):
    feedback = check_gradient_walk(mistake)
    assert not feedback.passed
    assert words in " ".join(feedback.messages), feedback.messages


def test_gradient_walk_catches_an_in_place_update_and_not_attempted():
    def in_place(loss_and_gradient, w, step_sizes):
        _, g = loss_and_gradient(w)
        losses, changes = [], []
        for eta in step_sizes:
            w -= eta * g
            loss, g_new = loss_and_gradient(w)
            losses.append(loss)
            changes.append(np.linalg.norm(g_new - g))
        return losses, changes

    assert "in place" in str(check_gradient_walk(in_place))
    assert not check_gradient_walk(not_implemented).attempted


def test_the_hidden_non_quadratic_loss_has_the_gradient_it_claims():
    from helpers.exercises.why_bn_works import _softplus_matrix
    from helpers.gradcheck import numerical_gradient, rel_error

    _, loss_and_gradient, w, _ = _softplus_matrix()
    numeric = numerical_gradient(lambda v: np.array(loss_and_gradient(v)[0]), w, np.array(1.0))
    assert rel_error(numeric, loss_and_gradient(w)[1]) < 1e-7


# --- the prediction ---------------------------------------------------------------------------


@pytest.mark.parametrize("answer", [{"batch"}, ["BatchNorm"], "bn", ("Batch",)])
def test_prediction_accepts_batch_only(answer):
    assert check_small_batch_prediction(answer).passed


@pytest.mark.parametrize("answer, words", [
    ({"batch", "group"}, "GroupNorm is not hurt"),
    ({"layer"}, "BatchNorm is hurt"),
    ({"batch", "weight"}, "is not one of"),
])
def test_prediction_explains_wrong_answers(answer, words):
    feedback = check_small_batch_prediction(answer)
    assert not feedback.passed and words in " ".join(feedback.messages)


def test_prediction_not_attempted():
    assert not check_small_batch_prediction(None).attempted
    assert not check_small_batch_prediction(set()).attempted


def test_prediction_messages_name_the_variable_not_a_function():
    assert "fill in my_prediction above" in str(check_small_batch_prediction(None))
    assert "function" not in str(check_small_batch_prediction(None))
    assert str(check_small_batch_prediction({"batch"})).startswith(
        "[correct] which normalization suffers from batches of 2: your prediction is right.")


def test_correct_answers_in_float32_are_told_so_with_the_tolerance():
    def float32_statistics(x, num_groups):
        grouped = np.asarray(x, dtype=np.float32).reshape(x.shape[0], num_groups, -1)
        return grouped.mean(axis=2), grouped.var(axis=2)

    def float32_walk(loss_and_gradient, w, step_sizes):
        losses, changes = reference_walk(loss_and_gradient, w, step_sizes)
        return np.float32(losses), np.float32(changes)

    for feedback in (check_group_statistics(float32_statistics), check_gradient_walk(float32_walk)):
        assert not feedback.passed
        assert "computes in float32" in feedback.messages[0] and "1e-09" in feedback.messages[0]


def test_a_float32_walk_with_a_real_mistake_gets_the_mistake_named():
    def float32_uphill(loss_and_gradient, w, step_sizes):
        losses, changes = _walk(direction=1.0)(loss_and_gradient, w, step_sizes)
        return np.float32(losses), np.float32(changes)

    feedback = check_gradient_walk(float32_uphill)
    assert "uphill" in feedback.messages[0], feedback.messages
