"""``dfcseg demo``: segment the synthetic head phantom, score it, write NIfTI files and a PNG."""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidInputError
from ._common import positive_int, run_engine, say
from ._options import add_run_options, config_from_args


def register(sub):
    """Add ``demo`` to the sub-parsers ``sub``."""
    p = sub.add_parser("demo", help="segment a synthetic head phantom and write an overview")
    p.add_argument("outdir", nargs="?", default="demo-output", metavar="OUTDIR",
                   help="folder for the results (default ./demo-output)")
    p.add_argument("--preset", default="default", metavar="NAME",
                   help="parameter preset (default: default)")
    # measured on the phantom: 60 iterations of the default preset give a mean brain Dice of
    # 0.92 in 43 CPU-s, its full 300 give 0.89 in 270 CPU-s (docs/cli.md)
    p.add_argument("--max-iter", type=positive_int, default=60, metavar="N",
                   help="maximum number of iterations (default 60)")
    p.add_argument("--shape", type=positive_int, nargs=3, default=(40, 112, 96),
                   metavar=("Z", "Y", "X"), help="phantom size in voxels (default 40 112 96)")
    add_run_options(p)
    p.add_argument("--overwrite", action="store_true",
                   help="replace the files of an earlier demo in OUTDIR (without it, any existing "
                        "one is refused)")
    p.set_defaults(handler=run_demo)


def run_demo(args, cancel):
    """Segment the synthetic head phantom, score it, write NIfTI files and a PNG."""
    from ..demo import run_demo as demo

    from ..demo import DEMO_FILES
    from ..errors import VolumeIOError
    from ..io import Output, check_outputs, label_outputs

    outdir = Path(args.outdir)
    if outdir.exists() and not outdir.is_dir():
        raise InvalidInputError(f"OUTDIR {outdir} exists and is not a folder")
    if outdir.is_dir():  # before the minute of work: never replace a file without --overwrite
        planned = []
        for name in DEMO_FILES:
            planned += label_outputs(outdir / name) if "labels" in name or "truth" in name \
                else [Output(outdir / name)]
        try:
            check_outputs(planned, overwrite=args.overwrite)
        except VolumeIOError as exc:
            raise InvalidInputError(f"OUTDIR: {exc}") from None
    config = config_from_args(args)
    report = run_engine(args, "demo", lambda progress: demo(
        outdir, shape=tuple(args.shape), config=config, seed=args.seed, device=args.device,
        progress=progress, cancel=cancel, overwrite=args.overwrite), cancel)
    say(args, report)
    return 0
