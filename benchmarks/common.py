"""Timing helpers and the record every benchmark produces."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class Result:
    """One measured figure. ``goal`` is a readable target such as "<= 2"; ``met`` says whether
    the value reaches it (None when there is no goal)."""

    name: str
    value: float
    unit: str
    goal: str = ""
    met: bool | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def at_most(name: str, value: float, unit: str, limit: float) -> Result:
    return Result(name, value, unit, goal=f"<= {limit:g}", met=bool(value <= limit))


def at_least(name: str, value: float, unit: str, limit: float) -> Result:
    return Result(name, value, unit, goal=f">= {limit:g}", met=bool(value >= limit))


def median_seconds(function, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``function()`` over ``repeats`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def interleaved_medians(functions: dict, repeats: int, warmup: int = 1) -> dict:
    """Median seconds of several functions timed in turn (a, b, a, b, ...), so that a change in
    machine load affects all of them alike and their ratios stay meaningful."""
    for function in functions.values():
        for _ in range(warmup):
            function()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) for name, values in times.items()}
