"""``dfcseg train`` and ``dfcseg apply``: the reference-model workflow."""

from __future__ import annotations

import os

from ..errors import InvalidInputError
from ..engine.result import check_cancel
from ._common import run_engine, say
from ._dicom_seg import add_dicom_seg_options, check_dicom_seg, write_dicom_seg_output
from ._files import MODEL_SUFFIXES, check_output, commit, label_files, label_summary, load_inputs
from ._options import (add_engine_options, add_input_choice_options, add_output_options,
                       add_parameter_options, add_run_options, config_from_args)


def register(sub):
    """Add ``train`` and ``apply`` to the sub-parsers ``sub``."""
    p = sub.add_parser("train", help="train a reference model on one or more scans")
    p.add_argument("model", metavar="MODEL", help="model file to write (.pt)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="training scans")
    add_engine_options(p, scribbles=False)
    add_output_options(p)
    p.set_defaults(handler=run_train)

    p = sub.add_parser("apply", help="label a scan with a trained reference model")
    p.add_argument("model", metavar="MODEL", help="model file written by train or --save-model")
    p.add_argument("input", metavar="INPUT", help="scan to label")
    p.add_argument("output", metavar="OUTPUT", help="label volume to write (.nii, .nii.gz or .seg.nrrd)")
    p.add_argument("--mask", default=None, metavar="PATH", help="only label voxels > 0")
    add_input_choice_options(p)
    p.add_argument("--channel", nargs="+", default=[], metavar="EXTRA_INPUT",
                   help="extra channels, as when the model was trained")
    add_parameter_options(p, names=("min_size",))
    add_dicom_seg_options(p)
    add_run_options(p)
    add_output_options(p)
    p.set_defaults(handler=run_apply)


def run_train(args, cancel):
    check_output(args.model, [*args.inputs, *(args.mask or [])], overwrite=args.overwrite,
                 suffixes=MODEL_SUFFIXES, what="MODEL")
    masks = args.mask or []
    if masks and len(masks) != len(args.inputs):
        raise InvalidInputError(f"--mask: give one per INPUT ({len(args.inputs)}), got {len(masks)}")
    config = config_from_args(args)
    inputs = []
    for i, path in enumerate(args.inputs):
        inputs.append(load_inputs(args, path, mask_path=masks[i] if masks else None)[1])
        check_cancel(cancel)
    from ..engine.pipeline import train_model

    model = run_engine(args, "train", lambda progress: train_model(
        inputs, mode=args.mode, config=config, seed=args.seed, device=args.device,
        progress=progress, cancel=cancel), cancel)
    commit([model.output(args.model)], overwrite=args.overwrite, cancel=cancel)
    say(args, f"trained on {len(inputs)} scan(s); wrote {args.model}")
    return 0


def run_apply(args, cancel):
    check_output(args.output, [args.input, args.model, args.mask, *args.channel],
                 overwrite=args.overwrite)
    if not os.path.exists(args.model):
        raise InvalidInputError(f"MODEL {args.model}: no such file")
    check_dicom_seg(args, [args.input, args.model, args.mask])
    from ..engine.model import load_model
    from ..engine.pipeline import apply_model

    model = load_model(args.model)
    volume, inputs = load_inputs(args, args.input, mask_path=args.mask)
    check_cancel(cancel)
    result = run_engine(args, "apply", lambda progress: apply_model(
        model, inputs, device=args.device, progress=progress, cancel=cancel), cancel)
    if args.min_size is not None:  # the model file's own min_size otherwise
        result = result.relabel(min_size=args.min_size)
    labels = result.labels
    check_cancel(cancel)
    outputs = label_files(args.output, labels, volume) + write_dicom_seg_output(args, labels, volume)
    written = commit(outputs, overwrite=args.overwrite, cancel=cancel)
    say(args, f"{label_summary(labels)} labels; wrote {', '.join(str(p) for p in written)}")
    return 0
