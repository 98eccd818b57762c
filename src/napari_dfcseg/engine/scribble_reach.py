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
that took a tumour's class joins the fat's label.

Off in the ``brain`` preset: CSF, grey and white matter are spread over
the whole brain, and a scribble on one slice must label them everywhere.
"""

from __future__ import annotations

import numpy as np

__all__ = ["confine_scribbled_classes"]


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
    from scipy import ndimage

    labels = np.asarray(labels)
    out = labels.copy()
    moved = {}
    n_labels = int(labels.max()) if labels.size else 0
    known = [k for k in range(1, n_labels + 1)
             if k - 1 < len(label_means) and not np.isnan(label_means[k - 1]).any()]
    extra = None  # the new label for regions when no other label exists
    for s in range(1, n_scribble + 1):
        free = [k for k in known if k != s]
        mine = labels == s
        if not mine.any():
            continue
        components, n = ndimage.label(mine)
        touched = np.unique(components[(scribbles == s) & mine])
        orphan = mine & ~np.isin(components, touched)
        if not orphan.any():
            continue
        comp = components[orphan]
        cl = ids[orphan].astype(np.int64)
        cl = np.where(cl < 0, 0, cl)
        # mean response of each orphan component, from its voxels' cluster means
        keys, inverse = np.unique(comp, return_inverse=True)
        sums = np.zeros((keys.size, cluster_means.shape[1]))
        np.add.at(sums, inverse, np.nan_to_num(cluster_means[cl]))
        sums /= np.bincount(inverse)[:, None]
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
        moved[s] = int(orphan.sum())
    return out, moved
