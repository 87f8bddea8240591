"""The pieces every panel is made of.

A panel is three things kept apart, so that tests can call the computation without a widget:

- ``compute(**values)``: a plain function of the controls' values. It returns a result (any
  object the draw function understands) or a ``Notice`` when the values make no sense to plot
  (batch size 1, gamma 0, a diverged run...). It never raises for values inside the controls'
  ranges.
- ``draw(result) -> matplotlib.figure.Figure``: plots a result. Computes nothing new.
- ``controls``: the sliders / dropdowns, each with its range and default. A control that
  matters only for some values of another (the number of groups, for group norm only) says so
  in ``active_when``; the widget disables it whenever it does not apply, and the widget tests
  check both ways that moving an enabled control changes the figure and moving a disabled one
  does not.
- optionally ``update(figure, result)``: redraws a figure made by ``draw`` for a new result by
  changing its artists (line data, bar heights, titles) instead of building a new figure.
  Building the axes and their tick labels is most of matplotlib's time, so a panel with
  ``update`` answers a slider several times faster.

``Panel.widget()`` wires them together with ipywidgets (only what works on both ipywidgets 7.7
and 8) and draws the default figure at once, before any interaction. ``PanelView`` is what the
widget shows on each move; the benchmarks time it.

Live dragging: the sliders send their values while the handle moves (``continuous_update``).
The observer only records the newest values; one renderer thread (``LiveRenderer``) draws the
newest pending values whenever the previous frame is done, drops the ones in between, and sets
the PNG as the value of an ``ipywidgets.Image`` (a Notice goes to an HTML widget beside it). The
frame shown after the release is always the one for the released values. A panel whose move
would train a network says why in ``release_only``: its sliders send their value on release only
and the widget says so under its controls.
"""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from helpers.i18n import _

__all__ = ["Control", "LiveRenderer", "Notice", "Panel", "PanelView"]


@dataclass(frozen=True)
class Notice:
    """What a panel shows instead of a plot, e.g. "A batch of one has no variance: ..."."""

    text: str

    def _repr_html_(self) -> str:
        return (
            '<div style="padding:0.6em 1em;border-left:4px solid #d08c00;background:#fff8e6">'
            f"{self.text}</div>"
        )


def failure_notice(error: Exception) -> Notice:
    """What a learner sees instead of a traceback when a figure cannot be drawn."""
    return Notice(_("These settings could not be drawn") + f" ({type(error).__name__}: {error}).")


@dataclass
class Control:
    """One control of a panel.

    kind: "int" or "float" (a slider from ``low`` to ``high`` in steps of ``step``),
          "log" (a float slider on a log10 scale: low and high are the values, not exponents),
          "choice" (a dropdown over ``options``), or "toggle" (a checkbox).
    labels: for a choice, a function giving an option's label in the dropdown; by default a
          string option is shown translated (``_(option)``), any other as ``str(option)``.
    test_values: the values the widget tests try; by default the extremes and the default.
    active_when: {other control's name: the values of it for which this control applies},
          e.g. ``{"kind": ("group",)}``: the control matters only while "kind" is "group", and
          its widget is disabled otherwise. Empty (the default): it always applies.
    """

    name: str
    kind: str
    value: Any
    low: Any = None
    high: Any = None
    step: Any = None
    options: tuple = ()
    description: str = ""
    test_values: tuple = ()
    active_when: Mapping[str, tuple] = field(default_factory=dict)
    labels: Callable[[Any], str] | None = None

    def is_active(self, values: Mapping) -> bool:
        """Whether this control applies (changes the figure) at these control values."""
        return all(values[name] in allowed for name, allowed in self.active_when.items())

    def values_to_test(self) -> tuple:
        if self.test_values:
            return tuple(self.test_values)
        if self.kind == "choice":
            return tuple(self.options)
        if self.kind == "toggle":
            return (False, True)
        return tuple(dict.fromkeys([self.low, self.value, self.high]))

    def label(self, option) -> str:
        """How a choice's ``option`` reads in the dropdown, in the current language."""
        if self.labels is not None:
            return self.labels(option)
        return _(option) if isinstance(option, str) and option else str(option)

    def widget(self, continuous: bool = False):
        """The control's ipywidget; ``continuous``: a slider sends its value while dragged."""
        import ipywidgets as widgets

        common = dict(value=self.value, description=_(self.description) if self.description else self.name,
                      style={"description_width": "initial"},
                      layout=widgets.Layout(width="320px"))
        if self.kind == "int":
            return widgets.IntSlider(min=self.low, max=self.high, step=self.step or 1,
                                     continuous_update=continuous, **common)
        if self.kind == "float":
            return widgets.FloatSlider(min=self.low, max=self.high, step=self.step or 0.01,
                                       continuous_update=continuous, **common)
        if self.kind == "log":
            import math

            return widgets.FloatLogSlider(min=math.log10(self.low), max=math.log10(self.high),
                                          step=self.step or 0.1, base=10,
                                          continuous_update=continuous, **common)
        if self.kind == "choice":
            # (label, value) pairs: the label in the current language, the value as the panel's
            # compute function expects it (an option written with N_() is in the catalog)
            return widgets.Dropdown(options=[(self.label(option), option) for option in self.options],
                                    **common)
        if self.kind == "toggle":
            return widgets.Checkbox(indent=False, **common)
        raise ValueError(f"unknown control kind {self.kind!r}")


