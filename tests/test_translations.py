"""The Chinese edition (notebooks/zh/) is complete, up to date, and the English course in Chinese.

- every catalog (locales/zh/NN_slug.po, helpers/locale/zh/LC_MESSAGES/helpers.po) has no
  missing, fuzzy, obsolete or invalid entry, and uses the glossary's Chinese for its terms;
- the built files (notebooks/zh/*.ipynb, helpers.mo, the font subset) are what
  ``python -m tools.translate build`` makes now;
- a Chinese notebook's code is its English twin's, token by token, but for comments and the
  translated string literals, whose {...} fields are unchanged;
- English stays the default and unchanged; Chinese figures have every glyph they draw;
- every Chinese notebook runs like its English twin, printing the same numbers.

Fix a failure with ``python -m tools.translate merge`` (new English text), filling the
catalog's msgstr (see locales/README.md), then ``python -m tools.translate build``.
"""

import io
import json
import re
import tokenize
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from helpers import i18n  # noqa: E402
from tools import notebooks as nbtool  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
from tools import translate  # noqa: E402

ENGLISH = nbtool.notebook_paths()
CATALOGS = translate.catalog_sources()


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# --- catalogs and built files ------------------------------------------------------------------


@pytest.mark.parametrize("catalog", list(CATALOGS), ids=lambda path: path.stem)
def test_catalog_is_complete_and_uses_the_glossary(catalog):
    report = translate.catalog_report(catalog, CATALOGS[catalog], translate.glossary_terms())
    counts = {kind: len(report[kind]) for kind in ("missing", "fuzzy", "obsolete", "invalid", "terms")}
    details = [f"{kind}: {item if kind in ('invalid', 'terms') else translate.short(item)}"
               for kind in ("invalid", "terms", "fuzzy", "obsolete", "missing") for item in report[kind][:10]]
    assert not any(counts.values()), (
        f"{translate.display(catalog)} of {report['entries']} entries: "
        + ", ".join(f"{v} {k}" for k, v in counts.items()) + "\n" + "\n".join(details)
        + f"\n(python -m tools.translate check {catalog.stem})")


def test_built_files_are_what_the_build_makes_now():
    stale = translate.stale_outputs()
    assert not stale, "\n".join(stale)


def test_the_committed_mo_is_the_compiled_catalog_and_gettext_reads_it():
    import gettext

    assert translate.HELPERS_MO.read_bytes() == translate.mo_bytes()
    with translate.HELPERS_MO.open("rb") as f:
        catalog = gettext.GNUTranslations(f)
    for english, chinese in translate.helper_translations().items():
        assert catalog.gettext(english) == chinese


def test_a_message_shared_by_two_helpers_catalogs_has_one_translation():
    seen, conflicts = {}, []
    for path in translate.helper_catalogs():
        for english, chinese in translate.translations(path).items():
            if seen.setdefault(english, (path.name, chinese))[1] != chinese:
                conflicts.append(f"{english!r}: {seen[english][0]} and {path.name} differ")
    assert not conflicts, "\n".join(conflicts)


def test_the_font_has_every_character_the_catalogs_use():
    missing = translate.missing_glyphs()
    assert not missing, f"{translate.FONT.name} lacks {''.join(missing)}: run python -m tools.translate build"


# --- the machinery, on made-up translations ----------------------------------------------------


def fake_table(entries) -> dict:
    """A made-up translation of every entry: Chinese around the English, fields kept."""
    table = {}
    for entry in entries:
        text = entry.msgid
        if entry.kind == "comment":
            table[text] = "中文注释：" + text.replace("\n", "\n续：")
        elif entry.kind == "string":
            # (a string with $...$ is drawn as mathtext, which has no Chinese: its made-up
            # translation marks it with Latin letters)
            table[text] = ("ZH: " if text.count("$") >= 2 else "中文：") + text
        else:
            table[text] = "中文段落：" + text
    return table


def literals_and_code(source: str):
    """The tokens of ``source`` without comments and blank lines, string literals merged."""
    text = translate.masked(source)
    literal_starts = {start: literal for start, _, literal in translate.string_tokens(text)}
    out, skip_until = [], None
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if skip_until and token.start < skip_until:
            continue
        skip_until = None
        if token.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                          tokenize.DEDENT, tokenize.ENDMARKER):
            continue
        if token.start in literal_starts:
            end = next(e for s, e, _ in translate.string_tokens(text) if s == token.start)
            out.append(("literal", literal_starts[token.start]))
            skip_until = end
            continue
        out.append((tokenize.tok_name[token.type], token.string))
    return out


