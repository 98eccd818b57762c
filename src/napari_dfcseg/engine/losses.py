"""The paper's loss, restricted to the mask, with a spacing-aware continuity term.

All functions take the response map ``r`` of shape (B, p, *spatial) and a
bool ``valid`` map (B, *spatial) of the voxels that may drive training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["similarity_loss", "continuity_loss", "scribble_loss", "axis_weights"]


def axis_weights(spacing, spacing_aware=True):
    """Continuity weight of each spatial axis of the network's input.

    ``w_a = min(spacing) / spacing_a``: the finite difference along axis ``a``
    approximates ``spacing_a × ∂r/∂a``, so dividing by the voxel size
    penalises the physical gradient equally along every axis; scaling by the
    smallest spacing keeps the paper's weight (1 per axis) on isotropic
    images. Thick slices (large ``spacing_a``) therefore count less.
    """
    spacing = [float(s) for s in spacing]
    if not spacing_aware:
        return [1.0] * len(spacing)
    smallest = min(spacing)
    return [smallest / s for s in spacing]


def similarity_loss(r, target, valid):
    """Cross-entropy between the responses and their own argmax, on ``valid`` voxels."""
    logits = r.movedim(1, -1)[valid]
    if logits.shape[0] == 0:
        return r.sum() * 0.0
    return F.cross_entropy(logits.float(), target[valid])


def continuity_loss(r, valid, weights):
    """Weighted mean absolute difference of neighbouring responses.

    For each spatial axis ``a`` of ``r``: the mean of ``|r[i+1] - r[i]|``
    over channels and over the pairs whose two voxels are both ``valid``,
    times ``weights[a]``; the terms are summed (the paper: L1 of the
    vertical plus the horizontal differences).
    """
    total = r.new_zeros((), dtype=torch.float32)
    n_spatial = r.ndim - 2
    for a, w in enumerate(weights[-n_spatial:]):
        if w == 0 or r.shape[2 + a] < 2:
            continue
        n = r.shape[2 + a]
        diff = (r.narrow(2 + a, 1, n - 1) - r.narrow(2 + a, 0, n - 1)).abs().float()
        pair = valid.narrow(1 + a, 1, n - 1) & valid.narrow(1 + a, 0, n - 1)
        count = pair.sum()
        if count == 0:
            continue
        total = total + w * (diff * pair.unsqueeze(1)).sum() / (count * r.shape[1])
    return total


def scribble_loss(r, scribbles, valid):
    """Cross-entropy of scribbled voxels to their class (class s → response channel s - 1)."""
    where = valid & (scribbles > 0)
    logits = r.movedim(1, -1)[where]
    if logits.shape[0] == 0:
        return r.sum() * 0.0
    return F.cross_entropy(logits.float(), (scribbles[where] - 1).long())
