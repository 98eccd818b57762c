"""The module's MRML file exchange, Qt-free: every function takes the scene.

It uses only MRML / segmentations classes, so it runs in Slicer and in
slicer-core (tests/test_slicer_module_io.py exercises it there):

* write the input volume, a mask segment or the scribbles as files on the
  volume's grid, with Slicer's own storage nodes;
* load the engine's ``.seg.nrrd`` into a segmentation node whose reference
  geometry is the input volume's, checked to be the same voxel grid;
* put the result beside the input in the subject hierarchy (its study).
"""

from __future__ import annotations

import numpy as np
import slicer
import vtk

from .logic_core import same_grid

__all__ = ["ijk_to_ras", "write_volume", "write_segments_as_labelmap", "load_segmentation",
           "place_in_study_of"]


def ijk_to_ras(volume_node):
    """The node's IJK-to-RAS matrix as a (4, 4) array."""
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _check_untransformed(node):
    # the engine reads the file's grid; a parent transform would be silently lost
    if node.GetParentTransformNode() is not None:
        raise ValueError(f"{node.GetName()}: is under a transform; harden it first (Transforms module)")


def write_volume(scene, volume_node, path):
    """Write ``volume_node`` to ``path`` (e.g. ``.nrrd``) with Slicer's volume storage node.

    The node's own storage (its file name on disk) is left unchanged.
    """
    _check_untransformed(volume_node)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    scene.AddNode(storage)
    try:
        storage.SetFileName(str(path))
        storage.UseCompressionOff()  # a temporary file: speed over size
        if not storage.WriteData(volume_node):
            raise OSError(f"{path}: Slicer could not write {volume_node.GetName()}")
    finally:
        scene.RemoveNode(storage)
    return path


def write_segments_as_labelmap(scene, segmentation_node, segment_ids, reference_volume, path):
    """Export segments to a label volume on ``reference_volume``'s grid and write it to ``path``.

    The n-th segment of ``segment_ids`` gets label n + 1 (scribble classes; a
    mask is one segment, label 1).  Returns the labels used, ``{segment_id: label}``.
    """
    _check_untransformed(segmentation_node)
    ids = vtk.vtkStringArray()
    for segment_id in segment_ids:
        if segmentation_node.GetSegmentation().GetSegment(segment_id) is None:
            raise ValueError(f"{segmentation_node.GetName()}: has no segment {segment_id!r}")
        ids.InsertNextValue(segment_id)
    labelmap = slicer.vtkMRMLLabelMapVolumeNode()
    scene.AddNode(labelmap)
    try:
        logic = slicer.vtkSlicerSegmentationsModuleLogic()
        if not logic.ExportSegmentsToLabelmapNode(segmentation_node, ids, labelmap, reference_volume):
            raise ValueError(f"{segmentation_node.GetName()}: could not export segments to a label map")
        write_volume(scene, labelmap, path)
    finally:
        scene.RemoveNode(labelmap)
    return {segment_id: n + 1 for n, segment_id in enumerate(segment_ids)}


def load_segmentation(scene, path, reference_volume, name=None):
    """Read the engine's ``.seg.nrrd`` into a new segmentation node of ``scene``.

    The segments keep the names, colours and terminology the file carries; the
    node's reference geometry is the input volume's, and the file's grid must
    be that volume's voxel grid (else ValueError: something went wrong in between).
    """
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    node = slicer.vtkMRMLSegmentationNode()
    scene.AddNode(node)
    if not storage.ReadData(node):
        scene.RemoveNode(node)
        scene.RemoveNode(storage)
        raise OSError(f"{path}: Slicer could not read the segmentation")
    scene.RemoveNode(storage)  # the result lives in the scene; it has no file of its own yet
    node.SetName(name or f"{reference_volume.GetName()} DFC segmentation")
    node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume)
    segmentation = node.GetSegmentation()
    if segmentation.GetNumberOfSegments():
        image = slicer.vtkOrientedImageData()
        node.GetBinaryLabelmapRepresentation(segmentation.GetNthSegmentID(0), image)
        matrix = vtk.vtkMatrix4x4()
        image.GetImageToWorldMatrix(matrix)
        to_world = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
        # compare a voxel of the segment's (possibly cropped) extent on both grids
        extent = image.GetExtent()
        corner = to_world @ np.array([extent[0], extent[2], extent[4], 1.0])
        ijk = np.linalg.inv(ijk_to_ras(reference_volume)) @ corner
        if np.abs(ijk[:3] - np.round(ijk[:3])).max() > 1e-3:
            raise ValueError(f"{path}: the segmentation is not on the voxel grid of {reference_volume.GetName()}")
    return node


def input_grid_matches(volume_node, other_ijk_to_ras, other_dims):
    """True when ``volume_node``'s grid and another grid are the same voxels (see ``same_grid``)."""
    dims = volume_node.GetImageData().GetDimensions()
    return same_grid(ijk_to_ras(volume_node), dims, other_ijk_to_ras, other_dims)


def place_in_study_of(scene, node, reference_node):
    """Put ``node`` in the subject-hierarchy folder (study) that holds ``reference_node``.

    Returns the parent item ID (0 when ``reference_node`` has no item).
    """
    hierarchy = scene.GetSubjectHierarchyNode()
    if hierarchy is None:
        return 0
    reference_item = hierarchy.GetItemByDataNode(reference_node)
    if not reference_item:
        return 0
    parent = hierarchy.GetItemParent(reference_item)
    item = hierarchy.GetItemByDataNode(node)
    if item:
        hierarchy.SetItemParent(item, parent)
    else:  # outside the application no plugin creates items for new nodes
        hierarchy.CreateItem(parent, node)
    return parent
