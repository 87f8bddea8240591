"""The pieces every panel is made of.

A panel is three things kept apart, so that tests can call the computation without a widget:

- ``compute(**values)``: a plain function of the controls' values. It returns a result (any
  object the draw function understands) or a ``Notice`` when the values make no sense to plot
  (batch size 1, gamma 0, a diverged run...). It never raises for values inside the controls'
  ranges.
- ``draw(result) -> matplotlib.figure.Figure``: plots a result. Computes nothing new.
- ``controls``: the sliders / dropdowns, each with its range and default.

``Panel.widget()`` wires them together with ipywidgets (only what works on both ipywidgets 7.7
and 8) and draws the default figure at once, before any interaction.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Control", "Notice", "Panel"]


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

        common = dict(value=self.value, description=self.description or self.name,
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

    def defaults(self) -> dict:
        return {control.name: control.value for control in self.controls}

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
        its ``.output`` is the Output widget that holds the figure.
        """
        import ipywidgets as widgets
        import matplotlib.pyplot as plt
        from IPython.display import display

        control_widgets = {control.name: control.widget() for control in self.controls}
        output = widgets.Output()

        def redraw(change=None):
            values = {name: w.value for name, w in control_widgets.items()}
            open_figures = set(plt.get_fignums())
            try:
                shown = self.render(**values)
            except Exception as error:  # a learner sees a message, never a traceback
                shown = Notice(f"These settings could not be drawn ({type(error).__name__}: {error}).")
                for number in set(plt.get_fignums()) - open_figures:
                    plt.close(number)  # a half-drawn figure must not show up later
            with output:
                output.clear_output(wait=True)
                display(shown)
            if not isinstance(shown, Notice):
                plt.close(shown)

        for w in control_widgets.values():
            w.observe(redraw, names="value")
        box = widgets.VBox([widgets.HBox(list(control_widgets.values()),
                                         layout=widgets.Layout(flex_flow="row wrap")), output])
        box.controls = control_widgets
        box.output = output
        box.redraw = redraw
        redraw()
        return box
