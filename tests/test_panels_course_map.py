"""Notebook 00: the glossary (terms, Chinese names, the table in the notebook), the map of
notebooks, the run instructions, and the glossary explorer (helpers.panels.course_map)."""

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from helpers.panels.course_map import (  # noqa: E402
    FIGSIZE,
    GLOSSARY,
    NOTEBOOKS,
    PANELS,
    TERMS,
    compute_glossary_entry,
    glossary_card_html,
)
from tools import notebooks as course_notebooks  # noqa: E402

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
    "running statistics": "滑动均值",
    "channel": "通道",
    "feature map": "特征图",
    "learning rate": "学习率",
    "convergence": "收敛",
    "regularization": "正则化",
    "layer / group / instance normalization": "层 / 组 / 实例归一化",
    "condition number": "条件数",
    "epsilon ε": "ε",
    # issue 14: the terms notebooks 02 and 03 use, and the standard names
    "vanishing / exploding gradient": "梯度消失 / 梯度爆炸",
    "scale invariance": "尺度不变性",
    "centered difference": "中心差分",
    "identity transform": "恒等变换",
}

#: synonyms and mistranslations the glossary must name: English -> words its entry contains
NAMED = {
    "batch normalization": ("批量归一化", "批标准化", "批量规范化"),
    "covariate shift": ("协方差偏移",),        # the seed notes' mistranslation, flagged
    "normalization": ("正则化",),              # ... and the confusion with regularization
    "regularization": ("归一化",),
    "running statistics": ("滑动平均统计量", "运行统计量"),
    "activation": ("预激活值",),
}


def markdown_of(path: Path) -> str:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return "\n".join(course_notebooks.source_text(cell) for cell in notebook["cells"]
                     if cell["cell_type"] == "markdown")


def test_glossary_has_every_required_term_with_its_chinese_name():
    by_english = {term.english: term for term in GLOSSARY}
    for english, chinese in REQUIRED.items():
        assert english in by_english, english
        assert chinese in by_english[english].chinese, (english, by_english[english].chinese)
    assert len(TERMS) == len(set(TERMS))
    for term in GLOSSARY:
        assert term.meaning and term.notebooks and set(term.notebooks) <= set(NOTEBOOKS)
        # notebook 00 prints the glossary as a markdown table: a "|" would split a cell
        assert "|" not in term.english + term.chinese + term.meaning, term.english


def test_synonyms_and_mistranslations_are_named():
    by_english = {term.english: term for term in GLOSSARY}
    for english, words in NAMED.items():
        text = by_english[english].chinese + by_english[english].meaning
        for word in words:
            assert word in text, (english, word)


def test_the_glossary_agrees_with_the_notebooks_numbers():
    """Saturation as notebook 02 defines it (slope below 0.01), the condition number's step count
    as notebook 01 computes it."""
    from helpers.lessons.forward_transform import sigmoid, sigmoid_regime
    from helpers.lessons.input_normalization import TOL, steps_estimate
    from helpers.panels.course_map import SATURATION_SLOPE, saturation_threshold

    by_english = {term.english: term for term in GLOSSARY}
    edge = saturation_threshold()
    s = sigmoid(edge)
    assert s * (1 - s) == pytest.approx(SATURATION_SLOPE, rel=1e-9)
    assert sigmoid_regime(np.array([edge - 1e-6, edge + 1e-6]))["saturated_fraction"] == 0.5
    assert f"{edge:.1f}" in by_english["saturation"].meaning and str(SATURATION_SLOPE) in by_english["saturation"].meaning
    assert "κ/2 · ln(1/tol)" in by_english["condition number"].meaning
    for kappa in (100.0, 1e4):
        assert steps_estimate(kappa) == pytest.approx(kappa / 2 * np.log(1 / TOL), rel=0.01)


def test_internal_covariate_shift_is_drawn_from_a_real_recorded_run():
    from helpers.panels.course_map import ICS_STEPS, tiny_network_run

    run = tiny_network_run()
    assert run is tiny_network_run()  # computed once: the explorer redraws at once
    assert run["accuracy"] > 0.85      # the network really learned
    first, last = run[ICS_STEPS[0]], run[ICS_STEPS[-1]]
    assert abs(last.mean() - first.mean()) > 2 * first.std() and last.std() > 1.5 * first.std()
    entry = compute_glossary_entry("internal covariate shift")
    labels = [item[-1]["label"] for item in entry["panels"][0]["items"]]
    assert labels == [f"after {step} steps" for step in ICS_STEPS]
    np.testing.assert_array_equal(entry["panels"][0]["items"][-1][1], last)


