"""The one input boundary of the engine: :func:`assemble_inputs` → :class:`EngineInputs` (torch-free).

Every front end (the CLI, the napari widget, batch runs, the Slicer module)
and every engine entry point goes through :func:`assemble_inputs`, so the
rules below have one home:

- the image is (z, y, x) or (y, x), plus an optional channel axis named by
  ``channel_axis`` (scikit-image's convention); a (y, x) image is one slice
  and the labels come back as (y, x) (:attr:`EngineInputs.was_2d`);
- extra ``channels`` (co-registered contrasts) must have the image's spatial
  shape, with or without a trailing channel axis of their own; with them the
  stack is float32, channels last;
- a mask selects the voxels ``> 0`` and must select at least one; a 4-D
  mask or scribble volume uses its first channel;
- scribbles are integer class ids, 0 = unlabelled;
- spacing is (sz, sy, sx) mm; a (sy, sx) pair gets sz = 1; default isotropic.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import InvalidInputError

__all__ = ["EngineInputs", "assemble_inputs", "as_inputs", "per_image", "prepare_image", "prepare_mask",
           "prepare_scribbles", "prepare_spacing"]


@dataclass(frozen=True, eq=False)
class EngineInputs:
    """A checked scan, ready for the engine.

    Attributes
    ----------
    image : (z, y, x, c) ndarray
        Intensities, channels last (a view of the caller's array when there
        is nothing to stack); z = 1 for a (y, x) image.
    mask : (z, y, x) bool ndarray or None
        Voxels to segment (None: all).
    scribbles : (z, y, x) int16/int32 ndarray or None
        0 = unlabelled, 1..S = the user's classes; None when none is drawn.
    n_scribble_classes : int
        S, the largest scribbled class id (0 without scribbles).
    spacing : tuple of 3 floats
        (sz, sy, sx) in mm.
    was_2d : bool
        The image was given as (y, x): :meth:`restore_shape` drops the z axis again.
    """

    image: np.ndarray
    mask: np.ndarray | None = None
    scribbles: np.ndarray | None = None
    n_scribble_classes: int = 0
    spacing: tuple = (1.0, 1.0, 1.0)
    was_2d: bool = False

    @property
    def shape(self) -> tuple:
        """Spatial shape (z, y, x)."""
        return tuple(self.image.shape[:3])

    @property
    def n_channels(self) -> int:
        return int(self.image.shape[-1])

    def restore_shape(self, labels):
        """``labels`` of shape :attr:`shape` in the caller's layout ((y, x) for a 2D image)."""
        return labels[0] if self.was_2d else labels

    def with_mask(self, mask, *, name="mask") -> "EngineInputs":
        """The same inputs with another mask (same rules as :func:`assemble_inputs`)."""
        return replace(self, mask=prepare_mask(mask, self.shape, name=name))


