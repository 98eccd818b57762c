"""The DFC Segmentation widget end to end in a real napari window."""

import nibabel as nib
import numpy as np
import pytest

from napari_dfcseg.datasets import head_phantom
from napari_dfcseg.io import Volume
from napari_dfcseg.plugin._widget import DFCSegWidget

from conftest import dock_dfc_widget, wait_until_idle

ROTATION = np.array([[0.8, -0.6, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0]])  # columns: i, j, k in LPS


def _oblique_phantom_volume():
    p = head_phantom(shape=(6, 32, 28), spacing=(3.0, 1.2, 1.2))
    return Volume.from_array(p.image, spacing=p.spacing, origin=(-40.0, 25.0, 110.0),
                             direction=ROTATION, modality="MR"), p


def _viewer_with_widget(widget_viewer, volume, **settings):
    viewer, image, widget, _ = widget_viewer(volume, name="phantom", min_labels=1, **settings)
    return viewer, image, widget


def test_run_adds_clusters_layer_on_the_image_that_edits_undoes_and_saves(widget_viewer, qtbot, tmp_path):
    volume, _ = _oblique_phantom_volume()
    viewer, image, widget = _viewer_with_widget(widget_viewer, volume)
    added, previewed = [], []
    viewer.layers.events.inserted.connect(lambda e: added.append(e.value.name))
    handle = widget.run()
    # after the widget's own handler: the preview is in the result layer while the run goes on
    handle.worker.yielded.connect(lambda r: r.info.get("preview") is not None and previewed.append(
        "phantom labels" in [layer.name for layer in viewer.layers]
        and bool(viewer.layers["phantom labels"].data.any())))
    wait_until_idle(qtbot, widget)

    [out] = [layer for layer in viewer.layers if layer.name == "phantom labels"]
    assert previewed and all(previewed)  # a live preview was shown in the result layer...
    assert added == ["phantom body", "phantom labels"]  # ...which no other layer came and went for
    assert out.data.shape == image.data.shape
    assert out.data.max() >= 2
    for k, j, i in [(0, 0, 0), (5, 31, 27), (2, 10, 20)]:
        np.testing.assert_allclose(out.data_to_world((k, j, i)), image.data_to_world((k, j, i)))

    # paint one voxel, then undo it
    before = out.data.copy()
    new_label = int(out.data[3, 16, 14]) % 5 + 1
    out.paint((3, 16, 14), new_label, refresh=True)
    assert out.data[3, 16, 14] == new_label
    out.undo()
    np.testing.assert_array_equal(out.data, before)

    # the label table is the layer's features
    qtbot.waitUntil(lambda: "volume_ml" in out.features, timeout=10_000)
    voxels = dict(zip(out.features["index"], out.features["voxels"]))
    assert sum(voxels.values()) == np.count_nonzero(out.data)

    written = widget.save_labels(tmp_path / "phantom_seg.nii.gz")
    saved = nib.load(written[0])
    np.testing.assert_allclose(saved.affine, volume.affine_ras, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(saved.dataobj).transpose(2, 1, 0), out.data)

    # reference mode: the trained model labels another scan
    model_path = widget.save_model(tmp_path / "model.pt")
    assert model_path is not None
    widget.replace_box.setChecked(False)  # keep the first result: a new layer
    widget.apply_model(model_path)
    wait_until_idle(qtbot, widget)
    [applied] = [layer for layer in viewer.layers if layer.name == "phantom model labels"]
    np.testing.assert_array_equal(applied.data, out.data)


