"""``read_volume``: one entry point for NIfTI, NRRD, MetaImage and DICOM.

NIfTI is read with nibabel, so that :attr:`Volume.affine_ras` is exactly the
affine nibabel (and FSL, SPM, nilearn) report; NRRD and MetaImage go through
SimpleITK; DICOM through SimpleITK's GDCM reader (:mod:`.dicom`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import DFCError, VolumeIOError
from ._errors import library_errors, one_line
from .dicom import is_dicom_file, read_dicom
from .headers import check_detached_data_file, verify_gzip_stream
from .suffixes import DICOM_SUFFIXES, ITK_SUFFIXES, NIFTI_SUFFIXES
from .volume import Volume

__all__ = ["read_volume", "MAX_CHANNELS", "NIFTI_SUFFIXES", "ITK_SUFFIXES"]

#: 4D inputs with at most this many volumes are read as channels (z, y, x, c).
MAX_CHANNELS = 4
# deflate cannot compress better than ~1032:1; a header promising more data
# than that is corrupt, and must not make us allocate it
MAX_DEFLATE_RATIO = 1100
# a voxel axis may deviate this much (cosine) from orthogonal: float32 sform rounding
SHEAR_TOL = 1e-4


def _suffix(path):
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _check_volume_number(volume, path):
    if volume is None:
        return None
    if isinstance(volume, str) and volume.strip().isdigit():
        volume = int(volume)
    if isinstance(volume, bool) or not isinstance(volume, (int, np.integer)) or volume < 1:
        raise VolumeIOError(f"{path}: volume must be a whole number >= 1 (1 = the first); got {volume!r}")
    return int(volume)


def read_volume(path, series=None, volume=None):
    """Read a scan into a :class:`Volume`.

    Parameters
    ----------
    path : str or Path
        A NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``, ``.nhdr``) or
        MetaImage (``.mha``, ``.mhd``) file; a DICOM folder (searched
        recursively) or one file of a DICOM series.
    series : str or int, optional
        DICOM only: the SeriesInstanceUID or the **1-based** series number
        shown by :func:`list_series` (``SeriesInfo.number``).  Needed only
        when a folder holds several series.

    Returns
    -------
    Volume
        ``array`` is (z, y, x), or (z, y, x, c) for RGB / multi-component
        images and for 4D images with at most 4 volumes (channels last).
        Values are real-world: DICOM rescale slope/intercept and NIfTI
        scl_slope/scl_inter are applied; float64 data become float32.

    Raises
    ------
    VolumeIOError
        With a one-line message naming the file and the problem.

    Warns
    -----
    UserWarning
        DICOM slices that are unevenly spaced (the volume then uses their
        mean spacing); NIfTI whose sform and qform disagree (the sform is
        used, as nibabel does).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise VolumeIOError(f"{path}: no such file or folder")
    volume = _check_volume_number(volume, path)
    if path.is_dir():
        image, modality, description = read_dicom(path, series, volume)
        return volume_from_sitk(image, path, modality=modality, description=description)
    if path.stat().st_size == 0:
        raise VolumeIOError(f"{path}: the file is empty")
    suffix = _suffix(path)
    if series is not None and suffix in NIFTI_SUFFIXES + ITK_SUFFIXES:
        raise VolumeIOError(f"{path}: series={series!r} applies only to DICOM, this is a {suffix} file")
    if suffix in NIFTI_SUFFIXES:
        return read_nifti(path, volume)
    if suffix in ITK_SUFFIXES:
        check_detached_data_file(path)
        with library_errors(path, f"read the {suffix} file", native_stderr=True):
            image = sitk.ReadImage(str(path))
        return volume_from_sitk(image, path, volume=volume)
    if suffix in DICOM_SUFFIXES or is_dicom_file(path):
        image, modality, description = read_dicom(path, series, volume)
        return volume_from_sitk(image, path, modality=modality, description=description)
    raise VolumeIOError(
        f"{path}: not a supported scan (NIfTI .nii/.nii.gz, NRRD, MetaImage .mha/.mhd, or DICOM)"
    )


# ----------------------------------------------------------------- SimpleITK
def _volume_count_error(source, what, n_volumes):
    return VolumeIOError(
        f"{source}: {what} with {n_volumes} volumes; at most {MAX_CHANNELS} are read as channels: "
        f"read one with --volume N (volume=N in Python), N = 1..{n_volumes}"
    )


