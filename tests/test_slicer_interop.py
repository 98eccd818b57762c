"""Our label files through 3D Slicer's own readers (slicer-core: Slicer's MRML,
storage nodes and segmentations logic, without the application).

* ``write_labels`` NIfTI -> ``vtkMRMLVolumeArchetypeStorageNode`` (Slicer's
  volume reader) -> ``ImportLabelmapToSegmentationNode``: every label voxel
  sits at the same RAS point as in the source scan, compared in world
  coordinates (Slicer may store a left-handed grid with a flipped k axis, so
  the raw arrays need not match).
* ``write_seg_nrrd`` -> ``vtkMRMLSegmentationStorageNode``: segment names,
  colours, label values, terminology and voxel positions.
* The ITK-SNAP ``.labels.txt`` lines match the line format of Slicer's
  ITK-SNAP importer; the ``.ctbl`` loads as a Slicer colour table.

Skipped when slicer-core (``pip install -e .[slicer-test]``) is not installed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer_core", reason="slicer-core not installed (pip install -e .[slicer-test])")
import slicer  # noqa: E402  (slicer-core's package; the repo's slicer/ folder has no __init__.py)
import vtk  # noqa: E402
from vtk.util import numpy_support  # noqa: E402

from napari_dfcseg.io import Volume, label_colour, read_volume, write_labels  # noqa: E402
from napari_dfcseg.io.seg_nrrd import TISSUE_TERMINOLOGY, write_seg_nrrd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "slicer" / "DFCSegmentation"))
from DFCSegmentationLib import logic_core  # noqa: E402

def _matrix(vtk_matrix):
    return np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _ras_points_by_label(volume, labels):
    """{label: (n, 3) RAS centres of its voxels} from our Volume geometry (sorted rows)."""
    points = {}
    for label in np.unique(labels):
        if label == 0:
            continue
        k, j, i = np.nonzero(labels == label)
        ijk1 = np.stack([i, j, k, np.ones_like(i)]).astype(float)
        points[int(label)] = _sorted_rows((volume.affine_ras @ ijk1)[:3].T)
    return points


def _sorted_rows(points):
    return points[np.lexsort(np.round(points, 3).T[::-1])]


def _segment_ras_points(segmentation_node):
    """{label value: (n, 3) RAS centres} of each segment's binary labelmap, via its image-to-world matrix."""
    segmentation = segmentation_node.GetSegmentation()
    out = {}
    for n in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(n)
        segment = segmentation.GetSegment(segment_id)
        image = slicer.vtkOrientedImageData()
        segmentation_node.GetBinaryLabelmapRepresentation(segment_id, image)
        extent = image.GetExtent()
        dims = [extent[1] - extent[0] + 1, extent[3] - extent[2] + 1, extent[5] - extent[4] + 1]
        if min(dims) <= 0:
            out[segment.GetLabelValue()] = np.zeros((0, 3))
            continue
        voxels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[::-1])
        k, j, i = np.nonzero(voxels)
        ijk1 = np.stack([i + extent[0], j + extent[2], k + extent[4], np.ones_like(i)]).astype(float)
        to_world = vtk.vtkMatrix4x4()
        image.GetImageToWorldMatrix(to_world)
        out[segment.GetLabelValue()] = _sorted_rows((_matrix(to_world) @ ijk1)[:3].T)
    return out


def _read_with_slicer(path, storage, node):
    """``path`` read into a new ``node`` by a ``storage`` node, as Slicer's Add Data does;
    returns ``(scene, node)``."""
    scene = slicer.vtkMRMLScene()
    storage.SetFileName(str(path))
    scene.AddNode(storage)
    scene.AddNode(node)
    assert storage.ReadData(node) == 1, f"Slicer could not read {path}"
    return scene, node


def _load_label_volume_as_segmentation(path):
    scene, labelmap = _read_with_slicer(path, slicer.vtkMRMLVolumeArchetypeStorageNode(),
                                        slicer.vtkMRMLLabelMapVolumeNode())
    segmentation = slicer.vtkMRMLSegmentationNode()
    scene.AddNode(segmentation)
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    assert logic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    return scene, labelmap, segmentation


