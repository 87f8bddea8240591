"""One name per notebook: the code that exists for one notebook lives under its slug.

A notebook's slug is its file name without the number (``02_forward_transform.ipynb`` ->
``forward_transform``). In ``helpers/lessons/``, ``helpers/panels/`` and ``helpers/exercises/``
every module is named by a slug; their tests are ``tests/test_<place>_<slug>.py``; a notebook's
modules (and the notebook itself) import no other notebook's modules: shared code moves down
into the library (the flat modules of ``helpers/``, each listed in ``helpers/__init__.py``),
which imports none of the per-notebook packages.

The checks read the source (ast), so an import inside a function counts too. The tests named
"catches" feed the checks a small broken layout to show they can fail.
"""

import ast
import json
import re
from pathlib import Path

import pytest

import helpers
from helpers.course import NOTEBOOK_SLUGS, notebook_number

ROOT = Path(__file__).resolve().parent.parent
HELPERS = ROOT / "helpers"
PLACES = ("lessons", "panels", "exercises")
PER_NOTEBOOK = re.compile(r"^helpers\.(lessons|panels|exercises)\.(\w+)")


def slug_of(notebook_name: str) -> str:
    return re.sub(r"^\d\d_", "", notebook_name.removesuffix(".ipynb"))


def modules_in(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")


def imported_modules(source: str) -> set[str]:
    """Every module a piece of Python source imports, anywhere in it (``from helpers.lessons
    import x`` counts as ``helpers.lessons.x``)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def foreign_imports(owner: str | None, source: str) -> list[str]:
    """The per-notebook modules ``source`` imports that belong to a notebook other than ``owner``
    (``owner=None``: library code, which may import none of them)."""
    foreign = []
    for module in sorted(imported_modules(source)):
        match = PER_NOTEBOOK.match(module)
        if match and match.group(2) != owner:
            foreign.append(module)
    return foreign


def notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    code = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        code.append(without_magics("".join(cell["source"])))
    return "\n".join(code)


def without_magics(source: str) -> str:
    """A cell's source without IPython's magic and shell lines, which are not Python."""
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))


def layout_problems(helpers_folder: Path, tests_folder: Path, slugs) -> list[str]:
    problems = []
    for place in PLACES:
        for name in modules_in(helpers_folder / place):
            if name not in slugs:
                problems.append(f"helpers/{place}/{name}.py is not named after a notebook (slugs: {', '.join(slugs)})")
                continue
            source = (helpers_folder / place / f"{name}.py").read_text(encoding="utf-8")
            for module in foreign_imports(name, source):
                problems.append(f"helpers/{place}/{name}.py imports {module}, another notebook's module: "
                                "move the shared code into the library")
            if not (tests_folder / f"test_{place}_{name}.py").is_file():
                problems.append(f"helpers/{place}/{name}.py has no tests/test_{place}_{name}.py")
    for test in sorted(tests_folder.glob("test_*.py")):
        match = re.match(rf"^test_({'|'.join(PLACES)})_(\w+)\.py$", test.name)
        if match and not (helpers_folder / match.group(1) / f"{match.group(2)}.py").is_file():
            problems.append(f"tests/{test.name} tests helpers/{match.group(1)}/{match.group(2)}.py, which does not exist")
    for library in modules_in(helpers_folder):
        source = (helpers_folder / f"{library}.py").read_text(encoding="utf-8")
        for module in foreign_imports(None, source):
            problems.append(f"helpers/{library}.py is library code but imports {module}")
    return problems


def test_the_slugs_are_the_notebooks_file_names_in_order():
    names = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert [slug_of(name) for name in names] == list(NOTEBOOK_SLUGS)
    assert [int(name[:2]) for name in names] == [notebook_number(slug_of(name)) for name in names]


def test_every_per_notebook_module_and_its_tests_carry_a_notebook_slug():
    problems = layout_problems(HELPERS, ROOT / "tests", NOTEBOOK_SLUGS)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")),
                         ids=lambda path: path.name)
def test_a_notebook_imports_only_its_own_modules_and_the_library(path):
    foreign = foreign_imports(slug_of(path.name), notebook_code(path))
    assert not foreign, f"{path.name} imports another notebook's modules: {foreign}"


def test_every_library_module_is_listed_in_the_package_docstring():
    listed = set(re.findall(r"``helpers\.(\w+)``", helpers.__doc__))
    unlisted = [name for name in modules_in(HELPERS) if name not in listed]
    assert not unlisted, f"library modules missing from helpers/__init__.py's list: {unlisted}"


# --- the checks catch a broken layout ------------------------------------------------------------


def broken_layout(tmp_path: Path, files: dict) -> tuple[Path, Path]:
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for place in PLACES:
        (tmp_path / "helpers" / place).mkdir(parents=True, exist_ok=True)
    (tmp_path / "tests").mkdir(exist_ok=True)
    return tmp_path / "helpers", tmp_path / "tests"


def test_catches_a_module_not_named_after_a_notebook_and_a_missing_test(tmp_path):
    folders = broken_layout(tmp_path, {"helpers/panels/forward.py": "", "helpers/lessons/alpha.py": "",
                                       "tests/test_lessons_alpha.py": "", "tests/test_panels_beta.py": ""})
    assert layout_problems(*folders, ("alpha", "beta")) == [
        "helpers/panels/forward.py is not named after a notebook (slugs: alpha, beta)",
        "tests/test_panels_beta.py tests helpers/panels/beta.py, which does not exist",
    ]


def test_catches_a_lesson_that_imports_another_notebooks_lesson_even_inside_a_function(tmp_path):
    folders = broken_layout(tmp_path, {
        "helpers/lessons/alpha.py": "from helpers.bn import batchnorm_forward\n",
        "helpers/lessons/beta.py": "def f():\n    from helpers.lessons import alpha\n",
        "helpers/panels/beta.py": "from helpers.lessons.beta import f\n",
        "helpers/library.py": "import helpers.panels.beta\n",
        "tests/test_lessons_alpha.py": "", "tests/test_lessons_beta.py": "", "tests/test_panels_beta.py": "",
    })
    assert layout_problems(*folders, ("alpha", "beta")) == [
        "helpers/lessons/beta.py imports helpers.lessons.alpha, another notebook's module: "
        "move the shared code into the library",
        "helpers/library.py is library code but imports helpers.panels.beta",
    ]


def test_catches_a_notebook_that_imports_another_notebooks_panels():
    code = "%matplotlib inline\nfrom helpers.panels.forward_transform import PANELS\nfrom helpers import bn\n"
    assert foreign_imports("backward_pass", without_magics(code)) == ["helpers.panels.forward_transform",
                                                       "helpers.panels.forward_transform.PANELS"]
