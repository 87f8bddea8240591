"""Every panel works at every setting its controls allow, and its widget redraws when moved.

Panels are found automatically (helpers.panels.all_panels()). For each one:

1. its controls make sense (defaults inside their ranges, names that compute accepts) and the
   values the tests try include every control's extremes (batch size 1, gamma 0, the largest
   learning rate...);
2. compute is called over Panel.test_grid(): it returns a result or a Notice, never raises, and
   draw(result) returns a matplotlib Figure;
3. every enabled control changes the figure and every disabled one does not: at the defaults,
   and with each choice or toggle control at each of its test values, every other control is
   moved through its test values and the figure, drawn from scratch, compared with the one
   before the move. A control that applies only for some values of another says so
   (``Control.active_when``) and the widget disables it elsewhere;
4. the widget is built on a real kernel (Panel.widget()): it draws its default figure at once;
   each control is moved through its test values (the others at their defaults), which redraws
   it (once its renderer thread is done, what its Image widget shows changes) and never into a
   "could not be drawn" notice, and after every move exactly the controls that do not apply are
   disabled. Live panels' sliders send values while dragged, release-only ones do not.

Colab ships ipywidgets 7.7.1 (with numpy 2.1 and matplotlib 3.10); requirements.txt installs
ipywidgets 8. One test runs this file again in a small Colab-like environment
(tools/colab_env.py). The tests marked "fixture" check these checks on tests/fixtures/fixture_panels.py.
"""

import inspect
import io
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import ipywidgets  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from helpers.panels import Notice, all_panels  # noqa: E402
from tools import colab_env  # noqa: E402
from tools.kernels import KernelSession, has_figure, widget_problems  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(FIXTURES))
import fixture_panels  # noqa: E402

PANELS = all_panels()
#: Set inside the Colab-like environment: the ipywidgets version the kernel must have there.
EXPECTED_IPYWIDGETS = os.environ.get("BATCHNORM_COURSE_EXPECT_IPYWIDGETS")
NUMERIC_KINDS = ("int", "float", "log")


def panel_id(panel) -> str:
    return f"{panel.compute.__module__.rsplit('.', 1)[-1]}: {panel.name}"


def label(panel) -> str:
    """How a failure names a panel: its name and the module that defines it."""
    return f"panel {panel.name!r} ({panel.compute.__module__})"


def settings(values: dict) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in values.items())


# --- 1. controls ------------------------------------------------------------------------------


def control_problems(panel) -> list[str]:
    """What is wrong with a panel's controls, as sentences."""
    problems = []
    parameters = inspect.signature(panel.compute).parameters
    names = [control.name for control in panel.controls]
    required = [name for name, p in parameters.items()
                if p.default is inspect.Parameter.empty and p.kind is not p.VAR_KEYWORD]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    for name in names:
        if name not in parameters and not takes_any:
            problems.append(f"control {name!r} is not a parameter of {panel.compute.__name__}")
    for name in required:
        if name not in names:
            problems.append(f"{panel.compute.__name__} needs {name!r} but no control sets it")
    for control in panel.controls:
        tried = control.values_to_test()
        if control.kind in NUMERIC_KINDS:
            if not control.low <= control.value <= control.high:
                problems.append(f"{control.name}: default {control.value!r} is outside "
                                f"[{control.low!r}, {control.high!r}]")
            missing = [end for end in (control.low, control.high) if end not in tried]
            if missing:
                problems.append(f"{control.name}: the tested values {tried!r} leave out the "
                                f"extreme(s) {missing!r}")
        elif control.kind == "choice" and control.value not in control.options:
            problems.append(f"{control.name}: default {control.value!r} is not one of {control.options!r}")
        elif control.kind not in ("choice", "toggle"):
            problems.append(f"{control.name}: unknown kind {control.kind!r}")
    return problems


@pytest.mark.parametrize("panel", PANELS, ids=panel_id)
def test_controls_are_consistent_and_their_extremes_are_tested(panel):
    problems = control_problems(panel)
    assert not problems, f"{label(panel)}:\n  " + "\n  ".join(problems)


