"""The Simplified Chinese edition: English notebooks are the source, gettext catalogs hold the Chinese.

    python -m tools.translate extract   write the templates (locales/templates/*.pot, not committed):
                                        one entry per translatable unit of every English notebook,
                                        and of the helpers' _() / N_() messages
    python -m tools.translate merge     extract, then update every catalog from its template: new
                                        English text becomes an untranslated entry, changed text a
                                        fuzzy one (with the previous English as #| msgid), removed
                                        text an obsolete one (#~); translations are kept
    python -m tools.translate build     compile helpers.po to helpers.mo, extend the CJK font subset
                                        if a catalog uses a character it lacks, and write every
                                        notebooks/zh/NN_slug.ipynb
    python -m tools.translate check [NN_slug ...]
                                        change nothing; per catalog, count the missing, fuzzy,
                                        obsolete and invalid entries and the glossary terms not used,
                                        list built files that are out of date; exit 1 if anything is

Where things live (and why):

- ``locales/zh/NN_slug.po``: one catalog per notebook, keyed by the English text. They sit
  outside ``notebooks/`` so that the folder a learner browses holds notebooks only, and all the
  notebook catalogs are in one folder for Poedit or Weblate (file mask ``locales/zh/*.po``).
- ``helpers/locale/zh/LC_MESSAGES/helpers.po`` and the compiled ``helpers.mo``: the library's
  messages (panel controls, Notices, figure labels, exercise feedback, errors). They live inside
  the package because ``helpers.i18n`` reads the .mo at run time with the standard library's
  ``gettext`` (Colab installs the course with ``--no-deps``: no Babel there). The .mo is committed
  and ``check`` fails when it differs from what ``build`` makes now.
- ``notebooks/zh/NN_slug.ipynb``: built, never edited by hand. Same cells and ids as the English
  twin; markdown, code comments and the user-facing string literals of code (arguments of
  print(), titles, labels, docstrings, assert and error messages) come from the catalog; the
  generated header, setup cell and footer are written in Chinese here; an untranslated entry
  keeps its English text.
- ``helpers/fonts/NotoSansSC-course-subset.otf``: Noto Sans CJK SC (SIL OFL 1.1, ``OFL.txt``)
  cut down to Latin, Greek, symbols, CJK punctuation, the 6763 hanzi of GB 2312 and any other
  character a catalog uses (about 3.5 MB instead of 16 MB). ``build`` extends it from the system's
  Noto Sans CJK when a catalog needs a character it lacks; ``check`` fails on such a character.

A translatable unit of a markdown cell is a paragraph, a heading, one item of a list (with its
continuation lines), one row of a table, or an HTML line such as ``<summary>``; fenced code
blocks and text without letters are kept as they are. A unit of a code cell is a block of
consecutive full-line comments, an inline comment, or one string literal token (its text between
the quotes, as written in the source; an f-string's ``{...}`` fields must come back unchanged,
except the text of string literals inside them). A string literal is translated when a learner
reads it: an argument of print(), a title, a label... (``SHOWN_CALLS``, ``SHOWN_KEYWORDS``), or
any one-line literal of two or more words (a row label or a curve's name shown later), except the
operands of a comparison and the values of keyword arguments other than the shown ones (``loc=``:
parameters the callee interprets). The same English
text always gets the same Chinese, so a label that is also a dictionary key stays consistent; a
translator keeps the English (msgstr = msgid) where the text must match something outside the
notebook (a helper's option, torch's source).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import datetime
import io
import json
import logging
import re
import sys
import tokenize
import warnings
from dataclasses import dataclass
from pathlib import Path

from tools import notebooks as nbtool

ROOT = nbtool.ROOT
NOTEBOOKS = nbtool.NOTEBOOKS
ZH_NOTEBOOKS = NOTEBOOKS / "zh"
CATALOGS = ROOT / "locales" / "zh"
TEMPLATES = ROOT / "locales" / "templates"
HELPERS = ROOT / "helpers"
HELPERS_PO = HELPERS / "locale" / "zh" / "LC_MESSAGES" / "helpers.po"
HELPERS_MO = HELPERS_PO.with_suffix(".mo")
HELPER_PLACES = ("lessons", "panels", "exercises")


def helper_catalog(relative: str) -> Path:
    """The catalog of a message found in ``relative`` (a path under helpers/): the library's own
    in helpers.po, a notebook's modules' in helpers.<slug>.po (so that the translators of
    different notebooks never edit the same file); all are compiled into one helpers.mo."""
    parts = Path(relative).parts
    if len(parts) == 3 and parts[1] in HELPER_PLACES:
        return HELPERS_PO.with_name(f"helpers.{Path(parts[2]).stem}.po")
    return HELPERS_PO


def helper_catalogs() -> list[Path]:
    return [HELPERS_PO, *sorted(p for p in HELPERS_PO.parent.glob("helpers.*.po"))]


def helper_translations() -> dict[str, str]:
    """{English: Chinese} of every helpers catalog together (what helpers.mo holds)."""
    table = {}
    for path in helper_catalogs():
        for english, chinese in translations(path).items():
            table.setdefault(english, chinese)
    return table
FONT = HELPERS / "fonts" / "NotoSansSC-course-subset.otf"
SYSTEM_FONTS = [Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
                Path("/usr/share/fonts/opentype/noto/NotoSansCJKsc-Regular.otf")]
FIXED_DATE = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
PROJECT = "BatchNorm, from scratch"
BUGS = f"https://github.com/{nbtool.settings()['github_repository']}/issues"

# --- the Chinese of the generated cells --------------------------------------------------------

MAP_LABEL = "课程地图"
ENGLISH_LABEL = "English version"
CHINESE_LABEL = "简体中文版"
SETUP_TITLE_ZH = '#@title 环境设置：请先运行本单元 { display-mode: "form" }'

SETUP_TEMPLATE_ZH = SETUP_TITLE_ZH.replace("{", "{{").replace("}", "}}") + '''
# 每个笔记本都以这个单元开头。在本地，它确保能导入课程的 `helpers`；
# 在 Colab 中，它下载课程并安装，不会升级 Colab 自带的包。
import os
import sys
from pathlib import Path

COURSE_REPOSITORY = "{repository}"  # 在 pyproject.toml 中设置，由 tools/notebooks.py 写入
if "google.colab" in sys.modules:
    import subprocess

    course = Path("/content/{folder}")
    if not course.exists():
        subprocess.run(["git", "clone", "--depth", "1", "--branch", "{branch}",
                        f"https://github.com/{{COURSE_REPOSITORY}}.git", str(course)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(course)],
                   check=True)
    os.chdir(course / "notebooks" / "zh")
else:  # 本地仓库或 Binder：课程文件夹是最近的、包含 helpers/ 的上级目录
    course = next((p for p in [Path.cwd(), *Path.cwd().parents] if (p / "helpers" / "bn.py").is_file()), None)
if course is not None and str(course) not in sys.path:
    sys.path.insert(0, str(course))
try:
    import helpers
except ImportError as error:
    raise ImportError("找不到课程的 helpers：请从课程的 notebooks/zh/ 文件夹打开本笔记本，"
                      "或在课程文件夹中运行 `pip install -e .`。") from error

%matplotlib inline
helpers.set_language("zh")  # 中文界面：面板、提示、反馈与图中文字（含中文字体）'''

GENERATED_ZH_TEXT = MAP_LABEL + ENGLISH_LABEL + CHINESE_LABEL + SETUP_TEMPLATE_ZH


def zh_setup_source() -> str:
    s = nbtool.settings()
    return SETUP_TEMPLATE_ZH.format(repository=s["github_repository"], branch=s["github_branch"],
                                    folder=s["github_repository"].split("/")[-1])


def zh_colab_url(filename: str) -> str:
    return nbtool.colab_url(f"zh/{filename}")


def zh_navigation(previous, current: Path, following) -> str:
    parts = []
    if previous:
        parts.append(f"[← {previous[1]}]({previous[0].name})")
    if current.name != "00_course_map.ipynb":
        parts.append(f"[{MAP_LABEL}](00_course_map.ipynb)")
    if following:
        parts.append(f"[{following[1]} →]({following[0].name})")
    return " · ".join(parts)


# --- units of markdown -------------------------------------------------------------------------

LIST_ITEM = re.compile(r"^(\s{0,3})([-*+]|\d+[.)])(\s+)")
HEADING = re.compile(r"^(#{1,6})(\s+)")
TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
HTML_LINE = re.compile(r"^\s*<[^>]+>.*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def has_words(text: str) -> bool:
    """Whether ``text`` has anything to translate: letters outside code, tags, URLs and math."""
    text = re.sub(r"`[^`]*`", "", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"<[^>]*>", "", text)
    text = re.sub(r"https?://\S+", "", text)
    text = re.sub(r"\$[^$]*\$", "", text)
    return re.search(r"[A-Za-z]{2,}", text) is not None


def markdown_segments(text: str) -> list[tuple[bool, str]]:
    """``text`` cut into (translatable, piece); the pieces joined give ``text`` back."""
    units: list[str] = []
    current: list[str] = []  # the lines of the paragraph or list item being collected

    def flush():
        if current:
            units.append("\n".join(current))
            current.clear()

    fenced = False
    for line in text.split("\n"):
        if fenced or FENCE.match(line):
            flush()
            fenced = fenced != bool(FENCE.match(line))
        elif not line.strip():
            flush()
        elif HEADING.match(line):
            flush()
            units.append(line[HEADING.match(line).end():])
        elif line.lstrip().startswith("|"):
            flush()
            if not TABLE_RULE.match(line):
                units.append(line)
        elif HTML_LINE.match(line):
            flush()
            units.append(line)
        elif LIST_ITEM.match(line):
            flush()
            current.append(line[LIST_ITEM.match(line).end():])
        else:
            current.append(line)
    flush()
    return _reattach_newlines([(True, unit) for unit in units if has_words(unit)], text)


def _reattach_newlines(segments, text):
    """Paragraph units were collected without the newlines between their lines' ends and the next
    piece: rebuild the kept pieces so that the segments join to ``text`` exactly."""
    out, position = [], 0
    for translatable, piece in segments:
        if translatable:
            start = text.index(piece, position)
            if start > position:
                out.append((False, text[position:start]))
            out.append((True, piece))
            position = start + len(piece)
    if position < len(text):
        out.append((False, text[position:]))
    merged = []
    for translatable, piece in out:
        if merged and not translatable and not merged[-1][0]:
            merged[-1] = (False, merged[-1][1] + piece)
        elif piece:
            merged.append((translatable, piece))
    assert "".join(piece for _, piece in merged) == text
    return merged


def relink_for_zh(text: str) -> str:
    """Markdown of the Chinese twin one folder down: relative links to other files get ``../``
    (links to the notebooks stay: the Chinese notebooks have the same names)."""
    def fix(match):
        target = match.group(2)
        if re.match(r"^(https?:|mailto:|#|/|\.\./)", target) or nbtool.NOTEBOOK_NAME.match(target.split("#")[0]):
            return match.group(0)
        return f"{match.group(1)}../{target}"

    text = re.sub(r"(\]\()([^)\s]+)", fix, text)
    return re.sub(r"""((?:src|href)=["'])([^"']+)""", fix, text)


# --- units of code -----------------------------------------------------------------------------

#: calls whose string arguments a learner reads, and keywords whose string values they read
SHOWN_CALLS = {"print", "set_title", "set_xlabel", "set_ylabel", "xlabel", "ylabel", "title",
               "suptitle", "text", "annotate", "legend", "set_label", "Markdown", "HTML",
               "NotImplementedError", "ValueError", "TypeError", "RuntimeError", "AssertionError",
               "Notice", "warn"}
SHOWN_KEYWORDS = {"label", "title", "xlabel", "ylabel", "description", "desc"}
SKIPPED_COMMENT = re.compile(r"^#(@|!)|^#\s*(noqa|type:|fmt:|pragma|ruff)")


@dataclass
class CodeUnit:
    kind: str  # "comment" or "string"
    start: int  # offsets into the source
    end: int
    text: str  # msgid: the comment text(s), or a literal's text between its quotes
    prefix: str = ""  # a string's prefix and opening quote; a comment block's indentation
    suffix: str = ""  # a string's closing quote


def masked(source: str) -> str:
    """``source`` with IPython's magic and shell lines blanked (same length), so it parses."""
    return "\n".join(" " * len(line) if line.lstrip().startswith(("%", "!")) else line
                     for line in source.split("\n"))


def _offsets(source: str):
    starts, total = [], 0
    for line in source.splitlines(keepends=True):
        starts.append(total)
        total += len(line)
    starts.append(total)
    return lambda row, col: starts[row - 1] + col


def string_tokens(source: str) -> list[tuple[tuple, tuple, str]]:
    """(start, end, text) of each string literal token, an f-string counted as one token on
    every Python (3.12 splits it into FSTRING_START ... FSTRING_END: merged here)."""
    literals, depth, start = [], 0, None
    lines = source.splitlines(keepends=True)

    def text_between(a, b):
        if a[0] == b[0]:
            return lines[a[0] - 1][a[1]:b[1]]
        return lines[a[0] - 1][a[1]:] + "".join(lines[a[0]:b[0] - 1]) + lines[b[0] - 1][:b[1]]

    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        name = tokenize.tok_name[token.type]
        if name == "FSTRING_START":
            if depth == 0:
                start = token.start
            depth += 1
        elif name == "FSTRING_END":
            depth -= 1
            if depth == 0:
                literals.append((start, token.end, text_between(start, token.end)))
        elif token.type == tokenize.STRING and depth == 0:
            literals.append((token.start, token.end, token.string))
    return literals


def split_literal(text: str) -> tuple[str, str, str]:
    """A literal's (prefix + opening quote, body, closing quote)."""
    match = re.match(r"^([A-Za-z]*)('''|\"\"\"|'|\")", text)
    quote = match.group(2)
    return match.group(0), text[match.end():len(text) - len(quote)], quote


def is_f_string(text: str) -> bool:
    return "f" in split_literal(text)[0].lower()


def _node_span(node, to_offset, source) -> tuple[int, int]:
    """(start, end) character offsets of an AST node in ``source`` (ast gives UTF-8 byte columns)."""
    lines = source.splitlines(keepends=True)

    def char_col(row, byte_col):
        line = lines[row - 1] if row <= len(lines) else ""
        return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))

    return (to_offset(node.lineno, char_col(node.lineno, node.col_offset)),
            to_offset(node.end_lineno, char_col(node.end_lineno, node.end_col_offset)))


