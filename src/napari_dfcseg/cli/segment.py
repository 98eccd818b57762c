"""``dfcseg segment``: segment one scan, write a label volume (and optionally the model)."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError
from ..engine.result import check_cancel
from ._common import run_engine, say
from ._dicom_seg import add_dicom_seg_options, check_dicom_seg, write_dicom_seg_output
from ._files import MODEL_SUFFIXES, check_output, commit, label_files, label_summary, load_inputs
from ._options import add_engine_options, add_output_options, config_from_args


def register(sub):
    """Add ``segment`` to the sub-parsers ``sub``."""
    p = sub.add_parser("segment", help="segment one scan, write a label volume (NIfTI or .seg.nrrd)")
    p.add_argument("input", metavar="INPUT", help="scan: NIfTI, NRRD, MHA, ... or a DICOM folder")
    p.add_argument("output", metavar="OUTPUT",
                   help="label volume to write: .nii/.nii.gz (+ ITK-SNAP and Slicer colour tables) "
                        "or .seg.nrrd (3D Slicer segmentation with named, coloured segments)")
    add_engine_options(p)
    add_dicom_seg_options(p)
    p.add_argument("--save-model", default=None, metavar="PATH",
                   help="also save the trained network, to apply to other scans")
    p.add_argument("--save-mask", default=None, metavar="PATH",
                   help="also write the region that was segmented (the automatic body/head mask,"
                        " or --mask) as a label volume: 1 inside, 0 outside")
    add_output_options(p)
    p.set_defaults(handler=run_segment)


def run_segment(args, cancel):
    check_output(args.output, [args.input, args.mask and args.mask[0], args.scribbles,
                               *args.channel], overwrite=args.overwrite)
    if args.mask and len(args.mask) > 1:
        raise InvalidInputError("--mask: give one mask for segment")
    if args.save_model:
        check_output(args.save_model, [args.input, args.output], overwrite=args.overwrite,
                     suffixes=MODEL_SUFFIXES, what="--save-model")
    if args.save_mask:
        check_output(args.save_mask, [args.input, args.output, args.save_model],
                     overwrite=args.overwrite, what="--save-mask")
    check_dicom_seg(args, [args.input, args.save_model])
    config = config_from_args(args)
    volume, inputs = load_inputs(args, args.input, mask_path=args.mask[0] if args.mask else None,
                                 scribbles_path=args.scribbles)
    check_cancel(cancel)
    from ..engine.pipeline import segment

    result = run_engine(args, "segment", lambda progress: segment(
        inputs, mode=args.mode, config=config, seed=args.seed, device=args.device,
        progress=progress, cancel=cancel), cancel)
    # labels, their tables, the DICOM SEG and the model: all complete, then all in place
    outputs = label_files(args.output, result.labels, volume)
    outputs += write_dicom_seg_output(args, result.labels, volume)
    if args.save_model:
        outputs.append(result.model.output(args.save_model))
    if args.save_mask:
        region = (result.foreground if result.foreground is not None
                  else None if inputs.mask is None else inputs.restore_shape(inputs.mask))
        if region is None:
            region = np.ones(result.labels.shape, bool)
        outputs += label_files(args.save_mask, np.asarray(region, dtype=np.uint8), volume,
                               names={1: "segmented region"})
    written = commit(outputs, overwrite=args.overwrite, cancel=cancel)
    say(args, tissue_summary(result))
    stopped = getattr(result, "stopped_by", "")
    say(args, f"{label_summary(result.labels)} labels after {result.n_iterations} iterations"
              f"{f' (stopped by {stopped})' if stopped else ''};"
              f" wrote {', '.join(str(p) for p in written)}")
    return 0


def tissue_summary(result):
    """One line: the region segmented and the number of tissues, with why."""
    region = {"auto": "inside the automatic body/head mask (label 0 = outside)",
              "user": "inside --mask", "none": "the whole array"}.get(result.mask_source, "")
    k = result.n_tissues
    why = result.tissue_count_reason
    count = (f"{k} tissues ({why})" if k is not None and why not in ("", "forced")
             else f"{k} tissues (--n-clusters)" if k is not None else why)
    return f"segmented {region}; {count}"
