"""helpers.backdrop: a pasted still layer looks like a fresh draw, forget() and
redraw_if_changed(key) draw it again when it changes, one picture per canvas."""

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# -- the Backdrop: still artists drawn once, pasted back -----------------------------------


def _png_pixels(figure, **savefig):
    import io

    import matplotlib.image as mpimg

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", **savefig)
    buffer.seek(0)
    return mpimg.imread(buffer, format="png")


def _figure_with_backdrop(title):
    from helpers.backdrop import Backdrop, overlay_axes

    figure, still = plt.subplots(figsize=(3, 2))
    still.set(xlim=(0, 1), ylim=(0, 1), title=title)
    line = overlay_axes(still).plot([0, 1], [0, 1], lw=3)[0]
    backdrop = Backdrop(figure, [still])
    return figure, still, line, backdrop


def test_a_pasted_backdrop_looks_like_a_fresh_draw():
    figure, _, line, _ = _figure_with_backdrop("still")
    first = _png_pixels(figure)
    line.set_ydata([1, 0])  # what moves is drawn anew over the pasted still part
    second = _png_pixels(figure)
    fresh, _, fresh_line, _ = _figure_with_backdrop("still")
    fresh_line.set_ydata([1, 0])
    assert np.abs(second - _png_pixels(fresh)).max() < 1e-6
    assert np.abs(first - second).max() > 0.5  # the line did move
    plt.close(figure)
    plt.close(fresh)


def test_a_changed_still_artist_shows_after_forget():
    figure, still, _, backdrop = _figure_with_backdrop("before")
    _png_pixels(figure)
    still.set_title("after, a longer title")
    stale = _png_pixels(figure)  # the Backdrop does not notice by itself...
    backdrop.forget()  # ...whoever changes a still artist tells it
    redrawn = _png_pixels(figure)
    fresh = _figure_with_backdrop("after, a longer title")[0]
    assert np.abs(redrawn - _png_pixels(fresh)).max() < 1e-6
    assert np.abs(stale - redrawn).max() > 0.5
    plt.close(figure)
    plt.close(fresh)


def test_a_backdrop_keeps_one_picture_per_canvas_and_draws_vector_output_in_full():
    import io

    figure, _, _, _ = _figure_with_backdrop("a title")
    plain = _png_pixels(figure)
    tight = _png_pixels(figure, bbox_inches="tight")  # a layout pass, then another canvas
    assert tight.shape != plain.shape
    assert np.abs(_png_pixels(figure) - plain).max() < 1e-6
    assert np.abs(_png_pixels(figure, bbox_inches="tight") - tight).max() < 1e-6
    svg = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none"}):  # text kept as text
        figure.savefig(svg, format="svg")
    assert "a title" in svg.getvalue()  # no pixels to paste: the still axes are drawn
    plt.close(figure)


def test_redraw_if_changed_draws_the_still_artists_again_only_for_a_new_key():
    figure, still, _, backdrop = _figure_with_backdrop("before")
    assert backdrop.redraw_if_changed(still.get_xlim())  # the first key: drawn
    _png_pixels(figure)
    assert not backdrop.redraw_if_changed(still.get_xlim())  # the same key: pixels kept
    still.set_xlim(0, 2)
    assert backdrop.redraw_if_changed(still.get_xlim())  # new limits: drawn again
    redrawn = _png_pixels(figure)
    fresh, fresh_still, _, _ = _figure_with_backdrop("before")
    fresh_still.set_xlim(0, 2)
    assert np.abs(redrawn - _png_pixels(fresh)).max() < 1e-6
    plt.close(figure)
    plt.close(fresh)
