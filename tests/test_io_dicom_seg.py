"""``write_dicom_seg``: DICOM SEG objects on a real MR series and a synthetic oblique CT.

Checked with pydicom on the written file (SOP class, the references to every
source instance, patient/study copied, each frame's position and pixels on
its source slice) and, for BINARY, with ``dciodvfy`` (dicom3tools) when it is
installed.  dicom3tools 2022 predates the Label Map Segmentation IOD, so
LABELMAP objects are checked with pydicom only.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("highdicom")

from napari_dfcseg.errors import VolumeIOError  # noqa: E402
from napari_dfcseg.io import Volume, read_volume  # noqa: E402
from napari_dfcseg.io.dicom_seg import (LABEL_MAP_SEGMENTATION_STORAGE, SEGMENTATION_STORAGE,  # noqa: E402
                                        dicom_series_files, write_dicom_seg)

@pytest.fixture
def head(real_data):
    """The real sagittal head MR series (conftest's ``real_data``; skips when absent)."""
    folder = real_data / "mr-head-sagittal-dicom"
    if not folder.is_dir():
        pytest.skip(f"real DICOM series not found at {folder}")
    return folder


def _labels_for(volume):
    """Three intensity classes, with labels 2 and 7 (non-consecutive) and empty slices."""
    a = np.asarray(volume.array, float)
    labels = np.zeros(volume.shape, np.uint8)
    labels[a > np.percentile(a, 50)] = 2
    labels[a > np.percentile(a, 90)] = 7
    labels[0] = 0  # an empty slice: no frame for it
    return labels


def _sources(folder):
    return {str(ds.SOPInstanceUID): ds for ds in
            (pydicom.dcmread(str(f), stop_before_pixels=True) for f in dicom_series_files(folder))}


def _slice_of(volume, position):
    ijk = np.linalg.inv(volume.affine_lps) @ np.append(np.asarray(position, float), 1.0)
    return int(round(ijk[2]))


def _check_binary_seg(path, volume, labels, folder, names):
    seg = pydicom.dcmread(str(path))
    sources = _sources(folder)
    first = next(iter(sources.values()))
    assert seg.SOPClassUID == SEGMENTATION_STORAGE and seg.Modality == "SEG"
    assert seg.SegmentationType == "BINARY"
    # the patient/study modules are the source's (the documented exception to "no PHI")
    for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "FrameOfReferenceUID"):
        assert getattr(seg, keyword) == getattr(first, keyword), keyword
    assert seg.SeriesInstanceUID != first.SeriesInstanceUID
    (referenced,) = seg.ReferencedSeriesSequence
    assert referenced.SeriesInstanceUID == first.SeriesInstanceUID
    assert {item.ReferencedSOPInstanceUID for item in referenced.ReferencedInstanceSequence} == set(sources)

    segments = {int(s.SegmentNumber): s for s in seg.SegmentSequence}
    present = [int(v) for v in np.unique(labels) if v > 0]
    assert sorted(segments) == list(range(1, len(present) + 1))
    label_of = dict(zip(range(1, len(present) + 1), present))
    for number, segment in segments.items():
        assert segment.SegmentLabel == names.get(label_of[number], f"Label {label_of[number]}")
        assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "85756007"  # SCT Tissue
        assert segment.SegmentAlgorithmType == "AUTOMATIC"

    pixels = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    assert (seg.Rows, seg.Columns) == volume.shape[1:]
    seen = set()
    for frame, item in zip(pixels, seg.PerFrameFunctionalGroupsSequence):
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        source_uid = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        source = sources[source_uid]
        position = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        np.testing.assert_allclose(position, [float(v) for v in source.ImagePositionPatient], atol=1e-4)
        k = _slice_of(volume, position)
        np.testing.assert_array_equal(frame.astype(bool), labels[k] == label_of[number])
        seen.add((label_of[number], k))
    expected = {(label, k) for label in present for k in range(volume.shape[0]) if (labels[k] == label).any()}
    assert seen == expected  # a frame for every non-empty (segment, slice), none for empty ones
    return seg


