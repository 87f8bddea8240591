"""Exercise checkers of notebook 01 (why normalize inputs).

- ``check_standardize(fn)``: the reader's ``fn(x_train, x_test) -> (z_train, z_test)``,
  z-score standardization with the *training* set's mean and standard deviation (ddof=0),
  one statistic per feature (column).
- ``check_largest_stable_learning_rate(fn)``: the reader's ``fn(x) -> float``, the largest
  learning rate at which gradient descent on L(w) = ||x w - y||^2 / (2 n) does not diverge,
  2 / lambda_max(x^T x / n).

Both run the reader's function on hidden cases, compare with ``helpers.lessons.input_normalization``, and when
the answer is wrong try the usual mistakes (the test set's own statistics, ddof=1, statistics
per row, min-max instead of z-score; 1/lambda instead of 2/lambda, a forgotten 1/n, the largest
diagonal entry instead of the largest eigenvalue...) to say which one it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from helpers.feedback import Feedback, NotAttempted, call_reader_function
from helpers.i18n import N_, _
from helpers.lessons.input_normalization import (
    LeastSquares,
    gradient_descent,
    largest_stable_learning_rate,
    mean_normalize,
    min_max_scale,
    zscore,
)

__all__ = ["check_largest_stable_learning_rate", "check_standardize"]


# ----------------------------------------------------------------------------------------
# Exercise 1: standardize with the training set's statistics
# ----------------------------------------------------------------------------------------


@dataclass
class _SplitCase:
    description: str
    x_train: np.ndarray
    x_test: np.ndarray


def _standardize_cases() -> list[_SplitCase]:
    rng = np.random.default_rng(1502)
    cases = []
    # few rows, so ddof=1 and ddof=0 differ visibly (sqrt(6/5) = 1.095); the test set comes from
    # a shifted, wider distribution, so its own statistics differ from the training set's
    scale, offset = np.array([8.0, 60_000.0, 0.5]), np.array([15.0, 120_000.0, 2.0])
    cases.append(_SplitCase(
        N_("6 training cars x 3 features (age, km, engine litres) and 4 test cars"),
        rng.normal(size=(6, 3)) * scale + offset,
        rng.normal(size=(4, 3)) * scale * 1.5 + offset * 1.3,
    ))
    # more rows than columns and different sizes for train and test, so the axes are told apart
    cases.append(_SplitCase(
        N_("40 training rows x 2 features (scales 1e-3 and 1e3), 7 test rows"),
        rng.normal(size=(40, 2)) * [1e-3, 1e3] + [5e-3, -2e3],
        rng.normal(size=(7, 2)) * [1e-3, 1e3] + [8e-3, -1e3],
    ))
    # as many rows as columns: per-row and per-column statistics have the same shape here
    cases.append(_SplitCase(
        N_("a square 5 x 5 training set and 5 test rows"),
        rng.gamma(2.0, 3.0, size=(5, 5)) * [1, 10, 100, 1000, 10000],
        rng.gamma(2.0, 3.0, size=(5, 5)) * [1, 10, 100, 1000, 10000] + 7.0,
    ))
    return cases


def _reference_standardize(x_train, x_test):
    return zscore(x_train), zscore(x_test, reference=x_train)


def _rowwise(x, ddof=0):
    return zscore(x.T, ddof=ddof).T


def _global(x, reference):
    return (x - reference.mean()) / reference.std()


_STANDARDIZE_MISTAKES = [
    (lambda tr, te: (zscore(tr), zscore(te)),
     N_("The test set was standardized with its own mean and std. Use the training set's "
        "statistics for both: the test set stands for data you have not seen yet (one example "
        "at a time, in deployment), and a model trained on one scaling must be fed the same "
        "scaling. (BN does the same at inference: it uses running statistics from training, "
        "not the batch's.)")),
    (lambda tr, te: (zscore(tr, ddof=1), zscore(te, reference=tr, ddof=1)),
     N_("Your std divides by n - 1 (ddof=1: pandas' .std() and torch.std's default). This course "
        "standardizes with ddof=0, dividing by n, as BN's normalization (Algorithm 1's 1/m) and "
        "scikit-learn's StandardScaler do: z-scoring rescales this data set, it does not estimate "
        "a population, and with ddof=0 the training columns come out with np.std exactly 1. "
        "Use np.std(x, axis=0) (numpy's default ddof=0).")),
    (lambda tr, te: (zscore(tr), zscore(te, ddof=1)),
     N_("The test set was standardized with its own statistics, and with ddof=1. Use the "
        "training set's mean and its ddof=0 std for both sets.")),
    (lambda tr, te: (zscore(tr, ddof=1), zscore(te, ddof=1)),
     N_("Two mistakes: the test set was standardized with its own statistics, and the std divides "
        "by n - 1 (ddof=1). Use the training set's mean and std (ddof=0, numpy's default) for both.")),
    (lambda tr, te: (_rowwise(tr), _rowwise(te)),
     N_("You computed the statistics per row (axis=1): each example was standardized across its "
        "features, mixing years with kilometres. Each feature (column) needs its own mean and std "
        "over the examples: x_train.mean(axis=0), x_train.std(axis=0), each of shape (features,).")),
    (lambda tr, te: (_global(tr, tr), _global(te, tr)),
     N_("You used one mean and one std over the whole array. Features on different scales need "
        "one each: x_train.mean(axis=0) and x_train.std(axis=0).")),
    (lambda tr, te: (_global(tr, tr), _global(te, te)),
     N_("You used one mean and one std over the whole array, and the test set's own. Use one "
        "statistic per feature (axis=0), taken from the training set.")),
    (lambda tr, te: (zscore(np.vstack([tr, te]))[: len(tr)], zscore(np.vstack([tr, te]))[len(tr):]),
     N_("Your statistics come from the training and test sets together. The test set must not "
        "influence the preprocessing (that leaks information about it into training): use the "
        "training set's mean and std only.")),
    (lambda tr, te: (tr - tr.mean(axis=0), te - tr.mean(axis=0)),
     N_("You subtracted the mean but did not divide by the standard deviation: "
        "z = (x - mean) / std.")),
    (lambda tr, te: (tr / tr.std(axis=0), te / tr.std(axis=0)),
     N_("You divided by the standard deviation but did not subtract the mean first: "
        "z = (x - mean) / std.")),
    (lambda tr, te: ((tr - tr.mean(axis=0)) / tr.var(axis=0), (te - tr.mean(axis=0)) / tr.var(axis=0)),
     N_("You divided by the variance; divide by the standard deviation, its square root.")),
    (lambda tr, te: (min_max_scale(tr), min_max_scale(te, reference=tr)),
     N_("That is min-max scaling, (x - min) / (max - min). The exercise asks for the z-score, "
        "(x - mean) / std.")),
    (lambda tr, te: (mean_normalize(tr), mean_normalize(te, reference=tr)),
     N_("That is mean normalization, (x - mean) / (max - min). The z-score divides by the "
        "standard deviation: (x - mean) / std.")),
]


def _as_array(value, shape, name: str, feedback: Feedback):
    if value is None:
        feedback.add(_("{name} is None: did you forget a `return`?").format(name=name))
        return None
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        feedback.add(_("{name} is a {value} that is not an array of numbers.").format(name=name, value=type(value).__name__))
        return None
    if array.shape != shape:
        feedback.add(_("{name} has shape {shape}; it should keep its input's shape {shape2}.").format(name=name, shape=array.shape, shape2=shape))
        return None
    return array


def _close(a, b) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-7, atol=1e-9))


def _small_constant_in_the_denominator(case: _SplitCase, z_train, z_test) -> str | None:
    """If the reader divided by std + c or sqrt(var + c) for a small constant c (a guard
    against dividing by zero, such as 1e-8), what to tell them; otherwise None."""
    mean, std = case.x_train.mean(axis=0), case.x_train.std(axis=0)
    centered_train, centered_test = case.x_train - mean, case.x_test - mean
    usable = np.abs(z_train) > 1e-6
    if not usable.any(axis=0).all():
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        implied = np.nanmedian(np.where(usable, centered_train / z_train, np.nan), axis=0)  # per feature
    if not np.all(np.isfinite(implied)) or not (
            _close(z_train, centered_train / implied) and _close(z_test, centered_test / implied)):
        return None  # not (x - mean) / something per feature
    for added, formula, where in ((implied - std, "std + c", N_("added to the standard deviation")),
                                  (implied**2 - std**2, "sqrt(var + c)", N_("added to the variance"))):
        c = float(np.median(added))
        if c > 0 and np.allclose(added, c, rtol=1e-3, atol=0) and c < 1e-2 * std.max():
            smallest = int(np.argmin(std))
            effect = (implied[smallest] / std[smallest] - 1)
            return _("You divide by {formula} with a small constant c ≈ {c:.1g} {where}: a guard "
                     "against dividing by zero. It changes the answer where a feature's spread is "
                     "small: here the z-scores of a feature with std {std:.3g} come out "
                     "{effect:.1e} (relative) too small, while the checker compares to a relative tolerance of "
                     "1e-7. This exercise asks for (x - mean) / std with the plain std: drop c. "
                     "(A guard does belong in BN's normalization, and notebook 02 shows where: inside "
                     "the square root, sqrt(var + eps), as part of the transform.)").format(
                formula=formula, c=c, where=_(where), std=std[smallest], effect=effect)
    return None


def check_standardize(fn) -> Feedback:
    """Check the reader's ``fn(x_train, x_test) -> (z_train, z_test)``."""
    feedback = Feedback(_("standardize (z-score with the training set's statistics)"))
    for case in _standardize_cases():
        description = _(case.description)
        x_train, x_test = case.x_train.copy(), case.x_test.copy()
        try:
            result = call_reader_function(fn, x_train, x_test)
        except NotAttempted:
            feedback.attempted = False
            return feedback
        except Exception as error:  # the reader sees what went wrong, not a traceback
            feedback.add(_("On {description}: your function raised {value}: {error}").format(description=description, value=type(error).__name__, error=error))
            return feedback
        if not np.array_equal(x_train, case.x_train) or not np.array_equal(x_test, case.x_test):
            feedback.add(_("Your function changed its input arrays in place (e.g. x_train -= mean). "
                         "Return new arrays and leave the inputs as they were: the caller may "
                         "still need the raw values."))
            return feedback
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            feedback.add(_("Return a pair: (z_train, z_test), e.g. `return z_train, z_test`."))
            return feedback
        z_train = _as_array(result[0], case.x_train.shape, "z_train", feedback)
        z_test = _as_array(result[1], case.x_test.shape, "z_test", feedback)
        if z_train is None or z_test is None:
            return feedback
        expected_train, expected_test = _reference_standardize(case.x_train, case.x_test)
        if _close(z_train, expected_train) and _close(z_test, expected_test):
            continue
        for mistake, explanation in _STANDARDIZE_MISTAKES:
            candidate_train, candidate_test = mistake(case.x_train, case.x_test)
            if _close(z_train, candidate_train) and _close(z_test, candidate_test):
                feedback.add(_(explanation))
                return feedback
        guard = _small_constant_in_the_denominator(case, z_train, z_test)
        if guard:
            feedback.add(_("On {description}: {guard}").format(description=description, guard=guard))
            return feedback
        if _close(z_train, expected_train):
            feedback.add(_("On {description}: z_train is right but z_test is not. "
                         "z_test = (x_test - mean_train) / std_train.").format(description=description))
        else:
            worst = float(np.max(np.abs(z_train - expected_train)))
            feedback.add(_("On {description}: z_train differs from the reference by up to "
                         "{worst:.3g}. Each training column should come out with mean 0 and "
                         "std 1; yours have means {value} and "
                         "stds {value2}.").format(description=description, worst=worst, value=np.round(z_train.mean(axis=0), 3), value2=np.round(z_train.std(axis=0), 3)))
        return feedback
    feedback.passed = True
    feedback.add(_("Training columns now have mean 0 and std 1 (ddof=0); the test set is on the "
                 "same scale without having influenced it."))
    return feedback


