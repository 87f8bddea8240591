"""Open the course in a real JupyterLab, in a real browser, and use it as a learner does.

Used by tests/test_browser.py:

- ``course_copy(folder)`` copies the course (helpers/, data/, notebooks/, pyproject.toml) into a
  temporary folder: JupyterLab writes into the notebooks it opens, and the copy lets the setup
  cell's own "find the course folder" logic do the work.
- ``LabServer`` starts JupyterLab on 127.0.0.1 with a random token and private config,
  runtime, settings and workspace folders (nothing of the user's own JupyterLab is read or
  written), offline kernels, and the app exposed to the page (``window.jupyterapp``).
- ``Browser`` starts Debian's Chromium through Playwright.
- ``check_notebook(page, lab, path)`` opens a notebook, runs all cells, waits for the kernel to
  go idle, and returns what went wrong: error outputs, widgets that do not render, a slider
  (or dropdown) whose move does not change the plotted image.
- ``drag_a_slider(page)`` then drags a live panel's slider with the mouse for about 2 s and
  reports the distinct frames that arrived during the drag, and whether the frame shown after
  the release is the one the kernel renders for the released value.
- ``LabServer(root, workdir, open_command=[...])`` runs the README's "open the course" command
  instead, and reads the address it prints.
- ``mark_term`` / ``cjk_problems`` ask Chromium (DevTools protocol) which fonts drew a Chinese
  term and check them against fontconfig's fonts with Chinese characters, and the term's width:
  boxes instead of characters are found.
- ``panel_screenshot(page, path)`` takes the README's small picture of a panel in JupyterLab.

Waits ask JupyterLab itself (``window.jupyterapp``: the notebook's session context and cell
models), not the look of the toolbar, so they do not depend on the theme or the layout.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from tools.kernels import KERNEL_ENV, strip_ansi

ROOT = Path(__file__).resolve().parent.parent
COURSE_PARTS = ("helpers", "data", "notebooks", "pyproject.toml")
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
#: Flags known to work for Debian's Chromium in a container (no sandbox, no GPU, no calls home).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: JupyterLab user settings for the test server: no news or update checks (they reach out to
#: the internet and pop up a notification over the notebook).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
    # JupyterLab 4 leaves cells out of the page while they are scrolled out of view; the test
    # needs every cell's output in the page.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def find_chromium() -> str | None:
    """The path of a Chromium the tests can drive, or None."""
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def hard_timeout(seconds: float, what: str):
    """Raise TimeoutError in the main thread if the block takes longer than ``seconds``."""

    def give_up(signum, frame):
        raise TimeoutError(f"{what} took longer than {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def course_copy(destination: Path, notebooks: Path | None = None) -> Path:
    """Copy the course into ``destination`` (the notebooks from ``notebooks`` if given)."""
    destination.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")
    for part in COURSE_PARTS:
        source = notebooks if (part == "notebooks" and notebooks) else ROOT / part
        if source.is_dir():
            shutil.copytree(source, destination / part, ignore=ignore)
        elif source.is_file():
            shutil.copy2(source, destination / part)
    (destination / "notebooks").mkdir(exist_ok=True)
    return destination


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LabServer:
    """JupyterLab serving ``root`` on 127.0.0.1, with everything private under ``workdir``.

    ``with LabServer(root, workdir) as lab:`` then ``lab.url_of("notebooks/x.ipynb")``.

    ``LabServer(root, workdir, open_command=[...])`` runs a given command instead (the README's
    "open the course" command, from ``root``), adding only what a test needs: no browser of its
    own, a free port, and the app exposed to the page. Its token is read from the URL it prints
    (``printed_url``)."""

    def __init__(self, root: Path, workdir: Path, startup_seconds: float = 120,
                 open_command: list[str] | None = None):
        self.root, self.workdir, self.startup_seconds = Path(root), Path(workdir), startup_seconds
        self.open_command = open_command
        self.port = free_port()
        self.token = None if open_command else secrets.token_hex(16)
        self.printed_url = None
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / "jupyterlab.log"
        self.process = None

    def environment(self) -> dict:
        dirs = {name: self.workdir / name for name in ("config", "runtime", "settings", "workspaces", "ipython")}
        for folder in dirs.values():
            folder.mkdir(parents=True, exist_ok=True)
        for name, values in LAB_SETTINGS.items():
            path = dirs["settings"] / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values), encoding="utf-8")
        return {
            **os.environ,
            **KERNEL_ENV,  # the kernels inherit it: offline, no progress bars
            "JUPYTER_CONFIG_DIR": str(dirs["config"]),
            "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
            "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
            "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
            "IPYTHONDIR": str(dirs["ipython"]),
            # the "python3" kernel runs `python`: make that the Python running the tests
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            # In a virtual environment made with --system-site-packages, the widget front end
            # (a JupyterLab extension) may live in the base Python's share/jupyter, which
            # JupyterLab does not search by itself; without it widgets show as plain text.
            "JUPYTER_PATH": os.pathsep.join(dict.fromkeys(
                [*filter(None, [os.environ.get("JUPYTER_PATH")]),
                 str(Path(sys.prefix) / "share" / "jupyter"),
                 str(Path(sys.base_prefix) / "share" / "jupyter")])),
        }

    def command(self) -> list[str]:
        if self.open_command:
            return [*self.open_command, "--no-browser", f"--port={self.port}",
                    "--ServerApp.port_retries=0", "--LabApp.expose_app_in_browser=True"]
        return [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
            "--ip=127.0.0.1", f"--port={self.port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
            "--LabApp.expose_app_in_browser=True",
        ]

    def __enter__(self) -> LabServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command(), cwd=self.root, env=self.environment(),
                                            stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + self.startup_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"JupyterLab exited at start (code {self.process.returncode}):\n{self.log_tail()}")
            if self.token is None:
                self.read_printed_url()
            try:
                if self.token is not None:
                    self.api("GET", "/api/status")
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"JupyterLab did not answer within {self.startup_seconds:.0f} s:\n{self.log_tail()}")

    def __exit__(self, *exc_info):
        self.stop()

    def read_printed_url(self) -> None:
        """Take the address JupyterLab printed for 127.0.0.1 (and its token) from the log."""
        match = re.search(rf"(http://127\.0\.0\.1:{self.port}/\S*[?&]token=(\w+))", self.log_tail(20_000))
        if match:
            self.printed_url, self.token = match.groups()

    def api(self, method: str, path: str):
        """Call the server's REST API; return the decoded JSON (or None)."""
        request = urllib.request.Request(self.base + path, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
        with opener.open(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def delete_sessions(self) -> None:
        """Shut down every kernel session the browser started."""
        for session in self.api("GET", "/api/sessions") or []:
            self.api("DELETE", f"/api/sessions/{session['id']}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.delete_sessions()
        except OSError:
            pass
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)

    def url_of(self, path: str) -> str:
        """The address that opens ``path`` (relative to the root) in a fresh workspace."""
        return f"{self.base}/lab/tree/{path}?reset&token={self.token}"

    def log_tail(self, characters: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-characters:]
        except OSError:
            return "(no log)"


class Browser:
    """Debian's Chromium driven by Playwright: ``with Browser(executable) as browser:``."""

    def __init__(self, executable: str):
        self.executable = executable

    def __enter__(self) -> Browser:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        try:
            # Playwright gives the browser a fresh temporary profile (--user-data-dir) itself.
            self.browser = self._playwright.chromium.launch(
                executable_path=self.executable, args=CHROMIUM_ARGS, headless=True)
        except Exception:
            self._playwright.stop()
            raise
        return self

    def __exit__(self, *exc_info):
        try:
            self.browser.close()
        finally:
            self._playwright.stop()

    def new_page(self):
        page = self.browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        return page


# --- one notebook, as a learner runs it ---------------------------------------------------------

NOTEBOOK_READY = """(path) => {
    const app = window.jupyterapp;
    const panel = app && app.shell.currentWidget;
    if (!panel || !panel.context || panel.context.path !== path || !panel.sessionContext) return false;
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    return Boolean(kernel) && kernel.status === 'idle';
}"""

#: The notebook at ``path`` is the open document (its kernel may still be starting).
NOTEBOOK_OPEN = """(path) => {
    const app = window.jupyterapp;
    const panel = app && app.shell.currentWidget;
    return Boolean(panel && panel.context && panel.context.path === path);
}"""

RUN_ALL = """() => {
    window.__courseRunAll = 'running';
    window.jupyterapp.commands.execute('notebook:run-all-cells').then(
        (ok) => { window.__courseRunAll = ok === false ? 'stopped' : 'done'; },
        (error) => { window.__courseRunAll = 'failed: ' + error; });
}"""

RUN_ALL_FINISHED = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    return window.__courseRunAll !== 'running' && Boolean(kernel) && kernel.status === 'idle';
}"""

#: Every code cell: its number, execution count and outputs (from the model, not the page).
CELLS = """() => window.jupyterapp.shell.currentWidget.content.widgets.map((cell, index) => ({
    index: index + 1,
    type: cell.model.type,
    count: cell.model.type === 'code' ? cell.model.executionCount : null,
    outputs: cell.model.type === 'code' ? cell.model.outputs.toJSON() : [],
}))"""

#: Panels on the page: widget boxes holding controls and an Image widget (Panel.widget()) or
#: an Output widget (a hand-made panel). ``imageOf`` is the plot a panel shows, if it shows one
#: (a Panel hides its Image while it shows a Notice). JupyterLab 4 renders only the cells in
#: view by default; the test server turns that off (LAB_SETTINGS), so every cell is in the page.
PANELS_JS = """
    const controlSelector = '.widget-slider .noUi-handle, .widget-slider .ui-slider-handle, '
        + '.widget-dropdown select, .widget-checkbox input';
    const notebook = window.jupyterapp.shell.currentWidget.node;
    const panels = [...notebook.querySelectorAll('.widget-vbox')].filter(
        (box) => box.querySelector(':scope > .widget-output, :scope > img.widget-image')
            && box.querySelector(controlSelector));
    const imageOf = (box) => {
        const image = box.querySelector(':scope > img.widget-image');
        if (image) return image.style.display !== 'none' && image.getAttribute('src') ? image : null;
        return box.querySelector(':scope > .widget-output img');
    };
"""

#: What the widgets look like on the page: panels, their plots, and widget errors.
WIDGETS_ON_PAGE = """() => {""" + PANELS_JS + """
    const errors = [...notebook.querySelectorAll('.jp-OutputArea-output')]
        .map((output) => output.innerText)
        .filter((text) => /Error displaying widget|Model not found|could not be drawn/.test(text));
    return {
        panels: panels.length,
        withImage: panels.filter(imageOf).length,
        errors: errors.map((text) => text.slice(0, 500)),
    };
}"""

#: The src of the plot in the first panel that shows one.
FIRST_PANEL_IMAGE = """() => {""" + PANELS_JS + """
    const box = panels.find((box) => box.hasAttribute('data-course-panel')) || panels.find(imageOf);
    const image = box && imageOf(box);
    return image ? image.src : null;
}"""

#: Mark the first panel that shows a plot, and its controls, so Playwright can use them.
MARK_CONTROLS = """() => {""" + PANELS_JS + """
    const box = panels.find(imageOf);
    if (!box) return [];
    box.setAttribute('data-course-panel', 'moved');
    return [...box.querySelectorAll(controlSelector)].map((element, index) => {
        element.setAttribute('data-course-control', String(index));
        const widget = element.closest('.widget-slider, .widget-dropdown, .widget-checkbox');
        const label = widget && widget.querySelector('.widget-label');
        return {
            kind: element.tagName === 'SELECT' ? 'dropdown'
                : element.tagName === 'INPUT' ? 'checkbox' : 'slider',
            label: label ? label.innerText.trim() : String(index),
            options: element.tagName === 'SELECT' ? element.options.length : 0,
            selected: element.tagName === 'SELECT' ? element.selectedIndex : 0,
        };
    });
}"""

#: Scroll the first cell with an error output, or else the first panel, into view.
SHOW_PROBLEM = """() => {""" + PANELS_JS + """
    const cells = window.jupyterapp.shell.currentWidget.content.widgets;
    const failed = cells.find((cell) => cell.model.type === 'code'
        && cell.model.outputs.toJSON().some((output) => output.output_type === 'error'));
    const target = failed ? failed.node : (notebook.querySelector('[data-course-panel]') || panels[0]);
    if (target) target.scrollIntoView({block: 'center'});
}"""


def error_outputs(cells: list) -> list[str]:
    """Readable reports of the error outputs in ``cells`` (from CELLS)."""
    reports = []
    for cell in cells:
        for output in cell["outputs"]:
            if output.get("output_type") == "error":
                traceback = strip_ansi("\n".join(output.get("traceback", [])))
                reports.append(f"cell {cell['index']}: {output.get('ename')}: "
                               f"{strip_ansi(output.get('evalue', ''))}\n{traceback}")
    return reports


def check_notebook(page, lab: LabServer, path: str, run_seconds: float = 600) -> list[str]:
    """Open ``path`` in JupyterLab, run all cells, move a control; return what went wrong."""
    page.goto(lab.url_of(path))
    page.wait_for_function(NOTEBOOK_READY, arg=path, timeout=120_000, polling=250)
    page.evaluate(RUN_ALL)
    page.wait_for_function(RUN_ALL_FINISHED, timeout=run_seconds * 1000, polling=500)
    problems = []
    status = page.evaluate("() => window.__courseRunAll")
    cells = page.evaluate(CELLS)
    problems += error_outputs(cells)
    if status != "done" and not problems:
        problems.append(f"'Run all' did not finish: {status}")
    not_run = [cell["index"] for cell in cells if cell["type"] == "code" and cell["count"] is None]
    if not_run and not problems:
        problems.append(f"code cells {not_run} were not run")
    if problems:
        return problems
    # Widgets render as widgets, then draw their figure: wait for the plots to arrive.
    try:
        page.wait_for_function(
            f"() => {{ const w = ({WIDGETS_ON_PAGE})();"
            " return w.errors.length > 0 || (w.panels > 0 && w.withImage === w.panels); }",
            timeout=30_000, polling=250)
    except Exception:  # reported below, with what the page shows
        pass
    widgets = page.evaluate(WIDGETS_ON_PAGE)
    problems += [f"a widget shows an error: {text}" for text in widgets["errors"]]
    if widgets["panels"] == 0:
        problems.append("no panel rendered (controls above a plot; a widget that did not load "
                        "shows as text instead)")
    elif widgets["withImage"] < widgets["panels"]:
        problems.append(f"{widgets['withImage']} of {widgets['panels']} panels show their plot "
                        "after 'Run all'")
    if problems:
        return problems
    return move_a_control(page)


def changed_image(page, before: str | None, seconds: float) -> bool:
    """Whether the moved panel's plot becomes a different image within ``seconds``."""
    try:
        page.wait_for_function(
            "(before) => { const now = (" + FIRST_PANEL_IMAGE + ")();"
            " return now !== null && now !== before; }",
            arg=before, timeout=seconds * 1000, polling=250)
        return True
    except Exception:  # Playwright's TimeoutError
        return False


def move_a_control(page, seconds_per_move: float = 20) -> list[str]:
    """Move the first panel's controls one at a time, as a learner would, until its plot changes.

    A slider: focus its handle and press ArrowRight (and ArrowLeft twice, in case it was at the
    end of its range); a dropdown: pick the next option; a checkbox: click it. Some controls
    only matter together with another (a group count while the choice is not GroupNorm), so
    trying them in turn is fair; none of them changing the plot is a failure."""
    controls = page.evaluate(MARK_CONTROLS)
    tried = []
    for index, control in enumerate(controls):
        element = page.locator(f"[data-course-control='{index}']")
        before = page.evaluate(FIRST_PANEL_IMAGE)
        if control["kind"] == "slider":
            element.focus()
            element.press("ArrowRight")
            if changed_image(page, before, seconds_per_move):
                return []
            element.press("ArrowLeft")
            element.press("ArrowLeft")
        elif control["kind"] == "dropdown":
            if control["options"] < 2:
                continue
            element.select_option(index=(control["selected"] + 1) % control["options"])
        else:
            element.click()
        if changed_image(page, before, seconds_per_move):
            return []
        tried.append(f"{control['label']} ({control['kind']})")
    return [f"moving the first panel's controls one at a time ({', '.join(tried) or 'none found'}) "
            "never changed its plot"]


# --- live dragging: frames while the handle moves, the released value's frame after ----------------

#: Mark the first live panel (a Panel whose sliders update while dragged: no "Updates on
#: release" line) that shows a plot and has an enabled slider; return that slider's index among
#: the panel's controls, or null.
MARK_DRAG = """() => {""" + PANELS_JS + """
    for (const box of panels) {
        if (!box.classList.contains('course-panel') || !imageOf(box)) continue;
        if (box.innerText.includes('Updates on release')) continue;
        const row = box.querySelector(':scope > .widget-hbox');
        const widgets = row ? [...row.children] : [];
        const index = widgets.findIndex((w) => w.classList.contains('widget-slider')
            && !w.querySelector('[disabled]') && w.querySelector('.noUi-handle'));
        if (index < 0) continue;
        box.setAttribute('data-course-drag', 'panel');
        const widget = widgets[index];
        widget.querySelector('.noUi-handle').setAttribute('data-course-drag', 'handle');
        widget.querySelector('.noUi-target').setAttribute('data-course-drag', 'track');
        widget.querySelector('.widget-readout').setAttribute('data-course-drag', 'readout');
        const label = widget.querySelector('.widget-label');
        return {index, label: label ? label.innerText.trim() : String(index)};
    }
    return null;
}"""

#: Watch the marked panel's image: every new src, with the time it arrived.
WATCH_FRAMES = """() => {
    const box = document.querySelector('[data-course-drag=panel]');
    const image = box.querySelector(':scope > img.widget-image');
    window.__courseFrames = [{src: image.src, at: performance.now()}];
    window.__courseWatch = new MutationObserver(() => {
        window.__courseFrames.push({src: image.src, at: performance.now()});
    });
    window.__courseWatch.observe(image, {attributes: true, attributeFilter: ['src']});
}"""

#: The marked panel's image now: SHA-256 of its bytes (hex), its src, and the slider's readout.
FINAL_FRAME = """async () => {
    const box = document.querySelector('[data-course-drag=panel]');
    const image = box.querySelector(':scope > img.widget-image');
    const bytes = await (await fetch(image.src)).arrayBuffer();
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    return {
        sha256: [...digest].map((b) => b.toString(16).padStart(2, '0')).join(''),
        src: image.src,
        readout: document.querySelector('[data-course-drag=readout]').innerText.trim(),
    };
}"""

#: Run code on the notebook's kernel (not in a cell); resolve to what it printed.
KERNEL_PRINT = """async (code) => {
    const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
    const future = kernel.requestExecute({code, silent: false, store_history: false});
    let printed = '';
    future.onIOPub = (message) => {
        if (message.header.msg_type === 'stream') printed += message.content.text;
        if (message.header.msg_type === 'error') printed += 'ERROR ' + message.content.ename + ': ' + message.content.evalue;
    };
    await future.done;
    return printed;
}"""

#: In the kernel: the panels whose Image shows the bytes with this SHA-256, each with its
#: controls' values and the SHA-256 of the frame its own view renders again for those values.
KERNEL_PANELS_SHOWING = """
import hashlib as _h, json as _j, ipywidgets as _w
_all = getattr(_w.widgets.widget, "_instances", None) or _w.Widget.widgets
_found = []
for _box in list(_all.values()):
    if not (hasattr(_box, "renderer") and hasattr(_box, "image")):
        continue
    _box.wait(60)
    if not _box.image.value or _h.sha256(_box.image.value).hexdigest() != {sha!r}:
        continue
    _values = {{_n: _c.value for _n, _c in _box.controls.items()}}
    _again = _box.renderer.frame(_values)
    _found.append({{"values": _values, "controls": list(_box.controls),
                   "again": _h.sha256(_again).hexdigest() if isinstance(_again, bytes) else None}})
print(_j.dumps(_found, default=str))
"""


def readout_matches(readout: str, value) -> bool:
    """Whether a slider's readout text (rounded: "1.50", "−2.90", "16", "3.16e-05") shows
    ``value`` (ipywidgets 8 writes a minus sign, U+2212, for negative numbers)."""
    readout = readout.replace("\u2212", "-").strip()
    try:
        shown = float(readout)
    except ValueError:
        return False
    mantissa = readout.lower().split("e")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    scale = 10 ** int(readout.lower().split("e")[1]) if "e" in readout.lower() else 1
    return abs(float(value) - shown) <= 0.5001 * 10 ** -decimals * scale + 1e-12


def drag_a_slider(page, seconds: float = 2.0, moves: int = 40) -> dict:
    """Drag a live panel's slider with the mouse across its track for ``seconds``; return
    {"panel": the slider's label, "frames": distinct frames that arrived during the drag,
    "problems": [...]} (problems: no frame during the drag, a last frame that is not the one the
    kernel renders for the released value). None when no panel on the page has a live slider."""
    marked = page.evaluate(MARK_DRAG)
    if marked is None:
        return None
    handle = page.locator("[data-course-drag=handle]")
    handle.scroll_into_view_if_needed()
    track = page.locator("[data-course-drag=track]").bounding_box()
    start = handle.bounding_box()
    x, y = start["x"] + start["width"] / 2, start["y"] + start["height"] / 2
    # to the far end of the track from where the handle is
    end_x = track["x"] + 2 if x > track["x"] + track["width"] / 2 else track["x"] + track["width"] - 2
    page.evaluate(WATCH_FRAMES)
    page.mouse.move(x, y)
    page.mouse.down()
    down_at = page.evaluate("() => performance.now()")
    for step in range(1, moves + 1):
        page.mouse.move(x + (end_x - x) * step / moves, y)
        time.sleep(seconds / moves)
    up_at = page.evaluate("() => performance.now()")
    page.mouse.up()
    # after the release: wait until no new frame has come for 2 s (and at most 60 s)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        last = page.evaluate("() => window.__courseFrames[window.__courseFrames.length - 1].at")
        if page.evaluate("() => performance.now()") - last > 2000:
            break
        time.sleep(0.25)
    frames = page.evaluate("() => { window.__courseWatch.disconnect(); return window.__courseFrames; }")
    during = {frame["src"] for frame in frames[1:] if down_at <= frame["at"] <= up_at}
    after = [frame for frame in frames[1:] if frame["at"] > up_at]
    problems = []
    if len(during) < 2:
        problems.append(f"dragging the slider {marked['label']!r} for {seconds:g} s showed "
                        f"{len(during)} distinct frame(s) while the handle moved (expected at least 2)")
    final = page.evaluate(FINAL_FRAME)
    printed = page.evaluate(KERNEL_PRINT, KERNEL_PANELS_SHOWING.format(sha=final["sha256"]))
    try:
        found = json.loads(printed.strip().splitlines()[-1])
    except (ValueError, IndexError):
        found = None
    if not found:
        problems.append(f"the frame shown after the release is not what any panel in the kernel "
                        f"shows now (the kernel printed {printed[-500:]!r})")
    else:
        panel = found[0]
        name = panel["controls"][marked["index"]]
        value = panel["values"][name]
        if not readout_matches(final["readout"], value):
            problems.append(f"after the release the slider reads {final['readout']}, but the kernel's "
                            f"{name} is {value!r}")
        if panel["again"] != final["sha256"]:
            problems.append(f"the frame shown after the release is not the one the panel renders "
                            f"for the released values {panel['values']}")
    return {"panel": marked["label"], "frames": len(during), "frames_after_release": len(after),
            "readout": final["readout"], "problems": problems}


def show_problem(page) -> None:
    """Scroll the failing cell (or the panel) into view, for the screenshot."""
    try:
        page.evaluate(SHOW_PROBLEM)
    except Exception:  # the page itself may be what failed
        pass


# --- Chinese terms: drawn with a font that has Chinese characters, not as boxes -------------------

#: Put the first ``term`` in the open notebook's rendered Markdown in a span of its own
#: (``data-course-term``), so that the fonts Chromium drew it with can be asked for.
MARK_TERM = """(term) => {
    const root = window.jupyterapp.shell.currentWidget.node;
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const at = node.data.indexOf(term);
        if (at < 0 || !node.parentElement.closest('.jp-RenderedMarkdown')) continue;
        const found = node.splitText(at);
        found.splitText(term.length);
        const span = document.createElement('span');
        span.setAttribute('data-course-term', '');
        found.parentNode.replaceChild(span, found);
        span.appendChild(found);
        span.scrollIntoView({block: 'center'});
        return true;
    }
    return false;
}"""

#: The marked term's width in em per character (a CJK character is 1 em wide; the box drawn for
#: a missing character is narrower in the fonts Chromium falls back to).
TERM_WIDTH = """() => {
    const span = document.querySelector('[data-course-term]');
    const size = parseFloat(getComputedStyle(span).fontSize);
    return span.getBoundingClientRect().width / (size * [...span.textContent].length);
}"""


def cjk_font_families() -> set[str] | None:
    """The font families fontconfig says cover Chinese (``fc-list :lang=zh``); None without
    fc-list. Chromium on Linux finds its fonts through fontconfig."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return None
    listed = subprocess.run([fc_list, ":lang=zh", "family"], capture_output=True, text=True).stdout
    return {name.strip() for line in listed.splitlines() for name in line.split(",") if name.strip()}


def mark_term(page, term: str) -> bool:
    """Mark ``term`` in the open notebook's rendered Markdown; False when it is not there."""
    return page.evaluate(MARK_TERM, term)


def mark_probe(page, text: str) -> None:
    """Add ``text`` to the page as the marked term (to check the check itself)."""
    page.evaluate("""(text) => {
        document.querySelectorAll('[data-course-term]').forEach((old) => old.removeAttribute('data-course-term'));
        const span = document.createElement('span');
        span.setAttribute('data-course-term', '');
        span.textContent = text;
        document.body.prepend(span);
    }""", text)


def fonts_of_marked_term(page) -> list[dict]:
    """The fonts Chromium drew the marked term with: [{"family": ..., "glyphs": n}, ...]
    (the DevTools protocol's CSS.getPlatformFontsForNode)."""
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        root = cdp.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": "[data-course-term]"})["nodeId"]
        fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    finally:
        cdp.detach()
    return [{"family": font["familyName"], "glyphs": font["glyphCount"]} for font in fonts]


def cjk_problems(page, text: str, cjk_families: set[str]) -> list[str]:
    """Why the marked ``text`` does not show as Chinese characters: glyphs drawn with a font that
    has no Chinese (fontconfig's ``cjk_families``), or a width far from 1 em per character."""
    problems = []
    fonts = fonts_of_marked_term(page)
    others = [f"{font['family']} ({font['glyphs']} glyphs)" for font in fonts
              if font["family"] not in cjk_families]
    if others or not fonts:
        problems.append(f"{text!r} is drawn with {', '.join(others) or 'no font'}, not a font with "
                        f"Chinese characters ({', '.join(sorted(cjk_families)[:4]) or 'none installed'}): "
                        "a learner sees boxes")
    width = page.evaluate(TERM_WIDTH)
    if not 0.9 <= width <= 1.1:
        problems.append(f"{text!r} is {width:.2f} em per character wide, where Chinese characters "
                        "are 1 em wide: boxes, not characters")
    return problems


# --- a picture of a panel, for the README ---------------------------------------------------------


def panel_screenshot(page, path: Path, size: tuple[int, int] = (1280, 880), colors: int = 96) -> Path:
    """A PNG of JupyterLab showing the moved panel's cell (its code, controls and plot) at the top
    of the notebook, reduced to ``colors`` colours so that it stays small. Returns ``path``."""
    from PIL import Image

    page.set_viewport_size({"width": size[0], "height": size[1]})
    page.evaluate("""() => {
        const box = document.querySelector('[data-course-panel]');
        const cell = box && box.closest('.jp-CodeCell');
        if (cell) cell.scrollIntoView({block: 'start'});
    }""")
    time.sleep(1)  # the notebook lays itself out again after the resize
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    with Image.open(path) as picture:
        small = picture.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)
    return path
