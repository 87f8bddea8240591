"""The course in a real JupyterLab, in a real browser (Debian's Chromium, driven by Playwright).

For each notebook: open it, run all cells, wait for the kernel to go idle, then check that no
cell shows an error, that the panels render (controls above a plot) and show their plot, and
that moving a control as a learner does (a slider with the keyboard, a dropdown to its next
option) changes the plotted image. Then, in every notebook with a live panel that has a slider,
one such slider is dragged with the mouse for about 2 s: at least two distinct frames must
arrive while the handle moves, and the frame shown after the release must be the one the
kernel renders for the released value (its bytes, and the slider's readout). No timing is
asserted; the frame counts are printed (run with -s to see them). JupyterLab serves a temporary copy of the
course (it writes into the notebooks it opens) on 127.0.0.1 with a token and its own config
(tools/lab.py). A failure saves a screenshot and prints where.

Also: the README's "open the course" command, run as written (plus --no-browser and a free
port), prints an address that opens the course map; the Chinese terms of the course map's
glossary are drawn with a font that has Chinese characters (Chromium's own report of the fonts
it used, through the DevTools protocol, checked against fontconfig, and their width), not as
boxes; the first panel of 02 is photographed for the README (docs/panel_in_jupyterlab.png,
rewritten with BATCHNORM_COURSE_UPDATE_SCREENSHOT=1).

Nothing is installed here: .ci/run installs chromium and a CJK font (fonts-noto-cjk) with apt
when they are missing and sets BATCHNORM_COURSE_REQUIRE_BROWSER=1, under which a missing
browser or CJK font fails the test; elsewhere the tests skip, saying why, only when they
cannot be had at all.

The tests named "fixture" check the check itself on tests/fixtures/course (a good notebook,
and copies with a failing cell and with a widget whose draw function raises).
"""

import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tools.lab import (
    NOTEBOOK_OPEN,
    Browser,
    LabServer,
    check_notebook,
    cjk_font_families,
    cjk_problems,
    course_copy,
    drag_a_slider,
    find_chromium,
    hard_timeout,
    mark_probe,
    mark_term,
    panel_screenshot,
    show_problem,
)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: The Chinese notebook the browser test opens too (its panels, labels and prose in Chinese).
CHINESE_NOTEBOOK = ROOT / "notebooks" / "zh" / "02_forward_transform.ipynb"
#: A term of its prose, and the Chinese a learner must see in its panels' controls.
CHINESE_PROSE_TERM = "批归一化"
CJK = re.compile(r"[\u4e00-\u9fff]")
FIXTURES = ROOT / "tests" / "fixtures" / "course" / "notebooks"
REQUIRED = os.environ.get("BATCHNORM_COURSE_REQUIRE_BROWSER") == "1"
#: Hard limits: starting JupyterLab and Chromium; one notebook, from opening it to moving a
#: control; and the whole browser job (all notebooks), so that CI always ends in good time.
START_SECONDS, NOTEBOOK_SECONDS, JOB_SECONDS = 240, 600, 1800
COURSE_MAP = "notebooks/00_course_map.ipynb"
#: A glossary term of the course map that must show as Chinese characters (batch normalization).
CJK_TERM = "批归一化"
#: Four private-use characters: no font has them, so they show as boxes (to check the check).
BOXES = "\ue000\ue001\ue002\ue003"
#: The README's picture of a panel in JupyterLab: the first panel of this notebook, taken by its
#: test below; BATCHNORM_COURSE_UPDATE_SCREENSHOT=1 writes it to SCREENSHOT.
SCREENSHOT_NOTEBOOK = "02_forward_transform.ipynb"
SCREENSHOT = ROOT / "docs" / "panel_in_jupyterlab.png"
SCREENSHOT_MAX_BYTES = 150_000

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


def problems_in_lab(lab, path: str, on_success=None) -> tuple[list[str], Path | None]:
    """Run ``check_notebook`` on a new page; on failure save a screenshot, on success call
    ``on_success(page)`` if given (the problems it returns, if any, count too). Always clean up."""
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
            if not problems and on_success is not None:
                try:
                    problems = list(on_success(page) or [])
                except Exception as error:
                    problems = [f"{type(error).__name__}: {error}"]
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


