"""DICOM series discovery and reading, built on SimpleITK's GDCM reader.

GDCM finds the series and sorts each one by ImagePositionPatient; this module
only adds the checks a clinician expects before trusting the geometry
(missing slices, uneven spacing, mixed orientations, gantry tilt), reading
per-file positions through SimpleITK's header reader.  Only non-identifying
tags are read: modality (0008|0060), series description (0008|103e) and the
geometry / rescale tags.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import VolumeIOError
from ._errors import library_errors, one_line

__all__ = ["SeriesInfo", "list_series", "read_dicom", "is_dicom_file"]

TAG_MODALITY = "0008|0060"
TAG_DESCRIPTION = "0008|103e"
TAG_SERIES_UID = "0020|000e"
TAG_POSITION = "0020|0032"
TAG_ORIENTATION = "0020|0037"
TAG_SLOPE = "0028|1053"
TAG_INTERCEPT = "0028|1052"
PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}  # (float / double float) pixel data

# tolerances for the series checks, in mm / direction-cosine units; DICOM
# decimal strings carry ~1e-6 relative precision, scanners round to ~1e-3 mm
POSITION_TOL_MM = 0.01  # two slices closer than this share a position
SPACING_TOL_MM = 0.02  # plus 1% of the spacing: a gap differing more is uneven
TILT_TOL_MM = 0.1  # largest in-plane drift of a slice accepted as "not tilted"
ORIENTATION_TOL = 1e-3


@dataclass(frozen=True)
class SeriesInfo:
    """One DICOM series found in a folder (no patient data).

    Attributes
    ----------
    number : int
        1-based position in :func:`list_series` output; pass it as
        ``read_volume(folder, series=number)``.
    uid : str
        SeriesInstanceUID (also accepted as ``series=``).
    description, modality : str
        Series description and modality ("" when absent).
    n_slices : int
        Number of files in the series.
    files : tuple of str
        The files, in GDCM's slice order.
    """

    number: int
    uid: str
    description: str
    modality: str
    n_slices: int
    files: tuple

    def summary(self):
        """One line for messages and the CLI, e.g. ``2: CT "Head 2.5mm" (120 slices)``."""
        return f'{self.number}: {self.modality or "?"} "{self.description}" ({self.n_slices} slices) uid={self.uid}'


def screen_with_pydicom(path):
    """Refuse files whose element stream pydicom finds broken, before GDCM sees them.

    GDCM trusts corrupt element lengths and may allocate gigabytes for a
    1 kB file; pydicom (when installed) parses the stream without loading
    pixel data.  A file without pixel data cannot be an image either.
    """
    try:
        import pydicom
    except ImportError:  # optional: without it GDCM alone decides
        return
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dataset = pydicom.dcmread(str(path), defer_size=1024, force=True)
            elements = [int(tag) for tag in dataset.keys()]
            for tag in elements:  # parse every element except the (large) pixel data
                if tag not in PIXEL_TAGS:
                    dataset[tag]
    except Exception as err:  # noqa: BLE001 - any pydicom failure means a broken file
        raise VolumeIOError(f"{path}: not a readable DICOM file: {one_line(err)}") from None
    encoding = getattr(dataset, "original_encoding", None)
    implicit = encoding[0] if encoding else getattr(dataset, "is_implicit_VR", True)
    if implicit is False and any("VR lookup failed" in str(w.message) for w in caught):
        # an explicit-VR file carries every element's VR: a missing one means
        # the element stream is broken (GDCM would misread its length)
        raise VolumeIOError(f"{path}: corrupt DICOM file (an element without a valid VR)")
    if not PIXEL_TAGS.intersection(elements):
        raise VolumeIOError(
            f"{path}: not a DICOM image (no pixel data found: not DICOM, a non-image object, or corrupt)"
        )


def _header(path):
    """SimpleITK header reader for ``path`` (pixels are not read)."""
    screen_with_pydicom(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.LoadPrivateTagsOff()
    reader.ReadImageInformation()
    return reader


def _tag(reader, key):
    if not reader.HasMetaDataKey(key):
        return ""
    try:
        return reader.GetMetaData(key).strip().strip("\x00").strip()
    except (UnicodeDecodeError, RuntimeError):
        return ""


def _numbers(text, count):
    try:
        values = [float(v) for v in text.split("\\")]
    except ValueError:
        return None
    return np.array(values) if len(values) == count and np.all(np.isfinite(values)) else None


def _is_whole(text):
    """True for an empty rescale tag or one holding a whole number."""
    try:
        return not text or float(text).is_integer()
    except ValueError:
        return False


def is_dicom_file(path):
    """True when GDCM can parse ``path``'s header as DICOM."""
    try:
        screen_with_pydicom(path)
        return "GDCMImageIO" in sitk.ImageFileReader.GetImageIOFromFileName(str(path)) and bool(
            _header(path).GetMetaDataKeys()
        )
    except Exception:  # noqa: BLE001 - any parse failure means "not DICOM"
        return False


