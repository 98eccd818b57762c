"""The layers a run leaves: its result, its automatic body outline, and the live preview between.

One object per widget keeps the result and body layers of the last run so the
next run writes into them instead of adding layers (napari builds a layer's
vispy visuals and tool overlays on the GUI thread: 0.1-0.8 s each, the main
stall of a run; removing one runs a ``gc.collect``). A run adds at most two
layers, the body outline when it is found and the result at the first
preview, and the second run into the same layers adds none.
"""

from __future__ import annotations

import numpy as np

from . import _view
from ._label_data import apply_labels_edit
from ._label_table import SOURCE_KEY
from ._layers import labels_colormap, output_layer_kwargs, region_colormap
from ._preview import LivePreview
from ._run import RUN_KEY

__all__ = ["RunLayers", "REGION_KEY", "SOURCE_KEY", "warm_up_visuals"]

#: layer-metadata key marking an automatic body-outline layer (value: its image's name)
REGION_KEY = "dfcseg_region_of"


def warm_up_visuals():
    """Pay vispy's first-use cost of a Labels layer's visuals now, on the GUI thread.

    The first Labels layer of a session builds vispy's shader templates and
    line patterns for the first time (0.2-0.5 s; later layers ~20 ms of it):
    built here once, when the widget opens, the first run's body-outline
    layer does not pay them mid-run. vispy visuals queue GL commands to the
    current canvas, so this must run on the GUI thread; best effort (private
    napari classes may move).
    """
    try:
        from napari._vispy.layers.labels import LabelLayerNode
        from vispy.scene.visuals import Compound, Line, Markers, Polygon

        points = np.array([(0.0, 0.0), (1.0, 1.0)])
        # what napari's polygon and brush overlays and its labels node are made of
        Compound([Polygon(pos=points, border_method="agg"), Markers(pos=points),
                  Line(pos=points, method="agg")])
        LabelLayerNode(None, texture_format="auto")
    except Exception:  # noqa: BLE001 - a missed warm-up only costs time
        pass


def _layer_shape(image):
    return tuple(image.data.shape[: image.ndim])


class RunLayers:
    """Result, body-outline and preview layers of the widget's runs.

    Parameters
    ----------
    viewer : napari.Viewer
    settings : RunSettings
        The widget's inputs (the body outline becomes their Region).
    """

    def __init__(self, viewer, settings):
        self.viewer = viewer
        self.settings = settings
        self.preview = LivePreview(viewer)
        self.output_layer = None  # the result of the last run
        self.region_layer = None  # the automatic body outline of the last run
        self._target = None  # the result layer this run replaces
        self._region_added = None  # a body layer this run added (a cancel removes it)

    def _alive(self, layer, key, image):
        return (layer is not None and layer in self.viewer.layers
                and layer.metadata.get(key) == image.name
                and layer.data.shape == _layer_shape(image))

    # ------------------------------------------------------------ the run
    def begin(self, image, suffix, replace):
        """Before a run of ``image``: pick the layer it replaces and start the preview."""
        old = self.output_layer
        self._target = old if replace and self._alive(old, SOURCE_KEY, image) else None
        self._region_added = None
        self.preview.start(image, name=f"{image.name} {suffix}", target=self._target)

    def show_region(self, image, region):
        """Show the automatic body outline as an editable Labels layer, and use it next time."""
        data = region.astype(np.uint8)
        old = self.region_layer
        if self._alive(old, REGION_KEY, image):
            old.data[...] = data  # same array, same dtype: no new texture layout
            old._reset_history()  # a new outline: the old undo steps do not fit it
            old.refresh()
            layer = old
        else:
            with _view.keep_selection(self.viewer):
                layer = self.viewer.add_labels(
                    data, name=f"{image.name} body", colormap=region_colormap(), opacity=0.7,
                    blending="translucent_no_depth", **output_layer_kwargs(image),
                )
            layer.contour = 1  # an outline: the result shows through
            layer.metadata[REGION_KEY] = image.name
            self.region_layer = self._region_added = layer
        self.settings.reset_choices()
        self.settings.region.value = layer

    def finish(self, image, labels, suffix, metadata):
        """Put ``labels`` into the replaced result (one undo step), the preview's layer or a new one."""
        layer = self.preview.finish()
        target = self._target
        self._target = self._region_added = None
        if target is not None and target in self.viewer.layers and target.data.shape == labels.shape:
            if target.data.dtype == labels.dtype:
                apply_labels_edit(target, tuple(slice(None) for _ in labels.shape), labels)
            else:
                target.data = labels
                target._reset_history()  # the old undo steps do not fit the new array
            layer = target
        elif layer is not None:  # the layer the preview made
            if layer.data.dtype == labels.dtype and layer.data.shape == labels.shape:
                layer.data[...] = labels
                layer.refresh()
            else:
                layer.data = labels
        else:
            layer = self.viewer.add_labels(
                labels, name=f"{image.name} {suffix}", colormap=labels_colormap(),
                opacity=0.5, **output_layer_kwargs(image),
            )
        layer.editable = True
        layer.metadata[SOURCE_KEY] = image.name
        layer.metadata[RUN_KEY] = metadata
        self.output_layer = layer
        self.viewer.layers.selection.active = layer
        return layer

    def abort(self):
        """After a failed or cancelled run: nothing it added stays, the replaced result is back."""
        self.preview.stop()
        self._target = None
        added, self._region_added = self._region_added, None
        if added is not None and added in self.viewer.layers:
            with _view.keep_selection(self.viewer):
                self.viewer.layers.remove(added)
            self.region_layer = None
            self.settings.region.value = "auto"
