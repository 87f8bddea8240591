"""The course in two languages: English (the default) and Simplified Chinese.

    import helpers
    helpers.set_language("zh")   # the setup cell of every notebook in notebooks/zh/ does this

``_(message)`` returns ``message`` translated into the current language with Python's ``gettext``
(the compiled catalog ``helpers/locale/zh/LC_MESSAGES/helpers.mo``, built from ``helpers.po`` by
``python -m tools.translate build``). In English, the default, it returns ``message`` itself, so
English output never changes. A message with values is written with named fields and filled in
after translation, so that the catalog's key is constant::

    raise ValueError(_("x must be 2-D (N, D), got shape {shape}").format(shape=x.shape))

``N_(message)`` only marks a message for the catalog (it is returned unchanged): for text defined
when a module is imported (a control's description, a panel's name), which the panel translates
when it shows it. Text that modules translate at import time follows the language set before the
import: the setup cell sets it first.

``set_language("zh")`` also makes matplotlib draw Chinese: it registers the Noto Sans CJK SC subset
shipped in ``helpers/fonts/`` (works offline and in Colab) and adds it to ``font.family`` after
matplotlib's own font, which hands it every character it lacks (matplotlib >= 3.6 falls back glyph
by glyph along ``font.family``; the sans-serif list alone does not). ``set_language("en")`` undoes that.
"""

from __future__ import annotations

import gettext
from pathlib import Path

__all__ = ["LANGUAGES", "N_", "_", "font_path", "language", "set_language"]

LANGUAGES = ("en", "zh")
LOCALE = Path(__file__).resolve().parent / "locale"
FONT = Path(__file__).resolve().parent / "fonts" / "NotoSansSC-course-subset.otf"
DOMAIN = "helpers"

_state = {"language": "en", "translations": gettext.NullTranslations(), "rc": None}


def _(message: str) -> str:
    """``message`` in the current language (itself in English or when it has no translation)."""
    return _state["translations"].gettext(message)


def N_(message: str) -> str:
    """Mark ``message`` for the catalog without translating it (translated where it is shown)."""
    return message


def language() -> str:
    """The current language: "en" or "zh"."""
    return _state["language"]


def font_path() -> Path:
    """The CJK font file that ``set_language("zh")`` registers with matplotlib."""
    return FONT


def set_language(name: str) -> None:
    """Show the course's text in ``name`` ("en", the default, or "zh": Simplified Chinese)."""
    if name not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {name!r}")
    if name == "en":
        translations = gettext.NullTranslations()
    else:
        translations = gettext.translation(DOMAIN, localedir=str(LOCALE), languages=[name])
    _state["language"], _state["translations"] = name, translations
    _use_font(name == "zh")


def _use_font(chinese: bool) -> None:
    import matplotlib
    from matplotlib import font_manager

    if chinese:
        if _state["rc"] is None:
            _state["rc"] = {"font.family": list(matplotlib.rcParams["font.family"])}
        font_manager.fontManager.addfont(str(FONT))
        family = font_manager.FontProperties(fname=str(FONT)).get_name()
        # matplotlib's own font draws what it has (Latin, Greek, math signs: the figures look as in
        # English) and hands every character it lacks (the Chinese) to the next family
        others = [f for f in _state["rc"]["font.family"] if f != family]
        matplotlib.rcParams["font.family"] = [*others, family]
    elif _state["rc"] is not None:
        matplotlib.rcParams.update(_state["rc"])
        _state["rc"] = None
