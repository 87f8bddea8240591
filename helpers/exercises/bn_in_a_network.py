"""Exercise checkers of notebook 06 (BN in a real network).

- ``check_bn_sigmoid_layer(fn)``: the reader's ``fn(h, weight, gamma, beta, eps) -> a``, one
  hidden layer of the paper's BN network in torch, training mode: a = sigmoid(BN(h W^T)).
- ``check_gradient_factor(fn)``: the reader's ``fn(a) -> float``: by what factor the gradient
  with respect to a BN layer's weights changes when those weights are multiplied by a.
- ``check_outcome_prediction(prediction, lr)``: the reader's prediction ("trains", "stalls" or
  "diverges") for the plain and the BN network at a learning rate, compared with a real run.

Each runs hidden cases (or the experiment), compares with the reference, and explains. A layer
computed in float32 (torch's default dtype) is told so, with the checker's tolerance (relative
1e-9, in float64), instead of "wrong".
"""

from __future__ import annotations

import numpy as np
import torch

from helpers.bn import batchnorm_forward
from helpers.feedback import (
    LOW_PRECISION,
    Feedback,
    NotAttempted,
    call_reader_function,
    low_precision_message,
    precision_of,
)
from helpers.i18n import N_, _

__all__ = ["OUTCOMES", "check_bn_sigmoid_layer", "check_gradient_factor", "check_outcome_prediction"]

OUTCOMES = ("trains", "stalls", "diverges")


# ----------------------------------------------------------------------------------------
# One BN-sigmoid layer in torch
# ----------------------------------------------------------------------------------------


def _layer_cases():
    """(description, h (N, D_in), weight (D_out, D_in), gamma (D_out,), beta (D_out,), eps)."""
    generator = torch.Generator().manual_seed(6)

    def normal(*shape, scale=1.0):
        return scale * torch.randn(*shape, generator=generator, dtype=torch.float64)

    yield (_("a batch of 6 examples, 5 inputs, 4 units"),
           torch.rand(6, 5, generator=generator, dtype=torch.float64), normal(4, 5, scale=0.5),
           1.0 + normal(4, scale=0.3), normal(4, scale=0.5), 1e-5)
    yield (_("a batch of 12 x 7 inputs, 3 units, eps = 0.5 (every mistake about eps shows)"),
           normal(12, 7), normal(3, 7, scale=0.1), torch.tensor([2.0, 0.5, 1.0], dtype=torch.float64),
           torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64), 0.5)


def _reference_layer(h, weight, gamma, beta, eps):
    """sigmoid(BN(h W^T)) with helpers.bn's forward pass (numpy, float64)."""
    z = h.numpy() @ weight.numpy().T
    y, _cache = batchnorm_forward(z, gamma.numpy(), beta.numpy(), eps)
    return 1.0 / (1.0 + np.exp(-y))


def _standardize(z, eps, axis=0, unbiased=False, eps_inside=True):
    mean = z.mean(axis=axis, keepdims=True)
    var = z.var(axis=axis, ddof=1 if unbiased else 0, keepdims=True)
    if eps is None:
        return (z - mean) / np.sqrt(var)
    return (z - mean) / (np.sqrt(var + eps) if eps_inside else np.sqrt(var) + eps)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _layer_mistakes(h, weight, gamma, beta, eps):
    """(output, explanation) for the usual mistakes."""
    z = h.numpy() @ weight.numpy().T
    g, b = gamma.numpy(), beta.numpy()
    return [
        (g * _standardize(z, eps) + b,
         _("The sigmoid is missing: the layer's output is sigmoid(gamma * z_hat + beta); BN goes "
           "*before* the nonlinearity in the paper (Section 3.2).")),
        (_sigmoid(g * _standardize(z, eps, unbiased=True) + b),
         _("Your variance divides by N - 1. In training BN normalizes by the batch's biased variance "
           "(1/N): torch's z.var(dim=0) is unbiased by default; use z.var(dim=0, unbiased=False) "
           "(or correction=0).")),
        (_sigmoid(g * _standardize(z, None) + b),
         _("eps is missing: divide by sqrt(var + eps), not sqrt(var).")),
        (_sigmoid(g * _standardize(z, eps, eps_inside=False) + b),
         _("eps is outside the square root: divide by sqrt(var + eps).")),
        (_sigmoid(g * _standardize(z, eps, axis=1) + b),
         _("You normalized each example over its units (dim=1). BN normalizes each unit over the "
           "batch: mean and variance over dim=0, one value per unit.")),
        (g * _standardize(_sigmoid(z), eps) + b,
         _("You applied BN after the sigmoid. The paper's layer is sigmoid(BN(W h)): normalize the "
           "linear output z = h W^T, then apply the sigmoid.")),
        (_sigmoid(b * _standardize(z, eps) + g),
         _("gamma and beta are swapped: gamma scales z_hat, beta shifts it.")),
        (_sigmoid(_standardize(z, eps)),
         _("gamma and beta are missing: after normalizing, scale and shift: gamma * z_hat + beta.")),
        (_sigmoid(g * _standardize(h.numpy() @ weight.numpy(), eps) + b)
         if weight.shape[0] == weight.shape[1] else None,
         _("Use h @ weight.T: weight has shape (units, inputs), as in torch.nn.Linear.")),
    ]