def has_live_slider(notebook: Path) -> bool:
    """Whether one of the notebook's panels (helpers/panels/<slug>.py) is live and has a slider
    that applies at its defaults: then the browser test must find one to drag."""
    import importlib

    slug = notebook.stem.split("_", 1)[1]
    try:
        panels = importlib.import_module(f"helpers.panels.{slug}").PANELS
    except ImportError:
        return False
    return any(panel.live and any(control.kind in ("int", "float", "log") and applies
                                  for control, applies in zip(panel.controls,
                                                              panel.active(panel.defaults()).values()))
               for panel in panels)


CONTROL_LABELS = """() => [...document.querySelectorAll('.jp-OutputArea .widget-label, .jp-OutputArea select option')]
    .map((element) => element.textContent.trim()).filter((text) => text)"""


def chinese_problems(page, cjk_families: set[str]) -> list[str]:
    """Why the open Chinese notebook does not read as Chinese: a prose term drawn with no Chinese
    font, or panel controls whose labels carry no Chinese."""
    problems = []
    if not mark_term(page, CHINESE_PROSE_TERM):
        problems.append(f"the rendered Markdown does not show {CHINESE_PROSE_TERM}")
    else:
        problems += cjk_problems(page, CHINESE_PROSE_TERM, cjk_families)
    labels = page.evaluate(CONTROL_LABELS)
    chinese = [label for label in labels if CJK.search(label)]
    if not chinese:
        problems.append(f"no panel control label is in Chinese: {labels[:8]}")
    else:
        print(f"Chinese control labels: {chinese[:6]}")
    return problems


@pytest.mark.parametrize("notebook", [*NOTEBOOKS, CHINESE_NOTEBOOK],
                         ids=lambda path: path.relative_to(ROOT / "notebooks").as_posix())
def test_notebook_runs_in_jupyterlab_moving_a_control_redraws_and_dragging_shows_frames(notebook, lab,
                                                                                        record_timing):
    path = notebook.relative_to(ROOT).as_posix()
    picture = lab[0].workdir / "readme" / SCREENSHOT.name
    must_drag = has_live_slider(notebook)
    screenshot = notebook == ROOT / "notebooks" / SCREENSHOT_NOTEBOOK
    cjk_families = cjk_fonts() if notebook == CHINESE_NOTEBOOK else None

    def after_the_checks(page):
        problems = chinese_problems(page, cjk_families) if cjk_families is not None else []
        if screenshot:
            panel_screenshot(page, picture)
        dragged = drag_a_slider(page)
        if dragged is None:
            return problems + (["no live panel with an enabled slider to drag"] if must_drag else [])
        print(f"\n{path}: dragging {dragged['panel']!r} for 2 s: {dragged['frames']} distinct "
              f"frames during the drag, {dragged['frames_after_release']} after the release "
              f"(readout {dragged['readout']})")
        return problems + dragged["problems"]

    started = time.perf_counter()
    problems, shot = problems_in_lab(lab, path, on_success=after_the_checks)
    record_timing("browser: open, run all, move a control, drag a slider", path,
                  time.perf_counter() - started)
    if problems:
        pytest.fail(report(path, problems, shot), pytrace=False)
    if screenshot:
        size = picture.stat().st_size
        assert 10_000 < size <= SCREENSHOT_MAX_BYTES, f"the README's picture {picture} has {size} bytes"
        if os.environ.get("BATCHNORM_COURSE_UPDATE_SCREENSHOT") == "1":
            shutil.copy(picture, SCREENSHOT)
            print(f"wrote {SCREENSHOT} ({size} bytes)")


# --- the README's "open the course" command, and the Chinese terms ------------------------------


