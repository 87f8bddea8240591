"""Interactive panels: a plain compute function, a plotting function, and a thin widget.

Each notebook's panels live in the module named by its slug (``helpers.course``), listed in
its ``PANELS``; the machinery they share is ``helpers.panel`` and ``helpers.backdrop``.
``all_panels()`` finds them all (the widget tests call every panel's compute function over
its controls' ranges, extremes included, and build every widget headless).
"""

from __future__ import annotations

import importlib
import pkgutil

from helpers.course import notebook_number
from helpers.panel import Control, Notice, Panel, PanelView

__all__ = ["Control", "Notice", "Panel", "PanelView", "all_panels"]


def all_panels() -> list[Panel]:
    """Every panel of every module in this package, in the order of the notebooks."""
    panels = []
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: notebook_number(m.name)):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        panels.extend(getattr(module, "PANELS", []))
    return panels
