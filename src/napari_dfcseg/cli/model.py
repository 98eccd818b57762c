"""``dfcseg train`` and ``dfcseg apply``: the reference-model workflow."""

from __future__ import annotations

import os

from ..errors import InvalidInputError
from ._common import check_cancel, non_negative_int, progress_for, say
from ._files import MODEL_SUFFIXES, check_output, label_summary, load_image, save_model, write
from ._options import add_engine_options, add_output_options, add_run_options, config_from_args


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
    p.add_argument("output", metavar="OUTPUT", help="label volume to write (.nii or .nii.gz)")
    p.add_argument("--mask", default=None, metavar="PATH", help="only label voxels > 0")
    p.add_argument("--series", default=None, metavar="UID", help="DICOM series to read")
    p.add_argument("--channel", nargs="+", default=[], metavar="EXTRA_INPUT",
                   help="extra channels, as when the model was trained")
    p.add_argument("--min-size", type=non_negative_int, default=None, metavar="N",
                   help="merge connected regions smaller than N voxels into a neighbour")
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
    images, spacings, mask_arrays, channel_axis = [], [], [], None
    for i, path in enumerate(args.inputs):
        volume, image, channel_axis, mask = load_image(
            args, path, mask_path=masks[i] if masks else None)
        images.append(image)
        spacings.append(tuple(volume.spacing))
        mask_arrays.append(mask)
        check_cancel(cancel)
    from ..engine.model import train_model

    progress = progress_for(args, "train")
    try:
        model = train_model(
            images, mode=args.mode, spacings=spacings, channel_axis=channel_axis,
            masks=mask_arrays if masks else None, config=config, seed=args.seed,
            device=args.device, progress=progress, cancel=cancel,
        )
    finally:
        progress.close()
    check_cancel(cancel)
    save_model(model, args.model)
    say(args, f"trained on {len(images)} scan(s); wrote {args.model}")
    return 0


def run_apply(args, cancel):
    import dataclasses

    check_output(args.output, [args.input, args.model, args.mask, *args.channel],
                 overwrite=args.overwrite)
    if not os.path.exists(args.model):
        raise InvalidInputError(f"MODEL {args.model}: no such file")
    from ..engine.model import apply_model, load_model

    model = load_model(args.model)
    volume, image, channel_axis, mask = load_image(args, args.input, mask_path=args.mask)
    check_cancel(cancel)
    if args.min_size is not None:
        model.config = dataclasses.replace(model.config, min_size=args.min_size)
    progress = progress_for(args, "apply")
    try:
        labels = apply_model(model, image, spacing=tuple(volume.spacing), channel_axis=channel_axis,
                             mask=mask, device=args.device, progress=progress, cancel=cancel)
    finally:
        progress.close()
    labels = getattr(labels, "labels", labels)
    check_cancel(cancel)
    written = write(args.output, labels, volume)
    say(args, f"{label_summary(labels)} labels; wrote {', '.join(str(p) for p in written)}")
    return 0
