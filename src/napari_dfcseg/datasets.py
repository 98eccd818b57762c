"""Reproducible test volumes: a synthetic head phantom and the MNI152 template.

Used by the napari sample data, ``dfcseg demo``, the tests and the benchmarks.
Nothing here downloads anything: the phantom is generated on the fly and the
MNI152 2009 template comes from the optional ``nilearn`` wheel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Phantom",
    "TISSUES",
    "MNI_TISSUES",
    "head_phantom",
    "mni152",
    "add_bias_field",
    "add_rician_noise",
]

#: label -> tissue name of the phantom's ground truth (0 = outside the head)
TISSUES = {1: "CSF", 2: "grey matter", 3: "white matter", 4: "scalp"}

# T1-like mean intensities (arbitrary units, as a 12-bit MR scanner would store them)
_T1_MEANS = {0: 0.0, 1: 600.0, 2: 1500.0, 3: 2300.0, 4: 1900.0}


@dataclass(frozen=True)
class Phantom:
    """A synthetic volume with its ground truth.

    Attributes
    ----------
    image : (z, y, x) float32 ndarray
        T1-like intensities, with noise and bias field.
    truth : (z, y, x) uint8 ndarray
        0 outside the head, then the labels of :data:`TISSUES`.
    mask : (z, y, x) bool ndarray
        The brain (CSF, grey and white matter): where the tissues are scored.
    spacing : tuple of 3 floats
        Voxel size in mm, (sz, sy, sx).
    """

    image: np.ndarray
    truth: np.ndarray
    mask: np.ndarray
    spacing: tuple


def _ellipsoid_radius(zz, yy, xx, centre, radii):
    return np.sqrt(
        ((zz - centre[0]) / radii[0]) ** 2
        + ((yy - centre[1]) / radii[1]) ** 2
        + ((xx - centre[2]) / radii[2]) ** 2
    )


def add_bias_field(image, amplitude, *, seed=0):
    """Multiply ``image`` by a smooth random field spanning ``1 ± amplitude / 2``.

    ``amplitude=0.2`` is BrainWeb's "20 % INU": the field varies by 20 % over the volume.
    """
    if amplitude <= 0:
        return image.astype(np.float32, copy=True)
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in image.shape], indexing="ij")
    field = np.zeros(image.shape, dtype=np.float64)
    # a low-order polynomial: smooth like a receive-coil sensitivity profile
    for g in grids:
        a, b = rng.uniform(-1, 1, size=2)
        field += a * g + b * g**2
    field += rng.uniform(-1, 1) * grids[0] * grids[1]
    field -= field.min()
    field /= max(field.max(), 1e-12)
    return (image * (1.0 - amplitude / 2 + amplitude * field)).astype(np.float32)


def add_rician_noise(image, level, *, reference=None, seed=0):
    """Add Rician noise of standard deviation ``level × reference`` (BrainWeb convention).

    ``reference`` defaults to the brightest tissue's intensity (the 99.5th percentile).
    """
    if level <= 0:
        return image.astype(np.float32, copy=True)
    rng = np.random.default_rng(seed)
    if reference is None:
        reference = float(np.percentile(image, 99.5))
    sigma = level * reference
    real = image + rng.normal(0.0, sigma, image.shape)
    imag = rng.normal(0.0, sigma, image.shape)
    return np.sqrt(real**2 + imag**2).astype(np.float32)


def head_phantom(shape=(40, 112, 96), spacing=(2.5, 1.0, 1.0), *, noise=0.05, bias=0.2, seed=0):
    """A T1-like head phantom: scalp, CSF, a wavy grey-matter ribbon, white matter, ventricles.

    Parameters
    ----------
    shape : tuple of 3 ints
        (z, y, x) size in voxels.
    spacing : tuple of 3 floats
        Voxel size in mm, (sz, sy, sx). The anatomy is defined in mm, so thick
        slices sample the same head more coarsely.
    noise : float
        Rician noise level relative to white matter (0.05 = BrainWeb's 5 %).
    bias : float
        Multiplicative bias-field amplitude (0.2 = BrainWeb's 20 % INU).
    seed : int
        Seed of the noise, bias field and cortical folding.

    Returns
    -------
    Phantom
        image, truth, mask and spacing.

    Examples
    --------
    >>> p = head_phantom(shape=(16, 48, 40))
    >>> p.image.shape, sorted(np.unique(p.truth).tolist())
    ((16, 48, 40), [0, 1, 2, 3, 4])
    """
    shape = tuple(int(n) for n in shape)
    spacing = tuple(float(s) for s in spacing)
    if len(shape) != 3 or min(shape) < 4:
        raise ValueError(f"shape must be 3 sizes of at least 4 voxels, got {shape}")
    rng = np.random.default_rng(seed)
    extent = [n * s for n, s in zip(shape, spacing)]  # mm
    zz, yy, xx = np.meshgrid(
        *[(np.arange(n) + 0.5) * s for n, s in zip(shape, spacing)], indexing="ij", sparse=True
    )
    centre = [e / 2 for e in extent]
    head = [0.46 * e for e in extent]

    # angular coordinates give the cortex its folds
    theta = np.arctan2(yy - centre[1], xx - centre[2])
    phi = np.arctan2(zz - centre[0], np.hypot(yy - centre[1], xx - centre[2]))
    k1, k2 = rng.integers(5, 9, size=2)
    p1, p2 = rng.uniform(0, 2 * np.pi, size=2)
    folds = 0.05 * np.sin(k1 * theta + p1) * np.cos(k2 * phi + p2)

    r = _ellipsoid_radius(zz, yy, xx, centre, head)
    truth = np.zeros(shape, dtype=np.uint8)
    truth[r < 1.0] = 4  # scalp and skull (bright fat on T1)
    truth[r < 0.86] = 1  # CSF
    truth[r < 0.80 + folds] = 2  # grey matter with folds
    truth[r < 0.62 + folds] = 3  # white matter
    # two lateral ventricles and a deep grey nucleus on each side
    for side in (-1, 1):
        v = _ellipsoid_radius(
            zz, yy, xx,
            (centre[0], centre[1] - 0.02 * extent[1], centre[2] + side * 0.08 * extent[2]),
            (0.14 * extent[0], 0.16 * extent[1], 0.045 * extent[2]),
        )
        truth[v < 1.0] = 1
        n = _ellipsoid_radius(
            zz, yy, xx,
            (centre[0], centre[1] + 0.12 * extent[1], centre[2] + side * 0.17 * extent[2]),
            (0.08 * extent[0], 0.07 * extent[1], 0.05 * extent[2]),
        )
        truth[(n < 1.0) & (truth == 3)] = 2

    clean = np.vectorize(_T1_MEANS.get, otypes=[np.float32])(truth)
    image = add_bias_field(clean, bias, seed=seed + 1)
    image = add_rician_noise(image, noise, reference=_T1_MEANS[3], seed=seed + 2)
    mask = (truth >= 1) & (truth <= 3)
    return Phantom(image=image, truth=truth, mask=mask, spacing=spacing)


# --- MNI ICBM152 2009a template (from the optional nilearn wheel) -------------

#: label -> tissue name of :func:`mni152`'s ground truth (0 = outside the brain)
MNI_TISSUES = {1: "CSF", 2: "grey matter", 3: "white matter"}

_MNI_FILE = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"


def _load_mni152_clean():
    """The template's T1, GM and WM maps as (z, y, x) float32 arrays (T1 raw, maps in [0, 1])."""
    try:
        import nibabel as nib
        import nilearn.datasets
    except ImportError as exc:  # optional dependency: say how to get it
        raise ImportError(
            "mni152() needs nilearn and nibabel: pip install 'napari-dfcseg[bench]'"
        ) from exc
    from pathlib import Path

    folder = Path(nilearn.datasets.__file__).parent / "data"
    arrays = []
    for name in ("t1", "gm", "wm"):
        path = folder / _MNI_FILE.format(name)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: MNI152 file missing from the nilearn installation")
        data = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)
        # NIfTI arrays are (x, y, z); the project's convention is (z, y, x)
        arrays.append(np.ascontiguousarray(data.transpose(2, 1, 0)))
    t1, gm, wm = arrays
    return t1, gm / 255.0, wm / 255.0


def mni152(noise=0.05, bias=0.2, seed=0):
    """The MNI ICBM152 2009a T1 template with tissue ground truth, degraded like BrainWeb.

    The skull-stripped, 1 mm template and its grey/white-matter probability
    maps ship inside the ``nilearn`` wheel, so this needs no download.

    Parameters
    ----------
    noise : float
        Rician noise level relative to the mean white-matter intensity
        (0.05 = BrainWeb's 5 %).
    bias : float
        Multiplicative bias-field amplitude (0.2 = BrainWeb's 20 % INU).
    seed : int
        Seed of the bias field (``seed + 1``) and the noise (``seed + 2``).

    Returns
    -------
    Phantom
        image (197 × 233 × 189 float32, (z, y, x)), truth (uint8, labels of
        :data:`MNI_TISSUES`), mask (bool, the brain) and spacing (1, 1, 1) mm.

    Notes
    -----
    The brain mask is nilearn's own definition (``load_mni152_brain_mask``):
    T1 above 20 % of its maximum, with holes filled. CSF probability is
    ``1 - GM - WM`` (clipped to [0, 1]), and each brain voxel gets the tissue
    of highest probability (argmax over CSF, GM, WM). The bias field is applied
    first and the noise second, as in :func:`head_phantom`.

    Examples
    --------
    >>> p = mni152(noise=0.03, bias=0.0)  # doctest: +SKIP
    >>> p.image.shape                      # doctest: +SKIP
    (189, 233, 197)
    """
    from scipy import ndimage as ndi

    t1, gm, wm = _load_mni152_clean()
    mask = ndi.binary_fill_holes(t1 > 0.2 * t1.max())
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0)
    tissue = np.argmax(np.stack([csf, gm, wm]), axis=0).astype(np.uint8) + 1
    truth = np.where(mask, tissue, 0).astype(np.uint8)
    reference = float(t1[truth == 3].mean())
    image = add_bias_field(t1, bias, seed=seed + 1)
    image = add_rician_noise(image, noise, reference=reference, seed=seed + 2)
    return Phantom(image=image, truth=truth, mask=mask, spacing=(1.0, 1.0, 1.0))