def readme_open_command() -> list[str]:
    """The jupyter part of the README's "open the course" command (after ``&&``), as run by the
    Python running the tests (the command says ``python``)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = shlex.split(re.findall(r"```bash\n(.*?)```", readme, re.S)[0].split("&&")[-1])
    assert command[0] in ("python", "python3") and command[1:4] == ["-m", "jupyter", "lab"], command
    return [sys.executable, *command[1:]]


@pytest.fixture(scope="module")
def readme_lab(lab):
    """The README's open command, run from the course folder (as root too, where the tests run
    as root), with a page open at the address it prints."""
    server, browser, _, _ = lab
    command = readme_open_command()
    with ExitStack() as running:
        with hard_timeout(START_SECONDS, "starting the README's open command"):
            readme = running.enter_context(LabServer(server.root, server.workdir.parent / "readme-lab",
                                                     open_command=command))
        page = browser.new_page()
        running.callback(page.close)
        yield readme, page, command


def course_map_open(readme, page) -> None:
    """The README's printed address open in ``page`` with the course map showing (each test
    that needs it calls this, so no test relies on another having run before it)."""
    if not page.evaluate(NOTEBOOK_OPEN, COURSE_MAP):
        page.goto(readme.printed_url)
    page.wait_for_function(NOTEBOOK_OPEN, arg=COURSE_MAP, timeout=120_000, polling=250)


def test_readme_open_command_prints_the_address_of_the_course_map(readme_lab):
    readme, page, command = readme_lab
    assert readme.printed_url, f"{' '.join(command)} printed no address:\n{readme.log_tail()}"
    page.goto(readme.printed_url)
    try:
        page.wait_for_function(NOTEBOOK_OPEN, arg=COURSE_MAP, timeout=120_000, polling=250)
    except Exception as error:  # Playwright's TimeoutError: say what opened instead
        opened = page.evaluate("() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                               " return w ? (w.context ? w.context.path : w.title.label) : null; }")
        pytest.fail(f"the address {' '.join(command)} prints, {readme.printed_url}, opens {opened!r}, "
                    f"not the course map ({type(error).__name__})", pytrace=False)


def cjk_fonts() -> set[str]:
    """The fonts with Chinese characters; a missing font fails (CI) or skips the test."""
    families = cjk_font_families()
    if families is None:
        reason = "fc-list (fontconfig) is missing: cannot tell which fonts have Chinese characters"
    elif not families:
        reason = (f"no font with Chinese characters is installed, so the Chinese terms ({CJK_TERM}...) "
                  "show as boxes")
    else:
        return families
    if REQUIRED:
        pytest.fail(f"{reason}; install one: apt-get install fonts-noto-cjk "
                    "(BATCHNORM_COURSE_REQUIRE_BROWSER=1: the browser test must check them)", pytrace=False)
    pytest.skip(f"{reason}; install one: apt-get install fonts-noto-cjk (.ci/run does)")


def test_chinese_terms_of_the_course_map_show_as_characters_not_boxes(readme_lab):
    families = cjk_fonts()
    readme, page, _ = readme_lab
    course_map_open(readme, page)
    page.wait_for_function(
        "(term) => [...document.querySelectorAll('.jp-RenderedMarkdown')].some((m) => m.innerText.includes(term))",
        arg=CJK_TERM, timeout=60_000, polling=250)
    assert mark_term(page, CJK_TERM), f"the course map's rendered Markdown does not show {CJK_TERM}"
    problems = cjk_problems(page, CJK_TERM, families)
    assert not problems, "in the course map's glossary, in JupyterLab:\n" + "\n".join(problems)


def test_fixture_boxes_fail_the_chinese_characters_check(readme_lab):
    families = cjk_fonts()
    readme, page, _ = readme_lab
    course_map_open(readme, page)
    mark_probe(page, BOXES)
    problems = cjk_problems(page, BOXES, families)
    assert len(problems) == 2, problems
    assert "not a font with Chinese characters" in problems[0] and "a learner sees boxes" in problems[0]
    assert "em per character wide" in problems[1]
    mark_probe(page, CJK_TERM)  # the same term outside the notebook passes
    assert cjk_problems(page, CJK_TERM, families) == []


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
