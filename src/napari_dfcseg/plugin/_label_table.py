"""Per-label table of a Labels layer and the edits a user makes from it.

The table (label, name, voxels, mL, mean, SD) lives in the layer's
``features`` (one row per label, ``index`` = label value, the napari
convention), so napari shows it under the cursor and the writer saves the
names. Edits (merge, remove islands, relabel) are computed off the GUI thread
by :mod:`napari_dfcseg.engine.postprocess` and applied as ONE undo step of the
layer (Ctrl+Z reverts them like a brush stroke).
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
    QVBoxLayout,
    QWidget,
)

from ._layers import spacing_of_layer
from ._worker import describe_error, start_function

__all__ = ["LabelTable", "changed_block", "apply_labels_edit", "features_table"]

COLUMNS = ("Label", "Name", "Voxels", "mL", "Mean", "SD")
#: layer-metadata key naming the image layer a Labels layer was segmented from
SOURCE_KEY = "dfcseg_source_layer"
# wait this long after the last brush stroke before recounting the table
_REFRESH_DELAY_MS = 600


# ------------------------------------------------------------------ pure helpers
def changed_block(old, new):
    """Smallest box that holds every voxel where ``new`` differs from ``old``.

    Returns
    -------
    (tuple of slice, ndarray) or None
        The box and ``new``'s values inside it; None when nothing changed.
    """
    changed = np.asarray(old) != np.asarray(new)
    if not changed.any():
        return None
    box = []
    for axis in range(changed.ndim):
        others = tuple(a for a in range(changed.ndim) if a != axis)
        hit = np.flatnonzero(changed.any(axis=others))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    box = tuple(box)
    return box, np.array(np.asarray(new)[box], copy=True)


def apply_labels_edit(layer, box, values):
    """Write ``values`` into ``layer.data[box]`` as one undoable step.

    Records a napari history atom ``(indices, before, after)``: a box of
    slices rather than per-voxel indices, so undoing a relabel of a whole
    CT costs two copies of the box, not 40 bytes per voxel.
    """
    before = np.array(layer.data[box], copy=True)
    layer._save_history((box, before, np.array(values, copy=True)))
    layer.data[box] = values
    layer.refresh()


def features_table(stats, names=None):
    """napari ``features`` table (pandas) from ``label_table``'s columns, keeping names.

    Parameters
    ----------
    stats : dict
        ``{"label", "voxels", "volume_ml", "mean", "sd"}`` sequences.
    names : dict, optional
        ``{label: name}`` to carry over from the previous table.
    """
    import pandas as pd

    labels = [int(v) for v in stats["label"]]
    names = names or {}
    return pd.DataFrame(
        {
            "index": labels,
            "name": [names.get(v, "") for v in labels],
            "voxels": np.asarray(stats["voxels"], dtype=np.int64),
            "volume_ml": np.asarray(stats["volume_ml"], dtype=float),
            "mean": np.asarray(stats["mean"], dtype=float),
            "sd": np.asarray(stats["sd"], dtype=float),
        }
    )


def _names_of(layer):
    features = layer.features
    if "index" not in features or "name" not in features:
        return {}
    return {int(k): str(n) for k, n in zip(features["index"], features["name"]) if str(n)}


# ----------------------------------------------------------------------- widget
class LabelTable(QWidget):
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
        self._generation = 0
        self.busy = False

        self.layer_choice = ComboBox(
            label="Labels",
            choices=lambda _w: [(l.name, l) for l in viewer.layers if isinstance(l, Labels)],
            nullable=True,
        )
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMinimumHeight(200)

        self.merge_button = QPushButton("Merge selected")
        self.merge_button.setToolTip("Give the selected labels the smallest selected label value")
        self.islands_button = QPushButton("Remove islands <")
        self.islands_size = QSpinBox()
        self.islands_size.setRange(1, 10_000_000)
        self.islands_size.setValue(50)
        self.islands_size.setSuffix(" vox")
        self.size_button = QPushButton("Relabel by size")
        self.intensity_button = QPushButton("Relabel by intensity")
        self.refresh_button = QPushButton("Refresh")
        self.note = QLabel("Edits are undoable with Ctrl+Z on the labels layer.")
        self.note.setWordWrap(True)

        actions = QGridLayout()
        actions.addWidget(self.merge_button, 0, 0)
        islands = QHBoxLayout()
        islands.addWidget(self.islands_button)
        islands.addWidget(self.islands_size)
        actions.addLayout(islands, 0, 1)
        actions.addWidget(self.size_button, 1, 0)
        actions.addWidget(self.intensity_button, 1, 1)
        actions.addWidget(self.refresh_button, 2, 0)

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
        self.merge_button.clicked.connect(self.merge_selected)
        self.islands_button.clicked.connect(lambda: self.remove_islands(self.islands_size.value()))
        self.size_button.clicked.connect(self.relabel_by_size)
        self.intensity_button.clicked.connect(self.relabel_by_intensity)
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
        if self._watched is not None:
            self._watched.events.paint.disconnect(self._schedule_refresh)
            self._watched.events.data.disconnect(self._schedule_refresh)
        self._watched = layer
        if layer is not None:
            layer.events.paint.connect(self._schedule_refresh)
            layer.events.data.connect(self._schedule_refresh)
        self._fill(layer)

    def _schedule_refresh(self, *_):
        self._timer.start()

    def intensity_layer(self, layer):
        """The image layer a Labels layer was made from (same shape), or None."""
        from napari.layers import Image

        name = layer.metadata.get(SOURCE_KEY)
        candidates = [l for l in self._viewer.layers if isinstance(l, Image)]
        candidates.sort(key=lambda l: l.name != name)  # the recorded source first
        for image in candidates:
            if image.data.shape[: layer.ndim] == layer.data.shape and image.ndim == layer.ndim:
                return image
        return None

    # -------------------------------------------------------------- table
    def refresh(self):
        """Recount the table of the current layer off the GUI thread."""
        from napari_dfcseg.engine.postprocess import label_table

        layer = self.layer
        if layer is None:
            self._fill(None)
            return
        image = self.intensity_layer(layer)
        self._generation += 1
        generation = self._generation
        start_function(
            label_table,
            np.asarray(layer.data),
            None if image is None else np.asarray(image.data),
            spacing_of_layer(layer),
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
        layer.features = features_table(stats, _names_of(layer))
        self._fill(layer)

    def _fill(self, layer):
        self.table.blockSignals(True)
        self.table.setRowCount(0)
        features = layer.features if layer is not None else None
        if features is not None and "index" in features and "voxels" in features:
            rows = features[features["index"] != 0]
            self.table.setRowCount(len(rows))
            for r, row in enumerate(rows.itertuples(index=False)):
                label = int(row.index)
                cells = (str(label), str(row.name), f"{int(row.voxels)}",
                         f"{row.volume_ml:.2f}", f"{row.mean:.1f}", f"{row.sd:.1f}")
                for c, text in enumerate(cells):
                    item = QTableWidgetItem(text)
                    flags = Qt.ItemIsSelectable | Qt.ItemIsEnabled
                    if c == 1:
                        flags |= Qt.ItemIsEditable
                    else:
                        item.setTextAlignment(int(Qt.AlignRight | Qt.AlignVCenter))
                    item.setFlags(flags)
                    self.table.setItem(r, c, item)
                colour = layer.get_color(label)
                if colour is not None:
                    rgba = [int(255 * v) for v in colour]
                    self.table.item(r, 0).setBackground(QColor(*rgba[:3]))
                    text = QColor("black") if sum(rgba[:3]) > 382 else QColor("white")
                    self.table.item(r, 0).setForeground(text)
        self.table.blockSignals(False)

    def _on_item_changed(self, item):
        """A typed label name goes into the layer's features (and so into the saved file)."""
        layer = self.layer
        if layer is None or item.column() != 1:
            return
        label = int(self.table.item(item.row(), 0).text())
        features = layer.features.copy()
        features.loc[features["index"] == label, "name"] = item.text().strip()
        layer.features = features

    def selected_labels(self):
        """Label values of the selected rows, in selection order."""
        rows = sorted({index.row() for index in self.table.selectedIndexes()})
        return [int(self.table.item(r, 0).text()) for r in rows]

    # ------------------------------------------------------------- edits
    def merge_selected(self):
        """Merge the selected labels into the first of them."""
        from napari_dfcseg.engine.postprocess import merge_labels

        ids = self.selected_labels()
        if len(ids) < 2:
            from napari.utils.notifications import show_info

            show_info("Select two or more labels in the table to merge them")
            return
        self._edit(merge_labels, ids)

    def remove_islands(self, min_size):
        """Merge connected pieces smaller than ``min_size`` voxels into their surroundings."""
        from napari_dfcseg.engine.postprocess import remove_small_islands

        self._edit(remove_small_islands, int(min_size))

    def relabel_by_size(self):
        """Renumber labels 1, 2, … from the largest to the smallest."""
        from napari_dfcseg.engine.postprocess import relabel_by_size

        self._edit(relabel_by_size)

    def relabel_by_intensity(self):
        """Renumber labels 1, 2, … from the darkest to the brightest mean intensity."""
        from napari_dfcseg.engine.postprocess import relabel_by_intensity

        layer = self.layer
        image = None if layer is None else self.intensity_layer(layer)
        if image is None:
            from napari.utils.notifications import show_error

            show_error("Relabel by intensity needs an image layer of the labels' shape")
            return
        self._edit(relabel_by_intensity, np.asarray(image.data))

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
        from napari.utils.notifications import show_error

        show_error(describe_error(exc))
