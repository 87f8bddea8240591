"""Notebook 09's panel: every setting computes (one example per process gives a Notice unless
synchronized), and the numbers show what the notebook says: the gap grows as the per-process
batch shrinks, barely shrinks with one domain per process, and is 0 when synchronized."""

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from helpers.lessons.bn_across_processes import predicted_gap  # noqa: E402
from helpers.panel import Notice  # noqa: E402
from helpers.panels.bn_across_processes import (  # noqa: E402
    PANELS,
    SHARDINGS,
    compute_process_split,
    draw_process_split,
)


def test_every_control_combination_computes_without_raising():
    for values in PANELS[0].test_grid():
        assert isinstance(PANELS[0].compute(**values), (dict, Notice)), values


def test_one_example_per_process_needs_synchronization():
    notice = compute_process_split(per_process=1)
    assert isinstance(notice, Notice) and "Expected more than 1 value per channel" in notice.text
    assert "synchronized" in notice.text
    result = compute_process_split(per_process=1, synchronized=True)
    assert isinstance(result, dict) and result["gap"] == 0
    assert isinstance(compute_process_split(processes=1, per_process=1, synchronized=True), Notice)


def test_the_whole_batch_is_the_union_of_the_shards():
    result = compute_process_split(processes=5, per_process=6)
    assert len(result["whole_hat"]) == len(result["own_hat"]) == 30
    np.testing.assert_allclose(result["whole_hat"].mean(), 0, atol=1e-12)
    np.testing.assert_allclose(result["whole_hat"].std(), 1, atol=1e-4)
    assert list(result["rank"]) == sorted(result["rank"]) and result["rank"][-1] == 4


def test_the_shuffled_gap_follows_section_one_and_one_domain_per_process_does_not_shrink():
    shuffled = compute_process_split(processes=8, sharding=SHARDINGS[0])["curve"]
    assert all(a > b for a, b in zip(shuffled, shuffled[1:]))
    # within a few tens of percent of the first-order formula (pooled domains are not Gaussian)
    sizes = np.array([4, 8, 16, 32, 64])
    np.testing.assert_allclose(shuffled[1:], predicted_gap(sizes, 8 * sizes), rtol=0.35)
    grouped = compute_process_split(processes=8, sharding=SHARDINGS[1])["curve"]
    assert grouped[-1] > 0.5 and grouped[-1] > 0.6 * grouped[1]  # 64 per process: still far off
    assert grouped[-1] > 3 * shuffled[-1]


def test_synchronized_processes_agree_with_the_whole_batch_everywhere():
    for processes, per_process, sharding in [(2, 2, SHARDINGS[0]), (16, 64, SHARDINGS[1]), (7, 3, SHARDINGS[1])]:
        result = compute_process_split(processes, per_process, sharding, synchronized=True)
        np.testing.assert_array_equal(result["own_hat"], result["whole_hat"])
        assert result["gap"] == 0 and not result["curve"].any()


@pytest.mark.parametrize("values", [{}, {"processes": 1}, {"processes": 16, "per_process": 64},
                                    {"sharding": SHARDINGS[1], "synchronized": True}])
def test_draw_returns_a_figure(values):
    figure = PANELS[0].render(**values)
    assert isinstance(figure, matplotlib.figure.Figure)
    plt.close(figure)


def test_the_headline_says_what_is_shown():
    figure = draw_process_split(compute_process_split(processes=3, per_process=5, synchronized=True))
    headline = figure._panel_artists["headline"].get_text()
    assert "3 processes x 5 examples = 15" in headline and "synchronized" in headline
    plt.close(figure)