# --- 2. compute and draw over the grid of test values -----------------------------------------


def compute_failures(panel) -> list[str]:
    """Every grid point where compute raises or draw does not return a Figure, one line each;
    the first exception's traceback follows the line of its grid point.

    (Rendering every grid point's figure would take minutes; the widget test below renders
    each control's test values with the others at their defaults, as a learner's moves do.)"""
    failures = []
    for values in panel.test_grid():
        step = "compute"
        try:
            result = panel.compute(**values)
            if isinstance(result, Notice):
                if not result.text.strip():
                    failures.append(f"{settings(values)}: an empty Notice")
                continue
            step = "draw"
            figure = panel.draw(result)
            if not isinstance(figure, Figure):
                failures.append(f"{settings(values)}: draw returned {type(figure).__name__}, "
                                "not a matplotlib Figure")
        except Exception as error:
            failure = f"{settings(values)}: {step} raised {type(error).__name__}: {error}"
            if not any("Traceback" in earlier for earlier in failures):
                failure += "\n" + traceback.format_exc(limit=-3)
            failures.append(failure)
        finally:
            plt.close("all")
    return failures


def assert_computes_everywhere(panel):
    failures = compute_failures(panel)
    total = len(list(panel.test_grid()))
    if failures:
        pytest.fail(f"{label(panel)}: {len(failures)} of {total} settings failed (a panel returns "
                    "a Notice for settings it cannot plot, it never raises):\n"
                    + "\n".join(failures[:12]), pytrace=False)


@pytest.mark.parametrize("panel", PANELS, ids=panel_id)
def test_compute_and_draw_work_over_the_whole_test_grid(panel, record_timing):
    started = time.perf_counter()
    assert_computes_everywhere(panel)
    record_timing("panel compute+draw over its test grid", panel_id(panel),
                  time.perf_counter() - started)


# --- 3. every enabled control changes the figure, no disabled one does -----------------------


def shown(panel, values: dict):
    """What the panel shows at these values, drawn from scratch: ("notice", its text) or
    ("figure", the PNG's bytes)."""
    result = panel.compute(**values)
    if isinstance(result, Notice):
        return ("notice", result.text)
    figure = panel.draw(result)
    try:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return ("figure", buffer.getvalue())
    finally:
        plt.close(figure)


def contexts(panel):
    """(the control set away from its default or None, the values): the defaults, then each
    choice or toggle control at each of its other test values, the rest at their defaults."""
    defaults = panel.defaults()
    yield None, defaults
    for control in panel.controls:
        if control.kind in ("choice", "toggle"):
            for value in control.values_to_test():
                if value != control.value:
                    yield control.name, {**defaults, control.name: value}


def control_effect_failures(panel) -> list[str]:
    """Every move that changes the figure although its control is disabled, or leaves it
    unchanged although its control is enabled, one sentence each. Settings that show a Notice
    are not a starting point (the Notice asks for another value of one control); a move into a
    Notice counts as a change."""
    failures = []
    for switched, values in contexts(panel):
        active = panel.active(values)
        moves = [(control, value) for control in panel.controls if control.name != switched
                 for value in control.values_to_test() if value != values[control.name]]
        if not moves:
            continue
        before = shown(panel, values)
        if before[0] == "notice":
            continue
        for control, value in moves:
            changed = shown(panel, {**values, control.name: value}) != before
            if active[control.name] and not changed:
                failures.append(f"at {settings(values)}: moving {control.name} to {value!r} leaves the "
                                "figure unchanged; if it does not apply there, declare it "
                                "(Control.active_when) so that the widget disables it")
            elif not active[control.name] and changed:
                failures.append(f"at {settings(values)}: {control.name} is disabled (active_when "
                                f"{dict(control.active_when)}), yet moving it to {value!r} changes the figure")
    return failures