def _shown_string_spans(tree, to_offset, source) -> list[tuple[int, int]]:
    spans = []

    def add(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) or isinstance(node, ast.JoinedStr):
            spans.append(_node_span(node, to_offset, source))
        elif isinstance(node, ast.IfExp):
            add(node.body)
            add(node.orelse)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for element in node.elts:
                add(element)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
            add(node.left)
            if isinstance(node.op, ast.Add):
                add(node.right)
        elif isinstance(node, ast.BoolOp):
            for value in node.values:
                add(value)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "format"):
            add(node.func.value)

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in SHOWN_CALLS:
                for argument in node.args:
                    add(argument)
            for keyword in node.keywords:
                if keyword.arg in SHOWN_KEYWORDS:
                    add(keyword.value)
        elif isinstance(node, ast.Assert) and node.msg is not None:
            add(node.msg)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(node, clean=False):
            add(node.body[0].value)
    return spans


def _kept_string_spans(tree, to_offset, source) -> list[tuple[int, int]]:
    """Spans of string literals that must stay as written even when they read like prose: the
    operands of a comparison (``"Timed out" in message`` matches torch's English) and the values
    of keyword arguments other than the shown ones (``legend(loc="lower right")``,
    ``compute(features="whitened (ZCA)")``: parameters the callee interprets)."""
    spans = []

    def add(node):
        for inner in ast.walk(node):
            if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
                spans.append(_node_span(inner, to_offset, source))

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                if not isinstance(operand, ast.JoinedStr):
                    add(operand)
        elif isinstance(node, ast.keyword) and node.arg not in SHOWN_KEYWORDS:
            add(node.value)
    return spans


