"""How long the napari event loop is blocked during a widget run (issue 12's GUI goal: < 100 ms).

A 20 ms ``QTimer`` runs in a real napari window while the DFC Segmentation
widget segments a real scan; every gap between two ticks longer than the
period is time the GUI could not answer the user. The report gives the
largest gap, the 99th percentile and what happened around the largest gaps
(preview shown, result added, table filled).

Run headless::

    xvfb-run -a python -m benchmarks.gui_latency [--scan PATH] [--preset fast] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
DEFAULT_SCAN = REAL / "mr-brain-tumour" / "image.nrrd"
PERIOD_MS = 20


class GapRecorder:
    """Ticks of a 20 ms timer on the GUI thread, and named events between them.

    Besides the widget's own events it records Python's garbage collections
    longer than 20 ms and, from a watchdog thread, where every thread was
    when the GUI thread had not ticked for 150 ms (a stall the widget's
    handlers do not explain: another thread holding the GIL, the collector,
    or no CPU for the process).
    """

    def __init__(self, period_ms=PERIOD_MS):
        from qtpy.QtCore import QTimer

        self.period_ms = period_ms
        self.ticks = []
        self.events = []
        self.timer = QTimer()
        self.timer.setInterval(period_ms)
        self.timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))
        self._gc_start = None
        self._watching = False

    def _on_gc(self, phase, info):
        now = time.perf_counter()
        if phase == "start":
            self._gc_start = now
        elif self._gc_start is not None and now - self._gc_start > 0.02:
            self.events.append((now, f"gc generation {info.get('generation')}: "
                                     f"{(now - self._gc_start) * 1000:.0f} ms"))

    def _watch(self):
        import sys
        import threading
        import traceback

        gui = threading.main_thread().ident
        reported = None
        while self._watching:
            time.sleep(0.05)
            last = self.ticks[-1] if self.ticks else None
            if last is None or time.perf_counter() - last < 0.15 or reported == last:
                continue
            reported = last
            where = []
            for ident, frame in sys._current_frames().items():
                if ident == threading.get_ident():
                    continue
                name = "GUI" if ident == gui else "other"
                top = traceback.extract_stack(frame)[-2 if ident == gui else -4:]
                where.append(f"{name}: " + " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}"
                                                      for f in reversed(top)))
            self.events.append((time.perf_counter(), "stalled at " + " | ".join(sorted(where))))

    def start(self):
        import gc
        import threading

        self.ticks = [time.perf_counter()]
        gc.callbacks.append(self._on_gc)
        self._watching = True
        threading.Thread(target=self._watch, daemon=True, name="gap-watchdog").start()
        self.timer.start()

    def stop(self):
        import gc

        self.timer.stop()
        self._watching = False
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        self.ticks.append(time.perf_counter())

    def mark(self, name):
        self.events.append((time.perf_counter(), name))

    def summary(self, top=5):
        import numpy as np

        t = np.asarray(self.ticks)
        gaps = np.diff(t) * 1000.0
        order = np.argsort(gaps)[::-1][:top]
        worst = []
        for k in order:
            start, end = t[k], t[k + 1]
            near = [name for when, name in self.events if start - 0.05 <= when <= end + 0.05]
            worst.append({"gap_ms": round(float(gaps[k]), 1), "at_s": round(float(start - t[0]), 2),
                          "events": sorted(set(near))})
        return {
            "period_ms": self.period_ms,
            "ticks": int(gaps.size),
            "max_gap_ms": round(float(gaps.max()), 1) if gaps.size else 0.0,
            "p99_gap_ms": round(float(np.percentile(gaps, 99)), 1) if gaps.size else 0.0,
            "median_gap_ms": round(float(np.median(gaps)), 1) if gaps.size else 0.0,
            "gaps_over_100ms": int((gaps > 100).sum()),
            "worst": worst,
        }


def measure(viewer, widget, *, timeout_s=900):
    """Run the widget once with a gap recorder; returns the summary (and the run's seconds)."""
    from qtpy.QtWidgets import QApplication

    rec = GapRecorder()
    events = viewer.layers.events
    events.inserted.connect(lambda e: rec.mark(f"layer added: {e.value.name}"))
    app = QApplication.instance()
    # what a user does first: open the widget, pick the scan and settings (the
    # widget's warm-up of torch and napari's colour tables runs meanwhile)
    warm = getattr(widget, "warm_up_worker", None)
    while warm is not None and warm.is_running:
        app.processEvents()
        time.sleep(0.01)
    for _ in range(10):
        app.processEvents()
    handlers = {}

    def timed(name, func):
        def wrapper(*args):
            t0 = time.perf_counter()
            try:
                return func(*args)
            finally:
                handlers.setdefault(name, []).append((time.perf_counter() - t0) * 1000.0)
        return wrapper

    targets = [(widget, "_on_progress"), (widget, "_on_returned"), (widget, "_on_finished"),
               (widget, "_select_result"), (widget, "_count_result"),
               (getattr(widget, "progress_report", None), "_advance"),
               (widget.label_table, "_on_counted")]
    targets = [(owner, name) for owner, name in targets if hasattr(owner, name)]
    originals = {name: getattr(owner, name) for owner, name in targets}
    for owner, name in targets:
        setattr(owner, name, timed(name, originals[name]))
    rec.start()
    start = time.perf_counter()
    handle = widget.run()
    if handle is None:
        raise RuntimeError(f"the run did not start: {widget.status.text()}")
    handle.worker.yielded.connect(
        lambda r: rec.mark("preview" if r.info.get("preview") is not None else "progress"))
    handle.worker.returned.connect(lambda *_: rec.mark("result"))
    while widget.running and time.perf_counter() - start < timeout_s:
        app.processEvents()
        time.sleep(0.002)
    run_s = time.perf_counter() - start
    # the label table recount and its fill happen just after the run
    end = time.perf_counter() + 3.0
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.002)
    rec.stop()
    for owner, name in targets:
        delattr(owner, name)  # back to the class's methods
    summary = rec.summary()
    # time spent inside the widget's own GUI-thread handlers (what the plugin controls)
    summary["handlers_ms"] = {name: {"calls": len(v), "max": round(max(v), 1),
                                     "total": round(sum(v), 1)} for name, v in handlers.items()}
    summary["run_s"] = round(run_s, 1)
    summary["status"] = widget.status.text()
    return summary


