"""The label table: per-label statistics in the layer's features and undoable edits."""

import numpy as np
import pytest

from napari_dfcseg.plugin._label_table import (
    COLUMNS,
    LABEL,
    NAME,
    SHOW,
    LabelTable,
    apply_labels_edit,
    changed_block,
)

VOXELS = COLUMNS.index("Voxels")


def _three_labels():
    labels = np.zeros((4, 10, 10), dtype=np.uint8)
    labels[:, :5, :5] = 1  # 100 voxels
    labels[:, 5:, :] = 2  # 200 voxels
    labels[1, 1, 8] = 3  # a one-voxel island inside background
    labels[2, 7, 7] = 3  # a one-voxel island inside label 2
    image = np.where(labels == 1, 10.0, 0.0) + np.where(labels == 2, 50.0, 0.0)
    image += np.where(labels == 3, 99.0, 0.0)
    return labels, image.astype(np.float32)


@pytest.fixture
def table_on_layers(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    labels, image = _three_labels()
    viewer.add_image(image, name="scan", scale=(2.0, 0.5, 0.5))
    layer = viewer.add_labels(labels.copy(), name="scan clusters", scale=(2.0, 0.5, 0.5))
    table = LabelTable(viewer)
    viewer.window.add_dock_widget(table)
    table.show_layer(layer)
    qtbot.waitUntil(lambda: table.table.rowCount() == 3, timeout=10_000)
    return viewer, layer, table, qtbot


def _click_row(qtbot, table, row):
    """A plain mouse click (no modifier) on the row's label cell, as a user clicks it."""
    from qtpy.QtCore import Qt

    view = table.table
    rect = view.visualItemRect(view.item(row, LABEL))
    qtbot.mouseClick(view.viewport(), Qt.LeftButton, Qt.NoModifier, rect.center())


def test_table_counts_voxels_volume_and_intensity_into_features(table_on_layers):
    _, layer, table, _ = table_on_layers
    features = layer.features.set_index("index")
    assert features.loc[1, "voxels"] == 100
    assert features.loc[2, "voxels"] == 199
    # 2 x 0.5 x 0.5 mm = 0.5 mm3 per voxel
    assert features.loc[2, "volume_ml"] == pytest.approx(199 * 0.5 / 1000)
    assert features.loc[1, "mean"] == pytest.approx(10.0)
    assert features.loc[3, "mean"] == pytest.approx(99.0)
    assert features.loc[1, "sd"] == pytest.approx(0.0)
    assert table.table.item(1, VOXELS).text() == "199"


def test_merge_selected_labels_is_one_undo_step(table_on_layers):
    _, layer, table, qtbot = table_on_layers
    before = layer.data.copy()
    _click_row(qtbot, table, 1)  # label 2
    table.table.setRangeSelected(_row_range(table.table, 2), True)  # + label 3
    assert table.selected_labels() == [2, 3]
    table.merge_selected()
    qtbot.waitUntil(lambda: not (layer.data == 3).any(), timeout=10_000)
    assert (layer.data == 2).sum() == 201
    qtbot.waitUntil(lambda: table.table.rowCount() == 2, timeout=10_000)
    layer.undo()
    np.testing.assert_array_equal(layer.data, before)
    layer.redo()
    assert (layer.data == 2).sum() == 201


def _row_range(widget, row):
    from qtpy.QtWidgets import QTableWidgetSelectionRange

    return QTableWidgetSelectionRange(row, 0, row, widget.columnCount() - 1)


def test_remove_islands_merges_only_islands_with_a_neighbour(table_on_layers):
    _, layer, table, qtbot = table_on_layers
    table.remove_islands(2)
    qtbot.waitUntil(lambda: layer.data[2, 7, 7] == 2, timeout=10_000)
    assert layer.data[1, 1, 8] == 3  # touches only background: kept
    layer.undo()
    assert layer.data[2, 7, 7] == 3


def test_relabel_by_size_numbers_largest_first_and_undoes(table_on_layers):
    _, layer, table, qtbot = table_on_layers
    table.relabel_by_size()
    qtbot.waitUntil(lambda: layer.data[0, 9, 9] == 1, timeout=10_000)
    assert layer.data[0, 0, 0] == 2
    layer.undo()
    assert layer.data[0, 9, 9] == 2 and layer.data[0, 0, 0] == 1


def test_typed_name_goes_into_features(table_on_layers):
    _, layer, table, _ = table_on_layers
    table.table.item(0, NAME).setText("white matter")
    names = dict(zip(layer.features["index"], layer.features["name"]))
    assert names[1] == "white matter"


def test_changed_block_is_the_bounding_box_of_changes():
    old = np.zeros((5, 6, 7), dtype=np.uint8)
    new = old.copy()
    new[1, 2, 3] = 4
    new[3, 4, 3] = 5
    box, values = changed_block(old, new)
    assert box == (slice(1, 4), slice(2, 5), slice(3, 4))
    np.testing.assert_array_equal(values, new[box])
    assert changed_block(old, old.copy()) is None


def test_apply_labels_edit_undo_restores_exactly(make_napari_viewer):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    data = rng.integers(0, 5, size=(6, 8, 8)).astype(np.uint8)
    layer = viewer.add_labels(data.copy())
    new = np.where(data == 4, 1, data).astype(np.uint8)
    apply_labels_edit(layer, *changed_block(data, new))
    np.testing.assert_array_equal(layer.data, new)
    layer.undo()
    np.testing.assert_array_equal(layer.data, data)


def test_a_recount_finishing_after_the_table_is_closed_is_ignored(table_on_layers):
    viewer, layer, table, qtbot = table_on_layers
    from qtpy import sip

    from napari_dfcseg.engine.label_edits import label_table

    stats = label_table(layer.data)
    stats["voxels"] = stats["voxels"] * 0 + 1  # a result that would show if it were applied
    before = layer.features.copy()
    viewer.window.remove_dock_widget(table)
    table.close()
    table.deleteLater()
    qtbot.waitUntil(lambda: sip.isdeleted(table), timeout=5000)
    # the recount's result arrives after the widget and its combo box are gone:
    # before the fix this raised "wrapped C/C++ object ... has been deleted"
    table._on_counted(layer, table._generation, stats)
    assert layer.features.equals(before)


def test_clicking_a_row_picks_its_label_for_the_brush_and_the_row_follows_the_layer(table_on_layers):
    _, layer, table, qtbot = table_on_layers
    _click_row(qtbot, table, 1)
    assert layer.selected_label == 2
    layer.selected_label = 3  # napari's own label box (or its "=" key)
    assert table.selected_labels() == [3]
    table.step_label(+1)  # wraps round to the first label
    assert layer.selected_label == 1
    table.step_label(-1)
    assert layer.selected_label == 3


def test_label_shortcuts_step_one_label_while_their_modifiers_are_held(table_on_layers):
    """Ctrl+Shift+Up/Down call step_label with Shift held: it must not extend the selection."""
    from qtpy.QtCore import Qt

    _, layer, table, qtbot = table_on_layers
    layer.selected_label = 3
    qtbot.keyPress(table.table, Qt.Key_Shift, Qt.ShiftModifier | Qt.ControlModifier)
    try:
        table.step_label(-1)
        assert layer.selected_label == 2 and table.selected_labels() == [2]
        table.step_label(-1)
        assert layer.selected_label == 1 and table.selected_labels() == [1]
    finally:
        qtbot.keyRelease(table.table, Qt.Key_Shift, Qt.NoModifier)


def test_show_tick_hides_a_label_and_a_new_colour_goes_into_the_colormap(table_on_layers):
    from qtpy.QtCore import Qt

    _, layer, table, qtbot = table_on_layers
    table.table.item(1, SHOW).setCheckState(Qt.Unchecked)  # hide label 2
    assert layer.get_color(2)[3] == 0.0
    assert layer.get_color(1)[3] == 1.0
    assert table.table.item(1, SHOW).checkState() == Qt.Unchecked
    table.table.item(1, SHOW).setCheckState(Qt.Checked)
    assert layer.get_color(2)[3] == 1.0
    table.set_label_colour(1, (10, 200, 30))
    np.testing.assert_allclose(layer.get_color(1), (10 / 255, 200 / 255, 30 / 255, 1.0))
    _click_row(qtbot, table, 0)  # the colour shows on the selected row too
    assert table.table.item(0, LABEL).data(Qt.DecorationRole).getRgb()[:3] == (10, 200, 30)


def test_copy_and_csv_export_hold_voxels_ml_mean_and_sd(table_on_layers, tmp_path):
    import csv

    from qtpy.QtWidgets import QApplication

    _, layer, table, _ = table_on_layers
    table.table.item(1, NAME).setText("grey, matter")  # a comma survives CSV quoting
    path = table.export_csv(tmp_path / "table.csv")
    rows = list(csv.DictReader(path.open()))
    assert [r["label"] for r in rows] == ["1", "2", "3"]
    assert rows[1]["name"] == "grey, matter"
    assert int(rows[1]["voxels"]) == 199
    assert float(rows[1]["volume_ml"]) == pytest.approx(199 * 0.5 / 1000, abs=1e-4)
    assert float(rows[0]["mean"]) == pytest.approx(10.0) and float(rows[0]["sd"]) == 0.0
    table.copy_to_clipboard()
    pasted = QApplication.clipboard().text().splitlines()
    assert pasted[0].split("\t") == ["label", "name", "voxels", "volume_ml", "mean", "sd"]
    assert pasted[2].split("\t")[:3] == ["2", "grey, matter", "199"]


def test_undo_of_a_merge_recounts_the_table_and_brings_back_the_merged_labels_name(table_on_layers):
    _, layer, table, qtbot = table_on_layers
    table.table.item(2, NAME).setText("lesion")  # label 3
    _click_row(qtbot, table, 1)
    table.table.setRangeSelected(_row_range(table.table, 2), True)
    table.merge_selected()
    qtbot.waitUntil(lambda: table.table.rowCount() == 2, timeout=10_000)
    layer.undo()  # what Ctrl+Z on the layer does; no Refresh pressed
    qtbot.waitUntil(lambda: table.table.rowCount() == 3, timeout=10_000)
    assert table.table.item(2, NAME).text() == "lesion"
    assert table.table.item(1, VOXELS).text() == "199"
    layer.redo()
    qtbot.waitUntil(lambda: table.table.rowCount() == 2, timeout=10_000)


def test_every_column_sd_included_is_in_view_at_the_default_dock_width(make_napari_viewer, qtbot):
    from napari_dfcseg.plugin._widget import DFCSegWidget

    viewer = make_napari_viewer(show=True)
    labels, image = _three_labels()
    viewer.add_image(image * 1000.5, name="scan")  # wide numbers: 5 digits and a decimal
    layer = viewer.add_labels(labels.copy(), name="scan labels")
    widget = DFCSegWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    table = widget.label_table
    table.show_layer(layer)
    qtbot.waitUntil(lambda: table.table.rowCount() == 3, timeout=10_000)
    qtbot.wait(50)
    header = table.table.horizontalHeader()
    sd = COLUMNS.index("SD")
    right_edge = header.sectionViewportPosition(sd) + header.sectionSize(sd)
    assert right_edge <= table.table.viewport().width()
    assert header.sectionSize(sd) >= header.sectionSizeHint(sd)