def check_bn_sigmoid_layer(reader_layer) -> Feedback:
    """Check ``reader_layer(h, weight, gamma, beta, eps) -> a`` (torch tensors, training mode).

    h is (N, D_in), weight (D_out, D_in) as in ``torch.nn.Linear`` (no bias: BN's beta replaces
    it), gamma and beta (D_out,); a is (N, D_out). Compared with sigmoid of
    ``helpers.bn.batchnorm_forward`` in float64, and the gradient with respect to the weights
    with the reference's (autograd must be able to run through the reader's function).
    """
    feedback = Feedback(_("one BN-sigmoid layer, my_bn_sigmoid_layer"))
    for description, h, weight, gamma, beta, eps in _layer_cases():
        weight_arg = weight.clone().requires_grad_(True)
        try:
            out = call_reader_function(reader_layer, h.clone(), weight_arg, gamma.clone(),
                                       beta.clone(), eps)
        except NotAttempted:
            return Feedback(feedback.exercise, passed=False, attempted=False)
        except Exception as error:  # the reader's bug, reported instead of raised
            feedback.add(_("On {description}, your function raised {value}: {error}. "
                         "Shapes: h (N, D_in), weight (D_out, D_in), so z = h @ weight.T is (N, D_out).").format(description=description, value=type(error).__name__, error=error))
            return feedback
        if not isinstance(out, torch.Tensor):
            feedback.add(_("Your function returned a {value}; return a torch tensor "
                         "(compute with torch operations, so that autograd can differentiate it).").format(value=type(out).__name__))
            return feedback
        expected = _reference_layer(h, weight, gamma, beta, eps)
        if tuple(out.shape) != expected.shape:
            feedback.add(_("On {description}: your output has shape {value}, expected "
                         "{shape} (N examples, D_out units).").format(description=description, value=tuple(out.shape), shape=expected.shape))
            return feedback
        values = out.detach().double().numpy()
        if not np.allclose(values, expected, rtol=1e-9, atol=1e-12):
            precision = precision_of(out)
            error = float(np.abs(values - expected).max() / np.abs(expected).max())
            loose = 1e-9 if precision is None else 1e3 * LOW_PRECISION[precision]
            note = low_precision_message(precision, error, 1e-9) if error <= loose or precision is None else None
            if note and precision is not None:   # a float64 answer: the usual mistakes first
                feedback.add(_("On {description}: {note}").format(description=description, note=note))
                return feedback
            for candidate, explanation in _layer_mistakes(h, weight, gamma, beta, eps):
                if candidate is None:
                    continue
                if (np.allclose(values, candidate, rtol=1e-9, atol=1e-12) if precision is None
                        else np.abs(values - candidate).max() <= loose * np.abs(candidate).max()):
                    feedback.add(_("On {description}: {explanation}").format(description=description, explanation=explanation))
                    return feedback
            if note:
                feedback.add(_("On {description}: {note}").format(description=description, note=note))
                return feedback
            worst = float(np.abs(values - expected).max())
            feedback.add(_("On {description}: your output differs from sigmoid(BN(h W^T)) by up to "
                         "{worst:.3g}. Compute z = h @ weight.T, then z_hat = (z - mean) / "
                         "sqrt(var + eps) over the batch (dim=0, biased variance), then "
                         "sigmoid(gamma * z_hat + beta).").format(description=description, worst=worst))
            return feedback
        if not out.requires_grad:
            feedback.add(_("Your output is right but autograd cannot run through it (did you use "
                         ".detach(), .numpy() or torch.no_grad()?). Keep to torch operations."))
            return feedback
        upstream = torch.linspace(-1.0, 1.0, out.numel(), dtype=out.dtype).reshape(out.shape)
        (grad,) = torch.autograd.grad((out * upstream).sum(), weight_arg)
        reference_weight = weight.clone().requires_grad_(True)
        z = h @ reference_weight.T
        z_hat = (z - z.mean(dim=0)) / torch.sqrt(z.var(dim=0, unbiased=False) + eps)
        reference_out = torch.sigmoid(gamma * z_hat + beta)
        (reference_grad,) = torch.autograd.grad((reference_out * upstream).sum(), reference_weight)
        if not torch.allclose(grad.double(), reference_grad, rtol=1e-7, atol=1e-10):
            feedback.add(_("On {description}: the output is right but its gradient with respect to "
                         "the weights is not. Did you treat the batch mean or variance as a "
                         "constant (e.g. .detach() on them)? The paper's Section 3 insists the "
                         "gradient must flow through the statistics too.").format(description=description))
            return feedback
    feedback.passed = True
    feedback.add(_("Your layer matches sigmoid(BN(h W^T)) from helpers.bn, and autograd's gradient "
                 "through it matches the reference: this is one hidden layer of Figure1MLP."))
    return feedback