# ----------------------------------------------------------------------------------------
# Exercise 2: the largest stable learning rate
# ----------------------------------------------------------------------------------------


def _learning_rate_cases():
    rng = np.random.default_rng(315)
    cases = []
    # correlated features on different scales, not centered: the largest eigenvalue is neither
    # the largest diagonal entry nor the trace, and centering would change it
    mixing = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.3, 0.5, 0.8]])
    x = rng.normal(size=(50, 3)) @ mixing.T * [1.0, 3.0, 0.5] + [0.5, 1.0, -2.0]
    cases.append((N_("50 rows x 3 correlated, uncentered features"), x))
    x = rng.normal(size=(200, 2)) @ np.array([[1.0, 0.0], [0.9, 0.3]]).T * [2.0, 10.0] + [1.0, 4.0]
    cases.append((N_("200 rows x 2 features (scales 2 and 10, correlation 0.9)"), x))
    return cases


def _eig_max(matrix):
    return float(np.linalg.eigvalsh(matrix)[-1])


def _lr_mistakes(x):
    n = len(x)
    h = x.T @ x / n
    centered = x - x.mean(axis=0)
    return [
        (1.0 / _eig_max(h),
         _("You returned 1/λ_max. Gradient descent on a quadratic multiplies the error along the "
           "steepest direction by (1 - lr·λ_max) each step; it diverges once |1 - lr·λ_max| > 1, "
           "i.e. above lr = 2/λ_max. (1/λ_max is a safe choice, not the limit.)")),
        (2.0 / _eig_max(x.T @ x),
         _("You forgot the 1/n: the loss is ||x w - y||² / (2n), so its Hessian is x.T @ x / n, "
           "not x.T @ x.")),
        (1.0 / _eig_max(x.T @ x),
         _("You returned 1/λ_max of x.T @ x: the Hessian of ||x w - y||² / (2n) is x.T @ x / n, "
           "and the limit is 2/λ_max, not 1/λ_max.")),
        (2.0 / float(np.linalg.eigvalsh(h)[0]),
         _("You used the smallest eigenvalue. The steepest direction (the largest eigenvalue) is "
           "the first to blow up: the limit is 2/λ_max. (λ_min decides how slow convergence is.)")),
        (2.0 / float(np.max(np.diag(h))),
         _("You used the largest diagonal entry of the Hessian (the largest mean square of a "
           "feature). With correlated features the largest eigenvalue is bigger than any diagonal "
           "entry: use np.linalg.eigvalsh(H)[-1].")),
        (2.0 / float(np.trace(h)),
         _("You used the trace (the sum of all eigenvalues). It is an upper bound on λ_max, so "
           "2/trace is safe but too small: the limit is 2/λ_max.")),
        (2.0 / float(np.linalg.svd(x, compute_uv=False)[0]),
         _("You used the largest singular value of x. The Hessian's eigenvalues are the squared "
           "singular values divided by n: λ_max = s_max² / n.")),
        (2.0 / _eig_max(centered.T @ centered / n),
         _("You centered x (its covariance matrix). This loss has no intercept and x is used as "
           "given, so the Hessian is x.T @ x / n of the raw x; its mean matters.")),
        (2.0 / _eig_max(x @ x.T / n),
         _("You used x @ x.T / n (an n x n matrix). The Hessian is the d x d matrix x.T @ x / n.")),
    ]


