"""Scores for real scans without a full ground truth (torch-free).

- :func:`best_label_dice`: for a reference structure, the Dice of the single
  output label (> 0) that overlaps it best: "is there a label that follows the
  liver?", whatever its number.
- :func:`best_component_dice`: the same over the connected components of every
  label: "is the tumour a connected region of its own?".
- :func:`outside_rule`: the voxels that are surely outside the patient, by a
  simple threshold rule that is independent of the engine's own mask.
- :func:`zero_share`: the share of a region labelled 0.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: outside-air rule, CT: below this HU and connected to the slice border
CT_AIR_HU = -500.0
#: outside-air rule, MR: below this fraction of the 99th intensity percentile
MR_AIR_FRACTION = 0.05
#: the outside region is eroded by this many voxels in-plane (stay clear of the skin)
OUTSIDE_MARGIN = 2


def dice(a, b):
    """Dice of two boolean arrays (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(a, b).sum() / total)


def _overlaps(labels, structure):
    """``(label ids, overlap counts)`` of the labels > 0 that touch ``structure``."""
    ids, counts = np.unique(labels[structure], return_counts=True)
    keep = ids > 0
    return ids[keep], counts[keep]


def best_label_dice(labels, structure):
    """``(dice, label)``: the output label (> 0) whose region best matches ``structure``.

    Label 0 ("outside", "not segmented") is never a candidate: a structure
    that was left in label 0 scores 0. Returns ``(0.0, 0)`` when no label > 0
    touches the structure.
    """
    labels = np.asarray(labels)
    structure = np.asarray(structure, bool)
    ids, inter = _overlaps(labels, structure)
    if ids.size == 0:
        return 0.0, 0
    sizes = np.bincount(labels.ravel(), minlength=int(ids.max()) + 1)[ids]
    scores = 2.0 * inter / (sizes + structure.sum())
    best = int(np.argmax(scores))
    return float(scores[best]), int(ids[best])


def best_component_dice(labels, structure, *, connectivity=3):
    """``(dice, label)``: the connected component of one label that best matches ``structure``.

    Components are taken per label with ``connectivity`` (3: 26-connected in
    3D, 8 in 2D; 1: face-connected). Only labels that touch the structure are
    examined. A label that also covers distant tissue is not penalised here
    when its component around the structure is separate: that is what a
    user clicking "keep this island" gets.
    """
    labels = np.asarray(labels)
    structure = np.asarray(structure, bool)
    ids, _ = _overlaps(labels, structure)
    footprint = ndi.generate_binary_structure(labels.ndim, connectivity)
    n_struct = int(structure.sum())
    best, best_id = 0.0, 0
    for label in ids:
        comp, _ = ndi.label(labels == label, structure=footprint)
        hit, inter = np.unique(comp[structure], return_counts=True)
        keep = hit > 0
        hit, inter = hit[keep], inter[keep]
        sizes = np.bincount(comp.ravel())[hit]
        scores = 2.0 * inter / (sizes + n_struct)
        if scores.size and scores.max() > best:
            best, best_id = float(scores.max()), int(label)
    return best, best_id


def border_connected(low):
    """Per (z) slice, the largest in-plane component of ``low`` (bool, z-y-x) that touches the border.

    Only the largest: an airway or a gut loop cut by the field of view also
    touches the border, and the rule must stay conservative.
    """
    low = np.asarray(low, bool)
    out = np.zeros_like(low)
    for z in range(low.shape[0]):
        comp, n = ndi.label(low[z])
        if n == 0:
            continue
        edge = np.unique(np.concatenate([comp[0], comp[-1], comp[:, 0], comp[:, -1]]))
        edge = edge[edge > 0]
        if edge.size:
            sizes = np.bincount(comp.ravel())[edge]
            out[z] = comp == edge[np.argmax(sizes)]
    return out


def outside_rule(image, modality, *, protect=None, margin=OUTSIDE_MARGIN):
    """Voxels surely outside the patient, by a simple rule independent of the engine.

    The rule, per axial (first-axis) slice: the largest in-plane connected
    region of voxels darker than a threshold that touches the slice border, eroded in-plane by ``margin``
    voxels so that partial-volume voxels at the skin do not count. Threshold:
    CT :data:`CT_AIR_HU` HU; MR :data:`MR_AIR_FRACTION` × the 99th percentile
    of the image after a 3×3 in-plane median (suppresses the noise floor).
    Enclosed air (lungs, bowel gas, sinuses) is never border-connected within
    a slice of a closed body wall, so it stays inside. ``protect`` (bool
    array): voxels never called outside (e.g. a reference structure).
    """
    image = np.asarray(image, dtype=np.float32)
    if modality == "CT":
        low = image < CT_AIR_HU
    else:
        smooth = ndi.median_filter(image, size=(1, 3, 3))
        low = smooth < MR_AIR_FRACTION * np.percentile(smooth, 99)
    outside = border_connected(low)
    if margin:
        # erode in-plane only; keep the array border itself outside (the air continues)
        footprint = np.zeros((1, 3, 3), bool)
        footprint[0] = True
        outside = ndi.binary_erosion(outside, structure=footprint, iterations=margin,
                                     border_value=1)
    if protect is not None:
        outside &= ~np.asarray(protect, bool)
    return outside


def zero_share(labels, region):
    """Share of ``region`` labelled 0 (NaN when the region is empty)."""
    region = np.asarray(region, bool)
    n = int(region.sum())
    return float("nan") if n == 0 else float(np.count_nonzero(np.asarray(labels)[region] == 0) / n)


def n_labels(labels):
    """Number of distinct labels > 0."""
    ids = np.unique(np.asarray(labels))
    return int(np.count_nonzero(ids > 0))
