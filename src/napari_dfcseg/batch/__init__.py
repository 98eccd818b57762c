"""Cohorts: label every scan of a manifest with one reference model, resumably.

The pieces, all Qt-free and usable from Python:

- :func:`read_manifest` reads a CSV manifest into :class:`BatchRow` objects (``manifest``);
- :func:`apply_one` labels one row, the unit of work a cluster runs (``worker``);
- :class:`Ledger` is ``OUTDIR/ledger.jsonl``, one JSON line per finished row, and
  :func:`plan` decides from it what is left to do (``ledger``);
- :func:`run_batch` runs the rows on an executor (in-process
  :class:`SequentialExecutor`, or :class:`~napari_dfcseg.batch.cluster.DaskExecutor`),
  appends to the ledger and writes ``OUTDIR/volumes.csv`` (``run``);
- ``cluster``: the Dask executor (optional ``cluster`` extra).

Only the driver (the process running :func:`run_batch`) writes the ledger and
the volume table; workers write label volumes, each through
:func:`~napari_dfcseg.io.write_labels` (temporary file + rename, never over a
file that is not a label volume), so an interrupted batch leaves only whole
files behind. See ``docs/batch.md``.
"""

from .ledger import LEDGER_NAME, STATUSES, VOLUMES_NAME, Ledger, plan, write_volume_table
from .manifest import MANIFEST_COLUMNS, BatchRow, inputs_stamp, read_manifest
from .run import BatchReport, SequentialExecutor, run_batch
from .worker import apply_one, load_row, set_torch_threads

__all__ = ["BatchRow", "BatchReport", "Ledger", "SequentialExecutor", "read_manifest",
           "apply_one", "load_row", "run_batch", "plan", "write_volume_table",
           "set_torch_threads", "inputs_stamp", "MANIFEST_COLUMNS", "STATUSES", "LEDGER_NAME",
           "VOLUMES_NAME"]
