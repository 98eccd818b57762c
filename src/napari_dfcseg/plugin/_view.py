"""How the viewer shows a scan: anatomical axis names and Slicer/ITK-SNAP's view orientation.

napari's world is patient LPS millimetres in (z, y, x) order, so world axis 0
points to the patient's head (S), axis 1 to the back (P), axis 2 to the left
(L). napari draws the first displayed axis downwards; with axis 0 displayed
vertically (coronal and sagittal views) that puts the head at the bottom.
Flipping that one direction gives the views of 3D Slicer and ITK-SNAP:
axial with anterior up and the patient's right on the screen's left
(radiological), coronal and sagittal with the head up.
"""

from __future__ import annotations

import contextlib
import weakref

__all__ = ["AXIS_LABELS", "orient_like_slicer", "keep_selection", "orientation_for"]

#: world axes (z, y, x) of LPS: the direction each one increases towards
AXIS_LABELS = ("I→S", "A→P", "R→L")

_ORIENTED = weakref.WeakSet()


def orientation_for(displayed):
    """``camera.orientation2d`` that shows the displayed (vertical, horizontal) world axes like Slicer."""
    vertical, _ = displayed[-2:]
    return ("up" if vertical == 0 else "down", "right")


def _apply(viewer):
    dims = viewer.dims
    if dims.ndim != 3:
        return
    labels = tuple(dims.axis_labels)
    if labels != AXIS_LABELS and all(str(a).lstrip("-").isdigit() for a in labels):
        dims.axis_labels = AXIS_LABELS
    if tuple(dims.axis_labels) != AXIS_LABELS:
        return  # someone named the axes otherwise: not a patient frame we know
    if dims.ndisplay == 2:
        wanted = orientation_for(dims.displayed)
        if tuple(viewer.camera.orientation2d) != wanted:
            viewer.camera.orientation2d = wanted


def orient_like_slicer(viewer):
    """Name the 3 world axes anatomically and keep the 2D views oriented like 3D Slicer's.

    Idempotent; follows later changes of the displayed axes (roll, transpose).
    """
    _apply(viewer)
    if viewer in _ORIENTED:
        return
    _ORIENTED.add(viewer)
    ref = weakref.ref(viewer)

    def follow(*_):
        v = ref()
        if v is not None:
            _apply(v)

    viewer.dims.events.order.connect(follow)
    viewer.dims.events.ndisplay.connect(follow)
    viewer.dims.events.ndim.connect(follow)


@contextlib.contextmanager
def keep_selection(viewer):
    """Add layers without taking the user's layer selection."""
    layers = viewer.layers
    selected, active = set(layers.selection), layers.selection.active
    previous = getattr(layers, "_activate_on_insert", None)
    if previous is not None:
        layers._activate_on_insert = False
    try:
        yield
    finally:
        if previous is not None:
            layers._activate_on_insert = previous
        if set(layers.selection) != selected or layers.selection.active is not active:
            layers.selection.clear()
            layers.selection.update(one for one in selected if one in layers)
            if active in layers:
                layers.selection.active = active
