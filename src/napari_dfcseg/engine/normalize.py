"""The one intensity normalisation of the engine (torch-free).

Every path into the network (``segment``, ``train_model``, ``apply_model``)
goes through :func:`~.inputs.assemble_inputs` and then an
:class:`IntensityNormalization`, nnU-Net style: fitted once on the training
images (:meth:`IntensityNormalization.fit`), stored in the model file
(:meth:`~IntensityNormalization.to_dict`, plain types) and applied to every
image the model labels (:meth:`~IntensityNormalization.apply`), so the
network always sees the same scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError

__all__ = [
    "IntensityNormalization",
    "check_finite",
    "denoise",
    "neighbourhood_radius",
    "DENOISERS",
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


def _samples(images, masks, single, hu_window, max_samples, seed):
    """Per channel, the voxel values the percentiles are taken from (inside the masks)."""
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
    return [np.concatenate(s) for s in samples]


@dataclass(frozen=True)
class IntensityNormalization:
    """Robust per-channel scaling: fitted once on the training images, stored, applied.

    Channel ``c`` is mapped by ``(x - low[c]) / (high[c] - low[c])``, after
    clipping to ``hu_window`` (CT) if set; the result is clipped to [-1, 2].

    Attributes
    ----------
    low, high : tuple of floats
        Per channel, ``high > low``.
    hu_window : (float, float) or None
    constant : bool
        Every channel was constant inside the mask(s) when fitted: nothing to learn.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.arange(8.0).reshape(2, 2, 2, 1)          # (z, y, x, c)
    >>> norm = IntensityNormalization.fit(image, percentiles=(0, 100))
    >>> norm.low, norm.high
    ((0.0,), (7.0,))
    >>> norm.apply(image).shape                              # (c, z, y, x)
    (1, 2, 2, 2)
    >>> IntensityNormalization.from_dict(norm.to_dict()) == norm
    True
    """

    low: tuple
    high: tuple
    hu_window: tuple | None = None
    constant: bool = False

    @property
    def n_channels(self) -> int:
        return len(self.low)

    @classmethod
    def fit(cls, images, masks=None, *, percentiles=(0.5, 99.5), hu_window=None,
            max_samples=2_000_000, seed=0) -> IntensityNormalization:
        """Fit the scaling: ``low, high`` are the ``percentiles`` of each channel inside the mask(s).

        Parameters
        ----------
        images : (z, y, x, c) ndarray or list of them
            As in :attr:`.inputs.EngineInputs.image`. Several images (reference mode)
            share one scaling.
        masks : bool ndarray, list of them, or None
        percentiles : (float, float)
        hu_window : (float, float) or None
            CT: values are clipped to it before the percentiles.
        max_samples : int
            Voxels drawn per image to estimate the percentiles (bounds memory).
        seed : int

        Raises
        ------
        InvalidInputError
            If an image holds NaN or infinite values, or images differ in channel count.
        """
        single = not isinstance(images, (list, tuple))
        images = [images] if single else list(images)
        if masks is None or not isinstance(masks, (list, tuple)):
            masks = [masks] * len(images)
        low, high = [], []
        constant = True
        for values in _samples(images, list(masks), single, hu_window, max_samples, seed):
            lo, hi = _robust_range(values, percentiles)
            if hi > lo:
                constant = False
            else:
                hi = lo + 1.0  # any scale: the channel carries no information
            low.append(lo)
            high.append(hi)
        window = None if hu_window is None else (float(hu_window[0]), float(hu_window[1]))
        return cls(tuple(low), tuple(high), window, constant)

    def apply(self, image) -> np.ndarray:
        """Normalise a (z, y, x, c) image; returns (c, z, y, x) float32, ready for the network.

        Raises
        ------
        InvalidInputError
            On NaN/Inf, or a channel count other than the fitted one.
        """
        if image.shape[-1] != self.n_channels:
            raise InvalidInputError(
                f"image has {image.shape[-1]} channels, the model was trained on {self.n_channels}"
            )
        check_finite(image, "image")
        out = np.empty((image.shape[-1],) + image.shape[:3], dtype=np.float32)
        for c, (lo, hi) in enumerate(zip(self.low, self.high)):
            for z in range(image.shape[0]):  # slice by slice: no float64 copy of the volume
                v = image[z, ..., c].astype(np.float32)
                if self.hu_window is not None:
                    np.clip(v, *self.hu_window, out=v)
                v -= np.float32(lo)
                v /= np.float32(hi - lo)
                np.clip(v, *_CLIP, out=out[c, z])
        return out

    def to_dict(self) -> dict:
        """Plain types (lists, floats, bool, None), as stored in a model file's ``norm_stats``."""
        return {"low": [float(v) for v in self.low], "high": [float(v) for v in self.high],
                "hu_window": None if self.hu_window is None else [float(v) for v in self.hu_window],
                "constant": bool(self.constant)}

    @classmethod
    def from_dict(cls, stats) -> IntensityNormalization:
        """The inverse of :meth:`to_dict`; a model file's field is checked first
        (:mod:`.model_check`), this only converts."""
        window = stats.get("hu_window")
        return cls(tuple(float(v) for v in stats["low"]), tuple(float(v) for v in stats["high"]),
                   None if window is None else (float(window[0]), float(window[1])),
                   bool(stats.get("constant", False)))