def _series_ids(directory):
    with library_errors(directory, "scan for DICOM series"):
        return list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(directory)))


def list_series(folder):
    """List the DICOM series under ``folder`` (searched recursively).

    Parameters
    ----------
    folder : str or Path
        Folder holding DICOM files, in any sub-folder layout.

    Returns
    -------
    list of SeriesInfo
        Sorted by modality, description and UID; ``number`` is 1-based.

    Raises
    ------
    VolumeIOError
        If ``folder`` is missing or not a folder.
    """
    folder = Path(folder)
    if not folder.exists():
        raise VolumeIOError(f"{folder}: no such file or folder")
    if not folder.is_dir():
        raise VolumeIOError(f"{folder}: not a folder")
    dirs_by_uid = {}
    for directory, _, names in os.walk(folder):
        if names:
            for uid in _series_ids(directory):
                dirs_by_uid.setdefault(uid, []).append(directory)
    found = []
    for uid, dirs in dirs_by_uid.items():
        with library_errors(folder, f"list the files of series {uid}"):
            if len(dirs) == 1:
                files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(dirs[0], uid)
            else:  # one series spread over sub-folders: let GDCM sort them all
                root = os.path.commonpath(dirs)
                files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(root, uid, recursive=True)
        if not files:
            continue
        with library_errors(files[0], "read the DICOM header"):
            first = _header(files[0])
        found.append((_tag(first, TAG_MODALITY), _tag(first, TAG_DESCRIPTION), uid, tuple(files)))
    found.sort()
    return [
        SeriesInfo(number=n, uid=uid, description=desc, modality=mod, n_slices=len(files), files=files)
        for n, (mod, desc, uid, files) in enumerate(found, start=1)
    ]


def _choose(series_list, series, where):
    listing = "; ".join(s.summary() for s in series_list)
    if series is None:
        if len(series_list) == 1:
            return series_list[0]
        raise VolumeIOError(f"{where}: holds {len(series_list)} DICOM series, pick one with series=: {listing}")
    if isinstance(series, str) and series.strip().isdigit():
        series = int(series)
    if isinstance(series, (int, np.integer)) and not isinstance(series, bool):
        if 1 <= series <= len(series_list):
            return series_list[series - 1]
        raise VolumeIOError(f"{where}: no series number {series} (numbers start at 1): {listing}")
    for info in series_list:
        if info.uid == str(series).strip():
            return info
    raise VolumeIOError(f"{where}: no series {series!r}: {listing}")


def _series_files_for(path):
    """Files of the series that the single file ``path`` belongs to, sorted.

    Falls back to ``path`` alone when its folder cannot be scanned or holds
    no other file of its series.
    """
    with library_errors(path, "read the DICOM header"):
        uid = _tag(_header(path), TAG_SERIES_UID)
    if not uid:
        return [str(path)]
    try:
        files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path.parent), uid))
    except (RuntimeError, TypeError):  # a file in the folder upsets GDCM, or the UID is garbled
        return [str(path)]
    if not any(Path(f).resolve() == path.resolve() for f in files):
        return [str(path)]
    return files


def _slice_geometry(files, where):
    """Positions (n, 3), orientation (6,), slope/intercept sets, from each header."""
    positions, orientations, rescales = [], [], set()
    for name in files:
        with library_errors(name, "read the DICOM header"):
            header = _header(name)
        positions.append(_numbers(_tag(header, TAG_POSITION), 3))
        orientations.append(_numbers(_tag(header, TAG_ORIENTATION), 6))
        rescales.add((_tag(header, TAG_SLOPE), _tag(header, TAG_INTERCEPT)))
    if any(p is None for p in positions) or any(o is None for o in orientations):
        raise VolumeIOError(
            f"{where}: {sum(p is None for p in positions)} of {len(files)} slices lack "
            "ImagePositionPatient/ImageOrientationPatient; the slices cannot be ordered in space"
        )
    orientations = np.array(orientations)
    spread = np.abs(orientations - orientations[0]).max()
    if spread > ORIENTATION_TOL:
        n_kinds = len({tuple(np.round(o, 2)) for o in orientations})
        raise VolumeIOError(
            f"{where}: slices have {n_kinds} different orientations (ImageOrientationPatient); "
            "this looks like a localizer or several stacks in one series"
        )
    return np.array(positions), orientations[0], rescales


