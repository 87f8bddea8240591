"""Notebook 09's checkers accept correct answers and name the usual mistakes."""

import numpy as np
import pytest

from helpers.exercises.bn_across_processes import check_merge, check_shard_backward
from helpers.parallel_variance import merge

# --- Exercise 1: the merge ------------------------------------------------------------------------


def correct_merge(a, b):
    (n_a, mean_a, m2_a), (n_b, mean_b, m2_b) = a, b
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * n_b / n, m2_a + m2_b + delta**2 * n_a * n_b / n


def weighted_means_merge(a, b):  # also correct, written through weighted means
    (n_a, mean_a, m2_a), (n_b, mean_b, m2_b) = a, b
    n = n_a + n_b
    mean = (n_a * mean_a + n_b * mean_b) / n
    return n, mean, m2_a + m2_b + n_a * (mean_a - mean) ** 2 + n_b * (mean_b - mean) ** 2


def through_sums(a, b):
    (n_a, mean_a, m2_a), (n_b, mean_b, m2_b) = a, b
    n = n_a + n_b
    total = n_a * mean_a + n_b * mean_b
    squares = m2_a + n_a * mean_a**2 + m2_b + n_b * mean_b**2
    return n, total / n, squares - total**2 / n


def plain_mean(a, b):
    (n_a, mean_a, m2_a), (n_b, mean_b, m2_b) = a, b
    n = n_a + n_b
    mean = (mean_a + mean_b) / 2
    return n, mean, m2_a + m2_b + (mean_b - mean_a) ** 2 * n_a * n_b / n


def no_between(a, b):
    (n_a, mean_a, m2_a), (n_b, mean_b, m2_b) = a, b
    n = n_a + n_b
    return n, mean_a + (mean_b - mean_a) * n_b / n, m2_a + m2_b


def no_division(a, b):
    (n_a, mean_a, m2_a), (n_b, mean_b, m2_b) = a, b
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * n_b / n, m2_a + m2_b + delta**2 * n_a * n_b


def swapped(a, b):
    (n_a, mean_a, m2_a), (n_b, mean_b, m2_b) = a, b
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * n_a / n, m2_a + m2_b + delta**2 * n_a * n_b / n


def returns_variance(a, b):
    n, mean, m2 = correct_merge(a, b)
    return n, mean, m2 / n


def harmonic(a, b):  # divides by each count: fails on the empty part
    (n_a, mean_a, m2_a), (n_b, mean_b, m2_b) = a, b
    n = n_a + n_b
    return n, (n_a * mean_a + n_b * mean_b) / n, m2_a + m2_b + (mean_b - mean_a) ** 2 / (1 / n_a + 1 / n_b)


def in_place(a, b):
    n, mean, m2 = correct_merge(a, b)
    m2_a = a[2]
    m2_a += 1.0  # changes the caller's array
    return n, mean, m2


def wrong_count(a, b):
    n, mean, m2 = correct_merge(a, b)
    return max(a[0], b[0]), mean, m2


def not_attempted(a, b):
    raise NotImplementedError


@pytest.mark.parametrize("answer", [correct_merge, weighted_means_merge, merge])
def test_correct_merges_pass(answer):
    feedback = check_merge(answer)
    assert feedback.passed and feedback.attempted, str(feedback)


@pytest.mark.parametrize("answer, words", [
    (through_sums, "one-pass shortcut"),
    (plain_mean, "weighted by them"),
    (no_between, "spread BETWEEN the parts"),
    (no_division, "division by n"),
    (swapped, "swapped"),
    (returns_variance, "Return M2 itself"),
    (harmonic, "A part can be empty"),
    (in_place, "in place"),
    (wrong_count, "n_a + n_b"),
])
def test_merge_mistakes_are_named(answer, words):
    feedback = check_merge(answer)
    assert not feedback.passed and feedback.attempted
    assert words in str(feedback), str(feedback)


def test_merge_odd_returns_and_not_attempted():
    assert "three values" in str(check_merge(lambda a, b: (1, 2)))
    assert "shape" in str(check_merge(lambda a, b: (a[0] + b[0], np.zeros(2), np.zeros(2))))
    feedback = check_merge(not_attempted)
    assert not feedback.attempted and "not attempted" in str(feedback)


# --- Exercise 2: one process's input gradient -----------------------------------------------------


def correct_dx(dy, x_hat, gamma, invstd, sum_dy, sum_dy_x_hat, total_count):
    return gamma * invstd * (dy - sum_dy / total_count - x_hat * sum_dy_x_hat / total_count)


def local_sums(dy, x_hat, gamma, invstd, sum_dy, sum_dy_x_hat, total_count):
    return gamma * invstd * (dy - dy.sum(0) / total_count - x_hat * (dy * x_hat).sum(0) / total_count)


def local_count(dy, x_hat, gamma, invstd, sum_dy, sum_dy_x_hat, total_count):
    n = len(dy)
    return gamma * invstd * (dy - sum_dy / n - x_hat * sum_dy_x_hat / n)


def per_process_bn(dy, x_hat, gamma, invstd, sum_dy, sum_dy_x_hat, total_count):
    n = len(dy)
    return gamma * invstd * (dy - dy.sum(0) / n - x_hat * (dy * x_hat).sum(0) / n)


def no_gamma(dy, x_hat, gamma, invstd, sum_dy, sum_dy_x_hat, total_count):
    return invstd * (dy - sum_dy / total_count - x_hat * sum_dy_x_hat / total_count)


def no_invstd(dy, x_hat, gamma, invstd, sum_dy, sum_dy_x_hat, total_count):
    return gamma * (dy - sum_dy / total_count - x_hat * sum_dy_x_hat / total_count)


def plus_sign(dy, x_hat, gamma, invstd, sum_dy, sum_dy_x_hat, total_count):
    return gamma * invstd * (dy - sum_dy / total_count + x_hat * sum_dy_x_hat / total_count)


def no_mean(dy, x_hat, gamma, invstd, sum_dy, sum_dy_x_hat, total_count):
    return gamma * invstd * (dy - x_hat * sum_dy_x_hat / total_count)


def test_correct_shard_backward_passes():
    feedback = check_shard_backward(correct_dx)
    assert feedback.passed and feedback.attempted, str(feedback)


@pytest.mark.parametrize("answer, words", [
    (local_sums, "this process's own sums"),
    (local_count, "divide by total_count"),
    (per_process_bn, "plain per-process BN's gradient"),
    (no_gamma, "gamma is missing"),
    (no_invstd, "invstd"),
    (plus_sign, "sign of the x_hat term"),
    (no_mean, "mean term is missing"),
])
def test_shard_backward_mistakes_are_named(answer, words):
    feedback = check_shard_backward(answer)
    assert not feedback.passed and feedback.attempted
    assert words in str(feedback), str(feedback)


def test_shard_backward_shape_crash_and_not_attempted():
    assert "shape of dy" in str(check_shard_backward(lambda dy, *rest: dy.sum(0)))
    crashed = check_shard_backward(lambda *args: 1 / 0)
    assert not crashed.passed and "ZeroDivisionError" in str(crashed)
    feedback = check_shard_backward(lambda *args: (_ for _ in ()).throw(NotImplementedError()))
    assert not feedback.attempted
