"""The "DFC Segmentation" dock widget: inputs, Run / Cancel, label table, save, reference mode.

Thin: it references layer data on the GUI thread, hands a bound call of
:mod:`._run` to :mod:`._worker`, and turns the worker's signals into layers,
a progress bar and notifications. Geometry goes through :mod:`._layers`,
label edits through :mod:`._label_table`, the result, body-outline and
preview layers through :mod:`._results`, files through :mod:`._writer` and
the engine.
"""

from __future__ import annotations

import functools
import time

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QKeySequence
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QShortcut,
    QVBoxLayout,
    QWidget,
)

from . import _view
from ._label_table import LabelTable
from ._layers import labels_colormap, output_layer_kwargs, spacing_of_layer
from ._results import RunLayers, warm_up_visuals
from ._progress import RunProgress, duration
from ._run import RunInputs, apply_model_call, recorded_call, segment_call, warm_up
from ._save import MODEL_FILTER, SaveActions
from ._settings import REGION_AUTO, RunSettings
from ._worker import describe_error, start_engine_run, start_function

__all__ = ["DFCSegWidget", "SHORTCUTS"]

#: keyboard shortcuts of the widget (active anywhere in the napari window)
SHORTCUTS = {"run": "Ctrl+Shift+R", "cancel": "Ctrl+Shift+X",
             "next_label": "Ctrl+Shift+Down", "previous_label": "Ctrl+Shift+Up"}


