"""DICOM reading: geometry against dcm2niix, series choice, compressed files, broken series."""

import os
import shutil
import subprocess
import sys
import warnings

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from conftest import rotation_matrix, write_dicom_series
from napari_dfcseg.errors import VolumeIOError
from napari_dfcseg.io import list_series, read_volume


def _testdata(name, tmp_path):
    """A private copy of one of pydicom's bundled files (its folder holds many series)."""
    folder = tmp_path / name.replace(".", "_")
    folder.mkdir()
    return shutil.copy(get_testdata_file(name, download=False), folder / name)


# the PyPI wheel (pip install dcm2niix) puts the program beside the interpreter
DCM2NIIX = shutil.which("dcm2niix") or shutil.which("dcm2niix", path=os.path.dirname(sys.executable))


def _dcm2niix(folder, out_dir):
    """Convert ``folder`` with dcm2niix; return the nibabel image."""
    out_dir.mkdir()
    subprocess.run(
        [DCM2NIIX, "-z", "n", "-b", "n", "-f", "converted", "-o", str(out_dir), str(folder)],
        check=True,
        capture_output=True,
    )
    return nib.load(out_dir / "converted.nii")


@pytest.mark.skipif(DCM2NIIX is None, reason="needs the dcm2niix program (pip install dcm2niix)")
def test_oblique_ct_series_matches_dcm2niix_geometry_and_hounsfield_values(make_dicom_series, tmp_path):
    series = make_dicom_series(shape=(6, 10, 12), spacing=(2.5, 0.7, 0.7), slope=0.5, intercept=-1024)
    volume = read_volume(series.folder)
    reference = _dcm2niix(series.folder, tmp_path / "dcm2niix")

    # dcm2niix may flip/permute voxel axes: the map between the two voxel
    # grids must be a signed permutation with an integer shift
    voxel_map = np.linalg.inv(volume.affine_ras) @ reference.affine
    permutation = np.round(voxel_map[:3, :3])
    assert sorted(np.abs(permutation).sum(axis=0)) == [1, 1, 1]
    np.testing.assert_allclose(voxel_map[:3, :3], permutation, atol=1e-4)
    shift = np.round(voxel_map[:3, 3])
    # affines agree within 1e-3 mm at every voxel of the grid
    corners = np.array(np.meshgrid(*[[0, n - 1] for n in reference.shape[:3]], [1])).reshape(4, -1)
    mapped = np.vstack([permutation @ corners[:3] + shift[:, None], np.ones(corners.shape[1])])
    np.testing.assert_allclose(volume.affine_ras @ mapped, reference.affine @ corners, atol=1e-3)

    # voxel values: resample dcm2niix's array onto our (i, j, k) grid by the index map
    ref_data = reference.get_fdata()
    ours_ijk = np.indices(volume.shape[::-1]).reshape(3, -1)
    ref_ijk = np.linalg.inv(permutation) @ (ours_ijk - shift[:, None])
    ref_ijk = np.round(ref_ijk).astype(int)
    ours_values = volume.array.transpose(2, 1, 0).reshape(-1)
    np.testing.assert_array_equal(ours_values, ref_data[tuple(ref_ijk)])
    np.testing.assert_array_equal(volume.array, series.hu)  # HU = stored * 0.5 - 1024
    assert volume.modality == "CT" and volume.description == "Synthetic oblique CT"


def test_series_geometry_equals_the_positions_pydicom_wrote(make_dicom_series):
    series = make_dicom_series()
    volume = read_volume(series.folder)
    np.testing.assert_allclose(volume.origin, series.origin, atol=1e-6)
    np.testing.assert_allclose(volume.spacing, series.spacing, atol=1e-5)
    np.testing.assert_allclose(volume.direction, series.direction, atol=1e-7)


def test_one_file_of_a_series_reads_the_whole_series(make_dicom_series):
    series = make_dicom_series()
    volume = read_volume(series.files[3])
    np.testing.assert_array_equal(volume.array, series.hu)


