"""Intensity mixture that anchors the self-labels (``DFCConfig.mixture_components``).

The paper's target is the argmax of the network's own responses. On brain MR
a thin dark class (sulcal CSF) often loses that argmax early (to grey matter,
through the continuity term and a 5×5 receptive field), and a class the
network stops predicting is never a target again: it is gone for good
(measured in docs/method.md). The engine instead takes as target the class
that maximises the network's log-probability **plus** the log-likelihood of
the voxel's intensity under a Gaussian mixture fitted once to the normalised
intensities: the E-step of a mixture model whose spatial prior is the
network. The labelling pass takes the same target as the voxel's label
(:func:`~napari_dfcseg.engine.inference.label_volume`), so a class the
network has not yet learnt in its few iterations (bone on CT: Dice 0.14 from
the bare argmax after 50 iterations, 0.75 after 200) still gets the voxels
its intensity claims. The network still does the spatial work (the continuity loss and
its receptive field regularise the labels); the mixture keeps every
intensity class alive where the intensities support it.

The mixture has one variance shared by all components ("tied"): with
partial-volume voxels and a bias field, free variances let the grey-matter
component widen over white matter (measured: WM Dice 0.80 vs 0.86 per voxel
on the degraded MNI152 volume).
"""

from __future__ import annotations

import numpy as np

# the EM itself (re-exported: tissue_count and the experiments import it from here)
from .mixture_em import _distinct_rows, _log_joint, _row_max, fit_gaussian_mixture  # noqa: F401
from .normalize import neighbourhood_radius

__all__ = ["fit_gaussian_mixture", "fit_intensity_mixture", "fit_ct_mixture", "scribble_mixture",
           "scribbles_and_free_mixture", "intensity_prior", "anchored_target", "intensity_loglik",
           "mixture_tensors"]

_MAX_SAMPLES = 200_000
# CT: the body's components are fitted to this share of its voxels, the flattest
# (docs/method.md, "CT: the anchor mixture")
_CT_FLAT_SHARE = 0.5

def _flat_inside(x, mask):
    """(c, n) view of ``x`` and the flat indices of the voxels inside ``mask`` (all if None)."""
    flat = x.reshape(x.shape[0], -1)
    inside = np.flatnonzero(mask.ravel()) if mask is not None else np.arange(flat.shape[1])
    return flat, inside


def fit_intensity_mixture(x, mask, n_components, *, seed=0, tied=True):
    """Gaussian mixture of a volume's normalised intensities inside ``mask``.

    Parameters
    ----------
    x : (c, z, y, x) float32 ndarray
    mask : (z, y, x) bool ndarray or None
    n_components : int
    seed : int
        Chooses the voxels the mixture is fitted on (at most 200 000).
    tied : bool
        One variance shared by the components (see the module's notes).

    Returns
    -------
    means, variances : (k, c) ndarrays
    weights : (k,) ndarray
        Components in order of mean intensity of channel 0.
    """
    flat, inside = _flat_inside(x, mask)
    rng = np.random.default_rng(seed)
    pick = inside if inside.size <= _MAX_SAMPLES else rng.choice(inside, _MAX_SAMPLES, replace=False)
    return fit_gaussian_mixture(flat[:, pick].T, n_components, tied=tied)


def _local_range_at(a, idx, spacing, thick_slice_ratio):
    """Max minus min of the 3-voxel neighbourhood (1 voxel across thick slices) of the flat
    indices ``idx`` of ``a``; edges repeat the border voxel. No volume-sized copy."""
    reach = neighbourhood_radius(spacing, a.shape, thick_slice_ratio)
    coords = np.unravel_index(idx, a.shape)
    flat = a.reshape(-1)
    low = high = flat[idx]
    for dz in range(-reach[0], reach[0] + 1):
        for dy in range(-reach[1], reach[1] + 1):
            for dx in range(-reach[2], reach[2] + 1):
                shifted = [np.clip(c + d, 0, n - 1) for c, d, n in zip(coords, (dz, dy, dx), a.shape)]
                v = flat[np.ravel_multi_index(shifted, a.shape)]
                low, high = np.minimum(low, v), np.maximum(high, v)
    return high - low


