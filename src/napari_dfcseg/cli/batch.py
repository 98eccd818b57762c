"""``dfcseg batch``: label a cohort listed in a manifest with one model, resumably.

The work is :func:`napari_dfcseg.batch.run_batch`; this module parses the
options, picks the executor (sequential, a local Dask cluster, a running
scheduler or SLURM jobs), optionally trains the model first, and reports
progress (a bar over rows in a terminal, JSON lines with ``--progress json``).
See ``docs/batch.md``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..errors import InvalidInputError
from ..engine.result import check_cancel
from ._common import EXIT_CANCELLED, non_negative_int, positive_int, say
from ._files import MODEL_SUFFIXES, check_output, save_model
from ._machine_progress import PROGRESS_MODES

#: exit status when some rows were bad inputs (the others are done): as for one bad input
EXIT_BAD_INPUT = 2
#: exit status when some rows failed for an infrastructure reason (rerun to retry them)
EXIT_SOME_FAILED = 3


def register(sub):
    """Add ``batch`` to the sub-parsers ``sub``."""
    p = sub.add_parser("batch", help="label every scan of a CSV manifest with one model (resumable)",
                       description="Label the scans listed in MANIFEST (CSV with a header: input"
                                   " [,mask][,channels][,output][,series]) with MODEL into OUTDIR."
                                   " Rerunning resumes: finished rows are skipped (docs/batch.md).")
    p.add_argument("model", metavar="MODEL", help="model file (.pt) from train or segment --save-model")
    p.add_argument("manifest", metavar="MANIFEST", help="CSV manifest, one scan per line")
    p.add_argument("outdir", metavar="OUTDIR", help="folder for the labels, ledger.jsonl, volumes.csv")
    where = p.add_argument_group("where it runs (default: a local Dask cluster when dask is"
                                 " installed, else in this process)")
    where.add_argument("--sequential", action="store_true",
                       help="one row after another in this process (no Dask)")
    where.add_argument("--workers", type=positive_int, default=None, metavar="N",
                       help="local Dask worker processes (default: one per core, at most the rows)")
    where.add_argument("--torch-threads", type=positive_int, default=None, metavar="T",
                       help="torch threads per worker (default: its share of the cores)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="a running Dask scheduler, e.g. tcp://10.0.0.5:8786")
    where.add_argument("--slurm", action="store_true",
                       help="submit Dask workers as SLURM jobs (dask-jobqueue), adaptively")
    where.add_argument("--slurm-jobs", type=positive_int, default=10, metavar="N",
                       help="most SLURM jobs at once (default 10)")
    where.add_argument("--slurm-cores", type=positive_int, default=4, metavar="C",
                       help="CPU cores per job, all used by torch (default 4)")
    where.add_argument("--slurm-memory", default="16GB", metavar="MEM", help="memory per job (16GB)")
    where.add_argument("--slurm-walltime", default="02:00:00", metavar="TIME",
                       help="walltime per job, [D-]HH:MM[:SS] (default 02:00:00); workers retire"
                            " before it")
    where.add_argument("--slurm-queue", default=None, metavar="PARTITION", help="SLURM partition")
    where.add_argument("--slurm-account", default=None, metavar="ACCOUNT", help="SLURM account")
    where.add_argument("--slurm-directive", action="append", default=[], metavar="LINE",
                       help="extra '#SBATCH LINE' (repeatable), e.g. --slurm-directive='--gres=gpu:1'")
    where.add_argument("--slurm-prologue", action="append", default=[], metavar="COMMAND",
                       help="shell line run before the worker (repeatable), e.g. 'source venv/bin/activate'")
    train = p.add_argument_group("training the model first")
    train.add_argument("--train-first", type=positive_int, default=None, metavar="K",
                       help="if MODEL does not exist, train it on the first K rows, then apply it")
    train.add_argument("--mode", choices=("2d", "3d"), default="2d", help="(with --train-first)")
    train.add_argument("--preset", default=None, metavar="NAME", help="(with --train-first)")
    train.add_argument("--max-iter", type=positive_int, default=None, metavar="N",
                       help="(with --train-first)")
    train.add_argument("--n-clusters", type=positive_int, default=None, metavar="K",
                       help="(with --train-first)")
    train.add_argument("--seed", type=int, default=0, help="(with --train-first) random seed")
    p.add_argument("--min-size", type=non_negative_int, default=None, metavar="N",
                   help="merge connected regions smaller than N voxels into a neighbour")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto",
                   help="torch device on each worker (default auto)")
    p.add_argument("--progress", choices=PROGRESS_MODES, default="bar",
                   help="bar: a bar over rows on stderr when it is a terminal (default); json: one"
                        " JSON line per finished row on stdout (stage 'batch'); slicer: 3D Slicer's"
                        " <filter-progress> lines; none: no progress")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress or summary")
    p.set_defaults(handler=run_batch_command)


class RowProgress:
    """``on_record(record, done, total)``: a tqdm bar over rows, or the machine lines of
    ``--progress json``/``slicer`` (the format of :mod:`._machine_progress`, stage ``batch``)."""

    def __init__(self, kind):
        self.kind, self.bar = kind, None

    def __call__(self, record, done, total):
        fraction = done / total if total else 1.0
        if self.kind == "json":
            line = {"stage": "batch", "iteration": done, "total": total,
                    "fraction": round(fraction, 4), "row": record.get("row"),
                    "input": record.get("input"), "output": record.get("output"),
                    "status": record.get("status"), "error": record.get("error")}
            print(json.dumps(line), flush=True)
        elif self.kind == "slicer":
            print(f"<filter-progress>{fraction:.4f}</filter-progress>", flush=True)
        elif self.kind == "bar":
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc="batch", unit="scan", file=sys.stderr)
            self.bar.n = done
            self.bar.set_postfix(last=record.get("status"), refresh=False)
            self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _progress_kind(args):
    if args.progress in ("json", "slicer"):
        return args.progress
    if args.quiet or args.progress == "none":
        return "none"
    return "bar" if sys.stderr.isatty() else "none"


def _executor(args, n_rows):
    from ..batch import SequentialExecutor
    from ..batch.cluster import dask_available

    chosen = [name for name, on in (("--sequential", args.sequential), ("--scheduler", args.scheduler),
                                    ("--slurm", args.slurm)) if on]
    if len(chosen) > 1:
        raise InvalidInputError(f"{' and '.join(chosen)}: choose one")
    if args.sequential or (not chosen and not dask_available()):
        if args.torch_threads:
            from ..batch import set_torch_threads

            set_torch_threads(args.torch_threads)
        return SequentialExecutor()
    if not dask_available():
        raise InvalidInputError(f"{chosen[0]} needs Dask: pip install 'napari-dfcseg[cluster]'")
    from ..batch.cluster import DaskExecutor, slurm_cluster_kwargs

    slurm = None
    if args.slurm:
        try:
            import dask_jobqueue  # noqa: F401
        except ImportError:
            raise InvalidInputError("--slurm needs dask-jobqueue: pip install 'napari-dfcseg[cluster]'"
                                    ) from None
        slurm = slurm_cluster_kwargs(cores=args.slurm_cores, memory=args.slurm_memory,
                                     walltime=args.slurm_walltime, queue=args.slurm_queue,
                                     account=args.slurm_account, directives=args.slurm_directive,
                                     prologue=args.slurm_prologue)
        slurm["max_jobs"] = args.slurm_jobs
    return DaskExecutor(address=args.scheduler, workers=args.workers,
                        torch_threads=args.torch_threads, slurm=slurm, n_rows=n_rows)


def _train_first(args, rows, cancel):
    """Train MODEL on the first ``--train-first`` rows (their masks and channels)."""
    from ..batch import load_row
    from ..engine.pipeline import train_model
    from ._options import config_from_args

    check_output(args.model, [p for r in rows for p in r.paths], overwrite=False,
                 suffixes=MODEL_SUFFIXES, what="MODEL")
    chosen = rows[: args.train_first]
    inputs = []
    for row in chosen:
        inputs.append(load_row(row)[1])
        check_cancel(cancel)
    model = train_model(inputs, mode=args.mode, config=config_from_args(args), seed=args.seed,
                        device=args.device, cancel=cancel)
    check_cancel(cancel)
    save_model(model, args.model)
    say(args, f"trained on {len(chosen)} scan(s); wrote {args.model}")


def run_batch_command(args, cancel):
    from ..batch import Ledger, SequentialExecutor, plan, read_manifest, run_batch

    outdir = Path(args.outdir)
    if outdir.exists() and not outdir.is_dir():
        raise InvalidInputError(f"OUTDIR {outdir} exists and is not a folder")
    rows = read_manifest(args.manifest, outdir)
    if not os.path.exists(args.model):
        if args.train_first is None:
            raise InvalidInputError(f"MODEL {args.model}: no such file (train it with 'dfcseg train'"
                                    " or pass --train-first K)")
        _train_first(args, rows, cancel)
    progress = RowProgress(_progress_kind(args))
    todo, _, _ = plan(rows, Ledger(outdir).latest())
    # nothing left to label: answer from the ledger without starting a cluster
    executor = _executor(args, len(todo)) if todo else SequentialExecutor()
    try:
        with executor:
            report = run_batch(args.model, rows, outdir, executor=executor, device=args.device,
                               min_size=args.min_size, cancel=cancel, on_record=progress)
    finally:
        progress.close()
    if progress.kind == "json":
        print(json.dumps({"stage": "summary", "labelled": len(report.done),
                          "skipped": len(report.skipped), "bad_input": len(report.bad),
                          "failed": len(report.failed), "cancelled": report.cancelled,
                          "seconds": round(report.seconds, 3)}), flush=True)
    if report.cancelled:
        print(f"dfcseg: interrupted; {len(report.done)} scan(s) finished and kept in"
              f" {outdir / 'ledger.jsonl'}, no partial output", file=sys.stderr, flush=True)
        return EXIT_CANCELLED
    for rec in [*report.bad, *report.failed]:
        print(f"dfcseg: {rec['status']}: {rec['error']}", file=sys.stderr, flush=True)
    say(args, f"{report.summary()}; ledger {outdir / 'ledger.jsonl'}, volumes {outdir / 'volumes.csv'}")
    if report.failed:
        return EXIT_SOME_FAILED
    return EXIT_BAD_INPUT if report.bad else 0
