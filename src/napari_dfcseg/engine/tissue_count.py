"""Choose the number of tissues K of one scan (``n_clusters="auto"``); torch-free.

The criterion (measured in docs/method.md, "Tissue count"):

1. the intensities inside the foreground, after a 3×3×3 median filter (the
   noise otherwise widens every class and adds spurious components), a
   fixed-seed subsample of 5 000 voxels scaled to the 0.5-99.5 percentile
   range; three such subsamples;
2. a 1-D Gaussian mixture for every K in ``k_range`` (EM from two k-means
   starts, the better kept,
   :func:`~napari_dfcseg.engine.prior.fit_gaussian_mixture`) and its
   Bayesian information criterion
   ``BIC(K) = -2 log L + (3K - 1) log n``;
3. the **smallest K that reaches 95 % of the best BIC improvement over one
   class**: ``(BIC(1) - BIC(K)) / (BIC(1) - min BIC) >= 0.95``.

Why not the minimum of BIC itself: real tissue intensities are not
Gaussian (partial volume at every boundary, a bias field, CT bone's long
tail), so BIC keeps buying components that split one tissue in two (the
head phantom, 4 tissues: BIC's minimum at 6 to 12 depending on the
subsample; the full-entropy ICL goes the other way, 1 or 2 classes). The
knee of the BIC curve is where further components stop explaining the
histogram: 4 on the phantom, 3 on the skull-stripped MNI152 brain. A rule
relative to the BIC minimum ("95 % of the best gain") was tried first and
rejected: one subsample whose EM finds a better optimum at K = 12 moves the
minimum, and the phantom got K = 12. The look-ahead of three components
passes over K + 1 and K + 2 fits where EM stopped in a poorer optimum (the
abdominal MR: K = 3 no better than 2, K = 4 much better).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .foreground import CT_BODY_HU

__all__ = ["TissueCount", "choose_tissue_count", "choose_ct_tissue_count", "K_RANGE",
           "CT_SOFT_TISSUE_WINDOW", "CT_AIR_HU", "count_ct_air"]

#: K values tried by ``n_clusters="auto"``
K_RANGE = (2, 12)

_SAMPLES = 5000
_DRAWS = 3
_GAIN = 0.03
# components looked ahead: EM can miss the better split for one or two K in a row
_AHEAD = 3
# no class is narrower than 1 % of the robust intensity range: a narrower component would
# sit on a spike of identical values (integer intensities, the median filter's plateaus)
_STD_FLOOR = 0.01

#: CT: the radiologist's soft-tissue window (width 400, level 40 HU)
CT_SOFT_TISSUE_WINDOW = (-160.0, 240.0)
#: CT: voxels at or below this many HU are air or lung (the body threshold of
#: :mod:`.foreground`: every tissue of the body is above it)
CT_AIR_HU = CT_BODY_HU
# CT: air / lung below the window, or bone above it, counts as a class of its own when it
# holds at least this share of the foreground
_CT_OUTSIDE_SHARE = 0.005


@dataclass(frozen=True)
class TissueCount:
    """The chosen tissue count and why.

    Attributes
    ----------
    k : int
    reason : str
        One line for the user (CLI summary, widget status).
    bic : dict of int -> float
        BIC of every K tried (K = 1 included, the reference).
    """

    k: int
    reason: str
    bic: dict
    #: CT: how many of the K classes are air / lung (below :data:`CT_AIR_HU`), counted on
    #: their own; the anchor fits them on those voxels (:func:`~.prior.fit_ct_mixture`)
    n_air: int = 0


def _sample(image, mask, seed, inside=None):
    """``inside``: ``np.flatnonzero(mask)`` when the caller has it (three draws share it)."""
    a = np.asarray(image, dtype=np.float32)
    idx = inside if inside is not None else (
        np.flatnonzero(mask.ravel()) if mask is not None else np.arange(a.size))
    rng = np.random.default_rng(seed)
    if idx.size > _SAMPLES:
        idx = np.sort(rng.choice(idx, _SAMPLES, replace=False))
    # median of each sampled voxel's 3x3x3 neighbourhood (no filtered copy of the volume):
    # the neighbours' coordinates clipped to the volume, the edge-padded volume's values
    # without padding it (35 MB for MNI152, three times a count)
    coords = np.unravel_index(idx, a.shape)
    offsets = [(-1, 0, 1) if n >= 3 else (0,) for n in a.shape]
    shifted = [[np.clip(c + o, 0, n - 1) for o in offs]
               for c, offs, n in zip(coords, offsets, a.shape)]
    windows = np.stack([a[z, y, x] for z in shifted[0] for y in shifted[1] for x in shifted[2]],
                       axis=1)
    values = np.median(windows, axis=1).astype(np.float64)
    lo, hi = np.percentile(values, [0.5, 99.5])
    if hi <= lo:
        return None
    return (values - lo) / (hi - lo)


def _log_likelihood(values, k):
    from .prior import _log_joint, _row_max, fit_gaussian_mixture

    x = values[:, None]
    best = -np.inf
    # two k-means starts (equal-count and equal-width bins): EM from one alone stopped
    # in a poor optimum for some K on the abdominal MR, which made the curve dip
    for init in ("quantile", "uniform"):
        means, variances, weights = fit_gaussian_mixture(x, k, n_iter=100, tol=1e-5,
                                                         var_floor=_STD_FLOOR ** 2, init=init)
        log_p = _log_joint(x, means, variances, weights)
        top = _row_max(log_p)[:, 0]
        best = max(best, float((np.log(np.exp(log_p - top[:, None]).sum(1)) + top).sum()))
    return best


def _bic_curve(values, k_min, k_max):
    """BIC for K = 1, 2, ... until the knee is decided (at most ``k_max``).

    The likelihood is made non-decreasing in K: a mixture of K + 1
    components contains every mixture of K, so the maximum likelihood never
    falls with K; when EM stops in a poorer local optimum for K + 1, the
    better K fit is the honest value.
    """
    n = values.size
    best = -np.inf
    bic = {}
    for k in range(1, k_max + 1):
        best = max(best, _log_likelihood(values, k))
        bic[k] = -2.0 * best + (3 * k - 1) * np.log(n)
        if k >= k_min + _AHEAD and _knee(bic, k_min, k - _AHEAD, k) is not None:
            break
    return bic


def _knee(bic, k_min, k_last, k_max):
    """The first K <= ``k_last`` after which the next ``_AHEAD`` components gain < ``_GAIN``.

    "Gain" is BIC(1) - BIC(K); the test is on the gain the next one to ``_AHEAD``
    components add, relative to the gain so far. Returns (K, that ratio),
    or None when no K up to ``k_last`` passes.
    """
    gain = {k: bic[1] - bic[k] for k in bic}
    for k in range(k_min, k_last + 1):
        ahead = max(gain[j] for j in range(k + 1, min(k + _AHEAD, k_max) + 1))
        if gain[k] > 0 and ahead - gain[k] < _GAIN * gain[k]:
            return k, max(0.0, ahead - gain[k]) / gain[k]
    return None


def choose_tissue_count(image, mask=None, *, k_range=K_RANGE, seed=0):
    """Number of intensity classes of ``image`` inside ``mask`` (see the module's notes).

    Parameters
    ----------
    image : (z, y, x) ndarray
        Intensities (channel 0 of a multi-channel image).
    mask : bool ndarray or None
        The foreground (automatic or the user's).
    k_range : (int, int)
        Smallest and largest K tried.
    seed : int
        Chooses the subsample.

    Returns
    -------
    TissueCount
    """
    k_min, k_max = int(k_range[0]), int(k_range[1])
    if not 1 <= k_min <= k_max:
        raise ValueError(f"k_range must be (low, high) with 1 <= low <= high, got {k_range}")
    curves = []
    inside = None if mask is None else np.flatnonzero(np.asarray(mask).ravel())
    for draw in range(_DRAWS):
        values = _sample(image, mask, seed + draw, inside)
        if values is None:
            return TissueCount(k_min, "no intensity variation inside the foreground", {})
        curves.append(_bic_curve(values, k_min, k_max))
    knees = [_knee(c, k_min, max(c) - 1, max(c)) or (max(c), 0.0) for c in curves]
    # the median of the draws: one subsample whose EM found a lucky optimum at large K
    # does not decide alone
    order = sorted(range(_DRAWS), key=lambda i: knees[i][0])
    pick = order[_DRAWS // 2]
    k, share = knees[pick]
    bic = curves[pick]
    reason = (f"{k} intensity classes: up to three more would improve the BIC by "
              f"{share:.1%} of what {k} gained over one class (< {_GAIN:.0%}; median of "
              f"{_DRAWS} subsamples: K = {', '.join(str(q[0]) for q in knees)})")
    return TissueCount(k, reason, bic)


def choose_ct_tissue_count(hu, mask=None, *, k_range=K_RANGE, seed=0, full=None):
    """Tissue count of a CT: the soft-tissue classes and the air / lung classes counted on their own.

    Over the whole HU range the steps air → fat → soft tissue → bone explain
    nearly all of the BIC's gain, so organs 10-60 HU apart (liver, spleen,
    muscle, kidney, enhanced vessels) add less than the criterion's 3 % and
    are merged (the public CT: K = 5-6, liver Dice 0.52; forced K = 7-8:
    0.74-0.76). As a radiologist reads the soft-tissue window separately, the
    criterion of :func:`choose_tissue_count` is applied to the voxels inside
    :data:`CT_SOFT_TISSUE_WINDOW`; likewise to the air / lung voxels (at or
    below :data:`CT_AIR_HU`: bowel gas and trachea near -1000 HU, lung
    parenchyma near -850, their partial volume), which one class held as one
    (the public CT: lung Dice 0.44, the lung sharing a label with bowel gas),
    and to the bone above the window (trabecular and cortical; one class
    before: bone 0.834 vs 0.837, docs/method.md). A part counts when it holds at
    least 0.5 % of the foreground. ``TissueCount.n_air`` is the air / lung count.

    Parameters
    ----------
    hu : (z, y, x) ndarray
        Intensities in HU.
    mask : bool ndarray or None
    k_range : (int, int)
    seed : int
    full : TissueCount or None
        The count over the whole range (computed if None); the result is never below it.

    Returns
    -------
    TissueCount
    """
    full = full if full is not None else choose_tissue_count(hu, mask, k_range=k_range, seed=seed)
    hu = np.asarray(hu)
    inside = np.ones(hu.shape, bool) if mask is None else np.asarray(mask, bool)
    lo, hi = CT_SOFT_TISSUE_WINDOW
    soft = inside & (hu > lo) & (hu < hi)
    if np.count_nonzero(soft) < _SAMPLES:
        return full
    counted = choose_tissue_count(hu, soft, k_range=(1, k_range[1]), seed=seed)
    n_air = count_ct_air(hu, inside, k_range=k_range, seed=seed)
    n_bone = _count_part(hu, inside, inside & (hu >= hi), k_range, seed)
    k = min(int(k_range[1]), counted.k + n_air + n_bone)
    n_air = min(n_air, k - 1)
    if k <= full.k:
        return dataclasses.replace(full, n_air=0)
    extra = ([f"{n_air} air / lung (at or below {CT_AIR_HU:g} HU)"] if n_air else []) \
        + ([f"{n_bone} bone (at or above {hi:g} HU)"] if n_bone else [])
    reason = (f"{k} tissue classes (CT): {counted.k} in the soft-tissue window "
              f"{lo:g}..{hi:g} HU (median of {_DRAWS} subsamples: "
              f"{counted.reason.rsplit('K = ', 1)[-1]}"
              + (f" + {' and '.join(extra)}" if extra else "")
              + f"; the whole HU range alone: {full.k}")
    return TissueCount(k, reason, full.bic, n_air)


def count_ct_air(hu, mask=None, *, k_range=K_RANGE, seed=0):
    """Air / lung classes of a CT: the criterion on the voxels at or below :data:`CT_AIR_HU`.

    0 when they hold less than 0.5 % of the foreground (``mask``).
    """
    hu = np.asarray(hu)
    inside = np.ones(hu.shape, bool) if mask is None else np.asarray(mask, bool)
    return _count_part(hu, inside, inside & (hu <= CT_AIR_HU), k_range, seed)


def _count_part(hu, inside, part, k_range, seed):
    """The criterion on the voxels of ``part``; 0 when they are under 0.5 % of ``inside``."""
    if np.count_nonzero(part) < max(2, _CT_OUTSIDE_SHARE * np.count_nonzero(inside)):
        return 0
    return choose_tissue_count(hu, part, k_range=(1, k_range[1]), seed=seed).k
