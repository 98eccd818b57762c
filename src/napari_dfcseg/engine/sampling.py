"""Where training looks: mini-batches of slices / patches and the fixed evaluation set.

Everything here is numpy; :mod:`.training` turns the blocks into tensors.
A *region* is a tuple of three slices (z, y, x) into a volume.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["TrainingVolume", "sample_batch", "evaluation_regions", "stack_regions", "with_halo"]


@dataclass
class TrainingVolume:
    """One normalised volume with what the loss needs.

    Attributes
    ----------
    x : (c, z, y, x) float32 ndarray
        Normalised intensities.
    mask : (z, y, x) bool ndarray or None
        Voxels that may drive training (None: all).
    scribbles : (z, y, x) int ndarray or None
        0 = unlabelled, s ≥ 1 = user class s.
    spacing : tuple of 3 floats
    mixture : tuple of (k, c) means, (k, c) variances, (k,) weights, or None
        Gaussian mixture of the normalised intensities that anchors the
        self-labels (:func:`.prior.anchored_target`); None: the paper's argmax.
    """

    x: np.ndarray
    mask: np.ndarray | None
    scribbles: np.ndarray | None
    spacing: tuple
    mixture: tuple | None = None
    bbox: tuple = field(init=False)
    slices: np.ndarray = field(init=False)
    n_voxels: int = field(init=False)

    def __post_init__(self):
        shape = self.x.shape[1:]
        if self.mask is None:
            self.bbox = tuple(slice(0, n) for n in shape)
            self.slices = np.arange(shape[0])
            self.n_voxels = int(np.prod(shape))
        else:
            zs = np.flatnonzero(self.mask.any(axis=(1, 2)))
            ys = np.flatnonzero(self.mask.any(axis=(0, 2)))
            xs = np.flatnonzero(self.mask.any(axis=(0, 1)))
            self.bbox = (slice(zs[0], zs[-1] + 1), slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
            self.slices = zs
            self.n_voxels = int(self.mask.sum())

    @property
    def shape(self):
        return self.x.shape[1:]

    def valid(self, region):
        """Bool array of the voxels of ``region`` that may drive training."""
        if self.mask is None:
            return np.ones(tuple(s.stop - s.start for s in region), dtype=bool)
        return self.mask[region]

    def scribbles_in(self, region):
        if self.scribbles is None:
            return None
        return self.scribbles[region]


def _centres(vol: TrainingVolume, n, rng):
    """``n`` random voxels of the mask (of the whole volume without one)."""
    if vol.mask is None:
        return np.stack([rng.integers(0, s, size=n) for s in vol.shape], axis=1)
    # a coarse grid of mask voxels keeps the candidate list small on big volumes
    stride = max(1, int(np.ceil((vol.n_voxels / 1e6) ** (1 / 3))))
    coarse = np.argwhere(vol.mask[::stride, ::stride, ::stride]) * stride
    return coarse[rng.integers(0, len(coarse), size=n)]


def _window(centre, size, length):
    start = int(np.clip(centre - size // 2, 0, length - size))
    return slice(start, start + size)


def sample_batch(volumes, mode, config, rng):
    """Draw one mini-batch of regions, all of one volume and one size.

    2D: ``batch_slices`` distinct slices containing mask, each cropped to the
    same window of at most ``crop_size`` in plane inside the mask's bounding
    box. 3D: ``batch_patches`` patches of ``patch_size`` centred on random
    mask voxels.

    Returns
    -------
    index : int
        Which volume.
    regions : list of region tuples
    """
    weights = np.array([v.n_voxels for v in volumes], dtype=np.float64)
    index = int(rng.choice(len(volumes), p=weights / weights.sum())) if len(volumes) > 1 else 0
    vol = volumes[index]
    if mode == "2d":
        n = min(config.batch_slices, len(vol.slices))
        zs = np.sort(rng.choice(vol.slices, size=n, replace=False))
        by, bx = vol.bbox[1], vol.bbox[2]
        h = min(config.crop_size, by.stop - by.start)
        w = min(config.crop_size, bx.stop - bx.start)
        y0 = by.start + int(rng.integers(0, by.stop - by.start - h + 1))
        x0 = bx.start + int(rng.integers(0, bx.stop - bx.start - w + 1))
        return index, [(slice(z, z + 1), slice(y0, y0 + h), slice(x0, x0 + w)) for z in zs]
    size = [min(p, s) for p, s in zip(config.patch_size, vol.shape)]
    centres = _centres(vol, config.batch_patches, rng)
    return index, [tuple(_window(c, p, s) for c, p, s in zip(cen, size, vol.shape))
                   for cen in centres]


def evaluation_regions(volumes, mode, config):
    """A fixed, deterministic set of regions spread over the mask(s).

    2D: up to ``eval_slices`` slices evenly spaced over the slices that
    contain mask, each the mask's in-plane bounding box. 3D: up to
    ``eval_slices`` patches centred on evenly spaced mask voxels.

    Returns a list of ``(volume_index, region)``.
    """
    out = []
    per_volume = max(1, config.eval_slices // len(volumes))
    for i, vol in enumerate(volumes):
        if mode == "2d":
            pick = np.unique(np.linspace(0, len(vol.slices) - 1, min(per_volume, len(vol.slices)))
                             .round().astype(int))
            for z in vol.slices[pick]:
                out.append((i, (slice(int(z), int(z) + 1), vol.bbox[1], vol.bbox[2])))
        else:
            size = [min(p, s) for p, s in zip(config.patch_size, vol.shape)]
            if vol.mask is None:
                coords = np.stack(np.meshgrid(*[np.linspace(0, s - 1, 4) for s in vol.shape],
                                              indexing="ij"), -1).reshape(-1, 3).round().astype(int)
            else:
                stride = max(1, int(np.ceil((vol.n_voxels / 1e6) ** (1 / 3))))
                coords = np.argwhere(vol.mask[::stride, ::stride, ::stride]) * stride
            pick = np.unique(np.linspace(0, len(coords) - 1, min(per_volume, len(coords)))
                             .round().astype(int))
            for c in coords[pick]:
                out.append((i, tuple(_window(cc, p, s) for cc, p, s in zip(c, size, vol.shape))))
    return out


def with_halo(region, halo, shape, mode):
    """``region`` grown by ``halo`` voxels of real context (clamped to the volume).

    ``halo`` is an int or a (z, y, x) tuple (anisotropic kernels).

    Returns the grown region and the slices that crop the network's output
    on it back to ``region``. A network applied to the grown region gives, on
    ``region``, exactly the responses of a whole-volume pass (in eval mode):
    the crop's edges see their true neighbours instead of zero padding.
    2D mode grows the region in plane only.
    """
    halos = tuple(halo) if isinstance(halo, (tuple, list)) else (halo,) * 3
    grown, crop = [], []
    for axis, (s, n) in enumerate(zip(region, shape)):
        h = 0 if (mode == "2d" and axis == 0) else halos[axis]
        start, stop = max(0, s.start - h), min(n, s.stop + h)
        grown.append(slice(start, stop))
        crop.append(slice(s.start - start, s.stop - start))
    return tuple(grown), tuple(crop)


def stack_regions(vol, regions, mode, halo=0):
    """Network input, valid and scribble blocks of regions, stacked on a batch axis.

    The input is taken over each region grown by ``halo`` (see
    :func:`with_halo`); the regions must give grown blocks of one shape.

    Returns
    -------
    x : (B, c, ...) float32 ndarray
        Input over the grown regions; 2D regions lose their z axis.
    valid : (B, ...) bool ndarray
        Voxels of the (un-grown) regions that may drive training.
    scribbles : (B, ...) int64 ndarray or None
    crop : tuple of slices
        Crops the network output on ``x`` (spatial axes) to the regions.
    """
    grown = [with_halo(r, halo, vol.shape, mode) for r in regions]
    crop = grown[0][1]
    xs = [vol.x[(slice(None),) + g] for g, _ in grown]
    valid = [vol.valid(r) for r in regions]
    scr = [vol.scribbles_in(r) for r in regions]
    if mode == "2d":
        xs = [a[:, 0] for a in xs]
        valid = [a[0] for a in valid]
        scr = [None if a is None else a[0] for a in scr]
        crop = crop[1:]
    x = np.stack(xs)
    v = np.stack(valid)
    s = None if scr[0] is None else np.stack(scr).astype(np.int64)
    return x, v, s, crop
