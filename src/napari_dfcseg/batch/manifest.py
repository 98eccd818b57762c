"""The manifest of a batch (:func:`read_manifest` → :class:`BatchRow`) and input fingerprints."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInputError

__all__ = ["BatchRow", "read_manifest", "inputs_stamp", "file_stamp", "MANIFEST_COLUMNS"]

#: manifest columns; only ``input`` is required
MANIFEST_COLUMNS = ("input", "mask", "channels", "output", "series")
_SCAN_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm", ".gz")


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


def file_stamp(path):
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
    return hashlib.sha1(json.dumps([file_stamp(p) for p in row.paths]).encode()).hexdigest()