# ----------------------------------------------------------------------------------------
# How the gradient scales when the weights are scaled
# ----------------------------------------------------------------------------------------


def measured_gradient_factor(a: float, seed: int = 0) -> float:
    """Measure ||dL/dW at a*W|| / ||dL/dW at W|| for the first layer of a BN network.

    A small BN-sigmoid network (32 inputs, 16 BN-sigmoid units, 10 outputs) on a random batch
    of 64, float64, training mode; W is the first linear layer's weight.
    """
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 32, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 10, (64,), generator=generator)
    weight = 0.3 * torch.randn(16, 32, generator=generator, dtype=torch.float64)
    readout = 0.3 * torch.randn(10, 16, generator=generator, dtype=torch.float64)

    def gradient(w):
        w = w.clone().requires_grad_(True)
        z = torch.nn.functional.batch_norm(x @ w.T, None, None, training=True, eps=1e-5)
        loss = torch.nn.functional.cross_entropy(torch.sigmoid(z) @ readout.T, y)
        (grad,) = torch.autograd.grad(loss, w)
        return grad

    return float(gradient(a * weight).norm() / gradient(weight).norm())


def check_gradient_factor(reader_factor) -> Feedback:
    """Check ``reader_factor(a) -> float``: the factor by which the gradient with respect to a BN
    layer's incoming weights changes when the weights are multiplied by a > 0 (answer: 1/a, up
    to the tiny effect of eps). Compared with ``measured_gradient_factor`` at several a."""
    feedback = Feedback(_("the gradient after scaling the weights, my_gradient_factor"))
    scales = (0.1, 0.5, 2.0, 10.0)
    answers = []
    for a in scales:
        try:
            answer = call_reader_function(reader_factor, a)
        except NotAttempted:
            return Feedback(feedback.exercise, passed=False, attempted=False)
        except Exception as error:
            feedback.add(_("For a = {a}, your function raised {value}: {error}.").format(a=a, value=type(error).__name__, error=error))
            return feedback
        try:
            answers.append(float(answer))
        except (TypeError, ValueError):
            feedback.add(_("For a = {a} your function returned {answer!r}; return a number.").format(a=a, answer=answer))
            return feedback
    answers = np.array(answers)
    scales_array = np.array(scales)
    measured = np.array([measured_gradient_factor(a) for a in scales])
    if np.allclose(answers, measured, rtol=1e-3):
        feedback.passed = True
        feedback.add(_("Right: the gradient shrinks by 1/a (measured: {measured}). The forward pass "
                       "ignores the scale of W, so the loss does not change "
                       "along W's direction; a step of size lr * |grad| ~ lr / a moves W by a "
                       "relative amount ~ lr / a^2. Large weights learn slowly, small ones fast: "
                       "BN keeps the scale out of the output, not out of the learning speed.").format(
            measured=", ".join(f"a={a:g}: {m:.4f}" for a, m in zip(scales, measured))))
        return feedback
    wrong = {
        "a": (scales_array, _("That is what a plain linear layer followed by a fixed readout would "
                              "suggest, but BN divides the scale away in the forward pass, and the gradient "
                              "scales the other way.")),
        "1": (np.ones_like(scales_array), _("The output does not change when W is scaled "
                                            "(BN(aWu) = BN(Wu), notebook 03), but the gradient does: it is computed with "
                                            "respect to aW, and scaling the input of a scale-invariant function by a scales "
                                            "its gradient by 1/a.")),
        "1/a^2": (1 / scales_array**2, _("1/a^2 is how the *relative* change per step (the "
                                         "effective learning rate) scales; the gradient itself scales by 1/a.")),
    }
    for values, explanation in wrong.values():
        if np.allclose(answers, values, rtol=1e-3):
            feedback.add(explanation + _(" Measured: {measured}.").format(measured=", ".join(
                f"a={a:g}: {m:.4f}" for a, m in zip(scales, measured))))
            return feedback
    feedback.add(_("Your factors {answers} do not match the measured {measured}. Hint: differentiate "
                   "L(aW) = L(W) (scale invariance) with respect to W.").format(
        answers=", ".join(f"a={a:g}: {v:.4g}" for a, v in zip(scales, answers)),
        measured=", ".join(f"{m:.4f}" for m in measured)))
    return feedback