def napari_floor(viewer, image, repeats=3):
    """Milliseconds napari itself blocks the event loop: to add one Labels layer, to repaint.

    ``add_labels_ms``: adding a Labels layer of the image's shape (what the
    widget pays when it prepares a run's layers, before the run).
    ``repaint_ms``: one repaint of the canvas with nothing changed, the floor
    of any event-loop callback that changes what is shown (a preview, the
    result); on Xvfb's software OpenGL it is the CPU's to pay.
    """
    import numpy as np
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    canvas = viewer.window._qt_viewer.canvas.native
    repaints = []
    for _ in range(5):
        for _ in range(20):
            app.processEvents()
            time.sleep(0.005)
        start = time.perf_counter()
        canvas.update()
        app.processEvents()
        repaints.append((time.perf_counter() - start) * 1000.0)
    shape = image.data.shape[: image.ndim]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        layer = viewer.add_labels(np.zeros(shape, np.uint8), scale=image.scale)
        app.processEvents()  # the draw of the new layer belongs to the add
        times.append((time.perf_counter() - start) * 1000.0)
        end = time.perf_counter() + 0.5
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.005)
        viewer.layers.remove(layer)
    return {"add_labels_ms": [round(t, 1) for t in times],
            "repaint_ms": [round(t, 1) for t in repaints]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scan", default=str(DEFAULT_SCAN))
    parser.add_argument("--preset", default="default")
    parser.add_argument("--mode", default="2D slice-wise")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="also write the summary here")
    args = parser.parse_args(argv)

    import napari

    from napari_dfcseg.plugin._widget import DFCSegWidget

    viewer = napari.Viewer(show=True)
    [image] = viewer.open(args.scan, plugin="napari-dfcseg")
    start = time.perf_counter()
    widget = DFCSegWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    widget_open_ms = (time.perf_counter() - start) * 1000.0
    s = widget.settings
    s.image.value = image
    s.preset.value = args.preset
    s.mode.value = args.mode
    s.device.value = args.device
    # the widget makes the run's (empty, hidden) layers when the image is chosen
    from qtpy.QtWidgets import QApplication

    prepare = getattr(widget, "prepare_layers", None)
    prepare_ms = None
    if prepare is not None:  # one layer per callback, as the widget's own timer does
        widget._prepare_timer.stop()
        prepare_ms = []
        while True:
            start = time.perf_counter()
            added = prepare(one_at_a_time=True)
            widget._prepare_timer.stop()
            QApplication.instance().processEvents()  # its first draw
            if not added:
                break
            prepare_ms.append(round((time.perf_counter() - start) * 1000.0, 1))
    summary = {"first_run": measure(viewer, widget)}
    # a second run into the same result layer, with the (editable) body layer as Region
    summary["second_run"] = measure(viewer, widget)
    summary["widget_open_ms"] = round(widget_open_ms, 1)
    summary["prepare_layers_ms"] = prepare_ms
    summary["napari_floor"] = napari_floor(viewer, image)
    summary.update(scan=str(args.scan), preset=args.preset, mode=args.mode,
                   load=os.getloadavg(), cpus=os.cpu_count())
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    viewer.close()
    return summary


if __name__ == "__main__":
    main()
