"""The live preview of a run: the slice the user is looking at, shown without taking over the viewer.

The engine computes the preview (cluster ids of one slice) on its own thread;
here it only becomes a one-slice Labels layer sitting on that slice. The
preview never changes the layer selection or the dims point, and is shown at
most every ``min_interval_s`` so the event loop stays free for the user.
"""

from __future__ import annotations

import time

import numpy as np

from ._layers import labels_colormap, output_layer_kwargs, slice_layer_kwargs
from ._view import keep_selection

__all__ = ["LivePreview"]


class LivePreview:
    """A ``… preview`` layer that follows a run.

    Parameters
    ----------
    viewer : napari.Viewer
    min_interval_s : float
        Least time between two updates of the layer.
    """

    def __init__(self, viewer, min_interval_s=0.5):
        self._viewer = viewer
        self.min_interval_s = float(min_interval_s)
        self._image = None
        self.layer = None
        self._last = 0.0
        self._slice = None
        self._colormap = None
        self._index = None

    # ------------------------------------------------------------ the run
    def start(self, image):
        """Prepare a preview of ``image`` (call on the GUI thread before the run)."""
        self._image = image
        self.layer = None
        self._last = 0.0
        # a fresh colormap per run (the layer may become the result, which owns it);
        # ~3 ms once the widget's warm-up has built the first one
        self._colormap = labels_colormap()
        self._update_slice()
        self._viewer.dims.events.current_step.connect(self._update_slice)

    def stop(self):
        """Remove the preview layer (the run finished, failed or was cancelled)."""
        try:
            self._viewer.dims.events.current_step.disconnect(self._update_slice)
        except (TypeError, ValueError, RuntimeError):
            pass
        if self.layer is not None and self.layer in self._viewer.layers:
            with keep_selection(self._viewer):
                self._viewer.layers.remove(self.layer)
        self.layer = None
        self._image = None

    def take_layer(self):
        """Hand the preview layer over (the result reuses it: no new layer at the end), or None."""
        layer = self.layer
        self.layer = None
        if layer is None or layer not in self._viewer.layers:
            return None
        return layer

    # ---------------------------------------------------- which slice
    def _update_slice(self, *_):
        image = self._image
        if image is None or image.ndim != 3 or image.rgb:
            self._slice = None
            return
        point = np.asarray(self._viewer.dims.point)[-3:]
        k = int(round(float(image.world_to_data(point)[0])))
        self._slice = int(np.clip(k, 0, image.data.shape[0] - 1))

    def wanted_slice(self):
        """Data index (axis 0) of the slice the user is looking at; read by the engine thread."""
        return self._slice

    # ------------------------------------------------------------ showing
    def show(self, preview, index, force=False):
        """Show ``preview`` (y, x) as slice ``index`` of the image; throttled unless ``force``."""
        image = self._image
        if image is None:
            return
        now = time.perf_counter()
        if not force and self.layer is not None and now - self._last < self.min_interval_s:
            return
        self._last = now
        preview = np.asarray(preview)
        if image.ndim == 3 and preview.ndim == 2 and not image.rgb:
            data, placement = preview[np.newaxis], slice_layer_kwargs(image, index)
        else:
            data, placement = preview, output_layer_kwargs(image)
            placement.pop("metadata")
        layer = self.layer
        if layer is not None and layer in self._viewer.layers:
            if index != self._index and "affine" in placement:
                layer.affine = placement["affine"]  # the user moved to another slice
            layer.data = data
            self._index = index
            return
        with keep_selection(self._viewer):
            self.layer = self._viewer.add_labels(
                data, name=f"{image.name} preview", opacity=0.6, colormap=self._colormap,
                **placement,
            )
        self.layer.editable = False
        self._index = index
