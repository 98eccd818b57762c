"""DICOM series discovery and reading: pydicom screens, SimpleITK's GDCM reads.

Every file of a folder is first parsed by pydicom (:mod:`.dicom_scan`):
GDCM trusts corrupt element lengths, and silently drops files it cannot
parse.  Screened files are grouped by SeriesInstanceUID and sorted along the
slice normal by ImagePositionPatient (GDCM's own rule); this module then adds
the checks a clinician expects before trusting the geometry (damaged or
missing slices, uneven spacing, mixed orientations, gantry tilt, several
volumes at the same positions) and hands GDCM the checked file list to read
the pixels.  Only non-identifying tags are read: modality (0008|0060), series
description (0008|103e) and the geometry / rescale / acquisition tags.
"""

from __future__ import annotations

import os
import warnings
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import VolumeIOError
from ._errors import library_errors
from .dicom_geometry import check_slice_positions, normal_of, pick_volume, slice_geometry, split_volumes
from .dicom_scan import NotDicom, looks_like_dicom_name, scan_file, uid_of_damaged_file

__all__ = ["SeriesInfo", "list_series", "read_dicom", "is_dicom_file"]

MAX_LISTED = 5  # file names quoted in one message


@dataclass(frozen=True)
class SeriesInfo:
    """One DICOM series found in a folder (no patient data).

    Attributes
    ----------
    number : int
        1-based position in :func:`list_series` output; pass it as
        ``read_volume(folder, series=number)`` (CLI: ``--series NUMBER``).
    uid : str
        SeriesInstanceUID (also accepted as ``series=``).
    description, modality : str
        Series description and modality ("" when absent).
    n_slices : int
        Number of images: files, or frames of a multi-frame file.
    files : tuple of str
        The files, sorted along the slice normal.
    multiframe : bool
        One (enhanced) multi-frame file holding a whole volume; such files
        are listed one entry each, even when they share a SeriesInstanceUID.
    """

    number: int
    uid: str
    description: str
    modality: str
    n_slices: int
    files: tuple
    multiframe: bool = False

    def summary(self):
        """One line for messages and the CLI, e.g. ``2: CT "Head 2.5mm" (120 slices) uid=...``."""
        size = (f"1 multi-frame file of {self.n_slices} frames" if self.multiframe
                else f"{self.n_slices} slices")
        return f'{self.number}: {self.modality or "?"} "{self.description}" ({size}) uid={self.uid}'


@dataclass
class _Scan:
    """What screening a folder found: image headers, and the files that could not be used."""

    headers: list
    damaged: list  # (path, reason, series uid found in its bytes or "")


def _listed(paths):
    names = [str(p) for p in paths]
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


def _scan(paths):
    """Screen ``paths`` with pydicom (:func:`.dicom_scan.scan_file`)."""
    headers, damaged = [], []
    for path in paths:
        if not looks_like_dicom_name(path):  # text, pictures, NIfTI...: never parsed as DICOM
            continue
        try:
            header = scan_file(path)
        except NotDicom:
            damaged.append((str(path), "not DICOM", uid_of_damaged_file(path)))
            continue
        except VolumeIOError as err:
            damaged.append((str(path), str(err), uid_of_damaged_file(path)))
            continue
        except OSError as err:
            damaged.append((str(path), f"cannot open it: {err.strerror or err}", ""))
            continue
        if header is not None:
            headers.append(header)
    return _Scan(headers, damaged)


def _files_under(folder, recursive=True):
    if not recursive:
        return sorted(p for p in Path(folder).iterdir() if p.is_file())
    found = []
    for directory, dirs, names in os.walk(folder):
        dirs.sort()
        found += [Path(directory) / n for n in sorted(names)]
    return [p for p in found if p.is_file()]


def _sorted(headers):
    """Headers along the slice normal of the first one (GDCM's ImagePositionPatient rule),
    else by InstanceNumber, then file name."""
    normal = normal_of(headers[0].orientation) if headers[0].orientation is not None else None
    if normal is not None and all(h.position is not None for h in headers):
        return sorted(headers, key=lambda h: (float(h.position @ normal), h.instance or 0, h.path))
    return sorted(headers, key=lambda h: (h.instance is None, h.instance or 0, h.path))