def fit_ct_mixture(x, mask, n_components, *, air_level, n_air, spacing=(1.0, 1.0, 1.0),
                   thick_slice_ratio=2.0, seed=0):
    """The anchor mixture of a CT: air / lung and the body's tissues fitted apart, free variances.

    Fitted to the whole foreground at once, the CT mixture spends a
    component on the partial-volume voxels between air or lung and tissue
    (bowel walls, lung edges): flat over -900..-200 HU, one Gaussian ±250 HU
    wide whose tails took a third of the lung and a tenth of the bone (the
    public CT, K = 8-9), and lung shared a component with bowel gas. So:

    - ``n_air`` components are fitted to the voxels at or below ``air_level``
      (:data:`~.tissue_count.CT_AIR_HU` normalised: air, lung), as many as the
      tissue count found there (0: none; at most ``n_components - 1``);
    - the other ``n_components - n_air`` to the body's voxels above it whose
      3-voxel neighbourhood is flatter than the median one's (the local range
      of channel 0; among at most 400 000 body voxels drawn at random): the
      inside of tissues, not their partial-volume borders, so each component is
      one tissue;
    - each part's weights are scaled by its share of the foreground.

    Every voxel is then labelled by the whole mixture (edges too). The share
    matters (the public CT, bone Dice: 0.81 / 0.83 / 0.83 / 0.72 / 0.79 with
    the flattest 30 / 40 / 50 / 60 / 100 %): above a half, partial-volume
    voxels make a wide component again; selecting the flattest half of each band
    (below / above the soft-tissue window's top) instead gave bone 0.67; weighting
    every voxel by its flatness (1 / (1 + r²), exp(-r²), r the local range over its
    median) 0.64-0.71. A tissue with no flat inside at all (bone only as thin as one
    voxel) gets no component of its own: its voxels take the nearest one. Parameters as
    :func:`fit_intensity_mixture`; ``spacing`` and ``thick_slice_ratio`` shape
    the neighbourhood (as :func:`~.normalize.denoise`).

    Returns
    -------
    means, variances : (k, c) ndarrays
    weights : (k,) ndarray
        Air components first, then the body's, each part in order of channel 0.
    """
    flat, inside = _flat_inside(x, mask)
    level = flat[0, inside] <= air_level
    if not (~level).any():  # no body voxel (an all-air region): one fit, as off CT
        return fit_intensity_mixture(x, mask, n_components, seed=seed, tied=False)
    n_air = int(min(n_air, n_components - 1)) if level.any() else 0
    rng = np.random.default_rng(seed)
    # without air / lung components (too little air to count), its few voxels are the body's
    air, body = (inside[level], inside[~level]) if n_air else (inside[:0], inside)
    # the flatter share of (at most twice the fitted number of) body voxels drawn at random
    if body.size > 2 * _MAX_SAMPLES:
        body_drawn = np.sort(rng.choice(body, 2 * _MAX_SAMPLES, replace=False))
    else:
        body_drawn = body
    spread = _local_range_at(x[0], body_drawn, spacing, thick_slice_ratio)
    flat_body = body_drawn[spread <= np.quantile(spread, _CT_FLAT_SHARE)]
    parts = []
    for idx, k, share in ((air, n_air, air.size), (flat_body, n_components - n_air, body.size)):
        if k == 0:
            continue
        pick = idx if idx.size <= _MAX_SAMPLES else rng.choice(idx, _MAX_SAMPLES, replace=False)
        means, variances, weights = fit_gaussian_mixture(flat[:, pick].T, k, tied=False)
        parts.append((means, variances, weights * share / inside.size))
    return tuple(np.concatenate(arrays) for arrays in zip(*parts))


def scribble_mixture(volumes):
    """Tied Gaussian mixture with one component per scribbled class, from the scribbled voxels.

    With scribbles the user's classes anchor the self-labels: component
    ``s - 1`` has the mean intensity of the voxels scribbled ``s`` (over all
    ``volumes``, objects with ``x`` (c, z, y, x) and ``scribbles``), all
    share the pooled within-class variance, weights are equal.

    Returns
    -------
    (means, variances, weights) or None
        None when a class id between 1 and the largest has no scribbled voxel.
    """
    n_classes = max(int(v.scribbles.max()) if v.scribbles is not None else 0 for v in volumes)
    if n_classes == 0:
        return None
    counts = np.zeros(n_classes)
    channels = volumes[0].x.shape[0]
    sums = np.zeros((n_classes, channels))
    squares = np.zeros((n_classes, channels))
    for v in volumes:
        if v.scribbles is None:
            continue
        for s in range(1, n_classes + 1):
            values = v.x[:, v.scribbles == s].astype(np.float64)
            counts[s - 1] += values.shape[1]
            sums[s - 1] += values.sum(1)
            squares[s - 1] += (values ** 2).sum(1)
    if (counts == 0).any():
        return None
    means = sums / counts[:, None]
    within = (squares - counts[:, None] * means ** 2).sum(0) / counts.sum()
    var = np.maximum(within, 1e-4)
    return means, np.broadcast_to(var, means.shape).copy(), np.full(n_classes, 1.0 / n_classes)


