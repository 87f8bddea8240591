"""Notebook 05's computations (helpers.lessons.convolutional_bn)."""

import pytest

from helpers.lessons.convolutional_bn import parameter_counts


def test_parameter_counts_per_channel_and_per_activation():
    assert parameter_counts(64, 32, 32) == {"per_channel": 128, "per_activation": 131_072}


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_parameter_counts_reject_sizes_that_are_not_positive_integers(bad):
    with pytest.raises(ValueError, match="channels must be a positive integer"):
        parameter_counts(bad, 32, 32)
