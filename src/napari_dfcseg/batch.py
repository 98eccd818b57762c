"""Cohorts: label every scan of a manifest with one reference model, resumably.

The pieces, all Qt-free and usable from Python:

- :func:`read_manifest` reads a CSV manifest into :class:`BatchRow` objects;
- :func:`apply_one` labels one row (the unit of work a cluster runs);
- :class:`Ledger` is ``OUTDIR/ledger.jsonl``, one JSON line per finished row;
- :func:`run_batch` plans what is left to do, runs it on an executor
  (in-process :class:`SequentialExecutor`, or
  :class:`~napari_dfcseg.batch_cluster.DaskExecutor`), appends to the ledger
  and writes ``OUTDIR/volumes.csv``.

Only the driver (the process running :func:`run_batch`) writes the ledger and
the volume table; workers write label volumes, each through
:func:`~napari_dfcseg.io.write_labels` (temporary file + rename, never over a
file that is not a label volume), so an interrupted batch leaves only whole
files behind. See ``docs/batch.md``.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import Cancelled, DFCError, InvalidInputError

__all__ = ["BatchRow", "BatchReport", "Ledger", "SequentialExecutor", "read_manifest",
           "apply_one", "load_row", "run_batch", "write_volume_table", "set_torch_threads"]

#: manifest columns; only ``input`` is required
MANIFEST_COLUMNS = ("input", "mask", "channels", "output", "series")
#: statuses a ledger line can have: ``ok`` (labels written), ``bad-input`` (a DFCError:
#: the scan, mask or model is unusable; not retried), ``failed`` (an infrastructure
#: failure that survived Dask's retries; retried by the next run)
STATUSES = ("ok", "bad-input", "failed")
_SCAN_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm", ".gz")
LEDGER_NAME = "ledger.jsonl"
VOLUMES_NAME = "volumes.csv"


@dataclass(frozen=True)
class BatchRow:
    """One line of the manifest, with absolute paths.

    Attributes
    ----------
    index : int
        0-based position in the manifest (data rows only).
    input : str
        Scan file or DICOM folder.
    output : str
        Label volume to write (``.nii`` or ``.nii.gz``), inside OUTDIR unless absolute.
    mask : str or None
    channels : tuple of str
        Extra co-registered channels, in order (as when the model was trained).
    series : str or None
        DICOM SeriesInstanceUID (or 1-based number) when a folder holds several.
    """

    index: int
    input: str
    output: str
    mask: str | None = None
    channels: tuple = ()
    series: str | None = None

    @property
    def paths(self):
        """Every file this row reads."""
        return [p for p in (self.input, self.mask, *self.channels) if p]


def _default_output_name(path):
    name = Path(path.rstrip("/\\")).name
    lower = name.lower()
    for suffix in _SCAN_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return f"{name}_labels.nii.gz"


def read_manifest(path, outdir):
    """Read a CSV manifest into :class:`BatchRow` objects.

    The first line names the columns: ``input`` (required: a scan file or a
    DICOM folder), and optionally ``mask``, ``channels`` (extra channels
    separated by ``;``), ``output`` (file name in OUTDIR; default
    ``<input name>_labels.nii.gz``) and ``series``. Relative input paths are
    relative to the manifest's folder; blank lines and lines starting with
    ``#`` are skipped.

    Raises
    ------
    InvalidInputError
        A missing or empty manifest, an unknown column, a row without input,
        an output that is not NIfTI, or two rows writing the same output;
        the message names the manifest and the line.
    """
    path, outdir = Path(path), Path(outdir)
    if not path.is_file():
        raise InvalidInputError(f"MANIFEST {path}: no such file")
    base = path.resolve().parent

    def resolve(text, root):
        text = text.strip()
        return str((root / Path(text).expanduser()).resolve()) if text else None

    with open(path, newline="", encoding="utf-8-sig") as f:
        lines = [(n, line) for n, line in enumerate(f, start=1)
                 if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise InvalidInputError(f"MANIFEST {path}: empty (the first line must name the columns,"
                                " e.g. 'input,mask,output')")
    reader = csv.reader([line for _, line in lines])
    header = [h.strip().lower() for h in next(reader)]
    unknown = [h for h in header if h not in MANIFEST_COLUMNS]
    if "input" not in header or unknown:
        raise InvalidInputError(f"MANIFEST {path}: line {lines[0][0]}: columns must include"
                                f" 'input' and be among {', '.join(MANIFEST_COLUMNS)};"
                                f" got {', '.join(header)}")
    rows, owner = [], {}
    for (line_no, _), values in zip(lines[1:], reader):
        cells = dict(zip(header, values + [""] * (len(header) - len(values))))
        where = f"MANIFEST {path}: line {line_no}"
        if not cells["input"].strip():
            raise InvalidInputError(f"{where}: no input")
        inp = resolve(cells["input"], base)
        out = resolve(cells.get("output", "") or _default_output_name(cells["input"].strip()),
                      outdir.resolve())
        if not out.lower().endswith((".nii", ".nii.gz")):
            raise InvalidInputError(f"{where}: output {out} must end with .nii or .nii.gz")
        if out in owner:
            raise InvalidInputError(f"{where}: output {out} is also line {owner[out]}'s output")
        owner[out] = line_no
        channels = tuple(resolve(c, base) for c in cells.get("channels", "").split(";") if c.strip())
        row = BatchRow(index=len(rows), input=inp, output=out, mask=resolve(cells.get("mask", ""), base),
                       channels=channels, series=cells.get("series", "").strip() or None)
        if out in row.paths:
            raise InvalidInputError(f"{where}: output {out} is one of the row's inputs")
        rows.append(row)
    if not rows:
        raise InvalidInputError(f"MANIFEST {path}: no rows after the header")
    return rows


# --------------------------------------------------------------------------- fingerprints


def _file_stamp(path):
    """(size, mtime_ns) of a file; for a folder, a digest of every file inside it."""
    p = Path(path)
    try:
        if p.is_dir():
            digest = hashlib.sha1()
            for f in sorted(q for q in p.rglob("*") if q.is_file()):
                st = f.stat()
                digest.update(f"{f.relative_to(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            return digest.hexdigest()
        st = p.stat()
        return [st.st_size, st.st_mtime_ns]
    except OSError:
        return None


def inputs_stamp(row):
    """A fingerprint of the row's input files: a bad input is retried once it changes."""
    return hashlib.sha1(json.dumps([_file_stamp(p) for p in row.paths]).encode()).hexdigest()


