"""Exercise checkers for notebook 08 (BN in practice).

- ``check_freeze_batchnorm``: put a model's BN layers in eval mode and stop their gamma and beta
  from training, leaving the rest of the model alone.
- ``check_batch_renorm``: the forward pass of Batch Renormalization, with its clipped r and d.
- ``check_welford_update``: one step of Welford's update of (count, mean, M2).

Each runs the reader's function on hidden cases, compares with the library (``helpers.frozen``,
``helpers.renorm``, ``helpers.welford``) and, when the answer is wrong, tries the usual mistakes
one by one to say which one it is.
"""

from __future__ import annotations

import numpy as np

from helpers.feedback import Feedback, NotAttempted, call_reader_function
from helpers.i18n import N_, _
from helpers.renorm import batch_renorm_forward, renormalize
from helpers.welford import welford_update

__all__ = ["check_batch_renorm", "check_freeze_batchnorm", "check_welford_update"]

RTOL, ATOL = 1e-9, 1e-12


def _close(a, b) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and np.allclose(a, b, rtol=RTOL, atol=ATOL)


def _raised(feedback: Feedback, error: Exception, where: str) -> Feedback:
    feedback.add(_("your function raised {value}: {error} ({where}).").format(value=type(error).__name__, error=error, where=where))
    return feedback


# ----------------------------------------------------------------------------------------
# Exercise 1: freezing BN for fine-tuning
# ----------------------------------------------------------------------------------------


def _freeze_case():
    """A small model with BN layers of both kinds among other layers, in training mode."""
    import torch
    from torch import nn

    from helpers.models import seeded

    with seeded(808):
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
            nn.Flatten(), nn.Linear(4 * 5 * 5, 6, bias=False), nn.BatchNorm1d(6), nn.ReLU(),
            nn.Dropout(0.5), nn.Linear(6, 3),
        )
        x = torch.randn(8, 1, 5, 5)
        model.train()
        with torch.no_grad():  # give the BN layers statistics of their own
            for _step in range(3):
                model(x * 2 + 1)
    return model, x


