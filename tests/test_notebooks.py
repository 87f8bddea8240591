"""Every notebook runs top to bottom on a fresh kernel, offline, in its quick default.

Each notebook in notebooks/ is found automatically and executed as a learner's "Run all" would:
a fresh kernel (the Python running the tests), the notebook's own folder as the working
directory, no progress bars, and no network (tools/kernels.py routes HTTP through a closed
port). A failing cell fails the test with the notebook's name, the cell number, its code and
the traceback. The notebook's widgets must draw their default figure before any interaction,
and none may show a "could not be drawn" notice.

The last tests check the harness itself on the small fixture course in tests/fixtures/.
"""

import json
import time
from pathlib import Path

import pytest

from tools.kernels import (
    NotebookCellError,
    execute_notebook,
    has_figure,
    output_widget_outputs,
    panel_outputs,
    widget_problems,
)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FIXTURES = ROOT / "tests" / "fixtures" / "course" / "notebooks"


def run_and_check(path: Path, name: str):
    """Execute ``path``; fail on a cell error or on widgets that drew nothing or failed to draw."""
    executed = execute_notebook(path, name=name)
    widgets = (panel_outputs(executed.widget_state, executed.widget_buffers)
               + output_widget_outputs(executed.widget_state))
    problems = [problem for outputs in widgets for problem in widget_problems(outputs)]
    assert not problems, f"{name}: " + "\n".join(problems)
    assert any(has_figure(outputs) for outputs in widgets), (
        f"{name}: no widget drew a figure when the notebook ran (found {len(widgets)} panel or "
        "Output widget(s)); every notebook shows at least one panel that draws its default plot "
        "before any interaction (panel.widget() as the last line of a cell)"
    )
    return executed


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_top_to_bottom_on_a_fresh_kernel(path, record_timing):
    started = time.perf_counter()
    try:
        run_and_check(path, f"notebooks/{path.name}")
    except NotebookCellError as error:
        pytest.fail(str(error), pytrace=False)  # the notebook's traceback, not the harness's
    finally:
        record_timing("notebook run", path.name, time.perf_counter() - started)


# --- the harness checks itself on the fixture course ---------------------------------------


def variant(tmp_path: Path, name: str, edit) -> Path:
    """A copy of a fixture notebook in tmp_path, changed by ``edit(notebook_json)``."""
    notebook = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    edit(notebook)
    path = tmp_path / name
    path.write_text(json.dumps(notebook), encoding="utf-8")
    return path


def code_cell(notebook, text_in_cell: str) -> dict:
    return next(cell for cell in notebook["cells"]
                if cell["cell_type"] == "code" and text_in_cell in "".join(cell["source"]))


def test_harness_runs_the_fixture_notebook_and_sees_its_widget_draw():
    executed = run_and_check(FIXTURES / "01_tiny_panel.ipynb", "fixture 01_tiny_panel.ipynb")
    assert executed.seconds > 0


def test_harness_reports_a_failing_cell_with_notebook_cell_number_and_traceback(tmp_path):
    def break_a_cell(notebook):
        code_cell(notebook, "def compute_line")["source"].append("\nundefined_name + 1\n")

    path = variant(tmp_path, "01_tiny_panel.ipynb", break_a_cell)
    with pytest.raises(NotebookCellError) as failure:
        execute_notebook(path, name="broken.ipynb")
    message = str(failure.value)
    assert "broken.ipynb: cell 6 of 9 (code cell 3) failed" in message
    assert "undefined_name + 1" in message  # the cell's code
    assert "NameError: name 'undefined_name' is not defined" in message  # the traceback
    assert "\x1b[" not in message  # plain text, no terminal colour codes


def test_harness_reports_a_widget_whose_callback_raises(tmp_path):
    def break_the_draw_function(notebook):
        cell = code_cell(notebook, "def draw_line")
        cell["source"] = [line.replace("    return figure", "    raise RuntimeError('broken draw')")
                          for line in cell["source"]]

    path = variant(tmp_path, "01_tiny_panel.ipynb", break_the_draw_function)
    with pytest.raises(AssertionError, match="a panel could not draw.*RuntimeError: broken draw"):
        run_and_check(path, "broken.ipynb")


def test_harness_runs_notebooks_offline(tmp_path):
    def download_something(notebook):
        code_cell(notebook, "def compute_line")["source"].append(
            "\nimport urllib.request\nurllib.request.urlopen('http://example.com', timeout=5)\n")

    path = variant(tmp_path, "01_tiny_panel.ipynb", download_something)
    with pytest.raises(NotebookCellError, match="URLError"):
        execute_notebook(path, name="online.ipynb")
