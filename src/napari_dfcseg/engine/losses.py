"""The paper's loss, restricted to the mask, with a spacing-aware continuity term.

All functions take the response map ``r`` of shape (B, p, *spatial) and a
bool ``valid`` map (B, *spatial) of the voxels that may drive training.

Training calls :func:`dfc_loss`, which computes the whole loss and its
gradient in one pass over cache-sized slabs of ``r``; the separate terms
(:func:`similarity_loss`, :func:`continuity_loss`, :func:`scribble_loss`)
are the readable definition it is tested against.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

__all__ = ["dfc_loss", "similarity_loss", "continuity_loss", "scribble_loss", "axis_weights"]

#: float32 elements of ``r`` per slab of :func:`dfc_loss` on CPU: a slab's temporaries stay
#: in a core's L2 cache (2 MiB), which measured ~5x faster than whole-tensor autograd; on a
#: GPU the slabs are large (fewer kernel launches)
SLAB_ELEMENTS = {"cpu": 1 << 19, "cuda": 1 << 26}

#: most threads :func:`dfc_loss` walks its slabs with on CPU (one op thread each)
MAX_PARTS = 4


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


def dfc_loss(r, valid, weights, *, w_similarity=1.0, w_continuity=1.0, scribbles=None,
             w_scribble=0.0, anchor=None, slab_elements=None, crop=None, parts=None):
    """The training loss and the clusters seen, with its gradient computed in the same pass.

    Equal to ``w_similarity · similarity_loss(r, target, unlabelled) +
    w_scribble · scribble_loss(r, scribbles, valid) + w_continuity ·
    continuity_loss(r, valid, weights)`` (``unlabelled = valid`` without
    scribbles), where ``target`` is the argmax of ``r`` or, with ``anchor``,
    the anchored self-label of :func:`.prior.anchored_target`. Autograd over
    those terms materialises a dozen full-size temporaries (masked copies,
    float32 casts, differences, their backward); here ``r`` is walked in
    slabs along its first spatial axis, each slab cast to float32 once, and
    the gradient is written straight into one buffer of ``r``'s dtype.

    Parameters
    ----------
    r : (B, p, *spatial) tensor
        Responses (any float dtype; channels-last layouts are read in place).
    valid : (B, *spatial) bool tensor
    weights : list of float
        Per-axis continuity weights (:func:`axis_weights`); the last
        ``len(spatial)`` are used.
    scribbles : (B, *spatial) int tensor or None
        0 = unlabelled; class s ≥ 1 is trained towards channel s - 1.
    anchor : (B, *spatial, k) float32 tensor or None
        ``mixture_weight`` × the intensity log-likelihood of the first ``k``
        channels (:func:`.prior.intensity_loglik`, channels last).
    slab_elements : int or None
        Elements of ``r`` per slab; None: :data:`SLAB_ELEMENTS` of the device.
    parts : int or None
        CPU: the slabs are split into this many runs of rows, each walked by its own
        thread on one core (None: torch's thread count, at most :data:`MAX_PARTS`).
        The gradient and the counts do not depend on it (each part only reads the
        rows of its neighbours); the loss value may differ in the last bits (its
        float32 sums are taken per slab).
    crop : tuple of slices or None
        The loss region inside ``r``, one slice per spatial axis (the network's
        input carries a halo of context around it): the loss is that of
        ``r[:, :, *crop]`` (``valid``, ``scribbles`` and ``anchor`` are of the
        region), and the gradient is written into a buffer of ``r``'s full
        shape, zero in the halo. Same as passing ``r[:, :, *crop]``, without
        the full-size zero fill and copy of autograd's slice backward.

    Returns
    -------
    loss : scalar float32 tensor
        Differentiable with respect to ``r``.
    counts : (p,) int64 tensor
        Valid voxels whose argmax is each channel (the clusters the batch shows).
    """
    if slab_elements is None:
        slab_elements = SLAB_ELEMENTS.get(r.device.type, SLAB_ELEMENTS["cuda"])
    if parts is None:
        parts = min(torch.get_num_threads(), MAX_PARTS) if r.device.type == "cpu" else 1
    with _one_cpu_thread(r.device):
        return _DFCLoss.apply(r, valid, tuple(float(w) for w in weights), float(w_similarity),
                              float(w_continuity), scribbles, float(w_scribble), anchor,
                              int(slab_elements), None if crop is None else tuple(crop),
                              max(1, int(parts)))


@contextlib.contextmanager
def _one_cpu_thread(device):
    """The slabs' small ops on one CPU thread each.

    Several threads per op gain nothing on cache-sized work, and on a loaded
    machine each small op's thread hand-off costs more than the op: measured
    on the paper configuration with 2 threads at load ~10, a whole iteration
    took 5.5 s of CPU with the loss on both threads and 1.2 s with it on one.
    The cores are used instead by walking separate runs of rows in separate
    threads (``parts``), which meet only once, at the end.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


_pool_lock = threading.Lock()
_pool = None


def _part_pool():
    """Worker threads for the parts of :func:`dfc_loss` beyond the first (one op thread each)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(MAX_PARTS - 1, thread_name_prefix="dfc-loss",
                                       initializer=torch.set_num_threads, initargs=(1,))
        return _pool


def _forget_pool_in_child():
    # a forked child has none of the parent's threads: a pool inherited from it would
    # queue the parts forever (multiprocessing's default start method on Linux is fork)
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def _walk_rows(rl, valid, grad, terms, r0, r1, step):
    """Loss terms of rows ``r0:r1`` (first spatial axis) of ``rl``, their gradient into ``grad``.

    Reads row ``r1`` (the pair that straddles into the next part counts here)
    and row ``r0 - 1`` (the gradient that pair brings to row ``r0``); writes
    only rows ``r0:r1`` of ``grad``. Returns the loss sum (float64) and the
    argmax counts (``p + 1`` bins, the last for voxels that are not valid).
    """
    p, masked, ce_weight, scribbled, scribbles, anchor, coef, pairs = terms
    spatial = tuple(rl.shape[1:-1])
    n0 = spatial[0]
    counts = torch.zeros(p + 1, dtype=torch.int64, device=rl.device)
    total = torch.zeros((), dtype=torch.float64, device=rl.device)
    carry = None  # continuity gradient of the pair that straddles two slabs
    if r0 > 0 and coef[0]:
        # the pair (r0 - 1, r0) is the previous part's; its gradient on row r0 is this one's
        d = rl[:, r0].float() - rl[:, r0 - 1].float()
        if pairs[0] is not None:
            d.mul_(pairs[0][:, r0 - 1])
        carry = d.sign_().mul_(coef[0])
    for h0 in range(r0, r1, step):
        h1 = min(r1, h0 + step)
        n = h1 - h0
        z = rl[:, h0:min(n0, h1 + 1)].float()  # the slab plus the next row
        zc = z[:, :n]
        # max(-1).indices: the argmax (first maximum), measured 2x faster than argmax()
        seen = zc.max(-1).indices
        if masked:
            counts += torch.bincount(seen.masked_fill(~valid[:, h0:h1], p).flatten(),
                                     minlength=p + 1)
        else:
            counts += torch.bincount(seen.flatten(), minlength=p + 1)
        logp = torch.log_softmax(zc, -1)
        if anchor is not None:
            k = anchor.shape[-1]
            target = (logp[..., :k] + anchor[:, h0:h1]).max(-1).indices
        else:
            target = seen
        if scribbled is not None:
            target = torch.where(scribbled[:, h0:h1], scribbles[:, h0:h1].long() - 1, target)
        target = target.unsqueeze(-1)
        picked = logp.gather(-1, target)
        g = logp.exp_()  # softmax: d CE / d r = softmax - one-hot
        g.scatter_add_(-1, target, torch.full(target.shape, -1.0, device=g.device))
        if isinstance(ce_weight, float):
            total -= picked.sum(dtype=torch.float64) * ce_weight
            g.mul_(ce_weight)
        else:
            wc = ce_weight[:, h0:h1].unsqueeze(-1)
            total -= (picked * wc).sum(dtype=torch.float64)
            g.mul_(wc)
        if carry is not None:
            g[:, 0] += carry
            carry = None
        if coef[0] and z.shape[1] > 1:
            # pair k joins rows h0 + k and h0 + k + 1; the last may reach into the next slab
            d = z[:, 1:] - z[:, :-1]
            if pairs[0] is not None:
                d.mul_(pairs[0][:, h0:h0 + d.shape[1]])  # masked pairs: 0, and sign 0
            total += d.abs().sum().double() * coef[0]
            s = d.sign_()
            m = s.shape[1]
            g[:, :m].sub_(s, alpha=coef[0])
            g[:, 1:].add_(s[:, :n - 1], alpha=coef[0])
            if m == n and h1 < r1:
                carry = s[:, n - 1].mul_(coef[0])
        for a in range(1, len(spatial)):
            if not coef[a]:
                continue
            m = spatial[a]
            d = zc.narrow(1 + a, 1, m - 1) - zc.narrow(1 + a, 0, m - 1)
            if pairs[a] is not None:
                d.mul_(pairs[a][:, h0:h1])
            total += d.abs().sum().double() * coef[a]
            s = d.sign_()
            g.narrow(1 + a, 1, m - 1).add_(s, alpha=coef[a])
            g.narrow(1 + a, 0, m - 1).sub_(s, alpha=coef[a])
        grad[:, h0:h1] = g
    return total, counts


class _DFCLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, r, valid, weights, w_sim, w_con, scribbles, w_scr, anchor, slab_elements,
                crop, parts):
        p = r.shape[1]
        full = r.detach().movedim(1, -1)  # (B, *spatial, p): a view, contiguous if channels-last
        grad_full = torch.empty(full.shape, dtype=r.dtype, device=r.device)
        if crop is None:
            rl, grad = full, grad_full
        else:
            inside = (slice(None),) + tuple(crop)
            rl, grad = full[inside], grad_full[inside]
            for a, c in enumerate(crop):  # the halo: no loss, no gradient
                n = full.shape[1 + a]
                start, stop, _ = c.indices(n)
                if start > 0:
                    grad_full.narrow(1 + a, 0, start).zero_()
                if stop < n:
                    grad_full.narrow(1 + a, stop, n - stop).zero_()
        spatial = tuple(rl.shape[1:-1])
        # every voxel valid (no mask, or a crop inside it): no mask arithmetic in the slabs
        masked = not bool(valid.all())
        scribbled = None
        if scribbles is not None:
            scribbled = valid & (scribbles > 0)
            if not bool(scribbled.any()):
                scribbled = None  # the same loss as without scribbles
        # per-voxel cross-entropy weight: the similarity term averages over the unlabelled
        # valid voxels, the scribble term over the scribbled ones; a scalar when it is uniform
        if scribbled is not None:
            unlabelled = valid & ~scribbled
            ce_weight = (unlabelled * (w_sim / max(int(unlabelled.sum()), 1))
                         + scribbled * (w_scr / max(int(scribbled.sum()), 1))).float()
        elif masked:
            ce_weight = (valid * (w_sim / max(int(valid.sum()), 1))).float()
        else:
            ce_weight = w_sim / max(valid.numel(), 1)
        # continuity: per axis, weight / (valid pairs × channels), as continuity_loss; the
        # valid pairs as a float factor (only when some voxels are not valid)
        coef, pairs = [], []
        for a, w in enumerate(weights[-len(spatial):]):
            n = spatial[a]
            if not w or n < 2:
                coef.append(0.0)
                pairs.append(None)
                continue
            pm = valid.narrow(1 + a, 1, n - 1) & valid.narrow(1 + a, 0, n - 1)
            count = int(pm.sum())
            coef.append(w_con * w / (count * p) if count else 0.0)
            pairs.append(pm.unsqueeze(-1).to(torch.float32) if masked and count else None)
        terms = (p, masked, ce_weight, scribbled, scribbles, anchor, coef, pairs)

        n0 = spatial[0]
        step = max(1, slab_elements // max(1, rl[:, :1].numel()))
        n_slabs = -(-n0 // step)
        parts = min(parts, n_slabs // 2) if r.device.type == "cpu" else 1
        if parts <= 1:
            total, counts = _walk_rows(rl, valid, grad, terms, 0, n0, step)
        else:
            # whole slabs per part, so the slabs are those of one part
            bounds = [n0 if i == parts else min(n0, step * ((n_slabs * i) // parts))
                      for i in range(parts + 1)]
            pool = _part_pool()
            futures = [pool.submit(_walk_rows, rl, valid, grad, terms, bounds[i], bounds[i + 1],
                                   step) for i in range(1, parts)]
            results = [_walk_rows(rl, valid, grad, terms, bounds[0], bounds[1], step)]
            results += [f.result() for f in futures]
            total, counts = results[0]
            for t, c in results[1:]:
                total, counts = total + t, counts + c
        ctx.save_for_backward(grad_full)
        counts = counts[:p]
        ctx.mark_non_differentiable(counts)
        return total.float(), counts

    @staticmethod
    def backward(ctx, grad_loss, grad_counts):
        (grad,) = ctx.saved_tensors
        g = grad.movedim(-1, 1)
        if g.device.type == "cpu" and float(grad_loss) == 1.0:
            g_out = g  # the usual loss.backward(): no full-size product
        else:
            g_out = g * grad_loss.to(g.dtype)
        return g_out, None, None, None, None, None, None, None, None, None, None
