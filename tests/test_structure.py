"""The notebooks are built the way CONTRIBUTING.md says, and open in Colab and Binder.

- committed clean: no outputs, no execution counts, clean metadata, generated cells up to date
  (``python -m tools.notebooks --check``, the maintainers' command);
- named NN_name.ipynb, with previous / next links that point at the real neighbours, in order;
- an "Open in Colab" badge built from the one repository setting ([tool.batchnorm-course]);
- the identical setup cell, and the sections every notebook has (title, What you will learn,
  Check your understanding, Summary, References, a widget);
- the setup cell works: locally from a copy of the course, and in a simulated Colab (a fake
  ``google.colab``, the clone served from a bare copy of this repository, a fresh environment);
- environment.yml is a valid conda environment (Binder builds from it) with the pip packages.

These checks read the notebooks themselves and do not reuse tools/notebooks.py's logic (only its
settings), so a bug in the generator shows up here too. The tests named "fixture" check the
checks on tests/fixtures/course and on copies of it broken on purpose.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tools import envs
from tools import notebooks as tool
from tools.kernels import KernelSession, NotebookCellError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_FOLDER = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_FOLDER.glob("*.ipynb"))
FIXTURE_FOLDER = ROOT / "tests" / "fixtures" / "course" / "notebooks"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
REQUIRED_SECTIONS = {
    "What you will learn": r"what you('ll| will) learn",
    "Check your understanding": r"check your understanding",
    "Summary": r"summary",
    "References": r"references",
}
LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")
#: What the generated setup cell carries, written out here rather than read from the generator:
#: collapsed in JupyterLab (source_hidden) and a form in Colab (cellView and a #@title line), so
#: that a learner first sees the course, not 30 lines of set-up code.
SETUP_METADATA = {"cellView": "form", "jupyter": {"source_hidden": True}, "tags": ["course:setup"]}
SETUP_TITLE = re.compile(r'#\s?@title Setup: run me first \{ display-mode: "form" \}')


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def text(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def tagged(notebook: dict, tag: str) -> list:
    return [cell for cell in notebook["cells"] if tag in cell.get("metadata", {}).get("tags", [])]


def repository_setting() -> dict:
    """[tool.batchnorm-course] from pyproject.toml (read with tomllib where Python has it)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        return tool.settings()
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["batchnorm-course"]


# --- clean, named, valid ------------------------------------------------------------------------


def test_maintainers_check_command_finds_nothing_to_fix():
    run = subprocess.run([sys.executable, "-m", "tools.notebooks", "--check"], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, f"run `python -m tools.notebooks` and commit the result:\n{run.stdout}{run.stderr}"


def test_every_notebook_is_named_like_03_backward_pass():
    misnamed = [path.name for path in NOTEBOOKS if not tool.NOTEBOOK_NAME.match(path.name)]
    assert not misnamed, f"notebooks/ holds notebooks the course would skip: {misnamed}"
    numbers = [path.name[:2] for path in NOTEBOOKS]
    assert len(numbers) == len(set(numbers)), f"two notebooks share a number: {numbers}"


def cleanliness_problems(path: Path) -> list[str]:
    """Outputs, execution counts, extra metadata, or an invalid notebook.

    A cell's metadata may hold its tags and nothing else, except the setup cell's, which must be
    exactly SETUP_METADATA."""
    problems = []
    notebook = read(path)
    try:
        nbformat.validate(nbformat.reads(json.dumps(notebook), as_version=4))
    except nbformat.ValidationError as error:
        problems.append(f"not a valid notebook: {error.message}")
    extra = set(notebook.get("metadata", {})) - {"kernelspec", "language_info"}
    if extra:
        problems.append(f"notebook metadata has {sorted(extra)}")
    for index, cell in enumerate(notebook["cells"], start=1):
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None):
            problems.append(f"cell {index} has outputs or an execution count")
        metadata = cell.get("metadata", {})
        if tool.SETUP in metadata.get("tags", []):
            if metadata != SETUP_METADATA:
                problems.append(f"cell {index} (the setup cell) has metadata {metadata}, "
                                f"not {SETUP_METADATA}")
        elif set(metadata) - {"tags"}:
            problems.append(f"cell {index} has metadata {sorted(metadata)}")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_is_committed_without_outputs_and_with_clean_metadata(path):
    problems = cleanliness_problems(path)
    assert not problems, f"{path.name} (run `python -m tools.notebooks`): " + "; ".join(problems)


