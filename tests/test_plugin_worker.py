"""The thread_worker glue: progress relayed from the engine thread, cancel, errors as values."""

import threading
import time

import pytest

from napari_dfcseg.errors import Cancelled, InvalidInputError
from napari_dfcseg.plugin._worker import describe_error, start_engine_run


def _counting_call(n, delay=0.01):
    """An engine-like call: reports every step, honours ``cancel`` like the engine does."""

    def call(progress, cancel):
        for i in range(1, n + 1):
            if cancel.is_set():
                raise Cancelled("cancelled")
            time.sleep(delay)
            progress(i, n, {"loss": 1.0 / i, "n_labels": n - i, "thread": threading.current_thread().name})
        return "done"

    return call


def _run(qtbot, call):
    seen = {"progress": [], "returned": [], "errored": [], "finished": 0}
    handle = start_engine_run(
        call,
        on_progress=seen["progress"].append,
        on_returned=seen["returned"].append,
        on_errored=seen["errored"].append,
        on_finished=lambda: seen.__setitem__("finished", seen["finished"] + 1),
    )
    return handle, seen


def test_progress_comes_from_the_engine_thread_and_the_result_arrives(qtbot):
    handle, seen = _run(qtbot, _counting_call(20))
    qtbot.waitUntil(lambda: seen["finished"] == 1, timeout=10_000)
    assert seen["returned"] == ["done"] and seen["errored"] == []
    assert seen["progress"][-1].i == 20  # the last report is never dropped
    assert {p.info["thread"] for p in seen["progress"]} == {"dfcseg-engine"}
    assert all(a.i < b.i for a, b in zip(seen["progress"], seen["progress"][1:]))


def test_cancel_stops_the_call_and_reports_cancelled(qtbot):
    handle, seen = _run(qtbot, _counting_call(10_000))
    qtbot.waitUntil(lambda: len(seen["progress"]) > 0, timeout=10_000)
    handle.cancel()
    qtbot.waitUntil(lambda: seen["finished"] == 1, timeout=10_000)
    assert seen["returned"] == []
    assert isinstance(seen["errored"][0], Cancelled)
    assert seen["progress"][-1].i < 10_000


def test_errors_come_back_as_values_without_a_traceback_notification(qtbot):
    from napari.utils.notifications import notification_manager

    def bad(progress, cancel):
        raise InvalidInputError("scribbles shape (2, 3) does not match image shape (4, 5)")

    before = len(notification_manager.records)
    handle, seen = _run(qtbot, bad)
    qtbot.waitUntil(lambda: seen["finished"] == 1, timeout=10_000)
    assert isinstance(seen["errored"][0], InvalidInputError)
    assert len(notification_manager.records) == before  # napari showed no traceback


def test_error_messages_are_one_line_and_out_of_memory_gets_advice():
    assert describe_error(InvalidInputError("mask shape is wrong\nmore")) == "mask shape is wrong"
    assert describe_error(MemoryError()).startswith("Out of memory")
    torch = pytest.importorskip("torch")
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert describe_error(oom).startswith("Out of memory")
    assert describe_error(KeyError("x")) == "KeyError: 'x'"


def test_messages_name_the_widgets_controls_not_config_fields_or_cli_options():
    from napari_dfcseg.errors import InvalidInputError
    from napari_dfcseg.plugin._worker import describe_error

    text = describe_error(InvalidInputError(
        "DFCConfig.n_clusters = 40: must be None or between 1 and n_channels (32)"))
    assert text == "Tissues = 40: must be between 1 and Feature maps (32)"
    assert describe_error(InvalidInputError("--max-iter: must be between 1 and 100000, got 0")) \
        .startswith("Training steps: must be")
