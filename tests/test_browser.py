"""The course in a real JupyterLab, in a real browser (Debian's Chromium, driven by Playwright).

For each notebook: open it, run all cells, wait for the kernel to go idle, then check that no
cell shows an error, that the panels render (controls above a plot) and show their plot, and
that moving a control as a learner does (a slider with the keyboard, a dropdown to its next
option) changes the plotted image. JupyterLab serves a temporary copy of the
course (it writes into the notebooks it opens) on 127.0.0.1 with a token and its own config
(tools/lab.py). A failure saves a screenshot and prints where.

Nothing is installed here: .ci/run installs chromium with apt when it is missing and sets
BATCHNORM_COURSE_REQUIRE_BROWSER=1, under which a missing browser fails the test; elsewhere
the tests skip, saying why, only when no browser can be had at all.

The tests named "fixture" check the check itself on tests/fixtures/course (a good notebook,
and copies with a failing cell and with a widget whose draw function raises).
"""

import json
import os
import shutil
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tools.lab import (
    Browser,
    LabServer,
    check_notebook,
    course_copy,
    find_chromium,
    hard_timeout,
    show_problem,
)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FIXTURES = ROOT / "tests" / "fixtures" / "course" / "notebooks"
REQUIRED = os.environ.get("BATCHNORM_COURSE_REQUIRE_BROWSER") == "1"
#: Hard limits: starting JupyterLab and Chromium; one notebook, from opening it to moving a
#: control; and the whole browser job (all notebooks), so that CI always ends in good time.
START_SECONDS, NOTEBOOK_SECONDS, JOB_SECONDS = 240, 600, 1800

# All browser tests share one JupyterLab and one Chromium: under pytest-xdist they run on one
# worker (--dist loadgroup), while the other worker runs the rest of the suite.
pytestmark = pytest.mark.xdist_group("browser")


def no_browser(reason: str):
    if REQUIRED:
        pytest.fail(f"{reason} (BATCHNORM_COURSE_REQUIRE_BROWSER=1: the browser test must run)")
    pytest.skip(f"{reason}; .ci/run installs it (apt-get install chromium)")


def broken_copies(folder: Path) -> None:
    """Two fixture notebooks broken on purpose, next to the good ones."""
    good = json.loads((FIXTURES / "01_tiny_panel.ipynb").read_text(encoding="utf-8"))
    for name, old, new in [
        ("broken_cell.ipynb", "line_panel.widget()", "undefined_name + 1\nline_panel.widget()"),
        ("broken_draw.ipynb", "    return figure", "    raise RuntimeError('broken draw')"),
    ]:
        notebook = json.loads(json.dumps(good))
        for cell in notebook["cells"]:
            cell["source"] = [line.replace(old, new) for line in cell["source"]]
        (folder / name).write_text(json.dumps(notebook), encoding="utf-8")


@pytest.fixture(scope="module")
def lab():
    """JupyterLab on a copy of the course (the fixture notebooks in fixtures/), and a browser."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        no_browser("Playwright is not installed (requirements-dev.txt installs it)")
    chromium = find_chromium()
    if chromium is None:
        no_browser("Chromium is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="course-browser-"))
    course = course_copy(workdir / "course")
    shutil.copytree(FIXTURES, course / "fixtures")
    broken_copies(course / "fixtures")
    screenshots = workdir / "screenshots"
    screenshots.mkdir()
    try:
        with ExitStack() as running:
            with hard_timeout(START_SECONDS, "starting JupyterLab and Chromium"):
                server = running.enter_context(LabServer(course, workdir / "lab"))
                browser = running.enter_context(Browser(chromium))
            yield server, browser, screenshots, time.monotonic() + JOB_SECONDS
    finally:
        if not any(screenshots.iterdir()):  # keep the folder only for the screenshots of failures
            shutil.rmtree(workdir, ignore_errors=True)


def problems_in_lab(lab, path: str) -> tuple[list[str], Path | None]:
    """Run ``check_notebook`` on a new page; on failure save a screenshot. Always clean up."""
    server, browser, screenshots, job_deadline = lab
    seconds = min(NOTEBOOK_SECONDS, job_deadline - time.monotonic())
    if seconds <= 0:
        return [f"the browser job ran over its {JOB_SECONDS} s budget before reaching {path}"], None
    page = browser.new_page()
    shot = None
    try:
        with hard_timeout(seconds, f"checking {path} in JupyterLab"):
            try:
                problems = check_notebook(page, server, path)
            except Exception as error:  # a wait that timed out, a page that crashed...
                problems = [f"{type(error).__name__}: {error}",
                            f"JupyterLab's log ends:\n{server.log_tail(1500)}"]
            if problems:
                shot = screenshots / (Path(path).stem + ".png")
                show_problem(page)
                try:
                    page.screenshot(path=str(shot))
                except Exception as error:
                    problems.append(f"(no screenshot: {error})")
                    shot = None
    finally:
        page.close()
        server.delete_sessions()
    return problems, shot


def report(path: str, problems: list[str], shot: Path | None) -> str:
    lines = [f"{path} in JupyterLab + Chromium:", *(f"  - {problem}" for problem in problems)]
    if shot:
        lines.append(f"  screenshot: {shot}")
        print(f"screenshot of the failure: {shot}")
    return "\n".join(lines)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_in_jupyterlab_and_moving_a_control_redraws_the_plot(notebook, lab, record_timing):
    path = f"notebooks/{notebook.name}"
    started = time.perf_counter()
    problems, shot = problems_in_lab(lab, path)
    record_timing("browser: open, run all, move a control", notebook.name, time.perf_counter() - started)
    if problems:
        pytest.fail(report(path, problems, shot), pytrace=False)


def test_fixture_notebook_passes_in_the_browser(lab):
    problems, shot = problems_in_lab(lab, "fixtures/01_tiny_panel.ipynb")
    assert not problems, report("fixtures/01_tiny_panel.ipynb", problems, shot)


def test_fixture_a_failing_cell_fails_in_the_browser_with_its_traceback(lab):
    problems, shot = problems_in_lab(lab, "fixtures/broken_cell.ipynb")
    assert problems and problems[0].startswith("cell 7: NameError: name 'undefined_name' is not defined")
    assert shot is not None and shot.is_file()
    shot.unlink()  # expected: not worth keeping


def test_fixture_a_widget_whose_draw_raises_fails_in_the_browser(lab):
    problems, shot = problems_in_lab(lab, "fixtures/broken_draw.ipynb")
    assert any("could not be drawn (RuntimeError: broken draw)" in problem for problem in problems), problems
    shot.unlink()
