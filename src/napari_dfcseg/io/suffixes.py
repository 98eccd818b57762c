"""File suffixes, one home: what the readers open, what the writers write, what a model file is.

The CLI, the widget, batch runs and the readers / writers import these
instead of spelling them. Compare names case-insensitively with
:func:`has_suffix`.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["NIFTI_SUFFIXES", "ITK_SUFFIXES", "DICOM_SUFFIXES", "SCAN_SUFFIXES", "SEG_NRRD_SUFFIX",
           "LABEL_SUFFIXES", "MODEL_SUFFIXES", "has_suffix", "strip_suffix"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
#: every single-file scan the readers open (a DICOM series is also read from its folder)
SCAN_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES + DICOM_SUFFIXES
#: 3D Slicer's segmentation file (write_seg_nrrd)
SEG_NRRD_SUFFIX = ".seg.nrrd"
#: label volumes the writers write: NIfTI (write_labels) or .seg.nrrd (write_seg_nrrd)
LABEL_SUFFIXES = NIFTI_SUFFIXES + (SEG_NRRD_SUFFIX,)
#: reference-model files (Model.save / load_model)
MODEL_SUFFIXES = (".pt", ".pth")


def has_suffix(path, suffixes) -> bool:
    """Whether the file name of ``path`` ends with one of ``suffixes`` (any case).

    >>> has_suffix("/data/Head.NII.GZ", NIFTI_SUFFIXES), has_suffix("seg.nrrd.png", LABEL_SUFFIXES)
    (True, False)
    """
    return Path(str(path)).name.lower().endswith(tuple(suffixes))


def strip_suffix(name, suffixes=SCAN_SUFFIXES + (SEG_NRRD_SUFFIX,)) -> str:
    """``name`` without the longest of ``suffixes`` it ends with (any case).

    >>> strip_suffix("t1.nii.gz"), strip_suffix("brain.seg.nrrd"), strip_suffix("notes.txt")
    ('t1', 'brain', 'notes.txt')
    """
    for suffix in sorted(suffixes, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name
