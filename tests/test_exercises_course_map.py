"""Notebook 00's warm-up quiz checker (helpers.exercises.course_map)."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from helpers.exercises.course_map import WARM_UP, check_warm_up  # noqa: E402

# --- the warm-up quiz ---------------------------------------------------------------------

CORRECT = {key: answer for key, (_, answer, _, _) in WARM_UP.items()}


def test_quiz_accepts_the_right_answers():
    feedback = check_warm_up(CORRECT)
    assert feedback.passed and "7 of 7 right" in str(feedback)


def test_quiz_not_attempted_until_an_answer_is_given():
    feedback = check_warm_up({key: None for key in WARM_UP})
    assert not feedback.attempted and "replace the None values" in str(feedback)


@pytest.mark.parametrize("key, wrong, phrase", [
    ("variance", 32 / 7, "n - 1"),
    ("variance", 4.571, "n - 1"),
    ("mean", 4.5, "median"),
    ("shape", (100, 32), "transpose"),
    ("sigmoid_slope", 0.5, "σ(0) itself"),
    ("chain_rule", 8, "inner derivative"),
    ("gd_step", 2.7, "2w"),
    ("notebook", 2, "04"),
    ("mean", 17, "have another look"),
])
def test_quiz_names_the_slip(key, wrong, phrase):
    feedback = check_warm_up({**CORRECT, key: wrong})
    assert not feedback.passed and phrase in str(feedback)
    assert "6 of 7 right" in str(feedback)


def test_quiz_counts_unanswered_questions_and_unknown_keys():
    feedback = check_warm_up({"mean": 5, "varience": 4})
    assert not feedback.passed
    assert "Unknown question key(s) ['varience']" in str(feedback)
    assert "variance: not answered yet" in str(feedback)


def test_the_notebook_question_gives_the_course_range():
    """The range in the question follows helpers.course.NOTEBOOK_SLUGS (00-09 today), so that
    adding a notebook cannot leave it stale; the answer is the inference-statistics notebook."""
    from helpers.course import NOTEBOOK_SLUGS, notebook_number

    question, answer, _, _ = WARM_UP["notebook"]
    assert f"(a number, 0-{len(NOTEBOOK_SLUGS) - 1})" in question
    assert "0-9" in question  # ten notebooks, 00-09
    assert answer == notebook_number("inference_statistics")
