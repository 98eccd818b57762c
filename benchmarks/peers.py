"""The classical peers a user could run instead: ANTs Atropos and dipy's HMRF (``bench`` extra).

Both are optional: :func:`available` says which are installed, and the real-scan
suite skips (and says so) the ones that are not. Labels follow the convention
of :mod:`benchmarks.baselines`: 0 outside ``mask`` (everywhere 1..K when no
mask is given), 1..K inside, numbered by increasing mean intensity.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from .baselines import _order_by_intensity

PEERS = ("atropos", "dipy-hmrf")
#: dipy's ICM/EM iterations (its default is 100 with an energy-change stop at 1e-5;
#: capped so that a 1.5-Mvoxel MR takes seconds, not minutes, on a shared 2-core machine)
DIPY_MAX_ITER = 10
#: the smoothing (MRF) weights: Atropos as in issue 11, dipy its tutorial's 0.1
ATROPOS_MRF = "[0.1,1x1x1]"
DIPY_BETA = 0.1
#: dipy's working range (see :func:`dipy_hmrf`)
DIPY_RANGE = 1000.0


def available():
    """The peers whose package is installed (``antspyx`` → ``ants``; ``dipy``)."""
    modules = {"atropos": "ants", "dipy-hmrf": "dipy"}
    return tuple(p for p in PEERS if importlib.util.find_spec(modules[p]) is not None)


def _renumber(image, assignment, mask, n_classes):
    """0 outside ``mask``; inside, clusters 0..K-1 of ``assignment`` → 1..K by mean intensity."""
    labels = np.zeros(image.shape, dtype=np.uint8)
    labels[mask] = _order_by_intensity(image[mask], assignment[mask], n_classes)
    return labels


def atropos(image, n_classes, *, mask=None, spacing=(1.0, 1.0, 1.0)):
    """ANTs Atropos: k-means initialisation, MRF smoothing 0.1, 5 iterations (issue 11's call).

    ``ants.atropos(a=img, x=mask, i='kmeans[K]', m='[0.1,1x1x1]', c='[5,0]')``
    on the (z, y, x) image with its voxel spacing; ``mask`` None means the
    whole array.
    """
    import ants

    mask = np.ones(image.shape, bool) if mask is None else np.asarray(mask, bool)
    # ANTs indexes (x, y, z): transpose so that the spacing (sz, sy, sx) is reversed with it
    img = ants.from_numpy(np.ascontiguousarray(image.transpose(2, 1, 0), dtype=np.float32),
                          spacing=tuple(float(s) for s in spacing[::-1]))
    msk = ants.from_numpy(np.ascontiguousarray(mask.transpose(2, 1, 0), dtype=np.float32),
                          spacing=tuple(float(s) for s in spacing[::-1]))
    out = ants.atropos(a=img, x=msk, i=f"kmeans[{n_classes}]", m=ATROPOS_MRF, c="[5,0]")
    seg = out["segmentation"].numpy().transpose(2, 1, 0).astype(np.int64)
    return _renumber(image, np.clip(seg - 1, 0, n_classes - 1), mask, n_classes)


def dipy_hmrf(image, n_classes, *, mask=None, max_iter=DIPY_MAX_ITER):
    """dipy ``TissueClassifierHMRF`` (ICM + EM, beta 0.1) with ``n_classes`` classes in all.

    dipy starts every class with variance 1 and means spread over the image's
    range, so it expects scanner-like values: the image is scaled affinely to
    [0, :data:`DIPY_RANGE`] (a normalised [0, 1] image leaves it with one
    class). dipy also adds a background class for the voxels equal to 0 (it
    expects a skull-stripped brain). Without a mask, that class is one of the
    K (dipy is asked for K − 1); with a mask, the image is ≥ 1 inside and 0
    outside, so dipy's background is exactly the outside.
    """
    from dipy.segment.tissue import TissueClassifierHMRF

    image = np.asarray(image, dtype=np.float64)
    classifier = TissueClassifierHMRF(verbose=False)
    inside = np.ones(image.shape, bool) if mask is None else np.asarray(mask, bool)
    lo, hi = image[inside].min(), image[inside].max()
    scaled = (image - lo) * (DIPY_RANGE / max(hi - lo, 1e-12))
    if mask is None:
        _, seg, _ = classifier.classify(scaled, n_classes - 1, DIPY_BETA, max_iter=max_iter)
        assignment = seg.astype(np.int64)  # 0..K-1
    else:
        shifted = np.where(inside, scaled + 1.0, 0.0)
        _, seg, _ = classifier.classify(shifted, n_classes, DIPY_BETA, max_iter=max_iter)
        assignment = np.clip(seg.astype(np.int64) - 1, 0, n_classes - 1)
    return _renumber(image, assignment, inside, n_classes)


def run_peer(name, image, n_classes, *, mask=None, spacing=(1.0, 1.0, 1.0)):
    """Run one of :data:`PEERS` (on the mask's bounding box when a mask is given: same labels)."""
    if mask is not None:
        mask = np.asarray(mask, bool)
        where = np.argwhere(mask)
        box = tuple(slice(max(lo - 1, 0), hi + 2) for lo, hi in zip(where.min(0), where.max(0)))
        labels = np.zeros(image.shape, dtype=np.uint8)
        labels[box] = _run(name, image[box], n_classes, mask=mask[box], spacing=spacing)
        return labels
    return _run(name, image, n_classes, mask=None, spacing=spacing)


def _run(name, image, n_classes, *, mask, spacing):
    if name == "atropos":
        return atropos(image, n_classes, mask=mask, spacing=spacing)
    if name == "dipy-hmrf":
        return dipy_hmrf(image, n_classes, mask=mask)
    raise ValueError(f"peer must be one of {PEERS}, got {name!r}")