def test_cancel_mid_run_adds_nothing_and_leaves_the_viewer_usable(widget_viewer, qtbot):
    volume, _ = _oblique_phantom_volume()
    viewer, _, widget = _viewer_with_widget(widget_viewer, volume, max_iter=5000)
    widget.preview.min_interval_s = 0.0
    # the run's layers are made, empty, when the image is chosen
    qtbot.waitUntil(lambda: len(viewer.layers) == 3, timeout=10_000)
    assert [layer.name for layer in viewer.layers] == ["phantom", "phantom body", "phantom labels"]
    assert not any(layer.data.any() for layer in list(viewer.layers)[1:])
    changes, shown = [], []
    viewer.layers.events.inserted.connect(lambda e: changes.append(e.value.name))
    viewer.layers.events.removed.connect(lambda e: changes.append(e.value.name))
    reports = []
    handle = widget.run()
    handle.worker.yielded.connect(reports.append)
    handle.worker.yielded.connect(lambda r: r.info.get("preview") is not None and shown.append(
        viewer.layers["phantom labels"].data.any() and viewer.layers["phantom body"].data.any()))
    qtbot.waitUntil(lambda: len(shown) >= 1, timeout=60_000)
    assert shown[-1]  # the body outline and the preview are shown in the prepared layers
    widget.cancel()
    wait_until_idle(qtbot, widget, timeout=20_000)
    assert not handle.worker.is_running
    assert reports[-1].i < 5000
    assert changes == []  # no layer came or went
    # as before the run: empty
    assert not any(layer.data.any() for layer in list(viewer.layers)[1:])
    assert widget.settings.region.value == "auto"
    assert widget.run_button.isEnabled()
    viewer.add_points([[0, 0, 0]])  # still usable
    assert "Cancelled" in widget.status.text()


def _assert_one_line_error(notifications, text):
    from napari.utils.notifications import ErrorNotification, NotificationSeverity

    errors = [n for n in notifications if n.severity == NotificationSeverity.ERROR]
    assert errors, "no error notification"
    assert not any(isinstance(n, ErrorNotification) for n in errors)  # no traceback
    assert text in errors[-1].message
    assert "\n" not in errors[-1].message


def test_2d_layer_in_3d_mode_shows_an_error_notification(make_napari_viewer, qtbot, notifications):
    viewer = make_napari_viewer()
    slice_2d = head_phantom(shape=(4, 32, 28)).image[2]
    widget = dock_dfc_widget(viewer, viewer.add_image(slice_2d, name="slice"), mode="3D")
    widget.run()
    wait_until_idle(qtbot, widget)
    _assert_one_line_error(notifications, "3D mode needs a 3D image")
    assert [layer.name for layer in viewer.layers] == ["slice"]


def test_mismatched_scribbles_show_an_error_notification(widget_viewer, qtbot, notifications):
    volume, _ = _oblique_phantom_volume()
    viewer, _, widget = _viewer_with_widget(widget_viewer, volume)
    bad = viewer.add_labels(np.zeros((6, 30, 28), dtype=np.uint8), name="wrong scribbles")
    widget.settings.scribbles.value = bad
    widget.run()
    wait_until_idle(qtbot, widget)
    _assert_one_line_error(notifications, "scribbles")
    # no result: the prepared result layer stays empty
    assert not any(layer.name.endswith(" labels") and layer.data.any() for layer in viewer.layers)


def test_add_scribbles_layer_is_empty_on_the_image_with_the_brush_ready(widget_viewer):
    volume, _ = _oblique_phantom_volume()
    viewer, image, widget = _viewer_with_widget(widget_viewer, volume)
    layer = widget.add_scribbles_layer()
    assert layer.data.shape == image.data.shape and not layer.data.any()
    np.testing.assert_allclose(layer.data_to_world((5, 31, 27)), image.data_to_world((5, 31, 27)))
    assert layer.mode == "paint" and layer.selected_label == 1
    assert widget.settings.scribbles.value is layer
    assert viewer.layers.selection.active is layer


def test_intensity_anchor_control_follows_the_preset_and_turns_the_mixture_off(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = DFCSegWidget(viewer)
    s = widget.settings
    s.preset.value = "default"
    assert s.anchor.value == pytest.approx(1.0)
    cfg = s.config()
    assert cfg.mixture_components == 3 and cfg.mixture_weight == pytest.approx(1.0)
    s.anchor.value = 0.0
    assert s.config().mixture_components is None
    s.preset.value = "paper"  # the published method: no anchoring
    assert s.anchor.value == 0.0 and s.config().mixture_components is None
    s.anchor.value = 2.0
    assert s.config().mixture_components == 3 and s.config().mixture_weight == pytest.approx(2.0)