def _pick(n_volumes, volume, source):
    if volume is not None and volume > n_volumes:
        raise VolumeIOError(f"{source}: no volume {volume}: the image holds {n_volumes} (numbers start at 1)")


def volume_from_sitk(image, source, modality="", description="", volume=None):
    """A :class:`Volume` from a 2D, 3D or 4D SimpleITK image (``volume``: 1-based, 4D only)."""
    dim = image.GetDimension()
    if 0 in image.GetSize():
        raise VolumeIOError(f"{source}: the image has a zero-sized dimension {image.GetSize()}")
    if image.GetNumberOfComponentsPerPixel() > MAX_CHANNELS:
        raise VolumeIOError(
            f"{source}: {image.GetNumberOfComponentsPerPixel()} components per voxel; "
            f"at most {MAX_CHANNELS} (e.g. RGB) are supported"
        )
    if "complex" in image.GetPixelIDTypeAsString():
        raise VolumeIOError(f"{source}: complex-valued images are not supported")
    if volume is not None and dim == 4:
        n_volumes = image.GetSize()[3]
        _pick(n_volumes, volume, source)
        image = image[:, :, :, volume - 1]  # SimpleITK slicing drops the 4th axis
        dim = 3
    elif volume not in (None, 1):
        raise VolumeIOError(f"{source}: no volume {volume}: the image holds one volume")
    with library_errors(source, "convert the image to an array"):
        array = sitk.GetArrayFromImage(image)
    spacing = np.array(image.GetSpacing(), float)
    origin = np.array(image.GetOrigin(), float)
    direction = np.array(image.GetDirection(), float).reshape(dim, dim)
    vector = image.GetNumberOfComponentsPerPixel() > 1
    if dim == 2:  # one slice: add a unit-thick k axis along the slice normal
        array = array[np.newaxis]
        spacing, origin = np.append(spacing, 1.0), np.append(origin, 0.0)
        embedded = np.eye(3)
        embedded[:2, :2] = direction
        direction = embedded
    elif dim == 4:
        if vector:
            raise VolumeIOError(f"{source}: 4D multi-component images are not supported")
        n_volumes = array.shape[0]
        if n_volumes > MAX_CHANNELS:
            raise _volume_count_error(source, "4D image", n_volumes)
        array = np.moveaxis(array, 0, -1)
        spacing, origin, direction = spacing[:3], origin[:3], direction[:3, :3]
    elif dim != 3:
        raise VolumeIOError(f"{source}: {dim}D images are not supported")
    return _make_volume(
        array,
        source,
        spacing=tuple(spacing[::-1]),
        origin=tuple(origin),
        direction=direction,
        modality=modality,
        description=description,
    )


def _make_volume(array, source, **geometry):
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    try:
        return Volume(array=np.ascontiguousarray(array), source=str(source), **geometry)
    except DFCError as err:
        raise VolumeIOError(f"{source}: {err}") from None


# ------------------------------------------------------------------- nibabel
def _check_nifti_size(path, img):
    """Refuse headers that promise more data than the file can hold."""
    header = img.header
    shape = header.get_data_shape()
    if any(int(n) <= 0 for n in shape):
        raise VolumeIOError(f"{path}: the image has a zero-sized dimension {tuple(shape)}")
    n_bytes = int(np.prod([int(n) for n in shape], dtype=object)) * header.get_data_dtype().itemsize
    size = path.stat().st_size
    if _suffix(path) == ".nii.gz":
        if n_bytes > MAX_DEFLATE_RATIO * size + 4096:
            raise VolumeIOError(
                f"{path}: header promises {n_bytes} bytes of voxels, more than a {size}-byte "
                ".nii.gz can hold: the file is corrupt or truncated"
            )
    elif int(getattr(img.dataobj, "offset", 0)) + n_bytes > size:
        raise VolumeIOError(
            f"{path}: truncated: header promises {n_bytes} bytes of voxels, the file has {size} bytes in all"
        )