@pytest.mark.parametrize("panel", PANELS, ids=panel_id)
def test_every_enabled_control_changes_the_figure_and_no_disabled_one_does(panel, record_timing):
    started = time.perf_counter()
    failures = control_effect_failures(panel)
    record_timing("panel: every enabled control changes the figure", panel_id(panel),
                  time.perf_counter() - started)
    assert not failures, f"{label(panel)}:\n  " + "\n  ".join(failures)


# --- 4. the widget on a real kernel -----------------------------------------------------------

KERNEL_PRELUDE = f"""\
%matplotlib inline
import sys
import ipywidgets
from helpers.panels import all_panels
sys.path.insert(0, {str(FIXTURES)!r})
import fixture_panels
_PANELS = all_panels()

def _shown(box):
    # what the panel shows once its renderer is done, as outputs like an Output widget's
    import base64
    assert box.wait(300), "the panel's renderer did not show the newest values within 300 s"
    if box.image.layout.display != "none" and box.image.value:
        return [{{"output_type": "display_data",
                 "data": {{"image/png": base64.b64encode(box.image.value).decode()}}}}]
    return [{{"output_type": "display_data", "data": {{"text/html": box.notice.value}}}}]

def _disabled(box):
    return {{name: bool(control.disabled) for name, control in box.controls.items()}}
"""


@pytest.fixture(scope="module")
def kernel():
    """One kernel for this module's widget tests, started in the course folder."""
    with KernelSession(ROOT) as session:
        session.run(KERNEL_PRELUDE, "importing the panels in the kernel")
        yield session


def widget_failures(kernel, expression: str, panel) -> list[str]:
    """Build ``expression``'s widget in the kernel and move every control through its test values.

    Returns what went wrong, each naming the control values; [] when the widget drew its
    default figure, every move redrew it, nothing failed to draw, and after every move the
    controls that do not apply (``panel.active``) were disabled and the others enabled."""
    failures = []

    def check_disabled(values):
        disabled = kernel.value("_disabled(_box)", "reading which controls are disabled")
        expected = {name: not applies for name, applies in panel.active(values).items()}
        for name in expected:
            if disabled.get(name) != expected[name]:
                state = "disabled" if disabled.get(name) else "enabled"
                failures.append(f"at {settings(values)}: {name} is {state} in the widget, but it "
                                f"{'does not apply' if expected[name] else 'applies'} there")

    kernel.run(f"_box = {expression}.widget()\n_box", f"building the widget of {label(panel)}")
    names = kernel.value("list(_box.controls)", "listing the widget's controls")
    expected = [control.name for control in panel.controls]
    if names != expected:
        failures.append(f"the widget has controls {names}, the panel {expected}")
    continuous = kernel.value("{name: getattr(w, 'continuous_update', None) "
                              "for name, w in _box.controls.items()}", "reading continuous_update")
    for control in panel.controls:
        if control.kind in NUMERIC_KINDS and continuous.get(control.name) is not panel.live:
            failures.append(f"the slider {control.name} has continuous_update="
                            f"{continuous.get(control.name)}, but the panel is "
                            f"{'live' if panel.live else 'release-only'}")
    shown = kernel.value("_shown(_box)", "reading the widget's output")
    defaults = panel.defaults()
    failures += [f"at its defaults ({settings(defaults)}): {problem}" for problem in widget_problems(shown)]
    if not has_figure(shown):
        failures.append(f"it does not draw a figure at its defaults ({settings(defaults)}) before "
                        f"any interaction; it shows {[list(out.get('data', out)) for out in shown]}")
    check_disabled(defaults)
    moves_made, changed = [], False
    for control in panel.controls:
        moves = [value for value in control.values_to_test() if value != control.value]
        moves_made += [f"{control.name}={value!r}" for value in moves]
        for value in [*moves, control.value]:  # out to each test value, then back to the default
            values = {**defaults, control.name: value}
            kernel.run(f"_box.controls[{control.name!r}].value = {value!r}",
                       f"{label(panel)}: setting {control.name}={value!r}")
            now = kernel.value("_shown(_box)", "reading the widget's output")
            failures += [f"at {settings(values)}: {problem}" for problem in widget_problems(now)]
            if len(now) != 1:
                failures.append(f"at {settings(values)}: the widget shows {len(now)} outputs, not 1")
            check_disabled(values)
            changed = changed or now != shown
            shown = now
    # Some controls only matter together with others (groups, when the choice is GroupNorm), so
    # not every move must change the picture; but some must, or the widget does not redraw.
    if moves_made and not changed:
        failures.append(f"the widget never redrew: moving {', '.join(moves_made)} "
                        "(one at a time) never changed what it shows")
    return failures


