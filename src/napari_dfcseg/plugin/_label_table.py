"""Per-label table of a Labels layer and the edits a user makes from it.

The table (label, name, voxels, mL, mean, SD) lives in the layer's
``features`` (one row per label, ``index`` = label value, the napari
convention), so napari shows it under the cursor and the writer saves the
names. Edits (merge, remove islands, relabel) are computed off the GUI thread
by :mod:`napari_dfcseg.engine.label_edits` and applied as ONE undo step of the
layer (Ctrl+Z reverts them like a brush stroke); the table recounts after any
change of the data, undo and redo included, and remembers the names of labels
an edit removed, so they come back with an undo.

Like Slicer's Segment Statistics and ITK-SNAP's label list: a click on a row
picks that label for the brush, a tick shows or hides it, a double click on
its colour changes the colour, and *Copy* / *Export CSV…* hand the numbers
to a spreadsheet.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import ComboBox
from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTableWidgetSelectionRange,
    QVBoxLayout,
    QWidget,
)

from ._label_data import (
    NAMES_KEY,
    apply_labels_edit,
    changed_block,
    colour_of,
    features_table,
    names_of,
    table_text,
)
from ._label_actions import LabelDisplayActions
from ._layers import spacing_of_layer
from ._worker import describe_error, start_function

__all__ = ["LabelTable", "changed_block", "apply_labels_edit", "features_table", "table_text"]

COLUMNS = ("Show", "Label", "Name", "Voxels", "mL", "Mean", "SD")
SHOW, LABEL, NAME = 0, 1, 2
#: the statistics columns: (header, features column, format)
_STATS = (("Voxels", "voxels", "{:d}"), ("mL", "volume_ml", "{:.2f}"), ("Mean", "mean", "{:.1f}"),
          ("SD", "sd", "{:.1f}"))
#: layer-metadata key naming the image layer a Labels layer was segmented from
SOURCE_KEY = "dfcseg_source_layer"
# wait this long after the last brush stroke before recounting the table
_REFRESH_DELAY_MS = 600


def _button(text, tooltip):
    button = QPushButton(text)
    button.setToolTip(tooltip)
    return button


def _row(*widgets):
    row = QHBoxLayout()
    for widget in widgets:
        row.addWidget(widget)
    return row


# ----------------------------------------------------------------------- widget
class LabelTable(LabelDisplayActions, QWidget):
    """Table of the labels of one Labels layer, with merge / islands / relabel actions.

    Parameters
    ----------
    viewer : napari.Viewer
    """

    def __init__(self, viewer, parent=None):
        super().__init__(parent)
        from napari.layers import Labels

        self._viewer = viewer
        self._watched = None
        self._history_seen = None
        self._generation = 0
        self.busy = False

        self.layer_choice = ComboBox(
            label="Labels",
            choices=lambda _w: [(one.name, one) for one in viewer.layers if isinstance(one, Labels)],
            nullable=True,
        )
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        # the name takes what is left, so every number (SD included) stays in view
        header.setSectionResizeMode(NAME, QHeaderView.Stretch)
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(24)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.table.setWordWrap(False)
        self.table.setMinimumHeight(200)
        self.table.setToolTip("Click a row to paint that label; tick Show to hide or show it; "
                              "double-click a colour to change it, a name to type it")

        self.merge_button = _button("Merge selected",
                                    "Give the selected labels the smallest selected label value")
        self.islands_button = _button("Remove islands <",
                                      "Pieces smaller than this take the label around them")
        self.islands_size = QSpinBox()
        self.islands_size.setRange(1, 10_000_000)
        self.islands_size.setValue(50)
        self.islands_size.setSuffix(" vox")
        self.size_button = _button("Relabel by size", "Number the labels 1, 2, … from the largest")
        self.intensity_button = _button("Relabel by intensity",
                                        "Number the labels 1, 2, … from the darkest")
        self.copy_button = _button("Copy", "Copy the table (tab-separated) to paste into a spreadsheet")
        self.csv_button = _button("Export CSV…", "Save label, name, voxels, mL, mean and SD as a CSV file")
        self.refresh_button = _button("Refresh", "Recount the table now")
        self.note = QLabel("Edits are undoable with Ctrl+Z on the labels layer.")
        self.note.setWordWrap(True)

        actions = QGridLayout()
        grid = [[self.merge_button, _row(self.islands_button, self.islands_size)],
                [self.size_button, self.intensity_button],
                [_row(self.copy_button, self.csv_button), self.refresh_button]]
        for r, cells in enumerate(grid):
            for c, cell in enumerate(cells):
                if isinstance(cell, QHBoxLayout):
                    actions.addLayout(cell, r, c)
                else:
                    actions.addWidget(cell, r, c)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.layer_choice.native)
        layout.addWidget(self.table)
        layout.addLayout(actions)
        layout.addWidget(self.note)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(_REFRESH_DELAY_MS)
        self._timer.timeout.connect(self.refresh)

        self.layer_choice.changed.connect(self._watch)
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.itemSelectionChanged.connect(self._on_row_selected)
        self.table.cellDoubleClicked.connect(self._on_double_click)
        self.merge_button.clicked.connect(self.merge_selected)
        self.islands_button.clicked.connect(lambda: self.remove_islands(self.islands_size.value()))
        self.size_button.clicked.connect(self.relabel_by_size)
        self.intensity_button.clicked.connect(self.relabel_by_intensity)
        self.copy_button.clicked.connect(self.copy_to_clipboard)
        self.csv_button.clicked.connect(lambda: self.export_csv())
        self.refresh_button.clicked.connect(self.refresh)

    # ------------------------------------------------------------- layers
    @property
    def layer(self):
        """The Labels layer the table describes (or None)."""
        return self.layer_choice.value

    def reset_choices(self, *_):
        self.layer_choice.reset_choices()

    def show_layer(self, layer):
        """Describe ``layer`` (select it and recount)."""
        self.reset_choices()
        self.layer_choice.value = layer
        self._watch(layer)
        self.refresh()

    def _watch(self, layer):
        if self._watched is layer:
            return
        if self._watched is not None:
            events = self._watched.events
            events.paint.disconnect(self._schedule_refresh)
            events.set_data.disconnect(self._on_set_data)
            events.selected_label.disconnect(self._follow_selected_label)
        self._watched = layer
        if layer is not None:
            layer.events.paint.connect(self._schedule_refresh)
            # undo and redo refresh the layer (set_data) without a paint event
            layer.events.set_data.connect(self._on_set_data)
            layer.events.selected_label.connect(self._follow_selected_label)
            self._history_seen = self._history_state(layer)
        self._fill(layer)

    @staticmethod
    def _history_state(layer):
        return (len(getattr(layer, "_undo_history", ())), len(getattr(layer, "_redo_history", ())))

    def _on_set_data(self, *_):
        # set_data also fires when the slice moves: recount only if the history moved
        layer = self._watched
        if layer is None:
            return
        state = self._history_state(layer)
        if state != self._history_seen:
            self._history_seen = state
            self._schedule_refresh()

    def _schedule_refresh(self, *_):
        if self._watched is not None:
            self._history_seen = self._history_state(self._watched)
        self._timer.start()

    def intensity_layer(self, layer):
        """The image layer a Labels layer was made from (same shape), or None."""
        from napari.layers import Image

        name = layer.metadata.get(SOURCE_KEY)
        candidates = [one for one in self._viewer.layers if isinstance(one, Image)]
        candidates.sort(key=lambda one: one.name != name)  # the recorded source first
        for image in candidates:
            if image.data.shape[: layer.ndim] == layer.data.shape and image.ndim == layer.ndim:
                return image
        return None

    # -------------------------------------------------------------- table
    def refresh(self):
        """Recount the table of the current layer off the GUI thread."""
        from napari_dfcseg.engine.label_edits import label_table

        layer = self.layer
        if layer is None:
            self._fill(None)
            return
        image = self.intensity_layer(layer)
        data = None if image is None else image.data
        rgb = image is not None and image.rgb
        self._generation += 1
        generation = self._generation

        def count(labels, spacing):
            intensity = None if data is None else np.asarray(data)
            if rgb:  # a colour image: the mean of its channels
                intensity = intensity.mean(axis=-1)
            return label_table(np.asarray(labels), intensity, spacing)

        start_function(
            count, layer.data, spacing_of_layer(layer),
            on_returned=lambda stats: self._on_counted(layer, generation, stats),
            on_errored=self._on_error,
        )

    def _on_counted(self, layer, generation, stats):
        try:
            current = self.layer
        except RuntimeError:  # the widget (or the viewer) was closed while the count ran
            return
        if generation != self._generation or layer is not current:
            return  # a newer count is on its way
        names = names_of(layer)
        layer.metadata[NAMES_KEY] = names
        layer.features = features_table(stats, names)
        self._fill(layer)

    def _fill(self, layer):
        selected = self.selected_labels()  # a recount keeps the user's selection
        self.table.blockSignals(True)
        self.table.setRowCount(0)
        features = layer.features if layer is not None else None
        if features is not None and "index" in features and "voxels" in features:
            rows = features[features["index"] != 0]
            self.table.setRowCount(len(rows))
            for r, row in enumerate(rows.itertuples(index=False)):
                self._fill_row(layer, r, row)
        for label in selected:
            row = self._row_of(label)
            if row is not None:
                self.table.setRangeSelected(
                    QTableWidgetSelectionRange(row, 0, row, len(COLUMNS) - 1), True)
        self.table.blockSignals(False)
        self._follow_selected_label()

    def _fill_row(self, layer, r, row):
        label = int(row.index)
        fixed = Qt.ItemIsSelectable | Qt.ItemIsEnabled
        show = QTableWidgetItem()
        show.setFlags(fixed | Qt.ItemIsUserCheckable)
        colour = layer.get_color(label)
        visible = colour is None or colour[3] > 0
        show.setCheckState(Qt.Checked if visible else Qt.Unchecked)
        self.table.setItem(r, SHOW, show)
        swatch = QTableWidgetItem(str(label))
        swatch.setFlags(fixed)
        swatch.setTextAlignment(int(Qt.AlignRight | Qt.AlignVCenter))
        rgb = colour_of(layer, label)
        if rgb is not None:
            # a colour square beside the number: unlike a cell background it
            # stays visible on the selected row (the label being painted)
            swatch.setData(Qt.DecorationRole, QColor(*rgb))
        self.table.setItem(r, LABEL, swatch)
        name = QTableWidgetItem(str(row.name))
        name.setFlags(fixed | Qt.ItemIsEditable)
        self.table.setItem(r, NAME, name)
        for c, (_, column, fmt) in enumerate(_STATS, start=NAME + 1):
            value = getattr(row, column)
            text = fmt.format(int(value) if fmt == "{:d}" else float(value))
            item = QTableWidgetItem(text)
            item.setFlags(fixed)
            item.setTextAlignment(int(Qt.AlignRight | Qt.AlignVCenter))
            self.table.setItem(r, c, item)

    def _on_item_changed(self, item):
        """A typed name goes into the features (and the saved file); a tick shows or hides."""
        layer = self.layer
        if layer is None:
            return
        label = int(self.table.item(item.row(), LABEL).text())
        if item.column() == NAME:
            features = layer.features.copy()
            features.loc[features["index"] == label, "name"] = item.text().strip()
            layer.features = features
            names = dict(layer.metadata.get(NAMES_KEY) or {})
            names[label] = item.text().strip()
            layer.metadata[NAMES_KEY] = names
        elif item.column() == SHOW:
            self.set_label_visible(label, item.checkState() == Qt.Checked)

    # ------------------------------------------------------------- edits
    def merge_selected(self):
        """Merge the selected labels into the first of them."""
        from napari_dfcseg.engine.label_edits import merge_labels

        ids = self.selected_labels()
        if len(ids) < 2:
            from napari.utils.notifications import show_info

            show_info("Select two or more labels in the table to merge them")
            return
        self._edit(merge_labels, ids)

    def remove_islands(self, min_size):
        """Merge connected pieces smaller than ``min_size`` voxels into their surroundings."""
        from napari_dfcseg.engine.label_edits import remove_small_islands

        self._edit(remove_small_islands, int(min_size))

    def relabel_by_size(self):
        """Renumber labels 1, 2, … from the largest to the smallest."""
        from napari_dfcseg.engine.label_edits import relabel_by_size

        self._edit(relabel_by_size)

    def relabel_by_intensity(self):
        """Renumber labels 1, 2, … from the darkest to the brightest mean intensity."""
        from napari_dfcseg.engine.label_edits import relabel_by_intensity

        layer = self.layer
        image = None if layer is None else self.intensity_layer(layer)
        if image is None:
            self._on_error_text("Relabel by intensity needs an image layer of the labels' shape")
            return
        data = np.asarray(image.data)
        self._edit(relabel_by_intensity, data.mean(axis=-1) if image.rgb else data)

    def _edit(self, func, *args):
        layer = self.layer
        if layer is None or self.busy:
            return
        labels = np.asarray(layer.data)
        self._set_busy(True)

        def compute():
            return changed_block(labels, func(labels, *args))

        start_function(
            compute,
            on_returned=lambda change: self._apply(layer, change),
            on_errored=self._on_error,
            on_finished=lambda: self._set_busy(False),
        )

    def _apply(self, layer, change):
        if change is not None and layer in self._viewer.layers:
            apply_labels_edit(layer, *change)
            self.refresh()

    def _set_busy(self, busy):
        self.busy = busy
        for button in (self.merge_button, self.islands_button, self.size_button,
                       self.intensity_button):
            button.setEnabled(not busy)

    def _on_error(self, exc):
        self._on_error_text(describe_error(exc))

    @staticmethod
    def _on_error_text(message):
        from napari.utils.notifications import show_error

        show_error(message)
