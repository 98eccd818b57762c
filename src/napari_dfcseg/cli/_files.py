"""Reading the command line's inputs and writing its outputs, with the argument's
name in every error message."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InvalidInputError

from ..io.suffixes import LABEL_SUFFIXES, MODEL_SUFFIXES, SEG_NRRD_SUFFIX, has_suffix


def check_output(output, inputs, *, overwrite, suffixes=LABEL_SUFFIXES, what="OUTPUT"):
    """Refuse, before any work, an output that would overwrite an input or that the writers
    would refuse (the rules are :func:`~napari_dfcseg.io.atomic.check_outputs`')."""
    from ..io import is_label_volume, is_same_file, is_seg_nrrd
    from ..io.atomic import Output, check_outputs

    out = Path(output)
    if not has_suffix(out, suffixes):
        raise InvalidInputError(f"{what} {output}: must end with {' or '.join(suffixes)}")
    for path in inputs:
        if path is not None and is_same_file(out, path):
            raise InvalidInputError(f"{what} {output} is the input {path}: refusing to overwrite a scan")
    may_replace = None  # a model file: Model.save has its own rule
    if suffixes == LABEL_SUFFIXES:
        may_replace = is_seg_nrrd if has_suffix(out, (SEG_NRRD_SUFFIX,)) else is_label_volume
    try:
        check_outputs([Output(out, may_replace=may_replace, kind="label volume")],
                      overwrite=overwrite, error=InvalidInputError)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{what} {exc}") from None


def quiet_itk():
    """ITK prints warnings (e.g. 'No Series were found') straight to stderr: keep it to one line."""
    import SimpleITK as sitk

    sitk.ProcessObject_SetGlobalWarningDisplay(False)


def read(path, *, series=None, what="INPUT"):
    """read_volume, with the argument's name when the file is missing.

    read_volume's own errors are one-line VolumeIOErrors naming the file
    (it wraps the reader libraries' exceptions); main() prints them.
    """
    from ..io import read_volume

    quiet_itk()
    if not os.path.exists(path):
        raise InvalidInputError(f"{what} {path}: no such file or folder")
    return read_volume(path, series=series)


def load_inputs(args, path, *, mask_path=None, scribbles_path=None):
    """Read the scan, its ``--channel`` volumes, mask and scribbles: (volume, EngineInputs).

    The shape, stacking and mask rules are :func:`~napari_dfcseg.engine.inputs.assemble_inputs`'s;
    its messages name the option and file at fault.
    """
    from ..engine.inputs import assemble_inputs

    volume = read(path, series=getattr(args, "series", None))
    channels = [read(p, what="--channel").array for p in args.channel]
    mask = None if mask_path is None else read(mask_path, what="--mask").array
    scribbles = None if scribbles_path is None else read(scribbles_path, what="--scribbles").array
    inputs = assemble_inputs(
        volume.array, channel_axis=-1 if volume.array.ndim == 4 else None, channels=channels,
        mask=mask, scribbles=scribbles, spacing=tuple(volume.spacing),
        names={"image": f"INPUT {path}", "mask": f"--mask {mask_path}",
               "scribbles": f"--scribbles {scribbles_path}",
               "channels": [f"--channel {p}" for p in args.channel]},
    )
    return volume, inputs


def write(output, labels, like, names=None):
    """Write the labels as ``output`` says: ``.seg.nrrd`` (3D Slicer) or NIfTI + colour tables."""
    from ..io import write_labels, write_seg_nrrd

    Path(output).parent.mkdir(parents=True, exist_ok=True)
    if has_suffix(output, (SEG_NRRD_SUFFIX,)):
        # check_output has already refused an existing file unless --overwrite was given
        return [write_seg_nrrd(output, labels, like=like, names=names, overwrite=True)]
    return write_labels(output, labels, like=like, names=names)


def save_model(model, path, *, overwrite=False):
    """``model.save``: atomic (mkstemp in the target folder, fsync, rename), never clobbering."""
    return model.save(path, overwrite=overwrite)


def label_summary(labels):
    """The number of labels > 0 in ``labels``."""
    import numpy as np

    values = np.unique(labels)
    return int(values[values > 0].size)