@dataclass
class Panel:
    """A compute function, a draw function and their controls (see the module docstring)."""

    name: str
    compute: Callable[..., Any]
    draw: Callable[[Any], Any]
    controls: list = field(default_factory=list)
    update: Callable[[Any, Any], None] | None = None
    #: Why the panel redraws only when a slider is released, e.g. "each setting trains a network";
    #: empty (the default): a live panel, which redraws while a slider is dragged.
    release_only: str = ""

    @property
    def live(self) -> bool:
        """Whether the widget redraws while a slider is dragged (see the module docstring)."""
        return not self.release_only

    def __post_init__(self):
        by_name = {control.name: control for control in self.controls}
        for control in self.controls:
            for name, allowed in control.active_when.items():
                other = by_name.get(name)
                if other is None or other is control:
                    raise ValueError(f"panel {self.name!r}: control {control.name!r} is active_when "
                                     f"{name!r}, which is not another control of the panel")
                if isinstance(allowed, (str, bytes)) or not isinstance(allowed, (tuple, list)):
                    raise ValueError(f"panel {self.name!r}: active_when[{name!r}] of {control.name!r} "
                                     f"must be a tuple of values, got {allowed!r}")
                known = other.options if other.kind == "choice" else (
                    (False, True) if other.kind == "toggle" else None)
                unknown = [value for value in allowed if known is not None and value not in known]
                if unknown:
                    raise ValueError(f"panel {self.name!r}: {control.name!r} is active_when "
                                     f"{name!r} is {unknown!r}, not among its values {known!r}")

    def defaults(self) -> dict:
        return {control.name: control.value for control in self.controls}

    def active(self, values: Mapping) -> dict:
        """{control name: whether it applies} at these control values (missing ones: defaults)."""
        values = {**self.defaults(), **values}
        return {control.name: control.is_active(values) for control in self.controls}

    def test_grid(self, max_cases: int = 200):
        """Value combinations for tests: every control's test values against every other's
        (or, if that is more than max_cases, each control's values with the others at default)."""
        names = [control.name for control in self.controls]
        choices = [control.values_to_test() for control in self.controls]
        total = 1
        for values in choices:
            total *= len(values)
        if total <= max_cases:
            for combination in itertools.product(*choices):
                yield dict(zip(names, combination))
            return
        yield self.defaults()
        for control in self.controls:
            for value in control.values_to_test():
                yield {**self.defaults(), control.name: value}

    def render(self, **values):
        """compute + draw: a Figure, or the Notice that replaces it."""
        result = self.compute(**{**self.defaults(), **values})
        return result if isinstance(result, Notice) else self.draw(result)

    def widget(self):
        """The interactive panel: controls above, the figure below, drawn once right away.

        Returns an ipywidgets.VBox (with the DOM class "course-panel") of the controls, an
        ``ipywidgets.Image`` that shows the figure's PNG and an HTML widget that shows a Notice
        instead (only one of the two is displayed). Its attributes: ``controls`` maps names to
        control widgets; ``image`` and ``notice`` are those two widgets; ``shown()`` is what it
        shows now (PNG bytes or a Notice); ``redraw()`` draws the current values at once, in the
        caller's thread; ``wait(timeout)`` waits until the frame for the newest values is shown
        (True) and ``renderer`` is its ``LiveRenderer``. A control that does not apply at the
        current values (``Control.active_when``) is disabled (greyed out) until it does.

        A live panel's sliders send values while dragged; each value change is handed to the
        renderer thread, which draws the newest one when the previous frame is done. A
        ``release_only`` panel draws each change at once, in the kernel's thread, as before.
        """
        import ipywidgets as widgets

        control_widgets = {control.name: control.widget(continuous=self.live)
                           for control in self.controls}
        image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        notice = widgets.HTML(layout=widgets.Layout(display="none"))
        view = PanelView(self)
        shown = {"frame": None}

        def current() -> dict:
            return {name: w.value for name, w in control_widgets.items()}

        def enable(values) -> None:
            for name, applies in self.active(values).items():
                control_widgets[name].disabled = not applies  # ipywidgets 7.7 and 8 alike

        def frame_for(values):
            try:
                return view.frame(values)
            except Exception as error:  # a learner sees a message, never a traceback
                view.close()
                return failure_notice(error)

        def show(frame) -> None:
            shown["frame"] = frame
            if isinstance(frame, Notice):
                notice.value = frame._repr_html_()
                notice.layout.display = None
                image.layout.display = "none"
                image.value = b""
            else:
                image.value = frame
                image.layout.display = None
                notice.layout.display = "none"
                notice.value = ""

        renderer = LiveRenderer(frame_for, show)

        def redraw(change=None):
            """Draw the current values now, in this thread (the first figure; tests; export)."""
            values = current()
            enable(values)
            renderer.render_now(values)

        def on_change(change):
            values = current()
            enable(values)  # at once, in the kernel's thread: cheap, and never stale
            if self.live:
                renderer.submit(values)
            else:
                renderer.render_now(values)

        for w in control_widgets.values():
            w.observe(on_change, names="value")
        rows = [widgets.HBox(list(control_widgets.values()),
                             layout=widgets.Layout(flex_flow="row wrap"))]
        if not self.live:
            rows.append(widgets.HTML('<span style="color:#666;font-size:90%">'
                                     + _("Updates on release: {reason}.").format(reason=_(self.release_only))
                                     + "</span>"))
        box = widgets.VBox([*rows, image, notice])
        box.add_class("course-panel")
        box.controls = control_widgets
        box.image = image
        box.notice = notice
        box.renderer = renderer
        box.redraw = redraw
        box.wait = renderer.wait
        box.shown = lambda: shown["frame"]
        redraw()
        return box


