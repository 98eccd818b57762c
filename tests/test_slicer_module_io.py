"""The Slicer module's MRML file exchange (DFCSegmentationLib/mrml_io.py) on slicer-core.

What the module does around the engine, with Slicer's own MRML classes but
without the application (no Qt, no widget): write the input volume and a
mask / scribble segments with Slicer's storage nodes, run the real
``python -m napari_dfcseg`` command line the module builds, parse its
``--progress json`` lines, load the ``.seg.nrrd`` back as a segmentation on
the input's grid and put it in the input's subject-hierarchy study.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("slicer_core", reason="slicer-core not installed (pip install -e .[slicer-test])")
import slicer  # noqa: E402
import vtk  # noqa: E402

MODULE_DIR = Path(__file__).resolve().parents[1] / "slicer" / "DFCSegmentation"
sys.path.insert(0, str(MODULE_DIR))

from DFCSegmentationLib import logic_core, mrml_io  # noqa: E402

from napari_dfcseg.io import read_volume  # noqa: E402

CT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "ct-abdomen-3mm" / "ct.nii.gz"


@pytest.fixture
def scene_with_ct():
    """A scene holding the real CT, loaded as Slicer's Add Data does (volume archetype storage node)."""
    if not CT.is_file():
        pytest.skip(f"real CT not found at {CT}")
    scene = slicer.vtkMRMLScene()
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(CT))
    scene.AddNode(storage)
    volume = slicer.vtkMRMLScalarVolumeNode()
    volume.SetName("ct")
    scene.AddNode(volume)
    assert storage.ReadData(volume) == 1
    return scene, volume


def _labelmap_node(scene, array, like):
    node = slicer.vtkMRMLLabelMapVolumeNode()
    scene.AddNode(node)
    slicer.util.updateVolumeFromArray(node, array)
    matrix = vtk.vtkMatrix4x4()
    like.GetIJKToRASMatrix(matrix)
    node.SetIJKToRASMatrix(matrix)
    return node


def _segmentation_from(scene, array, like):
    """A segmentation node made from a label array on ``like``'s grid (one segment per label)."""
    labelmap = _labelmap_node(scene, array, like)
    segmentation = slicer.vtkMRMLSegmentationNode()
    scene.AddNode(segmentation)
    assert slicer.vtkSlicerSegmentationsModuleLogic().ImportLabelmapToSegmentationNode(labelmap, segmentation)
    scene.RemoveNode(labelmap)
    return segmentation


def test_input_written_by_slicer_reads_back_with_the_same_voxels_and_geometry(tmp_path, scene_with_ct):
    scene, volume = scene_with_ct
    path = mrml_io.write_volume(scene, volume, tmp_path / "input.nrrd")
    ours = read_volume(path)
    np.testing.assert_array_equal(ours.array, slicer.util.arrayFromVolume(volume))
    matrix = mrml_io.ijk_to_ras(volume)
    np.testing.assert_allclose(ours.affine_ras, matrix, atol=1e-4)
    spacing, origin, direction = logic_core.geometry_from_ijk_to_ras(matrix)
    np.testing.assert_allclose(spacing, ours.spacing, atol=1e-5)
    np.testing.assert_allclose(origin, ours.origin, atol=1e-4)
    np.testing.assert_allclose(direction, ours.direction, atol=1e-6)
    assert volume.GetStorageNode().GetFileName() == str(CT)  # the node's own file is untouched


def test_segments_export_as_labels_on_the_volume_grid(tmp_path, scene_with_ct):
    scene, volume = scene_with_ct
    labels = np.zeros(slicer.util.arrayFromVolume(volume).shape, np.uint8)
    labels[5:9, 20:40, 30:50] = 1
    labels[12, 60:70, 70:75] = 2
    segmentation = _segmentation_from(scene, labels, volume)
    ids = [segmentation.GetSegmentation().GetNthSegmentID(i) for i in range(2)]
    by_value = {segmentation.GetSegmentation().GetSegment(i).GetLabelValue(): i for i in ids}
    # scribble classes are numbered in the order given: here label 2's segment first
    used = mrml_io.write_segments_as_labelmap(scene, segmentation, [by_value[2], by_value[1]], volume,
                                              tmp_path / "scribbles.nrrd")
    assert used == {by_value[2]: 1, by_value[1]: 2}
    exported = read_volume(tmp_path / "scribbles.nrrd")
    assert exported.shape == labels.shape
    np.testing.assert_allclose(exported.affine_ras, mrml_io.ijk_to_ras(volume), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(exported.array), np.choose(labels, [0, 2, 1]))
    with pytest.raises(ValueError, match="no segment"):
        mrml_io.write_segments_as_labelmap(scene, segmentation, ["nope"], volume, tmp_path / "x.nrrd")


