"""Keep the notebooks clean and consistent: one command for maintainers.

    python -m tools.notebooks           strip outputs, normalize metadata, and (re)write every
                                        notebook's header (Colab badge + navigation), setup cell
                                        and footer (navigation)
    python -m tools.notebooks --check   change nothing; list what is out of date and exit 1
    python -m tools.notebooks --folder tests/fixtures/course/notebooks
                                        the same for another folder (the test fixtures)

The generated cells carry a tag (course:header, course:setup, course:footer) and are rewritten
on every run; everything else in a notebook is the author's. The Colab badge and the setup
cell are built from one setting, [tool.batchnorm-course] in pyproject.toml.

Layout of every notebook: header, the author's title cell (first heading = the title),
the setup cell (collapsed in JupyterLab and in Colab: SETUP_METADATA, SETUP_TITLE), the
author's cells, footer. Cell metadata is stripped to the tags, except the setup cell's.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
HEADER, SETUP, FOOTER = "course:header", "course:setup", "course:footer"
GENERATED = (HEADER, SETUP, FOOTER)
NOTEBOOK_NAME = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")

CLEAN_METADATA = {
    "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}

#: The setup cell is collapsed: JupyterLab hides its code (``source_hidden``), Colab shows it as
#: a form (``cellView`` and the ``#@title`` line) titled "Setup: run me first".
SETUP_METADATA = {"cellView": "form", "jupyter": {"source_hidden": True}}
SETUP_TITLE = '#@title Setup: run me first { display-mode: "form" }'

SETUP_TEMPLATE = SETUP_TITLE.replace("{", "{{").replace("}", "}}") + '''
# The same cell opens every notebook. Locally it makes sure the course's `helpers` import;
# in Colab it fetches the course and installs it without upgrading Colab's packages.
import os
import sys
from pathlib import Path

COURSE_REPOSITORY = "{repository}"  # set in pyproject.toml, written by tools/notebooks.py
if "google.colab" in sys.modules:
    import subprocess

    course = Path("/content/{folder}")
    if not course.exists():
        subprocess.run(["git", "clone", "--depth", "1", "--branch", "{branch}",
                        f"https://github.com/{{COURSE_REPOSITORY}}.git", str(course)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(course)],
                   check=True)
    os.chdir(course / "notebooks")
else:  # a local checkout or Binder: the course folder is the nearest parent holding helpers/
    course = next((p for p in [Path.cwd(), *Path.cwd().parents] if (p / "helpers" / "bn.py").is_file()), None)
if course is not None and str(course) not in sys.path:
    sys.path.insert(0, str(course))
try:
    import helpers  # noqa: F401
except ImportError as error:
    raise ImportError("The course's helpers were not found: open this notebook from the course's "
                      "notebooks/ folder, or run `pip install -e .` in the course folder.") from error

%matplotlib inline'''


def settings() -> dict:
    """The [tool.batchnorm-course] table of pyproject.toml."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    table = re.search(r"^\[tool\.batchnorm-course\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S).group(1)
    return dict(re.findall(r'^(\w+)\s*=\s*"([^"]*)"', table, re.M))


def colab_url(filename: str) -> str:
    s = settings()
    return (
        f"https://colab.research.google.com/github/{s['github_repository']}"
        f"/blob/{s['github_branch']}/notebooks/{filename}"
    )


def setup_source() -> str:
    s = settings()
    return SETUP_TEMPLATE.format(
        repository=s["github_repository"],
        branch=s["github_branch"],
        folder=s["github_repository"].split("/")[-1],
    )


def notebook_paths(folder: Path = NOTEBOOKS) -> list[Path]:
    """The course's notebooks, in order (names like 03_backward_pass.ipynb)."""
    return sorted(p for p in Path(folder).glob("*.ipynb") if NOTEBOOK_NAME.match(p.name))


def misnamed_notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    """Notebooks in ``folder`` that the course ignores because their names are not NN_name.ipynb."""
    return sorted(p for p in Path(folder).glob("*.ipynb") if not NOTEBOOK_NAME.match(p.name))


