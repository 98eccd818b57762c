"""The driver: :func:`run_batch` plans, runs the rows on an executor, ledgers them."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import Cancelled, InvalidInputError
from .ledger import VOLUMES_NAME, Ledger, plan, write_volume_table
from .worker import apply_one

__all__ = ["BatchReport", "SequentialExecutor", "run_batch"]


@dataclass
class BatchReport:
    """What :func:`run_batch` did. Each list holds ledger records."""

    done: list = dataclasses.field(default_factory=list)  # labelled (or reused) in this run
    skipped: list = dataclasses.field(default_factory=list)  # finished by an earlier run
    bad: list = dataclasses.field(default_factory=list)  # bad input (this run or earlier)
    failed: list = dataclasses.field(default_factory=list)  # infrastructure, after retries
    cancelled: bool = False
    seconds: float = 0.0

    @property
    def ok(self):
        return not (self.bad or self.failed or self.cancelled)

    def summary(self):
        return (f"{len(self.done)} labelled, {len(self.skipped)} already done, {len(self.bad)} bad"
                f" input, {len(self.failed)} failed in {self.seconds:.1f} s"
                f"{' (cancelled)' if self.cancelled else ''}")


class SequentialExecutor:
    """Runs the rows one after another in this process (no Dask needed)."""

    name = "sequential"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def run(self, model_path, rows, options, cancel):
        """Yield ``(row, record)`` or ``(row, exception)`` as rows finish."""
        for row in rows:
            try:
                yield row, apply_one(model_path, row, cancel=cancel, **options)
            except Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001 - an infrastructure failure: ledger it
                yield row, exc


def run_batch(model_path, rows, outdir, *, executor=None, device="auto", min_size=None,
              cancel=None, on_record=None):
    """Label ``rows`` into ``outdir``; resume from its ledger; write ``volumes.csv``.

    Parameters
    ----------
    model_path : str or Path
        Model file (``dfcseg train`` or ``segment --save-model``); loaded by each worker.
    rows : list of BatchRow
    outdir : str or Path
        Created if missing; holds ``ledger.jsonl`` and ``volumes.csv``.
    executor : SequentialExecutor or DaskExecutor, optional
        Already entered (a context manager). Default: sequential, in-process.
    device, min_size : passed to :func:`apply_one`.
    cancel : threading.Event, optional
        When set, the batch stops: finished rows stay in the ledger, nothing partial is written.
    on_record : callable(record, n_finished, n_total), optional
        Called in the driver after each row's record is in the ledger (progress bars).

    Returns
    -------
    BatchReport
    """
    start = time.perf_counter()
    model_path = str(Path(model_path).resolve())
    if not Path(model_path).is_file():
        raise InvalidInputError(f"MODEL {model_path}: no such file")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(outdir)
    latest = ledger.latest()
    todo, finished, bad = plan(rows, latest)
    report = BatchReport(skipped=finished, bad=list(bad))
    executor = executor or SequentialExecutor()
    options = {"device": device, "min_size": min_size}
    n_total, n_done = len(rows), 0
    for rec in [*finished, *bad]:
        if rec.pop("new", False):
            ledger.append(rec)
            latest[rec["output"]] = rec
        n_done += 1
        if on_record is not None:
            on_record(rec, n_done, n_total)
    try:
        for row, outcome in executor.run(model_path, todo, options, cancel):
            if isinstance(outcome, BaseException):
                outcome = {"row": row.index, "input": row.input, "output": row.output,
                           "status": "failed", "worker": None, "seconds": None,
                           "error": f"{type(outcome).__name__}: {' '.join(str(outcome).split())}"}
            ledger.append(outcome)
            latest[row.output] = outcome
            {"ok": report.done, "bad-input": report.bad}.get(outcome["status"],
                                                             report.failed).append(outcome)
            n_done += 1
            if on_record is not None:
                on_record(outcome, n_done, n_total)
    except Cancelled:
        report.cancelled = True
    finally:
        write_volume_table(outdir / VOLUMES_NAME, rows, latest)
        report.seconds = time.perf_counter() - start
    return report
