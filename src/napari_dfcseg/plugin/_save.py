"""Saving labels (the widget's button and napari's *File ▸ IO Utilities* menu), the model, settings.

:class:`SaveActions` is a mixin of :class:`~._widget.DFCSegWidget` (it uses
the widget's ``viewer``, ``settings``, ``label_table``, ``status`` and
``_error``). :func:`save_labels_command` is the npe2 command behind *File ▸ IO
Utilities ▸ Save labels as NIfTI or Slicer segmentation…*: napari's own
*Save Selected Layers…* hands the file to the writer of the selected *Files of
type* entry, whatever the typed name ends with, and lists napari's TIFF writer
first, so a typed ``x.nii.gz`` fails there unless our type is picked; this
dialog picks the format from the name.
"""

from __future__ import annotations

from pathlib import Path

import napari.viewer  # the annotation napari injects the viewer by (resolved at run time)
from qtpy.QtWidgets import QFileDialog

from ._label_table import SOURCE_KEY
from ._run import write_settings
from ._worker import describe_error
from ._writer import write_labels_layer, write_seg_nrrd_layer

__all__ = ["SaveActions", "MODEL_FILTER", "LABELS_FILTERS", "save_labels_file",
           "save_labels_command"]

MODEL_FILTER = "napari-dfcseg model (*.pt)"
#: the label formats, as save-dialog filters (the first is the default)
LABELS_FILTERS = ("NIfTI labels for ITK-SNAP, 3D Slicer, FSL (*.nii.gz *.nii)",
                  "3D Slicer segmentation (*.seg.nrrd)")
_SETTINGS_FILTER = "napari-dfcseg settings (*.json)"


def _labels_target(path, selected_filter=""):
    """(path, writer) of a label file: the format from the name, else from the picked filter."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".seg.nrrd"):
        return path, write_seg_nrrd_layer
    if name.endswith((".nii", ".nii.gz")):
        return path, write_labels_layer
    if selected_filter == LABELS_FILTERS[1]:
        return path.with_name(path.name + ".seg.nrrd"), write_seg_nrrd_layer
    return path.with_name(path.name + ".nii.gz"), write_labels_layer


def _is_an_open_scan(viewer, path):
    target = Path(path).resolve()
    return any(layer.source.path and Path(layer.source.path).resolve() == target
               for layer in viewer.layers)


def suggested_labels_path(viewer, layer):
    """``<folder of the source scan>/<layer name>.nii.gz`` (home when the scan has no file)."""
    for other in viewer.layers:
        if other.source.path and other.name == layer.metadata.get(SOURCE_KEY):
            return Path(other.source.path).parent / f"{layer.name}.nii.gz"
    return Path.home() / f"{layer.name}.nii.gz"


def save_labels_file(viewer, layer, path, selected_filter=""):
    """Write Labels ``layer`` as NIfTI or ``.seg.nrrd`` (from the name) with its scan's geometry.

    Returns the written paths. Raises :class:`~napari_dfcseg.errors.DFCError`
    (one line) for an open scan's file or a file that cannot be written.
    """
    from napari_dfcseg.errors import InvalidInputError

    path, writer = _labels_target(path, selected_filter)
    if _is_an_open_scan(viewer, path):
        raise InvalidInputError(f"{path.name} is an open scan: choose another file name")
    data, state, _ = layer.as_layer_data_tuple()
    state["features"] = layer.features
    return writer(str(path), data, state)


def _ask_labels_path(parent, viewer, layer):
    path, selected = QFileDialog.getSaveFileName(
        parent, f"Save labels {layer.name!r}", str(suggested_labels_path(viewer, layer)),
        ";;".join(LABELS_FILTERS))
    return path, selected


def save_labels_command(viewer: napari.viewer.Viewer):
    """*File ▸ IO Utilities ▸ Save labels…*: the selected Labels layer, format from the typed name.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Injected by napari when the menu item is chosen.

    Returns
    -------
    list of str
        The written paths (empty when cancelled or refused, with a notification).
    """
    from napari.layers import Labels
    from napari.utils.notifications import show_error, show_info

    layer = viewer.layers.selection.active
    if not isinstance(layer, Labels):
        chosen = [other for other in viewer.layers.selection if isinstance(other, Labels)]
        layer = chosen[0] if len(chosen) == 1 else None
    if layer is None:
        show_error("Select one Labels layer to save")
        return []
    path, selected = _ask_labels_path(None, viewer, layer)
    if not path:
        return []
    try:
        written = save_labels_file(viewer, layer, path, selected)
    except Exception as exc:  # the writers' one-line errors
        show_error(describe_error(exc))
        return []
    show_info(f"Saved {Path(written[0]).name}")
    return written


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
        """Save the table's Labels layer with the source scan's geometry (NIfTI, or ``.seg.nrrd`` by name).

        Returns the written paths (empty if the user cancelled or it failed).
        """
        layer = self._labels_layer_to_save()
        if layer is None:
            self._error("There is no labels layer to save: run a segmentation first")
            return []
        selected = ""
        if path is None:
            path, selected = _ask_labels_path(self, self.viewer, layer)
            if not path:
                return []
        try:
            written = save_labels_file(self.viewer, layer, path, selected)
        except Exception as exc:
            self._error(describe_error(exc))
            return []
        from napari.utils.notifications import show_info

        show_info(f"Saved {Path(written[0]).name}")
        self.status.setText(f"Saved {Path(written[0]).name}")
        return written

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
