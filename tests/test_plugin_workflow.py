"""A clinician's workflow in the widget: controls, region, result layer, settings file, messages."""

import json

import numpy as np
import pytest

from napari_dfcseg.cli import build_parser
from napari_dfcseg.cli._options import config_from_args
from napari_dfcseg.engine.parameters import load_config
from napari_dfcseg.plugin._run import RUN_KEY
from napari_dfcseg.plugin._settings import REGION_AUTO, REGION_WHOLE
from napari_dfcseg.plugin._widget import DFCSegWidget

from conftest import wait_until_idle


def test_front_controls_speak_tissues_region_mode_and_preset_with_a_tooltip_each(make_napari_viewer):
    viewer = make_napari_viewer()
    s = DFCSegWidget(viewer).settings
    front = [w.label for w in s._inputs if w.label]
    assert front[:4] == ["Image", "Region", "Tissues", "Scribbles"]
    assert "Mode" in front and "Preset" in front
    assert s.tissues.value == "Auto" and s.tissues.choices == ("Auto", *map(str, range(2, 13)), "As found")
    assert s.config().n_clusters == "auto"
    assert s.region.value == REGION_AUTO
    assert "Recommended" in s.preset_help.value
    s.preset.value = "paper"
    assert "published" in s.preset_help.value
    assert s.tissues.value == "As found" and s.config().n_clusters is None  # the paper's rule
    s.preset.value = "brain"
    assert s.tissues.value == "3" and s.config().n_clusters == 3
    for widget in [*s._inputs, *s._advanced]:
        if widget is not s.preset_help:
            assert widget.tooltip, f"{widget.label} has no tooltip"
    # the engine's knobs are behind Advanced, in words a user knows
    advanced = [w.label for w in s._advanced]
    assert "Feature maps" in advanced and "Smoothness" in advanced


def test_forced_tissue_count_goes_into_the_config_and_is_checked_against_feature_maps(make_napari_viewer):
    viewer = make_napari_viewer()
    s = DFCSegWidget(viewer).settings
    s.tissues.value = "5"
    assert s.config().n_clusters == 5
    s.n_channels.value = 4
    with pytest.raises(Exception, match="5 tissues need at least 5 feature maps"):
        s.config()


def test_open_advanced_section_keeps_the_window_within_the_screen(widget_viewer, qtbot):
    from qtpy.QtWidgets import QApplication

    viewer, _, widget, _ = widget_viewer(show=True)
    window = viewer.window._qt_window
    screen = QApplication.primaryScreen().availableGeometry()
    window.resize(min(1200, screen.width()), min(800, screen.height()))
    widget.settings.advanced.expand(animate=False)
    qtbot.wait(100)
    assert window.frameGeometry().height() <= screen.height()
    # everything is still reachable: the scroll area scrolls to the Save button
    assert widget.scroll.verticalScrollBar().maximum() > 0
    bar = widget.scroll.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=5_000)
    qtbot.wait(300)  # the section finishes opening
    widget.scroll.ensureWidgetVisible(widget.save_labels_button)
    qtbot.wait(50)
    top_left = widget.save_labels_button.mapTo(widget.scroll.viewport(), widget.save_labels_button.rect().topLeft())
    assert 0 <= top_left.y() < widget.scroll.viewport().height()


def test_auto_region_keeps_air_at_clear_label_0_and_is_an_editable_layer_used_next(widget_viewer, qtbot):
    viewer, image, widget, p = widget_viewer(tissues="3")
    widget.run()
    wait_until_idle(qtbot, widget)
    result = widget.output_layer
    body = viewer.layers["head body"]
    assert body.editable and body.data.shape == image.data.shape
    # label 0 (transparent) everywhere outside the automatic region
    assert not result.data[body.data == 0].any()
    assert result.colormap.map(np.array([0]))[0][3] == 0.0
    # the phantom's air corners are outside; most of its head is inside
    assert body.data[:, :3, :3].sum() == 0
    assert body.data[p.mask].mean() > 0.9
    # the next run uses the (editable) body layer as its region
    assert widget.settings.region.value is body
    np.testing.assert_allclose(body.data_to_world((5, 39, 35)), image.data_to_world((5, 39, 35)))


def test_second_run_replaces_the_result_as_one_undo_step_unless_unticked(widget_viewer, qtbot):
    viewer, _, widget, _ = widget_viewer(region=REGION_WHOLE, tissues="3")
    widget.run()
    wait_until_idle(qtbot, widget)
    first = widget.output_layer
    first_labels = first.data.copy()
    widget.settings.seed.value = 7
    widget.settings.tissues.value = "4"
    widget.run()
    wait_until_idle(qtbot, widget)
    assert widget.output_layer is first
    assert [layer.name for layer in viewer.layers].count("head labels") == 1
    assert first.metadata[RUN_KEY]["seed"] == 7
    first.undo()  # the previous result comes back
    np.testing.assert_array_equal(first.data, first_labels)
    widget.replace_box.setChecked(False)
    widget.run()
    wait_until_idle(qtbot, widget)
    assert widget.output_layer is not first
    results = [layer for layer in viewer.layers if layer.name.startswith("head labels")]
    assert len([layer for layer in results if layer.data.any()]) == 2
    # and the next run's empty layer is made after this one, not during it
    qtbot.waitUntil(lambda: widget.layers.spare_layer is not None, timeout=10_000)
    assert not widget.layers.spare_layer.data.any()


