"""The driver's files: ``ledger.jsonl`` (:class:`Ledger`), ``volumes.csv`` and the resume :func:`plan`."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from .manifest import file_stamp, inputs_stamp

__all__ = ["Ledger", "write_volume_table", "plan", "LEDGER_NAME", "VOLUMES_NAME", "STATUSES"]

#: statuses a ledger line can have: ``ok`` (labels written), ``bad-input`` (a DFCError:
#: the scan, mask or model is unusable; not retried), ``failed`` (an infrastructure
#: failure that survived Dask's retries; retried by the next run)
STATUSES = ("ok", "bad-input", "failed")
LEDGER_NAME = "ledger.jsonl"
VOLUMES_NAME = "volumes.csv"


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
        elif rec["status"] == "ok" and rec.get("output_stamp") == file_stamp(row.output):
            finished.append(rec)
        elif rec["status"] == "bad-input" and rec.get("inputs_stamp") == inputs_stamp(row):
            bad.append(rec)
        else:
            todo.append(row)
    return todo, finished, bad
