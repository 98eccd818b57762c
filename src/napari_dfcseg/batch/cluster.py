"""Run a batch on Dask: a local cluster, a running scheduler, or SLURM jobs.

Needs the optional ``cluster`` extra (``pip install 'napari-dfcseg[cluster]'``:
``dask[distributed]``, ``dask-jobqueue``). Rows are sent with
``client.map(apply_one, ..., retries=2, pure=False)`` and taken as they
finish (``as_completed``); the model travels as a path and each worker
process loads it once (:func:`napari_dfcseg.batch.apply_one`). A row that
raises (a lost worker, out of memory) is retried up to twice; a bad input
returns a record and is never retried.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid

from ..errors import Cancelled, InvalidInputError
from .worker import apply_one, set_torch_threads

__all__ = ["DaskExecutor", "dask_available", "machine_cores", "slurm_cluster_kwargs",
           "walltime_seconds"]

#: how often a running row asks the scheduler whether the batch was cancelled
CANCEL_POLL_S = 0.5
#: how long a cancelled batch waits for running rows to stop before dropping them
CANCEL_GRACE_S = 30.0
#: Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's
#: adaptive mmap threshold: every large torch tensor is then a fresh mmap + page faults.
#: Measured here: a 40x192x160 row took 6.6 s instead of 4.3 s (1.5x). Our local workers
#: do not get it (a value the user exported is still inherited).
_KEEP_ADAPTIVE_MALLOC = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def dask_available():
    """True when ``distributed`` can be imported (the ``cluster`` extra)."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def machine_cores():
    """CPU cores this process may use (its affinity set, e.g. a SLURM allocation)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class _ClusterCancel:
    """Picklable ``cancel`` for workers: a named ``distributed.Event``, polled at most every 0.5 s."""

    def __init__(self, name):
        self.name = name
        self._event = None
        self._checked = 0.0
        self._fired = False

    def __getstate__(self):
        return {"name": self.name}

    def __setstate__(self, state):
        self.__init__(state["name"])

    def is_set(self):
        now = time.monotonic()
        if not self._fired and now - self._checked >= CANCEL_POLL_S:
            from distributed import Event

            self._checked = now
            self._event = self._event or Event(self.name)
            self._fired = self._event.is_set()
        return self._fired


def _worker_plugin(n, *, ignore_sigint=False):
    """A WorkerPlugin: torch gets ``n`` threads in each worker (None: its cores / its Dask
    threads); with ``ignore_sigint`` (a local cluster, whose workers share the terminal's
    process group) Ctrl-C reaches only the driver, which stops the batch cleanly."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class BatchWorker(WorkerPlugin):
        name = "dfcseg-batch-worker"

        def __init__(self, n, ignore_sigint):
            self.n, self.ignore_sigint = n, ignore_sigint

        def setup(self, worker):
            set_torch_threads(self.n or max(1, machine_cores() // max(1, worker.state.nthreads)))
            if self.ignore_sigint:
                import signal
                import threading

                if threading.current_thread() is threading.main_thread():
                    signal.signal(signal.SIGINT, signal.SIG_IGN)

    return BatchWorker(n, ignore_sigint)


# --------------------------------------------------------------------------- SLURM


def walltime_seconds(text):
    """``[D-]HH:MM[:SS]`` or ``MM`` (SLURM's forms) in seconds."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        raise InvalidInputError(f"--slurm-walltime {text!r}: expected [D-]HH:MM[:SS]")
    days, a, b, c = (int(g) if g else None for g in m.groups())
    if b is None:  # plain minutes
        seconds = a * 60
    elif c is None:  # HH:MM
        seconds = a * 3600 + b * 60
    else:
        seconds = a * 3600 + b * 60 + c
    seconds += (days or 0) * 86400
    if seconds < 600:
        raise InvalidInputError(f"--slurm-walltime {text!r}: at least 10 minutes, so that a"
                                " worker can finish a scan before SLURM ends its job")
    return seconds


def slurm_cluster_kwargs(*, cores=4, memory="16GB", walltime="02:00:00", queue=None,
                         account=None, directives=(), prologue=()):
    """Keyword arguments of ``dask_jobqueue.SLURMCluster`` for one scan at a time per job.

    Each job is one worker process with one Dask thread (one scan at a
    time) and ``cores`` torch threads. Workers retire themselves
    (``--lifetime``) before SLURM's walltime kills them, staggered so they do
    not all leave at once; Dask moves their rows elsewhere and ``adapt``
    submits replacement jobs.
    """
    total = walltime_seconds(walltime)
    margin = max(300, total // 10)  # time to finish the scan in hand
    stagger = min(300, total // 20)
    lifetime = total - margin - stagger
    return {
        "cores": 1,  # Dask threads per job: one scan at a time
        "processes": 1,
        "job_cpu": int(cores),  # what SLURM books: torch uses them all
        "memory": memory,
        "walltime": walltime,
        "queue": queue,
        "account": account,
        "job_extra_directives": list(directives),
        "job_script_prologue": [f"export OMP_NUM_THREADS={int(cores)}", *prologue],
        "worker_extra_args": ["--lifetime", f"{lifetime}s", "--lifetime-stagger", f"{stagger}s"],
        "scheduler_options": {"dashboard_address": None},
    }


# --------------------------------------------------------------------------- executor


class DaskExecutor:
    """Run rows on Dask workers. Use as a context manager.

    Parameters
    ----------
    address : str, optional
        A running scheduler (``tcp://host:8786``); the cluster is left running.
    workers : int, optional
        Local cluster only: worker processes (default: one per core, at most the rows).
    torch_threads : int, optional
        Torch threads in each worker (default: the cores divided among the workers;
        on a running cluster: each worker's cores divided by its Dask threads).
    slurm : dict, optional
        :func:`slurm_cluster_kwargs` plus ``max_jobs``: a SLURMCluster, adapting 0..max_jobs.
    """

    name = "dask"

    def __init__(self, *, address=None, workers=None, torch_threads=None, slurm=None,
                 n_rows=None):
        self.address, self.workers, self.torch_threads = address, workers, torch_threads
        self.slurm, self.n_rows = slurm, n_rows
        self.cluster = self.client = None

    def __enter__(self):
        import dask
        from distributed import Client, LocalCluster

        threads = self.torch_threads
        if self.address:
            self.client = Client(self.address)
        elif self.slurm is not None:
            from dask_jobqueue import SLURMCluster

            options = dict(self.slurm)
            max_jobs = int(options.pop("max_jobs", 10))
            self.cluster = SLURMCluster(**options)
            self.cluster.adapt(minimum_jobs=0, maximum_jobs=max_jobs)
            self.client = Client(self.cluster)
            threads = threads or options.get("job_cpu")
        else:
            cores = machine_cores()
            n = self.workers or max(1, min(cores, self.n_rows or cores))
            threads = threads or max(1, cores // n)
            # processes: torch and the readers hold the GIL; one Dask thread each: one scan at a
            # time; worker logs silenced: each row's error is in the ledger and on one stderr line
            with dask.config.set(_KEEP_ADAPTIVE_MALLOC):
                self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                            dashboard_address=":0", silence_logs=logging.CRITICAL)
            self.client = Client(self.cluster)
        local = not self.address and self.slurm is None
        self.client.register_plugin(_worker_plugin(threads, ignore_sigint=local))
        return self

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        return False

    @property
    def description(self):
        if self.address:
            return f"Dask scheduler {self.address}"
        if self.slurm is not None:
            return "Dask SLURMCluster (adaptive)"
        return f"Dask LocalCluster, {len(self.cluster.workers)} worker processes"

    def run(self, model_path, rows, options, cancel):
        """Yield ``(row, record)`` or ``(row, exception)`` as rows finish.

        When ``cancel`` fires, running rows are told to stop (a cluster-wide
        Event), rows that still finish are yielded, the rest are cancelled,
        and :class:`~napari_dfcseg.errors.Cancelled` is raised.
        """
        from distributed import Event, as_completed, wait

        if not rows:
            return
        batch_id = uuid.uuid4().hex[:10]
        stop = Event(f"dfcseg-cancel-{batch_id}", client=self.client)
        futures = self.client.map(
            apply_one, [model_path] * len(rows), rows,
            key=[f"dfcseg-row-{row.index}-{batch_id}" for row in rows],
            retries=2, pure=False, cancel=_ClusterCancel(stop.name), **options)
        row_of = {f.key: row for f, row in zip(futures, rows)}
        yielded = set()
        finished = as_completed(futures)
        try:
            while not finished.is_empty():
                if cancel is not None and cancel.is_set():
                    raise Cancelled("batch cancelled")
                ready = finished.next_batch(block=False)
                if not ready:
                    time.sleep(0.1)
                for future in ready:
                    yielded.add(future.key)
                    yield row_of[future.key], _outcome(future)
        except (Cancelled, KeyboardInterrupt):
            stop.set()  # running rows raise Cancelled at their next check, before writing
            busy = {k for keys in self.client.processing().values() for k in keys}
            # a row that just finished (its file is written) has left `processing` but its
            # future may not be done here yet: count it busy, or its record would be dropped
            busy |= {k for k, holders in self.client.who_has().items() if holders}
            self.client.cancel([f for f in futures if not f.done() and f.key not in busy])
            pending = [f for f in futures if not f.done() and f.key in busy]
            wait(pending, timeout=CANCEL_GRACE_S)
            # rows that finished despite the stop, and rows already finished that as_completed
            # had not handed out yet (their files are written): keep their records
            for future in futures:
                if future.key not in yielded and future.status == "finished":
                    outcome = _outcome(future)
                    if not isinstance(outcome, BaseException):
                        yield row_of[future.key], outcome
            raise
        finally:
            self.client.cancel([f for f in futures if not f.done()])


def _outcome(future):
    try:
        return future.result()
    except Cancelled:
        raise
    except Exception as exc:  # noqa: BLE001 - KilledWorker, MemoryError, ...: a failed row
        return exc
