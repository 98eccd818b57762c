"""Checks on a file's own framing before a library trusts it.

* ``.nii.gz``: nibabel stops decompressing once it has the voxels, so a
  missing gzip trailer or a failed CRC-32 (a voxel that really differs) went
  unnoticed.  :func:`verify_gzip_stream` reads the stream to its end.
* Detached NRRD / MetaImage headers name their voxel file (``data file:`` /
  ``ElementDataFile``); ITK follows any path, so a header could read
  ``/etc/hostname`` as voxels.  :func:`check_detached_data_file` allows only
  files beside the header: relative paths without ``..``.
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

from ..errors import VolumeIOError

__all__ = ["verify_gzip_stream", "check_detached_data_file"]

CHUNK_BYTES = 1 << 22
MAX_HEADER_BYTES = 1 << 20  # NRRD / MetaImage headers are text of a few kB
_NRRD_DATA_FILE = re.compile(r"^\s*data\s*file\s*:\s*(.*?)\s*$", re.IGNORECASE)
_META_DATA_FILE = re.compile(r"^\s*ElementDataFile\s*=\s*(.*?)\s*$", re.IGNORECASE)
_PATTERN = re.compile(r"^(\S*%\S*)\s+-?\d+\s+-?\d+\s+-?\d+(\s+\d+)?$")  # "slice%03d.raw 1 10 1 [2]"


def verify_gzip_stream(path):
    """Decompress ``path`` to its end (output discarded): trailer, CRC-32 and length must hold.

    Raises
    ------
    VolumeIOError
        The stream is truncated before its trailer, fails its CRC-32 or
        length check, or is followed by data that is not gzip.
    """
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(CHUNK_BYTES):
                pass
    except EOFError:
        raise VolumeIOError(
            f"{path}: damaged .nii.gz: the gzip stream ends before its trailer (the file is truncated)"
        ) from None
    except (gzip.BadGzipFile, zlib.error) as err:
        text = str(err)
        if "CRC" in text:
            detail = "the gzip CRC-32 check failed (the voxels are not those that were written)"
        elif "length" in text.lower():
            detail = "the gzip length check failed (the file is damaged)"
        elif "Not a gzipped file" in text:
            detail = "data that is not gzip follows the gzip stream"
        else:
            detail = f"the gzip stream is damaged ({text})"
        raise VolumeIOError(f"{path}: damaged .nii.gz: {detail}") from None


def _header_lines(path, nrrd):
    with open(path, "rb") as f:
        head = f.read(MAX_HEADER_BYTES)
    text = head.decode("latin-1")
    lines = text.splitlines()
    if nrrd:
        end = lines.index("") if "" in lines else len(lines)
        return lines[:end], lines[end + 1:]
    return lines, []


def _beside(name, path, field):
    """Refuse a data file name that leaves the header's folder."""
    if not name:
        raise VolumeIOError(f"{path}: the {field} field is empty")
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith(("\\", "/", "~")):
        raise VolumeIOError(
            f"{path}: {field} names {name!r}, an absolute path; only files beside the header "
            "(relative names) are read"
        )
    if ".." in posix.parts or ".." in windows.parts:
        raise VolumeIOError(
            f"{path}: {field} names {name!r}, outside the header's folder; only files beside "
            "the header are read"
        )


def check_detached_data_file(path):
    """Refuse a NRRD / MetaImage header whose voxel file(s) lie outside its folder.

    Covers the single-file, ``LIST`` and printf-pattern forms of NRRD's
    ``data file:`` and MetaImage's ``ElementDataFile``.  Attached headers
    (``.nrrd`` without the field, MetaImage ``LOCAL``) pass unchanged.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    nrrd = suffix in (".nrrd", ".nhdr")
    if not nrrd and suffix not in (".mha", ".mhd"):
        return
    try:
        lines, rest = _header_lines(path, nrrd)
    except OSError as err:
        raise VolumeIOError(f"{path}: cannot open it: {err.strerror or err}") from None
    field = "'data file:'" if nrrd else "ElementDataFile"
    pattern = _NRRD_DATA_FILE if nrrd else _META_DATA_FILE
    for index, line in enumerate(lines):
        match = pattern.match(line)
        if not match:
            continue
        value = match.group(1)
        if not nrrd and value.upper() == "LOCAL":
            return
        if value.split()[:1] == ["LIST"] or value.upper().split()[:1] == ["LIST"]:
            names = rest if nrrd else lines[index + 1:]
            for name in (n.strip() for n in names):
                if name:
                    _beside(name, path, field)
            return
        pattern_form = _PATTERN.match(value)
        _beside(pattern_form.group(1) if pattern_form else value, path, field)
        if not nrrd:
            return  # MetaImage: ElementDataFile is the last header field
