"""What the widget says while a run goes: the status line, a time estimate, napari's activity bar.

napari's progress bar runs ``QApplication.processEvents()`` on every new
value or description, which repaints the whole window (and runs queued
handlers) inside the caller: on software OpenGL 20-100 ms a repaint. So the
bar keeps one description (the stages are in the status line), its range is
set at each stage (no repaint), and its value moves at most once a second
from an event-loop callback of its own, never inside the handler that draws
a preview.
"""

from __future__ import annotations

import functools
import time

from qtpy.QtCore import QTimer

from ._run import STAGE_TEXT

__all__ = ["RunProgress", "duration"]


def duration(seconds):
    """``"12 s"`` or ``"3 min 05 s"``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


class RunProgress:
    """The status line and napari's activity bar of one widget's runs.

    Parameters
    ----------
    status : QLabel
        The widget's status line.
    """

    def __init__(self, status):
        self.status = status
        self.bar = None  # napari.utils.progress of the run in progress
        self._state = {}

    def start(self, name):
        """A run of layer ``name`` begins."""
        from napari.utils import progress

        self.close()
        self._state = {}
        self.bar = progress(total=0, desc=f"DFC {name}")
        self.status.setText("Starting…")

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def report(self, report):
        """Show one engine report (a start-up stage, or iteration ``i`` of ``n``)."""
        stage = report.info.get("stage")
        if stage in STAGE_TEXT:
            self._show(STAGE_TEXT[stage], 0, 0, stage)
            return
        now = time.perf_counter()
        key = "label_start" if stage == "label" else "train_start"
        state = self._state
        if state.get(key) is None or report.i < state[key][1]:
            state[key] = (now, report.i)
        t0, i0 = state[key]
        what = "Labelling" if stage == "label" else "Training"
        text = f"{what} {report.i}/{report.n}"
        if report.n and report.i > i0:
            left = (now - t0) / (report.i - i0) * (report.n - report.i)
            text += f" · about {duration(left)} left"
        self._show(text, report.i, report.n, what)

    def _show(self, text, i, n, stage):
        self.status.setText(text)
        bar = self.bar
        if bar is None:
            return
        now = time.perf_counter()
        state = self._state
        if stage != state.get("bar_stage"):
            state["bar_stage"], state["bar_time"] = stage, now
            bar.total = n
            bar.n = 0  # labelling restarts the count after training
        elif n and i > bar.n and (now - state.get("bar_time", 0.0) >= 1.0 or i >= n):
            state["bar_time"] = now
            QTimer.singleShot(0, functools.partial(self._advance, bar, i))

    def _advance(self, bar, i):
        if bar is self.bar and i > bar.n:
            bar.update(i - bar.n)
