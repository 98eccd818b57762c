"""write_labels: geometry read back by nibabel and SimpleITK, clean header, colour tables, refusals."""

import gzip
import os

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from napari_dfcseg.errors import VolumeIOError
from napari_dfcseg.io import Volume, label_colour, read_volume, write_labels


def _labels_for(volume, n_labels=3):
    return (np.arange(np.prod(volume.shape)).reshape(volume.shape) % (n_labels + 1)).astype(np.int64)


@pytest.mark.parametrize("name", ["seg.nii.gz", "seg.nii"])
def test_labels_of_oblique_nifti_open_with_the_source_geometry(make_oblique_nifti, tmp_path, name):
    path, _, affine = make_oblique_nifti()
    volume = read_volume(path)
    labels = _labels_for(volume)
    written = write_labels(tmp_path / name, labels, like=volume)

    img = nib.load(written[0])
    np.testing.assert_allclose(img.affine, affine, atol=1e-5)
    np.testing.assert_allclose(img.header.get_qform(), affine, atol=1e-5)
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), labels.transpose(2, 1, 0))

    source, saved = sitk.ReadImage(str(path)), sitk.ReadImage(str(written[0]))
    np.testing.assert_allclose(saved.GetOrigin(), source.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(saved.GetSpacing(), source.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(saved.GetDirection(), source.GetDirection(), atol=1e-5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(saved), labels)


def test_labels_of_dicom_series_open_aligned_in_simpleitk(make_dicom_series, tmp_path):
    series = make_dicom_series()
    volume = read_volume(series.folder)
    written = write_labels(tmp_path / "seg.nii.gz", _labels_for(volume), like=volume)
    saved = sitk.ReadImage(str(written[0]))
    np.testing.assert_allclose(saved.GetOrigin(), series.origin, atol=1e-4)
    np.testing.assert_allclose(saved.GetSpacing(), series.spacing[::-1], atol=1e-5)
    np.testing.assert_allclose(np.reshape(saved.GetDirection(), (3, 3)), series.direction, atol=1e-5)


def test_header_is_fresh_label_header(make_oblique_nifti, tmp_path):
    path, _, _ = make_oblique_nifti()
    source = nib.load(path)
    source.header["descrip"] = b"scanner secret"
    source.header.set_slope_inter(2.0, 7.0)
    nib.save(source, path)
    volume = read_volume(path)
    header = nib.load(write_labels(tmp_path / "seg.nii.gz", _labels_for(volume), like=volume)[0]).header
    assert header["intent_code"] == 1002
    assert header.get_xyzt_units()[0] == "mm"
    assert header.get_value_label("sform_code") == "scanner" and header.get_value_label("qform_code") == "scanner"
    assert header["descrip"] == b"" and header["aux_file"] == b"" and header["db_name"] == b""
    assert header.get_data_dtype() == np.uint8
    assert header.get_slope_inter() == (None, None)  # no scaling of labels
    assert len(header.extensions) == 0


def test_more_than_255_labels_are_saved_as_uint16(tmp_path):
    volume = Volume.from_array(np.zeros((2, 20, 20), np.int16))
    labels = np.arange(800).reshape(2, 20, 20)
    img = nib.load(write_labels(tmp_path / "many.nii.gz", labels, like=volume)[0])
    assert img.get_data_dtype() == np.uint16
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), labels.T)


def test_patient_name_never_reaches_the_written_files(make_dicom_series, tmp_path):
    series = make_dicom_series(patient_name="Zzyzx^Quintessa^Marguerite")
    volume = read_volume(series.folder)
    written = write_labels(tmp_path / "seg.nii.gz", _labels_for(volume), like=volume, names={1: "liver"})
    payloads = [gzip.decompress(written[0].read_bytes()), written[0].read_bytes()]
    payloads += [p.read_bytes() for p in written[1:]]
    for payload in payloads:
        for secret in (b"Zzyzx", b"Quintessa", b"SENTINEL-ID-123", b"19700101", str(series.folder).encode()):
            assert secret not in payload
    assert "Zzyzx" not in repr(volume) and "Zzyzx" not in str(volume.to_metadata())


