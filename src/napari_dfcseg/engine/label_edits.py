"""The label edits a user applies to finished labels (the widget's table, the CLI's --min-size).

numpy / scipy only (no torch), so the napari widget's edit actions can call
these functions without loading the network code. The steps that make labels
from clusters are in :mod:`.labelling`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import InvalidInputError

__all__ = ["check_labels", "merge_labels", "remove_small_islands", "relabel_by_size",
           "relabel_by_intensity", "label_table"]


def check_labels(labels, name="labels"):
    """``labels`` as an integer array; ``InvalidInputError`` otherwise."""
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
    labels = check_labels(labels)
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
    labels = check_labels(labels)
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
    labels = check_labels(labels)
    counts = np.bincount(labels.ravel())
    present = np.flatnonzero(counts[1:]) + 1
    if present.size == 0:
        return labels.copy()
    order = present[np.argsort(-counts[present], kind="stable")]
    return _relabel(labels, order)


def relabel_by_intensity(labels, image):
    """Consecutive labels 1..K by increasing mean ``image`` intensity; 0 stays 0."""
    labels = check_labels(labels)
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
    labels = check_labels(labels)
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