def _series_of(headers):
    """Group headers by SeriesInstanceUID; each multi-frame file is its own entry."""
    by_uid = defaultdict(list)
    for header in headers:
        by_uid[header.uid].append(header)
    entries = []
    for uid, group in by_uid.items():
        single = [h for h in group if h.frames == 1]
        if single:
            entries.append((uid, False, _sorted(single)))
        entries += [(uid, True, [h]) for h in sorted(group, key=lambda h: h.path) if h.frames > 1]
    entries.sort(key=lambda e: (e[2][0].modality, e[2][0].description, e[0], e[1], e[2][0].path))
    return [
        SeriesInfo(number=n, uid=uid, description=group[0].description, modality=group[0].modality,
                   n_slices=group[0].frames if multi else len(group),
                   files=tuple(h.path for h in group), multiframe=multi)
        for n, (uid, multi, group) in enumerate(entries, start=1)
    ], {tuple(h.path for h in group): group for _, _, group in entries}


def _warn_damaged(damaged, where, stacklevel=3):
    if damaged:
        reasons = "; ".join(f"{path}: {reason.split(': ', 1)[-1]}" for path, reason, _ in damaged[:MAX_LISTED])
        warnings.warn(
            f"{where}: skipped {len(damaged)} file(s) that are not readable DICOM images: {reasons}"
            + (f" (and {len(damaged) - MAX_LISTED} more)" if len(damaged) > MAX_LISTED else ""),
            UserWarning, stacklevel=stacklevel,
        )


def _check_folder(folder):
    folder = Path(folder)
    if not folder.exists():
        raise VolumeIOError(f"{folder}: no such file or folder")
    if not folder.is_dir():
        raise VolumeIOError(f"{folder}: not a folder")
    return folder


def list_series(folder):
    """List the DICOM series under ``folder`` (searched recursively).

    Every file is parsed by pydicom first; files that are damaged, or named
    like DICOM but not DICOM, are skipped with a warning naming them.

    Parameters
    ----------
    folder : str or Path
        Folder holding DICOM files, in any sub-folder layout.

    Returns
    -------
    list of SeriesInfo
        Sorted by modality, description and UID; ``number`` is 1-based.
        Each multi-frame file is an entry of its own.

    Raises
    ------
    VolumeIOError
        If ``folder`` is missing or not a folder.
    """
    folder = _check_folder(folder)
    scan = _scan(_files_under(folder))
    _warn_damaged(scan.damaged, folder)
    return _series_of(scan.headers)[0]


def _choose(series_list, series, where):
    listing = "; ".join(s.summary() for s in series_list)
    if series is None:
        if len(series_list) == 1:
            return series_list[0]
        if all(s.multiframe for s in series_list):
            raise VolumeIOError(
                f"{where}: holds {len(series_list)} multi-frame DICOM files, each a separate volume; "
                f"pick one with --series NUMBER (series=NUMBER in Python): {listing}"
            )
        raise VolumeIOError(
            f"{where}: holds {len(series_list)} DICOM series; pick one with --series NUMBER or UID "
            f"(series= in Python): {listing}"
        )
    if isinstance(series, str) and series.strip().isdigit():
        series = int(series)
    if isinstance(series, (int, np.integer)) and not isinstance(series, bool):
        if 1 <= series <= len(series_list):
            return series_list[series - 1]
        raise VolumeIOError(f"{where}: no series number {series} (numbers start at 1): {listing}")
    matches = [info for info in series_list if info.uid == str(series).strip()]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise VolumeIOError(
            f"{where}: {len(matches)} entries share the series UID {series}; pick one by its number: {listing}"
        )
    raise VolumeIOError(f"{where}: no series {series!r}: {listing}")


def is_dicom_file(path):
    """True when pydicom parses ``path`` as a DICOM image (pixel data present)."""
    try:
        return scan_file(path) is not None
    except Exception:  # noqa: BLE001 - any parse failure means "not a DICOM image"
        return False


def _one_file(path):
    """The header of the single file ``path``, or a one-line error saying why it is not an image."""
    try:
        header = scan_file(path)
    except NotDicom:
        header = None
    except VolumeIOError:
        raise
    except OSError as err:
        raise VolumeIOError(f"{path}: cannot open it: {err.strerror or err}") from None
    if header is None:
        raise VolumeIOError(
            f"{path}: not a DICOM image (no pixel data found: not DICOM, a non-image object, or corrupt)"
        )
    return header