class DFCSegWidget(SaveActions, QWidget):
    """Segment an image layer by differentiable feature clustering, then edit and save the labels.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        Injected by napari when the widget is opened from the Plugins menu.
    """

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.run_handle = None  # the EngineRun in progress
        self.last_result = None  # SegmentationResult of the last run (its model for "Save model…")
        self._run = None  # what the run in progress needs when it returns
        self._showing = None  # the result layer being selected and counted after a run

        self.settings = RunSettings(napari_viewer)
        self.layers = RunLayers(napari_viewer, self.settings)
        self.add_scribbles_button = QPushButton("Add scribbles layer")
        self.add_scribbles_button.setToolTip(
            "An empty Labels layer on the image, brush selected: paint tissues 1, 2, 3…"
        )
        self.replace_box = QCheckBox("Replace the previous result")
        self.replace_box.setChecked(True)
        self.replace_box.setToolTip(
            "Run again into the same result layer (Ctrl+Z on it brings the previous one back); "
            "unticked, every run adds a new layer"
        )
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip(f"Segment the image ({SHORTCUTS['run']})")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip(f"Stop the run; nothing is added ({SHORTCUTS['cancel']})")
        self.cancel_button.setEnabled(False)
        self.export_button = QPushButton("Export settings…")
        self.export_button.setToolTip(
            "Save these settings as a file for the command line: dfcseg segment --config FILE"
        )
        self.status = QLabel("Pick an image layer and press Run.")
        self.status.setWordWrap(True)
        self.progress_report = RunProgress(self.status)

        self.label_table = LabelTable(napari_viewer)
        self.save_labels_button = QPushButton("Save labels…")
        self.save_labels_button.setToolTip("NIfTI with the scan's geometry, names and colours "
                                           "for 3D Slicer and ITK-SNAP")
        self.save_model_button = QPushButton("Save model…")
        self.save_model_button.setEnabled(False)
        self.save_model_button.setToolTip("Save the network of the last run to apply it to other scans")
        self.apply_model_button = QPushButton("Apply model…")
        self.apply_model_button.setToolTip(
            "Label the selected image with a saved model, with the same extra contrasts and region"
        )

        run_row = QHBoxLayout()
        run_row.addWidget(self.run_button)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.export_button)
        save_row = QHBoxLayout()
        save_row.addWidget(self.save_labels_button)
        save_row.addWidget(self.save_model_button)
        save_row.addWidget(self.apply_model_button)

        table_box = QGroupBox("Labels")
        table_layout = QVBoxLayout(table_box)
        table_layout.addWidget(self.label_table)
        table_layout.addLayout(save_row)

        content = QWidget()
        layout = QVBoxLayout(content)
        layout.addWidget(self.settings)
        layout.addWidget(self.add_scribbles_button)
        layout.addWidget(self.replace_box)
        layout.addLayout(run_row)
        layout.addWidget(self.status)
        layout.addWidget(table_box)
        layout.addStretch(1)
        # a scroll area keeps the dock (and so the napari window) within the screen
        # when Advanced is open; only vertical scrolling, the width follows the dock
        self.scroll = QScrollArea()
        self.scroll.setWidget(content)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.scroll)
        content.setMinimumWidth(content.minimumSizeHint().width())
        self.setMinimumWidth(content.minimumSizeHint().width()
                             + self.scroll.verticalScrollBar().sizeHint().width())

        self.add_scribbles_button.clicked.connect(self.add_scribbles_layer)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button.clicked.connect(lambda: self.export_settings())
        self.save_labels_button.clicked.connect(lambda: self.save_labels())
        self.save_model_button.clicked.connect(lambda: self.save_model())
        self.apply_model_button.clicked.connect(lambda: self.apply_model())
        self._add_shortcuts()
        # the run's layers are made when the choices change, not during a run
        self._prepare_timer = QTimer(self)
        self._prepare_timer.setSingleShot(True)
        self._prepare_timer.timeout.connect(lambda: self.prepare_layers(one_at_a_time=True))
        for control in (self.settings.image, self.settings.region, self.settings.mode):
            control.changed.connect(self._schedule_prepare)
        self.replace_box.toggled.connect(self._schedule_prepare)

        events = napari_viewer.layers.events
        for event in (events.inserted, events.removed, events.reordered):
            event.connect(self.reset_choices)
        events.inserted.connect(self._on_layer_inserted)
        # closing the viewer mid-run must not leave the engine thread running
        cancel_on_close = self._cancel_on_close = {"event": None}
        self.destroyed.connect(
            lambda *_: cancel_on_close["event"] is not None and cancel_on_close["event"].set()
        )
        self.reset_choices()
        _view.orient_like_slicer(napari_viewer)
        warm_up_visuals()
        self.warm_up_worker = start_function(warm_up, on_returned=lambda _: None,
                                             on_errored=lambda _: None)
        self._schedule_prepare()

    @property
    def output_layer(self):
        """The result layer of the last run (None before the first)."""
        return self.layers.output_layer

    @property
    def region_layer(self):
        """The automatic body-outline layer of the last run (or None)."""
        return self.layers.region_layer

    @property
    def preview(self):
        """The :class:`~._preview.LivePreview` of the run in progress."""
        return self.layers.preview

    def _add_shortcuts(self):
        # children of the widget with a window context: active anywhere in the
        # napari window the widget is docked in, and gone with the widget
        actions = {"run": self.run, "cancel": self.cancel,
                   "next_label": lambda: self.label_table.step_label(+1),
                   "previous_label": lambda: self.label_table.step_label(-1)}
        self.shortcuts = {}
        for name, action in actions.items():
            shortcut = QShortcut(QKeySequence(SHORTCUTS[name]), self)
            shortcut.setContext(Qt.WindowShortcut)
            shortcut.activated.connect(action)
            self.shortcuts[name] = shortcut

    # ---------------------------------------------------------------- choices
    def reset_choices(self, *_):
        """Refresh every layer list (napari also calls this on layer changes)."""
        self.settings.reset_choices()
        self.label_table.reset_choices()

    def _on_layer_inserted(self, event):
        if getattr(event.value, "metadata", {}).get("dfcseg") and self.viewer.dims.ndim == 3:
            _view.orient_like_slicer(self.viewer)

    # ------------------------------------------------------ the run's layers
    def _schedule_prepare(self, *_):
        self._prepare_timer.start(0)  # once the current change (and its siblings) is done

    def prepare_layers(self, one_at_a_time=False):
        """Make the empty result (and body-outline) layers the next run writes into.

        napari adds a Labels layer in one uninterruptible GUI-thread call
        (0.2-0.9 s with its first draw): paid here, when the user picks the
        image, the region or "replace", so that a run adds no layer; with
        ``one_at_a_time`` one layer per event-loop callback. Returns the layers added.
        """
        image = self.settings.image.value
        if self.run_handle is not None or image is None:
            return []
        if not image.rgb and (image.ndim not in (2, 3) or
                              (self.settings.engine_mode() == "3d" and image.ndim != 3)):
            return []  # Run will explain; nothing to prepare for
        added = self.layers.prepare(
            image, replace=self.replace_box.isChecked(),
            region=not image.rgb and isinstance(self.settings.region.value, str)
            and self.settings.region.value == REGION_AUTO, at_most=1 if one_at_a_time else None)
        if one_at_a_time and added:
            self._schedule_prepare()  # the next one, after the window has had a turn
        return added

    # ------------------------------------------------------------- scribbles
    def add_scribbles_layer(self):
        """Add an empty Labels layer on the image, brush on label 1, ready to paint."""
        image = self.settings.image.value
        if image is None:
            self._error("Add or open an image layer first")
            return None
        shape = image.data.shape[: image.ndim]
        layer = self.viewer.add_labels(
            np.zeros(shape, dtype=np.uint8),
            name=f"{image.name} scribbles",
            colormap=labels_colormap(),
            **output_layer_kwargs(image),
        )
        layer.brush_size = 5
        layer.selected_label = 1
        layer.mode = "paint"
        self.viewer.layers.selection.active = layer
        self.settings.reset_choices()
        self.settings.scribbles.value = layer
        return layer

    # ------------------------------------------------------------------- run
    @property
    def running(self):
        """True while an engine call is in progress (or its result is still being shown)."""
        return self.run_handle is not None or self._showing is not None

    def _checked_image(self, three_d):
        """The image layer to segment, or None after telling the user why not."""
        image = self.settings.image.value
        if image is None:
            self._error("Add or open an image layer first")
            return None
        if image.rgb:
            return image  # a colour photo: one 2D image with a colour axis
        if image.ndim not in (2, 3):
            self._error(f"Layer {image.name!r} has {image.ndim} dimensions: open one 2D image "
                        "or one 3D scan")
            return None
        if three_d and image.ndim != 3:
            # the engine would treat a 2D image as one slice; in the GUI that is a mistake
            self._error(f"3D mode needs a 3D image, and layer {image.name!r} is {image.ndim}D: "
                        "choose 2D slice-wise mode")
            return None
        return image

    def run(self):
        """Start a segmentation of the selected image with the widget's settings."""
        if self.running:
            return None
        s = self.settings
        image = self._checked_image(s.engine_mode() == "3d")
        if image is None:
            return None
        try:
            config = s.config()
        except Exception as exc:  # DFCConfig checks its fields
            self._error(describe_error(exc))
            return None
        mode = "2d" if image.rgb else s.engine_mode()
        call = functools.partial(segment_call, self._run_inputs(image), mode=mode, config=config,
                                 seed=int(s.seed.value), device=s.device.value)
        record = {"mode": mode, "seed": int(s.seed.value), "preset": s.preset.value}
        return self._start(call, image, suffix="labels", record=record)

    def apply_model(self, path=None):
        """Label the selected image with a model saved by "Save model…" (reference mode)."""
        if self.running:
            return None
        image = self._checked_image(False)
        if image is None:
            return None
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Apply model", "", MODEL_FILTER)
            if not path:
                return None
        call = functools.partial(apply_model_call, str(path), self._run_inputs(image),
                                 device=self.settings.device.value)
        record = {"mode": "model", "seed": 0, "preset": "", "model_path": str(path)}
        return self._start(call, image, suffix="model labels", record=record)

    def _run_inputs(self, image):
        """References to the layer data of a run (no copy on the GUI thread)."""
        s = self.settings
        region = s.region_layer()
        meta = image.metadata.get("dfcseg") or {}
        return RunInputs(
            image=image.data,
            channels=[] if image.rgb else
            [(layer.name, layer.data) for layer in s.channels.value if layer is not image],
            region=region.data if region is not None else s.region.value,
            scribbles=None if s.scribbles.value is None else s.scribbles.value.data,
            rgb=bool(image.rgb),
            modality=str(meta.get("modality", "")),
            spacing=spacing_of_layer(image),
            names={"image": image.name, "region": getattr(region, "name", None),
                   "scribbles": getattr(s.scribbles.value, "name", None)},
        )

    def _start(self, call, image, *, suffix, record):
        self._run = {"image": image, "suffix": suffix, "start": time.perf_counter()}
        # the label count and the run record are made on the worker thread
        call = functools.partial(recorded_call, call, image_name=image.name, **record)
        self.progress_report.start(image.name)
        self.run_button.setEnabled(False)
        self.apply_model_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._prepare_timer.stop()
        self.prepare_layers()  # already done unless Run came before the event loop ran
        self.layers.begin(image, suffix, replace=self.replace_box.isChecked())
        self.run_handle = start_engine_run(
            call,
            on_progress=self._on_progress,
            on_returned=self._on_returned,
            on_errored=self._on_errored,
            on_finished=self._on_finished,
            preview_slice=self.preview.wanted_slice,
        )
        self._cancel_on_close["event"] = self.run_handle.cancel_event
        return self.run_handle

    def cancel(self):
        """Stop the run; the engine gives up within one iteration and nothing is added."""
        if self.run_handle is not None:
            self.run_handle.cancel()
            self.cancel_button.setEnabled(False)
            self.status.setText("Cancelling…")

    # ------------------------------------------------- worker signal handlers
    def _on_progress(self, report):
        info = report.info
        if info.get("region") is not None:
            self.layers.show_region(self._run["image"], info["region"])
            self._run["region_shown"] = True
        if info.get("preview") is not None:
            self.preview.show(info["preview"], int(info.get("preview_index", 0)))
        self.progress_report.report(report)

    def _on_returned(self, output):
        run = self._run
        image, result = run["image"], output.result
        self.last_result = result
        if output.region is not None and not run.get("region_shown"):
            self.layers.show_region(image, output.region)
        metadata = output.record
        layer = self.layers.finish(image, result.labels, run["suffix"], metadata)
        self.save_model_button.setEnabled(getattr(result, "model", None) is not None)
        chosen = metadata.get("tissues_chosen")
        how = f" (tissue count chosen automatically: {chosen})" if chosen and \
            self.settings.tissue_count() is None else ""
        self.status.setText(
            f"Done: {output.n_labels} labels{how} in {duration(time.perf_counter() - run['start'])}."
            " Correct them with the brush, then Save labels…"
        )
        # selecting the layer (napari swaps its layer controls) and the table's
        # recount are two more event-loop callbacks: each stays short
        self._showing = layer
        QTimer.singleShot(0, self._select_result)

    def _select_result(self):
        layer = self._showing
        if layer is not None and layer in self.viewer.layers:
            self.viewer.layers.selection.active = layer
            QTimer.singleShot(0, self._count_result)
        else:
            self._showing = None

    def _count_result(self):
        layer, self._showing = self._showing, None
        if layer is not None and layer in self.viewer.layers:
            self.label_table.show_layer(layer)

    def _on_errored(self, exc):
        from napari_dfcseg.errors import Cancelled

        self.layers.abort()
        if isinstance(exc, Cancelled):
            self.status.setText("Cancelled: nothing was added.")
            return
        self._error(describe_error(exc))

    def _on_finished(self):
        self.layers.preview.stop()  # nothing left to undo after a result or an abort
        self.progress_report.close()
        self.run_handle = None
        self.run_button.setEnabled(True)
        self.apply_model_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self._schedule_prepare()  # "replace" off: the next run's empty layer, after this one

    # ----------------------------------------------------------------- utils
    def _error(self, message):
        """One-line error: a notification, and the status line (so no stale message stays)."""
        from napari.utils.notifications import show_error

        self.status.setText(message)
        show_error(message)

