"""Run notebooks and code on fresh Jupyter kernels, the way a learner's JupyterLab would.

Used by the test suite (tests/test_notebooks.py, tests/test_widgets.py):

- ``execute_notebook(path)`` runs a notebook top to bottom on a fresh kernel, from the
  notebook's own folder, offline, and returns how long each cell took. A failing cell raises
  ``NotebookCellError`` whose message names the notebook, the cell number and the traceback
  (plain text, without the terminal colour codes Jupyter puts in tracebacks).
- ``KernelSession`` keeps one kernel open and runs code snippets on it. It answers comm
  messages like a front end does (nbclient's Output widget support), so an ``Output`` widget's
  ``outputs`` really fill in when the widget draws.

The kernel runs ``python`` (by default the interpreter running the tests) through a kernel
spec written to a temporary folder, so the kernel is always the Python under test, never
whatever "python3" happens to point at on the machine.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

#: What every test kernel sees on top of the environment: no progress bars, and no network.
#: The proxies point at a closed local port, so a notebook that tries to download anything
#: over HTTP(S) fails at once instead of silently needing the internet.
KERNEL_ENV = {
    "BATCHNORM_COURSE_PROGRESS": "0",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "ALL_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "all_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "",
    "no_proxy": "",
}

KERNEL_NAME = "course-test-python"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour codes (Jupyter tracebacks are full of them)."""
    return ANSI_ESCAPE.sub("", text)


class NotebookCellError(AssertionError):
    """A notebook cell raised (or timed out, or killed the kernel); the message says where."""


def kernel_manager(folder: Path, python: str | None = None, env: dict | None = None) -> KernelManager:
    """A KernelManager for ``python`` (default: this interpreter) whose spec lives in ``folder``."""
    spec_dir = Path(folder) / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [python or sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (course tests)",
        "language": "python",
        "env": {**KERNEL_ENV, "IPYTHONDIR": str(Path(folder) / "ipython"), **(env or {})},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    specs = KernelSpecManager(kernel_dirs=[str(spec_dir.parent)], ensure_native_kernel=False)
    return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)


