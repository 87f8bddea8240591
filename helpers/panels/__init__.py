"""Interactive panels: a plain compute function, a plotting function, and a thin widget.

Each notebook's panels live in their own module here and are listed in its ``PANELS``;
``all_panels()`` finds them all (the widget tests call every panel's compute function over
its controls' ranges, extremes included, and build every widget headless).
"""

from __future__ import annotations

import importlib
import pkgutil

from helpers.panels.base import Control, Notice, Panel, PanelView

__all__ = ["Control", "Notice", "Panel", "PanelView", "all_panels"]


def all_panels() -> list[Panel]:
    """Every panel of every module in this package, in module order."""
    panels = []
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        panels.extend(getattr(module, "PANELS", []))
    return panels
