"""An edge-stopped Potts prior on the final labels: a few mean-field steps.

A voxel's final label is the E-step of the intensity mixture whose prior is
the network (:func:`.inference.anchored_scores`): each voxel on its own. On
CT the soft tissues (kidney, spleen, muscle, liver) differ by 10-30 HU, less
than one voxel's noise even after the median, so inside an organ that
E-step is close to a coin toss between neighbouring classes. A Potts prior
(a voxel's class is likely its neighbours'), the MRF term of ANTs Atropos
and dipy's HMRF, settles it. It is stopped at edges: its weight at a voxel
falls with the local range of the intensities, so thin structures with
contrast (ribs, vessel walls, lung edges) keep the label their intensity
gives (measured in docs/method.md, "CT: an edge-stopped Potts prior").

Mean field, ``steps`` times::

    q = softmax(s)                       # the E-step's posterior
    q = softmax(s + beta * w * (sum of q over the 3-voxel neighbourhood, centre excluded))

with ``s`` the anchored scores, ``w = exp(-(range / (2 * median range))^2)``.
It runs over z-slabs with ``steps`` slices of halo on each side: a voxel's
result depends on its neighbours up to ``steps`` voxels away and no
further, so the slabs give exactly the whole-volume result while holding
only a slab's temporaries.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["SMOOTHING_STEPS", "edge_weights", "smooth_labels"]

#: mean-field steps; on the public CT (seeds 0-2) 2 steps gave mean best-label Dice
#: 0.557 / 0.552 / 0.551, 3 steps 0.562 / 0.556 / 0.555 (docs/method.md)
SMOOTHING_STEPS = 3
#: the prior's weight is e^-1 where the local range is this many times the mask's median range
EDGE_SCALE = 2.0
#: what a score of -inf (a class kept off a voxel, or a float16 overflow) becomes in a
#: window: finite, so that 0 * score never makes a NaN on the zero border; exp() of it
#: (from the top class's 0) is exactly 0 in float32, as exp(-inf)
_SCORE_FLOOR = -3.0e4
#: voxels of a slab's window (times the classes: each of its 4 float32 buffers, 320 MB at
#: 10 classes); 2e6 spent 1.9x the work of the inner slabs on the halos of 512x512 slices
_SLAB_VOXELS = 8_000_000


def edge_weights(x, bbox, valid, radius):
    """The Potts prior's weight at each voxel of ``bbox``: 1 where flat, towards 0 at edges.

    Parameters
    ----------
    x : (c, z, y, x) float ndarray
        Normalised (denoised) intensities of the whole volume; the range at a
        voxel reads its true neighbours, also outside ``bbox``.
    bbox : tuple of 3 slices
    valid : (bz, by, bx) bool ndarray
        The voxels labelled, inside ``bbox``.
    radius : tuple of 3 ints (0 or 1)
        :func:`.normalize.neighbourhood_radius`.

    Returns
    -------
    (bz, by, bx) float32 ndarray
        ``exp(-(r / (EDGE_SCALE * median r))^2)``, ``r`` the local max - min
        (the largest over channels), the median over ``valid``; 1 everywhere
        when the valid voxels have no range at all.
    """
    bz = bbox[0].stop - bbox[0].start
    local_range = np.empty(tuple(b.stop - b.start for b in bbox), np.float32)
    # in slabs of planes (each with its neighbours' planes): the temporaries of a whole
    # 512x512x300 box were ~1.3 GB
    step = max(1, _SLAB_VOXELS // max(1, local_range[0].size) // 4)
    for z0 in range(0, bz, step):
        part = (slice(bbox[0].start + z0, bbox[0].start + min(bz, z0 + step)),) + tuple(bbox[1:])
        ext = tuple(slice(max(0, s.start - r), min(n, s.stop + r))
                    for s, r, n in zip(part, radius, x.shape[1:]))
        crop = tuple(slice(s.start - e.start, s.stop - e.start) for s, e in zip(part, ext))
        out = local_range[z0:z0 + step]
        for c, channel in enumerate(x):
            block = torch.from_numpy(np.ascontiguousarray(channel[ext], dtype=np.float32))
            r = (_box_extreme(block, radius, torch.maximum)
                 - _box_extreme(block, radius, torch.minimum)).numpy()[crop]
            out[...] = r if c == 0 else np.maximum(out, r)
    inside = local_range[valid]
    # a strided sample of at most ~1e6 voxels: the median of a 512x512x300 CT's body in 0.1 s
    scale = float(np.median(inside[::max(1, inside.size // 1_000_000)])) if inside.size else 0.0
    if not scale > 0:
        scale = float(inside.mean()) if inside.size else 0.0
    if not scale > 0:
        return np.ones(local_range.shape, np.float32)
    w = local_range / np.float32(EDGE_SCALE * scale)
    np.square(w, out=w)
    np.negative(w, out=w)
    return np.exp(w, out=w)


def _box_extreme(a, radius, extreme):
    """The max (``extreme=torch.maximum``) or min of ``a`` (z, y, x) over each voxel's box,
    one axis at a time, the voxels past the border left out: as a reflected border gives
    for a 3-voxel window (scipy's maximum_filter, tested). In torch on both cores without
    the GIL (a run's GUI thread keeps going); max_pool3d took 7 s of a 512x512x300 CT."""
    for axis, r in enumerate(radius):
        n = a.shape[axis]
        if not r or n < 2:
            continue
        out = a.clone()
        extreme(out.narrow(axis, 1, n - 1), a.narrow(axis, 0, n - 1), out=out.narrow(axis, 1, n - 1))
        extreme(out.narrow(axis, 0, n - 1), a.narrow(axis, 1, n - 1), out=out.narrow(axis, 0, n - 1))
        a = out
    return a


def _box_sum(a, offset, out):
    """``out`` = ``a`` plus its two neighbours ``offset`` apart in flat memory.

    On a zero-bordered (k, z, y, x) array the neighbours along an axis are its
    stride apart, so each axis is two contiguous 1-D adds (strided slices of
    the last axis took 3x longer); cells of the border get sums that wrap
    around, but no inner cell reads them (the shift of one axis keeps the
    others' positions), and the border stays finite.
    """
    n = a.numel()
    a, out = a.view(-1), out.view(-1)
    inner = out[offset:n - offset]
    torch.add(a[:n - 2 * offset], a[offset:n - offset], out=inner)
    inner.add_(a[2 * offset:])


def _neighbour_sum(q, radius, buffers):
    """Sum of ``q`` (k, z, y, x, zero-bordered) over the box of each inner voxel, centre excluded.

    Separable: one box sum per axis of radius 1, ping-ponging between the two
    ``buffers`` (zero-filled once, so every cell stays finite).
    """
    src = q
    for stride, r in zip(q.stride()[1:], radius):
        if not r:
            continue
        dst = buffers[0] if src is not buffers[0] else buffers[1]
        _box_sum(src, stride, dst)
        src = dst
    if src is q:
        return buffers[0].zero_()
    return src.sub_(q)


def _posterior(t, valid, out):
    """softmax over the classes (dim 0) of ``t`` (k, z, y, x), times ``valid``, into ``out``.

    Classes first, torch's softmax over dim 0 is one vectorised pass over k planes, and its
    ``out=`` form reuses a buffer (a fresh one per step faulted in 180 MB of pages): 35 ms
    against 70 ms for max / subtract / exp / sum / divide, and 2 s for ``torch.softmax``
    over a last dimension of ~10 classes, on a 10x22x460x460 window.
    """
    return torch.ops.aten._softmax.out(t, 0, False, out=out).mul_(valid)


def _argmax_first(t):
    """``t.argmax(0)`` of (k, ...) by k elementwise comparisons (the first maximum, as argmax);
    torch's argmax over the first of four dimensions took 0.7 s per 26x380x400x10 window."""
    best = t[0].clone()
    ids = torch.zeros(t.shape[1:], dtype=torch.uint8 if t.shape[0] <= 256 else torch.int16,
                      device=t.device)
    for c in range(1, t.shape[0]):
        ids.masked_fill_(t[c] > best, c)
        torch.maximum(best, t[c], out=best)
    return ids


def _mean_field(s, valid, bw, radius, steps, work):
    """Argmax after ``steps`` mean-field steps of one window.

    ``s`` (k, z, y, x) float32, ``valid`` and ``bw`` (z, y, x) float32, with
    a border of one voxel on every side where ``valid`` is 0 (or, along z,
    real voxels the caller does not read back); ``work``: three float32
    buffers of ``s``'s size, finite everywhere (``s`` finite too: a border cell is
    ``s + 0 * n``, and a stale -inf there would make a NaN that its inner neighbours read).
    """
    q, buffers = work[0], work[1:]
    t = s
    for _ in range(steps):
        q = _posterior(t, valid, q)
        n = _neighbour_sum(q, radius, buffers)
        t = torch.addcmul(s, n, bw, out=n)  # s + bw * n, in n's buffer
    return _argmax_first(t)


def _bordered_planes(a, lo, hi):
    """Planes ``lo:hi`` of ``a`` (z, y, x) one voxel larger on every side, as float32: plane
    ``p`` holds ``a[p - 1]`` (zeros before the first and after the last)."""
    out = np.zeros((hi - lo, a.shape[1] + 2, a.shape[2] + 2), np.float32)
    first, last = max(lo, 1), min(hi, a.shape[0] + 1)
    out[first - lo:last - lo, 1:-1, 1:-1] = a[first - 1:last - 1]
    return torch.from_numpy(out)


def smooth_labels(scores, valid, weights, beta, radius, *, steps=SMOOTHING_STEPS):
    """Labels of the edge-stopped Potts prior's mean field.

    Parameters
    ----------
    scores : (k, bz + 2, by + 2, bx + 2) float tensor
        The anchored scores of every voxel of a bounding box, classes first,
        in an array with a border of one voxel on every side (its values are
        not read; zeros); any per-voxel shift: only differences between
        classes count. Voxels outside ``valid`` are ignored; every voxel needs
        one finite score (``-inf`` keeps a class off a voxel).
    valid : (bz, by, bx) bool ndarray
    weights : (bz, by, bx) float32 ndarray
        :func:`edge_weights`.
    beta : float
        The prior's strength: the log-odds one fully confident neighbour adds
        to its class, at a flat voxel.
    radius : tuple of 3 ints (0 or 1)
    steps : int

    Returns
    -------
    (bz, by, bx) int16 CPU tensor
        The class of every voxel (meaningful inside ``valid``); computed on
        ``scores``' device.
    """
    k, bz = scores.shape[0], scores.shape[1] - 2
    # one more plane of halo than the steps reach: the window's first and last planes get
    # no neighbour sum of their own (the flat shifts stop there)
    halo = steps * radius[0] + 1
    per_slice = int(np.prod(scores.shape[2:4]))
    slab = max(1, _SLAB_VOXELS // per_slice - 2 * halo)
    device = scores.device  # where the scores are (a CUDA run's labelling device)
    most = k * min(bz + 2, slab + 2 * halo) * per_slice
    # reused across windows (fresh pages cost a fault each); the neighbour sums' buffers
    # zeroed once (their border cells are read and must stay finite), s and q overwritten
    storage = ([torch.empty(most, device=device) for _ in range(2)]
               + [torch.zeros(most, device=device) for _ in range(2)])
    ids = torch.empty((bz,) + tuple(n - 2 for n in scores.shape[2:]), dtype=torch.int16)
    for start in range(0, bz, slab):
        stop = min(bz, start + slab)
        # bordered coordinates: data plane i is plane i + 1
        lo, hi = max(0, start + 1 - halo), min(bz + 2, stop + 1 + halo)
        shape = (k, hi - lo) + tuple(scores.shape[2:])
        s_win, *work = (b[:int(np.prod(shape))].view(shape) for b in storage)
        s_win.copy_(scores[:, lo:hi]).clamp_(min=_SCORE_FLOOR)
        valid_w = _bordered_planes(valid, lo, hi).to(device)
        bw_w = _bordered_planes(weights, lo, hi).mul_(float(beta)).to(device)
        window = _mean_field(s_win, valid_w, bw_w, radius, steps, work)
        ids[start:stop] = window[start + 1 - lo:stop + 1 - lo, 1:-1, 1:-1].cpu()
    return ids