# --- navigation -------------------------------------------------------------------------------


def title(notebook: dict) -> str | None:
    """The first level-1 heading outside the generated cells."""
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown" and not cell.get("metadata", {}).get("tags"):
            match = re.search(r"^#\s+(.+?)\s*$", text(cell), re.M)
            if match:
                return match.group(1)
    return None


def navigation_problems(folder: Path) -> list[str]:
    """Every notebook's header and footer must link the previous and next notebook (by name and
    title, in file order), the course map, and files that exist."""
    paths = sorted(path for path in folder.glob("*.ipynb") if tool.NOTEBOOK_NAME.match(path.name))
    titles = {path.name: title(read(path)) for path in paths}
    problems = []
    for i, path in enumerate(paths):
        notebook = read(path)
        expected = {
            "previous": paths[i - 1].name if i > 0 else None,
            "next": paths[i + 1].name if i + 1 < len(paths) else None,
            "map": "00_course_map.ipynb" if path.name != "00_course_map.ipynb" else None,
        }
        for where, cell in (("header", notebook["cells"][0]), ("footer", notebook["cells"][-1])):
            links = LINK.findall(text(cell))
            found = {"previous": None, "next": None, "map": None}
            for label, target in links:
                if target.startswith(("http", "zh/", "../")):  # the other edition: tests/test_translations.py
                    continue
                if not (folder / target).is_file():
                    problems.append(f"{path.name} {where}: link to {target!r}, which does not exist")
                kind = "previous" if label.startswith("←") else "next" if label.endswith("→") else "map"
                found[kind] = target
                if kind != "map" and titles.get(target) and titles[target] not in label:
                    problems.append(f"{path.name} {where}: link {label!r} does not show the title "
                                    f"{titles[target]!r} of {target}")
            for kind in ("previous", "next", "map"):
                if found[kind] != expected[kind]:
                    problems.append(f"{path.name} {where}: the {kind} link goes to {found[kind]!r}, "
                                    f"expected {expected[kind]!r}")
    return problems


def test_previous_and_next_links_point_at_the_real_neighbours_in_order():
    problems = navigation_problems(NOTEBOOK_FOLDER)
    assert not problems, "run `python -m tools.notebooks` to regenerate them:\n" + "\n".join(problems)


# --- badge, setup cell, sections ----------------------------------------------------------------


def badge_problems(path: Path) -> list[str]:
    setting = repository_setting()
    url = (f"https://colab.research.google.com/github/{setting['github_repository']}/blob/"
           f"{setting['github_branch']}/notebooks/{path.name}")
    notebook = read(path)
    header = text(notebook["cells"][0])
    problems = []
    if f"[![Open In Colab]({BADGE_IMAGE})]({url})" not in header:
        problems.append(f"the first cell has no Open in Colab badge linking {url}")
    for index, cell in enumerate(notebook["cells"][1:-1], start=2):
        if "colab.research.google.com/github/" in text(cell):
            problems.append(f"cell {index} has its own Colab link (only the generated header has one)")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_has_an_open_in_colab_badge_built_from_the_repository_setting(path):
    problems = badge_problems(path)
    assert not problems, f"{path.name}: " + "; ".join(problems)


def test_the_repository_is_named_in_one_place():
    """The badge and the setup cell come from [tool.batchnorm-course]; [project.urls] agrees."""
    repository = repository_setting()["github_repository"]
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'Repository = "https://github.com/{repository}"' in pyproject
    assert f'github_repository = "{repository}"' in pyproject
    assert repository in tool.setup_source()


def setup_cell_problems(path: Path) -> list[str]:
    notebook = read(path)
    setups = tagged(notebook, tool.SETUP)
    code_cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    if len(setups) != 1:
        return [f"{len(setups)} setup cells (tag {tool.SETUP}), not 1"]
    problems = []
    if text(setups[0]) != tool.setup_source():
        problems.append("the setup cell differs from the generated one")
    metadata = setups[0].get("metadata", {})
    if metadata.get("jupyter", {}).get("source_hidden") is not True:
        problems.append("the setup cell's code is not collapsed in JupyterLab (metadata "
                        "jupyter.source_hidden)")
    if metadata.get("cellView") != "form" or not SETUP_TITLE.fullmatch(text(setups[0]).split("\n")[0]):
        problems.append("the setup cell is not a Colab form titled 'Setup: run me first' (metadata "
                        "cellView 'form' and a first line '#@title Setup: run me first { display-mode: \"form\" }')")
    if not code_cells or code_cells[0] is not setups[0]:
        problems.append("the setup cell is not the first code cell")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_opens_with_the_identical_setup_cell(path):
    problems = setup_cell_problems(path)
    assert not problems, f"{path.name} (run `python -m tools.notebooks`): " + "; ".join(problems)


