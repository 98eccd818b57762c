"""The :class:`Volume` container: a scan's voxels plus its patient geometry.

Geometry follows SimpleITK (and DICOM): ``origin`` is the physical position
of voxel (0, 0, 0) in LPS millimetres, ``direction`` is the 3x3 matrix whose
columns are the LPS directions of the i, j, k voxel axes, and the array is
indexed ``array[k, j, i]`` (z, y, x).  See ``docs/geometry.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidInputError

__all__ = ["Volume", "LPS_TO_RAS"]

#: Multiplying an LPS point by this gives the RAS point (and back).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

# reverses x-y-z <-> z-y-x (and i-j-k <-> k-j-i)
_REVERSE = np.eye(3)[::-1]


def _as_spatial_array(array):
    array = np.asarray(array)
    if array.ndim not in (3, 4):
        raise InvalidInputError(
            f"Volume array must be (z, y, x) or (z, y, x, c); got shape {array.shape}"
        )
    if array.ndim == 4 and array.shape[-1] > 4:
        raise InvalidInputError(
            f"Volume array has {array.shape[-1]} channels (last axis); at most 4 are supported"
        )
    if 0 in array.shape:
        raise InvalidInputError(f"Volume array has a zero-sized dimension: shape {array.shape}")
    return array


def _check_geometry(spacing, origin, direction):
    spacing = tuple(float(s) for s in np.ravel(spacing))
    origin = tuple(float(o) for o in np.ravel(origin))
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise InvalidInputError(f"spacing must be 3 positive numbers (sz, sy, sx) in mm; got {spacing}")
    if len(origin) != 3 or not all(np.isfinite(origin)):
        raise InvalidInputError(f"origin must be 3 finite numbers (x, y, z) in LPS mm; got {origin}")
    direction = np.eye(3) if direction is None else np.array(direction, dtype=float)
    if direction.size != 9 or not np.all(np.isfinite(direction)):
        raise InvalidInputError("direction must be a finite 3x3 matrix (columns = i, j, k directions)")
    direction = direction.reshape(3, 3)
    norms = np.linalg.norm(direction, axis=0)
    if not np.allclose(norms, 1.0, atol=1e-3):
        raise InvalidInputError(f"direction columns must be unit vectors; their lengths are {norms}")
    if abs(np.linalg.det(direction)) < 1e-3:
        raise InvalidInputError("direction matrix is singular: two voxel axes point the same way")
    direction.setflags(write=False)
    return spacing, origin, direction


@dataclass(frozen=True, eq=False)
class Volume:
    """A scan's voxel array with its patient-space geometry.

    Parameters
    ----------
    array : ndarray
        (z, y, x) or (z, y, x, c) voxels in real-world units (CT in HU).
    spacing : tuple of float
        Voxel size (sz, sy, sx) in mm.
    origin : tuple of float
        Physical position of voxel (0, 0, 0), LPS mm, (x, y, z) order
        (SimpleITK's ``GetOrigin()``).
    direction : (3, 3) ndarray
        SimpleITK direction matrix: column n is the LPS unit vector of voxel
        axis n (i = x = last array axis, j, k = first array axis).
    modality : str
        DICOM modality ("CT", "MR", ...) or "" when unknown.
    description : str
        Series description; never patient-identifying fields.
    source : str or None
        Path the volume was read from.  Used only to refuse overwriting it;
        never written into any output.

    Notes
    -----
    Use :meth:`from_array` to build one with defaults.  The geometry
    properties (:attr:`affine_lps`, :attr:`affine_ras`,
    :meth:`napari_transform`) are the one place where the conventions are
    converted; see ``docs/geometry.md``.
    """

    array: np.ndarray
    spacing: tuple
    origin: tuple
    direction: np.ndarray = field(default=None)
    modality: str = ""
    description: str = ""
    source: str | None = None

    def __post_init__(self):
        spacing, origin, direction = _check_geometry(self.spacing, self.origin, self.direction)
        object.__setattr__(self, "array", _as_spatial_array(self.array))
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "direction", direction)
        object.__setattr__(self, "modality", str(self.modality or ""))
        object.__setattr__(self, "description", str(self.description or ""))
        if self.source is not None:
            object.__setattr__(self, "source", str(self.source))

    def __repr__(self):
        return (
            f"Volume(shape={self.array.shape}, dtype={self.array.dtype}, spacing={self.spacing}, "
            f"origin={self.origin}, modality={self.modality!r}, description={self.description!r})"
        )

    # ------------------------------------------------------------------ shape
    @property
    def channel_axis(self):
        """-1 for (z, y, x, c) arrays, None for (z, y, x)."""
        return -1 if self.array.ndim == 4 else None

    @property
    def shape(self):
        """Spatial shape (z, y, x), without the channel axis."""
        return self.array.shape[:3]

    # --------------------------------------------------------------- affines
    @property
    def affine_lps(self):
        """(4, 4) map from voxel (i, j, k) = ``array[k, j, i]`` to LPS mm."""
        affine = np.eye(4)
        affine[:3, :3] = self.direction @ np.diag(self.spacing[::-1])
        affine[:3, 3] = self.origin
        return affine

    @property
    def affine_ras(self):
        """(4, 4) map from voxel (i, j, k) = ``array[k, j, i]`` to RAS mm.

        This is the affine nibabel reports for the same file (``img.affine``).
        """
        return LPS_TO_RAS @ self.affine_lps

    def napari_transform(self):
        """Keyword arguments that place this volume in napari's world.

        napari's world is patient LPS millimetres in (z, y, x) order, so
        that every layer of every scan shares one physical frame.

        Returns
        -------
        dict
            ``{"scale": (sz, sy, sx), "translate": (oz, oy, ox)}`` plus
            ``"rotate"`` (a 3x3 matrix in z, y, x order, possibly a
            reflection) when the scan is not axis-aligned.  napari maps a
            data index ``d`` to ``rotate @ (scale * d) + translate``.
        """
        transform = {"scale": self.spacing, "translate": tuple(self.origin[::-1])}
        rotate = _REVERSE @ self.direction @ _REVERSE
        if not np.allclose(rotate, np.eye(3), atol=1e-9):
            transform["rotate"] = rotate
        return transform

    # ------------------------------------------------------------- metadata
    def to_metadata(self):
        """JSON-able geometry and description (no array), for ``layer.metadata["dfcseg"]``."""
        return {
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": self.direction.tolist(),
            "modality": self.modality,
            "description": self.description,
        }

    @classmethod
    def from_metadata(cls, meta, array):
        """Rebuild a :class:`Volume` from :meth:`to_metadata` output and an array."""
        try:
            return cls(
                array=array,
                spacing=tuple(meta["spacing"]),
                origin=tuple(meta["origin"]),
                direction=np.array(meta["direction"], dtype=float),
                modality=meta.get("modality", ""),
                description=meta.get("description", ""),
            )
        except (KeyError, TypeError) as err:
            raise InvalidInputError(f"layer metadata is not napari-dfcseg geometry: {err!r}") from None

    @classmethod
    def from_array(cls, array, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None, **kwargs):
        """A :class:`Volume` around ``array`` with the given (or identity) geometry."""
        return cls(array=array, spacing=spacing, origin=origin, direction=direction, **kwargs)

    @classmethod
    def from_napari_affine(cls, array, affine_zyx_4x4, **kwargs):
        """Inverse of :meth:`napari_transform` for layers without metadata.

        Parameters
        ----------
        array : ndarray
            (z, y, x) or (z, y, x, c) layer data.
        affine_zyx_4x4 : (4, 4) array
            The layer's full data-to-world map in (z, y, x) order, e.g.
            ``layer._data_to_world.affine_matrix`` (scale, translate, rotate
            and affine composed).
        """
        affine = np.asarray(affine_zyx_4x4, dtype=float)
        if affine.shape != (4, 4):
            raise InvalidInputError(f"napari affine must be 4x4 for a 3D layer; got shape {affine.shape}")
        linear_zyx = affine[:3, :3]
        spacing_zyx = np.linalg.norm(linear_zyx, axis=0)
        if np.any(spacing_zyx <= 0):
            raise InvalidInputError("napari affine collapses an axis (zero scale)")
        rotate = linear_zyx / spacing_zyx
        cosines = rotate.T @ rotate - np.eye(3)
        if np.abs(cosines).max() > 1e-4:
            raise InvalidInputError("napari affine has shear; it cannot be saved as scan geometry")
        return cls(
            array=array,
            spacing=tuple(spacing_zyx),
            origin=tuple(affine[:3, 3][::-1]),
            direction=_REVERSE @ rotate @ _REVERSE,
            **kwargs,
        )

    @classmethod
    def from_affine_ras(cls, array, affine_ras, **kwargs):
        """A :class:`Volume` from a nibabel-style RAS affine (voxel i, j, k = array[k, j, i])."""
        affine_lps = LPS_TO_RAS @ np.asarray(affine_ras, dtype=float)
        linear = affine_lps[:3, :3]
        spacing_ijk = np.linalg.norm(linear, axis=0)
        if np.any(spacing_ijk <= 0):
            raise InvalidInputError("affine collapses a voxel axis (zero voxel size)")
        return cls(
            array=array,
            spacing=tuple(spacing_ijk[::-1]),
            origin=tuple(affine_lps[:3, 3]),
            direction=linear / spacing_ijk,
            **kwargs,
        )