def test_a_cancelled_second_run_leaves_the_previous_result_as_it_was(widget_viewer, qtbot):
    """The second run previews into the result it replaces, locked; a cancel gives it back intact."""
    viewer, _, widget, _ = widget_viewer(region=REGION_WHOLE, tissues="3")
    widget.run()
    wait_until_idle(qtbot, widget)
    first = widget.output_layer
    kept, history = first.data.copy(), len(first._undo_history)
    widget.settings.max_iter.value = 5000
    widget.preview.min_interval_s = 0.0
    previews = []
    handle = widget.run()
    handle.worker.yielded.connect(
        lambda r: r.info.get("preview") is not None and previews.append(first.editable))
    qtbot.waitUntil(lambda: len(previews) >= 2, timeout=60_000)
    assert previews == [False] * len(previews)  # no brush strokes into a layer the run writes
    widget.cancel()
    wait_until_idle(qtbot, widget, timeout=20_000)
    np.testing.assert_array_equal(first.data, kept)
    assert first.editable and len(first._undo_history) == history
    assert [layer.name for layer in viewer.layers].count("head labels") == 1


def test_run_record_in_metadata_and_exported_settings_rebuild_the_same_config(
        widget_viewer, qtbot, tmp_path):
    viewer, _, widget, _ = widget_viewer(region=REGION_WHOLE, tissues="4", seed=3)
    widget.run()
    wait_until_idle(qtbot, widget)
    record = widget.output_layer.metadata[RUN_KEY]
    assert record["seed"] == 3 and record["mode"] == "2d" and record["region"] == "whole"
    assert record["config"]["n_clusters"] == 4 and record["config"]["max_iter"] == 3
    assert record["seconds"]["total"] > 0 and record["labels"] == widget.last_result.n_labels
    json.dumps(record)  # plain types only: it can travel with the layer
    path = widget.export_settings(tmp_path / "tuned")
    assert path.name == "tuned.json"
    assert load_config(path) == widget.settings.config()
    assert "--config tuned.json --mode 2d --seed 3" in widget.status.text()
    # what the command line makes of it: the same config
    args = build_parser().parse_args(["segment", "a.nii", "b.nii", "--config", str(path)])
    assert config_from_args(args) == widget.settings.config()


def test_an_error_before_a_run_replaces_the_old_status_message(widget_viewer, qtbot):
    viewer, image, widget, _ = widget_viewer(region=REGION_WHOLE)
    widget.run()
    wait_until_idle(qtbot, widget)
    assert widget.status.text().startswith("Done")
    widget.settings.tissues.value = "9"  # more tissues than the 8 feature maps
    widget.run()
    assert "9 tissues need at least 9 feature maps" in widget.status.text()
    assert "DFCConfig" not in widget.status.text()


def test_shortcuts_run_and_cancel_from_anywhere_in_the_window(widget_viewer, qtbot):
    from qtpy.QtCore import Qt

    viewer, _, widget, _ = widget_viewer(show=True, region=REGION_WHOLE,
                                           max_iter=5000)
    window = viewer.window._qt_window
    window.activateWindow()
    qtbot.waitUntil(lambda: window.isActiveWindow(), timeout=5_000)
    canvas = viewer.window._qt_viewer.canvas.native
    qtbot.keyClick(canvas, Qt.Key_R, Qt.ControlModifier | Qt.ShiftModifier)
    qtbot.waitUntil(lambda: widget.running, timeout=5_000)
    qtbot.keyClick(canvas, Qt.Key_X, Qt.ControlModifier | Qt.ShiftModifier)
    wait_until_idle(qtbot, widget, timeout=30_000)
    assert "Cancelled" in widget.status.text()


def test_the_runs_layers_follow_the_chosen_image_and_untouched_ones_go(widget_viewer, qtbot):
    """Picking another image prepares its layers; the first image's, empty and unused, are removed."""
    viewer, image, widget, p = widget_viewer(tissues="3")
    qtbot.waitUntil(lambda: {"head body", "head labels"} <= {layer.name for layer in viewer.layers},
                    timeout=10_000)
    other = viewer.add_image(p.image[:, ::-1].copy(), name="other",
                             **{k: getattr(image, k) for k in ("scale", "translate")})
    widget.settings.image.value = other
    qtbot.waitUntil(lambda: {"other body", "other labels"} <= {layer.name for layer in viewer.layers},
                    timeout=10_000)
    names = [layer.name for layer in viewer.layers]
    assert "head body" not in names and "head labels" not in names
    # a prepared layer someone painted in stays
    widget.layers.spare_layer.data[0, 0, 0] = 1
    widget.settings.image.value = image
    qtbot.waitUntil(lambda: "head labels" in [layer.name for layer in viewer.layers], timeout=10_000)
    assert "other labels" in [layer.name for layer in viewer.layers]
    assert "other body" not in [layer.name for layer in viewer.layers]