# ----------------------------------------------------------------------------------------
# Predict, then run
# ----------------------------------------------------------------------------------------

_WHY = {
    ("plain", "stalls"): N_(
        "Without BN the sigmoid inputs are free to grow: big early steps push them into the flat "
        "tails, where the sigmoid's slope is nearly 0, so little gradient reaches the lower "
        "layers and training stops while the loss stays at or above ln 10 = 2.3. (At small "
        "learning rates the plain network can also sit on its initial plateau for a while.)"),
    ("plain", "diverges"): N_(
        "The steps were so large that the loss exploded on a mini-batch (above 1000), so training "
        "stopped."),
    ("plain", "trains"): N_(
        "At this rate the plain network's sigmoid inputs stay in a useful range long enough to "
        "learn."),
    ("bn", "stalls"): N_(
        "Even BN has a limit: it standardizes each unit's input, but gamma and beta are learned "
        "with the same huge steps, grow large, and push the sigmoid inputs back into saturation "
        "(and the output layer is not normalized at all)."),
    ("bn", "diverges"): N_(
        "Even BN has a limit: gamma, beta and the unnormalized output layer took steps so large "
        "that the loss exploded."),
    ("bn", "trains"): N_(
        "BN re-standardizes every hidden layer's sigmoid input on each mini-batch, so large "
        "steps on the weights W cannot push the units into saturation (only gamma and beta "
        "can, and they grow more slowly); and as W grows its gradient shrinks (scale "
        "invariance), which makes large learning rates partly self-limiting."),
}


def check_outcome_prediction(prediction: dict, lr: float, *, steps: int | None = None) -> Feedback:
    """Compare the reader's prediction with real runs (``helpers.lessons.bn_in_a_network``).

    Args:
        prediction: {"no BN": outcome, "BN": outcome}, each one of "trains", "stalls",
                    "diverges" (None: not predicted yet)
        lr:         the learning rate both networks are trained with (initial std 0.1, seed 0)
        steps:      run length (default: ``helpers.lessons.bn_in_a_network.SWEEP_STEPS``)
    """
    from helpers.lessons import bn_in_a_network as experiments

    feedback = Feedback(_("predict the outcome at learning rate {lr:g}").format(lr=lr))
    if not isinstance(prediction, dict) or set(prediction) != {"no BN", "BN"}:
        feedback.add(_('Write the prediction as a dict with two keys: {"no BN": ..., "BN": ...}.'))
        return feedback
    if all(value is None for value in prediction.values()):
        return Feedback(feedback.exercise, passed=False, attempted=False, messages=[
            _("Replace each None in the prediction with one of {value}.").format(value=', '.join(map(repr, OUTCOMES)))])
    for name, value in prediction.items():
        if value not in OUTCOMES:
            feedback.add(_("The prediction for {name!r} is {value!r}: use one of {OUTCOMES}.").format(name=name, value=value, OUTCOMES=OUTCOMES))
            return feedback
    steps = experiments.SWEEP_STEPS if steps is None else steps
    runs = experiments.learning_rate_sweep([lr], steps=steps, progress=False)[lr]
    right = 0
    for name, key in (("no BN", "plain"), ("BN", "bn")):
        actual = experiments.outcome(runs[key])
        verdict = _("right") if actual == prediction[name] else _("not quite")
        right += actual == prediction[name]
        feedback.add(_("{name}: you said {value!r}, the run {value2} "
                     "-> {actual!r} ({verdict}). {value3}").format(name=name, value=prediction[name], value2=experiments.describe(runs[key]), actual=actual, verdict=verdict, value3=_(_WHY[key, actual])))
    feedback.passed = right == 2
    return feedback
