"""The one intensity normalisation of the engine (torch-free).

Every path into the network (``segment``, ``train_model``, ``apply_model``)
goes through :func:`~.inputs.assemble_inputs` and then :func:`normalize_intensity` (when
training) or :func:`apply_normalization` (when applying a saved model with
its stored statistics), so the network always sees the same scale.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError

__all__ = [
    "normalize_intensity",
    "apply_normalization",
]

# normalised intensities are clipped to this range: a few metal or air voxels
# must not dominate the first convolution's input
_CLIP = (-1.0, 2.0)


def check_finite(image, name):
    """Raise ``InvalidInputError`` naming ``name`` if ``image`` holds NaN or infinite values."""
    # chunked along z so a large float64 volume is not duplicated as a bool array
    step = max(1, int(2**24 // max(1, image[0].size)))
    for z0 in range(0, image.shape[0], step):
        if not np.isfinite(image[z0:z0 + step]).all():
            raise InvalidInputError(f"{name} contains NaN or infinite values; fill or mask them first")


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
        As in :attr:`.inputs.EngineInputs.image`. Several images (reference mode)
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
        check_finite(img, "image" if single else f"images[{i}]")
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
    check_finite(image, "image")
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


#: values of ``DFCConfig.denoise``
DENOISERS = (None, "median")


def denoise(x, method, spacing=(1.0, 1.0, 1.0), *, thick_slice_ratio=2.0):
    """Denoise normalised intensities before the network and the intensity anchor.

    Parameters
    ----------
    x : (c, z, y, x) float32 ndarray
        Normalised channels (:func:`normalize_intensity`); filtered in place.
    method : None or "median"
        ``"median"``: a 3-voxel median along every axis not
        ``thick_slice_ratio`` times thicker than the finest (3×3×3 on
        isotropic voxels, 1×3×3 on thick slices, so no tissue is mixed across
        a 5 mm slice). It removes the noise that makes a voxel-wise mixture
        mislabel (measured in docs/method.md, "Denoising") and keeps edges,
        unlike a Gaussian blur.
    spacing : tuple of 3 floats
    thick_slice_ratio : float or None

    Returns
    -------
    x : the same array
    """
    if method is None:
        return x
    if method != "median":
        raise InvalidInputError(f"denoise must be one of {DENOISERS}, got {method!r}")
    import SimpleITK as sitk

    finest = min(spacing)
    ratio = thick_slice_ratio if thick_slice_ratio is not None else np.inf
    # SimpleITK radii are (x, y, z); an axis of 1 or 2 voxels is not filtered
    radius = [1 if (s < ratio * finest and n >= 3) else 0
              for s, n in zip(spacing[::-1], x.shape[1:][::-1])]
    if not any(radius):
        return x
    for c in range(x.shape[0]):
        x[c] = sitk.GetArrayFromImage(sitk.Median(sitk.GetImageFromArray(x[c]), radius))
    return x
