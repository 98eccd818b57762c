"""The widget's file actions: Save labels…, Save model…, Export settings….

A mixin of :class:`~._widget.DFCSegWidget` (it uses the widget's ``viewer``,
``settings``, ``label_table``, ``status`` and ``_error``).
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import QFileDialog

from ._label_table import SOURCE_KEY
from ._run import write_settings
from ._worker import describe_error
from ._writer import write_labels_layer

__all__ = ["SaveActions", "MODEL_FILTER"]

MODEL_FILTER = "napari-dfcseg model (*.pt)"
_LABELS_FILTER = "NIfTI labels (*.nii.gz *.nii)"
_SETTINGS_FILTER = "napari-dfcseg settings (*.json)"


class SaveActions:
    """Save labels, the model and the run settings from the widget."""

    def export_settings(self, path=None):
        """Write the current settings as a file ``dfcseg segment --config FILE`` reads."""
        try:
            config = self.settings.config()
        except Exception as exc:
            self._error(describe_error(exc))
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export settings", "dfcseg_settings.json",
                                                  _SETTINGS_FILTER)
            if not path:
                return None
        try:
            written = write_settings(path, config)
        except OSError as exc:
            self._error(f"{path}: could not write the settings ({exc.strerror or exc})")
            return None
        except Exception as exc:  # the settings file's own checks (suffix, ...)
            self._error(describe_error(exc))
            return None
        # mode and seed are options of the command, not settings of the method
        self.status.setText(
            f"Settings saved to {Path(written).name}. On the command line: dfcseg segment "
            f"--config {Path(written).name} --mode {self.settings.engine_mode()} "
            f"--seed {int(self.settings.seed.value)} SCAN OUTPUT"
        )
        return written

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
        self.status.setText(f"Saved {Path(written[0]).name}")
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
            path, _ = QFileDialog.getSaveFileName(self, "Save model", "dfcseg_model.pt", MODEL_FILTER)
            if not path:
                return None
        try:
            model.save(path)
        except Exception as exc:
            self._error(describe_error(exc))
            return None
        return path
