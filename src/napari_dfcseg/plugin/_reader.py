"""npe2 reader: NIfTI, NRRD, MHA/MHD and DICOM (file or folder) in patient coordinates."""

from __future__ import annotations

from pathlib import Path

from ._layers import image_layer_data

__all__ = ["get_reader", "read_scan"]

_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm", ".ima")


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
    if p.name.lower().endswith(_SUFFIXES) or _is_dicom_file(p):
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
        return [image_layer_data(read_volume(p))]
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
        if p.suffix.lower() in (".dcm", ".ima") or _is_dicom_file(p):
            return True
    return False
