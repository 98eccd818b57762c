"""thread_worker glue: run an engine call off the GUI thread, yield its progress, cancel it.

The engine reports progress through a callback and stops when a
``threading.Event`` is set. napari's generator workers want ``yield``
instead, so the engine call runs on a helper thread and the worker's
generator relays its progress reports from a queue. Nothing here touches the
viewer: the widget applies the results in the worker's signal handlers, on the
GUI thread.

Exceptions travel back as *values* (an :class:`Outcome`), not as raised
errors: napari's workers relay a raised exception to its traceback dialog,
but a user who picked a 2D layer in 3D mode should read one line, not a
traceback.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field

__all__ = ["Progress", "Outcome", "EngineRun", "start_engine_run", "start_function", "describe_error"]

_log = logging.getLogger(__name__)

# how long the relay waits for a report before checking the engine thread again
_POLL_S = 0.1


@dataclass
class Outcome:
    """What a worker returns: the call's value, or the exception it raised."""

    value: object = None
    error: BaseException | None = None


def _dispatch(outcome, on_returned, on_errored):
    """GUI-thread handler of a worker's ``returned``: route an :class:`Outcome`."""
    if outcome.error is None:
        on_returned(outcome.value)
        return
    from napari_dfcseg.errors import DFCError

    if not isinstance(outcome.error, (DFCError, MemoryError)):
        # a bug, not a user error: keep the traceback in the log
        _log.error("napari-dfcseg run failed", exc_info=outcome.error)
    on_errored(outcome.error)


def _call_safely(func, *args, **kwargs):
    try:
        return Outcome(value=func(*args, **kwargs))
    except Exception as exc:
        return Outcome(error=exc)


@dataclass
class Progress:
    """One progress report of the engine: iteration ``i`` of ``n`` and its info dict."""

    i: int
    n: int
    info: dict = field(default_factory=dict)


#: report contents the GUI must see even when newer reports arrive first
_KEPT = (("preview", "preview_index"), ("region",))


def _kept_of(report, kept):
    """``kept`` updated with the report's preview and region (the newest of each wins)."""
    for keys in _KEPT:
        if keys[0] in report.info:
            kept.update({k: report.info[k] for k in keys if k in report.info})
    return kept


def _relay(call, cancel, preview_slice=None):
    """Generator run by the worker: start ``call`` on a helper thread, yield its progress."""
    reports = queue.SimpleQueue()
    outcome = {}

    def progress(i, n, info=None):
        reports.put(Progress(int(i), int(n), dict(info or {})))

    if preview_slice is not None:
        # the engine previews the slice this returns (the one the user looks at)
        progress.preview_slice = preview_slice

    def target():
        try:
            outcome["value"] = call(progress=progress, cancel=cancel)
        except Exception as exc:  # handed to the GUI thread as a value
            outcome["error"] = exc

    engine = threading.Thread(target=target, name="dfcseg-engine", daemon=True)
    engine.start()
    while engine.is_alive() or not reports.empty():
        try:
            latest = reports.get(timeout=_POLL_S)
        except queue.Empty:
            continue
        # the GUI only shows the newest report: skip a backlog, but keep the
        # newest label preview and the automatic region among the skipped ones
        kept = _kept_of(latest, {})
        while not reports.empty():
            latest = reports.get()
            kept = _kept_of(latest, kept)
        latest.info.update(kept)
        yield latest
    engine.join()
    return Outcome(value=outcome.get("value"), error=outcome.get("error"))


@dataclass
class EngineRun:
    """A running engine call: its napari worker and the event that cancels it."""

    worker: object
    cancel_event: threading.Event

    def cancel(self):
        """Ask the engine to stop; it raises ``Cancelled`` within one iteration."""
        self.cancel_event.set()


