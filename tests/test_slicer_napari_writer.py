"""napari's "Save layer" to ``.seg.nrrd`` (the plugin's second writer), in a real viewer."""

import numpy as np
import pytest

from napari_dfcseg.io import read_volume

nrrd = pytest.importorskip("nrrd")
PLUGIN = "napari-dfcseg"


def test_labels_layer_saved_as_seg_nrrd_keeps_the_scan_geometry_and_the_typed_names(
        make_napari_viewer, make_oblique_nifti, tmp_path):
    from napari import save_layers

    from napari_dfcseg.plugin._layers import output_layer_kwargs

    path, _, _ = make_oblique_nifti()
    viewer = make_napari_viewer()
    [image] = viewer.open(str(path), plugin=PLUGIN)
    labels = (image.data > 500).astype(np.uint8) + (image.data > 1500)
    layer = viewer.add_labels(labels, name="seg", **output_layer_kwargs(image))
    layer.features = {"index": [0, 1, 2], "name": ["", "soft tissue", "bone"]}
    target = tmp_path / "seg.seg.nrrd"
    written = save_layers(str(target), [layer], plugin=PLUGIN)
    assert written == [str(target)]

    data, header = nrrd.read(str(target), index_order="C")
    np.testing.assert_array_equal(data, labels)
    scan = read_volume(path)
    np.testing.assert_allclose(header["space directions"], scan.affine_lps[:3, :3].T, atol=1e-5)
    np.testing.assert_allclose(header["space origin"], scan.origin, atol=1e-4)
    names = {header[f"Segment{i}_LabelValue"]: header[f"Segment{i}_Name"] for i in range(2)}
    assert names == {"1": "soft tissue", "2": "bone"}

    # napari asked before replacing; a second save replaces the segmentation it wrote
    layer.data = np.where(labels == 2, 1, labels).astype(np.uint8)
    save_layers(str(target), [layer], plugin=PLUGIN)
    assert nrrd.read(str(target))[0].max() == 1
