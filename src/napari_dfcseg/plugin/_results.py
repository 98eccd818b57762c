"""The layers a run leaves: its result, its automatic body outline, and the live preview between.

napari builds a layer's vispy visuals, its tool overlays and its layer
controls on the GUI thread when the layer is added (0.3-0.9 s for a Labels
layer, one uninterruptible call) and runs a ``gc.collect`` when one is removed,
so a run adds and removes no layer. Like 3D Slicer's Segment Editor, which
creates an empty segmentation for the volume before any effect runs,
:meth:`RunLayers.prepare` makes the run's layers *before* a run, when the
image is chosen: an empty ``<image> labels`` (the next result) and
``<image> body`` (the automatic outline, when the Region is Auto). They are
visible from the start (label 0 is transparent, so they show nothing): the
first draw of a layer compiles its shaders and makes its textures (~0.1 s),
paid then too. A run only writes into them; a cancelled run empties them
again. The next run writes into the same layers (or, with "replace" off, into
a new empty layer prepared just after the previous run).
"""

from __future__ import annotations

import numpy as np

from . import _view
from ._label_data import apply_labels_edit
from ._label_table import SOURCE_KEY
from ._layers import labels_colormap, output_layer_kwargs, region_colormap
from ._preview import LivePreview
from ._run import RUN_KEY
from ._settings import REGION_AUTO

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
        self.region_layer = None  # the automatic body outline of the last run (or the empty one)
        self.spare_layer = None  # an empty result layer made before a run
        self._fresh = []  # prepared layers no run has filled yet
        self._target = None  # the result layer this run replaces
        self._region_added = None  # a body layer this run added (a cancel removes it)
        self._region_fresh = False  # this run fills an empty prepared body layer (a cancel empties it)

    def _alive(self, layer, key, image):
        return (layer is not None and layer in self.viewer.layers
                and layer.metadata.get(key) == image.name
                and layer.data.shape == _layer_shape(image))

    # ------------------------------------------------------ before a run
    def prepare(self, image, *, replace=True, region=True, at_most=None):
        """Make the layers a run of ``image`` writes into, empty (GUI thread, not mid-run).

        Parameters
        ----------
        image : napari.layers.Image
        replace : bool
            The run replaces the previous result: no new result layer when
            the previous one is there.
        region : bool
            The Region is Auto: a body-outline layer is needed too.
        at_most : int, optional
            Add at most this many layers now (each add is one long GUI-thread
            call: the caller adds the next one from a later callback).

        Returns
        -------
        list
            The layers added (empty when everything was there).
        """
        added = []
        self._drop_unused_spare(image)
        if region and not self._alive(self.region_layer, REGION_KEY, image):
            self.region_layer = self._add_region_layer(image)
            added.append(self.region_layer)
        if at_most is not None and len(added) >= at_most:
            self._fresh.extend(added)
            return added
        if not self._alive(self.spare_layer, SOURCE_KEY, image) and not (
                replace and self._alive(self.output_layer, SOURCE_KEY, image)):
            with _view.keep_selection(self.viewer):
                self.spare_layer = self.viewer.add_labels(
                    np.zeros(_layer_shape(image), np.uint8), name=f"{image.name} labels",
                    colormap=labels_colormap(), opacity=0.5, **output_layer_kwargs(image))
            self.spare_layer.metadata[SOURCE_KEY] = image.name
            added.append(self.spare_layer)
        self._fresh.extend(added)
        return added

    def _drop_unused_spare(self, image):
        """Remove prepared layers of another image that no run and no brush ever touched."""
        for attr, key in (("spare_layer", SOURCE_KEY), ("region_layer", REGION_KEY)):
            layer = getattr(self, attr)
            if layer is None or layer not in self.viewer.layers:
                setattr(self, attr, None)
                continue
            if (self._alive(layer, key, image) or layer not in self._fresh or layer.data.any()
                    or layer is self.settings.region.value or layer is self.settings.scribbles.value):
                continue
            with _view.keep_selection(self.viewer):
                self.viewer.layers.remove(layer)
            self._fresh.remove(layer)
            setattr(self, attr, None)

    def _add_region_layer(self, image):
        with _view.keep_selection(self.viewer):
            layer = self.viewer.add_labels(
                np.zeros(_layer_shape(image), np.uint8), name=f"{image.name} body",
                colormap=region_colormap(), opacity=0.7, blending="translucent_no_depth",
                **output_layer_kwargs(image),
            )
        layer.contour = 1  # an outline: the result shows through
        layer.metadata[REGION_KEY] = image.name
        return layer

    # ------------------------------------------------------------ the run
    def begin(self, image, suffix, replace):
        """Before a run of ``image``: pick the layer it writes into and start the preview."""
        old = self.output_layer
        self._target = old if replace and self._alive(old, SOURCE_KEY, image) else None
        self._region_added = None
        self._region_fresh = (self._alive(self.region_layer, REGION_KEY, image)
                              and self.region_layer in self._fresh)
        name = f"{image.name} {suffix}"
        target = self._target
        if target is None and self._alive(self.spare_layer, SOURCE_KEY, image):
            target = self.spare_layer
            if target.name != name:  # e.g. "model labels": renaming costs nothing
                target.name = name
        self.preview.start(image, name=name, target=target)

    def show_region(self, image, region):
        """Show the automatic body outline as an editable Labels layer, and use it next time."""
        data = region.astype(np.uint8)
        old = self.region_layer
        if self._alive(old, REGION_KEY, image):
            old.data[...] = data  # same array, same dtype: no new texture layout
            old._reset_history()  # a new outline: the old undo steps do not fit it
            old.refresh()
            layer = old
            if layer in self._fresh:
                self._fresh.remove(layer)
        else:  # the Region was not Auto before the run: no prepared layer
            layer = self._add_region_layer(image)
            self.region_layer = self._region_added = layer
        self.settings.reset_choices()
        self.settings.region.value = layer

    def finish(self, image, labels, suffix, metadata):
        """Put ``labels`` into the replaced result (one undo step), the preview's layer or a new one."""
        layer = self.preview.finish()
        target = self._target
        self._target = self._region_added = None
        self._region_fresh = False
        if target is not None and target in self.viewer.layers and target.data.shape == labels.shape:
            if target.data.dtype == labels.dtype:
                apply_labels_edit(target, tuple(slice(None) for _ in labels.shape), labels)
            else:
                target.data = labels
                target._reset_history()  # the old undo steps do not fit the new array
            layer = target
        elif layer is not None:  # the prepared layer or the one the preview made
            if layer.data.dtype == labels.dtype and layer.data.shape == labels.shape:
                layer.data[...] = labels
                layer._reset_history()  # a first result: nothing before it to undo to
                layer.refresh()
            else:
                layer.data = labels
        else:
            layer = self.viewer.add_labels(
                labels, name=f"{image.name} {suffix}", colormap=labels_colormap(),
                opacity=0.5, **output_layer_kwargs(image),
            )
        if layer is self.spare_layer:
            self.spare_layer = None  # it holds a result now
        if layer in self._fresh:
            self._fresh.remove(layer)
        layer.editable = True
        layer.metadata[SOURCE_KEY] = image.name
        layer.metadata[RUN_KEY] = metadata
        self.output_layer = layer
        return layer

    def abort(self):
        """After a failed or cancelled run: nothing it added stays, the replaced result is back.

        A prepared body layer the run filled is emptied again; the preview
        gives every layer it wrote into its values back.
        """
        self.preview.stop()
        self._target = None
        added, self._region_added = self._region_added, None
        if added is not None and added in self.viewer.layers:
            with _view.keep_selection(self.viewer):
                self.viewer.layers.remove(added)
            self.region_layer = None
            self.settings.region.value = REGION_AUTO
        elif self._region_fresh and self.region_layer in self.viewer.layers:
            layer = self.region_layer
            layer.data[...] = 0
            layer._reset_history()
            layer.refresh()
            self._fresh.append(layer)
            if self.settings.region.value is layer:
                self.settings.region.value = REGION_AUTO
        self._region_fresh = False
