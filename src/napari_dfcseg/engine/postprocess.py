"""From cluster ids to the labels a user gets, and the label edits of the widget.

numpy / scipy / scikit-image only (no torch), so the napari widget's edit
actions can call these functions without loading the network code.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import InvalidInputError

__all__ = [
    "cluster_label_map",
    "apply_label_map",
    "label_dtype",
    "merge_labels",
    "remove_small_islands",
    "relabel_by_size",
    "relabel_by_intensity",
    "label_table",
    "scribbles_from_png",
    "split_by_scribbles",
]


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


def split_by_scribbles(labels, scribbles):
    """Split labels that hold scribbles of several classes by connectivity.

    The network is translation invariant: two regions that look the same get
    the same cluster even when the user scribbled them as different classes.
    For every such label (its scribbled voxels carry two or more classes),
    each connected component (face connectivity) that holds scribbles takes
    the class most of its scribbled voxels carry; components without a
    scribble keep their label. Labels scribbled with one class are left as
    the network gave them. Label 0 (outside the mask) is never changed.

    Parameters
    ----------
    labels : int ndarray
    scribbles : int ndarray
        0 = unlabelled, s = class s; same shape.

    Returns
    -------
    ndarray
        A new label array, same dtype.
    """
    labels = _check_labels(labels)
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


def _check_labels(labels, name="labels"):
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool:
        raise InvalidInputError(f"{name} must be an integer array, got dtype {labels.dtype}")
    return labels


def merge_labels(labels, ids):
    """Give every label in ``ids`` the smallest of them; other labels are unchanged.

    Examples
    --------
    >>> merge_labels(np.array([1, 2, 3, 2]), [3, 2]).tolist()
    [1, 2, 2, 2]
    """
    labels = _check_labels(labels)
    ids = sorted({int(i) for i in ids})
    if not ids:
        return labels.copy()
    out = labels.copy()
    out[np.isin(labels, ids)] = ids[0]
    return out


def remove_small_islands(labels, min_size, *, connectivity=1):
    """Merge connected components smaller than ``min_size`` voxels into their surroundings.

    Each small island of a label takes the most common non-zero label on its
    outer boundary (the voxels one step outside it). Islands touching only
    background (0) are kept: there is nothing to merge them into. Label 0 is
    never changed or grown.

    Parameters
    ----------
    labels : int ndarray (2D or 3D)
    min_size : int
    connectivity : int
        Neighbourhood of the connected components (1 = faces, ``ndim`` = full).

    Returns
    -------
    ndarray
        A new array, same dtype.
    """
    labels = _check_labels(labels)
    out = labels.copy()
    if min_size <= 1:
        return out
    structure = ndimage.generate_binary_structure(labels.ndim, connectivity)
    for value in np.unique(labels):
        if value == 0:
            continue
        components, n = ndimage.label(out == value, structure=structure)
        if n == 0:
            continue
        sizes = np.bincount(components.ravel())
        small = np.flatnonzero(sizes < min_size)
        small = small[small > 0]
        if small.size == 0:
            continue
        objects = ndimage.find_objects(components)
        for comp in small:
            box = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in objects[comp - 1])
            island = components[box] == comp
            ring = ndimage.binary_dilation(island, structure=structure) & ~island
            around = out[box][ring]
            around = around[(around != 0) & (around != value)]
            if around.size:
                vals, freq = np.unique(around, return_counts=True)
                out[box][island] = vals[np.argmax(freq)]
    return out


def _relabel(labels, order):
    """Renumber labels so that ``order[k]`` becomes ``k + 1``."""
    lut = np.zeros(int(labels.max()) + 1, dtype=np.int64)
    lut[np.asarray(order, dtype=np.int64)] = np.arange(1, len(order) + 1)
    return lut.astype(labels.dtype)[labels]


def relabel_by_size(labels):
    """Consecutive labels 1..K, 1 being the largest (by voxels); 0 stays 0."""
    labels = _check_labels(labels)
    counts = np.bincount(labels.ravel())
    present = np.flatnonzero(counts[1:]) + 1
    if present.size == 0:
        return labels.copy()
    order = present[np.argsort(-counts[present], kind="stable")]
    return _relabel(labels, order)


def relabel_by_intensity(labels, image):
    """Consecutive labels 1..K by increasing mean ``image`` intensity; 0 stays 0."""
    labels = _check_labels(labels)
    image = np.asarray(image)
    if image.shape != labels.shape:
        raise InvalidInputError(f"image shape {image.shape} does not match labels shape {labels.shape}")
    counts = np.bincount(labels.ravel())
    sums = np.bincount(labels.ravel(), weights=image.ravel().astype(np.float64))
    present = np.flatnonzero(counts[1:]) + 1
    if present.size == 0:
        return labels.copy()
    order = present[np.argsort(sums[present] / counts[present], kind="stable")]
    return _relabel(labels, order)


def label_table(labels, image=None, spacing=(1.0, 1.0, 1.0)):
    """Per-label voxel count, volume and intensity statistics.

    Parameters
    ----------
    labels : int ndarray
    image : ndarray or None
        Same shape; ``mean`` and ``sd`` are NaN without it.
    spacing : tuple of floats
        Voxel size in mm (one per axis of ``labels``).

    Returns
    -------
    dict of 1-D arrays
        ``"label"``, ``"voxels"``, ``"volume_ml"`` (mm³ / 1000), ``"mean"``,
        ``"sd"`` (population standard deviation), for every label > 0 present.
    """
    labels = _check_labels(labels)
    flat = labels.ravel().astype(np.int64)
    counts = np.bincount(flat)
    present = np.flatnonzero(counts[1:]) + 1
    voxel_ml = float(np.prod(spacing[-labels.ndim:])) / 1000.0
    table = {"label": present, "voxels": counts[present],
             "volume_ml": counts[present] * voxel_ml}
    if image is None:
        table["mean"] = np.full(present.size, np.nan)
        table["sd"] = np.full(present.size, np.nan)
        return table
    image = np.asarray(image)
    if image.shape != labels.shape:
        raise InvalidInputError(f"image shape {image.shape} does not match labels shape {labels.shape}")
    values = image.ravel().astype(np.float64)
    sums = np.bincount(flat, weights=values)
    mean = sums[present] / counts[present]
    sq = np.bincount(flat, weights=(values - mean.mean()) ** 2)  # shifted for precision
    var = sq[present] / counts[present] - (mean - mean.mean()) ** 2
    table["mean"] = mean
    table["sd"] = np.sqrt(np.clip(var, 0.0, None))
    return table


def scribbles_from_png(array):
    """Convert the original code's scribble PNG (255 = unlabelled) to our convention.

    Parameters
    ----------
    array : (y, x) int ndarray
        Pixel values: 255 = no scribble, any other value = a class.

    Returns
    -------
    scribbles : (y, x) int16 ndarray
        0 = unlabelled, classes 1..S in increasing order of their PNG value.
    mapping : dict
        ``{png_value: class}``.
    """
    array = np.asarray(array)
    if array.ndim == 3:  # a greyscale PNG read as RGB(A): all channels equal
        array = array[..., 0]
    if array.ndim != 2:
        raise InvalidInputError(f"scribble PNG must be a 2D array, got shape {array.shape}")
    values = [int(v) for v in np.unique(array) if v != 255]
    mapping = {v: k + 1 for k, v in enumerate(values)}
    out = np.zeros(array.shape, dtype=np.int16)
    for v, k in mapping.items():
        out[array == v] = k
    return out, mapping
