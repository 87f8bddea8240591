"""Notebook 00's warm-up quiz checker (helpers.exercises.course_map)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from helpers.exercises.course_map import WARM_UP, check_warm_up  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COURSE_MAP = ROOT / "notebooks" / "00_course_map.ipynb"

#: What issue 4 asks the glossary to contain at least: English -> Chinese.
REQUIRED = {
    "batch normalization": "批归一化",
    "internal covariate shift": "内部协变量偏移",
    "mini-batch": "小批量",
    "moving average / exponential moving average": "滑动平均 / 指数滑动平均",
    "normalization": "归一化",
    "standardization (z-score)": "标准化",
    "whitening": "白化",
    "mean": "均值",
    "variance": "方差",
    "biased / unbiased estimate": "有偏 / 无偏估计",
    "scale and shift parameters (gamma, beta)": "缩放和平移参数",
    "saturation": "饱和",
    "gradient": "梯度",
    "backpropagation": "反向传播",
    "computational graph": "计算图",
    "inference": "推理",
    "running statistics": "运行统计量",
    "channel": "通道",
    "feature map": "特征图",
    "learning rate": "学习率",
    "convergence": "收敛",
    "regularization": "正则化",
    "layer / group / instance normalization": "层 / 组 / 实例归一化",
    "condition number": "条件数",
    "epsilon ε": "ε",
}


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
