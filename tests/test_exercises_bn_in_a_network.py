"""The notebook 06 checkers accept the reference and name the typical mistakes."""

import pytest
import torch

from helpers.exercises.bn_in_a_network import (
    check_bn_sigmoid_layer,
    check_gradient_factor,
    check_outcome_prediction,
    measured_gradient_factor,
)
from helpers.lessons import bn_in_a_network as experiments
from helpers.models import Figure1MLP

# -- one BN-sigmoid layer -----------------------------------------------------------------


def reference_layer(h, weight, gamma, beta, eps=1e-5):
    z = h @ weight.T
    z_hat = (z - z.mean(dim=0)) / torch.sqrt(z.var(dim=0, unbiased=False) + eps)
    return torch.sigmoid(gamma * z_hat + beta)


def layer_with(mistake):
    def layer(h, weight, gamma, beta, eps=1e-5):
        z = h @ weight.T
        mean, var = z.mean(dim=0), z.var(dim=0, unbiased=False)
        if mistake == "unbiased":
            var = z.var(dim=0)
        if mistake == "no eps":
            return torch.sigmoid(gamma * (z - mean) / torch.sqrt(var) + beta)
        if mistake == "eps outside":
            return torch.sigmoid(gamma * (z - mean) / (torch.sqrt(var) + eps) + beta)
        if mistake == "per example":
            mean, var = z.mean(dim=1, keepdim=True), z.var(dim=1, unbiased=False, keepdim=True)
        if mistake == "detached statistics":
            mean, var = mean.detach(), var.detach()
        z_hat = (z - mean) / torch.sqrt(var + eps)
        if mistake == "no sigmoid":
            return gamma * z_hat + beta
        if mistake == "swapped":
            return torch.sigmoid(beta * z_hat + gamma)
        if mistake == "numpy":
            return torch.sigmoid(gamma * z_hat + beta).detach().numpy()
        if mistake == "detached output":
            return torch.sigmoid(gamma * z_hat + beta).detach()
        return torch.sigmoid(gamma * z_hat + beta)

    return layer


def bn_after_sigmoid(h, weight, gamma, beta, eps=1e-5):
    a = torch.sigmoid(h @ weight.T)
    return gamma * (a - a.mean(dim=0)) / torch.sqrt(a.var(dim=0, unbiased=False) + eps) + beta


def test_the_reference_layer_is_figure1mlps_hidden_layer():
    model = Figure1MLP(batchnorm=True, seed=0).double().train()
    with torch.no_grad():
        model.norms[0].weight.uniform_(0.5, 2.0)
        model.norms[0].bias.uniform_(-1.0, 1.0)
    h = torch.rand(16, 784, dtype=torch.float64)
    expected = torch.sigmoid(model.norms[0](model.linears[0](h)))
    actual = reference_layer(h, model.linears[0].weight, model.norms[0].weight, model.norms[0].bias)
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


def test_the_layer_checker_accepts_the_reference():
    feedback = check_bn_sigmoid_layer(reference_layer)
    assert feedback.passed, str(feedback)


@pytest.mark.parametrize("mistake, phrase", [
    ("unbiased", "divides by N - 1"),
    ("no eps", "eps is missing"),
    ("eps outside", "eps is outside the square root"),
    ("per example", "normalized each example over its units"),
    ("no sigmoid", "The sigmoid is missing"),
    ("swapped", "gamma and beta are swapped"),
    ("numpy", "return a torch tensor"),
    ("detached output", "autograd cannot run through it"),
    ("detached statistics", "treat the batch mean or variance as a constant"),
])
def test_the_layer_checker_names_the_mistake(mistake, phrase):
    feedback = check_bn_sigmoid_layer(layer_with(mistake))
    assert feedback.attempted and not feedback.passed
    assert phrase in str(feedback), str(feedback)