def test_the_notebook_prints_the_same_glossary_as_the_explorer():
    text = markdown_of(COURSE_MAP)
    rows = [line for line in text.splitlines() if line.startswith("| ") and " | " in line]
    for term in GLOSSARY:
        assert any(row.startswith(f"| {term.english} | {term.chinese} | {term.meaning} |")
                   for row in rows), term.english


def test_the_course_map_links_every_notebook_with_its_title():
    text = markdown_of(COURSE_MAP)
    for number, (filename, title) in NOTEBOOKS.items():
        assert f"| {number:02d} | [{title}]({filename}) |" in text, filename


def test_notebooks_that_exist_have_the_file_names_and_titles_the_map_gives():
    by_file = {filename: f"{number:02d} · {title}" for number, (filename, title) in NOTEBOOKS.items()}
    for path in course_notebooks.notebook_paths():
        assert path.name in by_file, f"{path.name} is not on the course map"
        title = course_notebooks.title_of(json.loads(path.read_text(encoding="utf-8")))
        assert title == by_file[path.name], (path.name, title)


def test_the_course_map_gives_the_readme_commands_and_the_binder_link():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = [block.strip() for block in re.findall(r"```bash\n(.*?)```", readme, re.S)]
    text = markdown_of(COURSE_MAP)
    for command in commands:
        assert command in text
    settings = course_notebooks.settings()
    assert (f"https://mybinder.org/v2/gh/{settings['github_repository']}/{settings['github_branch']}"
            in text)
    assert "environment.yml" in text and "--no-deps" in text


@pytest.fixture(params=["en", "zh"])
def language(request):
    """The language the card is drawn in (the Chinese edition draws the same cards in Chinese)."""
    from helpers import i18n

    i18n.set_language(request.param)
    yield request.param
    i18n.set_language("en")


@pytest.mark.parametrize("term", TERMS)
def test_every_glossary_entry_draws_inside_the_same_figure_size(term, language):
    from tools.translate import boxes_drawn

    result = compute_glossary_entry(term)
    figure = PANELS[0].draw(result)
    assert isinstance(figure, Figure)
    with boxes_drawn() as boxes:
        figure.canvas.draw()
    assert not boxes, (term, language, boxes[:3])
    # the widget keeps one figure for every term and renders the area measured for the first:
    # nothing may stick out of it
    assert tuple(figure.get_size_inches()) == FIGSIZE
    drawn, inside = figure.get_tightbbox(), figure.bbox_inches
    assert inside.x0 <= drawn.x0 and drawn.x1 <= inside.x1, (term, drawn)
    assert inside.y0 <= drawn.y0 and drawn.y1 <= inside.y1, (term, drawn)
    plt.close(figure)
    card = glossary_card_html(term)
    entry = GLOSSARY[TERMS.index(term)]
    assert entry.chinese.split(" ")[0] in card and NOTEBOOKS[entry.notebooks[0]][0] in card


def test_a_kept_figure_shows_any_term_as_a_fresh_figure_does():
    """The widget draws every term into one figure (update_glossary_entry): nothing of the
    previous term may remain, whatever it was."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    def pixels(figure):
        canvas = FigureCanvasAgg(figure)
        canvas.draw()
        return bytes(canvas.buffer_rgba())

    panel = PANELS[0]
    kept = panel.draw(compute_glossary_entry(TERMS[0]))
    for term in [*TERMS[1:], TERMS[0]]:
        result = compute_glossary_entry(term)
        panel.update(kept, result)
        fresh = panel.draw(result)
        assert pixels(kept) == pixels(fresh), term
        plt.close(fresh)
    plt.close(kept)


def test_glossary_widget_shows_the_card_and_updates_it():
    box = PANELS[0].widget()
    assert "批归一化" in box.card.value
    box.controls["term"].value = "whitening"
    assert "白化" in box.card.value
    plt.close("all")
