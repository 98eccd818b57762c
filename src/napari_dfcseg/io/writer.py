"""``write_labels``: a label volume as NIfTI with the scan's geometry, plus colour tables.

The NIfTI gets a fresh header (never the scan's: its scl_slope/scl_inter
would rescale the labels, its descrip/extensions may hold patient data),
with sform = qform = the scan's voxel-to-RAS affine.  Beside it go an ITK-SNAP
label description file and a 3D Slicer colour table, so both viewers show the
same names and colours as napari (:func:`label_colour`).
"""

from __future__ import annotations

import colorsys
import gzip
import os
import re
from pathlib import Path

import numpy as np

from ..errors import VolumeIOError
from .atomic import Output, write_outputs
from .suffixes import NIFTI_SUFFIXES, has_suffix
from .volume import Volume

__all__ = ["write_labels", "label_outputs", "is_label_volume", "is_same_file", "label_colour",
           "label_file_paths", "NIFTI_INTENT_LABEL", "XFORM_CODE"]

NIFTI_INTENT_LABEL = 1002
#: sform_code = qform_code = 1 (NIFTI_XFORM_SCANNER_ANAT), as ITK and dcm2niix write
XFORM_CODE = 1
MAX_LABEL = int(np.iinfo(np.uint16).max)
#: nibabel's own default for .nii.gz: label volumes compress well even so
GZIP_LEVEL = 1

# ITK-SNAP's default colours for labels 1-6; later labels step round the hue
# circle by the golden angle so neighbouring numbers get distinct colours
_FIRST_COLOURS = [(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]
_GOLDEN = 0.6180339887498949

_ITKSNAP_HEADER = """\
################################################
# ITK-SnAP Label Description File
# File format:
# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL
# Fields:
#    IDX:   Zero-based index
#    -R-:   Red color component (0..255)
#    -G-:   Green color component (0..255)
#    -B-:   Blue color component (0..255)
#    -A-:   Label transparency (0.00 .. 1.00)
#    VIS:   Label visibility (0 or 1)
#    MSH:   Label mesh visibility (0 or 1)
#  LABEL:   Label description
################################################
"""


def label_colour(label):
    """The (r, g, b) colour, 0-255, that the written colour tables give ``label``.

    Label 0 (background) is black; 1-6 are ITK-SNAP's defaults (red, green,
    blue, yellow, cyan, magenta); later labels are spread round the hue
    circle.  napari layers can use it to match the saved files.
    """
    label = int(label)
    if label < 0:
        raise ValueError(f"label must be >= 0; got {label}")
    if label < len(_FIRST_COLOURS):
        return _FIRST_COLOURS[label]
    hue = (label * _GOLDEN) % 1.0
    value = (1.0, 0.8, 0.6)[label % 3]
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, value)
    return (round(r * 255), round(g * 255), round(b * 255))


def label_file_paths(path):
    """The NIfTI path and its two colour-table siblings (ITK-SNAP ``.labels.txt``, Slicer ``.ctbl``)."""
    path = Path(path)
    name = path.name
    stem = name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem
    return path, path.with_name(stem + ".labels.txt"), path.with_name(stem + ".ctbl")


def _clean_name(text):
    """One printable line without quotes (both table formats are line-based)."""
    text = re.sub(r"[\x00-\x1f\x7f\"]+", " ", str(text)).strip()
    return text or "unnamed"


def _label_array(labels, like, path):
    labels = np.asarray(labels)
    if labels.shape != like.shape:
        raise VolumeIOError(
            f"{path}: labels have shape {labels.shape} but the scan is {like.shape} (z, y, x); nothing written"
        )
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    elif np.issubdtype(labels.dtype, np.floating):
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise VolumeIOError(f"{path}: labels must be whole numbers; got non-integer values")
    elif not np.issubdtype(labels.dtype, np.integer):
        raise VolumeIOError(f"{path}: labels must be integers; got dtype {labels.dtype}")
    low, high = (labels.min(), labels.max()) if labels.size else (0, 0)
    if low < 0:
        raise VolumeIOError(f"{path}: labels must be >= 0; found {low}")
    if high > MAX_LABEL:
        raise VolumeIOError(f"{path}: labels must be <= {MAX_LABEL}; found {high}")
    return labels.astype(np.uint8 if high <= 255 else np.uint16, copy=False)