def test_the_layer_checker_spots_bn_after_the_sigmoid_and_reports_exceptions():
    assert "after the sigmoid" in str(check_bn_sigmoid_layer(bn_after_sigmoid))
    feedback = check_bn_sigmoid_layer(lambda h, weight, gamma, beta, eps: h @ weight)
    assert "raised RuntimeError" in str(feedback)


def not_yet(*args):
    raise NotImplementedError


def test_unattempted_exercises_give_a_friendly_note():
    for feedback in (check_bn_sigmoid_layer(not_yet), check_gradient_factor(not_yet),
                     check_outcome_prediction({"no BN": None, "BN": None}, lr=10.0)):
        assert not feedback.attempted and "[not attempted]" in str(feedback)
    assert "Replace each None" in str(check_outcome_prediction({"no BN": None, "BN": None}, lr=10.0))


# -- the gradient after scaling the weights -----------------------------------------------


def test_the_measured_factor_is_one_over_a():
    for a in (0.1, 2.0, 10.0):
        assert measured_gradient_factor(a) == pytest.approx(1 / a, rel=1e-3)


def test_the_gradient_checker_accepts_one_over_a_and_explains_the_usual_answers():
    assert check_gradient_factor(lambda a: 1 / a).passed
    assert "BN divides the scale away" in str(check_gradient_factor(lambda a: a))
    assert "BN(aWu) = BN(Wu)" in str(check_gradient_factor(lambda a: 1.0))
    assert "effective learning rate" in str(check_gradient_factor(lambda a: a ** -2))
    assert "do not match" in str(check_gradient_factor(lambda a: 2.0))
    assert "return a number" in str(check_gradient_factor(lambda a: "small"))


# -- predict, then run --------------------------------------------------------------------


def test_the_prediction_checker_compares_with_a_real_run():
    experiments.clear_cache()
    runs = experiments.learning_rate_sweep([10.0], steps=40, record_every=20, progress=False)[10.0]
    actual = {"no BN": experiments.outcome(runs["plain"]), "BN": experiments.outcome(runs["bn"])}
    feedback = check_outcome_prediction(actual, lr=10.0, steps=40)
    # (the checker's own runs record every SWEEP_RECORD_EVERY steps; 40 steps gives the same end)
    assert feedback.passed, str(feedback)
    wrong = {name: next(o for o in ("trains", "stalls", "diverges") if o != value)
             for name, value in actual.items()}
    feedback = check_outcome_prediction(wrong, lr=10.0, steps=40)
    assert not feedback.passed and str(feedback).count("not quite") == 2
    experiments.clear_cache()


def test_the_notebooks_solution_at_learning_rate_100_holds():
    # notebook 06's solution text: at lr 100 both networks stall within SWEEP_STEPS steps
    feedback = check_outcome_prediction({"no BN": "stalls", "BN": "stalls"}, lr=100.0)
    assert feedback.passed, str(feedback)
    experiments.clear_cache()


def test_the_prediction_checker_rejects_malformed_predictions():
    assert "two keys" in str(check_outcome_prediction({"plain": "trains"}, lr=1.0))
    assert "use one of" in str(check_outcome_prediction({"no BN": "explodes", "BN": "trains"}, lr=1.0))


def test_a_correct_layer_in_float32_is_told_so_with_the_tolerance():
    def float32_layer(h, weight, gamma, beta, eps=1e-5):
        return reference_layer(h.float(), weight.float(), gamma.float(), beta.float(), eps)

    feedback = check_bn_sigmoid_layer(float32_layer)
    assert not feedback.passed
    assert "computes in float32" in feedback.messages[0] and "1e-09" in feedback.messages[0]


def test_a_float32_layer_with_a_real_mistake_gets_the_mistake_named():
    def float32_without_sigmoid(h, weight, gamma, beta, eps=1e-5):
        z = h.float() @ weight.float().T
        return gamma.float() * (z - z.mean(dim=0)) / torch.sqrt(z.var(dim=0, unbiased=False) + eps) + beta.float()

    feedback = check_bn_sigmoid_layer(float32_without_sigmoid)
    assert "The sigmoid is missing" in feedback.messages[0], feedback.messages