def check_freeze_batchnorm(function) -> Feedback:
    """Check ``function(model)``: afterwards every BatchNorm layer must be in eval mode with its
    weight and bias not requiring gradients; every other layer keeps its mode and its parameters
    keep requiring gradients; a training-mode forward pass must not change the running statistics.
    """
    import torch
    from torch import nn

    feedback = Feedback(_("freezing BN"))
    model, x = _freeze_case()
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    others = [m for m in model.modules() if m not in norms and m is not model]
    try:
        returned = call_reader_function(function, model)
    except NotAttempted:
        feedback.attempted = False
        return feedback
    except Exception as error:
        return _raised(feedback, error, _("on a model with a BatchNorm2d and a BatchNorm1d"))
    if returned is not None and returned is not model:
        feedback.add(_("your function returned a different model: change the model it is given "
                     "in place (and return it, or nothing), so that the caller's model is frozen."))
    if not any(m in norms for m in model.modules()):
        from helpers.frozen import FrozenBatchNorm1d, FrozenBatchNorm2d

        if all(isinstance(m, (FrozenBatchNorm1d, FrozenBatchNorm2d)) or not isinstance(
                m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            feedback.passed = True
            feedback.add(_("you replaced the BN layers by frozen ones (convert_frozen_batchnorm): "
                         "that works too, and model.train() cannot undo it. The exercise asked for "
                         "the in-place version; try it as well."))
            return feedback
    still_training = [type(m).__name__ for m in norms if m.training]
    if still_training:
        feedback.add(_("{value} still in training mode: call `.eval()` on each "
                     "BN layer, or it normalizes with batch statistics and overwrites its running "
                     "statistics at every step, whatever requires_grad says.").format(value=', '.join(still_training)))
    trainable = [type(m).__name__ for m in norms if any(p.requires_grad for p in m.parameters())]
    if trainable:
        feedback.add(_("the weight and bias of {value} still require gradients: "
                     "`layer.weight.requires_grad_(False)` (and the bias), or the optimizer keeps "
                     "moving gamma and beta.").format(value=', '.join(trainable)))
    if not model.training:
        feedback.add(_("your function put the whole model in eval mode: only the BN layers should "
                     "be, the rest keeps training (a Dropout there would stop dropping)."))
    elif any(not m.training for m in others):
        names = sorted({type(m).__name__ for m in others if not m.training})
        feedback.add(_("these layers are no longer in training mode: {value}. Change "
                     "the BN layers only.").format(value=', '.join(names)))
    frozen_others = sorted({type(m).__name__ for m in others
                            if any(not p.requires_grad for p in m.parameters(recurse=False))})
    if frozen_others:
        feedback.add(_("the parameters of {value} no longer require gradients: "
                     "only BN's gamma and beta should be frozen.").format(value=', '.join(frozen_others)))
    if not feedback.messages:
        before = [(m.running_mean.clone(), m.running_var.clone()) for m in norms]
        with torch.no_grad():
            model(x * 3 - 2)  # a forward pass in the model's mode, on data of other statistics
        moved = any(not (torch.equal(m.running_mean, a) and torch.equal(m.running_var, b))
                    for m, (a, b) in zip(norms, before))
        if moved:
            feedback.add(_("a forward pass still changed the running statistics."))
    feedback.passed = not feedback.messages
    if feedback.passed:
        feedback.add(_("remember that model.train() puts the BN layers back in training mode: "
                     "call your function again after every model.train()."))
    return feedback


# ----------------------------------------------------------------------------------------
# Exercise 2: Batch Renormalization's forward pass
# ----------------------------------------------------------------------------------------


def _renorm_cases():
    """(x, gamma, beta, running_mean, running_std, r_max, d_max): some with r and d clipped,
    some not."""
    rng = np.random.default_rng(2017)
    cases = []
    for n, d, r_max, d_max, spread in [(6, 4, 3.0, 5.0, 1.0), (4, 3, 1.5, 0.5, 4.0),
                                       (16, 5, 2.0, 1.0, 0.2), (3, 2, 1.0, 0.0, 1.0)]:
        x = rng.normal(loc=rng.uniform(-2, 2, d), scale=spread * rng.uniform(0.5, 2.0, d), size=(n, d))
        cases.append((x, rng.uniform(0.5, 2, d), rng.normal(size=d), rng.normal(size=d),
                      rng.uniform(0.5, 2.0, d), r_max, d_max))
    return cases


def _renorm_mistake(x, gamma, beta, running_mean, running_std, r_max, d_max, eps, kind):
    mean = x.mean(axis=0)
    var = x.var(axis=0, ddof=1) if kind == "unbiased" else x.var(axis=0)
    std = np.sqrt(var) + eps if kind == "eps outside" else np.sqrt(var + eps)
    if kind == "running var":
        running = np.sqrt(running_std)  # the reader took running_std for a variance
        r, d = std / running, (mean - running_mean) / running
    else:
        r, d = std / running_std, (mean - running_mean) / running_std
    if kind == "inverted r":
        r = 1 / r
    if kind == "d sign":
        d = -d
    if kind != "no clipping":
        r, d = np.clip(r, 1 / r_max, r_max), np.clip(d, -d_max, d_max)
    return gamma * ((x - mean) / std * r + d) + beta


_RENORM_MISTAKES = [
    ("no clipping", N_("your r and d are not clipped: r must stay in [1/r_max, r_max] and d in "
                       "[-d_max, d_max] (np.clip). Unclipped, one odd batch could rescale its "
                       "normalized values without limit; with r_max = 1 and d_max = 0 clipping "
                       "is what turns Batch Renorm into plain BN.")),
    ("inverted r", N_("your r is running_std / batch_std, upside down: r = sigma_B / sigma, so that "
                      "(x - mu_B) / sigma_B * r = (x - mu_B) / sigma.")),
    ("d sign", N_("your d has the wrong sign: d = (mu_B - mu) / sigma, so that adding it to "
                  "(x - mu_B) / sigma gives (x - mu) / sigma.")),
    ("unbiased", N_("your batch standard deviation uses the unbiased variance (ddof=1): Batch Renorm, "
                    "like BN, normalizes with the biased one, sigma_B = sqrt(mean((x - mu_B)**2) + eps).")),
    ("eps outside", N_("eps is added after the square root: sigma_B = sqrt(var_B + eps), eps inside.")),
    ("running var", N_("you treated running_std as a variance (took its square root): it already is "
                       "the running standard deviation sigma.")),
]


def check_batch_renorm(function) -> Feedback:
    """Check ``function(x, gamma, beta, running_mean, running_std, r_max, d_max, eps) -> out``:
    Batch Renormalization's training-mode output (N, D) for x (N, D)."""
    feedback = Feedback(_("Batch Renormalization forward"))
    eps = 1e-5
    found = []
    for case in _renorm_cases():
        x, gamma, beta, running_mean, running_std, r_max, d_max = case
        originals = [np.copy(a) for a in case[:5]]
        try:
            result = call_reader_function(function, x, gamma, beta, running_mean, running_std,
                                          r_max, d_max, eps)
        except NotAttempted:
            feedback.attempted = False
            return feedback
        except Exception as error:
            return _raised(feedback, error, _("x of shape {shape}, r_max={r_max}, d_max={d_max}").format(
                shape=x.shape, r_max=r_max, d_max=d_max))
        if any(not np.array_equal(a, b) for a, b in zip(originals, case[:5])):
            found.append(_("your function changed one of its input arrays in place: return a new array."))
            break
        if isinstance(result, tuple):
            found.append(_("return the output array alone (not a tuple with r, d or a cache)."))
            break
        out = np.asarray(result, dtype=np.float64)
        if out.shape != x.shape:
            found.append(_("the output has shape {shape}, expected {shape2} (one value per input).").format(
                shape=out.shape, shape2=x.shape))
            break
        expected = batch_renorm_forward(x, gamma, beta, running_mean, running_std, r_max, d_max, eps)[0]
        if _close(out, expected):
            continue
        plain_bn = renormalize(x, gamma, beta, np.ones(x.shape[1]), np.zeros(x.shape[1]), eps)[0]
        message = next((_(text) for kind, text in _RENORM_MISTAKES
                        if _close(out, _renorm_mistake(x, gamma, beta, running_mean, running_std,
                                                       r_max, d_max, eps, kind))), None)
        if message is None and _close(out, plain_bn):
            message = _("your output is plain batch normalization: r and d are missing (they are 1 "
                        "and 0 only when r_max = 1 and d_max = 0, or when the batch's statistics "
                        "equal the running ones).")
        found.append(message or _("the output differs from the reference by up to "
                                  "{error:.3g} (x of shape {shape}, "
                                  "r_max={r_max}, d_max={d_max}); compare step by step with "
                                  "helpers.renorm.batch_renorm_forward.").format(
            error=np.abs(out - expected).max(), shape=x.shape, r_max=r_max, d_max=d_max))
        break
    for message in dict.fromkeys(found):
        feedback.add(message)
    feedback.passed = not found
    return feedback


# ----------------------------------------------------------------------------------------
# Exercise 3: Welford's update
# ----------------------------------------------------------------------------------------


def _welford_mistake(count, mean, m2, value, kind):
    if kind == "variance":
        count, mean, m2 = welford_update(count, mean, m2, value)
        return count, mean, m2 / count
    count += 1
    delta = value - mean
    new_mean = mean + delta / count
    if kind == "delta squared":
        return count, new_mean, m2 + delta * delta
    if kind == "new mean twice":
        return count, new_mean, m2 + (value - new_mean) ** 2
    if kind == "count minus one":
        return count, mean + delta / max(count - 1, 1), m2 + delta * (value - new_mean)
    raise ValueError(kind)


_WELFORD_MISTAKES = [
    ("delta squared", N_("M2 grows by delta**2 with delta = value - old mean: that overcounts. "
                         "Welford multiplies the deviation from the old mean by the deviation from "
                         "the new one: M2 += (value - old_mean) * (value - new_mean).")),
    ("new mean twice", N_("M2 grows by (value - new_mean)**2: that undercounts. Use one deviation "
                          "from the old mean and one from the new: M2 += (value - old_mean) * "
                          "(value - new_mean).")),
    ("count minus one", N_("the mean moves by delta / (count - 1): after the update the count is the "
                           "number of values including the new one, and the mean moves by "
                           "delta / new_count.")),
    ("variance", N_("your third value is the variance M2 / count: return M2 itself, the sum of "
                    "squared deviations (the variance is M2 / count at the end).")),
]


def _stream_states(update, stream):
    """Feed a stream through an update function, each call getting the previous call's state:
    the list of (count, mean, M2) after every value."""
    state = (0, np.zeros(stream.shape[1:]), np.zeros(stream.shape[1:]))
    states = []
    for value in stream:
        state = update(*state, value)
        states.append(state)
    return states


def _same_states(a, b) -> bool:
    return all(x[0] == y[0] and _close(x[1], y[1]) and _close(x[2], y[2]) for x, y in zip(a, b))


def check_welford_update(function) -> Feedback:
    """Check ``function(count, mean, m2, value) -> (count + 1, new_mean, new_m2)`` by streaming
    hidden values through it (rows of 3 features, one with a large offset, and a stream of
    scalars near 1e6), each call getting the state the previous call returned, and comparing
    every state with ``helpers.welford`` and M2 / count at the end with numpy's variance."""
    feedback = Feedback(_("Welford's update"))
    rng = np.random.default_rng(1962)
    streams = [rng.normal(loc=[3.0, -1.0, 1e4], scale=[1.0, 0.1, 2.0], size=(40, 3)),
               rng.normal(loc=1e6, scale=0.5, size=(25, 1))[:, 0]]
    found = []
    for stream in streams:
        states, state = [], (0, np.zeros(stream.shape[1:]), np.zeros(stream.shape[1:]))
        for k, value in enumerate(stream):
            before = [np.copy(a) for a in state[1:]]
            try:
                result = call_reader_function(function, *state, value)
            except NotAttempted:
                feedback.attempted = False
                return feedback
            except Exception as error:
                return _raised(feedback, error, _("at value {k} of a stream of shape {shape}").format(
                    k=k + 1, shape=stream.shape))
            if not isinstance(result, (tuple, list)) or len(result) != 3:
                found.append(_("return three things: (count + 1, new_mean, new_m2)."))
                break
            if any(not np.array_equal(a, b) for a, b in zip(before, state[1:])):
                found.append(_("your function changed the mean or M2 it was given in place: return "
                               "new values (mean = mean + ..., not mean += ...)."))
                break
            if result[0] != state[0] + 1:
                found.append(_("the count should go from {count} to {count2}, yours is {value}.").format(
                    count=state[0], count2=state[0] + 1, value=result[0]))
                break
            state = tuple(result)
            states.append(state)
        if found:
            break
        reference = _stream_states(welford_update, stream)
        if _same_states(states, reference):
            if not _close(states[-1][2] / states[-1][0], np.var(stream, axis=0)):  # pragma: no cover
                found.append(_("M2 / count does not equal numpy's variance at the end of the stream."))
            continue
        message = next((_(text) for kind, text in _WELFORD_MISTAKES
                        if _same_states(states, _stream_states(
                            lambda c, m, s, v, kind=kind: _welford_mistake(c, m, s, v, kind), stream))), None)
        if message is None:
            k = next(i for i, (mine, ref) in enumerate(zip(states, reference))
                     if not (_close(mine[1], ref[1]) and _close(mine[2], ref[2])))
            message = _("after value {k} of a stream of shape {shape}, (mean, M2) differ "
                        "from the reference ({mean}, {m2}); compare step by step.").format(
                k=k + 1, shape=stream.shape, mean=reference[k][1], m2=reference[k][2])
        found.append(message)
        break
    for message in dict.fromkeys(found):
        feedback.add(message)
    feedback.passed = not found
    return feedback
