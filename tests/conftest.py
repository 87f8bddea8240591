"""Shared pytest configuration: float64 torch comparisons, seeded generators, quiet progress bars."""

import os

import numpy as np
import pytest

# Progress bars are for people; keep test output clean (also in executed notebooks' kernels).
os.environ.setdefault("BATCHNORM_COURSE_PROGRESS", "0")


@pytest.fixture
def rng():
    """A fresh, seeded numpy generator for each test."""
    return np.random.default_rng(20150211)  # the paper's arXiv submission date