def test_folder_is_searched_recursively(tmp_path):
    series = write_dicom_series(tmp_path / "patient" / "study" / "series1")
    volume = read_volume(tmp_path / "patient")
    np.testing.assert_array_equal(volume.array, series.hu)


def test_series_in_several_subfolders_is_read_in_position_order(tmp_path):
    series = write_dicom_series(tmp_path / "all")
    for index, file in enumerate(series.files):  # split the series over two folders
        target = tmp_path / "split" / ("odd" if index % 2 else "even")
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(file, target / file.name)
    np.testing.assert_array_equal(read_volume(tmp_path / "split").array, series.hu)


def _two_series(tmp_path):
    ct = write_dicom_series(tmp_path / "mixed", description="Head CT", file_prefix="ct")
    mr = write_dicom_series(
        tmp_path / "mixed", shape=(4, 8, 8), modality="MR", description="T1 axial", file_prefix="mr", slope=1, intercept=0
    )
    return tmp_path / "mixed", ct, mr


def test_mixed_series_without_choice_lists_the_series_in_the_error(tmp_path):
    folder, _, _ = _two_series(tmp_path)
    with pytest.raises(VolumeIOError) as err:
        read_volume(folder)
    message = str(err.value)
    assert "\n" not in message and str(folder) in message
    assert '"Head CT" (6 slices)' in message and '"T1 axial" (4 slices)' in message


def test_series_is_chosen_by_uid_or_one_based_number(tmp_path):
    folder, ct, mr = _two_series(tmp_path)
    listed = list_series(folder)
    assert [(s.number, s.modality, s.n_slices) for s in listed] == [(1, "CT", 6), (2, "MR", 4)]
    np.testing.assert_array_equal(read_volume(folder, series=mr.series_uid).array, mr.hu)
    np.testing.assert_array_equal(read_volume(folder, series=1).array, ct.hu)
    np.testing.assert_array_equal(read_volume(folder, series="2").array, mr.hu)
    with pytest.raises(VolumeIOError, match="numbers start at 1"):
        read_volume(folder, series=0)
    with pytest.raises(VolumeIOError, match="no series"):
        read_volume(folder, series="1.2.3.4")


def test_list_series_carries_no_patient_data(tmp_path):
    folder, _, _ = _two_series(tmp_path)
    text = repr(list_series(folder))
    assert "SENTINEL" not in text and "19700101" not in text


def test_missing_slice_is_an_error_naming_the_gap(make_dicom_series, tmp_path):
    series = make_dicom_series(shape=(7, 8, 8))
    series.files[4].unlink()
    with pytest.raises(VolumeIOError, match=r"missing slice.*between slices 4 and 5"):
        read_volume(series.folder)


def test_uneven_spacing_warns_with_the_gaps_and_uses_the_mean_spacing(tmp_path):
    normal = rotation_matrix()[:, 2]
    depths = [0, 2.5, 5, 7.5, 11.0, 13.5]
    origin = np.array([-120.5, 35.25, 410.0])
    series = write_dicom_series(tmp_path / "uneven", positions=[origin + d * normal for d in depths])
    with pytest.warns(UserWarning, match=r"uneven slice spacing.*4-5: 3.5 mm.*mean spacing 2.7 mm"):
        volume = read_volume(series.folder)
    assert volume.spacing[0] == pytest.approx(2.7, abs=1e-6)


def test_mixed_orientations_are_an_error(tmp_path):
    rot = rotation_matrix()
    iops = [np.concatenate([rot[:, 0], rot[:, 1]])] * 5 + [np.array([1.0, 0, 0, 0, 1, 0])]
    series = write_dicom_series(tmp_path / "loc", orientations=iops)
    with pytest.raises(VolumeIOError, match="2 different orientations"):
        read_volume(series.folder)


def test_gantry_tilt_is_an_error_with_the_angle(tmp_path):
    # axial slices stacked along a direction tilted 12 degrees towards y
    tilt = np.deg2rad(12.0)
    step = 2.5 * np.array([0.0, np.sin(tilt), np.cos(tilt)]) / np.cos(tilt)
    positions = [np.array([-100.0, -80.0, 30.0]) + k * step for k in range(5)]
    series = write_dicom_series(tmp_path / "tilt", shape=(5, 8, 8), rotation=np.eye(3), positions=positions)
    with pytest.raises(VolumeIOError, match=r"12.00 degrees.*tilt"):
        read_volume(series.folder)


