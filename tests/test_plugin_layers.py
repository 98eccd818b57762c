"""Geometry mapping between Volume and napari layers."""

import numpy as np

from napari_dfcseg.io import Volume
from napari_dfcseg.plugin._layers import (
    display_contrast_limits,
    image_layer_data,
    slice_layer_kwargs,
    volume_of_layer,
    world_affine_of_layer,
)

DIRECTION = np.array([[0.0, -0.6, 0.8], [1.0, 0.0, 0.0], [0.0, 0.8, 0.6]])


def _oblique_image(viewer):
    volume = Volume.from_array(np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6),
                               spacing=(2.0, 0.9, 0.8), origin=(12.0, -7.5, 30.0),
                               direction=DIRECTION, modality="MR")
    data, kwargs, _ = image_layer_data(volume)
    return volume, viewer.add_image(data, **kwargs)


def test_preview_slice_layer_sits_on_its_slice_of_the_image(make_napari_viewer):
    viewer = make_napari_viewer()
    _, image = _oblique_image(viewer)
    preview = viewer.add_labels(np.ones((1, 5, 6), np.uint8), **slice_layer_kwargs(image, 3))
    for j, i in [(0, 0), (4, 5), (2, 3)]:
        np.testing.assert_allclose(preview.data_to_world((0, j, i)), image.data_to_world((3, j, i)))


def test_volume_of_a_layer_without_metadata_comes_from_its_transform(make_napari_viewer):
    viewer = make_napari_viewer()
    volume, image = _oblique_image(viewer)
    image.metadata = {}
    recovered = volume_of_layer(image)
    np.testing.assert_allclose(recovered.affine_lps, volume.affine_lps, atol=1e-9)
    np.testing.assert_allclose(world_affine_of_layer(image)[:3, 3], volume.origin[::-1])


def test_ct_gets_the_soft_tissue_window_and_mr_robust_percentiles():
    rng = np.random.default_rng(0)
    mr = rng.normal(1000, 100, size=(10, 20, 20))
    mr[0, 0, :5] = 1e6  # a few hot voxels must not set the window
    low, high = display_contrast_limits(mr, "MR")
    assert 600 < low < 800 and 1200 < high < 1400
    assert display_contrast_limits(mr, "CT") == (-160.0, 240.0)