def _check_with_highdicom_reader(path, volume, labels, folder):
    """highdicom's own reader rebuilds the renumbered label volume from the SEG, slice by source slice."""
    import highdicom as hd

    sources = _sources(folder)
    by_slice = sorted(sources, key=lambda uid: _slice_of(volume, [float(v) for v in sources[uid].ImagePositionPatient]))
    seg = hd.seg.segread(str(path))
    rebuilt = seg.get_pixels_by_source_instance(by_slice, combine_segments=True,
                                                assert_missing_frames_are_empty=True)
    present = [int(v) for v in np.unique(labels) if v > 0]
    lookup = np.zeros(int(labels.max()) + 1, int)
    lookup[present] = np.arange(1, len(present) + 1)
    np.testing.assert_array_equal(rebuilt, lookup[labels])


def _dciodvfy_errors(path):
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (apt install dicom3tools) not installed")
    done = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    return [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("Error")]


def test_binary_seg_of_the_real_head_series_references_and_lines_up_with_every_slice(tmp_path, head):
    volume = read_volume(head)
    labels = _labels_for(volume)
    names = {7: "bright tissue"}
    path = write_dicom_seg(tmp_path / "seg.dcm", labels, like=volume, source=head, names=names)
    _check_binary_seg(path, volume, labels, head, names)
    _check_with_highdicom_reader(path, volume, labels, head)
    assert _dciodvfy_errors(path) == []


def test_binary_seg_of_an_oblique_series(tmp_path, make_dicom_series):
    series = make_dicom_series(shape=(5, 9, 11))
    volume = read_volume(series.folder)
    labels = _labels_for(volume)
    path = write_dicom_seg(tmp_path / "seg.dcm", labels, like=volume, source=series.folder)
    seg = _check_binary_seg(path, volume, labels, series.folder, {})
    assert str(seg.PatientName) == series.patient_name
    assert _dciodvfy_errors(path) == []


def test_labelmap_seg_holds_the_renumbered_labels_on_each_source_slice(tmp_path, head):
    volume = read_volume(head)
    labels = _labels_for(volume)
    path = write_dicom_seg(tmp_path / "seg.dcm", labels, like=volume, source=head, segmentation_type="labelmap")
    seg = pydicom.dcmread(str(path))
    assert seg.SOPClassUID == LABEL_MAP_SEGMENTATION_STORAGE and seg.SegmentationType == "LABELMAP"
    renumber = {0: 0, 2: 1, 7: 2}
    pixels = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    ks = []
    for frame, item in zip(pixels, seg.PerFrameFunctionalGroupsSequence):
        k = _slice_of(volume, [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
        np.testing.assert_array_equal(frame, np.vectorize(renumber.get)(labels[k]))
        ks.append(k)
    assert sorted(ks) == [k for k in range(volume.shape[0]) if labels[k].any()]
    _check_with_highdicom_reader(path, volume, labels, head)


def test_refusals_non_dicom_input_other_geometry_existing_files(tmp_path, head, make_oblique_nifti):
    nifti, _, _ = make_oblique_nifti()
    scan = read_volume(nifti)
    with pytest.raises(VolumeIOError, match="not a DICOM series"):
        write_dicom_seg(tmp_path / "a.dcm", np.ones(scan.shape, np.uint8), like=scan, source=nifti)

    volume = read_volume(head)
    shifted = Volume.from_array(volume.array, spacing=volume.spacing, direction=volume.direction,
                                origin=np.add(volume.origin, (0.0, 0.0, 0.5)))
    with pytest.raises(VolumeIOError, match="not a slice of the volume"):
        write_dicom_seg(tmp_path / "b.dcm", _labels_for(volume), like=shifted, source=head)
    with pytest.raises(VolumeIOError, match="no labels"):
        write_dicom_seg(tmp_path / "c.dcm", np.zeros(volume.shape, np.uint8), like=volume, source=head)
    assert os.listdir(tmp_path) == ["scan.nii.gz"]

    other = tmp_path / "other.dcm"
    other.write_bytes(b"not a SEG")
    for overwrite in (False, True):
        with pytest.raises(VolumeIOError, match="refusing to overwrite"):
            write_dicom_seg(other, _labels_for(volume), like=volume, source=head, overwrite=overwrite)
    assert other.read_bytes() == b"not a SEG"
