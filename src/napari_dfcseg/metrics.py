"""Evaluation of a label volume against ground truth.

Unsupervised segmentations number their clusters arbitrarily, so clusters are
first *matched* to reference tissues, either many-to-one (each cluster goes to
the tissue it overlaps most: several clusters may make up one tissue) or
one-to-one (Hungarian assignment maximising total overlap, via SciPy).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "contingency",
    "match_many_to_one",
    "match_one_to_one",
    "dice_per_tissue",
    "adjusted_rand_index",
    "evaluate",
]


def _check_pair(labels, truth, mask):
    labels = np.asarray(labels)
    truth = np.asarray(truth)
    if labels.shape != truth.shape:
        raise ValueError(f"labels shape {labels.shape} does not match truth shape {truth.shape}")
    if mask is None:
        mask = truth > 0
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != truth.shape:
        raise ValueError(f"mask shape {mask.shape} does not match truth shape {truth.shape}")
    return labels[mask].astype(np.int64), truth[mask].astype(np.int64)


def contingency(labels, truth, mask=None):
    """Overlap counts between clusters and tissues.

    Returns
    -------
    table : (n_clusters, n_tissues) int64 ndarray
    cluster_ids, tissue_ids : 1-D ndarrays
        The label values of the rows and columns.
    """
    lab, tru = _check_pair(labels, truth, mask)
    cluster_ids, li = np.unique(lab, return_inverse=True)
    tissue_ids, ti = np.unique(tru, return_inverse=True)
    table = np.zeros((cluster_ids.size, tissue_ids.size), dtype=np.int64)
    np.add.at(table, (li, ti), 1)
    return table, cluster_ids, tissue_ids


def match_many_to_one(labels, truth, mask=None):
    """Map each cluster to the tissue it overlaps most: ``{cluster: tissue}``."""
    table, cids, tids = contingency(labels, truth, mask)
    return {int(c): int(tids[np.argmax(row)]) for c, row in zip(cids, table)}


def match_one_to_one(labels, truth, mask=None):
    """Hungarian matching of clusters to tissues maximising the total overlap.

    Clusters left without a tissue (more clusters than tissues) map to -1.
    """
    from scipy.optimize import linear_sum_assignment

    table, cids, tids = contingency(labels, truth, mask)
    rows, cols = linear_sum_assignment(-table)
    mapping = {int(c): -1 for c in cids}
    for r, c in zip(rows, cols):
        mapping[int(cids[r])] = int(tids[c])
    return mapping


def _apply(labels, mapping):
    out = np.full(labels.shape, -1, dtype=np.int64)
    for c, t in mapping.items():
        out[labels == c] = t
    return out


def dice_per_tissue(labels, truth, mask=None, *, matching="many-to-one"):
    """Dice coefficient of each tissue after matching clusters to tissues.

    Parameters
    ----------
    labels : ndarray of int
        The segmentation, any numbering.
    truth : ndarray of int
        Reference tissues, same shape.
    mask : ndarray of bool, optional
        Where to score; default ``truth > 0``.
    matching : {"many-to-one", "one-to-one"}
        How clusters are assigned to tissues.

    Returns
    -------
    dict
        ``{tissue_label: dice}`` for every tissue present in ``truth[mask]``.

    Examples
    --------
    >>> truth = np.array([1, 1, 2, 2])
    >>> dice_per_tissue(np.array([7, 7, 7, 9]), truth)
    {1: 0.8, 2: 0.6666666666666666}
    """
    if matching == "many-to-one":
        mapping = match_many_to_one(labels, truth, mask)
    elif matching == "one-to-one":
        mapping = match_one_to_one(labels, truth, mask)
    else:
        raise ValueError(f"matching must be 'many-to-one' or 'one-to-one', got {matching!r}")
    lab, tru = _check_pair(labels, truth, mask)
    pred = _apply(lab, mapping)
    scores = {}
    for t in np.unique(tru):
        a, b = pred == t, tru == t
        denom = a.sum() + b.sum()
        scores[int(t)] = float(2.0 * np.logical_and(a, b).sum() / denom) if denom else 1.0
    return scores


def adjusted_rand_index(labels, truth, mask=None):
    """Adjusted Rand index (Hubert & Arabie) between two labellings, inside ``mask``."""
    table, _, _ = contingency(labels, truth, mask)
    n = table.sum()

    def pairs(x):
        x = np.asarray(x, dtype=np.float64)
        return (x * (x - 1) / 2).sum()

    index = pairs(table)
    a, b = pairs(table.sum(1)), pairs(table.sum(0))
    expected = a * b / (n * (n - 1) / 2) if n > 1 else 0.0
    maximum = (a + b) / 2
    if maximum == expected:
        return 1.0
    return float((index - expected) / (maximum - expected))


def evaluate(labels, truth, mask=None):
    """Dice (both matchings) and ARI in one dictionary, for benchmark tables."""
    return {
        "dice_many_to_one": dice_per_tissue(labels, truth, mask, matching="many-to-one"),
        "dice_one_to_one": dice_per_tissue(labels, truth, mask, matching="one-to-one"),
        "ari": adjusted_rand_index(labels, truth, mask),
        "n_clusters": int(np.unique(np.asarray(labels)[truth > 0 if mask is None else mask]).size),
    }