@pytest.mark.slow
def test_the_module_pipeline_without_qt_on_the_real_ct(tmp_path, scene_with_ct):
    scene, volume = scene_with_ct
    ct = slicer.util.arrayFromVolume(volume)
    body = (ct > -500).astype(np.uint8)  # the body, as a user's mask segment
    mask_segmentation = _segmentation_from(scene, body, volume)
    mask_id = mask_segmentation.GetSegmentation().GetNthSegmentID(0)

    input_path = mrml_io.write_volume(scene, volume, tmp_path / "input.nrrd")
    params = logic_core.RunParameters(mode="2d", preset="fast", max_iter=3, device="cpu",
                                      mask_path=str(tmp_path / "mask.nrrd"))
    mrml_io.write_segments_as_labelmap(scene, mask_segmentation, [mask_id], volume, params.mask_path)
    output = tmp_path / "result.seg.nrrd"
    command = logic_core.build_command(sys.executable, input_path, output, params)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr

    events = [logic_core.parse_progress_line(line) for line in done.stdout.splitlines()]
    assert events and all(e is not None for e in events)
    assert [e.iteration for e in events if e.stage == "train"] == [1, 2, 3]
    assert max(e.fraction for e in events if e.fraction is not None) == 1.0

    hierarchy = scene.GetSubjectHierarchyNode()
    patient = hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "patient")
    study = hierarchy.CreateStudyItem(patient, "study")
    hierarchy.CreateItem(study, volume)

    node = mrml_io.load_segmentation(scene, output, volume)
    assert mrml_io.place_in_study_of(scene, node, volume) == study
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(node)) == study
    assert node.GetName() == "ct DFC segmentation"
    segmentation = node.GetSegmentation()
    n = segmentation.GetNumberOfSegments()
    assert n >= 2
    names = [segmentation.GetNthSegment(i).GetName() for i in range(n)]
    assert all(name.startswith("Label ") for name in names)

    # every segment lies inside the mask: export them all onto the volume grid and compare
    all_ids = [segmentation.GetNthSegmentID(i) for i in range(n)]
    mrml_io.write_segments_as_labelmap(scene, node, all_ids, volume, tmp_path / "check.nrrd")
    result = np.asarray(read_volume(tmp_path / "check.nrrd").array)
    assert result.shape == ct.shape
    assert (result > 0).sum() > 0.5 * body.sum() and not np.any((result > 0) & (body == 0))


def test_a_result_off_the_input_grid_is_refused(tmp_path, scene_with_ct):
    from napari_dfcseg.io import write_seg_nrrd

    scene, volume = scene_with_ct
    scan = read_volume(mrml_io.write_volume(scene, volume, tmp_path / "input.nrrd"))
    labels = np.zeros(scan.shape, np.uint8)
    labels[10:12, 30:40, 40:60] = 3
    path = write_seg_nrrd(tmp_path / "result.seg.nrrd", labels, like=scan, names={3: "liver-ish"})
    node = mrml_io.load_segmentation(scene, path, volume, name="on grid")
    segment = node.GetSegmentation().GetNthSegment(0)
    assert (segment.GetName(), segment.GetLabelValue()) == ("liver-ish", 3)

    volume.SetOrigin(*(np.array(volume.GetOrigin()) + [0.0, 0.0, 1.5]))  # half a 3 mm voxel
    with pytest.raises(ValueError, match="not on the voxel grid"):
        mrml_io.load_segmentation(scene, path, volume)