#: values of ``DFCConfig.denoise``
DENOISERS = (None, "median")


def neighbourhood_radius(spacing, shape, thick_slice_ratio=2.0):
    """(z, y, x) radius of the 3-voxel neighbourhood the denoising (and the CT anchor's
    flatness) reads: 1 along every axis not ``thick_slice_ratio`` times thicker
    than the finest, 0 across thick slices and along an axis of 1 or 2 voxels.
    """
    finest = min(spacing)
    ratio = thick_slice_ratio if thick_slice_ratio is not None else np.inf
    return tuple(1 if (s < ratio * finest and n >= 3) else 0 for s, n in zip(spacing, shape))


def denoise(x, method, spacing=(1.0, 1.0, 1.0), *, thick_slice_ratio=2.0, region=None):
    """Denoise normalised intensities before the network and the intensity anchor.

    Parameters
    ----------
    x : (c, z, y, x) float32 ndarray
        Normalised channels (:meth:`IntensityNormalization.apply`); filtered in place.
    method : None or "median"
        ``"median"``: a 3-voxel median along every axis not
        ``thick_slice_ratio`` times thicker than the finest (3×3×3 on
        isotropic voxels, 1×3×3 on thick slices, so no tissue is mixed across
        a 5 mm slice). It removes the noise that makes a voxel-wise mixture
        mislabel (measured in docs/method.md, "Denoising") and keeps edges,
        unlike a Gaussian blur.
    spacing : tuple of 3 floats
    thick_slice_ratio : float or None
    region : tuple of 3 slices (z, y, x) or None
        Filter only these voxels (each still reads its true neighbours, so
        they get exactly the whole-volume filter's values); the others keep
        theirs. For the part of a scan later steps read (the mask's bounding
        box and the network's halo): the whole 3D median of MNI152 took 3 of
        its 14 CPU-s (issue 12). None: the whole volume.

    Returns
    -------
    x : the same array
    """
    if method is None:
        return x
    if method != "median":
        raise InvalidInputError(f"denoise must be one of {DENOISERS}, got {method!r}")
    from .median import median_filter

    radius = neighbourhood_radius(spacing, x.shape[1:], thick_slice_ratio)
    if not any(radius):
        return x
    shape = x.shape[1:]
    region = tuple(slice(0, n) for n in shape) if region is None else tuple(
        slice(*s.indices(n)[:2]) for s, n in zip(region, shape))
    if any(s.stop <= s.start for s in region):
        return x
    # the block read: the region plus the filter's radius, inside the volume
    block = tuple(slice(max(0, s.start - r), min(n, s.stop + r))
                  for s, r, n in zip(region, radius, shape))
    inner = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(region, block))
    for c in range(x.shape[0]):
        # the same values as SimpleITK's Median, 5x faster (engine/median.py)
        x[c][region] = median_filter(x[c][block], radius)[inner]
    return x
