"""``--dicom-seg OUT.dcm`` for ``segment`` and ``apply``: the one opt-in output with patient data."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InvalidInputError

DICOM_SEG_HELP = (
    "also write a DICOM Segmentation object (for PACS/OHIF) referencing the source series; "
    "only for a DICOM series INPUT. NOTE: a DICOM SEG must carry the source's patient and "
    "study modules, so this file CONTAINS PATIENT IDENTIFIERS (name, ID, birth date, study); "
    "every other output of dfcseg holds none"
)


def add_dicom_seg_options(p):
    p.add_argument("--dicom-seg", default=None, metavar="OUT.dcm", help=DICOM_SEG_HELP)
    p.add_argument("--dicom-seg-type", choices=("binary", "labelmap"), default="binary",
                   help="binary: Segmentation Storage, read by every DICOM SEG viewer (default); "
                        "labelmap: Label Map Segmentation Storage (smaller, newer, fewer readers)")


def check_dicom_seg(args, inputs):
    """Refuse, before the run, a --dicom-seg that cannot be written."""
    if not args.dicom_seg:
        return
    from ..io import is_same_file
    from ..io.dicom import is_dicom_file
    from ..io.dicom_seg import is_dicom_seg

    source = Path(args.input)
    if not (source.is_dir() or (source.is_file() and is_dicom_file(source))):
        raise InvalidInputError(f"--dicom-seg: INPUT {args.input} is not a DICOM series; a DICOM SEG "
                                "needs DICOM source images (write OUTPUT as .seg.nrrd or .nii.gz instead)")
    out = Path(args.dicom_seg)
    if any(p is not None and is_same_file(out, p) for p in [*inputs, args.output]):
        raise InvalidInputError(f"--dicom-seg {out} is an input or OUTPUT: refusing to overwrite it")
    if out.is_dir():
        raise InvalidInputError(f"--dicom-seg {out} is a folder")
    if out.exists() and not args.overwrite:
        raise InvalidInputError(f"--dicom-seg {out} exists: pass --overwrite to replace it")
    if out.exists() and not is_dicom_seg(out):
        raise InvalidInputError(f"--dicom-seg {out} exists and is not a DICOM SEG: refusing to overwrite it")
    if str(out.parent) and not os.path.isdir(out.parent):
        raise InvalidInputError(f"--dicom-seg {out}: folder {out.parent} does not exist")


def write_dicom_seg_output(args, labels, volume, names=None):
    """The --dicom-seg output if asked (empty list or one :class:`~napari_dfcseg.io.atomic.Output`),
    committed with the run's other outputs by :func:`._files.commit`."""
    if not args.dicom_seg:
        return []
    from ..io.dicom_seg import write_dicom_seg

    return [write_dicom_seg(args.dicom_seg, labels, like=volume, source=args.input,
                            series=getattr(args, "series", None), names=names,
                            segmentation_type=args.dicom_seg_type, overwrite=args.overwrite,
                            stage=True)]
