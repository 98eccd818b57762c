"""Input checks and the one intensity normalisation of the engine (torch-free).

Every path into the network (``segment``, ``train_model``, ``apply_model``)
goes through :func:`prepare_image` and then :func:`normalize_intensity` (when
training) or :func:`apply_normalization` (when applying a saved model with
its stored statistics), so the network always sees the same scale.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError

__all__ = [
    "prepare_image",
    "prepare_mask",
    "prepare_scribbles",
    "prepare_spacing",
    "normalize_intensity",
    "apply_normalization",
]

# normalised intensities are clipped to this range: a few metal or air voxels
# must not dominate the first convolution's input
_CLIP = (-1.0, 2.0)


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


def _check_finite(image, name):
    # chunked along z so a large float64 volume is not duplicated as a bool array
    step = max(1, int(2**24 // max(1, image[0].size)))
    for z0 in range(0, image.shape[0], step):
        if not np.isfinite(image[z0:z0 + step]).all():
            raise InvalidInputError(f"{name} contains NaN or infinite values; fill or mask them first")


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
    """``None`` or a bool (z, y, x) array matching ``shape`` (a (y, x) mask is accepted for 2D)."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.ndim == 2 and shape[0] == 1:
        mask = mask[np.newaxis]
    if mask.shape != tuple(shape):
        raise InvalidInputError(f"{name} shape {mask.shape} does not match the image's {tuple(shape)}")
    mask = mask.astype(bool, copy=False)
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


def _robust_range(values, percentiles):
    low, high = np.percentile(values, percentiles)
    if high - low <= 1e-6 * max(1.0, abs(high), abs(low)):
        # a mostly uniform image with a few distinct voxels: use the full range
        low, high = float(values.min()), float(values.max())
    return float(low), float(high)


def normalize_intensity(images, masks=None, *, percentiles=(0.5, 99.5), hu_window=None,
                        max_samples=2_000_000, seed=0):
    """Robust per-channel scaling, statistics taken inside the mask.

    Channel ``c`` is mapped by ``(x - low_c) / (high_c - low_c)`` where
    ``low_c, high_c`` are the ``percentiles`` of the channel inside the
    mask(s), after clipping to ``hu_window`` (CT) if given; the result is
    clipped to [-1, 2].

    Parameters
    ----------
    images : (z, y, x, c) ndarray or list of them
        As returned by :func:`prepare_image`. Several images (reference mode)
        share one set of statistics.
    masks : bool ndarray, list of them, or None
    percentiles : (float, float)
    hu_window : (float, float) or None
    max_samples : int
        Voxels drawn per image to estimate the percentiles (bounds memory).

    Returns
    -------
    normalised : (c, z, y, x) float32 ndarray or list of them
        Channel-first, ready for the network.
    stats : dict
        ``{"low": [...], "high": [...], "hu_window": ... or None,
        "constant": bool}``: plain types, stored in model files.

    Raises
    ------
    InvalidInputError
        If an image holds NaN or infinite values.
    """
    single = not isinstance(images, (list, tuple))
    images = [images] if single else list(images)
    masks = [masks] * len(images) if masks is None or not isinstance(masks, (list, tuple)) else list(masks)
    rng = np.random.default_rng(seed)
    n_ch = images[0].shape[-1]
    samples = [[] for _ in range(n_ch)]
    for i, (img, m) in enumerate(zip(images, masks)):
        _check_finite(img, "image" if single else f"images[{i}]")
        if img.shape[-1] != n_ch:
            raise InvalidInputError(f"images[{i}] has {img.shape[-1]} channels, images[0] has {n_ch}")
        n = int(m.sum()) if m is not None else int(np.prod(img.shape[:3]))
        take = min(n, max_samples)
        if m is None:
            flat = rng.choice(n, size=take, replace=False) if take < n else np.arange(n)
            idx = np.unravel_index(flat, img.shape[:3])
        else:
            flat = np.flatnonzero(m)  # one index array, not three
            if take < n:
                flat = flat[np.sort(rng.choice(n, size=take, replace=False))]
            idx = np.unravel_index(flat, img.shape[:3])
        for c in range(n_ch):
            v = img[idx + (c,)].astype(np.float64)
            if hu_window is not None:
                v = np.clip(v, *hu_window)
            samples[c].append(v)
    low, high = [], []
    constant = True
    for c in range(n_ch):
        lo, hi = _robust_range(np.concatenate(samples[c]), percentiles)
        if hi > lo:
            constant = False
        else:
            hi = lo + 1.0  # any scale: the channel carries no information
        low.append(lo)
        high.append(hi)
    stats = {"low": low, "high": high,
             "hu_window": None if hu_window is None else [float(v) for v in hu_window],
             "constant": constant}
    out = [apply_normalization(img, stats) for img in images]
    return (out[0] if single else out), stats


def apply_normalization(image, stats):
    """Normalise a (z, y, x, c) image with stored ``stats``; returns (c, z, y, x) float32.

    Raises ``InvalidInputError`` on NaN/Inf or a channel count that does not
    match the statistics.
    """
    if image.shape[-1] != len(stats["low"]):
        raise InvalidInputError(
            f"image has {image.shape[-1]} channels, the model was trained on {len(stats['low'])}"
        )
    _check_finite(image, "image")
    out = np.empty((image.shape[-1],) + image.shape[:3], dtype=np.float32)
    for c, (lo, hi) in enumerate(zip(stats["low"], stats["high"])):
        for z in range(image.shape[0]):  # slice by slice: no float64 copy of the volume
            v = image[z, ..., c].astype(np.float32)
            if stats.get("hu_window") is not None:
                np.clip(v, *stats["hu_window"], out=v)
            v -= np.float32(lo)
            v /= np.float32(hi - lo)
            np.clip(v, *_CLIP, out=out[c, z])
    return out