def code_differences(english: str, chinese: str, table: dict) -> list[str]:
    """Where ``chinese`` is not ``english`` up to comments and translated string literals."""
    a, b = literals_and_code(english), literals_and_code(chinese)
    if len(a) != len(b):
        return [f"{len(a)} tokens in English, {len(b)} in Chinese"]
    problems = []
    for (kind_a, text_a), (kind_b, text_b) in zip(a, b):
        if (kind_a, text_a) == (kind_b, text_b):
            continue
        if kind_a == kind_b == "literal":
            opening_a, body_a, quote_a = translate.split_literal(text_a)
            opening_b, body_b, quote_b = translate.split_literal(text_b)
            if (opening_a, quote_a) != (opening_b, quote_b):
                problems.append(f"{text_a!r} became {text_b!r}: another kind of literal")
            elif table.get(body_a) != body_b:
                problems.append(f"{text_a!r} became {text_b!r}, which is not its catalog translation")
            elif "f" in opening_a.lower() and translate.fields(body_a) != translate.fields(body_b):
                problems.append(f"{text_a!r}: the fields changed in {text_b!r}")
            continue
        problems.append(f"{text_a!r} became {text_b!r}")
    return problems


def chinese_twin(path: Path, table: dict) -> dict:
    return translate.built_notebook(path, table, None, None)


@pytest.mark.parametrize("path", ENGLISH, ids=lambda path: path.name)
def test_every_unit_is_replaced_and_the_code_is_unchanged_token_by_token(path):
    entries = translate.notebook_entries(path)
    table = fake_table(entries)
    english = translate.authored_cells(read(path))
    chinese = translate.authored_cells(chinese_twin(path, table))
    assert [c["id"] for c in english] == [c["id"] for c in chinese]
    for cell_en, cell_zh in zip(english, chinese):
        en, zh = nbtool.source_text(cell_en), nbtool.source_text(cell_zh)
        if cell_en["cell_type"] != "code":
            continue
        compile(translate.masked(zh), f"{path.name}#{cell_en['id']}", "exec")
        problems = code_differences(en, zh, table)
        assert not problems, f"{path.name} cell {cell_en['id']}:\n" + "\n".join(problems)
        for unit in translate.code_units(en):
            if unit.kind == "string":
                assert unit.prefix + table[unit.text] + unit.suffix in zh
    # nothing is left in English: every unit found its (made-up) translation
    built = "\n".join(nbtool.source_text(c) for c in chinese)
    for entry in entries:
        assert table[entry.msgid] in built or entry.kind == "comment", entry.msgid[:80]


@pytest.mark.parametrize("path", ENGLISH, ids=lambda path: path.name)
def test_untranslated_entries_keep_the_english_text(path):
    english = translate.authored_cells(read(path))
    chinese = translate.authored_cells(chinese_twin(path, {}))
    for cell_en, cell_zh in zip(english, chinese):
        en = nbtool.source_text(cell_en)
        expected = translate.relink_for_zh(en) if cell_en["cell_type"] == "markdown" else en
        assert nbtool.source_text(cell_zh) == expected


@pytest.mark.parametrize("path", ENGLISH, ids=lambda path: path.name)
def test_markdown_units_join_back_to_the_cell(path):
    for cell in translate.authored_cells(read(path)):
        if cell["cell_type"] == "markdown":
            text = nbtool.source_text(cell)
            assert "".join(piece for _, piece in translate.markdown_segments(text)) == text


def test_fields_and_literals_are_checked():
    assert translate.translation_problem("mean {m:.3f}", "均值 {m:.3f}", "string", 'f"', '"') is None
    assert translate.translation_problem("mean {m:.3f}", "均值 {m:.2f}", "string", 'f"', '"')
    assert translate.translation_problem("mean {m}", "均值", "helpers")
    assert translate.translation_problem("it's", 'a "b"', "string", '"', '"')
    assert translate.translation_problem("{'with' if a else 'without'} BN",
                                         "{'有' if a else '无'} BN", "string", 'f"', '"') is None
    assert translate.translation_problem("see `x`", "见 x", "markdown")
    assert translate.translation_problem("[a](01_x.ipynb)", "[甲](02_x.ipynb)", "markdown")
    # a closing ** after full-width punctuation, before a hanzi, does not close (CommonMark)
    assert translate.translation_problem("**Try it.** Move it.", "**试一试。**移动它。", "markdown")
    assert translate.translation_problem("**Try it.** Move it.", "**试一试**。移动它。", "markdown") is None