def is_same_file(a, b):
    """True when paths ``a`` and ``b`` name the same file (symlinks and hard links included)."""
    try:
        return Path(a).resolve() == Path(b).resolve() or (Path(b).exists() and os.path.samefile(a, b))
    except OSError:
        return False


def is_label_volume(path):
    """True for a readable NIfTI whose intent is 'label' (1002), as :func:`write_labels` writes.

    Only such a file may be replaced by :func:`write_labels`; callers (the CLI)
    use it to refuse an output path before minutes of work rather than after.
    """
    import nibabel as nib

    try:
        return int(nib.load(str(path)).header["intent_code"]) == NIFTI_INTENT_LABEL
    except Exception:  # noqa: BLE001 - unreadable means "not ours to overwrite"
        return False


def _refuse_overwrite(path, like):
    """Never write over the scan, nor over an existing file that is not a label volume."""
    for target in label_file_paths(path):
        if like.source is not None and is_same_file(target, like.source):
            raise VolumeIOError(f"{target}: is the scan the labels belong to; refusing to overwrite it")
    if not path.exists():
        return
    if path.is_dir():
        raise VolumeIOError(f"{path}: is a folder")
    if not is_label_volume(path):
        raise VolumeIOError(
            f"{path}: exists and is not a label volume (NIfTI intent 'label'); "
            "refusing to overwrite it: choose another name or remove it"
        )


def _nifti_image(labels, like):
    import nibabel as nib

    affine = like.affine_ras
    header = nib.Nifti1Header()
    header.set_data_dtype(labels.dtype)
    img = nib.Nifti1Image(labels.T, affine, header=header)  # (z, y, x) -> (i, j, k)
    header = img.header
    header.set_sform(affine, code=XFORM_CODE)
    header.set_qform(affine, code=XFORM_CODE)
    header.set_intent("label", (), name="")
    header.set_xyzt_units(xyz="mm")
    header["descrip"] = b""
    header["aux_file"] = b""
    header["db_name"] = b""
    header["cal_min"] = 0
    header["cal_max"] = float(labels.max()) if labels.size else 0.0
    header.extensions.clear()
    return img


def _label_key(key, what):
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or not 0 <= key <= MAX_LABEL:
        raise VolumeIOError(f"label {what}: keys must be label numbers 0..{MAX_LABEL}; got {key!r}")
    return int(key)


def _rgb(label, colour):
    try:
        rgb = tuple(int(v) for v in colour)
    except (TypeError, ValueError):
        rgb = ()
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise VolumeIOError(f"label colours: label {label} needs (r, g, b) in 0..255; got {colour!r}")
    return rgb


def _table_rows(labels, names, colours=None):
    names = {} if names is None else dict(names)
    colours = {_label_key(k, "colours"): _rgb(k, v) for k, v in dict(colours or {}).items()}
    ids = set(np.unique(labels).tolist()) | {0}
    ids |= {_label_key(key, "names") for key in names}
    for label in sorted(ids):
        default = "Clear Label" if label == 0 else f"Label {label}"
        colour = colours.get(label, label_colour(label)) if label else label_colour(0)
        yield label, colour, _clean_name(names.get(label, default))


def _itksnap_text(rows):
    lines = [_ITKSNAP_HEADER]
    for label, (r, g, b), name in rows:
        shown = int(label != 0)
        # alpha as a whole number, as ITK-SNAP itself writes it (Slicer's importer rejects "1.00")
        lines.append(f'{label:5d} {r:5d} {g:4d} {b:4d} {shown:8d} {shown:2d} {shown:2d}    "{name}"\n')
    return "".join(lines)


def _slicer_text(rows, title):
    lines = [f"# Color table file {_clean_name(title)}\n", f"# {len(rows)} values\n"]
    for label, (r, g, b), name in rows:
        alpha = 0 if label == 0 else 255
        slicer_name = "Background" if label == 0 and name == "Clear Label" else re.sub(r"\s+", "_", name)
        lines.append(f"{label} {slicer_name} {r} {g} {b} {alpha}\n")
    return "".join(lines)


