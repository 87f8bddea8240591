"""Shared pytest configuration: float64 torch comparisons, seeded generators, quiet progress
bars, and a closing summary of how long each notebook (and each panel's redraw) took."""

import os
from collections import defaultdict

import numpy as np
import pytest

# Progress bars are for people; keep test output clean (also in executed notebooks' kernels).
os.environ.setdefault("BATCHNORM_COURSE_PROGRESS", "0")
# The recorded training runs (data/*_panel_runs.json, data/*.npz) are recomputed here and must
# come out the same, float for float. torch and its oneDNN convolutions pick their vector kernels
# by CPU (AVX-512 where the CPU has it, which rounds sums in another order): pin the AVX2 kernels
# the records were made with (tools/record_panel_runs.py pins them too). Before torch loads.
os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")


@pytest.fixture
def rng():
    """A fresh, seeded numpy generator for each test."""
    return np.random.default_rng(20150211)  # the paper's arXiv submission date


# --- timings: tests record them, the summary at the end prints the slowest ------------------

TIMING = "course timing"
#: How long a notebook may take on 2 cores (CONTRIBUTING.md); the summary flags slower ones.
NOTEBOOK_BUDGET_SECONDS = {"06": 60, "07": 60, "08": 60, "09": 60}
DEFAULT_NOTEBOOK_BUDGET_SECONDS = 30
_timings = defaultdict(list)  # layer -> [(name, seconds)], gathered from every test report


@pytest.fixture
def record_timing(request):
    """``record_timing(layer, name, seconds)``: show this timing in the closing summary.

    Stored on the test's report, so it also reaches the summary from pytest-xdist workers."""

    def record(layer: str, name: str, seconds: float) -> None:
        request.node.user_properties.append((TIMING, [layer, name, round(seconds, 2)]))

    return record


def pytest_runtest_logreport(report):
    if report.when != "call":
        return
    for key, value in report.user_properties:
        if key == TIMING:
            layer, name, seconds = value
            _timings[layer].append((name, seconds))


def budget_note(layer: str, name: str, seconds: float) -> str:
    if layer != "notebook run":
        return ""
    budget = NOTEBOOK_BUDGET_SECONDS.get(name[:2], DEFAULT_NOTEBOOK_BUDGET_SECONDS)
    return f"  (over its {budget} s budget)" if seconds > budget else ""


def pytest_terminal_summary(terminalreporter):
    if not _timings:
        return
    terminalreporter.section("course timings (slowest first; inflated on a busy machine)")
    for layer in sorted(_timings):
        entries = sorted(_timings[layer], key=lambda entry: -entry[1])
        total = sum(seconds for _, seconds in entries)
        terminalreporter.write_line(f"{layer}: {len(entries)} timed, {total:.1f} s in all")
        for name, seconds in entries[:10]:
            note = budget_note(layer, name, seconds)
            terminalreporter.write_line(f"  {seconds:7.2f} s  {name}{note}")
