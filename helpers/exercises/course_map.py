"""Notebook 00's warm-up quiz: what the course expects you to know already, checked.

``check_warm_up(answers)`` takes a dict {question: your answer} (None for "not answered yet")
and returns a ``Feedback`` that names each wrong answer's likely slip (dividing by n - 1,
forgetting the chain rule's inner derivative, ...) and, for each topic, the notebook that
uses it. ``WARM_UP`` holds the questions; ``questions()`` gives them in the current language.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from helpers.course import NOTEBOOK_SLUGS
from helpers.feedback import Feedback
from helpers.i18n import N_, _

__all__ = ["WARM_UP", "QuizFeedback", "check_warm_up", "questions"]

#: the question about the notebooks, whose range follows the course (translated with the range filled in)
_NOTEBOOK_QUESTION = N_("Which notebook (a number, 0-{last}) explains the running statistics BN "
                        "uses at inference?")

#: question key -> (question, correct answer, {wrong answer: what it suggests}, used in notebook)
WARM_UP = {
    "mean": (
        N_("The mean of [2, 4, 4, 4, 5, 5, 7, 9]?"),
        5.0,
        {4.5: N_("4.5 is the median of this list, the middle value; the mean is the sum divided by "
                 "the count, 40 / 8."),
         4.0: N_("4 is the most frequent value (the mode); the mean is 40 / 8.")},
        "02",
    ),
    "variance": (
        N_("The variance of the same list, dividing by the number of values (as BN does)?"),
        4.0,
        {32 / 7: N_("32/7 ≈ 4.571 divides by n - 1 = 7 (the unbiased estimate). BN normalizes with "
                    "the biased variance, dividing by n = 8: 32 / 8 = 4."),
         2.0: N_("2 is the standard deviation; the variance is its square, 4."),
         5.0: N_("5 is the mean; the variance is the mean of the squared deviations from it.")},
        "02 and 04",
    ),
    "shape": (
        N_("x has shape (32, 784) and W has shape (784, 100). The shape of x @ W, as a tuple?"),
        (32, 100),
        {(100, 32): N_("(100, 32) is the transpose; (32, 784) @ (784, 100) keeps the outer "
                       "dimensions in order: (32, 100)."),
         (784, 784): N_("the inner dimensions (784) cancel in a matrix product; the outer ones "
                        "remain: (32, 100).")},
        "02 and 06",
    ),
    "sigmoid_slope": (
        N_("The derivative of the sigmoid σ(x) = 1 / (1 + e^(-x)) at x = 0?"),
        0.25,
        {0.5: N_("0.5 is σ(0) itself. The slope is σ(x)·(1 - σ(x)) = 0.5 · 0.5 = 0.25."),
         1.0: N_("the sigmoid is flatter than that: its slope is σ(x)·(1 - σ(x)), at most 0.25.")},
        "02 and 06",
    ),
    "chain_rule": (
        N_("d/dx of (3x + 1)² at x = 1?"),
        24.0,
        {8.0: N_("8 = 2·(3x + 1) forgets the inner derivative: by the chain rule multiply by "
                 "d(3x + 1)/dx = 3, giving 24."),
         16.0: N_("16 is the function's value, (3 + 1)²; its derivative is 2·(3x + 1)·3 = 24."),
         6.0: N_("6 = 2·3 forgets the outer factor (3x + 1) = 4: the derivative is 2·(3x + 1)·3 = 24.")},
        "03",
    ),
    "gd_step": (
        N_("One gradient-descent step on L(w) = w² from w = 3 with learning rate 0.1: the new w?"),
        2.4,
        {2.7: N_("2.7 used the gradient w instead of 2w: L'(w) = 2w = 6, so w = 3 - 0.1·6 = 2.4."),
         3.6: N_("3.6 stepped uphill: gradient descent subtracts, w - lr·L'(w) = 3 - 0.6 = 2.4."),
         -3.0: N_("that is a whole different step size: w - lr·L'(w) = 3 - 0.1·6 = 2.4.")},
        "01",
    ),
    "notebook": (
        _NOTEBOOK_QUESTION.format(last=len(NOTEBOOK_SLUGS) - 1),
        4,
        {2: N_("02 builds the training-time forward pass (batch statistics); the running statistics "
               "used at inference are notebook 04's subject."),
         6: N_("06 trains a real network with BN; why and how the statistics switch at inference "
               "is notebook 04.")},
        "00",
    ),
}


@dataclass
class QuizFeedback(Feedback):
    """Feedback whose "not attempted" note speaks of answers, not of a function."""

    when_correct: str = N_("every answer is right")

    def __str__(self) -> str:
        if not self.attempted:
            return _("[not attempted] {exercise}: replace the None values in `answers` "
                     "and run this cell again.").format(exercise=_(self.exercise))
        return super().__str__()

    __repr__ = __str__


def _same(answer, expected) -> bool:
    if isinstance(expected, tuple):
        try:
            return tuple(int(v) for v in answer) == expected
        except (TypeError, ValueError):
            return False
    try:
        return math.isclose(float(answer), float(expected), rel_tol=1e-3, abs_tol=1e-9)
    except (TypeError, ValueError):
        return False


def _question(key: str, question: str) -> str:
    """``question`` in the current language."""
    if key == "notebook":
        return _(_NOTEBOOK_QUESTION).format(last=len(NOTEBOOK_SLUGS) - 1)
    return _(question)


def questions() -> dict[str, str]:
    """{question key: the question, in the current language}, in the quiz's order."""
    return {key: _question(key, question) for key, (question, *rest) in WARM_UP.items()}


def check_warm_up(answers: dict) -> Feedback:
    """Check a dict {question key: answer}; None (or a missing key) means not answered yet."""
    feedback = QuizFeedback(N_("warm-up quiz"))
    unknown = sorted(set(answers) - set(WARM_UP))
    if unknown:
        feedback.add(_("Unknown question key(s) {unknown}; the keys are {value}.").format(unknown=unknown, value=list(WARM_UP)))
    given = {key: answers.get(key) for key in WARM_UP}
    if all(value is None for value in given.values()):
        feedback.attempted = False
        return feedback
    right = 0
    for key, (question, expected, slips, notebook) in WARM_UP.items():
        answer = given[key]
        question = _question(key, question)
        if answer is None:
            feedback.add(_("{key}: not answered yet. ({question})").format(key=key, question=question))
        elif _same(answer, expected):
            right += 1
        else:
            slip = next((text for wrong, text in slips.items() if _same(answer, wrong)), None)
            used = (_("[used in notebooks {notebook}]") if " and " in notebook
                    else _("[used in notebook {notebook}]")).format(notebook=notebook.replace(" and ", _(" and ")))
            feedback.add(_("{key}: {answer!r} is not it: {slip}").format(
                key=key, answer=answer, slip=_(slip) if slip else _("have another look ({question}).").format(
                    question=question)) + " " + used)
    feedback.passed = right == len(WARM_UP) and not unknown
    feedback.messages.insert(0, _("{right} of {total} right.").format(right=right, total=len(WARM_UP)))
    return feedback