# --------------------------------------------------------------------------- worker side

_MODEL = {}  # per process: (path, size, mtime) -> Model; a worker loads the model once
_STATE = {"model_loads": 0}


def set_torch_threads(n):
    """Give torch ``n`` intra-op threads in this process (a worker's share of the cores)."""
    import torch

    n = max(1, int(n))
    torch.set_num_threads(n)
    os.environ["OMP_NUM_THREADS"] = str(n)
    _STATE["torch_threads"] = n


def _torch_threads():
    import torch

    return torch.get_num_threads()


def _model(model_path):
    from .engine.model import load_model

    key = (str(Path(model_path).resolve()), *(_file_stamp(model_path) or [None, None]))
    if key not in _MODEL:
        _MODEL.clear()
        _MODEL[key] = load_model(model_path)
        _STATE["model_loads"] += 1
    return _MODEL[key]


def _where():
    """The Dask worker's address (or ``"local"``), for the ledger."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "local"


def _log_event(kind, row):
    """An audit event on the Dask scheduler (topic ``dfcseg-batch``); nothing in-process."""
    try:
        from distributed import get_worker

        get_worker().log_event("dfcseg-batch", {"event": kind, "row": row.index, "pid": os.getpid()})
    except (ImportError, ValueError):
        pass


def _read(path, what, series=None):
    """read_volume; a missing file or a reader library's complaint is the user's (bad input),
    other OS errors (a lost network file system) are the infrastructure's and propagate."""
    from .io import read_volume

    if not os.path.exists(path):
        raise InvalidInputError(f"{what} {path}: no such file or folder")
    try:
        return read_volume(path, series=series)
    except DFCError:
        raise
    except (ValueError, RuntimeError, EOFError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InvalidInputError(f"{what} {path}: cannot read it ({first_line})") from None


def load_row(row):
    """The row's scan and its :class:`~napari_dfcseg.engine.inputs.EngineInputs`.

    As ``dfcseg apply`` reads them: :func:`~napari_dfcseg.engine.inputs.assemble_inputs`
    stacks the channels and applies the mask rule, so the labels are the same.
    """
    from .engine.inputs import assemble_inputs

    volume = _read(row.input, "input", series=row.series)
    channels = [_read(p, "channel").array for p in row.channels]
    mask = None if row.mask is None else _read(row.mask, "mask").array
    inputs = assemble_inputs(
        volume.array, channel_axis=-1 if volume.array.ndim == 4 else None, channels=channels,
        mask=mask, spacing=tuple(volume.spacing),
        names={"image": f"input {row.input}", "mask": f"mask {row.mask}",
               "channels": [f"channel {p}" for p in row.channels]})
    return volume, inputs


def _existing_labels(path, spatial_shape):
    """The labels in ``path`` if it is a whole label volume on the scan's grid, else None."""
    from .io import is_label_volume

    if not Path(path).is_file() or not is_label_volume(path):
        return None
    import nibabel as nib

    try:
        data = np.asarray(nib.load(str(path)).dataobj)  # reads (and inflates) every byte
    except Exception:  # noqa: BLE001 - truncated or damaged: not complete
        return None
    labels = np.ascontiguousarray(data.T)  # NIfTI (i, j, k) -> (z, y, x)
    return labels if labels.shape == tuple(spatial_shape) else None


def _volumes(labels, volume, image):
    """Per-label voxel counts, mL per voxel and mean intensity (first channel, scan units)."""
    flat = np.asarray(labels).ravel().astype(np.int64)
    first = np.asarray(image[..., 0], dtype=np.float64).ravel()  # (z, y, x, c): channels last
    counts = np.bincount(flat)
    sums = np.bincount(flat, weights=first, minlength=counts.size)
    voxels = {str(k): int(c) for k, c in enumerate(counts) if k > 0 and c > 0}
    means = {k: float(sums[int(k)] / counts[int(k)]) for k in voxels}
    return {"voxels": voxels, "mean_intensity": means,
            "ml_per_voxel": float(np.prod(volume.spacing)) / 1000.0}


def apply_one(model_path, row, *, device="auto", min_size=None, cancel=None):
    """Label one manifest row with the model at ``model_path``; return its ledger record.

    The model is loaded once per process and kept. A row whose output already
    exists as a complete label volume on the scan's grid is not labelled again
    (its record says ``"reused": true``).

    Returns
    -------
    dict
        ``status`` ``"ok"`` (with ``voxels``, ``mean_intensity``,
        ``ml_per_voxel``, ``labels``, ``seconds``, ``device``, ``worker``) or
        ``"bad-input"`` (with ``error``, the one-line message) when the scan,
        mask, channels or model is unusable: a :class:`~napari_dfcseg.errors.DFCError`,
        which a retry cannot fix.

    Raises
    ------
    Cancelled
        ``cancel`` fired: nothing was written.
    Exception
        Anything else (out of memory, a lost file system, a bug): raised, so
        that a scheduler retries the row elsewhere.
    """
    from .engine.result import check_cancel

    start = time.perf_counter()
    check_cancel(cancel)
    _log_event("start", row)
    record = {"row": row.index, "input": row.input, "output": row.output, "status": "ok",
              "error": None, "worker": _where(), "host": socket.gethostname(), "pid": os.getpid(),
              "inputs_stamp": inputs_stamp(row), "reused": False}
    try:
        volume, inputs = load_row(row)
        labels = _existing_labels(row.output, inputs.shape)
        if labels is not None:
            record.update(reused=True, device=None)
        else:
            model = _model(model_path)
            if min_size is not None:
                model = dataclasses.replace(model, config=dataclasses.replace(model.config,
                                                                              min_size=min_size))
            check_cancel(cancel)
            from .engine.pipeline import apply_model

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UserWarning)
                result = apply_model(model, inputs, device=device, cancel=cancel)
            labels = result.labels
            record["warnings"] = sorted({" ".join(str(w.message).split()) for w in caught})
            check_cancel(cancel)
            from .io import write_labels

            Path(row.output).parent.mkdir(parents=True, exist_ok=True)
            write_labels(row.output, labels, like=volume)
            _log_event("written", row)
            record["device"] = result.device
            record["torch_threads"] = _torch_threads()
    except Cancelled:
        raise
    except DFCError as exc:
        record.update(status="bad-input", error=" ".join(str(exc).split()) or type(exc).__name__)
    else:
        record.update(_volumes(labels, volume, inputs.image))
        record["labels"] = len(record["voxels"])
        record["output_stamp"] = _file_stamp(row.output)
    record["seconds"] = round(time.perf_counter() - start, 3)
    record["model_loads"] = _STATE["model_loads"]
    return record