def reads_like_prose(text: str) -> bool:
    """Whether a string literal outside the shown calls is text a learner reads (a row label, a
    curve's name, a table heading printed later): two or more words, one of them of letters, on
    one line. Such literals are translated like shown ones; the same English text always gets
    the same Chinese, so a label used as a dictionary key stays consistent."""
    return "\n" not in text and bool(re.search(r"[A-Za-z]{2,}", text)) and bool(re.search(r"\S\s+\S", text))


def words_inside_fields(body: str) -> bool:
    """Whether an f-string's ``{...}`` fields hold a literal a learner reads (``{'with BN' if bn
    else 'without BN':45s}``): the f-string is then a unit even with no words outside them."""
    literals = [single or double for field in _scan(body, keep_literals=True)[0]
                for single, double in re.findall(r"'([^']*)'|\"([^\"]*)\"", field)]
    return any(reads_like_prose(text) for text in literals)


def code_units(source: str) -> list[CodeUnit]:
    """The translatable units of a code cell's source, in order."""
    text = masked(source)
    to_offset = _offsets(text)
    units: list[CodeUnit] = []
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
        tree = ast.parse(text)
    except (SyntaxError, tokenize.TokenError):
        return units
    lines = text.split("\n")
    group: list[tokenize.TokenInfo] = []

    def flush():
        if not group:
            return
        bodies = [re.sub(r"^#\s?", "", token.string) for token in group]
        joined = "\n".join(bodies)
        if has_words(joined) and not SKIPPED_COMMENT.match(group[0].string):
            indent = lines[group[0].start[0] - 1][:group[0].start[1]]
            units.append(CodeUnit("comment", to_offset(*group[0].start), to_offset(*group[-1].end),
                                  joined, prefix=indent))
        group.clear()

    for token in tokens:
        if token.type != tokenize.COMMENT:
            if token.type not in (tokenize.NL,):
                flush()
            continue
        row, col = token.start
        full_line = not lines[row - 1][:col].strip()
        if not full_line:
            flush()
            if has_words(token.string) and not SKIPPED_COMMENT.match(token.string):
                units.append(CodeUnit("comment", to_offset(*token.start), to_offset(*token.end),
                                      re.sub(r"^#\s?", "", token.string)))
            continue
        if group and (row != group[-1].start[0] + 1 or col != group[-1].start[1]):
            flush()
        group.append(token)
    flush()
    spans = _shown_string_spans(tree, to_offset, text)
    kept = _kept_string_spans(tree, to_offset, text)
    for start, end, literal in string_tokens(text):
        offset = to_offset(*start)
        opening, body, quote = split_literal(literal)
        f_string = "f" in opening.lower()
        plain = outside_fields(body) if f_string else body
        shown = any(a <= offset < b for a, b in spans)
        if not shown and (any(a <= offset < b for a, b in kept) or len(quote) == 3
                          or not reads_like_prose(plain)):
            continue
        if has_words(plain) or (f_string and words_inside_fields(body)):
            units.append(CodeUnit("string", offset, to_offset(*end), body, opening, quote))
    return sorted(units, key=lambda unit: unit.start)