@pytest.mark.parametrize("panel", PANELS, ids=panel_id)
def test_widget_draws_at_once_and_redraws_when_a_control_moves(panel, kernel, record_timing):
    started = time.perf_counter()
    failures = widget_failures(kernel, f"_PANELS[{PANELS.index(panel)}]", panel)
    record_timing("panel widget on a kernel (build + every move)", panel_id(panel),
                  time.perf_counter() - started)
    if failures:
        pytest.fail(f"{label(panel)}, on ipywidgets {ipywidgets.__version__}:\n  "
                    + "\n  ".join(failures), pytrace=False)


def test_kernel_runs_the_ipywidgets_under_test(kernel):
    """In the Colab-like environment the kernel must really have Colab's ipywidgets."""
    in_kernel = kernel.value("ipywidgets.__version__")
    assert in_kernel == ipywidgets.__version__
    if EXPECTED_IPYWIDGETS:
        assert in_kernel == EXPECTED_IPYWIDGETS


# --- the same tests under Colab's ipywidgets 7.7.1 --------------------------------------------


@pytest.mark.runs_colab_like_env
def test_widgets_also_work_with_colab_s_ipywidgets_7_7_1_numpy_2_1_matplotlib_3_10(record_timing):
    """This file's tests again, in the Colab-like environment: all but the whole-grid test,
    whose settings the widget test there renders one control at a time anyway."""
    started = time.perf_counter()
    try:
        python = colab_env.ensure()
    except colab_env.CannotMakeEnvironment as error:
        if os.environ.get("BATCHNORM_COURSE_REQUIRE_COLAB_ENV") == "1":
            pytest.fail(str(error))
        pytest.skip(f"no Colab-like environment (set BATCHNORM_COURSE_REQUIRE_COLAB_ENV=1 to "
                    f"make this a failure): {error}")
    command = [str(python), "-m", "pytest", str(Path(__file__)), "-m", "not runs_colab_like_env",
               "-k", "not test_compute_and_draw_work_over_the_whole_test_grid",
               "-p", "no:cacheprovider", "-o", "addopts=", "-q", "-ra"]
    env = {**os.environ, "BATCHNORM_COURSE_EXPECT_IPYWIDGETS": colab_env.IPYWIDGETS}
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    record_timing("widget tests again under Colab's versions", "tests/test_widgets.py",
                  time.perf_counter() - started)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert run.returncode == 0 and " passed" in summary, (
        f"the widget tests fail under ipywidgets {colab_env.IPYWIDGETS} "
        f"({colab_env.versions(python)}; ipywidgets numpy matplotlib):\n"
        f"{' '.join(command)}\n{run.stdout[-6000:]}{run.stderr[-2000:]}")


# --- the checks above, checked on panels broken on purpose ------------------------------------


def test_fixture_good_panel_passes_every_check(kernel):
    panel = fixture_panels.GOOD
    assert control_problems(panel) == []
    assert compute_failures(panel) == []
    assert control_effect_failures(panel) == []
    assert widget_failures(kernel, "fixture_panels.GOOD", panel) == []


def test_fixture_a_compute_that_raises_at_an_extreme_fails_naming_the_values(kernel):
    panel = fixture_panels.RAISES_AT_BATCH_OF_ONE
    with pytest.raises(pytest.fail.Exception) as failure:
        assert_computes_everywhere(panel)
    message = str(failure.value)
    assert "'fixture: raises at a batch of one' (fixture_panels)" in message
    assert "slope=0.0, batch_size=1: compute raised ZeroDivisionError: division by zero\n" in message
    assert "Traceback" in message and "1 / 0" in message
    failures = widget_failures(kernel, "fixture_panels.RAISES_AT_BATCH_OF_ONE", panel)
    assert any("at slope=1.0, batch_size=1: a panel could not draw" in f and "ZeroDivisionError" in f
               for f in failures), failures