def assemble_inputs(image, *, channel_axis=None, channels=None, mask=None, scribbles=None,
                    spacing=None, names=None) -> EngineInputs:
    """Check and assemble one scan for the engine.

    Parameters
    ----------
    image : array_like
        (z, y, x) or (y, x) intensities of any real dtype, with a channel axis
        if ``channel_axis`` is given.
    channel_axis : int or None
        Axis of ``image`` holding co-registered channels.
    channels : sequence of array_like, optional
        Extra co-registered volumes (e.g. T2, FLAIR), each of the image's
        spatial shape, optionally with a trailing channel axis; appended
        after the image's channels.
    mask : array_like, optional
        Voxels ``> 0`` are segmented.
    scribbles : array_like of int, optional
        0 = unlabelled, 1..S = the user's classes.
    spacing : sequence of 2 or 3 floats, optional
        Voxel size in mm.
    names : dict, optional
        How error messages name the inputs: keys ``"image"``, ``"mask"``,
        ``"scribbles"``, ``"spacing"`` (str) and ``"channels"`` (list of str,
        one per extra channel), e.g. the CLI's ``{"mask": "--mask m.nii.gz"}``.

    Returns
    -------
    EngineInputs

    Raises
    ------
    InvalidInputError
        A shape that does not match, a non-numeric dtype, an empty mask, ...

    Examples
    --------
    >>> import numpy as np
    >>> t1, t2 = np.zeros((4, 8, 8)), np.ones((4, 8, 8))
    >>> inputs = assemble_inputs(t1, channels=[t2], mask=t1 > -1, spacing=(3, 1, 1))
    >>> inputs.image.shape, inputs.n_channels, inputs.mask.dtype, inputs.was_2d
    ((4, 8, 8, 2), 2, dtype('bool'), False)
    >>> assemble_inputs(np.zeros((8, 8)), channels=[np.ones((8, 9))])
    Traceback (most recent call last):
    ...
    napari_dfcseg.errors.InvalidInputError: channels[0]: shape (8, 9) does not match the image's (8, 8): channels must be co-registered
    """
    names = dict(names or {})
    raw = np.asarray(image)
    prepared, was_2d = prepare_image(raw, channel_axis, name=names.get("image", "image"))
    if channels:
        labels = list(names.get("channels") or [])
        labels += [f"channels[{i}]" for i in range(len(labels), len(channels))]
        n_spatial = 2 if was_2d else 3
        spatial = prepared.shape[1:3] if was_2d else prepared.shape[:3]
        parts = [prepared]
        for extra, label in zip(channels, labels):
            parts.append(_extra_channel(extra, spatial, n_spatial, label))
        prepared = np.concatenate([p.astype(np.float32, copy=False) for p in parts], axis=-1)
    shape = prepared.shape[:3]
    m = None if mask is None else prepare_mask(_first_channel(mask, shape), shape,
                                               name=names.get("mask", "mask"))
    s, n_classes = prepare_scribbles(None if scribbles is None else _first_channel(scribbles, shape),
                                     shape, name=names.get("scribbles", "scribbles"))
    return EngineInputs(image=prepared, mask=m, scribbles=s, n_scribble_classes=n_classes,
                        spacing=prepare_spacing(spacing, name=names.get("spacing", "spacing")),
                        was_2d=was_2d)


def as_inputs(image, *, spacing=None, channel_axis=None, mask=None, scribbles=None, name="image"):
    """``image`` as EngineInputs: assembled here, or already assembled by the caller.

    What the engine's entry points call: an :class:`EngineInputs` is taken as
    it is (then the other inputs must not be given again), an array is
    assembled with :func:`assemble_inputs`.
    """
    if isinstance(image, EngineInputs):
        given = [k for k, v in (("spacing", spacing), ("channel_axis", channel_axis),
                                ("mask", mask), ("scribbles", scribbles)) if v is not None]
        if given:
            raise InvalidInputError(f"{', '.join(given)}: give them to assemble_inputs, not here")
        return image
    return assemble_inputs(image, channel_axis=channel_axis, mask=mask, scribbles=scribbles,
                           spacing=spacing, names={"image": name} if name != "image" else None)


def per_image(value, n, name):
    """One value per image: a single array / spacing is shared, a list must have ``n``."""
    if value is None:
        return [None] * n
    single = np.ndim(value) == 1 if name == "spacing" else isinstance(value, np.ndarray)
    if single:
        if n == 1 or name == "spacing":
            return [value] * n
        raise InvalidInputError(f"{name} must be a list of {n} arrays, one per image")
    value = list(value)
    if len(value) != n:
        raise InvalidInputError(f"{name} has {len(value)} entries for {n} images")
    return value


def _extra_channel(extra, spatial, n_spatial, name):
    """One extra channel volume as (z, y, x, c) (z = 1 for a 2D image)."""
    arr = np.asarray(extra)
    if arr.ndim not in (n_spatial, n_spatial + 1) or arr.shape[:n_spatial] != tuple(spatial):
        raise InvalidInputError(
            f"{name}: shape {arr.shape} does not match the image's {tuple(spatial)}:"
            " channels must be co-registered"
        )
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                                 or np.issubdtype(arr.dtype, np.floating)):
        raise InvalidInputError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim == n_spatial:
        arr = arr[..., np.newaxis]
    return arr[np.newaxis] if n_spatial == 2 else arr


def _first_channel(volume, shape):
    """A mask / scribble volume read with a trailing channel axis: its first channel."""
    arr = np.asarray(volume)
    return arr[..., 0] if arr.ndim == 4 else arr