# --- placeholders ------------------------------------------------------------------------------


def outside_fields(body: str) -> str:
    """An f-string's text without its ``{...}`` fields."""
    return "".join(_scan(body)[1])


def fields(body: str) -> list[str]:
    """The ``{...}`` fields of a string's text ({{ and }} are literal braces), in order, with
    the text of string literals inside them blanked (those may be translated)."""
    return _scan(body)[0]


def _scan(body: str, keep_literals: bool = False) -> tuple[list[str], list[str]]:
    found, rest, i = [], [], 0
    while i < len(body):
        if body.startswith("{{", i) or body.startswith("}}", i):
            rest.append(body[i])
            i += 2
            continue
        if body[i] == "{":
            depth, j, quote = 0, i, None
            while j < len(body):
                c = body[j]
                if quote:
                    if c == quote:
                        quote = None
                elif c in "'\"":
                    quote = c
                elif c in "{[(":
                    depth += 1
                elif c in "}])":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            field = body[i:j + 1]
            found.append(field if keep_literals else re.sub(r"""(['"]).*?\1""", r"\1…\1", field))
            i = j + 1
            continue
        rest.append(body[i])
        i += 1
    return found, rest


def translation_problem(msgid: str, msgstr: str, kind: str, opening: str = "", quote: str = "") -> str | None:
    """Why ``msgstr`` cannot replace ``msgid`` (None when it can)."""
    # (the braces of a plain string with $...$ are LaTeX's, e.g. 10^{-5}, which a translation
    # may write in Unicode instead: 10⁻⁵)
    latex = kind == "string" and "f" not in opening.lower() and "$" in msgid
    if sorted(fields(msgid)) != sorted(fields(msgstr)) and kind != "markdown" and not latex:
        return f"the {{...}} fields differ: {fields(msgid)} in English, {fields(msgstr)} here"
    if kind == "string":
        literal = opening + msgstr + quote
        try:
            found = string_tokens(literal)
            ast.literal_eval(literal) if "f" not in opening.lower() else compile(literal, "<msgstr>", "eval")
        except (SyntaxError, tokenize.TokenError, ValueError):
            return f"{literal!r} is not a valid string literal"
        if len(found) != 1 or found[0][2] != literal:
            return f"{literal!r} is not one string literal (an unescaped {quote}?)"
        if len(quote) == 1 and "\n" in msgstr:
            return "a line break inside a one-line string: write \\n"
        if "f" in opening.lower() and fields(msgid) != fields(msgstr):
            return "an f-string's {...} fields must stay in their order"
    if kind in ("string", "helpers") and msgstr.count("$") >= 2 and re.search(r"[\u3000-\u9fff\uff00-\uffef]", msgstr):
        return ("Chinese in a string with $...$: matplotlib draws it all as mathtext, whose fonts have "
                "no Chinese (boxes); write the math in Unicode (∝, ε, σ², −) instead")
    if kind == "markdown":
        if msgid.count("`") != msgstr.count("`") or msgid.count("$") != msgstr.count("$"):
            return "the number of ` or $ differs from the English (code and math must stay)"
        if [u for u in re.findall(r"\]\(([^)]*)\)", msgid)] != re.findall(r"\]\(([^)]*)\)", msgstr):
            return "the link targets differ from the English"
        if "*" in msgid or "_" in msgid:
            english, chinese = emphasis_rendered(msgid), emphasis_rendered(msgstr)
            if english != chinese:
                return (f"bold/italic render differently ({english} in English, {chinese} here): a ** "
                        "after full-width punctuation and before a hanzi does not close (CommonMark); "
                        "write **词**。 rather than **词。**")
    return None


