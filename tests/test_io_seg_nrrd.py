"""``write_seg_nrrd``: header fields read back by pynrrd and slicerio, overwrite rules.

(Slicer's own reader is exercised in tests/test_slicer_interop.py.)
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from napari_dfcseg.errors import VolumeIOError
from napari_dfcseg.io import Volume, label_colour
from napari_dfcseg.io.seg_nrrd import TISSUE_TERMINOLOGY, is_seg_nrrd, write_seg_nrrd

nrrd = pytest.importorskip("nrrd")


def _volume(shape=(3, 4, 5)):
    direction = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # a sagittal-like grid
    return Volume.from_array(np.zeros(shape), spacing=(4.0, 1.2, 0.8), origin=(-80.0, -120.0, 130.0),
                             direction=direction)


def test_voxels_and_geometry_round_trip_through_pynrrd(tmp_path):
    volume = _volume()
    labels = np.zeros(volume.shape, np.uint8)
    labels[0, 1, 2], labels[2, 3, 4] = 1, 4
    path = write_seg_nrrd(tmp_path / "seg.seg.nrrd", labels, like=volume)
    data, header = nrrd.read(str(path), index_order="C")
    np.testing.assert_array_equal(data, labels)
    assert header["space"] == "left-posterior-superior"
    np.testing.assert_allclose(header["space directions"], volume.affine_lps[:3, :3].T)
    np.testing.assert_allclose(header["space origin"], volume.origin)
    assert header["Segment1_LabelValue"] == "4" and header["Segment1_Extent"] == "4 4 3 3 2 2"
    assert os.listdir(tmp_path) == ["seg.seg.nrrd"]


def test_slicerio_reads_names_colours_and_terminology(tmp_path):
    slicerio = pytest.importorskip("slicerio")
    import slicerio.segmentation
    volume = _volume()
    labels = np.zeros(volume.shape, np.uint16)
    labels[1, 1, 1], labels[2, 2, 2] = 3, 300
    path = write_seg_nrrd(tmp_path / "seg.seg.nrrd", labels, like=volume, names={300: 'bone "cortical"'})
    seg = slicerio.read_segmentation(str(path))
    by_label = {s["labelValue"]: s for s in seg["segments"]}
    assert sorted(by_label) == [3, 300]
    assert by_label[3]["name"] == "Label 3" and by_label[300]["name"] == "bone cortical"
    np.testing.assert_allclose(np.array(by_label[300]["color"]) * 255, label_colour(300), atol=0.01)
    assert by_label[3]["terminology"]["type"] == ["SCT", "85756007", "Tissue"]
    assert slicerio.segmentation.terminology_entry_to_string(by_label[3]["terminology"]) == TISSUE_TERMINOLOGY
    np.testing.assert_allclose(seg["ijkToLPS"], volume.affine_lps, atol=1e-9)


def test_existing_files_are_replaced_only_when_they_are_segmentations_and_overwrite_is_given(tmp_path):
    volume = _volume()
    labels = np.ones(volume.shape, np.uint8)
    path = write_seg_nrrd(tmp_path / "seg.seg.nrrd", labels, like=volume)
    assert is_seg_nrrd(path)
    with pytest.raises(VolumeIOError, match="exists"):
        write_seg_nrrd(path, labels * 2, like=volume)
    write_seg_nrrd(path, labels * 2, like=volume, overwrite=True)
    assert nrrd.read(str(path))[0].max() == 2

    plain = tmp_path / "image.seg.nrrd"
    nrrd.write(str(plain), np.zeros((2, 2, 2), np.int16))
    assert not is_seg_nrrd(plain)
    with pytest.raises(VolumeIOError, match="not a Slicer segmentation"):
        write_seg_nrrd(plain, labels, like=volume, overwrite=True)
    assert nrrd.read(str(plain))[0].max() == 0


@pytest.mark.parametrize("name, match", [("seg.nrrd", "written as .seg.nrrd"), ("missing/seg.seg.nrrd", "does not exist")])
def test_bad_paths_are_refused(tmp_path, name, match):
    volume = _volume()
    with pytest.raises(VolumeIOError, match=match):
        write_seg_nrrd(tmp_path / name, np.zeros(volume.shape, np.uint8), like=volume)
    assert os.listdir(tmp_path) == []


def test_the_scan_itself_is_never_overwritten(tmp_path):
    scan = tmp_path / "scan.seg.nrrd"
    scan.write_bytes(b"not touched")
    volume = Volume.from_array(np.zeros((2, 2, 2)), source=str(scan))
    with pytest.raises(VolumeIOError, match="is the scan"):
        write_seg_nrrd(scan, np.zeros((2, 2, 2), np.uint8), like=volume, overwrite=True)
    assert scan.read_bytes() == b"not touched"


def test_no_patient_data_reaches_the_file_from_a_dicom_input(tmp_path, make_dicom_series):
    import gzip

    from napari_dfcseg.io import read_volume

    series = make_dicom_series(shape=(3, 6, 7))
    volume = read_volume(series.folder)
    path = write_seg_nrrd(tmp_path / "seg.seg.nrrd", np.ones(volume.shape, np.uint8), like=volume)
    raw = path.read_bytes()
    header, _, body = raw.partition(b"\n\n")
    payload = header + gzip.decompress(body)
    for secret in (series.patient_name.encode(), b"SENTINEL-ID-123", b"19700101", str(series.folder).encode()):
        assert secret not in payload
