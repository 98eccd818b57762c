"""The live preview of a run, written into the layer that will hold the result.

The engine computes the preview (cluster ids of one slice) on its own thread;
here it is written into the viewed slice of the result layer: the previous
result when the run replaces it, else the empty result layer prepared before
the run, else (no layer prepared) a new
``<image> labels`` layer made at the first preview, which the result then
fills. No layer is added or removed for the preview itself: in napari each
costs the event loop 0.3-0.9 s (vispy visuals, the Labels tool overlays and
layer controls built on the GUI thread, a ``gc.collect`` on removal), far
more than writing one slice.

The preview never changes the layer selection or the dims point; it is
shown at most every ``min_interval_s``, only in a 2D view (in 3D every write
would upload the whole volume again), and a slice it overwrote gets its
values back when the preview moves on, the run is cancelled or the result
arrives.
"""

from __future__ import annotations

import time

import numpy as np

from ._layers import labels_colormap, output_layer_kwargs
from ._view import keep_selection

__all__ = ["LivePreview"]


class LivePreview:
    """Live preview of one run in its result layer.

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
        self._name = None
        self.layer = None  # the layer the preview writes into
        self._created = False  # True: the preview made self.layer (a cancel removes it)
        self._saved = {}  # slice index -> the values the preview overwrote there
        self._editable = True
        self._visible = True
        self._last = 0.0
        self._slice = None

    # ------------------------------------------------------------ the run
    def start(self, image, name, target=None):
        """Prepare a preview of ``image`` (GUI thread, before the run).

        Parameters
        ----------
        image : napari.layers.Image
        name : str
            Name of the layer made at the first preview when there is no ``target``.
        target : napari.layers.Labels, optional
            The previous result, which this run replaces, or an empty layer
            prepared for the result: the preview is written into it (it is
            locked against edits until the run ends, shown if hidden, and a
            cancel gives it its values and visibility back).
        """
        self._image, self._name = image, name
        self.layer, self._created, self._saved = target, False, {}
        self._last = 0.0
        if target is not None:
            self._editable, self._visible = target.editable, target.visible
            target.editable = False  # the run writes into it: no brush strokes meanwhile
        self._update_slice()
        self._viewer.dims.events.current_step.connect(self._update_slice)

    def finish(self):
        """End the preview and hand over its layer (with its own values back), or None.

        The caller writes the result into the returned layer.
        """
        layer = self.layer
        self._restore_all()
        self._disconnect()
        if layer is not None and layer not in self._viewer.layers:
            layer = None
        self._unlock(layer)
        self.layer, self._created, self._image = None, False, None
        return layer

    def stop(self):
        """Undo the preview (the run failed or was cancelled): restore or remove its layer."""
        layer, created = self.layer, self._created
        self._restore_all()
        self._disconnect()
        if layer is not None and layer in self._viewer.layers:
            if created:
                with keep_selection(self._viewer):
                    self._viewer.layers.remove(layer)
            else:
                self._unlock(layer, restore_visibility=True)
        self.layer, self._created, self._image = None, False, None

    def _disconnect(self):
        try:
            self._viewer.dims.events.current_step.disconnect(self._update_slice)
        except (TypeError, ValueError, RuntimeError):
            pass

    def _unlock(self, layer, restore_visibility=False):
        if layer is not None:
            layer.editable = True if self._created else self._editable
            if restore_visibility and not self._created and layer.visible != self._visible:
                layer.visible = self._visible

    # ---------------------------------------------------- which slice
    @property
    def _sliced(self):
        """True when the preview is one slice of a 3D image (not a whole 2D or colour image)."""
        image = self._image
        return image is not None and image.ndim == 3 and not image.rgb

    def _update_slice(self, *_):
        if not self._sliced:
            self._slice = None
            return
        image = self._image
        point = np.asarray(self._viewer.dims.point)[-3:]
        k = int(round(float(image.world_to_data(point)[0])))
        self._slice = int(np.clip(k, 0, image.data.shape[0] - 1))

    def wanted_slice(self):
        """Data index (axis 0) of the slice the user is looking at; read by the engine thread."""
        return self._slice

    # ------------------------------------------------------------ showing
    def show(self, preview, index, force=False):
        """Write ``preview`` (y, x) into slice ``index`` of the result layer; throttled unless ``force``."""
        if self._image is None or self._viewer.dims.ndisplay != 2:
            return
        now = time.perf_counter()
        if not force and self.layer is not None and now - self._last < self.min_interval_s:
            return
        self._last = now
        layer = self.layer if self.layer is not None and self.layer in self._viewer.layers \
            else self._new_layer()
        data = layer.data
        top = np.iinfo(data.dtype).max if np.issubdtype(data.dtype, np.integer) else None
        values = np.asarray(preview)
        if top is not None and values.size and int(values.max()) > top:
            values = np.minimum(values, top)
        key = int(index) if self._sliced else 0
        for k in [k for k in self._saved if k != key]:
            self._restore(k)  # the user moved on: the old slice gets its values back
        view = data[key] if self._sliced else data
        if key not in self._saved:
            self._saved[key] = np.array(view, copy=True)
        view[...] = values.reshape(view.shape)
        if layer.visible:
            layer.refresh()
        else:
            layer.visible = True  # the user hid it: the preview is what they asked to see

    def _new_layer(self):
        image = self._image
        shape = image.data.shape[: image.ndim]
        placement = output_layer_kwargs(image)
        with keep_selection(self._viewer):
            layer = self._viewer.add_labels(
                np.zeros(shape, np.uint8), name=self._name, colormap=labels_colormap(),
                opacity=0.5,  # the anatomy shows through, as in Slicer's Segment Editor
                **placement,
            )
        layer.editable = False  # until the result is in
        self.layer, self._created, self._saved = layer, True, {}
        return layer

    def _restore(self, key):
        saved = self._saved.pop(key)
        layer = self.layer
        if layer is None or layer not in self._viewer.layers:
            return
        if self._sliced:
            layer.data[key] = saved
        else:
            layer.data[...] = saved
        if layer.visible:
            layer.refresh()

    def _restore_all(self):
        for key in list(self._saved):
            self._restore(key)
