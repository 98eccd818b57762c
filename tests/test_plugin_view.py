"""How a real anisotropic scan shows: every slice reachable, anatomical axes, Slicer's orientation."""

import numpy as np

from napari_dfcseg.plugin._view import AXIS_LABELS
from napari_dfcseg.plugin._widget import DFCSegWidget

PLUGIN = "napari-dfcseg"


def _brain(real_data, make_napari_viewer):
    viewer = make_napari_viewer()
    [scan] = viewer.open(str(real_data / "mr-brain-tumour" / "image.nrrd"), plugin=PLUGIN)
    widget = DFCSegWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, scan, widget


def test_every_slice_of_a_thick_slice_nrrd_is_reachable_with_results_on_top(real_data, make_napari_viewer):
    from napari_dfcseg.plugin._layers import output_layer_kwargs, slice_layer_kwargs

    viewer, scan, _ = _brain(real_data, make_napari_viewer)
    nz = scan.data.shape[0]
    assert scan.scale[0] == 6.5  # not 6.499999999999998 from the float header
    # a result layer and a one-slice preview on the scan, as a run adds them
    viewer.add_labels(np.zeros(scan.data.shape, np.uint8), **output_layer_kwargs(scan))
    viewer.add_labels(np.zeros((1, *scan.data.shape[1:]), np.uint8), **slice_layer_kwargs(scan, nz // 2))
    assert viewer.dims.nsteps[0] == nz
    for step, expected in ((0, 0), (nz - 1, nz - 1)):
        viewer.dims.set_current_step(0, step)
        index = scan.world_to_data(viewer.dims.point)[0]
        assert round(float(index)) == expected


def test_axes_are_named_anatomically_and_coronal_sagittal_show_the_head_up(real_data, make_napari_viewer):
    viewer, scan, _ = _brain(real_data, make_napari_viewer)
    assert tuple(viewer.dims.axis_labels) == AXIS_LABELS
    # axial (default): anterior up, the patient's right on the screen's left (radiological)
    assert tuple(viewer.camera.orientation2d) == ("down", "right")
    viewer.dims.order = (1, 0, 2)  # coronal: S-I vertical, R-L horizontal
    assert tuple(viewer.camera.orientation2d) == ("up", "right")
    viewer.dims.order = (2, 0, 1)  # sagittal: S-I vertical, A-P horizontal (anterior left)
    assert tuple(viewer.camera.orientation2d) == ("up", "right")
    # what that means on the screen: higher on the canvas is more superior
    viewer.dims.order = (1, 0, 2)
    canvas = viewer.window._qt_viewer.canvas
    view = canvas.view
    w, h = canvas.size[::-1] if hasattr(canvas, "size") else (400, 400)
    upper = canvas._map_canvas2world((w / 2, h * 0.25), view)
    lower = canvas._map_canvas2world((w / 2, h * 0.75), view)
    assert upper[0] > lower[0]  # world axis 0 points to S
    viewer.dims.order = (0, 1, 2)
    assert tuple(viewer.camera.orientation2d) == ("down", "right")
