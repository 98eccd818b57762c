"""Medical image input/output with exact patient geometry.

Read scans (NIfTI, NRRD, MetaImage, DICOM series) into a :class:`Volume`
and save label volumes as NIfTI (or 3D Slicer ``.seg.nrrd``) that open aligned on the scan in 3D Slicer,
ITK-SNAP and napari.  Conventions are described in ``docs/geometry.md``.

>>> from napari_dfcseg.io import read_volume, write_labels   # doctest: +SKIP
>>> vol = read_volume("ct_folder")                           # doctest: +SKIP
>>> write_labels("seg.nii.gz", labels, like=vol)             # doctest: +SKIP

This package never imports torch, napari or Qt.
"""

from .atomic import Output, check_outputs, stage_outputs, write_outputs
from .dicom import SeriesInfo, list_series
from .readers import read_volume
from .seg_nrrd import is_seg_nrrd, write_seg_nrrd
from .volume import Volume
from .writer import (is_label_volume, is_same_file, label_colour, label_file_paths, label_outputs,
                     write_labels)

__all__ = [
    "Volume",
    "read_volume",
    "list_series",
    "SeriesInfo",
    "write_labels",
    "is_label_volume",
    "is_same_file",
    "label_colour",
    "label_file_paths",
    "write_seg_nrrd",
    "is_seg_nrrd",
    "label_outputs",
    "Output",
    "check_outputs",
    "stage_outputs",
    "write_outputs",
]