def test_markdown_units_are_blocks_items_rows_and_headings():
    text = ("## A heading\n\nA paragraph\non two lines.\n\n- item one\n  continued\n- item two\n\n"
            "| term | use |\n| --- | --- |\n| row | one |\n\n```bash\npython -m x\n```\n\n<details><summary>Answers</summary>\n"
            "\n1. answer\n</details>")
    units = [piece for translatable, piece in translate.markdown_segments(text) if translatable]
    assert units == ["A heading", "A paragraph\non two lines.", "item one\n  continued", "item two",
                     "| term | use |", "| row | one |", "<details><summary>Answers</summary>", "answer"]


def test_a_changed_english_block_becomes_fuzzy_and_a_removed_one_obsolete(tmp_path):
    from babel.messages.catalog import Catalog

    catalog = translate.template_for([translate.Entry("The batch mean is computed over the batch.", "markdown", "x"),
                                      translate.Entry("Removed later.", "markdown", "x")])
    catalog["The batch mean is computed over the batch."].string = "批均值在小批量上计算。"
    catalog["Removed later."].string = "稍后删除。"
    path = tmp_path / "x.po"
    path.write_bytes(translate.po_bytes(catalog))
    entries = [translate.Entry("The batch mean is computed over the mini-batch.", "markdown", "x")]
    path.write_bytes(translate.po_bytes(translate.merged(path, entries)))
    report = translate.catalog_report(path, entries, {})
    assert len(report["fuzzy"]) == 1 and len(report["obsolete"]) == 1 and not report["missing"]
    assert isinstance(translate.read_catalog(path), Catalog)


def test_glossary_is_read_as_the_term_base():
    terms = translate.glossary_terms()
    assert terms["batch normalization"] == "批归一化"
    assert terms["running statistics"].startswith("滑动")
    assert terms["layer normalization"] == "层归一化"
    assert len(terms) >= 50
    message = type("M", (), {"id": "We fold the batch normalization layer", "string": "我们折叠批量归一化层",
                             "fuzzy": False, "user_comments": []})()
    assert translate.term_problems(message, terms) == ["'batch normalization' → 批归一化"]
    message.user_comments = ["terms-ok: batch normalization"]
    assert translate.term_problems(message, terms) == []


# --- language switching ------------------------------------------------------------------------


def test_english_is_the_default_and_returns_every_message_unchanged():
    assert i18n.language() == "en"
    family = list(matplotlib.rcParams["font.family"])
    for entry in translate.helper_entries():
        assert i18n._(entry.msgid) == entry.msgid
    i18n.set_language("zh")
    try:
        assert matplotlib.rcParams["font.family"][-1] == "Noto Sans CJK SC"
        for english, chinese in translate.helper_translations().items():
            assert i18n._(english) == chinese
    finally:
        i18n.set_language("en")
    assert list(matplotlib.rcParams["font.family"]) == family
    for entry in translate.helper_entries()[:50]:
        assert i18n._(entry.msgid) == entry.msgid
    with pytest.raises(ValueError, match="language must be one of"):
        i18n.set_language("fr")


def _panels():
    from helpers.panels import all_panels

    # the glossary explorer: tests/test_panels_course_map.py draws every card in both languages
    return [panel for panel in all_panels() if hasattr(panel, "render")]


@pytest.mark.parametrize("panel", _panels(), ids=lambda panel: f"{panel.compute.__module__.rsplit('.', 1)[-1]}: {panel.name}")
def test_panel_draws_in_chinese_at_every_control_value_with_every_glyph(panel):
    """Each panel, with the language set to Chinese, moved through each control's test values
    (the others at their defaults, as a learner's moves do): it draws a figure or a Notice,
    never the "could not be drawn" one, and matplotlib warns of no missing glyph."""
    import matplotlib.pyplot as plt

    from helpers.panels import Notice

    failed = translate.helper_translations()["These settings could not be drawn"]
    i18n.set_language("zh")
    try:
        defaults = panel.defaults()
        moves = [defaults] + [{**defaults, control.name: value} for control in panel.controls
                              for value in control.values_to_test() if value != defaults[control.name]]
        for values in moves:
            with translate.boxes_drawn() as boxes:
                shown = panel.render(**values)
                if isinstance(shown, Notice):
                    assert failed not in shown.text, f"{panel.name} at {values}: {shown.text}"
                else:
                    shown.canvas.draw()
                    plt.close(shown)
            assert not boxes, f"{panel.name} at {values}: {boxes[:3]}"
    finally:
        i18n.set_language("en")


# --- navigation ----------------------------------------------------------------------------------


LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", ENGLISH, ids=lambda path: path.name)
def test_the_two_editions_link_each_other(path):
    twin = translate.ZH_NOTEBOOKS / path.name
    english_header = nbtool.source_text(read(path)["cells"][0])
    assert f"(zh/{path.name})" in english_header
    cells = read(twin)["cells"]
    for cell in (cells[0], cells[-1]):
        links = [target for _, target in LINK.findall(nbtool.source_text(cell)) if not target.startswith("http")]
        assert f"../{path.name}" in links
        for target in links:
            assert (twin.parent / target).is_file(), target
    assert translate.zh_colab_url(path.name) in nbtool.source_text(cells[0])
    assert 'helpers.set_language("zh")' in nbtool.source_text(cells[2])


# --- the Chinese notebooks run like the English ------------------------------------------------

NUMBER = re.compile(r"(?<![\w.])[-+−]?\d+(?:[.,]\d+)*(?:e[-+]?\d+)?%?(?!\d|[.,]\d|\s*(?:s\b|ms\b|[GMk]B/s|秒|毫秒))")


def printed_numbers(notebook) -> list[str]:
    numbers = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                numbers += NUMBER.findall(output.get("text", ""))
            elif "application/vnd.jupyter.widget-view+json" in output.get("data", {}):
                continue  # a widget's text/plain is its repr, cut at a length that depends on the labels
            elif "text/plain" in output.get("data", {}):
                numbers += NUMBER.findall(output["data"]["text/plain"])
    return numbers


def glyph_warnings(executed) -> list[str]:
    from tools.kernels import output_widget_outputs, shown_text

    outputs = [o for cell in executed.notebook.cells for o in cell.get("outputs", [])]
    outputs += [o for widget in output_widget_outputs(executed.widget_state) for o in widget]
    return [line for o in outputs for line in shown_text(o).splitlines()
            if translate.MISSING_GLYPH.search(line)]


@pytest.mark.parametrize("path", ENGLISH, ids=lambda path: path.name)
def test_chinese_notebook_runs_and_prints_the_same_numbers_as_the_english(path):
    from tools.kernels import (
        NotebookCellError,
        execute_notebook,
        output_widget_outputs,
        widget_problems,
    )

    try:
        english = execute_notebook(path, name=f"notebooks/{path.name}")
        chinese = execute_notebook(translate.ZH_NOTEBOOKS / path.name, name=f"notebooks/zh/{path.name}")
    except NotebookCellError as error:
        pytest.fail(str(error), pytrace=False)
    assert not glyph_warnings(chinese), glyph_warnings(chinese)[:5]
    failed = translate.helper_translations().get(
        "These settings could not be drawn", "These settings could not be drawn")
    for outputs in output_widget_outputs(chinese.widget_state):
        assert not widget_problems(outputs)
        assert not any(failed in o.get("data", {}).get("text/html", "") for o in outputs)
    assert printed_numbers(chinese.notebook) == printed_numbers(english.notebook)


def test_no_helper_module_hides_the_translation_function():
    """A module that imports ``_`` from helpers.i18n must never bind ``_`` itself (``_, x = ...``,
    ``for _ in``): Python then treats ``_`` as a local name in that whole function, and every
    ``_("...")`` there fails (TypeError or UnboundLocalError), in English too."""
    import ast

    offenders = []
    for path in sorted((ROOT / "helpers").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imports_it = any(isinstance(node, ast.ImportFrom) and node.module == "helpers.i18n"
                         and any(alias.name == "_" and alias.asname is None for alias in node.names)
                         for node in tree.body)
        if not imports_it:
            continue
        for node in ast.walk(tree):
            bound = (isinstance(node, ast.Name) and node.id == "_" and isinstance(node.ctx, ast.Store)) or (
                isinstance(node, ast.arg) and node.arg == "_")
            if bound:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


def test_the_chinese_setup_cell_is_the_english_one_up_to_its_text_folder_and_language():
    """tools/translate.py writes the Chinese setup cell by hand: it must stay the English cell's
    code (tools/notebooks.py) with only comments and messages translated, the notebooks/zh
    folder for Colab, and the set_language("zh") line at the end."""
    english = literals_and_code(nbtool.setup_source())
    chinese = literals_and_code(translate.zh_setup_source())
    language_line = literals_and_code('helpers.set_language("zh")')
    assert chinese[-len(language_line):] == language_line
    chinese = chinese[:-len(language_line)]
    zh_folder = [("OP", "/"), ("literal", '"zh"')]
    at = next(i for i in range(len(chinese)) if chinese[i:i + 2] == zh_folder)
    chinese = chinese[:at] + chinese[at + 2:]
    assert [kind for kind, _ in english] == [kind for kind, _ in chinese]
    differ = [(a, b) for a, b in zip(english, chinese) if a != b]
    # only the two literals of the ImportError's message are translated
    assert len(differ) == 2 and all(a[0] == "literal" for a, _ in differ), differ
