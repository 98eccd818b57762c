"""``write_dicom_seg``: a label volume as a DICOM Segmentation object (highdicom).

For PACS and OHIF users whose scan came as a DICOM series.  The SEG references
every source slice (Referenced Series / Derivation Image sequences) and puts
each frame on the geometry of the slice it was computed from.

**Patient data.**  A DICOM SEG is only valid with the patient, study and
frame-of-reference modules of its source images, so this writer copies them
(highdicom does): the file holds the patient's name, ID, birth date, study
UID, accession number...  It is the one output of napari-dfcseg that contains
patient identifiers, and it is written only when asked for explicitly
(``dfcseg segment ... --dicom-seg out.dcm``).  Every other output stays
PHI-free.

``segmentation_type="binary"`` (default) writes the Segmentation Storage SOP
class that every DICOM SEG reader supports (one bit-frame per slice and
segment); ``"labelmap"`` writes the newer Label Map Segmentation Storage class
(one frame per slice, 8/16-bit label values), more compact, read by fewer tools.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import VolumeIOError
from ._errors import library_errors
from .atomic import Output, check_outputs, write_outputs
from .volume import Volume
from .writer import _clean_name, _label_array, is_same_file, label_colour

__all__ = ["write_dicom_seg", "dicom_series_files", "is_dicom_seg", "SEGMENTATION_SOP_CLASSES"]

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
LABEL_MAP_SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"
SEGMENTATION_SOP_CLASSES = {"binary": SEGMENTATION_STORAGE, "labelmap": LABEL_MAP_SEGMENTATION_STORAGE}

# a source slice must sit on a voxel plane of the volume within this fraction of a voxel
_GRID_TOL_VOXELS = 0.05
_ORIENTATION_TOL = 1e-3
# Type 2 attributes of the patient / general study modules: present but possibly empty.
# highdicom copies them from the source and fails when a source lacks one (many
# anonymised or research series do); the SEG then gets them empty, as the standard allows.
_TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                 "ReferringPhysicianName", "StudyID", "AccessionNumber")


def _series_uid(path):
    import pydicom

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
    except Exception:  # noqa: BLE001 - not DICOM (or unreadable): not part of the series
        return None
    return str(ds.get("SeriesInstanceUID", "")) or None


def dicom_series_files(path, series=None):
    """The files of the DICOM series that ``read_volume(path, series=series)`` reads.

    ``path`` is a folder (searched recursively, as the reader does) or one
    file of the series (its folder is searched for the rest); ``series`` is
    a SeriesInstanceUID or the 1-based number of :func:`~napari_dfcseg.io.list_series`.

    Raises
    ------
    VolumeIOError
        When ``path`` is not a DICOM series, or the series choice is ambiguous.
    """
    from .dicom import is_dicom_file, list_series

    path = Path(path)
    if path.is_dir():
        found = list_series(path)
        if not found:
            raise VolumeIOError(f"{path}: no DICOM files found; a DICOM SEG needs a DICOM series as input")
        if series is None and len({info.uid for info in found}) == 1:
            return [Path(f) for info in found for f in info.files]
        text = str(series).strip() if series is not None else ""
        chosen = [info for info in found if info.uid == text or (text.isdigit() and info.number == int(text))]
        if not chosen:
            listing = "; ".join(info.summary() for info in found)
            raise VolumeIOError(f"{path}: holds {len(found)} DICOM series; give the one the SEG is for "
                                f"(series=): {listing}")
        return [Path(f) for f in chosen[0].files]
    if path.is_file() and is_dicom_file(path):
        uid = _series_uid(path)
        if uid is None:
            return [path]
        return sorted(f for f in path.parent.iterdir() if f.is_file() and _series_uid(f) == uid)
    raise VolumeIOError(f"{path}: is not a DICOM series; a DICOM SEG can only be written for DICOM input")


def is_dicom_seg(path):
    """True for a readable DICOM file of one of the segmentation SOP classes."""
    try:
        import pydicom

        ds = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=["SOPClassUID"])
        return str(ds.SOPClassUID) in SEGMENTATION_SOP_CLASSES.values()
    except Exception:  # noqa: BLE001 - unreadable means "not ours to overwrite"
        return False


def _slice_index(ds, like, inverse_lps, where):
    """Which k plane of ``like`` the source image ``ds`` is, after checking it lies on the grid."""
    nz, ny, nx = like.shape
    if (int(ds.Rows), int(ds.Columns)) != (ny, nx):
        raise VolumeIOError(f"{where}: is {ds.Rows}x{ds.Columns} pixels but the volume slices are {ny}x{nx}")
    orientation = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    expected = np.concatenate([like.direction[:, 0], like.direction[:, 1]])
    if np.abs(orientation - expected).max() > _ORIENTATION_TOL:
        raise VolumeIOError(f"{where}: its orientation differs from the volume's; the SEG frames would not line up")
    ijk = inverse_lps @ np.append([float(v) for v in ds.ImagePositionPatient], 1.0)
    k = int(round(ijk[2]))
    if np.abs(ijk[:2]).max() > _GRID_TOL_VOXELS or abs(ijk[2] - k) > _GRID_TOL_VOXELS or not 0 <= k < nz:
        raise VolumeIOError(f"{where}: its position is not a slice of the volume (voxel {np.round(ijk[:3], 3)})")
    return k


def _source_datasets(files, like):
    """pydicom datasets of the series (no pixel data) and the volume slice each one is."""
    import pydicom

    inverse_lps = np.linalg.inv(like.affine_lps)
    datasets, ks = [], []
    for name in files:
        with library_errors(name, "read the DICOM source image"):
            ds = pydicom.dcmread(str(name), stop_before_pixels=True)
        for keyword in _TYPE2_COPIED:
            if keyword not in ds:
                setattr(ds, keyword, "")
        datasets.append(ds)
        ks.append(_slice_index(ds, like, inverse_lps, name))
    if sorted(ks) != list(range(like.shape[0])):
        raise VolumeIOError(
            f"{Path(files[0]).parent}: the series' {len(files)} slices do not cover the volume's "
            f"{like.shape[0]} slices one to one"
        )
    return datasets, ks


def _segment_descriptions(ids, names, hd, codes, version):
    from skimage.color import rgb2lab

    algorithm = hd.AlgorithmIdentificationSequence(
        name="napari-dfcseg", version=version, family=codes.DCM.ArtificialIntelligence,
        source="differentiable feature clustering (Kim, Kanezaki & Tanaka 2020)")
    descriptions = []
    for number, label in enumerate(ids, start=1):
        rgb = np.array(label_colour(label), float).reshape(1, 1, 3) / 255.0
        l_star, a_star, b_star = (float(v) for v in rgb2lab(rgb)[0, 0])
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=_clean_name(names.get(label, f"Label {label}"))[:64],
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_uid=hd.UID(),
            tracking_id=f"dfcseg label {label}",
            display_color=hd.color.CIELabColor(
                min(max(l_star, 0.0), 100.0), min(max(a_star, -128.0), 127.0), min(max(b_star, -128.0), 127.0)),
        ))
    return descriptions


def write_dicom_seg(path, labels, like, source, *, series=None, names=None, segmentation_type="binary",
                    overwrite=False, stage=False):
    """Save ``labels`` as a DICOM SEG referencing the DICOM series ``source``.

    Parameters
    ----------
    path : str or Path
        Output file (conventionally ``.dcm``).
    labels : (z, y, x) array of int
        Labels >= 0 on the grid of ``like`` (0 = not segmented).
    like : Volume
        The volume read from ``source``: the frames are checked to sit on
        its slices and the labels' slices are matched to the source images.
    source : str or Path
        The DICOM folder (or one file of the series) that ``like`` was read from.
    series : str or int, optional
        The series in ``source``, as given to ``read_volume``.
    names : dict of int to str, optional
        Segment labels by label number (default "Label N").
    segmentation_type : {"binary", "labelmap"}
        Segmentation Storage (BINARY, default) or Label Map Segmentation Storage.
    overwrite : bool
        Replace ``path`` if it exists and is itself a DICOM SEG.
    stage : bool
        Return the file as an :class:`~napari_dfcseg.io.atomic.Output` instead
        of writing it, to be committed with a run's other outputs.

    Returns
    -------
    Path
        The file written, complete or not at all (:mod:`napari_dfcseg.io.atomic`).

    Notes
    -----
    The SEG copies the patient, study and frame-of-reference modules of the
    source images: it contains patient identifiers (see the module docstring).
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from .. import __version__

    if not isinstance(like, Volume):
        raise VolumeIOError(f"{path}: like= must be the scan's Volume; got {type(like).__name__}")
    if segmentation_type not in SEGMENTATION_SOP_CLASSES:
        raise VolumeIOError(f"{path}: segmentation_type must be 'binary' or 'labelmap'; got {segmentation_type!r}")
    path = Path(path).expanduser()
    if not path.parent.is_dir():
        raise VolumeIOError(f"{path}: the folder {path.parent} does not exist")
    labels = _label_array(labels, like, path)
    files = dicom_series_files(source, series)
    if any(is_same_file(path, f) for f in files):
        raise VolumeIOError(f"{path}: is a file of the source series; refusing to overwrite it")
    output = Output(path, may_replace=is_dicom_seg, kind="DICOM SEG")
    check_outputs([output], overwrite=overwrite, probe=False)  # before the work below
    datasets, ks = _source_datasets(files, like)
    ids = [int(v) for v in np.unique(labels) if v > 0]
    if not ids:
        raise VolumeIOError(f"{path}: no labels > 0; a DICOM SEG needs at least one segment")
    # segment numbers must be 1..N: renumber the labels in order
    lookup = np.zeros(int(labels.max()) + 1, np.uint16 if len(ids) > 255 else np.uint8)
    lookup[ids] = np.arange(1, len(ids) + 1)
    frames = lookup[labels[ks]]  # one frame per source image, in the order of `datasets`
    first = datasets[0]
    with library_errors(path, "write the DICOM SEG"), warnings.catch_warnings():
        # highdicom re-checks the source's patient name; a dubious one is the source's, not ours
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
        seg = hd.seg.Segmentation(
            source_images=datasets,
            pixel_array=frames,
            segmentation_type=segmentation_type.upper(),
            segment_descriptions=_segment_descriptions(ids, dict(names or {}), hd, codes, __version__),
            series_instance_uid=hd.UID(),
            series_number=int(getattr(first, "SeriesNumber", 0) or 0) + 1000,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="napari-dfcseg",
            manufacturer_model_name="napari-dfcseg",
            software_versions=__version__,
            device_serial_number="0",
            content_label="DFCSEG",
            content_description="Unsupervised tissue classes (napari-dfcseg)",
            series_description="dfcseg segmentation",
        )

    def write(stream):
        with library_errors(path, "write the DICOM SEG"):
            seg.save_as(stream)

    output.write = write
    if stage:  # the CLI commits it together with the run's other outputs
        return output
    return write_outputs([output], overwrite=overwrite)[0]
