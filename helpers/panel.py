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
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from helpers.i18n import _

__all__ = ["Control", "Notice", "Panel", "PanelView"]


@dataclass(frozen=True)
class Notice:
    """What a panel shows instead of a plot, e.g. "A batch of one has no variance: ..."."""

    text: str

    def _repr_html_(self) -> str:
        return (
            '<div style="padding:0.6em 1em;border-left:4px solid #d08c00;background:#fff8e6">'
            f"{self.text}</div>"
        )


@dataclass
class Control:
    """One control of a panel.

    kind: "int" or "float" (a slider from ``low`` to ``high`` in steps of ``step``),
          "log" (a float slider on a log10 scale: low and high are the values, not exponents),
          "choice" (a dropdown over ``options``), or "toggle" (a checkbox).
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

    def widget(self):
        import ipywidgets as widgets

        common = dict(value=self.value, description=_(self.description) if self.description else self.name,
                      style={"description_width": "initial"},
                      layout=widgets.Layout(width="320px"))
        if self.kind == "int":
            return widgets.IntSlider(min=self.low, max=self.high, step=self.step or 1,
                                     continuous_update=False, **common)
        if self.kind == "float":
            return widgets.FloatSlider(min=self.low, max=self.high, step=self.step or 0.01,
                                       continuous_update=False, **common)
        if self.kind == "log":
            import math

            return widgets.FloatLogSlider(min=math.log10(self.low), max=math.log10(self.high),
                                          step=self.step or 0.1, base=10,
                                          continuous_update=False, **common)
        if self.kind == "choice":
            return widgets.Dropdown(options=list(self.options), **common)
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

        Returns an ipywidgets.VBox; its ``.controls`` maps names to control widgets and
        its ``.output`` is the Output widget that holds the figure. A control that does not
        apply at the current values (``Control.active_when``) is disabled (greyed out) until it
        does.
        """
        import ipywidgets as widgets
        from IPython.display import Image, display

        control_widgets = {control.name: control.widget() for control in self.controls}
        output = widgets.Output()
        view = PanelView(self)

        def redraw(change=None):
            values = {name: w.value for name, w in control_widgets.items()}
            for name, applies in self.active(values).items():
                control_widgets[name].disabled = not applies  # ipywidgets 7.7 and 8 alike
            try:
                frame = view.frame(values)
            except Exception as error:  # a learner sees a message, never a traceback
                view.close()
                frame = Notice(_("These settings could not be drawn") + f" ({type(error).__name__}: {error}).")
            with output:
                output.clear_output(wait=True)
                display(frame if isinstance(frame, Notice) else Image(data=frame, format="png"))

        for w in control_widgets.values():
            w.observe(redraw, names="value")
        box = widgets.VBox([widgets.HBox(list(control_widgets.values()),
                                         layout=widgets.Layout(flex_flow="row wrap")), output])
        box.controls = control_widgets
        box.output = output
        box.redraw = redraw
        redraw()
        return box


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