class LiveRenderer:
    """Draws the newest values handed to it, on one thread, dropping the ones in between.

    ``render(values)`` makes a frame (PNG bytes or a Notice) and ``show(frame)`` puts it on
    screen. ``submit(values)`` is what a value observer calls: it records the values as the
    newest pending ones and returns at once; a daemon thread renders them when the frame before
    is done, so a drag faster than the renders shows the newest values at each frame, never a
    backlog. Each submission has a generation number and a frame is shown only if it is newer
    than the one shown, so the frame shown last is the one for the values submitted last.
    ``render_now(values)`` renders in the caller's thread (the first frame, tests, a static
    export), superseding anything pending. An exception in ``render`` is shown as a Notice, one
    in ``show`` is dropped; none escapes. The thread ends after ``idle_seconds`` without work and
    starts again on the next submission.
    """

    def __init__(self, render: Callable[[dict], Any], show: Callable[[Any], None],
                 idle_seconds: float = 30.0):
        self._render, self._show, self.idle_seconds = render, show, idle_seconds
        self._condition = threading.Condition()
        self._draw_lock = threading.Lock()  # one frame at a time, on whichever thread
        self._generation = 0  # of the newest values submitted
        self._shown = 0  # generation of the frame on screen
        self._pending = None  # (generation, values) not yet taken by the thread
        self._thread = None
        self.frames = 0  # frames shown so far (the benchmarks count them)

    def submit(self, values: Mapping) -> None:
        """Record ``values`` as the newest; the thread draws them when it is free."""
        with self._condition:
            self._generation += 1
            self._pending = (self._generation, dict(values))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="panel-renderer", daemon=True)
                self._thread.start()
            self._condition.notify_all()

    def render_now(self, values: Mapping) -> None:
        """Render and show ``values`` in the caller's thread, superseding pending values."""
        with self._condition:
            self._generation += 1
            generation = self._generation
            self._pending = None
        self._draw(generation, dict(values))

    def wait(self, timeout: float | None = 60.0) -> bool:
        """Wait until the frame for the newest submitted values is shown; False on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: self._shown >= self._generation, timeout)

    def frame(self, values: Mapping):
        """The frame for ``values``, rendered in the caller's thread (after any frame being
        drawn) but not shown: what the tests compare the shown frame with."""
        with self._draw_lock:
            try:
                return self._render(dict(values))
            except Exception as error:
                return failure_notice(error)

    @property
    def busy(self) -> bool:
        with self._condition:
            return self._shown < self._generation

    def _run(self) -> None:
        while True:
            with self._condition:
                if self._pending is None:
                    self._condition.wait_for(lambda: self._pending is not None, self.idle_seconds)
                if self._pending is None:  # idle: end; the next submit starts a new thread
                    self._thread = None
                    return
                generation, values = self._pending
                self._pending = None
            self._draw(generation, values)

    def _draw(self, generation: int, values: dict) -> None:
        with self._draw_lock:
            if generation <= self._shown:
                return  # a newer frame is on screen already
            try:
                frame = self._render(values)
            except Exception as error:
                frame = failure_notice(error)
            try:
                self._show(frame)
            except Exception:  # e.g. the front end went away; the next frame tries again
                pass
            with self._condition:
                self._shown = generation
                self.frames += 1
                self._condition.notify_all()


class PanelView:
    """What a panel's widget shows, move after move: a Notice, or a PNG of the panel's figure.

    The figure is kept between moves: a panel with ``update`` redraws it in place, others get
    a new one from ``draw``. The figure is taken out of pyplot's care at once (so the notebook
    never shows it a second time) and the PNG covers the figure plus anything drawn outside
    it, measured once per new figure, so a move renders pixels without laying the figure out
    twice, as ``bbox_inches="tight"`` would.
    """

    def __init__(self, panel: Panel):
        self.panel = panel
        self.figure = None
        self.area = None  # the region to render, in inches

    def frame(self, values: dict):
        """Notice, or PNG bytes of the figure for these control values."""
        result = self.panel.compute(**{**self.panel.defaults(), **values})
        if isinstance(result, Notice):
            return result
        if self.figure is not None and self.panel.update is not None:
            self.panel.update(self.figure, result)
        else:
            self.close()
            self.figure = self._take_from_pyplot(self.panel.draw(result))
            self.area = self._area_to_render(self.figure)
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", bbox_inches=self.area,
                            pil_kwargs={"compress_level": 1})  # fast to write, a little larger
        return buffer.getvalue()

    def close(self) -> None:
        self.figure = None
        self.area = None

    @staticmethod
    def _take_from_pyplot(figure):
        import matplotlib.pyplot as plt

        plt.close(figure)  # the Figure still draws; pyplot just forgets it
        return figure

    @staticmethod
    def _area_to_render(figure):
        from matplotlib.transforms import Bbox

        return Bbox.union([figure.bbox_inches, figure.get_tightbbox()]).padded(0.05)
