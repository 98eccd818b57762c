"""Selection, display and export actions of the label table: the brush's label, colour,
visibility, clipboard, CSV.

A mixin of :class:`~._label_table.LabelTable` (it uses the table's ``layer``,
``table``, ``_fill`` and ``_on_error_text``).
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QItemSelectionModel
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QApplication, QColorDialog, QFileDialog

from ._label_data import colour_of, table_text

__all__ = ["LabelDisplayActions"]

LABEL_COLUMN = 1


class LabelDisplayActions:
    """The selected row is the brush's label; show/hide and colour per label; Copy and Export CSV."""

    def _row_of(self, label):
        for r in range(self.table.rowCount()):
            if int(self.table.item(r, LABEL_COLUMN).text()) == label:
                return r
        return None

    def _on_row_selected(self):
        """Clicking a row picks its label for the brush (what ITK-SNAP's label list does)."""
        layer = self.layer
        labels = self.selected_labels()
        if layer is not None and labels and layer.selected_label != labels[-1]:
            layer.selected_label = labels[-1]

    def _follow_selected_label(self, *_):
        layer = self.layer
        if layer is None or self.table.rowCount() == 0:
            return
        if int(layer.selected_label) in self.selected_labels():
            return
        row = self._row_of(int(layer.selected_label))
        self.table.blockSignals(True)
        self.table.clearSelection()
        if row is not None:
            self._select_only(row)
            self.table.scrollToItem(self.table.item(row, LABEL_COLUMN))
        self.table.blockSignals(False)

    def step_label(self, step):
        """Pick the next (``step=+1``) or previous (-1) label of the table for the brush."""
        layer = self.layer
        n = self.table.rowCount()
        if layer is None or n == 0:
            return
        row = self._row_of(int(layer.selected_label))
        row = 0 if row is None else (row + step) % n
        self._select_only(row)

    def _select_only(self, row):
        """Select exactly ``row``: ``selectRow`` would extend the selection while Shift or
        Ctrl is held, as it is when the Ctrl+Shift+Up/Down shortcuts call :meth:`step_label`."""
        index = self.table.model().index(row, LABEL_COLUMN)
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.ClearAndSelect | QItemSelectionModel.Rows)

    def selected_labels(self):
        """Label values of the selected rows, in selection order."""
        rows = sorted({index.row() for index in self.table.selectedIndexes()})
        return [int(self.table.item(r, LABEL_COLUMN).text()) for r in rows]

    def _on_double_click(self, row, column):
        if column == LABEL_COLUMN:
            label = int(self.table.item(row, LABEL_COLUMN).text())
            rgb = colour_of(self.layer, label) or (255, 255, 255)
            chosen = QColorDialog.getColor(QColor(*rgb), self, f"Colour of label {label}")
            if chosen.isValid():
                self.set_label_colour(label, (chosen.red(), chosen.green(), chosen.blue()))

    def set_label_colour(self, label, rgb):
        """Give ``label`` the colour ``rgb`` (0-255) in the layer, keeping its visibility."""
        self._set_colour(label, rgb=rgb)

    def set_label_visible(self, label, visible):
        """Show or hide one label of the layer (its colour's alpha)."""
        self._set_colour(label, visible=visible)

    def _set_colour(self, label, rgb=None, visible=None):
        from napari.utils.colormaps import DirectLabelColormap

        layer = self.layer
        if layer is None:
            return
        old = layer.colormap
        table = dict(getattr(old, "color_dict", {}) or {})
        if not table:  # a cyclic colormap: freeze the colours the labels have now
            table = {None: (0.0, 0.0, 0.0, 0.0), 0: (0.0, 0.0, 0.0, 0.0)}
            for value in layer.features.get("index", []):
                table[int(value)] = layer.get_color(int(value))
        current = np.asarray(table.get(label, layer.get_color(label)), dtype=float)
        colour = current.copy() if rgb is None else np.array([*(np.asarray(rgb) / 255.0), 1.0])
        alpha = (1.0 if visible else 0.0) if visible is not None else current[3]
        colour[3] = alpha
        table[label] = colour
        layer.colormap = DirectLabelColormap(color_dict=table)
        self._fill(layer)

    def copy_to_clipboard(self):
        """Put the table on the clipboard, tab-separated (pastes into a spreadsheet)."""
        layer = self.layer
        if layer is not None and "voxels" in layer.features:
            QApplication.clipboard().setText(table_text(layer.features, sep="\t"))

    def export_csv(self, path=None):
        """Write the table as CSV; returns the path (None if cancelled or nothing to write)."""
        from pathlib import Path

        layer = self.layer
        if layer is None or "voxels" not in layer.features:
            self._on_error_text("There is no label table to export: run a segmentation first")
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export label table",
                                                  f"{layer.name}.csv", "CSV (*.csv)")
            if not path:
                return None
        path = Path(path)
        try:
            path.write_text(table_text(layer.features), encoding="utf-8")
        except OSError as exc:
            self._on_error_text(f"{path}: could not write the table ({exc.strerror or exc})")
            return None
        return path