def _choose_files(path, series):
    """(headers of the chosen series in slice order, damaged files, where) for a folder or one file."""
    if path.is_dir():
        scan = _scan(_files_under(path))
        found, groups = _series_of(scan.headers)
        if not found:
            detail = ""
            if scan.damaged:
                first = scan.damaged[0][1].split(": ", 1)[-1]
                detail = (f"; {len(scan.damaged)} file(s) could not be read: "
                          f"{_listed(p for p, _, _ in scan.damaged)} (first: {first})")
            raise VolumeIOError(f"{path}: no DICOM files found (searched sub-folders too){detail}")
        info = _choose(found, series, path)
        return groups[info.files], scan.damaged, info, path
    header = _one_file(path)
    if header.frames > 1 or not header.uid:
        return [header], [], None, path
    # the rest of the series: same UID in the same folder (not sub-folders)
    scan = _scan(_files_under(path.parent, recursive=False))
    same = [h for h in scan.headers if h.uid == header.uid and h.frames == 1]
    if not any(Path(h.path).resolve() == path.resolve() for h in same):
        same.append(header)
    where = path.parent if len(same) > 1 else path
    return _sorted(same), scan.damaged, None, where


def _check_damaged(damaged, uid, where):
    """A damaged file of the chosen series is an error; other unreadable files a warning."""
    ours = [p for p, _, found_uid in damaged if found_uid and found_uid == uid]
    if ours:
        reason = next(r for p, r, _ in damaged if p == ours[0])
        raise VolumeIOError(
            f"{where}: {len(ours)} file(s) of this series cannot be read, so slices would be missing: "
            f"{_listed(ours)} ({reason.split(': ', 1)[-1]})"
        )
    # files of other series do not concern this one; files whose series is unknown may
    _warn_damaged([d for d in damaged if not d[2]], where, stacklevel=5)


def _is_whole(text):
    """True for an empty rescale tag or one holding a whole number."""
    try:
        return not text or float(text).is_integer()
    except ValueError:
        return False


@contextmanager
def _quiet_itk():
    """Silence ITK's own stderr warnings; we raise/warn with clearer text."""
    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)


def read_dicom(path, series=None, volume=None):
    """Read a DICOM series (from a folder or one of its files) as a SimpleITK image.

    Parameters
    ----------
    path : Path
        A folder (searched recursively) or one DICOM file of the series.
    series : str or int, optional
        SeriesInstanceUID, or the 1-based ``number`` from :func:`list_series`.
        Needed only when the folder holds several series (or multi-frame files).
    volume : int, optional
        1-based volume of a series whose slice positions repeat (see
        :func:`split_volumes`); needed only for such series.

    Returns
    -------
    image : SimpleITK.Image
        With rescale slope/intercept applied.
    modality, description : str

    Raises
    ------
    VolumeIOError
        Damaged files of the series, inconsistent geometry, an ambiguous
        choice (several series / volumes), or a file GDCM cannot decode.
    """
    path = Path(path)
    headers, damaged, _, where = _choose_files(path, series)
    _check_damaged(damaged, headers[0].uid, where)
    modality, description = headers[0].modality, headers[0].description
    if len(headers) == 1:
        if volume not in (None, 1):
            raise VolumeIOError(f"{where}: no volume {volume}: it holds one volume")
        with library_errors(headers[0].path, "read the DICOM image"), _quiet_itk():
            return sitk.ReadImage(headers[0].path), modality, description
    positions, orientation = slice_geometry(headers, where)
    headers = pick_volume(split_volumes(headers, normal_of(orientation), where), volume, where)
    positions = np.array([h.position for h in headers])
    if len(headers) > 1:
        message = check_slice_positions(positions, orientation, where)
        if message:
            warnings.warn(message, UserWarning, stacklevel=3)
    files = [h.path for h in headers]
    rescales = {h.rescale for h in headers}
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.LoadPrivateTagsOff()
    if len(rescales) > 1 or not all(_is_whole(v) for pair in rescales for v in pair):
        # the series reader would cast every slice to the first slice's type,
        # truncating fractional HU where slope/intercept differ per slice; and
        # a fractional slope makes GDCM return float64: read float32 directly
        reader.SetOutputPixelType(sitk.sitkFloat32)
    with library_errors(where, "read the DICOM series"), _quiet_itk():
        image = reader.Execute() if len(files) > 1 else sitk.ReadImage(files[0])
    return image, modality, description
