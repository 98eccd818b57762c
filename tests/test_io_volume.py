"""Volume geometry: affines, napari transform and metadata, checked against SimpleITK."""

import json
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import rotation_matrix
from napari_dfcseg.errors import InvalidInputError
from napari_dfcseg.io import Volume


def _oblique_volume(shape=(5, 7, 9), reflect=False):
    direction = rotation_matrix((20.0, -35.0, 50.0))
    if reflect:  # a left-handed voxel grid, as many NIfTI files have
        direction = direction @ np.diag([1.0, -1.0, 1.0])
    return Volume.from_array(
        np.arange(np.prod(shape), dtype=np.int16).reshape(shape),
        spacing=(2.5, 0.7, 0.9),
        origin=(-120.5, 35.25, 410.0),
        direction=direction,
    )


def _sitk_image(volume):
    image = sitk.GetImageFromArray(volume.array)
    image.SetSpacing(volume.spacing[::-1])
    image.SetOrigin(volume.origin)
    image.SetDirection(volume.direction.ravel().tolist())
    return image


def _corners(shape):
    return np.array(np.meshgrid(*[[0, n - 1] for n in shape], indexing="ij")).reshape(3, -1).T


def _napari_world(transform, index_zyx):
    """What napari computes: rotate @ (scale * index) + translate."""
    rotate = transform.get("rotate", np.eye(3))
    return rotate @ (np.asarray(transform["scale"]) * index_zyx) + np.asarray(transform["translate"])


@pytest.mark.parametrize("reflect", [False, True])
def test_napari_transform_maps_corner_voxels_where_simpleitk_does(reflect):
    volume = _oblique_volume(reflect=reflect)
    image = _sitk_image(volume)
    transform = volume.napari_transform()
    for index_zyx in _corners(volume.shape):
        expected_lps = image.TransformIndexToPhysicalPoint([int(i) for i in index_zyx[::-1]])
        world_zyx = _napari_world(transform, index_zyx)
        np.testing.assert_allclose(world_zyx, expected_lps[::-1], atol=1e-9)


def test_affines_map_corner_voxels_where_simpleitk_does():
    volume = _oblique_volume()
    image = _sitk_image(volume)
    for index_zyx in _corners(volume.shape):
        ijk1 = np.append(index_zyx[::-1], 1.0)
        lps = np.array(image.TransformIndexToPhysicalPoint([int(i) for i in index_zyx[::-1]]))
        np.testing.assert_allclose((volume.affine_lps @ ijk1)[:3], lps, atol=1e-9)
        np.testing.assert_allclose((volume.affine_ras @ ijk1)[:3], lps * [-1, -1, 1], atol=1e-9)


def test_axis_aligned_volume_gives_napari_only_scale_and_translate():
    volume = Volume.from_array(np.zeros((2, 3, 4)), spacing=(3, 2, 1), origin=(10, 20, 30))
    assert volume.napari_transform() == {"scale": (3.0, 2.0, 1.0), "translate": (30.0, 20.0, 10.0)}


@pytest.mark.parametrize("reflect", [False, True])
def test_from_napari_affine_inverts_napari_transform(reflect):
    volume = _oblique_volume(reflect=reflect)
    transform = volume.napari_transform()
    affine = np.eye(4)
    affine[:3, :3] = transform["rotate"] @ np.diag(transform["scale"])
    affine[:3, 3] = transform["translate"]
    back = Volume.from_napari_affine(volume.array, affine)
    np.testing.assert_allclose(back.spacing, volume.spacing, atol=1e-12)
    np.testing.assert_allclose(back.origin, volume.origin, atol=1e-12)
    np.testing.assert_allclose(back.direction, volume.direction, atol=1e-12)


def test_metadata_is_json_and_round_trips_geometry():
    volume = _oblique_volume()
    meta = json.loads(json.dumps(volume.to_metadata()))
    back = Volume.from_metadata(meta, volume.array)
    np.testing.assert_allclose(back.affine_ras, volume.affine_ras, atol=1e-12)
    assert "array" not in meta and back.source is None


def test_channel_axis_names_the_last_axis_of_multichannel_arrays():
    assert Volume.from_array(np.zeros((2, 3, 4))).channel_axis is None
    rgb = Volume.from_array(np.zeros((2, 3, 4, 3), np.uint8))
    assert rgb.channel_axis == -1 and rgb.shape == (2, 3, 4)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"array": np.zeros((3, 4))},
        {"array": np.zeros((0, 3, 4))},
        {"array": np.zeros((2, 3, 4)), "spacing": (1, 0, 1)},
        {"array": np.zeros((2, 3, 4)), "direction": np.zeros((3, 3))},
        {"array": np.zeros((2, 3, 4)), "origin": (0, np.nan, 0)},
    ],
)
def test_invalid_volume_raises_invalid_input_error(kwargs):
    with pytest.raises(InvalidInputError):
        Volume.from_array(**kwargs)


def test_io_package_imports_neither_torch_nor_napari_nor_qt():
    import subprocess

    code = (
        "import sys, napari_dfcseg.io; "
        "bad = [m for m in ('torch', 'napari', 'qtpy', 'PyQt5') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
