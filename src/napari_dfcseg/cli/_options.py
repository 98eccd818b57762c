"""The options several sub-commands share, and the DFCConfig they build.

The method's parameters are not spelled here: one option per row of
:data:`~napari_dfcseg.engine.parameters.USER_PARAMETERS`, turned into a
config by :func:`~napari_dfcseg.engine.parameters.apply_user_values`, as the
widget does.
"""

from __future__ import annotations

import argparse

from ..engine.config import DEVICES, MODES, PRESETS
from ..engine.parameters import USER_PARAMETERS
from ..errors import DFCError, InvalidInputError
from ._common import device, positive_int, seed
from ._machine_progress import PROGRESS_MODES


def add_engine_options(p, *, scribbles=True):
    """Options shared by ``segment`` and ``train``: inputs and the method's parameters."""
    p.add_argument("--mode", choices=MODES, default="2d",
                   help="cluster slice by slice (2d, default) or the whole volume (3d)")
    p.add_argument("--preset", default=None, metavar="NAME",
                   help=f"parameter preset: {', '.join(PRESETS)} (docs/method.md); default: default")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="settings file (.json or .toml) as the base instead of a preset; the"
                        " options below override it")
    p.add_argument("--mask", action="append", default=None, metavar="PATH",
                   help="label/mask volume on the same grid: only voxels > 0 are segmented"
                        " (train: once per INPUT)")
    if scribbles:
        p.add_argument("--scribbles", default=None, metavar="PATH",
                       help="label volume on the same grid with user scribbles (0 = none)")
    p.add_argument("--channel", nargs="+", default=[], metavar="EXTRA_INPUT",
                   help="co-registered volumes stacked as extra channels (e.g. T2, FLAIR)")
    add_input_choice_options(p)
    p.add_argument("--no-auto-mask", dest="auto_mask", action="store_false", default=None,
                   help="without --mask, segment the whole array (default: inside an automatic "
                        "body/head mask, air outside the patient labelled 0)")
    add_parameter_options(p)
    add_run_options(p)


def add_parameter_options(p, names=None):
    """One option per user parameter (``names``: only those), default: the preset's value."""
    for row in USER_PARAMETERS:
        if names is None or row.name in names:
            p.add_argument(row.flag, type=_argument_type(row), default=None, metavar=row.metavar,
                           help=f"{row.help} (default: the preset's)")


def _argument_type(row):
    def parse(text):
        try:
            return row.parse(text)
        except InvalidInputError as exc:  # argparse prefixes "argument --flag:"
            raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None
    parse.__name__ = row.type.__name__
    return parse


def add_run_options(p):
    p.add_argument("--seed", type=seed, default=0,
                   help="random seed, 0..2**32-1 (default 0); the same seed gives the same labels "
                        "on the same device, thread count and versions (docs/cli.md)")
    p.add_argument("--device", type=device, default="auto", metavar="{" + ",".join(DEVICES) + "}",
                   help="torch device (default auto: cuda, then mps, then cpu); cuda and mps are "
                        "checked to be usable before anything runs")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    p.add_argument("--progress", choices=PROGRESS_MODES, default="bar",
                   help="bar: a progress bar on stderr when it is a terminal (default); json: one "
                        "JSON object a line on stdout (stage, iteration, total, fraction, loss, "
                        "labels), for programs running dfcseg; slicer: 3D Slicer's "
                        "<filter-progress> lines; none: no progress")


def add_input_choice_options(p):
    """--series and --volume: which series of a DICOM folder, which volume of a 4D scan."""
    p.add_argument("--series", default=None, metavar="N|UID",
                   help="DICOM: the series to read when a folder holds several (or multi-frame "
                        "files): its number in 'dfcseg info' (1-based) or its SeriesInstanceUID")
    p.add_argument("--volume", type=positive_int, default=None, metavar="N",
                   help="4D scan (fMRI, DWI, multi-echo; NIfTI/NRRD time axis or DICOM series with "
                        "repeated positions): read its N-th volume (1-based; fslroi's index N-1)")


def add_output_options(p):
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs (OUTPUT with its .labels.txt and .ctbl, "
                        "--save-model, --dicom-seg), each only if it is a file of that kind "
                        "(never a scan or an input); without it any existing one is refused")


def user_choices(args):
    """name -> value of the user parameters given on the command line."""
    return {row.name: getattr(args, row.name) for row in USER_PARAMETERS
            if getattr(args, row.name, None) is not None}


def config_from_args(args):
    """DFCConfig from --preset or --config, then the explicit options."""
    from ..engine.config import resolve_config
    from ..engine.parameters import apply_user_values, load_config

    config_file = getattr(args, "config", None)
    if config_file is not None and args.preset is not None:
        raise InvalidInputError("--config and --preset: give one (a settings file names its preset)")
    if config_file is not None:
        config = load_config(config_file)  # its errors name the file
    else:
        try:
            config = resolve_config(args.preset)  # None: the "default" preset
        except DFCError as exc:
            raise InvalidInputError(f"--preset: {exc}") from None
    config = apply_user_values(config, user_choices(args))
    if getattr(args, "auto_mask", None) is False:
        import dataclasses

        config = dataclasses.replace(config, auto_mask=False)
    return config
