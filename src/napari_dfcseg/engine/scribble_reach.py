"""Keep a scribbled class to the regions the user marked (``DFCConfig.scribble_connected``).

Torch-free. The network is translation invariant: a class scribbled on a
tumour also takes every distant region that looks like it (measured: a 16 mL
tumour scribble took 1064 mL of scalp fat). A clinician who marks one
structure means *that* structure, as with ITK-SNAP's or Slicer's seeded
tools. So, for every scribbled class ``s``, the connected regions of label
``s`` (face connectivity, in 3D) that hold no scribble of ``s`` are given the
closest other label: the one whose mean network response is nearest to the
region's (the network's own notion of "looks like"); a new label when
there is no other label. A fragment of class 1 inside a region scribbled
as class 2 of the same intensity thus joins class 2, and distant scalp fat
that took a tumour's class joins the fat's label. A region moved into
another scribbled class but not connected to that class's scribbles would
be its distant look-alike: it gets the nearest label nobody scribbled.

Off in the ``brain`` preset: CSF, grey and white matter are spread over
the whole brain, and a scribble on one slice must label them everywhere.
"""

from __future__ import annotations

import numpy as np

__all__ = ["confine_scribbled_classes", "nearest_other_label"]


def confine_scribbled_classes(labels, scribbles, n_scribble, ids, cluster_means, label_means):
    """Relabel the regions of scribbled classes that no scribble of theirs touches.

    Parameters
    ----------
    labels : (z, y, x) int ndarray
        Labels after the cluster map (scribbled classes are 1..S).
    scribbles : (z, y, x) int ndarray
        0 = unlabelled, s = class s.
    n_scribble : int
        S.
    ids : (z, y, x) int ndarray
        The network's cluster id of every voxel (-1 outside the mask).
    cluster_means : (p, p) float ndarray
        Mean response vector of each cluster (NaN rows for clusters never seen).
    label_means : (L, p) float ndarray
        Mean response vector of each label (row ``k`` = label ``k + 1``).

    Returns
    -------
    labels : ndarray
        A new array, same dtype (widened if a new label is needed).
    moved : dict of int -> int
        Voxels moved out of each scribbled class.
    """
    labels = np.asarray(labels)
    orphans, moved = _orphans(labels, scribbles, n_scribble)
    if not moved:
        return labels.copy(), moved
    out = nearest_other_label(labels, orphans, ids, cluster_means, label_means)
    # a region moved into another scribbled class that is not connected to that class's
    # scribbles would be that class's distant look-alike: it gets a label nobody scribbled
    again, _ = _orphans(out, scribbles, n_scribble)
    if again.any():
        out = nearest_other_label(out, again, ids, cluster_means, label_means,
                                  exclude=range(1, n_scribble + 1))
    return out, moved


def _orphans(labels, scribbles, n_scribble):
    """Voxels of scribbled classes in regions without a scribble of theirs, and their count per class."""
    from scipy import ndimage

    orphans = np.zeros(labels.shape, bool)
    moved = {}
    for s in range(1, n_scribble + 1):
        mine = labels == s
        if not mine.any():
            continue
        components, n = ndimage.label(mine)
        touched = np.unique(components[(scribbles == s) & mine])
        orphan = mine & ~np.isin(components, touched)
        if orphan.any():
            orphans |= orphan
            moved[s] = int(orphan.sum())
    return orphans, moved


def nearest_other_label(labels, where, ids, cluster_means, label_means, exclude=()):
    """Give every connected region of ``where`` the nearest label other than its own and ``exclude``.

    "Nearest": the label whose mean network response is closest to the
    region's (from its voxels' cluster means); a new label when there is no
    other label. Each region of ``where`` lies in one label (as the orphans
    of :func:`confine_scribbled_classes` and the unmarked parts of
    :func:`~.scribble_grow.grow_from_scribbles` do).

    Returns
    -------
    ndarray
        A new array, same dtype (widened if a new label is needed).
    """
    from scipy import ndimage

    labels = np.asarray(labels)
    out = labels.copy()
    n_labels = int(labels.max()) if labels.size else 0
    known = [k for k in range(1, n_labels + 1)
             if k - 1 < len(label_means) and not np.isnan(label_means[k - 1]).any()]
    extra = None  # the new label for regions when no other label exists
    for s in np.unique(labels[where]):
        if s == 0:
            continue
        free = [k for k in known if k != s and k not in exclude]
        orphan = where & (labels == s)
        components, _ = ndimage.label(orphan)
        comp = components[orphan]
        cl = ids[orphan].astype(np.int64)
        cl = np.where(cl < 0, 0, cl)
        # mean response of each region, from its voxels' cluster means: (region, cluster) counts
        keys, inverse = np.unique(comp, return_inverse=True)
        p = cluster_means.shape[0]
        counts = np.bincount(inverse * p + cl, minlength=keys.size * p).reshape(keys.size, p)
        sums = counts @ np.nan_to_num(cluster_means) / counts.sum(1, keepdims=True)
        if free:
            d = ((sums[:, None, :] - label_means[np.array(free) - 1][None]) ** 2).sum(2)
            target = np.array(free)[d.argmin(1)]
        else:
            if extra is None:
                extra = n_labels + 1
            target = np.full(keys.size, extra)
        new = target[inverse]
        if new.max() > np.iinfo(out.dtype).max:
            out = out.astype(np.uint16)
        out[orphan] = new
    return out