def _nifti_bytes(img, compressed):
    """The NIfTI file's bytes; gzip without a name or time stamp (reproducible files)."""
    data = img.to_bytes()
    if not compressed:
        return data
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)


def label_outputs(path, labels=None, like=None, names=None, colours=None):
    """The three files :func:`write_labels` writes, as :class:`~napari_dfcseg.io.atomic.Output` s.

    With ``labels`` and ``like`` the outputs carry their content (validated
    here: shape, values, not the scan itself); without, they only say which
    paths and which overwrite rule apply, for :func:`~napari_dfcseg.io.atomic.check_outputs`
    before a run.  Callers combine them with other outputs (the CLI adds the
    model file) so that everything is committed together.
    """
    nifti_path, itksnap_path, slicer_path = label_file_paths(Path(path).expanduser())
    if not has_suffix(nifti_path, NIFTI_SUFFIXES):
        raise VolumeIOError(f"{nifti_path}: label volumes are written as .nii or .nii.gz")
    nifti = Output(nifti_path, may_replace=is_label_volume, kind="label volume (NIfTI intent 'label')")
    itksnap = Output(itksnap_path, kind="label table")
    slicer = Output(slicer_path, kind="colour table")
    if labels is None:
        return [nifti, itksnap, slicer]
    if not isinstance(like, Volume):
        raise VolumeIOError(f"{path}: like= must be the scan's Volume; got {type(like).__name__}")
    if not nifti_path.parent.is_dir():
        raise VolumeIOError(f"{nifti_path}: the folder {nifti_path.parent} does not exist")
    labels = _label_array(labels, like, nifti_path)
    _refuse_overwrite(nifti_path, like)
    rows = list(_table_rows(labels, names, colours))
    img = _nifti_image(labels, like)
    compressed = nifti_path.name.lower().endswith(".gz")
    nifti.write = lambda f: f.write(_nifti_bytes(img, compressed))
    itksnap.write = lambda f: f.write(_itksnap_text(rows).encode("utf-8"))
    slicer.write = lambda f: f.write(_slicer_text(rows, slicer_path.stem).encode("utf-8"))
    return [nifti, itksnap, slicer]


def write_labels(path, labels, like, names=None, *, overwrite=True, colours=None):
    """Save a label volume as NIfTI aligned with the scan ``like``, plus colour tables.

    Parameters
    ----------
    path : str or Path
        Output ``.nii`` or ``.nii.gz``.  It must not be the scan itself, nor
        an existing file that is not a label volume.
    labels : (z, y, x) array of int (or bool, or whole-number float)
        Labels >= 0, shaped like ``like.array`` without its channel axis.
    like : Volume
        The scan; its geometry becomes the NIfTI's sform and qform.
    names : dict of int to str, optional
        Label names for the colour tables (default "Label N").
    colours : dict of int to (r, g, b), optional
        Colours 0-255 for the colour tables (default :func:`label_colour`),
        e.g. the ones a user picked in napari; label 0 stays black.
    overwrite : bool
        True (default, as a save dialog that has asked): an existing label
        volume at ``path`` and its two tables are replaced.  False: any
        existing one of the three files is refused (the CLI without
        ``--overwrite``).

    Returns
    -------
    list of Path
        ``[nifti, itk-snap .labels.txt, slicer .ctbl]``, written in full or
        not at all (:mod:`napari_dfcseg.io.atomic`: temporary files in the
        same folder, fsync-ed, committed together).

    Raises
    ------
    VolumeIOError
        Wrong shape, negative/non-integer labels, a path that is the scan
        or a non-label file, an existing file without ``overwrite``, an
        unwritable folder or a full disk; nothing is written.

    Notes
    -----
    The header is new: uint8 voxels (uint16 above 255), no scaling, intent
    NIFTI_INTENT_LABEL, xyz units mm, sform_code = qform_code = 1, empty
    descrip / aux_file / db_name, no extensions: no patient data can reach it.
    """
    outputs = label_outputs(path, labels, like, names, colours)
    if outputs[0].path.is_dir():
        raise VolumeIOError(f"{outputs[0].path}: is a folder")
    return write_outputs(outputs, overwrite=overwrite)