# --------------------------------------------------------------------------- ledger and table


class Ledger:
    """``OUTDIR/ledger.jsonl``: one JSON object per finished row, appended and fsync'ed.

    The newest line for an output wins. A line cut short by a crash (the
    last one) is ignored when reading and the next append starts a new line.
    """

    def __init__(self, outdir):
        self.path = Path(outdir) / LEDGER_NAME

    def records(self):
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "output" in record:
                out.append(record)
        return out

    def latest(self):
        """output path -> its newest record."""
        return {r["output"]: r for r in self.records()}

    def append(self, record):
        text = json.dumps(record, sort_keys=True) + "\n"
        with open(self.path, "a+b") as f:
            f.seek(0, os.SEEK_END)
            if f.tell():
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    text = "\n" + text
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())


def write_volume_table(path, rows, latest):
    """``volumes.csv``: one line per labelled scan (manifest order), voxels, mL, mean intensity.

    Columns: ``input, output, ml_per_voxel, total_ml``, then for each label k
    present in any scan: ``label_k_voxels, label_k_ml, label_k_mean_intensity``.
    Written to a temporary file and renamed; left untouched when unchanged.
    """
    done = [latest[r.output] for r in rows if latest.get(r.output, {}).get("status") == "ok"
            and latest[r.output].get("input") == r.input]
    labels = sorted({int(k) for rec in done for k in rec["voxels"]})
    header = ["input", "output", "ml_per_voxel", "total_ml"]
    for k in labels:
        header += [f"label_{k}_voxels", f"label_{k}_ml", f"label_{k}_mean_intensity"]
    lines = [header]
    for rec in done:
        ml = rec["ml_per_voxel"]
        line = [rec["input"], rec["output"], f"{ml:.6g}",
                f"{sum(rec['voxels'].values()) * ml:.4f}"]
        for k in labels:
            n = rec["voxels"].get(str(k), 0)
            mean = rec["mean_intensity"].get(str(k))
            line += [str(n), f"{n * ml:.4f}", "" if mean is None else f"{mean:.6g}"]
        lines.append(line)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(lines)
    try:
        if path.is_file() and path.read_bytes() == tmp.read_bytes():
            return path
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# --------------------------------------------------------------------------- driver


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


