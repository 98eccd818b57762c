"""The options several sub-commands share, and the DFCConfig they build."""

from __future__ import annotations

from ..engine.config import DEVICES, MODES
from ..errors import DFCError, InvalidInputError
from ._common import non_negative_float, non_negative_int, positive_int
from ._machine_progress import PROGRESS_MODES


def add_engine_options(p, *, scribbles=True):
    """Options shared by ``segment`` and ``train``: the method's parameters."""
    p.add_argument("--mode", choices=MODES, default="2d",
                   help="cluster slice by slice (2d, default) or the whole volume (3d)")
    p.add_argument("--preset", default=None, metavar="NAME",
                   help="parameter preset: default, paper or fast (docs/method.md); default: default")
    p.add_argument("--mask", action="append", default=None, metavar="PATH",
                   help="label/mask volume on the same grid: only voxels > 0 are segmented"
                        " (train: once per INPUT)")
    if scribbles:
        p.add_argument("--scribbles", default=None, metavar="PATH",
                       help="label volume on the same grid with user scribbles (0 = none)")
    p.add_argument("--channel", nargs="+", default=[], metavar="EXTRA_INPUT",
                   help="co-registered volumes stacked as extra channels (e.g. T2, FLAIR)")
    p.add_argument("--series", default=None, metavar="UID",
                   help="DICOM SeriesInstanceUID to read when a folder holds several")
    p.add_argument("--max-iter", type=positive_int, default=None, metavar="N",
                   help="maximum number of iterations")
    p.add_argument("--min-labels", type=positive_int, default=None, metavar="K",
                   help="stop once the number of labels falls to K")
    p.add_argument("--n-clusters", type=positive_int, default=None, metavar="K",
                   help="merge the clusters down to K labels at the end")
    p.add_argument("--anchor", type=non_negative_float, default=None, metavar="W",
                   help="weight of the intensity mixture in the self-labels (keeps thin "
                        "classes such as CSF; 0 = off, the paper's argmax; default: the preset's)")
    p.add_argument("--min-size", type=non_negative_int, default=None, metavar="N",
                   help="merge connected regions smaller than N voxels into a neighbour")
    add_run_options(p)


def add_run_options(p):
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="torch device (default auto: cuda, then mps, then cpu)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    p.add_argument("--progress", choices=PROGRESS_MODES, default="bar",
                   help="bar: a progress bar on stderr when it is a terminal (default); json: one "
                        "JSON object a line on stdout (stage, iteration, total, fraction, loss, "
                        "labels), for programs running dfcseg; slicer: 3D Slicer's "
                        "<filter-progress> lines; none: no progress")


def add_output_options(p):
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUTPUT if it exists and is a label volume (never a scan or an input)")


def config_from_args(args):
    """DFCConfig from --preset and the explicit overrides."""
    import dataclasses

    from ..engine.config import resolve_config

    try:
        config = resolve_config(args.preset)  # None: the "default" preset
    except DFCError as exc:
        raise InvalidInputError(f"--preset: {exc}") from None
    overrides = {
        "max_iter": getattr(args, "max_iter", None),
        "min_labels": getattr(args, "min_labels", None),
        "n_clusters": getattr(args, "n_clusters", None),
        "min_size": getattr(args, "min_size", None),
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        config = dataclasses.replace(config, **overrides)
    anchor = getattr(args, "anchor", None)
    return config if anchor is None else config.with_anchor(anchor)