def test_fixture_a_control_that_applies_to_one_choice_only_is_disabled_for_the_others(kernel):
    panel = fixture_panels.SWITCH
    assert panel.active({"shape": "flat"}) == {"slope": False, "batch_size": True, "shape": True}
    assert control_effect_failures(panel) == []
    assert widget_failures(kernel, "fixture_panels.SWITCH", panel) == []


def test_fixture_a_control_that_does_nothing_and_is_not_disabled_fails(kernel):
    assert control_effect_failures(fixture_panels.SWITCH_UNDECLARED) == [
        f"at slope=1.0, batch_size=16, shape='flat': moving slope to {value!r} leaves the figure "
        "unchanged; if it does not apply there, declare it (Control.active_when) so that the "
        "widget disables it" for value in (0.0, 3.0)]
    assert control_effect_failures(fixture_panels.IGNORES_A_CONTROL) == [
        f"at slope=1.0, batch_size=16: moving batch_size to {value!r} leaves the figure unchanged; "
        "if it does not apply there, declare it (Control.active_when) so that the widget disables "
        "it" for value in (1, 64)]
    # the widget of SWITCH disables the slope for "flat"; a panel that says it applies there fails
    failures = widget_failures(kernel, "fixture_panels.SWITCH", fixture_panels.SWITCH_UNDECLARED)
    assert failures == ["at slope=1.0, batch_size=16, shape='flat': slope is disabled in the widget, "
                        "but it applies there"], failures


def test_fixture_a_control_disabled_where_it_still_matters_fails():
    assert control_effect_failures(fixture_panels.WRONGLY_DISABLED) == [
        f"at slope=1.0, batch_size=16, shape='flat': batch_size is disabled (active_when "
        f"{{'shape': ('line',)}}), yet moving it to {value!r} changes the figure" for value in (1, 64)]


def test_a_declaration_that_names_no_control_or_no_option_is_refused():
    from helpers.panel import Control, Panel

    with pytest.raises(ValueError, match="'kind', which is not another control"):
        Panel("p", fixture_panels.compute_line, fixture_panels.draw_line, [
            Control("slope", "float", 1.0, low=0.0, high=3.0, active_when={"kind": ("group",)}),
            Control("batch_size", "int", 16, low=1, high=64)])
    with pytest.raises(ValueError, match=r"is \['circle'\], not among its values"):
        Panel("p", fixture_panels.compute_shape, fixture_panels.draw_line, [
            Control("slope", "float", 1.0, low=0.0, high=3.0, active_when={"shape": ("circle",)}),
            Control("batch_size", "int", 16, low=1, high=64),
            Control("shape", "choice", "line", options=fixture_panels.SHAPE_OPTIONS)])


def test_fixture_a_draw_without_a_figure_fails():
    failures = compute_failures(fixture_panels.DRAWS_NO_FIGURE)
    assert "slope=0.0, batch_size=16: draw returned NoneType, not a matplotlib Figure" in failures


def test_fixture_a_widget_that_never_redraws_fails(kernel):
    failures = widget_failures(kernel, "fixture_panels.FROZEN_PICTURE", fixture_panels.FROZEN_PICTURE)
    assert failures == ["the widget never redrew: moving slope=0.0, slope=3.0, batch_size=1, "
                        "batch_size=64 (one at a time) never changed what it shows"]


def test_fixture_controls_that_skip_extremes_or_do_not_match_compute_fail():
    assert control_problems(fixture_panels.SKIPS_EXTREMES) == [
        "slope: the tested values (1.0, 2.0) leave out the extreme(s) [0.0, 3.0]"]
    assert control_problems(fixture_panels.UNKNOWN_CONTROL) == [
        "control 'gamma' is not a parameter of compute_line"]