def source_of(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def describe_failure(where: str, index: int, cells: list, reason: str) -> str:
    """A readable report: where, which cell (1-based, as a reader counts), its code, the error."""
    cell = cells[index]
    code_number = sum(1 for c in cells[: index + 1] if c.cell_type == "code")
    code = source_of(cell).splitlines()
    shown = "\n".join(f"    {line}" for line in code[:20])
    if len(code) > 20:
        shown += f"\n    ... ({len(code) - 20} more lines)"
    return (
        f"{where}: cell {index + 1} of {len(cells)} (code cell {code_number}) failed.\n"
        f"  The cell:\n{shown}\n"
        f"  What went wrong:\n{reason}"
    )


def error_report(cell, exception: Exception) -> str:
    """The traceback of a failed cell as plain text."""
    errors = [out for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    if errors:
        error = errors[-1]
        traceback = strip_ansi("\n".join(error.get("traceback", []))).rstrip()
        last_line = f"{error['ename']}: {strip_ansi(error['evalue'])}"
        return traceback if traceback.endswith(last_line) else f"{traceback}\n{last_line}"
    return strip_ansi(str(exception))


@dataclass
class ExecutedNotebook:
    """A notebook after a run: the executed copy, its widget state (and the binary buffers of
    that state, such as an Image widget's PNG), and the time each cell took."""

    path: Path
    notebook: nbformat.NotebookNode
    widget_state: dict
    cell_seconds: list = field(default_factory=list)
    widget_buffers: dict = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(self.cell_seconds)


def execute_notebook(path: Path, timeout: float = 600, python: str | None = None,
                     name: str | None = None) -> ExecutedNotebook:
    """Run the notebook at ``path`` on a fresh kernel, from its folder; raise NotebookCellError.

    ``timeout`` is per cell, in seconds. The notebook file is not changed.
    """
    path = Path(path)
    name = name or path.name
    notebook = nbformat.read(path, as_version=4)
    # ignore_cleanup_errors: a kernel that is still shutting down may write into its folder
    # while it is removed ("Directory not empty: 'profile_default'", seen under load).
    with tempfile.TemporaryDirectory(prefix="course-kernel-", ignore_cleanup_errors=True) as folder:
        client = NotebookClient(
            notebook,
            km=kernel_manager(Path(folder), python),
            timeout=timeout,
            allow_errors=False,
            record_timing=True,
            resources={"metadata": {"path": str(path.parent)}},
        )
        cell_seconds = []
        with client.setup_kernel():
            for index, cell in enumerate(notebook.cells):
                started = time.perf_counter()
                try:
                    client.execute_cell(cell, index)
                except CellTimeoutError as error:
                    reason = f"    the cell ran longer than {timeout:.0f} s ({strip_ansi(str(error))})"
                    raise NotebookCellError(describe_failure(name, index, notebook.cells, reason)) from None
                except DeadKernelError as error:
                    reason = f"    the kernel died ({error}); out of memory, or a crash in native code?"
                    raise NotebookCellError(describe_failure(name, index, notebook.cells, reason)) from None
                except CellExecutionError as error:
                    reason = error_report(cell, error)
                    raise NotebookCellError(describe_failure(name, index, notebook.cells, reason)) from None
                cell_seconds.append(time.perf_counter() - started)
        return ExecutedNotebook(path, notebook, dict(client.widget_state), cell_seconds,
                                {comm: dict(buffers) for comm, buffers in client.widget_buffers.items()})


class KernelSession:
    """One fresh kernel kept open to run snippets on (``with KernelSession(cwd) as kernel:``).

    ``kernel.run(code, label)`` runs ``code`` as a new cell and returns its outputs; an error
    raises NotebookCellError naming ``label`` and showing the traceback.
    """

    def __init__(self, cwd: Path, python: str | None = None, timeout: float = 300,
                 env: dict | None = None):
        self.cwd, self.python, self.timeout, self.env = Path(cwd), python, timeout, env
        self.notebook = nbformat.v4.new_notebook()
        self._folder = None
        self._client = None
        self._context = None

    def __enter__(self) -> KernelSession:
        self._folder = tempfile.mkdtemp(prefix="course-kernel-")
        self._client = NotebookClient(
            self.notebook,
            km=kernel_manager(Path(self._folder), self.python, self.env),
            timeout=self.timeout,
            allow_errors=False,
            resources={"metadata": {"path": str(self.cwd)}},
        )
        self._context = self._client.setup_kernel()
        self._context.__enter__()
        return self

    def __exit__(self, *exc_info):
        try:
            self._context.__exit__(*exc_info)
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)

    def run(self, code: str, label: str = "a snippet") -> list:
        """Run ``code`` in the kernel; return the cell's outputs."""
        cell = nbformat.v4.new_code_cell(code)
        self.notebook.cells.append(cell)
        index = len(self.notebook.cells) - 1
        try:
            self._client.execute_cell(cell, index)
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
            raise NotebookCellError(f"{label} failed:\n{error_report(cell, error)}") from None
        return cell.outputs

    def value(self, expression: str, label: str = "an expression"):
        """The value of a JSON-serializable ``expression``, evaluated in the kernel."""
        outputs = self.run(f"import json as _json\nprint(_json.dumps({expression}))", label)
        text = "".join(out.get("text", "") for out in outputs if out.get("name") == "stdout")
        return json.loads(text.strip().splitlines()[-1])


# --- what the widgets showed ------------------------------------------------------------------

#: The start of the Notice a panel shows when its compute or draw function raised
#: (helpers/panel.py): the learner sees it instead of a traceback, the tests treat it as one.
DRAW_FAILED = "These settings could not be drawn"


def output_widget_outputs(widget_state: dict) -> list[list]:
    """The outputs held by each ipywidgets Output widget in a kernel's widget state."""
    return [state.get("outputs", []) for state in widget_state.values()
            if state.get("_model_name") == "OutputModel"]


def panel_outputs(widget_state: dict, widget_buffers: dict) -> list[list]:
    """What each panel (``Panel.widget()``: a VBox with the DOM class "course-panel") shows in a
    kernel's widget state, as outputs like an Output widget's: its Image widget's PNG as an
    "image/png" output, or, when the image is empty, its Notice (the box's last child, an HTML
    widget) as a "text/html" output."""
    panels = []
    for state in widget_state.values():
        if "course-panel" not in state.get("_dom_classes", ()):
            continue
        children = [child.removeprefix("IPY_MODEL_") for child in state.get("children", [])]
        images = [child for child in children
                  if widget_state.get(child, {}).get("_model_name") == "ImageModel"]
        png = next((widget_buffers.get(child, {}).get(("value",), {}).get("data") for child in images), None)
        if png:
            panels.append([{"output_type": "display_data", "data": {"image/png": png}}])
            continue
        html = widget_state.get(children[-1], {}).get("value", "") if children else ""
        panels.append([{"output_type": "display_data", "data": {"text/html": html}}] if html else [])
    return panels


def shown_text(output) -> str:
    """Everything textual in one output (stream text, html, plain text, an error)."""
    if output.get("output_type") == "stream":
        return output.get("text", "")
    if output.get("output_type") == "error":
        return strip_ansi("\n".join(output.get("traceback", [])))
    data = output.get("data", {})
    return f"{data.get('text/html', '')}\n{data.get('text/plain', '')}"


def widget_problems(outputs: list) -> list[str]:
    """What is wrong with one Output widget's outputs: an error, or a panel that failed to draw."""
    problems = []
    for output in outputs:
        text = shown_text(output)
        if output.get("output_type") == "error":
            problems.append(f"an error inside a widget:\n{text}")
        elif DRAW_FAILED in text:
            html = output.get("data", {}).get("text/html", "")
            shown = re.sub(r"<[^>]+>", "", html).strip() if html else text.strip()
            problems.append(f"a panel could not draw: {shown}")
    return problems


def has_figure(outputs: list) -> bool:
    return any("image/png" in output.get("data", {}) for output in outputs)