def start_engine_run(call, *, on_progress, on_returned, on_errored, on_finished, preview_slice=None):
    """Run ``call(progress=..., cancel=...)`` in a napari generator worker.

    Parameters
    ----------
    call : callable
        An engine function bound to its inputs, e.g. ``functools.partial(segment, image, ...)``.
    on_progress, on_returned, on_errored, on_finished : callable
        GUI-thread handlers of the worker's ``yielded`` (a :class:`Progress`),
        ``returned`` (the engine's result), the exception the engine raised, and
        ``finished`` signals.
    preview_slice : callable, optional
        Returns the slice index (data axis 0) the engine should preview, or None.

    Returns
    -------
    EngineRun
    """
    from napari.qt.threading import create_worker

    cancel = threading.Event()
    worker = create_worker(_relay, call, cancel, preview_slice, _start_thread=False,
                           _ignore_errors=True)
    worker.yielded.connect(on_progress)
    worker.returned.connect(lambda outcome: _dispatch(outcome, on_returned, on_errored))
    worker.finished.connect(on_finished)
    _keep_until_finished(worker, cancel)
    worker.start()
    return EngineRun(worker=worker, cancel_event=cancel)


def start_function(func, *args, on_returned, on_errored, on_finished=None, **kwargs):
    """Run a short computation ``func(*args, **kwargs)`` in a napari function worker."""
    from napari.qt.threading import create_worker

    worker = create_worker(
        _call_safely, func, *args, _start_thread=False, _ignore_errors=True, **kwargs
    )
    worker.returned.connect(lambda outcome: _dispatch(outcome, on_returned, on_errored))
    if on_finished is not None:
        worker.finished.connect(on_finished)
    _keep_until_finished(worker)
    worker.start()
    return worker


#: workers still running: a widget closed meanwhile (its viewer closed, a test
#: ended) must not take its workers' signal objects with it, and Python must not
#: exit under them: a thread's last ``finished.emit()`` on a deleted signal
#: object raises in Qt's thread pool and aborts the process (exit code 134)
_RUNNING = set()
_CANCELS = set()  # cancel events of the engine runs in progress
_EXIT_WAIT_MS = 60_000


def _keep_until_finished(worker, cancel=None):
    if not _RUNNING and not _CANCELS:
        import atexit

        atexit.unregister(_wait_for_workers)
        atexit.register(_wait_for_workers)
    _RUNNING.add(worker)
    if cancel is not None:
        _CANCELS.add(cancel)
    worker.finished.connect(lambda: (_RUNNING.discard(worker), _CANCELS.discard(cancel)))


def _wait_for_workers():
    """At interpreter exit: stop the engine runs and let every worker thread end first."""
    for cancel in list(_CANCELS):
        cancel.set()
    try:
        from qtpy.QtCore import QThreadPool
    except ImportError:  # pragma: no cover - Qt is gone already
        return
    QThreadPool.globalInstance().waitForDone(_EXIT_WAIT_MS)


def describe_error(exc):
    """The one-line message a user sees for an exception raised by a run.

    Project errors carry their own message; running out of memory gets advice;
    anything else (a bug) is named by its type.
    """
    from napari_dfcseg.errors import DFCError

    if isinstance(exc, DFCError):
        return _in_widget_words(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__
    text = str(exc)
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return (
            "Out of memory: try 2D slice-wise mode, fewer feature maps (Advanced), "
            "a smaller Region, or the CPU device"
        )
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _in_widget_words(message):
    """A message that names a config field or a CLI option, with the widget's label instead.

    ``DFCConfig.n_clusters = 40: must be ... n_channels (32)`` becomes
    ``Tissues = 40: must be ... Feature maps (32)``.
    """
    import re

    from napari_dfcseg.engine.parameters import PARAMETERS

    labels = {name: row.label for name, row in PARAMETERS.items()}
    labels["n_clusters"] = "Tissues"

    def field(match):
        name = match.group(1).replace("-", "_")
        return labels.get(name, match.group(0))

    message = re.sub(r"DFCConfig\.([a-z_0-9]+)", field, message).replace("be None or ", "be ")
    message = re.sub(r"--([a-z][a-z0-9-]*)", field, message)
    # a bare field name, but not inside a label already shown ("anchor" in "Intensity anchor")
    bare = re.compile(r"\b(" + "|".join(map(re.escape, labels)) + r")\b")
    shown = re.compile("(" + "|".join(map(re.escape, sorted(set(labels.values()), key=len,
                                                            reverse=True))) + ")")
    parts = shown.split(message)  # odd indices: the labels
    return "".join(part if i % 2 else bare.sub(lambda m: labels[m.group(1)], part)
                   for i, part in enumerate(parts))
