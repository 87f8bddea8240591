"""Pieces shared by the exercise checkers.

A checker calls the reader's function on hidden cases, compares with the reference, and
returns a ``Feedback``: passed or not, and specific messages ("your variance divides by
N - 1: ...") rather than just "incorrect". An exercise the reader has not tried yet (its
body still raises NotImplementedError) gives a friendly note, never an error, so the
notebook still runs to the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Feedback", "NotAttempted", "call_reader_function"]


class NotAttempted(Exception):
    """The reader's function still raises NotImplementedError."""


@dataclass
class Feedback:
    """The outcome of a check. Displays itself as a short report in a notebook."""

    exercise: str
    passed: bool = False
    attempted: bool = True
    messages: list = field(default_factory=list)

    def add(self, message: str) -> None:
        self.messages.append(message)

    def __str__(self) -> str:
        if not self.attempted:
            head = f"[not attempted] {self.exercise}: fill in the function above and run this cell again."
        elif self.passed:
            head = f"[correct] {self.exercise}: all hidden cases pass."
        else:
            head = f"[not yet] {self.exercise}:"
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