def test_label_tables_list_names_and_the_colours_of_label_colour(tmp_path):
    volume = Volume.from_array(np.zeros((2, 3, 4)))
    labels = np.zeros((2, 3, 4), np.uint8)
    labels[0, 0, :3] = [1, 2, 9]
    nifti, itksnap, slicer = write_labels(tmp_path / "seg.nii.gz", labels, like=volume, names={2: "white matter", 5: "CSF"})
    assert (itksnap.name, slicer.name) == ("seg.labels.txt", "seg.ctbl")
    rows = [line.split(maxsplit=7) for line in itksnap.read_text().splitlines() if not line.startswith("#")]
    assert [int(r[0]) for r in rows] == [0, 1, 2, 5, 9]
    assert rows[2][7] == '"white matter"' and rows[4][7] == '"Label 9"'
    for row in rows:
        assert tuple(int(v) for v in row[1:4]) == label_colour(int(row[0]))
    slicer_rows = [line.split() for line in slicer.read_text().splitlines() if not line.startswith("#")]
    assert slicer_rows[2] == ["2", "white_matter", *map(str, label_colour(2)), "255"]


def test_label_colours_are_distinct_and_background_is_black():
    colours = [label_colour(i) for i in range(64)]
    assert colours[0] == (0, 0, 0) and colours[1] == (255, 0, 0)
    assert len(set(colours)) == 64
    assert all(0 <= c <= 255 for colour in colours for c in colour)


def test_existing_label_file_is_replaced_atomically(tmp_path):
    volume = Volume.from_array(np.zeros((2, 3, 4)))
    first = write_labels(tmp_path / "seg.nii.gz", np.ones((2, 3, 4), int), like=volume)
    write_labels(tmp_path / "seg.nii.gz", np.full((2, 3, 4), 2), like=volume)
    assert np.asanyarray(nib.load(first[0]).dataobj).max() == 2
    assert sorted(os.listdir(tmp_path)) == ["seg.ctbl", "seg.labels.txt", "seg.nii.gz"]  # no temp files left


@pytest.mark.parametrize(
    "labels, match",
    [
        (np.zeros((2, 3, 5), int), "shape"),
        (np.full((2, 3, 4), -1), ">= 0"),
        (np.full((2, 3, 4), 0.5), "whole numbers"),
        (np.full((2, 3, 4), 70000), "<= 65535"),
    ],
)
def test_bad_label_arrays_are_refused_and_nothing_is_written(tmp_path, labels, match):
    volume = Volume.from_array(np.zeros((2, 3, 4)))
    with pytest.raises(VolumeIOError, match=match):
        write_labels(tmp_path / "seg.nii.gz", labels, like=volume)
    assert os.listdir(tmp_path) == []


def test_whole_number_float_labels_are_accepted(tmp_path):
    volume = Volume.from_array(np.zeros((2, 3, 4)))
    written = write_labels(tmp_path / "seg.nii", np.full((2, 3, 4), 3.0), like=volume)
    assert np.asanyarray(nib.load(written[0]).dataobj).max() == 3


def test_writing_over_the_source_scan_is_refused(make_oblique_nifti, tmp_path):
    path, _, _ = make_oblique_nifti("scan.nii.gz")
    before = path.read_bytes()
    volume = read_volume(path)
    os.symlink(path, tmp_path / "link.nii.gz")
    for target in (path, tmp_path / "link.nii.gz", str(path)):
        with pytest.raises(VolumeIOError, match="refusing to overwrite"):
            write_labels(target, _labels_for(volume), like=volume)
    assert path.read_bytes() == before


def test_writing_over_another_scan_is_refused(make_oblique_nifti, tmp_path):
    other, _, _ = make_oblique_nifti("other_patient.nii.gz")
    volume = Volume.from_array(np.zeros((5, 7, 9)))
    with pytest.raises(VolumeIOError, match="not a label volume"):
        write_labels(other, np.zeros((5, 7, 9), int), like=volume)


@pytest.mark.parametrize("name", ["seg.nrrd", "missing_folder/seg.nii.gz"])
def test_unsupported_output_paths_are_refused(tmp_path, name):
    volume = Volume.from_array(np.zeros((2, 3, 4)))
    with pytest.raises(VolumeIOError):
        write_labels(tmp_path / name, np.zeros((2, 3, 4), int), like=volume)
    assert os.listdir(tmp_path) == []