def emphasis_rendered(markdown: str) -> tuple[int, int]:
    """(bold, italic) spans a CommonMark renderer makes of ``markdown``: mistune, which
    JupyterLab's nbconvert uses, follows CommonMark's rules for where ** and * may open and close."""
    import mistune

    html = mistune.create_markdown()(markdown)
    return html.count("<strong>"), html.count("<em>")


# --- extraction --------------------------------------------------------------------------------


@dataclass
class Entry:
    msgid: str
    kind: str  # markdown, comment, string, helpers
    location: str
    note: str = ""


def authored_cells(notebook: dict) -> list[dict]:
    return [cell for cell in notebook["cells"] if not set(nbtool.tags(cell)) & set(nbtool.GENERATED)]


KIND_NOTES = {
    "markdown": "markdown: keep the markup (** ` $ [text](link) | <tags>), translate the prose",
    "comment": "code comment (lines break where you break them)",
    "string": "string literal in code, text between the quotes as written ({...} fields, \\n, \\' stay)",
}


def notebook_entries(path: Path) -> list[Entry]:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    entries = []
    for cell in authored_cells(notebook):
        source = nbtool.source_text(cell)
        where = f"{path.name}#{cell.get('id', '')}"
        if cell["cell_type"] == "markdown":
            for translatable, piece in markdown_segments(source):
                if translatable:
                    entries.append(Entry(piece, "markdown", where))
        elif cell["cell_type"] == "code":
            for unit in code_units(source):
                entries.append(Entry(unit.text, unit.kind, where))
    return entries


