"""The renderer behind live dragging (helpers.panel.LiveRenderer), without a kernel.

A drag sends values faster than frames can be drawn. The renderer must draw the newest values
when the previous frame is done, drop those in between, always end on the frame for the last
values it was given, turn a render that raises into a Notice, and let no exception escape."""

import threading
import time

import pytest

from helpers.panel import LiveRenderer, Notice


class Screen:
    """A slow render (``seconds`` per frame) and a record of every frame shown."""

    def __init__(self, seconds=0.02, fail_at=None, show_fails=False):
        self.seconds, self.fail_at, self.show_fails = seconds, fail_at, show_fails
        self.rendered, self.frames, self.threads = [], [], set()

    def render(self, values):
        self.threads.add(threading.current_thread().name)
        time.sleep(self.seconds)
        self.rendered.append(values["x"])
        if values["x"] == self.fail_at:
            raise ZeroDivisionError("division by zero")
        return f"frame {values['x']}"

    def show(self, frame):
        if self.show_fails:
            raise RuntimeError("the front end went away")
        self.frames.append(frame)


def drag(renderer, values, every=0.002):
    for x in values:
        renderer.submit({"x": x})
        time.sleep(every)


def test_a_fast_drag_ends_on_the_last_value_and_drops_those_in_between():
    screen = Screen(seconds=0.02)
    renderer = LiveRenderer(screen.render, screen.show)
    drag(renderer, range(200))
    assert renderer.wait(10)
    assert screen.frames[-1] == "frame 199"
    assert 2 <= len(screen.frames) < 100, screen.frames  # frames during the drag, most values dropped
    assert screen.rendered == sorted(screen.rendered)  # never an older value after a newer one
    assert len(set(screen.rendered)) == len(screen.rendered)
    assert screen.threads == {"panel-renderer"}
    assert renderer.frames == len(screen.frames)


def test_submit_returns_at_once_while_a_frame_is_drawn():
    screen = Screen(seconds=0.3)
    renderer = LiveRenderer(screen.render, screen.show)
    started = time.perf_counter()
    drag(renderer, range(20), every=0)
    assert time.perf_counter() - started < 0.2
    assert renderer.busy
    assert renderer.wait(10)
    assert screen.frames[-1] == "frame 19" and len(screen.frames) <= 3


def test_render_now_draws_in_the_caller_s_thread_and_supersedes_pending_values():
    screen = Screen(seconds=0.05)
    renderer = LiveRenderer(screen.render, screen.show)
    drag(renderer, range(5), every=0)
    renderer.render_now({"x": 99})
    assert renderer.wait(10)
    time.sleep(0.1)  # nothing older may arrive after it
    assert screen.frames[-1] == "frame 99"
    assert threading.current_thread().name in screen.threads


def test_a_render_that_raises_shows_a_notice_and_the_next_values_draw_again():
    screen = Screen(seconds=0.0, fail_at=3)
    renderer = LiveRenderer(screen.render, screen.show)
    renderer.submit({"x": 3})
    assert renderer.wait(10)
    assert isinstance(screen.frames[-1], Notice)
    assert "could not be drawn (ZeroDivisionError: division by zero)" in screen.frames[-1].text
    renderer.submit({"x": 4})
    assert renderer.wait(10)
    assert screen.frames[-1] == "frame 4"


def test_a_show_that_raises_escapes_nowhere_and_the_renderer_goes_on():
    screen = Screen(seconds=0.0, show_fails=True)
    renderer = LiveRenderer(screen.render, screen.show)
    renderer.render_now({"x": 1})
    renderer.submit({"x": 2})
    assert renderer.wait(10)
    assert screen.rendered == [1, 2]


def test_the_thread_ends_when_idle_and_starts_again():
    screen = Screen(seconds=0.0)
    renderer = LiveRenderer(screen.render, screen.show, idle_seconds=0.05)
    renderer.submit({"x": 1})
    assert renderer.wait(10)
    time.sleep(0.3)
    assert renderer._thread is None
    renderer.submit({"x": 2})
    assert renderer.wait(10)
    assert screen.frames == ["frame 1", "frame 2"]


@pytest.mark.parametrize("live", [True, False])
def test_a_panel_widget_ends_on_the_released_value_live_or_release_only(live):
    """A panel's widget, without a kernel: values set one after another as a drag does; the
    frame shown at the end is the one for the last value, and the sliders send their values
    while dragged exactly when the panel is live."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from helpers.panel import Control, Panel, PanelView

    def draw(slope):
        figure, axes = plt.subplots(figsize=(2, 1.5))
        axes.plot([0, 1], [0, slope])
        axes.set_ylim(-3, 3)
        return figure

    def update(figure, slope):
        figure.axes[0].lines[0].set_ydata([0, slope])

    def compute(slope):
        return Notice("no slope of exactly 0") if slope == 0 else slope

    panel = Panel("fixture", compute, draw, [Control("slope", "float", 1.0, low=-3.0, high=3.0)],
                  update=update, release_only="" if live else "each setting trains a network")
    assert panel.live is live
    box = panel.widget()
    assert box.controls["slope"].continuous_update is live
    assert isinstance(box.shown(), bytes) and box.image.value == box.shown()
    for step in range(1, 31):
        box.controls["slope"].value = round(-3.0 + 0.2 * step, 1)
    assert box.wait(30)
    assert box.controls["slope"].value == 3.0
    expected = PanelView(panel).frame({"slope": 3.0})
    assert box.image.value == expected
    box.controls["slope"].value = 0.0
    assert box.wait(30)
    assert isinstance(box.shown(), Notice) and "no slope" in box.notice.value
    assert box.image.layout.display == "none" and box.notice.layout.display is None
    assert expected[:4] == b"\x89PNG"