def scribbles_and_free_mixture(volumes, volume, n_components, *, seed=0, tied=True):
    """Anchor with scribbles when more labels are wanted than classes were scribbled.

    A tied mixture of ``n_components`` is fitted to ``volume``'s foreground;
    each scribbled class takes the component nearest to its mean intensity
    (one-to-one), with its mean replaced by the scribbles' mean; the others
    stay free. Components ``0..S-1`` are the scribbled classes (the response
    channels the scribble loss trains), ``S..K-1`` the free ones, so the
    classes the user did not scribble are still chosen per scan.

    Returns
    -------
    (means, variances, weights)
        As :func:`fit_intensity_mixture`; falls back to
        :func:`scribble_mixture` when ``n_components`` is not larger than S.
    """
    from scipy.optimize import linear_sum_assignment

    scribbled = scribble_mixture(volumes)
    if scribbled is None or n_components <= scribbled[0].shape[0]:
        return scribbled
    s_means = scribbled[0]
    means, variances, weights = fit_intensity_mixture(volume.x, volume.mask, n_components,
                                                      seed=seed, tied=tied)
    cost = ((s_means[:, None, :] - means[None]) ** 2).sum(2)
    rows, cols = linear_sum_assignment(cost)
    taken = cols[np.argsort(rows)]
    free = np.setdiff1d(np.arange(means.shape[0]), taken)
    out_means = np.concatenate([s_means, means[free]])
    out_weights = np.concatenate([weights[taken], weights[free]])
    out_var = np.concatenate([variances[taken], variances[free]])
    return out_means, out_var, out_weights / out_weights.sum()


def intensity_prior(x, mask, n_components, *, seed=0, tied=True):
    """Most likely mixture component of every voxel (0..k-1 by intensity; -1 outside ``mask``).

    The per-voxel classification the anchoring starts from (the network's
    belief is nearly uniform at first); a reference point for benchmarks.
    """
    means, variances, weights = fit_intensity_mixture(x, mask, n_components, seed=seed, tied=tied)
    flat, inside = _flat_inside(x, mask)
    out = np.full(flat.shape[1], -1, dtype=np.int16)
    for start in range(0, inside.size, 1_000_000):  # bounded memory on big volumes
        idx = inside[start:start + 1_000_000]
        out[idx] = _log_joint(flat[:, idx].T.astype(np.float64), means, variances, weights).argmax(1)
    return out.reshape(x.shape[1:])


def anchored_target(r, x, mixture, weight):
    """Self-labels anchored to the intensity mixture: the engine's similarity target.

    ``argmax_k [log softmax(r)_k + weight · log(π_k N(x; μ_k, σ_k²))]``
    over the mixture's k components (response channels 0..k-1; with
    scribbles, component s - 1 is scribbled class s): the network's belief (a spatial prior,
    learnt from the neighbourhood) combined with the intensity likelihood of
    the voxel, as in the E-step of a mixture model with a learnt prior. The
    paper's target is the first term alone over all channels; there a class
    the network stops predicting is never predicted again, which is how thin
    CSF vanishes. Here a voxel whose intensity fits a class strongly keeps
    it unless its neighbourhood argues otherwise.

    Parameters
    ----------
    r : (B, p, ...) tensor
        Responses on the loss region.
    x : (B, c, ...) tensor
        Normalised intensities on the same region.
    mixture : tuple of (k, c) means, (k, c) variances, (k,) weights (tensors)
    weight : float

    Returns
    -------
    (B, ...) int64 tensor of response channels.
    """
    import torch

    loglik = intensity_loglik(x, mixture)
    belief = torch.log_softmax(r.float(), 1)[:, :loglik.shape[1]]
    return (belief + weight * loglik).argmax(1)


def intensity_loglik(x, mixture):
    """``log(π_k N(x; μ_k, σ_k²))`` of every voxel of ``x`` (B, c, ...): a (B, k, ...) tensor.

    The intensity term of :func:`anchored_target` (the training loss takes it
    separately, :func:`~napari_dfcseg.engine.losses.dfc_loss`).
    """
    import torch

    means, variances, weights = mixture
    k = means.shape[0]
    shape = (1, k, means.shape[1]) + (1,) * (x.ndim - 2)
    d = x.unsqueeze(1).float() - means.reshape(shape)
    var = variances.reshape(shape)
    return (torch.log(weights).reshape((1, k) + (1,) * (x.ndim - 2))
            - 0.5 * (torch.log(2 * torch.pi * var) + d * d / var).sum(2))


def mixture_tensors(mixture, device):
    """The (means, variances, weights) arrays of a mixture as float32 tensors on ``device``."""
    import torch

    return tuple(torch.as_tensor(np.asarray(a), dtype=torch.float32, device=device) for a in mixture)