def _nifti_channels_last(data, path):
    """(i, j, k[, t][, 1, c]) -> (i, j, k[, c]) with at most MAX_CHANNELS channels."""
    if data.dtype.names:  # RGB24 / RGBA32 structured voxels
        data = np.stack([data[name] for name in data.dtype.names], axis=-1)
        return data if data.ndim <= 4 else None
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 5 and data.shape[3] == 1:  # NIfTI vector intent: dims (x, y, z, 1, c)
        data = data[:, :, :, 0]
    if data.ndim == 2:
        data = data[:, :, np.newaxis]
    if data.ndim > 4:
        raise VolumeIOError(f"{path}: {data.ndim}D NIfTI images are not supported")
    if data.ndim == 4 and data.shape[3] > MAX_CHANNELS:
        raise _volume_count_error(path, "4D NIfTI", data.shape[3])
    return data


def _nifti_affine(img, path):
    header = img.header
    affine = np.asarray(img.affine, float)
    if not np.all(np.isfinite(affine)):
        raise VolumeIOError(f"{path}: the sform/qform holds non-finite numbers")
    sform, sform_code = header.get_sform(coded=True)
    qform, qform_code = header.get_qform(coded=True)
    if sform_code and qform_code and np.all(np.isfinite(qform)):
        shape = (tuple(img.shape[:3]) + (1, 1, 1))[:3]
        corners = np.array(np.meshgrid(*[[0, n - 1] for n in shape], [1])).reshape(4, -1)
        gap = np.abs((sform - qform) @ corners).max()
        if gap > 1e-2:
            warnings.warn(
                f"{path}: sform and qform disagree by up to {gap:.3g} mm; using the sform as nibabel "
                "does (ITK-based viewers such as Slicer may use the other one)",
                UserWarning,
                stacklevel=4,
            )
    linear = affine[:3, :3]
    norms = np.linalg.norm(linear, axis=0)
    if np.any(norms == 0):
        raise VolumeIOError(f"{path}: the affine collapses a voxel axis (zero voxel size)")
    cosines = (linear / norms).T @ (linear / norms) - np.eye(3)
    if np.abs(cosines).max() > SHEAR_TOL:
        raise VolumeIOError(
            f"{path}: the affine has shear (voxel axes not perpendicular); resample it to an "
            "orthogonal grid first"
        )
    return affine


def _nifti_voxels(img, volume, path):
    """All voxels, or only the (1-based) ``volume`` of a 4D file: nibabel slices the proxy lazily."""
    shape = img.shape
    if volume is None:
        return np.asanyarray(img.dataobj)
    if len(shape) < 4 or int(np.prod(shape[3:])) == 1:
        if volume != 1:
            raise VolumeIOError(f"{path}: no volume {volume}: the image holds one volume")
        return np.asanyarray(img.dataobj)
    if len(shape) > 4:
        raise VolumeIOError(f"{path}: volume= applies to 4D NIfTI; this one is {len(shape)}D {tuple(shape)}")
    _pick(shape[3], volume, path)
    return np.asanyarray(img.dataobj[..., volume - 1])


def read_nifti(path, volume=None):
    """Read a NIfTI-1/2 file with nibabel into a :class:`Volume` (see :func:`read_volume`)."""
    import nibabel as nib

    path = Path(path)
    with library_errors(path, "read the NIfTI header"):
        img = nib.load(str(path))
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise VolumeIOError(f"{path}: not a NIfTI image ({type(img).__name__})")
        _check_nifti_size(path, img)
        affine = _nifti_affine(img, path)
    with library_errors(path, "read the NIfTI voxels"):
        data = _nifti_voxels(img, volume, path)
    if _suffix(path) == ".nii.gz":
        verify_gzip_stream(path)
    data = _nifti_channels_last(data, path)
    if data is None:
        raise VolumeIOError(f"{path}: 4D RGB NIfTI images are not supported")
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise VolumeIOError(f"{path}: unsupported voxel type {data.dtype}")
    if np.iscomplexobj(data):
        raise VolumeIOError(f"{path}: complex-valued images are not supported")
    array = np.swapaxes(data, 0, 2)  # (i, j, k[, c]) -> (k, j, i[, c])
    try:
        volume = Volume.from_affine_ras(array, affine, source=str(path))
    except DFCError as err:
        raise VolumeIOError(f"{path}: {one_line(err)}") from None
    return _make_volume(
        volume.array, path, spacing=volume.spacing, origin=volume.origin, direction=volume.direction
    )