def section_problems(path: Path) -> list[str]:
    """The sections CONTRIBUTING.md asks for, found loosely (a heading or a bold line)."""
    notebook = read(path)
    markdown = "\n".join(text(cell) for cell in notebook["cells"] if cell["cell_type"] == "markdown")
    headings = "\n".join(re.findall(r"^\s*(?:#+\s*|\*\*)(.+)$", markdown, re.M)).lower()
    problems = []
    name = title(notebook)
    if not name:
        problems.append("no title (a '# NN · Title' heading)")
    elif not name.startswith(path.name[:2]):
        problems.append(f"the title {name!r} does not start with the notebook's number {path.name[:2]}")
    for section, pattern in REQUIRED_SECTIONS.items():
        if not re.search(pattern, headings):
            problems.append(f"no {section!r} section")
    code = "\n".join(text(cell) for cell in notebook["cells"] if cell["cell_type"] == "code")
    if ".widget()" not in code:
        problems.append("no widget (a `.widget()` call)")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_has_the_required_sections(path):
    problems = section_problems(path)
    assert not problems, f"{path.name}: " + "; ".join(problems)


# --- the setup cell at work: locally and in a simulated Colab ------------------------------------


def test_setup_cell_finds_the_course_from_a_copy_of_it(tmp_path):
    """Locally (or on Binder) the cell puts the course folder holding the notebook first on sys.path."""
    course = tmp_path / "course"
    for part in ("helpers", "data"):
        shutil.copytree(ROOT / part, course / part, ignore=shutil.ignore_patterns("__pycache__"))
    (course / "notebooks").mkdir()
    with KernelSession(course / "notebooks") as kernel:
        kernel.run(tool.setup_source(), "the setup cell")
        found = kernel.value("[__import__('helpers').__file__, str(__import__('helpers.data').data.find_data_file())]")
    assert found == [str(course / "helpers" / "__init__.py"), str(course / "data" / "mnist.npz")]


