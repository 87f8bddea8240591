"""Pieces shared by the exercise checkers.

A checker calls the reader's function on hidden cases, compares with the reference, and
returns a ``Feedback``: passed or not, and specific messages ("your variance divides by
N - 1: ...") rather than just "incorrect". An exercise the reader has not tried yet (its
body still raises NotImplementedError) gives a friendly note, never an error, so the
notebook still runs to the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from helpers.i18n import N_, _

__all__ = ["LOW_PRECISION", "Feedback", "NotAttempted", "call_reader_function", "low_precision_message",
           "precision_of"]


class NotAttempted(Exception):
    """The reader's function still raises NotImplementedError."""


@dataclass
class Feedback:
    """The outcome of a check. Displays itself as a short report in a notebook."""

    exercise: str
    passed: bool = False
    attempted: bool = True
    messages: list = field(default_factory=list)
    #: what the reader fills in ("the answers" for a question) and what passing means
    to_fill: str = N_("the function")
    when_correct: str = N_("all hidden cases pass")

    def add(self, message: str) -> None:
        self.messages.append(message)

    def __str__(self) -> str:
        if not self.attempted:
            head = _("[not attempted] {exercise}: fill in {to_fill} above and run this cell again.").format(
                exercise=_(self.exercise), to_fill=_(self.to_fill))
        elif self.passed:
            head = _("[correct] {exercise}: {when_correct}.").format(exercise=_(self.exercise),
                                                                     when_correct=_(self.when_correct))
        else:
            head = _("[not yet] {exercise}:").format(exercise=_(self.exercise))
        return "\n".join([head, *(f"  - {message}" for message in self.messages)])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        color = "#2e7d32" if self.passed else ("#777" if not self.attempted else "#c62828")
        items = "".join(f"<li>{message}</li>" for message in self.messages)
        head = str(self).split("\n")[0]
        return f'<div style="border-left:4px solid {color};padding:0.4em 1em"><b>{head}</b><ul>{items}</ul></div>'


def call_reader_function(function, *args, **kwargs):
    """Call the reader's function; NotImplementedError becomes NotAttempted, so a checker can
    answer "not attempted" instead of failing."""
    try:
        return function(*args, **kwargs)
    except NotImplementedError as error:
        raise NotAttempted(str(error)) from error


#: Floating-point types of lower precision than float64, and their machine epsilon.
LOW_PRECISION = {"float32": 2.0**-23, "float16": 2.0**-10, "bfloat16": 2.0**-7}


def precision_of(value) -> str | None:
    """"float32", "float16" or "bfloat16" if ``value`` (a numpy array or scalar, a torch tensor,
    or a tuple or list of them) holds floats of lower precision than float64; otherwise None."""
    if isinstance(value, (tuple, list)):
        return next((p for p in map(precision_of, value) if p), None)
    name = str(getattr(value, "dtype", "")).replace("torch.", "")
    return name if name in LOW_PRECISION else None


def low_precision_message(precision: str | None, error: float, tolerance: float) -> str | None:
    """What to tell a reader whose answer is off by ``error`` (relative) where the checker
    allows ``tolerance``, when the answer looks like a lower-precision computation: returned
    in ``precision`` (from ``precision_of``), or in float64 but off by about what float32
    rounding gives (then probably computed in float32 somewhere inside). None otherwise."""
    if precision is not None and error > 1e3 * LOW_PRECISION[precision]:
        digits = round(-np.log10(LOW_PRECISION[precision]))
        return _("Your function computes in {precision}, which keeps only about {digits} significant "
                 "digits: on this case the answer depends on digits beyond them, and yours is off by "
                 "{error:.1e} (relative; the checker allows {tolerance:.0e}, in float64). Compute in "
                 "float64 (numpy's default; torch.float64, e.g. torch.from_numpy(x), rather than "
                 "torch.tensor(x, dtype=torch.float32)) and run the check again.").format(
                     precision=precision, digits=digits, error=error, tolerance=tolerance)
    if precision is not None:
        return _("Your function computes in {precision}: it agrees with the reference to {error:.1e} "
                 "(relative), about what {precision} can hold (machine epsilon "
                 "{epsilon:.1e}), but the checker compares in float64, to a "
                 "relative {tolerance:.0e}. Your formula may well be right: compute in float64 "
                 "(numpy's default; torch.float64, e.g. torch.from_numpy(x), rather than "
                 "torch.tensor(x, dtype=torch.float32)) and run the check again.").format(
                     precision=precision, error=error, epsilon=LOW_PRECISION[precision], tolerance=tolerance)
    if tolerance < error < 1e3 * LOW_PRECISION["float32"]:
        return _("Your result agrees with the reference to {error:.1e} (relative): not to the "
                 "checker's float64 tolerance, {tolerance:.0e}, but about as well as a float32 "
                 "computation would. Is part of your code in float32 (np.float32, torch's default "
                 "dtype)? Compute in float64 throughout.").format(error=error, tolerance=tolerance)
    return None