def check_largest_stable_learning_rate(fn) -> Feedback:
    """Check the reader's ``fn(x) -> float``: 2 / lambda_max(x^T x / n)."""
    feedback = Feedback(_("largest stable learning rate"))
    for description, x in _learning_rate_cases():
        description = _(description)
        given = x.copy()
        try:
            answer = call_reader_function(fn, given)
        except NotAttempted:
            feedback.attempted = False
            return feedback
        except Exception as error:
            feedback.add(_("On {description}: your function raised {value}: {error}").format(description=description, value=type(error).__name__, error=error))
            return feedback
        try:
            answer = float(np.asarray(answer).item())
        except (TypeError, ValueError):
            feedback.add(_("Return one number (a float); you returned {value} "
                           "{shape}").format(value=type(answer).__name__,
                                             shape=np.shape(answer) if answer is not None else '').rstrip())
            return feedback
        expected = largest_stable_learning_rate(x.T @ x / len(x))
        if np.isclose(answer, expected, rtol=1e-6):
            continue
        for candidate, explanation in _lr_mistakes(x):
            if np.isclose(answer, candidate, rtol=1e-6):
                feedback.add(explanation)
                return feedback
        feedback.add(_("On {description}: you returned {answer:.6g}, but gradient descent there "
                     "{value}. The limit is 2/λ_max of the Hessian x.T @ x / n.").format(description=description, answer=answer, value=_what_happens(x, answer)))
        return feedback
    description, x = _learning_rate_cases()[0]
    description = _(description)
    problem = LeastSquares(x, x @ np.array([1.0, -2.0, 0.5]) + 1.0)
    limit = largest_stable_learning_rate(problem.hessian)
    below = gradient_descent(problem, np.zeros(3), 0.99 * limit, max_steps=20_000)
    above = gradient_descent(problem, np.zeros(3), 1.01 * limit, max_steps=20_000)
    feedback.passed = True
    feedback.add(_("Checked by running it on {description}: at 0.99 × your rate gradient descent "
                 "{value} "
                 "({steps:,} steps), at 1.01 × it "
                 "{value2}.").format(description=description, value=_('converges') if below.converged else _('does not diverge'), steps=below.steps, value2=_('diverges') if above.diverged else _('does not converge')))
    return feedback


def _what_happens(x, learning_rate) -> str:
    if not np.isfinite(learning_rate) or learning_rate <= 0:
        return _("cannot run with a learning rate that is not a positive number")
    limit = largest_stable_learning_rate(x.T @ x / len(x))
    if learning_rate > limit:
        return _("diverges (your rate is {ratio:.3g} times the limit)").format(ratio=learning_rate / limit)
    return _("is stable, but the limit is {ratio:.3g} times higher").format(ratio=limit / learning_rate)