def _synthetic_labels(shape, seed=0):
    """A few blocks plus single voxels at the corners (catch any axis flip)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint8)
    nz, ny, nx = shape
    labels[: nz // 2, : ny // 2, : nx // 3] = 1
    labels[nz // 2:, ny // 2:, nx // 2:] = 2
    labels[0, -1, -1] = 3
    labels[-1, 0, 0] = 7
    labels[rng.integers(0, nz), rng.integers(0, ny), rng.integers(0, nx)] = 9
    return labels


def _left_handed_volume():
    """Oblique grid whose direction matrix is a reflection (det < 0), non-zero origin."""
    angle = np.deg2rad(20.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    direction = rotation @ np.diag([1.0, 1.0, -1.0])
    assert np.linalg.det(direction) < 0
    return Volume.from_array(np.zeros((5, 7, 9), np.int16), spacing=(2.5, 0.9, 0.7),
                             origin=(-31.5, 12.25, 80.0), direction=direction)


def _scan_cases(real):
    cases = [("left-handed oblique", _left_handed_volume())]
    for name in ("ct-abdomen-3mm/ct.nii.gz", "mr-head-sagittal-dicom"):
        path = real / name
        if path.exists():
            cases.append((name, read_volume(path)))
    return cases


def test_write_labels_nifti_lands_on_the_same_ras_points_in_slicer(tmp_path, real_data):
    cases = _scan_cases(real_data)
    assert len(cases) == 3, "expected the real CT and the real DICOM head series"
    for n, (name, volume) in enumerate(cases):
        labels = _synthetic_labels(volume.shape, seed=n)
        nifti, _, _ = write_labels(tmp_path / f"labels{n}.nii.gz", labels, like=volume)
        _, labelmap, segmentation = _load_label_volume_as_segmentation(nifti)

        ijk_to_ras = vtk.vtkMatrix4x4()
        labelmap.GetIJKToRASMatrix(ijk_to_ras)
        slicer_matrix = _matrix(ijk_to_ras)
        # the same grid up to a k flip: Slicer's IJK may differ, the voxel centres may not
        assert labelmap.GetImageData().GetDimensions() == volume.shape[::-1], name
        assert logic_core.same_grid(slicer_matrix, volume.shape[::-1], volume.affine_ras, volume.shape[::-1])
        if np.linalg.det(volume.direction) < 0:
            # Slicer stores a left-handed grid right-handed: k reversed, so raw arrays differ
            np.testing.assert_allclose(slicer_matrix[:3, 2], -volume.affine_ras[:3, 2], atol=1e-5)
            assert not np.allclose(slicer_matrix, volume.affine_ras, atol=1e-3)

        expected = _ras_points_by_label(volume, labels)
        found = _segment_ras_points(segmentation)
        assert sorted(found) == sorted(expected), name
        for label, points in expected.items():
            assert found[label].shape == points.shape, (name, label)
            np.testing.assert_allclose(found[label], points, atol=1e-3, err_msg=f"{name} label {label}")


def test_seg_nrrd_loads_in_slicer_with_names_colours_label_values_and_positions(tmp_path, real_data):
    for n, (name, volume) in enumerate(_scan_cases(real_data)):
        labels = _synthetic_labels(volume.shape, seed=n)
        names = {1: "white matter", 2: "CSF", 12: "named but absent"}
        path = write_seg_nrrd(tmp_path / f"seg{n}.seg.nrrd", labels, like=volume, names=names)

        _, node = _read_with_slicer(path, slicer.vtkMRMLSegmentationStorageNode(),
                                    slicer.vtkMRMLSegmentationNode())
        segmentation = node.GetSegmentation()

        found = {}
        for i in range(segmentation.GetNumberOfSegments()):
            segment = segmentation.GetNthSegment(i)
            tag = vtk.mutable("")
            assert segment.GetTag("TerminologyEntry", tag)
            found[segment.GetLabelValue()] = (segment.GetName(), tuple(round(c * 255) for c in segment.GetColor()),
                                              str(tag))
        assert sorted(found) == [1, 2, 3, 7, 9, 12], name
        for label, (segment_name, colour, terminology) in found.items():
            assert segment_name == names.get(label, f"Label {label}")
            assert colour == label_colour(label)
            assert terminology == TISSUE_TERMINOLOGY

        positions = _segment_ras_points(node)
        for label, points in _ras_points_by_label(volume, labels).items():
            np.testing.assert_allclose(positions[label], points, atol=1e-3, err_msg=f"{name} label {label}")
        assert positions[12].shape == (0, 3)


# Slicer's ITK-SNAP importer (Modules/Scripted/ImportItkSnapLabel) accepts only these
# lines: index, r, g, b, alpha, label visibility, mesh visibility (each a whole number,
# alpha/visibilities 0 or 1) and a quoted description; anything else is a syntax error.
ITKSNAP_LINE = re.compile(r'^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([01])\s+([01])\s+([01])\s+"([^"]*)"\s*$')


def test_itksnap_label_lines_have_integer_alpha_and_the_ctbl_loads_as_a_slicer_colour_table(tmp_path):
    volume = Volume.from_array(np.zeros((2, 3, 4)))
    labels = np.zeros((2, 3, 4), np.uint8)
    labels[0, 0, :3] = [1, 2, 9]
    _, itksnap, ctbl = write_labels(tmp_path / "seg.nii.gz", labels, like=volume, names={2: "white matter"})

    rows = [line for line in itksnap.read_text().splitlines() if not line.lstrip().startswith("#")]
    parsed = [ITKSNAP_LINE.match(line) for line in rows]
    assert all(parsed), [line for line, m in zip(rows, parsed) if not m]
    assert [(int(m[1]), int(m[5]), m[8]) for m in parsed] == [
        (0, 0, "Clear Label"), (1, 1, "Label 1"), (2, 1, "white matter"), (9, 1, "Label 9")]
    assert "1.00" not in itksnap.read_text().split("################################################")[-1]

    _, table = _read_with_slicer(ctbl, slicer.vtkMRMLColorTableStorageNode(), slicer.vtkMRMLColorTableNode())
    # Slicer reads the underscores that the .ctbl needs instead of spaces back as spaces
    assert table.GetColorName(2) == "white matter" and table.GetColorName(9) == "Label 9"
    rgba = [0.0] * 4
    table.GetColor(9, rgba)
    assert tuple(round(c * 255) for c in rgba[:3]) == label_colour(9) and rgba[3] == 1.0