def helper_entries() -> list[Entry]:
    """Every constant string passed to _() or N_() in helpers/ (implicit concatenation joined)."""
    entries = []
    for path in sorted(HELPERS.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("_", "N_")
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                entries.append(Entry(node.args[0].value, "helpers",
                                     f"{path.relative_to(ROOT).as_posix()}:{node.lineno}"))
    return entries


def new_catalog():
    from babel.messages.catalog import Catalog

    return Catalog(locale="zh_Hans_CN", project=PROJECT, version="1", creation_date=FIXED_DATE,
                   revision_date=FIXED_DATE, language_team="Simplified Chinese", fuzzy=False,
                   header_comment=f"# Simplified Chinese translation of {PROJECT}.\n"
                                  "# See /locales/README.md and `python -m tools.translate --help`.\n#")


def template_for(entries: list[Entry]):
    catalog = new_catalog()
    for entry in entries:
        note = KIND_NOTES.get(entry.kind, "")
        if entry.msgid in catalog:
            message = catalog[entry.msgid]
            message.locations.append((entry.location, None))
            if note and note not in message.auto_comments:
                message.auto_comments.append(note)
        else:
            catalog.add(entry.msgid, locations=[(entry.location, None)],
                        auto_comments=[note] if note else [])
    return catalog


def catalog_sources() -> dict[Path, list[Entry]]:
    """{catalog path: the entries its template holds}."""
    sources = {CATALOGS / f"{path.stem}.po": notebook_entries(path) for path in nbtool.notebook_paths()}
    for entry in helper_entries():
        sources.setdefault(helper_catalog(entry.location.split(":")[0]), []).append(entry)
    sources.setdefault(HELPERS_PO, [])
    return sources


def read_catalog(path: Path):
    from babel.messages import pofile

    with path.open("rb") as f:
        return pofile.read_po(f, locale="zh_Hans_CN")


def po_bytes(catalog) -> bytes:
    from babel.messages import pofile

    buffer = io.BytesIO()
    catalog.revision_date = FIXED_DATE
    catalog.creation_date = FIXED_DATE
    catalog.msgid_bugs_address = BUGS
    catalog.last_translator = "the course's translators"
    # width: a large one rather than 0, which would wrap the previous msgid of a fuzzy entry
    # ("#| msgid") at 76 columns without quotes, so that it read back as a comment
    pofile.write_po(buffer, catalog, width=1_000_000, include_previous=True, include_lineno=False)
    fixed = b'"Generated-By: python -m tools.translate merge\\n"'
    return re.sub(rb'"Generated-By: [^"]*"', lambda match: fixed, buffer.getvalue())


def merged(path: Path, entries: list[Entry]):
    template = template_for(entries)
    if not path.exists():
        return template
    catalog = read_catalog(path)
    for message in catalog:  # the wrapped "#| msgid" lines an earlier merge wrote, read back as comments
        message.user_comments = [c for c in message.user_comments if not c.startswith("| ")]
    catalog.update(template, update_creation_date=False)
    for key in [key for key, message in catalog.obsolete.items() if not message.string]:
        del catalog.obsolete[key]  # nothing to reuse in an untranslated entry that is gone
    return catalog


# --- translation lookup and build --------------------------------------------------------------


def translations(path: Path) -> dict[str, str]:
    """{English: Chinese} of the catalog's translated, non-fuzzy entries."""
    if not path.exists():
        return {}
    return {m.id: m.string for m in read_catalog(path) if m.id and m.string and not m.fuzzy}


def translate_markdown(text: str, table: dict) -> str:
    pieces = []
    for translatable, piece in markdown_segments(text):
        chinese = table.get(piece) if translatable else None
        if chinese is not None and translation_problem(piece, chinese, "markdown") is None:
            piece = chinese
        pieces.append(piece)
    return relink_for_zh("".join(pieces))


def translate_code(source: str, table: dict) -> str:
    out, position = [], 0
    for unit in code_units(source):
        chinese = table.get(unit.text)
        if chinese is None:
            continue
        if unit.kind == "string":
            if translation_problem(unit.text, chinese, "string", unit.prefix, unit.suffix):
                continue
            replacement = unit.prefix + chinese + unit.suffix
        else:
            replacement = f"\n{unit.prefix}".join(f"# {line}".rstrip() for line in chinese.split("\n"))
        out.append(source[position:unit.start])
        out.append(replacement)
        position = unit.end
    out.append(source[position:])
    return "".join(out)


def built_notebook(path: Path, table: dict, previous, following) -> dict:
    """The Chinese twin of the English notebook at ``path``."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    cells = []
    for cell in authored_cells(notebook):
        cell = copy.deepcopy(cell)
        source = nbtool.source_text(cell)
        if cell["cell_type"] == "markdown":
            source = translate_markdown(source, table)
        elif cell["cell_type"] == "code":
            source = translate_code(source, table)
        cell["source"] = nbtool.as_source_lines(source)
        cells.append(cell)
    nav = zh_navigation(previous, path, following)
    badge = ("[![在 Colab 中打开](https://colab.research.google.com/assets/colab-badge.svg)]"
             f"({zh_colab_url(path.name)})")
    header = nbtool.make_cell("markdown", nbtool.HEADER,
                              f"{badge} &nbsp; {nav} · [{ENGLISH_LABEL}](../{path.name})")
    setup = nbtool.make_cell("code", nbtool.SETUP, zh_setup_source(), nbtool.SETUP_METADATA)
    footer = nbtool.make_cell("markdown", nbtool.FOOTER, f"---\n{nav} · [{ENGLISH_LABEL}](../{path.name})")
    return {"cells": [header, *cells[:1], setup, *cells[1:], footer], "metadata": nbtool.CLEAN_METADATA,
            "nbformat": 4, "nbformat_minor": 5}


def expected_notebooks() -> dict[Path, str]:
    """{notebooks/zh/NN_slug.ipynb: the text the build writes}."""
    paths = nbtool.notebook_paths()
    tables = {path: translations(CATALOGS / f"{path.stem}.po") for path in paths}
    titles = []
    for path in paths:
        title = nbtool.title_of(json.loads(path.read_text(encoding="utf-8")))
        titles.append((path, tables[path].get(title, title)))
    return {ZH_NOTEBOOKS / path.name: nbtool.dumps(built_notebook(
        path, tables[path], titles[i - 1] if i else None, titles[i + 1] if i + 1 < len(paths) else None))
        for i, path in enumerate(paths)}


MO_HEADER = ("Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n"
             "Language: zh_CN\nPlural-Forms: nplurals=1; plural=0;\n")


def mo_bytes() -> bytes:
    """helpers.mo: the translated, non-fuzzy entries of the helpers catalogs in GNU's .mo format (what
    msgfmt writes; made here so that it depends on nothing but the catalog's entries)."""
    import struct

    table = {"": MO_HEADER, **helper_translations()}
    keys = sorted(table, key=lambda key: key.encode("utf-8"))
    ids = [key.encode("utf-8") for key in keys]
    strs = [table[key].encode("utf-8") for key in keys]
    start = 7 * 4 + 16 * len(keys)
    id_offsets, offset = [], start
    for data in ids:
        id_offsets.append((len(data), offset))
        offset += len(data) + 1
    str_offsets = []
    for data in strs:
        str_offsets.append((len(data), offset))
        offset += len(data) + 1
    out = struct.pack("<7I", 0x950412DE, 0, len(keys), 7 * 4, 7 * 4 + 8 * len(keys), 0, 0)
    out += b"".join(struct.pack("<2I", *pair) for pair in id_offsets)
    out += b"".join(struct.pack("<2I", *pair) for pair in str_offsets)
    return out + b"".join(data + b"\0" for data in ids) + b"".join(data + b"\0" for data in strs)


# --- the font ----------------------------------------------------------------------------------


def gb2312_hanzi() -> str:
    chars = []
    for high in range(0xB0, 0xF8):
        for low in range(0xA1, 0xFF):
            try:
                chars.append(bytes([high, low]).decode("gb2312"))
            except UnicodeDecodeError:
                pass
    return "".join(chars)


FONT_RANGES = [(0x20, 0x24F), (0x370, 0x3FF), (0x2000, 0x2BFF), (0x3000, 0x303F), (0xFF00, 0xFFEF)]


def catalog_characters() -> set[str]:
    text = GENERATED_ZH_TEXT
    for path in [*sorted(CATALOGS.glob("*.po")), *helper_catalogs()]:
        if path.exists():
            text += "".join(m.string for m in read_catalog(path) if m.id and m.string)
    return {c for c in text if ord(c) >= 0x80 and not c.isspace()}


def font_characters(path: Path = FONT) -> set[str]:
    from fontTools.ttLib import TTFont

    if not path.exists():
        return set()
    return {chr(code) for code in TTFont(path, lazy=True).getBestCmap()}


def matplotlib_default_characters() -> set[str]:
    """What DejaVu Sans (shipped with matplotlib, the first font of its list; the course's CJK
    font comes after it) draws: xᵢ, x̂, ², … never need the CJK font."""
    from matplotlib import font_manager

    return font_characters(Path(font_manager.findfont("DejaVu Sans")))


def missing_glyphs() -> list[str]:
    return sorted(catalog_characters() - font_characters() - matplotlib_default_characters())


#: matplotlib's two ways of saying a character showed as a box: a warning of the text engine
#: ("Glyph 25209 (\\N{CJK...}) missing from font(s) DejaVu Sans.") and a log line of mathtext,
#: which draws a whole string with $...$ in its math fonts ("Font 'default' does not have a glyph")
MISSING_GLYPH = re.compile(r"missing from font|does not have a glyph")


@contextlib.contextmanager
def boxes_drawn():
    """``with boxes_drawn() as boxes: figure.canvas.draw()``: afterwards ``boxes`` lists
    matplotlib's messages about characters drawn as boxes (warnings and mathtext's log)."""
    boxes, logged = [], []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    mathtext = logging.getLogger("matplotlib.mathtext")
    mathtext.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield boxes
    finally:
        mathtext.removeHandler(handler)
    boxes += [m for m in [str(w.message) for w in caught] + logged if MISSING_GLYPH.search(m)]


def make_font(extra: set[str]) -> None:
    """Write the subset: the fixed ranges, GB 2312's hanzi, what it had and ``extra``."""
    from fontTools import subset
    from fontTools.ttLib import TTCollection, TTFont

    source = next((p for p in SYSTEM_FONTS if p.exists()), None)
    if source is None:
        raise SystemExit("the font subset needs Noto Sans CJK SC (Debian: apt-get install fonts-noto-cjk)")
    if source.suffix == ".ttc":
        font = next(f for f in TTCollection(source).fonts if f["name"].getDebugName(1) == "Noto Sans CJK SC")
    else:
        font = TTFont(source)
    codes = {c for a, b in FONT_RANGES for c in range(a, b + 1)}
    codes |= {ord(c) for c in gb2312_hanzi() + "".join(extra) + "".join(font_characters())}
    options = subset.Options()
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=sorted(codes))
    subsetter.subset(font)
    FONT.parent.mkdir(parents=True, exist_ok=True)
    font.recalcTimestamp = False  # the same characters give the same bytes
    font.save(FONT)