def source_text(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def tags(cell) -> list:
    return cell.get("metadata", {}).get("tags", [])


def title_of(notebook: dict) -> str:
    """The first level-1 heading of the author's cells."""
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown" and not set(tags(cell)) & set(GENERATED):
            match = re.search(r"^#\s+(.+?)\s*$", source_text(cell), re.M)
            if match:
                return match.group(1)
    raise ValueError("no '# Title' heading found in the author's markdown cells")


def navigation(previous, current: Path, following) -> str:
    """One line of links: previous, course map, next (each (path, title) or None)."""
    parts = []
    if previous:
        parts.append(f"[← {previous[1]}]({previous[0].name})")
    if current.name != "00_course_map.ipynb":
        parts.append("[Course map](00_course_map.ipynb)")
    if following:
        parts.append(f"[{following[1]} →]({following[0].name})")
    return " · ".join(parts)


def as_source_lines(text: str) -> list:
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def make_cell(kind: str, tag: str, text: str, metadata: dict | None = None) -> dict:
    cell = {"cell_type": kind, "id": tag.replace(":", "-"),
            "metadata": {**copy.deepcopy(metadata or {}), "tags": [tag]},
            "source": as_source_lines(text)}
    if kind == "code":
        cell["execution_count"] = None
        cell["outputs"] = []
    return cell


def clean_cell(cell: dict, index: int) -> dict:
    clean = {"cell_type": cell["cell_type"], "id": cell.get("id") or f"cell-{index}",
             "metadata": {}, "source": as_source_lines(source_text(cell))}
    if tags(cell):
        clean["metadata"]["tags"] = list(tags(cell))
    if cell["cell_type"] == "code":
        clean["execution_count"] = None
        clean["outputs"] = []
    if cell.get("attachments"):
        clean["attachments"] = cell["attachments"]
    return clean


def normalized(path: Path, previous, following) -> dict:
    """The notebook at ``path`` as it should be committed."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    authored = [
        clean_cell(cell, index)
        for index, cell in enumerate(notebook["cells"])
        if not set(tags(cell)) & set(GENERATED)
    ]
    nav = navigation(previous, path, following)
    badge = f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(path.name)})"
    twin = path.parent / "zh" / path.name  # the Chinese edition, built by tools/translate.py
    chinese = f" · [简体中文版](zh/{path.name})" if twin.is_file() else ""
    header = make_cell("markdown", HEADER, f"{badge} &nbsp; {nav}{chinese}")
    setup = make_cell("code", SETUP, setup_source(), SETUP_METADATA)
    footer = make_cell("markdown", FOOTER, f"---\n{nav}")
    cells = [header, *authored[:1], setup, *authored[1:], footer]
    return {"cells": cells, "metadata": CLEAN_METADATA, "nbformat": 4, "nbformat_minor": 5}


def dumps(notebook: dict) -> str:
    """Serialize as nbformat does (indent 1, sorted keys, unicode kept), with a final newline."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def expected_texts(folder: Path = NOTEBOOKS) -> dict:
    """{path: the text each notebook should have}."""
    paths = notebook_paths(folder)
    titles = [(p, title_of(json.loads(p.read_text(encoding="utf-8")))) for p in paths]
    return {
        path: dumps(normalized(path, titles[i - 1] if i > 0 else None,
                               titles[i + 1] if i + 1 < len(titles) else None))
        for i, (path, _) in enumerate(titles)
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if out of date")
    parser.add_argument("--folder", type=Path, default=NOTEBOOKS,
                        help="the folder of notebooks (default: the course's notebooks/)")
    args = parser.parse_args(argv)
    folder = args.folder.resolve()
    for path in misnamed_notebooks(folder):
        print(f"{path.name}: ignored (a course notebook is named like 03_backward_pass.ipynb)")
    stale = []
    for path, text in expected_texts(folder).items():
        if path.read_text(encoding="utf-8") != text:
            stale.append(path)
            if not args.check:
                path.write_text(text, encoding="utf-8")
    verb = "out of date (run python -m tools.notebooks)" if args.check else "rewritten"
    for path in stale:
        print(f"{display_path(path)}: {verb}")
    if not stale:
        print("all notebooks are clean")
    return 1 if (args.check and (stale or misnamed_notebooks(folder))) else 0


def display_path(path: Path) -> str:
    """``path`` relative to the course folder when it is inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


if __name__ == "__main__":
    sys.exit(main())
