"""Benchmark cases (degraded MNI152 and head phantoms) and the simulated user scribbles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from napari_dfcseg.datasets import head_phantom, mni152

from .common import normalise

#: the degradations of the MNI grid (noise, bias), BrainWeb's levels
MNI_NOISE = (0.0, 0.03, 0.05, 0.09)
MNI_BIAS = (0.0, 0.2, 0.4)
#: the reference point every method is run at
MNI_REFERENCE = (0.05, 0.2)
#: head phantoms: (name, shape, spacing, noise, bias); the last is strongly anisotropic.
#: The phantom's tissues are piecewise constant and far apart in intensity, so raw
#: clustering is near perfect below ~10 % noise (measured): the levels are set high.
PHANTOMS = (
    ("phantom iso n9 b40", (96, 112, 96), (1.0, 1.0, 1.0), 0.09, 0.4),
    ("phantom iso n20 b40", (96, 112, 96), (1.0, 1.0, 1.0), 0.20, 0.4),
    ("phantom aniso n20 b20", (40, 112, 96), (2.5, 1.0, 1.0), 0.20, 0.2),
)
QUICK_PHANTOMS = (
    ("phantom aniso n5 b20", (16, 48, 40), (2.5, 1.0, 1.0), 0.05, 0.2),
)


@dataclass
class Case:
    """One scored input: the normalised image every method sees, the truth and the mask."""

    name: str
    image: np.ndarray
    truth: np.ndarray
    mask: np.ndarray
    spacing: tuple
    noise: float
    bias: float
    tissues: tuple = (1, 2, 3)


def mni_case(noise, bias, *, seed=0, crop=None):
    """The degraded MNI152 template as a :class:`Case` (``crop``: z-slab size for quick runs)."""
    p = mni152(noise=noise, bias=bias, seed=seed)
    image, truth, mask = p.image, p.truth, p.mask
    if crop is not None:
        # a slab through the ventricles keeps all three tissues
        z0 = image.shape[0] // 2 - crop // 2
        image, truth, mask = (a[z0:z0 + crop] for a in (image, truth, mask))
    return Case(f"MNI n{noise * 100:.0f} b{bias * 100:.0f}", normalise(image, mask),
                truth, mask, p.spacing, noise, bias)


def phantom_case(name, shape, spacing, noise, bias, *, seed=0):
    """A head phantom as a :class:`Case`, scored on CSF/GM/WM inside the brain mask."""
    p = head_phantom(shape=shape, spacing=spacing, noise=noise, bias=bias, seed=seed)
    return Case(name, normalise(p.image, p.mask), p.truth, p.mask, p.spacing, noise, bias)


def simulate_scribbles(truth, mask, *, n_slices=3, strokes_per_tissue=3, stroke_radius=6,
                       tissues=(1, 2, 3), seed=0):
    """Scribbles a user might draw: a few short strokes per tissue on ``n_slices`` axial slices.

    On each chosen slice (evenly spaced over the middle half of the mask's
    z-extent), every tissue's region is eroded by one pixel so that strokes
    stay clearly inside it, then skeletonised (the user draws along the middle
    of a structure). ``strokes_per_tissue`` random skeleton points are picked
    and the skeleton pixels within ``stroke_radius`` of each form one stroke,
    drawn with a 3-pixel brush (dilated once, kept inside the tissue).

    Returns
    -------
    scribbles : int16 ndarray, same shape as ``truth``
        0 unlabelled, else the tissue label (1..S).
    """
    from skimage.morphology import skeletonize

    rng = np.random.default_rng(seed)
    scribbles = np.zeros(truth.shape, dtype=np.int16)
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    lo, hi = zs[0] + (zs[-1] - zs[0]) // 4, zs[-1] - (zs[-1] - zs[0]) // 4
    slices = np.unique(np.linspace(lo, hi, n_slices + 2)[1:-1].round().astype(int))
    yy, xx = np.mgrid[: truth.shape[1], : truth.shape[2]]
    for z in slices:
        for tissue in tissues:
            region = (truth[z] == tissue) & mask[z]
            inner = ndi.binary_erosion(region)
            if inner.sum() < 10:  # thin structures (CSF): fall back to the region itself
                inner = region
            skeleton = skeletonize(inner)
            points = np.argwhere(skeleton)
            if len(points) == 0:
                continue
            picks = points[rng.choice(len(points), size=min(strokes_per_tissue, len(points)),
                                      replace=False)]
            stroke = np.zeros_like(skeleton)
            for py, px in picks:
                near = (yy - py) ** 2 + (xx - px) ** 2 <= stroke_radius**2
                stroke |= skeleton & near
            stroke = ndi.binary_dilation(stroke) & region
            scribbles[z][stroke] = tissue
    return scribbles
