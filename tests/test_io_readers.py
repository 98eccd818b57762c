"""NIfTI, NRRD and MetaImage reading: geometry equals nibabel's and SimpleITK's."""

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from conftest import oblique_affine_ras
from napari_dfcseg.errors import VolumeIOError
from napari_dfcseg.io import read_volume


@pytest.mark.parametrize("name", ["scan.nii", "scan.nii.gz"])
def test_oblique_nifti_affine_and_voxels_equal_nibabel(make_oblique_nifti, name):
    path, data_xyz, affine = make_oblique_nifti(name)
    volume = read_volume(path)
    np.testing.assert_allclose(volume.affine_ras, nib.load(path).affine, atol=1e-9)
    np.testing.assert_allclose(volume.affine_ras, affine, atol=1e-5)
    np.testing.assert_array_equal(volume.array, data_xyz.transpose(2, 1, 0))
    assert volume.array.flags.c_contiguous and volume.source == str(path)


def test_oblique_nifti_geometry_equals_simpleitk(make_oblique_nifti):
    path, _, _ = make_oblique_nifti()
    volume = read_volume(path)
    image = sitk.ReadImage(str(path))
    np.testing.assert_allclose(volume.origin, image.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(volume.spacing[::-1], image.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(volume.direction.ravel(), image.GetDirection(), atol=1e-5)
    np.testing.assert_array_equal(volume.array, sitk.GetArrayFromImage(image))


def test_nifti_scaling_gives_real_world_values(tmp_path):
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_slope_inter(0.5, -10)
    nib.save(img, tmp_path / "scaled.nii")
    volume = read_volume(tmp_path / "scaled.nii")
    np.testing.assert_array_equal(volume.array, (data * 0.5 - 10).transpose(2, 1, 0))


def test_sform_is_used_and_a_disagreeing_qform_warns(make_oblique_nifti):
    qform = oblique_affine_ras(offset=(0.0, 0.0, 0.0))
    path, _, affine = make_oblique_nifti(qform_affine=qform)
    with pytest.warns(UserWarning, match="sform and qform disagree"):
        volume = read_volume(path)
    np.testing.assert_allclose(volume.affine_ras, affine, atol=1e-5)


def test_qform_only_nifti_uses_the_qform(tmp_path):
    affine = oblique_affine_ras()
    img = nib.Nifti1Image(np.zeros((3, 4, 5), np.int16), None)
    img.header.set_qform(affine, code=1)
    img.header.set_sform(None, code=0)
    nib.save(img, tmp_path / "q.nii")
    np.testing.assert_allclose(read_volume(tmp_path / "q.nii").affine_ras, affine, atol=1e-5)


def test_small_4d_nifti_becomes_channels_last(tmp_path):
    data = np.random.default_rng(0).random((4, 5, 6, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, oblique_affine_ras()), tmp_path / "multi.nii.gz")
    volume = read_volume(tmp_path / "multi.nii.gz")
    assert volume.array.shape == (6, 5, 4, 3) and volume.channel_axis == -1
    np.testing.assert_array_equal(volume.array[..., 2], data[..., 2].T)


def test_large_4d_nifti_is_an_error_that_says_what_to_do(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3, 10), np.float32), np.eye(4)), tmp_path / "fmri.nii.gz")
    with pytest.raises(VolumeIOError, match=r"10 volumes.*read one with --volume N"):
        read_volume(tmp_path / "fmri.nii.gz")


def test_sheared_nifti_is_an_error(tmp_path):
    affine = np.eye(4)
    affine[0, 1] = 0.3
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3), np.int16), affine), tmp_path / "shear.nii")
    with pytest.raises(VolumeIOError, match="shear"):
        read_volume(tmp_path / "shear.nii")


def _sitk_oblique(array_zyx, spacing_xyz=(0.8, 1.1, 2.0), origin=(12.5, -30.0, 44.0)):
    image = sitk.GetImageFromArray(array_zyx, isVector=array_zyx.ndim == 4)
    image.SetSpacing(spacing_xyz)
    image.SetOrigin(origin)
    rot = np.linalg.qr(np.array([[1.0, 0.4, 0.1], [-0.3, 1.0, 0.2], [0.1, -0.2, 1.0]]))[0]
    image.SetDirection(rot.ravel().tolist())
    return image


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".mhd"])
def test_itk_formats_keep_simpleitk_geometry_and_values(tmp_path, suffix):
    array = np.random.default_rng(1).integers(-500, 500, (5, 6, 7)).astype(np.int16)
    image = _sitk_oblique(array)
    sitk.WriteImage(image, str(tmp_path / f"scan{suffix}"))
    volume = read_volume(tmp_path / f"scan{suffix}")
    np.testing.assert_array_equal(volume.array, array)
    np.testing.assert_allclose(volume.origin, image.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(volume.spacing[::-1], image.GetSpacing(), atol=1e-9)
    np.testing.assert_allclose(volume.direction.ravel(), image.GetDirection(), atol=1e-9)


def test_rgb_nrrd_reads_as_channels(tmp_path):
    array = np.random.default_rng(2).integers(0, 255, (3, 4, 5, 3)).astype(np.uint8)
    sitk.WriteImage(_sitk_oblique(array), str(tmp_path / "rgb.nrrd"))
    volume = read_volume(tmp_path / "rgb.nrrd")
    assert volume.channel_axis == -1
    np.testing.assert_array_equal(volume.array, array)


def test_vector_image_with_many_components_is_an_error(tmp_path):
    array = np.zeros((3, 4, 5, 12), np.float32)
    sitk.WriteImage(_sitk_oblique(array), str(tmp_path / "dwi.nrrd"))
    with pytest.raises(VolumeIOError, match="12 components"):
        read_volume(tmp_path / "dwi.nrrd")


def test_float64_data_is_returned_as_float32(tmp_path):
    sitk.WriteImage(_sitk_oblique(np.linspace(0, 1, 60).reshape(3, 4, 5)), str(tmp_path / "f.mha"))
    assert read_volume(tmp_path / "f.mha").array.dtype == np.float32