def test_repeated_positions_are_an_error_naming_the_volume_option(tmp_path):
    origin = np.array([0.0, 0.0, 0.0])
    positions = [origin + [0, 0, 2.5 * (k % 3)] for k in range(6)]
    series = write_dicom_series(tmp_path / "dup", rotation=np.eye(3), positions=positions)
    with pytest.raises(VolumeIOError, match=r"2 volumes at the same 3 slice positions.*--volume N"):
        read_volume(series.folder)


def test_positions_repeated_unevenly_are_an_error(tmp_path):
    positions = [np.array([0.0, 0.0, 2.5 * k]) for k in (0, 0, 1, 2, 2, 2)]
    series = write_dicom_series(tmp_path / "dup", rotation=np.eye(3), positions=positions)
    with pytest.raises(VolumeIOError, match="hold 1 to 3 images each"):
        read_volume(series.folder)


def test_per_slice_rescale_is_applied_to_every_slice(make_dicom_series):
    series = make_dicom_series(slope=1, intercept=-1024)
    ds = pydicom.dcmread(series.files[0])  # GDCM takes the output type from the first slice
    ds.RescaleSlope = "1"
    ds.save_as(series.files[0])
    ds = pydicom.dcmread(series.files[2])
    ds.RescaleSlope = "0.25"
    ds.save_as(series.files[2])
    expected = series.hu.copy()
    expected[2] = series.stored[2] * 0.25 - 1024
    np.testing.assert_array_equal(read_volume(series.folder).array, expected)


# pydicom's bundled files, each the same 64x64 MR slice stored compressed
@pytest.mark.parametrize(
    "name",
    ["MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "MR_small_bigendian.dcm"],
)
def test_compressed_mr_reads_identical_to_uncompressed(name, tmp_path):
    reference = read_volume(_testdata("MR_small.dcm", tmp_path))
    volume = read_volume(_testdata(name, tmp_path))
    assert volume.shape == (1, 64, 64) and volume.modality == "MR"
    np.testing.assert_array_equal(volume.array, reference.array)
    np.testing.assert_allclose(volume.affine_ras, reference.affine_ras)


@pytest.mark.parametrize(
    "name, shape",
    [
        ("SC_rgb_jpeg_dcmtk.dcm", (1, 100, 100, 3)),  # JPEG baseline
        ("SC_rgb_rle.dcm", (1, 100, 100, 3)),
        ("SC_rgb_rle_2frame.dcm", (2, 100, 100, 3)),
        ("JPEG2000.dcm", (1, 1024, 256)),
        ("JPEGLSNearLossless_16.dcm", (1, 50, 10)),
    ],
)
def test_compressed_and_rgb_files_read_with_channels_last(name, shape, tmp_path):
    volume = read_volume(_testdata(name, tmp_path))
    assert volume.array.shape == shape
    assert volume.channel_axis == (-1 if len(shape) == 4 else None)
    assert volume.array.std() > 0  # decoded pixels, not an empty buffer


def test_rgb_jpeg_decodes_to_the_same_pixels_as_rle(tmp_path):
    # SC_rgb_rle and SC_rgb_jpeg_dcmtk hold the same test pattern: red,
    # green, blue, black, white... bands; lossy JPEG stays within a few levels
    rle = read_volume(_testdata("SC_rgb_rle.dcm", tmp_path)).array.astype(int)
    jpeg = read_volume(_testdata("SC_rgb_jpeg_dcmtk.dcm", tmp_path)).array.astype(int)
    assert np.median(np.abs(rle - jpeg)) <= 2


def test_ct_small_is_in_hounsfield_units(tmp_path):
    path = _testdata("CT_small.dcm", tmp_path)
    ds = pydicom.dcmread(path)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    volume = read_volume(path)
    np.testing.assert_array_equal(volume.array[0], expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(volume.origin, [float(v) for v in ds.ImagePositionPatient])