def check_slice_positions(positions, orientation, where):
    """Check sorted slice positions; return a warning text or ``None``.

    Raises
    ------
    VolumeIOError
        Duplicate positions, a missing slice or a gantry tilt.
    """
    row, col = orientation[:3], orientation[3:]
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    depths = positions @ normal
    close = np.diff(np.sort(depths)) < POSITION_TOL_MM
    if np.any(close):
        raise VolumeIOError(
            f"{where}: {int(np.sum(close))} slice(s) share a position with another; the series "
            "holds several acquisitions (time points, echoes, phases) at the same place"
        )
    along = np.diff(depths)
    if not (np.all(along > 0) or np.all(along < 0)):
        raise VolumeIOError(f"{where}: the slices could not be ordered by position")
    # in-plane drift of every slice from the stack through the first one:
    # direct differences, so DICOM's rounding of positions does not add up
    offsets = positions - positions[0]
    drift = np.linalg.norm(offsets - np.outer(offsets @ normal, normal), axis=1)
    if drift.max() > TILT_TOL_MM:
        last = int(np.argmax(drift))
        tilt = np.degrees(np.arctan2(drift[last], abs(offsets[last] @ normal)))
        raise VolumeIOError(
            f"{where}: slices are stacked at {tilt:.2f} degrees to their normal (gantry/detector tilt); "
            "resample it first, e.g. with dcm2niix or Slicer's 'Acquisition geometry regularization'"
        )
    gaps = np.abs(along)
    typical = float(np.median(gaps))
    ratio = gaps / typical
    uneven = np.abs(gaps - typical) > SPACING_TOL_MM + 0.01 * typical
    missing = uneven & (ratio > 1.5) & (np.abs(ratio - np.round(ratio)) < 0.1)
    if np.any(missing):
        first = int(np.argmax(missing))
        raise VolumeIOError(
            f"{where}: missing slice(s): {int(np.sum(np.round(ratio[missing]) - 1))} gap(s) in a "
            f"{typical:.3g} mm series, first between slices {first + 1} and {first + 2} "
            f"({gaps[first]:.3g} mm apart)"
        )
    if np.any(uneven):
        mean = (gaps.sum()) / len(gaps)
        worst = np.abs(np.cumsum(np.concatenate([[0.0], gaps])) - mean * np.arange(len(gaps) + 1)).max()
        listed = ", ".join(f"{i + 1}-{i + 2}: {gaps[i]:.3g} mm" for i in np.flatnonzero(uneven)[:5])
        return (
            f"{where}: uneven slice spacing (typical {typical:.3g} mm; {listed}); the volume uses the "
            f"mean spacing {mean:.4g} mm, so slices may be up to {worst:.3g} mm from their true position"
        )
    return None


@contextmanager
def _quiet_itk():
    """Silence ITK's own stderr warnings; we raise/warn with clearer text."""
    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)


def read_dicom(path, series=None):
    """Read a DICOM series (from a folder or one of its files) as a SimpleITK image.

    Parameters
    ----------
    path : Path
        A folder (searched recursively) or one DICOM file of the series.
    series : str or int, optional
        SeriesInstanceUID, or the 1-based ``number`` from :func:`list_series`.
        Needed only when the folder holds several series.

    Returns
    -------
    image : SimpleITK.Image
        With rescale slope/intercept applied.
    modality, description : str
    """
    path = Path(path)
    if path.is_dir():
        found = list_series(path)
        if not found:
            raise VolumeIOError(f"{path}: no DICOM files found (searched sub-folders too)")
        files = list(_choose(found, series, path).files)
    else:
        files = _series_files_for(path)
    where = path if len(files) > 1 or path.is_dir() else Path(files[0])
    with library_errors(files[0], "read the DICOM header"):
        first = _header(files[0])
    modality, description = _tag(first, TAG_MODALITY), _tag(first, TAG_DESCRIPTION)
    if len(files) == 1:
        with library_errors(files[0], "read the DICOM image"), _quiet_itk():
            return sitk.ReadImage(str(files[0])), modality, description
    positions, orientation, rescales = _slice_geometry(files, where)
    message = check_slice_positions(positions, orientation, where)
    if message:
        warnings.warn(message, UserWarning, stacklevel=3)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.LoadPrivateTagsOff()
    if len(rescales) > 1 or not all(_is_whole(v) for pair in rescales for v in pair):
        # the series reader would cast every slice to the first slice's type,
        # truncating fractional HU where slope/intercept differ per slice; and
        # a fractional slope makes GDCM return float64: read float32 directly
        reader.SetOutputPixelType(sitk.sitkFloat32)
    with library_errors(where, "read the DICOM series"), _quiet_itk():
        image = reader.Execute()
    return image, modality, description