# --- the glossary: the term base ---------------------------------------------------------------

#: rows of the glossary that name several terms at once: {English cell: {term: rendering}}
COMPOSITE_TERMS = {
    "biased / unbiased estimate": {"biased estimate": "有偏估计", "unbiased estimate": "无偏估计"},
    "vanishing / exploding gradient": {"vanishing gradient": "梯度消失", "exploding gradient": "梯度爆炸"},
    "layer / group / instance normalization": {"layer normalization": "层归一化",
                                               "group normalization": "组归一化",
                                               "instance normalization": "实例归一化"},
}


def glossary_terms(path: Path | None = None) -> dict[str, str]:
    """{English term: its Chinese rendering}, read from the glossary table of notebook 00: the
    first Chinese name of each row (the ones in brackets are the synonyms it notes)."""
    path = path or NOTEBOOKS / "00_course_map.ipynb"
    text = "\n".join(nbtool.source_text(c) for c in json.loads(path.read_text(encoding="utf-8"))["cells"])
    terms = {}
    for line in text.split("\n"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not re.search(r"[\u4e00-\u9fff]", cells[1]) or cells[0] == "English":
            continue
        english, chinese = cells[0], cells[1]
        if english in COMPOSITE_TERMS:
            terms.update(COMPOSITE_TERMS[english])
            continue
        english = re.sub(r"\s*\(.*?\)", "", english).replace(" ε", "").strip()
        chinese = re.sub(r"\s*\(.*?\)", "", chinese).strip()
        names, renderings = [e.strip() for e in english.split(" / ")], [c.strip() for c in chinese.split(" / ")]
        if len(names) == len(renderings):
            terms.update(zip(names, renderings))
        else:
            terms.update({name: renderings[0] for name in names})
    return terms


def term_pattern(term: str) -> re.Pattern:
    words = r"[\s-]+".join(re.escape(word) for word in re.split(r"[\s-]+", term))
    return re.compile(rf"(?<![\w]){words}(?:s|es)?(?!\w)", re.I)


def prose(text: str) -> str:
    """``text`` without code, math, link targets and tags: where terms are looked for."""
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"\$[^$]*\$", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"\{[^{}]*\}", " ", text)
    return re.sub(r"<[^>]*>", " ", text)


def term_problems(message, terms: dict[str, str]) -> list[str]:
    """The glossary terms ``message``'s English uses whose rendering its Chinese lacks. A
    translator comment ``terms-ok: mean, gradient`` accepts a term used in another sense."""
    if not message.string or message.string == message.id or message.fuzzy:
        return []
    accepted = set()
    for comment in message.user_comments:
        if comment.strip().startswith("terms-ok:"):
            accepted |= {t.strip().lower() for t in comment.split(":", 1)[1].split(",")}
    english = prose(message.id)
    problems = []
    for term, rendering in terms.items():
        if term.lower() in accepted or rendering in message.string:
            continue
        if term_pattern(term).search(english):
            problems.append(f"'{term}' → {rendering}")
    return problems


# --- check -------------------------------------------------------------------------------------


def entry_kinds(entries: list[Entry]) -> dict[str, str]:
    return {entry.msgid: entry.kind for entry in entries}