def test_setup_cell_explains_what_to_do_when_the_course_is_not_found(tmp_path):
    """Outside the course, with helpers not installed, the learner gets advice, not a bare error."""
    local_branch = tool.setup_source().replace("%matplotlib inline", "")
    run = subprocess.run([sys.executable, "-S", "-c", local_branch], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode != 0
    assert "The course's helpers were not found: open this notebook from the course's notebooks/" in run.stderr


def bare_copy_of_this_repository(folder: Path, branch: str) -> Path:
    """A bare clone of this repository whose ``branch`` is the commit checked out here."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the Colab simulation clones this repository")
    bare = folder / "course.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(ROOT), str(bare)], check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    subprocess.run(["git", "update-ref", f"refs/heads/{branch}", head], cwd=bare, check=True)
    return bare


def test_setup_cell_in_a_simulated_colab_clones_installs_and_finds_the_data(tmp_path):
    """Colab's branch of the setup cell, run on a kernel that believes it is in Colab.

    - ``google.colab`` is in sys.modules (a fake module), as in every Colab kernel;
    - /content (Colab's working folder) is a temporary folder: the one path swapped in the cell;
    - ``git clone https://github.com/<setting>.git`` is sent to a bare copy of this repository
      (git's url.<base>.insteadOf, through the environment: the cell's command is unchanged);
    - a fresh virtual environment that sees exactly the packages of the Python running the tests
      (tools/envs.py) stands for Colab's Python, and pip runs offline there: ``pip install --no-deps -e`` must need nothing from PyPI.

    It must clone the course, install it into that environment (and nothing else), move to the
    course's notebooks/ folder, import helpers from the clone and find data/mnist.npz; and
    running the cell a second time (a learner re-running it) must work as well."""
    setting = repository_setting()
    content = tmp_path / "content"
    content.mkdir()
    source = tool.setup_source()
    assert source.count('Path("/content/') == 1, "the setup cell no longer clones into /content"
    source = source.replace('Path("/content/', f'Path("{content}/')
    bare = bare_copy_of_this_repository(tmp_path, setting["github_branch"])
    venv = tmp_path / "colab-python"
    try:
        python = envs.make(venv)
        envs.check_imports(python, ["ipykernel_launcher"], "the kernel of the simulated Colab")
    except envs.EnvironmentProblem as error:
        pytest.fail(f"could not make the simulated Colab's Python: {error}", pytrace=False)
    env = {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.{bare.as_uri()}.insteadOf",
        "GIT_CONFIG_VALUE_0": f"https://github.com/{setting['github_repository']}.git",
        "PIP_CONFIG_FILE": "/dev/null",
        "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "0",  # (sic) "0" turns build isolation off: use the installed setuptools
    }
    with KernelSession(content, python=str(python), env=env) as kernel:
        kernel.run("import sys, types\nsys.modules['google.colab'] = types.ModuleType('google.colab')")
        for attempt in ("first", "second"):
            try:
                kernel.run(source, f"the setup cell in Colab ({attempt} run)")
            except NotebookCellError as error:
                pytest.fail(str(error))
        found = kernel.value(
            "[__import__('helpers').__file__, __import__('os').getcwd(),"
            " str(__import__('helpers.data').data.find_data_file()),"
            " __import__('importlib.metadata').metadata.distribution('batchnorm-from-scratch')"
            ".read_text('direct_url.json')]")
    clone = content / setting["github_repository"].split("/")[-1]
    helpers_file, cwd, data_file, direct_url = found
    assert helpers_file == str(clone / "helpers" / "__init__.py")
    assert cwd == str(clone / "notebooks")
    assert data_file == str(clone / "data" / "mnist.npz")
    assert json.loads(direct_url)["url"] == clone.as_uri(), "the course was not installed from the clone"
    installed = sorted(path.name for path in (venv / "lib").glob("python*/site-packages/*")
                       if path.name not in ("__pycache__", envs.PTH_NAME))
    assert all("batchnorm_from_scratch" in name for name in installed), (
        f"installing the course in Colab must install nothing else: {installed}")


# --- Binder ---------------------------------------------------------------------------------------


def test_environment_yml_is_a_conda_environment_binder_can_build():
    yaml = pytest.importorskip("yaml")
    environment = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    assert set(environment) <= {"name", "channels", "dependencies"}, sorted(environment)
    assert environment["name"] and "conda-forge" in environment["channels"]
    conda = [item for item in environment["dependencies"] if isinstance(item, str)]
    pip_lists = [item["pip"] for item in environment["dependencies"] if isinstance(item, dict)]
    assert any(item.startswith("python") for item in conda) and "pip" in conda
    assert len(pip_lists) == 1 and all(isinstance(line, str) for line in pip_lists[0])

    def names(lines):
        return {re.split(r"[<>=!~ \[]", line, maxsplit=1)[0].lower() for line in lines
                if not line.startswith("-")}

    requirements = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    listed = {name for name in names(line for line in requirements if line)}
    assert names(conda) - {"python", "pip"} | names(pip_lists[0]) == listed
    # the course itself too, as requirements.txt installs it (import helpers from any folder)
    assert "-e ." in requirements and "-e ." in pip_lists[0], pip_lists[0]


def test_environment_yml_the_readme_and_pyproject_agree_on_the_python_versions():
    requires = re.fullmatch(r'requires-python = ">=(3\.\d+)"', next(
        line for line in (ROOT / "pyproject.toml").read_text().splitlines() if line.startswith("requires-python")))
    oldest = requires.group(1)
    yaml = pytest.importorskip("yaml")
    environment = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    pythons = [item for item in environment["dependencies"] if isinstance(item, str) and item.startswith("python")]
    assert pythons == [f"python>={oldest}"], pythons
    assert f"Python {oldest} or newer" in (ROOT / "README.md").read_text(encoding="utf-8")


# --- the checks above, checked on the fixture course and on broken copies of it -------------------


@pytest.fixture
def fixture_copy(tmp_path) -> Path:
    """A copy of the fixture course's notebooks to break."""
    return Path(shutil.copytree(FIXTURE_FOLDER, tmp_path / "notebooks"))


def edit(path: Path, change) -> None:
    notebook = read(path)
    change(notebook)
    path.write_text(json.dumps(notebook, indent=1), encoding="utf-8")


def test_fixture_course_passes_every_structure_check():
    assert navigation_problems(FIXTURE_FOLDER) == []
    for path in sorted(FIXTURE_FOLDER.glob("*.ipynb")):
        assert cleanliness_problems(path) == []
        assert badge_problems(path) == []
        assert setup_cell_problems(path) == []
        assert section_problems(path) == []
    assert tool.main(["--check", "--folder", str(FIXTURE_FOLDER)]) == 0


def test_fixture_a_broken_next_link_is_found(fixture_copy):
    def break_link(notebook):
        footer = notebook["cells"][-1]
        footer["source"] = [line.replace("(01_tiny_panel.ipynb)", "(01_tiny_pannel.ipynb)")
                            for line in footer["source"]]

    edit(fixture_copy / "00_course_map.ipynb", break_link)
    assert navigation_problems(fixture_copy) == [
        "00_course_map.ipynb footer: link to '01_tiny_pannel.ipynb', which does not exist",
        "00_course_map.ipynb footer: the next link goes to '01_tiny_pannel.ipynb', expected '01_tiny_panel.ipynb'",
    ]


def test_fixture_links_out_of_order_are_found(fixture_copy):
    (fixture_copy / "01_tiny_panel.ipynb").rename(fixture_copy / "03_tiny_panel.ipynb")
    shutil.copy(fixture_copy / "03_tiny_panel.ipynb", fixture_copy / "02_inserted.ipynb")
    problems = navigation_problems(fixture_copy)
    assert "00_course_map.ipynb header: the next link goes to '01_tiny_panel.ipynb', expected '02_inserted.ipynb'" in problems


def test_fixture_outputs_an_edited_setup_cell_and_a_missing_section_are_found(fixture_copy):
    path = fixture_copy / "01_tiny_panel.ipynb"

    def spoil(notebook):
        setup = tagged(notebook, tool.SETUP)[0]
        setup["source"].append("\nprint('my own setup')")
        widget = next(cell for cell in notebook["cells"] if "line_panel.widget()" in text(cell))
        widget["execution_count"] = 3
        widget["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "hi\n"}]
        for cell in notebook["cells"]:
            cell["source"] = [line.replace("## Summary", "## In short") for line in cell["source"]]

    edit(path, spoil)
    assert cleanliness_problems(path) == ["cell 7 has outputs or an execution count"]
    assert setup_cell_problems(path) == ["the setup cell differs from the generated one"]
    assert section_problems(path) == ["no 'Summary' section"]
    assert tool.main(["--check", "--folder", str(fixture_copy)]) == 1


def test_fixture_a_setup_cell_shown_in_full_and_extra_cell_metadata_are_found(fixture_copy):
    path = fixture_copy / "01_tiny_panel.ipynb"

    def spoil(notebook):
        setup = tagged(notebook, tool.SETUP)[0]
        setup["metadata"] = {"tags": [tool.SETUP]}
        setup["source"][0] = "# Setup: run me first\n"
        notebook["cells"][3]["metadata"]["collapsed"] = True

    edit(path, spoil)
    assert cleanliness_problems(path) == [
        "cell 3 (the setup cell) has metadata {'tags': ['course:setup']}, not " + str(SETUP_METADATA),
        "cell 4 has metadata ['collapsed']",
    ]
    assert setup_cell_problems(path) == [
        "the setup cell differs from the generated one",
        "the setup cell's code is not collapsed in JupyterLab (metadata jupyter.source_hidden)",
        "the setup cell is not a Colab form titled 'Setup: run me first' (metadata cellView 'form' "
        "and a first line '#@title Setup: run me first { display-mode: \"form\" }')",
    ]
    assert tool.main(["--check", "--folder", str(fixture_copy)]) == 1
    assert tool.main(["--folder", str(fixture_copy)]) == 0  # the generator puts it right
    assert cleanliness_problems(path) == [] and setup_cell_problems(path) == []


def test_fixture_a_badge_pointing_elsewhere_is_found(fixture_copy):
    path = fixture_copy / "01_tiny_panel.ipynb"
    edit(path, lambda notebook: notebook["cells"][0].update(
        source=[line.replace("/blob/main/", "/blob/master/") for line in notebook["cells"][0]["source"]]))
    assert badge_problems(path)[0].startswith("the first cell has no Open in Colab badge linking")


def test_fixture_a_notebook_the_course_would_skip_fails_the_check(fixture_copy, capsys):
    shutil.copy(fixture_copy / "01_tiny_panel.ipynb", fixture_copy / "Untitled.ipynb")
    assert tool.main(["--check", "--folder", str(fixture_copy)]) == 1
    assert "Untitled.ipynb: ignored" in capsys.readouterr().out
