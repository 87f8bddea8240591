"""Drawing the still part of a figure once, for panels that redraw on every slider move.

A panel's figure has a still layer (axes, ticks, titles, legends: the same for every setting)
and a moving layer (lines, images, numbers). ``overlay_axes`` gives the moving artists a
see-through axes of their own over a still one; ``Backdrop`` draws the still layer once per
canvas and pastes its pixels back on later draws, since rendering text is most of the time
matplotlib spends on a redraw. Used by the panels of notebooks 01 to 08.
"""

from __future__ import annotations

from matplotlib.artist import Artist
from matplotlib.transforms import Bbox

__all__ = ["Backdrop", "overlay_axes"]


def overlay_axes(ax):
    """A see-through axes exactly over ``ax``, sharing its limits, with no frame or ticks:
    the place for the artists that move, so that ``ax`` itself can stay still."""
    overlay = ax.figure.add_axes(ax.get_position(), sharex=ax, sharey=ax)
    overlay.set_axis_off()
    return overlay


class Backdrop(Artist):
    """Draws a figure's still artists once per canvas and pastes their pixels back later.

    matplotlib renders every artist again on every draw, and text (tick labels, titles,
    legends) is most of that time, though a slider changes none of it. A Backdrop takes the
    drawing of ``still`` (axes, figure texts) over from the figure. On a draw it pastes the
    pixels it kept from an earlier draw on the same canvas (same size, dpi, position and
    background), or, if it has none, draws the still artists and keeps the pixels. It is
    drawn first, so everything else in the figure (overlay axes with what moves, texts
    that change) lands on top, as usual; the still artists must not need to be drawn over
    it. A canvas that cannot paste pixels (a vector format) gets them drawn every time.

    The Backdrop does not notice changes to the still artists: whoever changes one calls
    ``forget()``, or says after every update what the still artists show with
    ``redraw_if_changed(key)``.
    """

    KEEP = 4  # canvases remembered (the widget's PNG; a test's or a notebook's full figure...)
    KEYS = 8  # earlier keys whose pixels are remembered (going back to a setting pastes them)

    def __init__(self, figure, still, keys: int | None = None, own_region: bool = False):
        """``still``: the artists to draw once. ``keys``: how many earlier keys of
        ``redraw_if_changed`` to remember (default ``KEYS``). ``own_region``: keep and paste
        only the region the still artists cover (their tight bounding box) instead of the
        whole canvas, so that several Backdrops of one figure, over regions that do not
        overlap, can each paste their own."""
        super().__init__()
        self.keys = self.KEYS if keys is None else int(keys)
        self.own_region = bool(own_region)
        self.still = sorted(still, key=lambda artist: artist.get_zorder())
        for artist in self.still:
            artist.set_animated(True)  # the figure skips them: the backdrop draws them
        self._kept = {}  # canvas -> its pixels with the still artists drawn
        self._key = None  # what the still artists showed at the last redraw_if_changed
        self._has_key = False
        self._earlier = []  # [(key, kept pixels)] of earlier keys, the most recent last
        self.set_zorder(-1)  # before the figure's other artists
        self.set_in_layout(False)
        figure.add_artist(self)

    def forget(self):
        """Call after changing a still artist: the next draw draws them again."""
        self._kept = {}
        self._earlier.clear()

    def redraw_if_changed(self, key) -> bool:
        """Say what the still artists show now, as any value that compares with == (their axis
        limits, say): it must describe everything about them that can change. If it differs
        from the last call's (or on the first call), True is returned (the caller sets the
        still artists for it) and the pixels kept for this key, if it was one of the last
        ``KEYS`` keys, are pasted on the next draw, else the still artists are drawn again;
        otherwise False."""
        if self._has_key and key == self._key:
            return False
        if self._has_key and self._kept:
            self._earlier.append((self._key, self._kept))
            del self._earlier[:-self.keys]
        self._key, self._has_key = key, True
        self._kept = {}
        for index, (earlier_key, kept) in enumerate(self._earlier):
            if _same(earlier_key, key):
                self._kept = kept
                del self._earlier[index]
                break
        return True

    def draw(self, renderer):
        canvas = self._canvas(renderer)
        if canvas in self._kept:
            renderer.restore_region(self._kept[canvas])
            return
        for artist in self.still:
            artist.draw(renderer)
        if canvas is not None:
            if len(self._kept) >= self.KEEP:
                del self._kept[next(iter(self._kept))]  # the oldest
            region = Bbox.from_bounds(0, 0, renderer.width, renderer.height)
            if self.own_region:
                covered = Bbox.union([artist.get_tightbbox(renderer) for artist in self.still])
                region = Bbox.intersection(covered.padded(2), region) or region
            self._kept[canvas] = renderer.copy_from_bbox(region)

    def _canvas(self, renderer):
        """What the kept pixels depend on, or None when they cannot be kept."""
        if not hasattr(renderer, "copy_from_bbox") or "draw_text" in vars(renderer):
            return None  # a vector format, or a layout pass (``_draw_disabled``) that draws nothing
        figure = self.get_figure()
        return (renderer.width, renderer.height, figure.dpi, tuple(figure.bbox.bounds),
                tuple(figure.patch.get_facecolor()),
                *((tuple(ax.bbox.bounds), tuple(ax.patch.get_facecolor())) for ax in figure.axes))


def _same(a, b) -> bool:
    """a == b for keys of ``redraw_if_changed`` (False where == gives no single answer)."""
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False