def prepare_image(image, channel_axis=None, *, name="image"):
    """Check an image and return it as a (z, y, x, c) array.

    Parameters
    ----------
    image : array_like
        (z, y, x) or (y, x) intensities of any real dtype, or either with a
        channel axis named by ``channel_axis``.
    channel_axis : int or None
        Axis holding co-registered channels (scikit-image convention).

    Returns
    -------
    image : (z, y, x, c) ndarray
        A view where possible (no copy of the intensities).
    was_2d : bool
        True when the input had a single spatial plane given as (y, x).
    """
    image = np.asarray(image)
    if image.dtype == bool or not (np.issubdtype(image.dtype, np.integer)
                                   or np.issubdtype(image.dtype, np.floating)):
        raise InvalidInputError(f"{name} must hold real numbers, got dtype {image.dtype}")
    if channel_axis is not None:
        if not -image.ndim <= channel_axis < image.ndim:
            raise InvalidInputError(
                f"{name}: channel_axis={channel_axis} is out of range for a {image.ndim}-D array"
            )
        image = np.moveaxis(image, channel_axis, -1)
    else:
        image = image[..., np.newaxis]
    spatial = image.ndim - 1
    if spatial not in (2, 3):
        raise InvalidInputError(
            f"{name} must be a 2D (y, x) or 3D (z, y, x) array (plus an optional channel axis), "
            f"got shape {image.shape[:-1] if channel_axis is None else image.shape}"
        )
    was_2d = spatial == 2
    if was_2d:
        image = image[np.newaxis]
    if image.shape[-1] < 1:
        raise InvalidInputError(f"{name} has no channels")
    if image.shape[1] < 2 or image.shape[2] < 2:
        raise InvalidInputError(
            f"{name} of spatial shape {image.shape[:3]} is too small: "
            "need at least 2 × 2 voxels in plane"
        )
    return image, was_2d


def prepare_spacing(spacing, n_spatial=3, *, name="spacing"):
    """Voxel size as a tuple of 3 positive floats (z, y, x); a 2-tuple gets sz = 1."""
    if spacing is None:
        return (1.0, 1.0, 1.0)
    try:
        spacing = tuple(float(s) for s in spacing)
    except TypeError:
        raise InvalidInputError(f"{name} must be a sequence of voxel sizes, got {spacing!r}") from None
    if len(spacing) == 2:
        spacing = (1.0,) + spacing
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise InvalidInputError(f"{name} must be 3 positive voxel sizes (sz, sy, sx), got {spacing}")
    return spacing


def prepare_mask(mask, shape, *, name="mask"):
    """``None`` or a bool (z, y, x) array of the voxels ``> 0`` (a (y, x) mask is accepted for 2D)."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.ndim == 2 and shape[0] == 1:
        mask = mask[np.newaxis]
    if mask.shape != tuple(shape):
        raise InvalidInputError(f"{name} shape {mask.shape} does not match the image's {tuple(shape)}")
    mask = mask if mask.dtype == bool else mask > 0
    if not mask.any():
        raise InvalidInputError(f"{name} is empty: nothing to segment")
    return mask


def prepare_scribbles(scribbles, shape, *, name="scribbles"):
    """``None`` or an int (z, y, x) array: 0 = unlabelled, 1..S = the user's classes.

    Returns the array (``None`` if it holds no scribble) and S.
    """
    if scribbles is None:
        return None, 0
    scribbles = np.asarray(scribbles)
    if scribbles.ndim == 2 and shape[0] == 1:
        scribbles = scribbles[np.newaxis]
    if scribbles.shape != tuple(shape):
        raise InvalidInputError(
            f"{name} shape {scribbles.shape} does not match the image's {tuple(shape)}"
        )
    if not np.issubdtype(scribbles.dtype, np.integer):
        if np.issubdtype(scribbles.dtype, np.floating) and np.all(np.mod(scribbles, 1) == 0):
            scribbles = scribbles.astype(np.int64)
        else:
            raise InvalidInputError(f"{name} must hold integer class ids, got dtype {scribbles.dtype}")
    if scribbles.min() < 0:
        raise InvalidInputError(f"{name} must be 0 (unlabelled) or positive class ids")
    n_classes = int(scribbles.max())
    if n_classes == 0:
        return None, 0
    return scribbles.astype(np.int16 if n_classes < 2**15 else np.int32, copy=False), n_classes
