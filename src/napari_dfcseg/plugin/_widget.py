"""The "DFC Segmentation" dock widget: inputs, Run / Cancel, label table, save, reference mode.

Thin: it gathers layer data on the GUI thread, hands a bound engine call to
:mod:`._worker`, and turns the worker's signals into layers, a progress bar
and notifications. Geometry goes through :mod:`._layers`, label edits through
:mod:`._label_table`, files through :mod:`._writer` and the engine.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from qtpy.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ._label_table import SOURCE_KEY, LabelTable
from ._layers import labels_colormap, output_layer_kwargs, slice_layer_kwargs, spacing_of_layer
from ._settings import RunSettings
from ._worker import describe_error, start_engine_run
from ._writer import write_labels_layer

__all__ = ["DFCSegWidget"]

_MODEL_FILTER = "napari-dfcseg model (*.pt)"
_LABELS_FILTER = "NIfTI labels (*.nii.gz *.nii)"


def _gather_inputs(image, channels, mask, scribbles):
    """Arrays the engine takes, built on the worker thread (stacking can be large)."""
    from napari_dfcseg.errors import InvalidInputError

    image = np.asarray(image)
    channel_axis = None
    if channels:
        for name, extra in channels:
            if np.shape(extra) != image.shape:
                raise InvalidInputError(
                    f"channel layer {name!r} has shape {np.shape(extra)}, "
                    f"the image has {image.shape}: channels must be co-registered"
                )
        image = np.stack([image, *(np.asarray(extra) for _, extra in channels)], axis=-1)
        channel_axis = -1
    mask = None if mask is None else np.asarray(mask) > 0
    scribbles = None if scribbles is None else np.asarray(scribbles)
    return image, channel_axis, mask, scribbles


def _segment_call(data, *, mode, spacing, config, seed, device, progress, cancel):
    from napari_dfcseg.engine.pipeline import segment

    image, channel_axis, mask, scribbles = _gather_inputs(*data)
    return segment(
        image, mode=mode, spacing=spacing, channel_axis=channel_axis, mask=mask,
        scribbles=scribbles, config=config, seed=seed, device=device,
        progress=progress, cancel=cancel,
    )


def _apply_model_call(model_path, data, *, spacing, device, progress, cancel):
    from napari_dfcseg.engine.model import load_model
    from napari_dfcseg.engine.pipeline import apply_model

    image, _, mask, _ = _gather_inputs(*data)
    model = load_model(model_path)
    return apply_model(model, image, spacing=spacing, mask=mask, device=device,
                       progress=progress, cancel=cancel)


class DFCSegWidget(QWidget):
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
        self.output_layer = None
        self._preview = None
        self._progress = None
        self._run_image = None

        self.settings = RunSettings(napari_viewer)
        self.add_scribbles_button = QPushButton("Add scribbles layer")
        self.add_scribbles_button.setToolTip(
            "An empty Labels layer on the image, brush selected: paint classes 1, 2, 3…"
        )
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.status = QLabel("Pick an image layer and press Run.")
        self.status.setWordWrap(True)

        self.label_table = LabelTable(napari_viewer)
        self.save_labels_button = QPushButton("Save labels…")
        self.save_model_button = QPushButton("Save model…")
        self.save_model_button.setEnabled(False)
        self.save_model_button.setToolTip("Save the network of the last run to apply it to other scans")
        self.apply_model_button = QPushButton("Apply model…")
        self.apply_model_button.setToolTip("Label the selected image with a saved model (reference mode)")

        run_row = QHBoxLayout()
        run_row.addWidget(self.run_button)
        run_row.addWidget(self.cancel_button)
        save_row = QHBoxLayout()
        save_row.addWidget(self.save_labels_button)
        save_row.addWidget(self.save_model_button)
        save_row.addWidget(self.apply_model_button)

        table_box = QGroupBox("Labels")
        table_layout = QVBoxLayout(table_box)
        table_layout.addWidget(self.label_table)
        table_layout.addLayout(save_row)

        layout = QVBoxLayout(self)
        layout.addWidget(self.settings)
        layout.addWidget(self.add_scribbles_button)
        layout.addLayout(run_row)
        layout.addWidget(self.status)
        layout.addWidget(table_box)
        layout.addStretch(1)

        self.add_scribbles_button.clicked.connect(self.add_scribbles_layer)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.save_labels_button.clicked.connect(lambda: self.save_labels())
        self.save_model_button.clicked.connect(lambda: self.save_model())
        self.apply_model_button.clicked.connect(lambda: self.apply_model())

        events = napari_viewer.layers.events
        for event in (events.inserted, events.removed, events.reordered):
            event.connect(self.reset_choices)
        # closing the viewer mid-run must not leave the engine thread running
        cancel_on_close = self._cancel_on_close = {"event": None}
        self.destroyed.connect(
            lambda *_: cancel_on_close["event"] is not None and cancel_on_close["event"].set()
        )
        self.reset_choices()

    # ---------------------------------------------------------------- choices
    def reset_choices(self, *_):
        """Refresh every layer list (napari also calls this on layer changes)."""
        self.settings.reset_choices()
        self.label_table.reset_choices()

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
        """True while an engine call is in progress."""
        return self.run_handle is not None

    def run(self):
        """Start a segmentation of the selected image with the widget's settings."""
        if self.running:
            return None
        s = self.settings
        image = s.image.value
        if image is None:
            self._error("Add or open an image layer first")
            return None
        if s.engine_mode() == "3d" and image.ndim != 3:
            # the engine would treat a 2D image as one slice; in the GUI that is a mistake
            self._error(
                f"3D mode needs a 3D image, and layer {image.name!r} is {image.ndim}D: "
                "choose 2D slice-wise mode"
            )
            return None
        try:
            config = s.config()
        except Exception as exc:  # DFCConfig checks its fields
            self._error(describe_error(exc))
            return None
        call = functools.partial(
            _segment_call,
            self._input_arrays(image),
            mode=s.engine_mode(),
            spacing=spacing_of_layer(image),
            config=config,
            seed=int(s.seed.value),
            device=s.device.value,
        )
        return self._start(call, image, total=config.max_iter, suffix="clusters")

    def apply_model(self, path=None):
        """Label the selected image with a model saved by "Save model…" (reference mode)."""
        if self.running:
            return None
        image = self.settings.image.value
        if image is None:
            self._error("Add or open an image layer first")
            return None
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Apply model", "", _MODEL_FILTER)
            if not path:
                return None
        call = functools.partial(
            _apply_model_call,
            str(path),
            self._input_arrays(image),
            spacing=spacing_of_layer(image),
            device=self.settings.device.value,
        )
        return self._start(call, image, total=1, suffix="model labels")

    def _input_arrays(self, image):
        s = self.settings
        channels = [(layer.name, layer.data) for layer in s.channels.value if layer is not image]
        mask = None if s.mask.value is None else s.mask.value.data
        scribbles = None if s.scribbles.value is None else s.scribbles.value.data
        return (image.data, channels, mask, scribbles)

    def _start(self, call, image, *, total, suffix):
        from napari.utils import progress

        self._run_image = (image, suffix)
        self._progress = progress(total=total, desc=f"DFC {image.name}")
        self.run_button.setEnabled(False)
        self.apply_model_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Starting…")
        self.run_handle = start_engine_run(
            call,
            on_progress=self._on_progress,
            on_returned=self._on_returned,
            on_errored=self._on_errored,
            on_finished=self._on_finished,
        )
        self._cancel_on_close["event"] = self.run_handle.cancel_event
        return self.run_handle

    def cancel(self):
        """Stop the run; the engine gives up within one iteration and nothing is added."""
        if self.running:
            self.run_handle.cancel()
            self.cancel_button.setEnabled(False)
            self.status.setText("Cancelling…")

    # ------------------------------------------------- worker signal handlers
    def _on_progress(self, report):
        info = report.info
        stage = "labelling" if info.get("stage") == "label" else "iteration"
        text = f"{stage} {report.i}/{report.n}"
        if "loss" in info:
            text += f" · loss {float(info['loss']):.3f}"
        if "n_labels" in info:
            text += f" · {int(info['n_labels'])} labels"
        self.status.setText(text)
        pbar = self._progress
        if pbar is not None:
            if report.n and pbar.total != report.n:
                pbar.total = report.n
            if report.i < pbar.n:  # labelling restarts the count after training
                pbar.n = 0
            pbar.set_description(f"DFC {text}")
            pbar.update(report.i - pbar.n)
        if info.get("preview") is not None:
            self._show_preview(np.asarray(info["preview"]), int(info.get("preview_index", 0)))

    def _show_preview(self, preview, index):
        """Show the engine's preview of one slice as a layer sitting on that slice."""
        image, _ = self._run_image
        if image.ndim == 3 and preview.ndim == 2:
            data, placement = preview[None], slice_layer_kwargs(image, index)
        else:
            data, placement = preview, output_layer_kwargs(image)
            placement.pop("metadata")
        if self._preview is not None and self._preview in self.viewer.layers:
            self._preview.data = data
            self._preview.affine = placement.get("affine", self._preview.affine)
            return
        self._preview = self.viewer.add_labels(
            data, name=f"{image.name} preview", opacity=0.6, colormap=labels_colormap(),
            **placement,
        )
        self._preview.editable = False
        if data.shape[0] == 1 and self.viewer.dims.ndisplay == 2 and self.viewer.dims.ndim == 3:
            # show the previewed slice: centre of the slice in world coordinates
            centre = np.array([0.0, (data.shape[1] - 1) / 2, (data.shape[2] - 1) / 2, 1.0])
            world = self._preview.affine.affine_matrix @ centre
            for axis in self.viewer.dims.not_displayed:
                self.viewer.dims.set_point(axis, float(world[axis]))

    def _on_returned(self, result):
        image, suffix = self._run_image
        self.last_result = result
        layer = self.viewer.add_labels(
            result.labels,
            name=f"{image.name} {suffix}",
            colormap=labels_colormap(),
            opacity=0.5,  # the anatomy shows through, as in Slicer's Segment Editor
            **output_layer_kwargs(image),
        )
        layer.metadata[SOURCE_KEY] = image.name
        self.output_layer = layer
        self.save_model_button.setEnabled(getattr(result, "model", None) is not None)
        n_labels = result.n_labels
        iterations = getattr(result, "n_iterations", None)
        self.status.setText(
            f"Done: {n_labels} labels" + (f" after {iterations} iterations" if iterations else "")
            + ". Correct them with the brush, then Save labels…"
        )
        self.viewer.layers.selection.active = layer
        self.label_table.show_layer(layer)

    def _on_errored(self, exc):
        from napari_dfcseg.errors import Cancelled

        if isinstance(exc, Cancelled):
            self.status.setText("Cancelled: nothing was added.")
            return
        self.status.setText(describe_error(exc))
        self._error(describe_error(exc))

    def _on_finished(self):
        if self._preview is not None and self._preview in self.viewer.layers:
            self.viewer.layers.remove(self._preview)
        self._preview = None
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        self.run_handle = None
        self.run_button.setEnabled(True)
        self.apply_model_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    # ------------------------------------------------------------------ save
    def _labels_layer_to_save(self):
        from napari.layers import Labels

        layer = self.label_table.layer or self.output_layer
        if layer is None:
            active = self.viewer.layers.selection.active
            layer = active if isinstance(active, Labels) else None
        return layer

    def save_labels(self, path=None):
        """Save the table's Labels layer as NIfTI with the source scan's geometry.

        Returns the written paths (empty if the user cancelled or it failed).
        """
        layer = self._labels_layer_to_save()
        if layer is None:
            self._error("There is no labels layer to save: run a segmentation first")
            return []
        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                self, "Save labels", str(self._suggested_path(layer)), _LABELS_FILTER
            )
            if not path:
                return []
        path = Path(path)
        if not path.name.lower().endswith((".nii", ".nii.gz")):
            path = path.with_name(path.name + ".nii.gz")
        if self._is_a_source_scan(path):
            self._error(f"{path.name} is an open scan: choose another file name")
            return []
        data, state, _ = layer.as_layer_data_tuple()
        state["features"] = layer.features
        try:
            written = write_labels_layer(str(path), data, state)
        except Exception as exc:
            self._error(describe_error(exc))
            return []
        from napari.utils.notifications import show_info

        show_info(f"Saved {Path(written[0]).name}")
        return written

    def _suggested_path(self, layer):
        for other in self.viewer.layers:
            if other.source.path and other.name == layer.metadata.get(SOURCE_KEY):
                return Path(other.source.path).parent / f"{layer.name}.nii.gz"
        return Path.home() / f"{layer.name}.nii.gz"

    def _is_a_source_scan(self, path):
        target = path.resolve()
        return any(
            layer.source.path and Path(layer.source.path).resolve() == target
            for layer in self.viewer.layers
        )

    def save_model(self, path=None):
        """Save the network of the last run (reference mode: apply it to other scans)."""
        model = getattr(self.last_result, "model", None)
        if model is None:
            self._error("Run a segmentation first: there is no model to save")
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save model", "dfcseg_model.pt", _MODEL_FILTER)
            if not path:
                return None
        try:
            model.save(path)
        except Exception as exc:
            self._error(describe_error(exc))
            return None
        return path

    # ----------------------------------------------------------------- utils
    def _error(self, message):
        from napari.utils.notifications import show_error

        show_error(message)
