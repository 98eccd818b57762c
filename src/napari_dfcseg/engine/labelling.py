"""From cluster ids to the labels a user gets: the pipeline's labelling steps (torch-free).

:class:`RawLabels` (what the labelling pass measured: cluster ids and
per-cluster statistics) → :func:`cluster_label_map` (order, Ward merge,
scribbled classes) → :func:`finish_labels` (map, unseen clusters,
:func:`split_by_scribbles`, small islands). Kept torch-free so that
:meth:`~.result.SegmentationResult.relabel` re-runs them in a second, without
the network. The edits a user applies afterwards are in :mod:`.label_edits`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

import logging
from dataclasses import dataclass

from .label_edits import check_labels, remove_small_islands

__all__ = ["RawLabels", "cluster_label_map", "apply_label_map", "label_dtype", "label_means",
           "finish_labels", "split_by_scribbles"]

log = logging.getLogger(__name__)


@dataclass
class RawLabels:
    """Cluster ids of one volume and the per-cluster statistics.

    Attributes
    ----------
    ids : (z, y, x) int16 ndarray
        Argmax channel of every voxel in the mask, -1 outside.
    counts : (p,) int64 ndarray
        Voxels per cluster.
    feature_sum : (p, p) float64 ndarray
        Sum of the response vectors of each cluster's voxels.
    intensity_sum : (p,) float64 ndarray
        Sum of the normalised channel-0 intensity of each cluster's voxels.
    """

    ids: np.ndarray
    counts: np.ndarray
    feature_sum: np.ndarray
    intensity_sum: np.ndarray


def label_dtype(n_labels):
    """uint8 up to 255 labels, else uint16."""
    return np.uint8 if n_labels <= 255 else np.uint16


def _ward_merge(counts, means, fixed, *, size_weighted=True):
    """Greedy Ward agglomeration of clusters; yields the groups (lists of indices) at each step.

    The pair merged first is the one whose merge increases the within-group
    sum of squares least, ``n_a n_b / (n_a + n_b) · ||μ_a - μ_b||²``. Two
    ``fixed`` clusters (scribbled classes) are never merged together. With
    ``size_weighted=False`` the nearest means merge first whatever the sizes
    (centroid linkage; measured against Ward in docs/method.md).
    """
    groups = [[i] for i in range(len(counts))]
    n = [float(c) for c in counts]
    mu = [np.asarray(m, dtype=np.float64) for m in means]
    fix = [bool(f) for f in fixed]

    def cost(a, b):
        if fix[a] and fix[b]:
            return np.inf
        weight = n[a] * n[b] / (n[a] + n[b]) if size_weighted else 1.0
        return weight * float(np.sum((mu[a] - mu[b]) ** 2))

    while True:
        yield [list(g) for g in groups]
        if len(groups) < 2:
            return
        best, pair = np.inf, None
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                c = cost(a, b)
                if c < best:
                    best, pair = c, (a, b)
        if pair is None:
            return
        a, b = pair
        total = n[a] + n[b]
        mu[a] = (n[a] * mu[a] + n[b] * mu[b]) / total
        n[a] = total
        groups[a] += groups[b]
        fix[a] = fix[a] or fix[b]
        for lst in (groups, n, mu, fix):
            del lst[b]


def cluster_label_map(counts, feature_sum, intensity_sum, *, n_scribble_classes=0, n_clusters=None):
    """Decide the label of every cluster.

    1. Clusters with no voxel are left out (label 0 in the map).
    2. If ``n_clusters`` is given, clusters are merged by Ward agglomeration
       of their mean response vectors (weighted by voxel count) until that
       many remain; scribbled classes are never merged together.
    3. Scribbled class ``s`` (cluster ``s - 1``) keeps label ``s``; the other
       groups are numbered ``S + 1, S + 2, ...`` by increasing mean intensity
       of channel 0.

    Parameters
    ----------
    counts : (p,) int array
    feature_sum : (p, p) float array
    intensity_sum : (p,) float array
    n_scribble_classes : int
    n_clusters : int or None

    Returns
    -------
    label_of : (p,) int64 ndarray
        Label of each cluster, 0 for clusters that were never seen.
    """
    counts = np.asarray(counts, dtype=np.int64)
    present = np.flatnonzero(counts > 0)
    label_of = np.zeros(counts.size, dtype=np.int64)
    if present.size == 0:
        return label_of
    means = np.asarray(feature_sum)[present] / counts[present, None]
    fixed = present < n_scribble_classes
    target = len(present) if n_clusters is None else max(int(n_clusters), int(fixed.sum()))
    groups = None
    for groups in _ward_merge(counts[present], means, fixed):
        if len(groups) <= target:
            break
    free = []
    for g in groups:
        members = present[g]
        scribbled = members[members < n_scribble_classes]
        if scribbled.size:
            label_of[members] = scribbled.min() + 1
        else:
            mean_intensity = intensity_sum[members].sum() / counts[members].sum()
            free.append((mean_intensity, members))
    free.sort(key=lambda item: item[0])
    for k, (_, members) in enumerate(free):
        label_of[members] = n_scribble_classes + 1 + k
    return label_of


def apply_label_map(ids, label_of):
    """Labels from cluster ids (-1 = outside the mask → 0), uint8 or uint16."""
    lut = np.concatenate([[0], np.asarray(label_of)])
    dtype = label_dtype(int(lut.max()))
    # index with the int16 ids themselves: no int64 copy of a large volume
    return lut.astype(dtype)[ids + np.int16(1)]


def split_by_scribbles(labels, scribbles, image=None, spacing=None, unmarked=None):
    """Split labels that hold scribbles of several classes by connectivity.

    The network is translation invariant: two regions that look the same get
    the same cluster even when the user scribbled them as different classes.
    For every such label (its scribbled voxels carry two or more classes),
    each connected component (face connectivity) that holds scribbles takes
    the class most of its scribbled voxels carry; components without a
    scribble keep their label. With ``image`` (z, y, x[, c]), a component
    holding scribbles of several classes is split by growth from them
    instead (:func:`~.scribble_grow.grow_from_scribbles`). Labels scribbled
    with one class are left as the network gave them. Label 0 (outside the
    mask) is never changed.

    Parameters
    ----------
    labels : int ndarray
    scribbles : int ndarray
        0 = unlabelled, s = class s; same shape.
    image : ndarray, optional
        The scan, for the growth.
    spacing : 3 floats, optional
        (sz, sy, sx) mm of the growth (default isotropic).
    unmarked : callable, optional
        ``unmarked(labels, where)``: the labels of the parts of split regions
        that are no stroked class's tissue (without it they keep the label
        the network gave them).

    Returns
    -------
    ndarray
        A new label array, same dtype (uint16 if a class id needs it).
    """
    labels = check_labels(labels)
    if image is not None and labels.ndim == 3:
        from .scribble_grow import grow_from_scribbles

        labels, grown, rest = grow_from_scribbles(labels, scribbles, image, spacing or (1.0, 1.0, 1.0))
        if rest is not None and unmarked is not None:
            labels = unmarked(labels, rest)
        if grown:
            log.info("regions holding scribbles of several classes split by growth from them: %s",
                     grown)
    out = labels.copy()
    scribbled = (np.asarray(scribbles) > 0) & (labels > 0)
    if not scribbled.any():
        return out
    s_lab, s_cls = labels[scribbled], np.asarray(scribbles)[scribbled]
    for value in np.unique(s_lab):
        mine = s_lab == value
        if np.unique(s_cls[mine]).size < 2:
            continue
        components, n = ndimage.label(labels == value)
        comp_of = components[scribbled]
        lut = np.zeros(n + 1, dtype=np.int64)
        for k in np.unique(comp_of[mine]):
            vals, freq = np.unique(s_cls[mine & (comp_of == k)], return_counts=True)
            lut[k] = vals[np.argmax(freq)]
        new = lut[components]
        out[new > 0] = new[new > 0].astype(out.dtype)
    return out


def label_means(label_of, counts, feature_sum):
    """(K, p) mean response vector of each label (row ``k`` = label ``k + 1``; NaN if empty)."""
    k = int(label_of.max()) if label_of.size else 0
    means = np.full((k, feature_sum.shape[1]), np.nan)
    for label in range(1, k + 1):
        members = label_of == label
        c = counts[members].sum()
        if c:
            means[label - 1] = feature_sum[members].sum(0) / c
    return means


def finish_labels(label_of, means, raw, scribbles=None, min_size=0, confine=False, image=None,
                  spacing=None):
    """Labels of one volume from its raw cluster ids: map, unseen clusters, scribbles, islands.

    Parameters
    ----------
    label_of : (p,) int ndarray
        Label of every cluster (0: never seen in training).
    means : (K, p) float ndarray
        :func:`label_means` of the training clusters: a cluster training never
        produced gets the label whose mean response is nearest.
    raw : RawLabels
    scribbles : int ndarray or None
        The user's classes: labels whose scribbles carry several classes are
        split, and every scribbled voxel in the mask ends with its class
        (:func:`~.scribble_grow.paint_scribbles`), islands filter included.
    min_size : int
        Islands smaller than this are merged into their surroundings.
    confine : bool
        ``DFCConfig.scribble_connected``: a scribbled class keeps only the
        regions connected to its scribbles
        (:func:`~.scribble_reach.confine_scribbled_classes`).
    image : (z, y, x[, c]) ndarray, optional
        The scan: with scribbles, a region holding several classes is split by
        growth from them (:func:`split_by_scribbles`).
    spacing : 3 floats, optional
        (sz, sy, sx) mm.
    """
    label_of = np.array(label_of, copy=True)
    unseen = np.flatnonzero((label_of == 0) & (raw.counts > 0))
    known = np.flatnonzero(~np.isnan(means).any(1))
    for c in unseen:
        if known.size == 0:
            label_of[c] = 1
            continue
        f = raw.feature_sum[c] / raw.counts[c]
        d = ((means[known] - f) ** 2).sum(1)
        label_of[c] = known[np.argmin(d)] + 1
    if unseen.size:
        log.info("%d cluster(s) unseen in training mapped to the nearest label", unseen.size)
    labels = apply_label_map(raw.ids, label_of)
    if scribbles is not None:
        from .scribble_grow import paint_scribbles
        from .scribble_reach import confine_scribbled_classes, nearest_other_label

        with np.errstate(invalid="ignore", divide="ignore"):
            cluster_means = raw.feature_sum / raw.counts[:, None]

        def unmarked(labels, where):
            # tissue beyond the strokes that is none of the stroked classes: a label nobody scribbled
            return nearest_other_label(labels, where, raw.ids, cluster_means, means,
                                       exclude=range(1, int(scribbles.max()) + 1))

        labels = paint_scribbles(split_by_scribbles(labels, scribbles, image, spacing, unmarked),
                                 scribbles)
        if confine:
            labels, moved = confine_scribbled_classes(labels, scribbles, int(scribbles.max()),
                                                      raw.ids, cluster_means, means)
            if moved:
                log.info("voxels of scribbled classes not connected to their scribbles, given "
                         "the nearest other label: %s", moved)
    if min_size > 1:
        labels = remove_small_islands(labels, min_size)
        if scribbles is not None:
            labels = paint_scribbles(labels, scribbles)
    return labels
