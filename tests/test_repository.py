"""The repository keeps its promises: the README's two commands, CI calling the test command,
the pip and conda environments listing the same packages, lint-clean code."""

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_commands():
    """The shell commands in the README's ```bash blocks."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", readme, re.S)]


def test_readme_gives_exactly_two_commands_one_opens_one_tests():
    commands = readme_commands()
    assert len(commands) == 2, commands
    open_course, run_tests = commands
    assert "\n" not in open_course and "\n" not in run_tests
    assert "pip install -r requirements.txt" in open_course and "jupyter lab" in open_course
    assert "pip install -r requirements-dev.txt" in run_tests and "pytest" in run_tests


def test_readme_open_command_works_as_root_and_opens_the_course_map():
    """(tests/test_browser.py runs it and opens the address it prints.)"""
    open_course = readme_commands()[0]
    assert "--allow-root" in open_course
    target = re.search(r"--LabApp\.default_url=/lab/tree/(\S+)", open_course)
    assert target and target.group(1) == "notebooks/00_course_map.ipynb", open_course
    assert (ROOT / target.group(1)).is_file()


def test_readme_says_what_to_do_when_something_goes_wrong():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    troubleshooting = readme.split("### Troubleshooting", 1)[-1].split("\n## ", 1)[0]
    for advice in ("--allow-root", "--port", "ssh -L", "fonts-noto-cjk", "git checkout -- notebooks/",
                   "python3"):
        assert advice in troubleshooting, advice
    start = readme.split("```bash", 1)[0]
    assert "--index-url https://download.pytorch.org/whl/cpu" in start, (
        "the CPU-only torch line must come before the commands")


def test_readme_shows_a_small_picture_of_a_panel_made_by_the_browser_test():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pictures = re.findall(r"!\[[^\]]+\]\(([^)\s]+)\)", readme)
    assert pictures == ["docs/panel_in_jupyterlab.png"], pictures
    data = (ROOT / pictures[0]).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) <= 150_000, len(data)
    assert 'SCREENSHOT = ROOT / "docs" / "panel_in_jupyterlab.png"' in (
        ROOT / "tests" / "test_browser.py").read_text(encoding="utf-8")


def test_the_chinese_readme_gives_the_same_two_commands_and_links_both_ways():
    chinese = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")
    chinese_commands = [block.strip() for block in re.findall(r"```bash\n(.*?)```", chinese, re.S)]
    assert chinese_commands == readme_commands()
    assert "(README.md)" in chinese
    assert "(README.zh-CN.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\((notebooks/zh/[^)]+\.ipynb)\)", chinese))
    expected = {f"notebooks/zh/{path.name}" for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert linked == expected, sorted(expected ^ linked)
    assert all((ROOT / path).is_file() for path in linked)


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert readme_commands()[1] in ci.splitlines()


def requirement_names(lines):
    names = set()
    for line in lines:
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        names.add(re.split(r"[<>=!~ \[]", line, maxsplit=1)[0].lower())
    return names


def test_environment_yml_lists_the_same_packages_as_requirements_txt():
    pip_names = requirement_names((ROOT / "requirements.txt").read_text().splitlines())
    conda_lines = []
    in_dependencies = False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if not line.startswith(" "):
            in_dependencies = line.startswith("dependencies:")
        match = re.match(r"\s+- (.+)", line)
        if in_dependencies and match:
            conda_lines.append(match.group(1))
    conda_names = requirement_names(conda_lines) - {"python", "pip", "pip:"}
    assert pip_names == conda_names


def test_torch_is_pinned_to_the_cpu_friendly_release_everywhere():
    assert "torch==2.13.0" in (ROOT / "requirements.txt").read_text()
    assert "torch==2.13.0" in (ROOT / "environment.yml").read_text()


def test_package_dependencies_are_loose_lower_bounds_that_colab_satisfies():
    """Colab ships ipywidgets 7.7.1, torch 2.11, numpy 2.1, matplotlib 3.10: installing the
    course there must upgrade nothing."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    colab = {"numpy": "2.1", "torch": "2.11", "matplotlib": "3.10", "ipywidgets": "7.7.1", "tqdm": "4.67"}
    for requirement in project["dependencies"]:
        name, bound = re.match(r"([a-z]+)>=([\d.]+)$", requirement).groups()
        as_tuple = lambda version: tuple(int(part) for part in version.split("."))  # noqa: E731
        assert as_tuple(bound) <= as_tuple(colab[name]), requirement


def test_ruff_is_clean():
    """The ruff installed with the Python running the tests (found without an activated virtual
    environment too: `.venv/bin/python -m pytest`), else the one on PATH."""
    if importlib.util.find_spec("ruff") is not None:
        ruff = [sys.executable, "-m", "ruff"]
    elif shutil.which("ruff"):
        ruff = [shutil.which("ruff")]
    else:
        pytest.skip("ruff is not installed (requirements-dev.txt installs it)")
    result = subprocess.run([*ruff, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_helpers_import_without_changing_global_state():
    """Importing a helper sets no seeds, styles or rcParams."""
    code = (
        "import matplotlib, numpy, torch;"
        "rc = dict(matplotlib.rcParams); np_state = numpy.random.get_state()[1].copy();"
        "torch.manual_seed(5); t_state = torch.get_rng_state();"
        "import helpers, helpers.bn, helpers.gradcheck, helpers.data, helpers.models, helpers.training;"
        "assert dict(matplotlib.rcParams) == rc;"
        "assert (numpy.random.get_state()[1] == np_state).all();"
        "assert torch.equal(torch.get_rng_state(), t_state)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_numpy_reference_modules_use_numpy_alone():
    for name in ("bn.py", "gradcheck.py"):
        source = (ROOT / "helpers" / name).read_text()
        imports = set(re.findall(r"^(?:from|import) ([\w.]+)", source, re.M))
        # helpers.i18n: the messages in the learner's language (stdlib gettext, no other import
        # at module level), so that bn.py still runs with numpy alone.
        assert imports <= {"__future__", "dataclasses", "numpy", "helpers.i18n"}, (name, imports)
    i18n = (ROOT / "helpers" / "i18n.py").read_text()
    assert set(re.findall(r"^(?:from|import) ([\w.]+)", i18n, re.M)) <= {"__future__", "gettext", "pathlib"}
