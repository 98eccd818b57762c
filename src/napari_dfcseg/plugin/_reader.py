"""npe2 reader: NIfTI, NRRD, MHA/MHD and DICOM (file or folder) in patient coordinates.

A label volume opens as a **Labels** layer (usable as Region or Scribbles,
editable with the brush), with the names and colours of its ITK-SNAP label
description file when there is one; every other scan as an Image layer.
A file is a label volume when it is integer-valued and either is a NIfTI
with intent "label" (1002, what the writer writes), has a ``.labels.txt``
beside it, or is named like one (``label``, ``seg``, ``mask`` in the file
name, as 3D Slicer's *Add data* decides its "LabelMap" option).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from napari_dfcseg.io.suffixes import DICOM_SUFFIXES, SCAN_SUFFIXES, has_suffix

from ._layers import image_layer_data, labels_layer_data

__all__ = ["get_reader", "read_scan", "is_label_file", "read_label_descriptions"]

#: file names that say "label volume" (Slicer's rule for its LabelMap option)
_LABEL_NAME = re.compile(r"(label|seg|mask)", re.IGNORECASE)
#: at most this many distinct values for a name-only guess (a scan has thousands)
_MAX_NAMED_LABELS = 256
# one line of an ITK-SNAP label description file: IDX R G B A VIS MSH "LABEL"
_ITKSNAP_LINE = re.compile(
    r'^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+(\d)\s+(\d)\s+"(.*)"\s*$')



def get_reader(path):
    """Return :func:`read_scan` if ``path`` is a scan this plugin opens, else None.

    napari calls this for every path the user opens; answering None lets
    another reader try.
    """
    if isinstance(path, (list, tuple)):
        # several files picked at once: only a set of DICOM slices makes sense
        if not path or not all(_is_dicom_file(Path(p)) for p in path):
            return None
        return read_scan
    p = Path(path)
    if p.is_dir():
        return read_scan if _has_dicom(p) else None
    if has_suffix(p, SCAN_SUFFIXES) or _is_dicom_file(p):
        return read_scan
    return None


def read_scan(path):
    """Read a scan (or every image series of a DICOM folder) as napari layer data.

    Parameters
    ----------
    path : str or list of str
        A NIfTI/NRRD/MHA/MHD/DICOM file, a DICOM folder, or DICOM files of one folder.

    Returns
    -------
    list of tuple
        One ``(array, kwargs, "image")`` per series, with the scan's geometry.
    """
    from napari_dfcseg.io import list_series, read_volume

    if isinstance(path, (list, tuple)):
        # DICOM slices picked one by one belong to their folder's series
        path = str(Path(path[0]).parent)
    p = Path(path)
    if not p.is_dir():
        return [_layer_data(p, read_volume(p))]
    series = list_series(p)
    if len(series) <= 1:
        return [image_layer_data(read_volume(p))]
    # one layer per series, named by its description so the user can tell them apart;
    # a series that cannot be read (a broken localizer, say) is skipped, not fatal
    from napari_dfcseg.errors import DFCError

    layers, names, failures = [], set(), []
    for info in series:
        name = _unique(_series_name(info), names)
        try:
            volume = read_volume(p, series=info.uid)
        except DFCError as exc:
            failures.append((name, exc))
            continue
        layers.append(image_layer_data(volume, name=name))
    if not layers:
        raise failures[0][1]
    if failures:
        from napari.utils.notifications import show_warning

        skipped = "; ".join(f"{name}: {str(exc).splitlines()[0]}" for name, exc in failures)
        show_warning(f"Skipped {len(failures)} unreadable series ({skipped})")
    return layers


def _series_name(info):
    description = (getattr(info, "description", "") or "").strip()
    modality = (getattr(info, "modality", "") or "").strip()
    label = description or f"{modality or 'series'} {str(info.uid)[-6:]}"
    return label


def _unique(name, taken):
    candidate, k = name, 2
    while candidate in taken:
        candidate = f"{name} ({k})"
        k += 1
    taken.add(candidate)
    return candidate


def _is_dicom_file(path):
    """True for a file with the DICOM preamble magic "DICM" at byte 128."""
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _has_dicom(folder, limit=50):
    """True if one of the first ``limit`` files in ``folder`` (recursively) is DICOM."""
    for k, p in enumerate(q for q in folder.rglob("*") if q.is_file()):
        if k >= limit:
            return False
        if has_suffix(p, DICOM_SUFFIXES) or _is_dicom_file(p):
            return True
    return False


def _layer_data(path, volume):
    """Labels layer data for a label volume, Image layer data for anything else."""
    if not is_label_file(path, volume.array):
        return image_layer_data(volume)
    from napari_dfcseg.io import label_file_paths

    names, colours = read_label_descriptions(label_file_paths(path)[1])
    return labels_layer_data(volume, names=names, colours=colours)


def is_label_file(path, array):
    """True when the file at ``path`` (voxels ``array``) holds labels rather than intensities."""
    from napari_dfcseg.io import is_label_volume, label_file_paths

    array = np.asarray(array)
    if array.ndim not in (2, 3) or not _is_integer_valued(array):
        return False
    path = Path(path)
    if is_label_volume(path) or label_file_paths(path)[1].is_file():
        return True
    if not _LABEL_NAME.search(path.name):
        return False
    sample = array.ravel()[:: max(1, array.size // 2_000_000)]
    return np.unique(sample).size <= _MAX_NAMED_LABELS and sample.min(initial=0) >= 0


def _is_integer_valued(array):
    if np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
        return True
    if not np.issubdtype(array.dtype, np.floating):
        return False
    sample = array.ravel()[:: max(1, array.size // 2_000_000)]
    return bool(np.all(np.isfinite(sample)) and np.all(sample == np.round(sample)))


def read_label_descriptions(path):
    """Names and colours of an ITK-SNAP label description file (``.labels.txt``).

    Returns
    -------
    names : dict
        ``{label: name}`` for labels > 0 (the writer's "Clear Label" 0 is left out).
    colours : dict
        ``{label: (r, g, b)}``, 0-255.

    A missing or unreadable file gives two empty dicts: the labels still open.
    """
    names, colours = {}, {}
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return names, colours
    for line in text.splitlines():
        match = _ITKSNAP_LINE.match(line)
        if match is None:
            continue
        label = int(match.group(1))
        if label == 0:
            continue
        colours[label] = tuple(int(match.group(k)) for k in (2, 3, 4))
        names[label] = match.group(8).strip()
    return names, colours