def plan(rows, latest):
    """Split rows into (to do, finished earlier, bad input earlier) from the ledger.

    A row is finished when its newest record is ``ok`` for the same input and
    the output file is still the one then written (same size and mtime); it is
    a known bad input when its newest record is ``bad-input`` and its input
    files have not changed since, or when its output exists and the ledger says
    it holds another input's labels. Everything else is (re)done.
    """
    todo, finished, bad = [], [], []
    for row in rows:
        rec = latest.get(row.output)
        if rec is not None and rec.get("input") != row.input and Path(row.output).exists():
            # the manifest now gives this output another scan: never label over the old one
            bad.append({"row": row.index, "input": row.input, "output": row.output,
                        "status": "bad-input", "inputs_stamp": inputs_stamp(row), "seconds": 0.0,
                        "worker": None, "new": True,
                        "error": f"output {row.output} holds the labels of {rec.get('input')}"
                                 " (ledger): remove it or give this row another output"})
        elif rec is None or rec.get("input") != row.input:
            todo.append(row)
        elif rec["status"] == "ok" and rec.get("output_stamp") == _file_stamp(row.output):
            finished.append(rec)
        elif rec["status"] == "bad-input" and rec.get("inputs_stamp") == inputs_stamp(row):
            bad.append(rec)
        else:
            todo.append(row)
    return todo, finished, bad


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
