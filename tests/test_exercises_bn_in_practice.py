"""Notebook 08's checkers accept correct answers and name the usual mistakes."""

import numpy as np
from torch import nn

from helpers.exercises.bn_in_practice import (
    check_batch_renorm,
    check_freeze_batchnorm,
    check_welford_update,
)
from helpers.frozen import convert_frozen_batchnorm, freeze_batchnorm
from helpers.renorm import batch_renorm_forward


def not_attempted(*args):
    raise NotImplementedError("your code here")


# --- freezing BN --------------------------------------------------------------------------


def freeze_requires_grad_only(model):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            for p in m.parameters():
                p.requires_grad_(False)


def freeze_eval_only(model):
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.eval()


def freeze_whole_model(model):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)


def freeze_only_2d(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
            m.weight.requires_grad_(False)
            m.bias.requires_grad_(False)


def test_freeze_checker_accepts_the_library_and_the_frozen_layers():
    feedback = check_freeze_batchnorm(freeze_batchnorm)
    assert feedback.passed and "model.train()" in str(feedback)
    assert check_freeze_batchnorm(convert_frozen_batchnorm).passed


def test_freeze_checker_names_the_mistakes():
    assert "still in training mode" in str(check_freeze_batchnorm(freeze_requires_grad_only))
    assert "still require gradients" in str(check_freeze_batchnorm(freeze_eval_only))
    whole = str(check_freeze_batchnorm(freeze_whole_model))
    assert "whole model in eval mode" in whole and "only BN's gamma and beta" in whole
    only_2d = str(check_freeze_batchnorm(freeze_only_2d))
    assert "BatchNorm1d still in training mode" in only_2d and "BatchNorm2d" not in only_2d.split("training mode")[0]
    feedback = check_freeze_batchnorm(not_attempted)
    assert not feedback.attempted and "not attempted" in str(feedback)


# --- Batch Renormalization ----------------------------------------------------------------


def renorm_reference(x, gamma, beta, running_mean, running_std, r_max, d_max, eps):
    return batch_renorm_forward(x, gamma, beta, running_mean, running_std, r_max, d_max, eps)[0]


def renorm(x, gamma, beta, mu, sigma, r_max, d_max, eps, *, clip=True, invert=False, flip=False,
           ddof=0, eps_outside=False, plain=False):
    mean = x.mean(axis=0)
    var = x.var(axis=0, ddof=ddof)
    std = np.sqrt(var) + eps if eps_outside else np.sqrt(var + eps)
    r, d = (sigma / std if invert else std / sigma), (mean - mu) / sigma * (-1 if flip else 1)
    if clip:
        r, d = np.clip(r, 1 / r_max, r_max), np.clip(d, -d_max, d_max)
    if plain:
        r, d = 1.0, 0.0
    return gamma * ((x - mean) / std * r + d) + beta


def mistaken(**flags):
    return lambda *args: renorm(*args, **flags)


def test_renorm_checker_accepts_correct_answers():
    assert check_batch_renorm(renorm_reference).passed
    assert check_batch_renorm(mistaken()).passed


def test_renorm_checker_names_the_mistakes():
    cases = {"not clipped": dict(clip=False), "upside down": dict(invert=True),
             "wrong sign": dict(flip=True), "ddof=1": dict(ddof=1), "eps inside": dict(eps_outside=True),
             "plain batch normalization": dict(plain=True)}
    for words, flags in cases.items():
        feedback = check_batch_renorm(mistaken(**flags))
        assert not feedback.passed and words in str(feedback), (words, str(feedback))
    tuple_answer = check_batch_renorm(lambda *args: (renorm_reference(*args), None))
    assert "output array alone" in str(tuple_answer)
    assert not check_batch_renorm(not_attempted).attempted


# --- Welford's update ---------------------------------------------------------------------


def welford(count, mean, m2, value):
    count += 1
    delta = value - mean
    mean = mean + delta / count
    return count, mean, m2 + delta * (value - mean)


def welford_delta_squared(count, mean, m2, value):
    count += 1
    delta = value - mean
    return count, mean + delta / count, m2 + delta**2


def welford_new_mean_twice(count, mean, m2, value):
    count += 1
    mean = mean + (value - mean) / count
    return count, mean, m2 + (value - mean) ** 2


def welford_returns_variance(count, mean, m2, value):
    count, mean, m2 = welford(count, mean, m2, value)
    return count, mean, m2 / count


def welford_in_place(count, mean, m2, value):
    delta = value - mean
    mean += delta / (count + 1)
    m2 += delta * (value - mean)
    return count + 1, mean, m2


def test_welford_checker_accepts_the_update_and_names_mistakes():
    assert check_welford_update(welford).passed
    assert "overcounts" in str(check_welford_update(welford_delta_squared))
    assert "undercounts" in str(check_welford_update(welford_new_mean_twice))
    assert "in place" in str(check_welford_update(welford_in_place))
    assert "M2 itself" in str(check_welford_update(welford_returns_variance))
    assert "count should go" in str(check_welford_update(lambda c, m, s, v: (c, *welford(c, m, s, v)[1:])))
    assert "three things" in str(check_welford_update(lambda c, m, s, v: (m, s)))
    assert not check_welford_update(not_attempted).attempted
