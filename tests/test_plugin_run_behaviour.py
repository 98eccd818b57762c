"""What a run does to the viewer: preview of the user's slice, a free event loop, RGB, reference mode."""

import time

import numpy as np
import pytest

from napari_dfcseg.datasets import head_phantom
from napari_dfcseg.io import Volume
from napari_dfcseg.plugin._layers import image_layer_data
from napari_dfcseg.plugin._settings import REGION_AUTO

from conftest import dock_dfc_widget, wait_until_idle


def _viewer(widget_viewer, show=False):
    return widget_viewer(shape=(8, 40, 36), show=show, tissues="3")


def test_preview_is_of_the_slice_the_user_looks_at_and_moves_neither_dims_nor_selection(
        widget_viewer, qtbot):
    viewer, image, widget, _ = _viewer(widget_viewer)
    widget.settings.max_iter.value = 12  # previews at iterations 1 and 10
    viewer.dims.set_current_step(0, 2)
    step = tuple(viewer.dims.current_step)
    viewer.layers.selection.active = image
    seen = []

    def on_report(report):
        if report.info.get("preview") is not None:
            seen.append((report.info["preview_index"], tuple(viewer.dims.current_step),
                         viewer.layers.selection.active))

    handle = widget.run()
    handle.worker.yielded.connect(on_report)
    wait_until_idle(qtbot, widget)
    assert seen, "no preview was shown"
    assert all(index == 2 for index, _, _ in seen)
    assert all(s == step for _, s, _ in seen)
    assert all(active is image for _, _, active in seen)
    assert tuple(viewer.dims.current_step) == step


def _gaps_of_a_run(qtbot, widget):
    """Milliseconds between the ticks of a 20 ms timer while ``widget`` runs."""
    from qtpy.QtCore import QTimer

    ticks = [time.perf_counter()]
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    widget.run()
    wait_until_idle(qtbot, widget)
    qtbot.wait(500)  # the label table's recount lands after the run
    timer.stop()
    return np.diff(ticks) * 1000


@pytest.mark.slow
def test_the_event_loop_keeps_ticking_during_a_run(widget_viewer, qtbot):
    """Generous bounds (the machine is shared); benchmarks/gui_latency.py reports the figures.

    The run's layers are made when the image is chosen, so neither the first
    run nor the second adds or removes a layer (napari builds a Labels layer in
    one 0.3-0.9 s GUI-thread call and removing one runs a ``gc.collect``); every
    callback of a run is then a slice write, a status line or a repaint.
    """
    viewer, _, widget, _ = _viewer(widget_viewer, show=True)
    widget.settings.max_iter.value = 30
    qtbot.waitUntil(lambda: not widget.warm_up_worker.is_running, timeout=120_000)
    qtbot.waitUntil(lambda: widget.layers.spare_layer is not None, timeout=10_000)
    changes = []
    viewer.layers.events.inserted.connect(lambda e: changes.append(("added", e.value.name)))
    viewer.layers.events.removed.connect(lambda e: changes.append(("removed", e.value.name)))
    for run in ("first", "second"):
        gaps = _gaps_of_a_run(qtbot, widget)
        assert changes == [], f"the {run} run added or removed layers"
        assert len(gaps) > 20
        assert np.median(gaps) < 60
        assert gaps.max() < 1000, f"the GUI froze for {gaps.max():.0f} ms in the {run} run"
    assert widget.output_layer.data.any()


def test_an_rgb_image_is_segmented_as_one_colour_image(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    rgb = np.zeros((40, 50, 3), np.uint8)
    rgb[:, :25] = (200, 30, 30)
    rgb[:, 25:] = (30, 30, 200)
    rgb[10:30, 10:40, 1] = 180
    rgb = (rgb + np.random.default_rng(0).integers(0, 20, rgb.shape)).astype(np.uint8)
    image = viewer.add_image(rgb, name="photo", rgb=True)
    # a photo is one 2D image whatever the mode says
    widget = dock_dfc_widget(viewer, image, max_iter=5, mode="3D")
    widget.run()
    wait_until_idle(qtbot, widget)
    out = widget.output_layer
    assert out.data.shape == (40, 50)
    assert out.data.min() >= 1  # the whole photo is segmented (no body outline)
    qtbot.waitUntil(lambda: widget.label_table.table.rowCount() >= 2, timeout=20_000)
    assert np.isfinite(out.features["mean"]).all()


def test_applied_model_leaves_the_air_of_another_scan_at_label_0(widget_viewer, qtbot, tmp_path):
    viewer, image, widget, p = _viewer(widget_viewer)
    widget.settings.max_iter.value = 5
    widget.run()
    wait_until_idle(qtbot, widget)
    model = widget.save_model(tmp_path / "model.pt")
    # another scan of the same kind; the Region goes back to Auto for it
    other = head_phantom(shape=(8, 40, 36), spacing=(3.0, 1.2, 1.2), seed=5)
    data, kwargs, _ = image_layer_data(Volume.from_array(other.image, spacing=other.spacing,
                                                         modality="MR"), name="other")
    second = viewer.add_image(data, **kwargs)
    widget.settings.image.value = second
    widget.settings.region.value = REGION_AUTO
    widget.apply_model(model)
    wait_until_idle(qtbot, widget)
    [applied] = [layer for layer in viewer.layers if layer.name == "other model labels"]
    body = viewer.layers["other body"].data > 0
    assert not applied.data[~body].any()  # no column of air labelled as tissue
    assert (applied.data[:, :3, :3] == 0).all() and (applied.data[:, -3:, -3:] == 0).all()  # air corners
    assert (applied.data[other.mask] > 0).mean() > 0.8  # most of the head itself is labelled


def test_apply_model_uses_the_extra_contrasts_the_model_was_trained_with(widget_viewer, qtbot,
                                                                         tmp_path, notifications):
    viewer, image, widget, p = _viewer(widget_viewer)
    t2 = viewer.add_image(p.image.max() - p.image, name="t2", **{
        k: getattr(image, k) for k in ("scale", "translate")})
    s = widget.settings
    s.max_iter.value = 3
    s.channels.value = [t2]
    widget.run()
    wait_until_idle(qtbot, widget)
    trained = widget.output_layer.data.copy()
    model = widget.save_model(tmp_path / "two_contrasts.pt")
    widget.replace_box.setChecked(False)
    widget.apply_model(model)  # same image, same contrast: the same labels
    wait_until_idle(qtbot, widget)
    [applied] = [layer for layer in viewer.layers if layer.name == "head model labels"]
    np.testing.assert_array_equal(applied.data, trained)
    s.channels.value = []  # the model needs its second contrast: one line, no traceback
    widget.apply_model(model)
    wait_until_idle(qtbot, widget)
    from napari.utils.notifications import NotificationSeverity

    errors = [n for n in notifications if n.severity == NotificationSeverity.ERROR]
    assert errors and "\n" not in errors[-1].message
    assert "channel" in errors[-1].message.lower() or "contrast" in errors[-1].message.lower()