def catalog_report(path: Path, entries: list[Entry], terms: dict) -> dict:
    """Counts and details of what is wrong with one catalog."""
    report = {"missing": [], "fuzzy": [], "obsolete": [], "invalid": [], "terms": [], "entries": 0}
    template = template_for(entries)
    report["entries"] = len([m for m in template if m.id])
    if not path.exists():
        report["missing"] = [m.id for m in template if m.id]
        return report
    catalog = read_catalog(path)
    kinds = entry_kinds(entries)
    units = {}
    for entry in entries:
        units.setdefault(entry.msgid, entry)
    for message in catalog:
        if not message.id:
            continue
        if message.id not in template:
            report["obsolete"].append(message.id)
            continue
        if not message.string:
            report["missing"].append(message.id)
        elif message.fuzzy:
            report["fuzzy"].append(message.id)
        else:
            kind = kinds.get(message.id, "helpers")
            problem = _problem_of(message.id, message.string, kind, entries)
            if problem:
                report["invalid"].append(f"{short(message.id)}: {problem}")
            for term in term_problems(message, terms):
                report["terms"].append(f"{short(message.id)}: {term}")
    report["missing"] += [m.id for m in template if m.id and m.id not in catalog]
    report["obsolete"] += list(catalog.obsolete)
    return report


def _problem_of(msgid, msgstr, kind, entries):
    if kind == "string":
        # the literal's quotes: find one occurrence in a notebook to know them
        for entry in entries:
            if entry.msgid == msgid and entry.kind == "string":
                path = NOTEBOOKS / entry.location.split("#")[0]
                cell_id = entry.location.split("#", 1)[1]
                notebook = json.loads(path.read_text(encoding="utf-8"))
                for cell in notebook["cells"]:
                    if cell.get("id") == cell_id:
                        for unit in code_units(nbtool.source_text(cell)):
                            if unit.text == msgid and unit.kind == "string":
                                return translation_problem(msgid, msgstr, "string", unit.prefix, unit.suffix)
        return None
    return translation_problem(msgid, msgstr, kind)


def short(text: str, width: int = 60) -> str:
    text = text.replace("\n", " ")
    return repr(text if len(text) <= width else text[:width - 1] + "…")


def stale_outputs() -> list[str]:
    """Built files that differ from what ``build`` writes now."""
    stale = []
    for path, text in expected_notebooks().items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(f"{display(path)}: out of date (run python -m tools.translate build)")
    expected_names = {p.name for p in nbtool.notebook_paths()}
    for path in sorted(ZH_NOTEBOOKS.glob("*.ipynb")):
        if path.name not in expected_names:
            stale.append(f"{display(path)}: has no English twin (remove it)")
    if not HELPERS_MO.exists() or HELPERS_MO.read_bytes() != mo_bytes():
        stale.append(f"{display(HELPERS_MO)}: out of date (run python -m tools.translate build)")
    missing = missing_glyphs()
    if missing:
        stale.append(f"{display(FONT)}: lacks {''.join(missing[:40])} (run python -m tools.translate build)")
    return stale


def display(path: Path) -> str:
    return nbtool.display_path(path)


def check(names: list[str] | None = None, verbose: bool = True) -> int:
    terms = glossary_terms()
    failed = False
    for path, entries in catalog_sources().items():
        wanted = {*names, *(f"helpers.{re.sub(r'^[0-9]{2}_', '', n)}" for n in names)} if names else None
        if wanted and path.stem not in wanted:
            continue
        report = catalog_report(path, entries, terms)
        counts = {k: len(report[k]) for k in ("missing", "fuzzy", "obsolete", "invalid", "terms")}
        bad = any(counts.values())
        failed |= bad
        status = "ok" if not bad else ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        translated = report["entries"] - counts["missing"] - counts["fuzzy"]
        print(f"{display(path)}: {translated}/{report['entries']} translated; {status}")
        if verbose:
            for kind in ("invalid", "terms", "fuzzy", "obsolete"):
                for item in report[kind][:30]:
                    label = {"terms": "glossary term not rendered"}.get(kind, kind)
                    print(f"    {label}: {item if kind in ('invalid', 'terms') else short(item)}")
    stale = [line for line in stale_outputs() if not names or any(n in line for n in names)
             or "helpers.mo" in line or FONT.name in line]
    for line in stale:
        print(line)
    return 1 if failed or stale else 0


# --- commands ----------------------------------------------------------------------------------


def extract() -> None:
    from babel.messages import pofile

    TEMPLATES.mkdir(parents=True, exist_ok=True)
    for path, entries in catalog_sources().items():
        target = TEMPLATES / f"{path.stem}.pot"
        with target.open("wb") as f:
            pofile.write_po(f, template_for(entries), width=0, include_lineno=False)
        print(f"{display(target)}: {len(set(e.msgid for e in entries))} entries")


def merge() -> None:
    extract()
    for path, entries in catalog_sources().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        data = po_bytes(merged(path, entries))
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
            print(f"{display(path)}: merged")


def build() -> None:
    HELPERS_MO.parent.mkdir(parents=True, exist_ok=True)
    data = mo_bytes()
    if not HELPERS_MO.exists() or HELPERS_MO.read_bytes() != data:
        HELPERS_MO.write_bytes(data)
        print(f"{display(HELPERS_MO)}: written")
    missing = missing_glyphs()
    if missing or not FONT.exists():
        make_font(set(missing))
        print(f"{display(FONT)}: written ({FONT.stat().st_size / 1e6:.1f} MB)")
    ZH_NOTEBOOKS.mkdir(parents=True, exist_ok=True)
    for path, text in expected_notebooks().items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"{display(path)}: written")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("command", choices=["extract", "merge", "build", "check"])
    parser.add_argument("catalogs", nargs="*", help="check: only these catalogs (e.g. 03_backward_pass)")
    args = parser.parse_args(argv)
    if args.command == "extract":
        extract()
    elif args.command == "merge":
        merge()
    elif args.command == "build":
        build()
    else:
        return check(args.catalogs or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
