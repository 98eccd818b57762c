"""Reading the command line's inputs and writing its outputs, with the argument's
name in every error message."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InvalidInputError
from ..io.suffixes import LABEL_SUFFIXES, MODEL_SUFFIXES, SEG_NRRD_SUFFIX, has_suffix
from ._common import signals_deferred


def check_output(output, inputs, *, overwrite, suffixes=LABEL_SUFFIXES, what="OUTPUT"):
    """Refuse, before any work, an output that would overwrite an input or that the writers
    would refuse: every file it implies (a NIfTI's two colour tables too), each replaced only
    with ``overwrite`` and only if of its kind, in a folder that takes a new file (the rules
    are :func:`~napari_dfcseg.io.atomic.check_outputs`')."""
    from ..io import is_same_file
    from ..io.atomic import check_outputs

    out = Path(output)
    if not has_suffix(out, suffixes):
        raise InvalidInputError(f"{what} {output}: must end with {' or '.join(suffixes)}")
    for path in inputs:
        if path is not None and is_same_file(out, path):
            raise InvalidInputError(f"{what} {output} is the input {path}: refusing to overwrite a scan")
    try:
        check_outputs(planned_outputs(out, suffixes), overwrite=overwrite, error=InvalidInputError)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{what} {exc}") from None


def planned_outputs(path, suffixes=LABEL_SUFFIXES):
    """The files writing ``path`` will create, with the rule for replacing each (no content)."""
    from ..io import Output, label_outputs
    from ..io.seg_nrrd import seg_nrrd_outputs

    path = Path(path)
    if suffixes == MODEL_SUFFIXES:
        from ..engine.model import is_model_file

        return [Output(path, may_replace=is_model_file, kind="napari-dfcseg model file")]
    if has_suffix(path, (SEG_NRRD_SUFFIX,)):
        return seg_nrrd_outputs(path)
    return label_outputs(path)


def quiet_itk():
    """ITK prints warnings (e.g. 'No Series were found') straight to stderr: keep it to one line."""
    import SimpleITK as sitk

    sitk.ProcessObject_SetGlobalWarningDisplay(False)


def read(path, *, series=None, volume=None, what="INPUT"):
    """read_volume, with the argument's name when the file is missing.

    read_volume's own errors are one-line VolumeIOErrors naming the file
    (it wraps the reader libraries' exceptions); main() prints them.
    """
    from ..io import read_volume

    quiet_itk()
    if not os.path.exists(path):
        raise InvalidInputError(f"{what} {path}: no such file or folder")
    return read_volume(path, series=series, volume=volume)


def load_inputs(args, path, *, mask_path=None, scribbles_path=None):
    """Read the scan, its ``--channel`` volumes, mask and scribbles: (volume, EngineInputs).

    The shape, stacking and mask rules are :func:`~napari_dfcseg.engine.inputs.assemble_inputs`'s;
    its messages name the option and file at fault.
    """
    from ..engine.inputs import assemble_inputs

    volume = read(path, series=getattr(args, "series", None), volume=getattr(args, "volume", None))
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


def label_files(output, labels, like, names=None):
    """The outputs that hold the labels, as ``output`` says: ``.seg.nrrd`` (3D Slicer) or
    NIfTI + its ITK-SNAP and Slicer colour tables; to be committed by :func:`commit`."""
    from ..io import label_outputs
    from ..io.seg_nrrd import seg_nrrd_outputs

    if has_suffix(output, (SEG_NRRD_SUFFIX,)):
        return seg_nrrd_outputs(output, labels, like=like, names=names)
    return label_outputs(output, labels, like, names)


def commit(outputs, *, overwrite, cancel):
    """Write every output of the run to temporary files, then put them all in place.

    A Ctrl-C or SIGTERM before the commit leaves nothing (the temporary files
    are removed); during and after it the signal is deferred, as the outputs
    are then complete (:func:`~._common.signals_deferred`).  Returns the paths.
    """
    from ..engine.result import check_cancel
    from ..io import stage_outputs

    with stage_outputs(outputs, overwrite=overwrite) as staged:
        with signals_deferred():
            check_cancel(cancel)  # a first Ctrl-C during the writing: stop, nothing written
            return staged.commit()


def save_model(model, path, *, overwrite=False, cancel=None):
    """The model file alone, written and committed as every output is (:func:`commit`)."""
    import threading

    return commit([model.output(path)], overwrite=overwrite,
                  cancel=threading.Event() if cancel is None else cancel)[0]


def label_summary(labels):
    """The number of labels > 0 in ``labels``."""
    import numpy as np

    values = np.unique(labels)
    return int(values[values > 0].size)
