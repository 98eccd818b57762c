"""Whole-volume labelling with bounded memory, and BatchNorm recalibration.

The response map of a whole volume, (p, z, y, x) floats, is never held:
2D mode labels a few slices at a time, 3D mode cubic chunks with a halo of
the network's receptive field (so the chunked labels equal a single
whole-volume pass), and the per-cluster statistics that post-processing
needs (voxel count, mean feature, mean intensity) are accumulated on the fly.
With ``label_smoothing`` (CT by default) the anchored scores of the K mixture
classes (not the p responses) are kept for the mask's bounding box, in
float16, for the edge-stopped Potts prior run after the pass
(:mod:`.label_smoothing`).
"""

from __future__ import annotations

import numpy as np
import torch

from .device import autocast, reuse_freed_memory
from .labelling import RawLabels
from .prior import intensity_loglik, mixture_tensors
from .result import check_cancel
from .sampling import stack_regions, with_halo

__all__ = ["RawLabels", "label_volume", "recalibrate_batchnorm", "region_labels", "check_cancel",
           "volume_halo"]


def _forward(net, x, device):
    with autocast(device):
        return net(torch.from_numpy(np.ascontiguousarray(x)).to(device)).float()


def _respond(net, x, device):
    """Eval-mode responses of a numpy block, channels last (B, *spatial, p), float32."""
    with autocast(device):
        return net.respond(torch.from_numpy(np.ascontiguousarray(x)).to(device)).float()


def anchored_scores(r, x, mixture, weight):
    """Per-class scores whose argmax is :func:`.prior.anchored_target` of channels-last
    responses ``r`` (B, ..., p): ``r_k + weight · loglik_k``, (B, ..., k) float32.

    ``log_softmax(r)_k = r_k - logsumexp(r)``, and the log-sum-exp is the same
    for every ``k`` of a voxel: the argmax over ``k`` of ``log_softmax(r)_k +
    weight · loglik_k`` is the argmax of ``r_k + weight · loglik_k``, without
    an exponential of all ``p`` channels of every voxel (equal up to rounding);
    a softmax over ``k`` of these scores is the anchored posterior.
    """
    means, variances, weights = mixture
    if x.shape[1] != 1:
        loglik = intensity_loglik(x, mixture)  # (B, k, ...)
        k = loglik.shape[1]
        return loglik.movedim(1, -1).mul_(weight).add_(r[..., :k].float())
    # one channel: intensity_loglik's arithmetic, step for step (the same floats), on one
    # channels-last (B, ..., k) buffer written in place; its broadcast form made five
    # full-size temporaries and a transpose, 1.4 of 3.4 CPU-s of labelling a 512x512x20 CT
    k = means.shape[0]
    t = x[:, 0].float().unsqueeze(-1) - means[:, 0]  # (B, ..., k)
    t.mul_(t).div_(variances[:, 0]).add_(torch.log(2 * torch.pi * variances[:, 0]))
    t.mul_(-0.5).add_(torch.log(weights))
    return t.mul_(weight).add_(r[..., :k].float())


def anchored_ids(r, x, mixture, weight):
    """The argmax of :func:`anchored_scores`: (B, ...) int64 tensor."""
    return anchored_scores(r, x, mixture, weight).argmax(-1)


def volume_halo(net):
    """The network's receptive radius along the volume's (z, y, x) axes (2D nets: z = 0)."""
    return (0, *net.halo) if net.dims == 2 else tuple(net.halo)


class _StopForward(Exception):
    pass


#: most bytes of one layer's activations over the evaluation set that the one-pass
#: recalibration keeps in memory; beyond it each layer is recomputed from the input
RECALIBRATION_MEMORY = 512 * 2**20


@torch.no_grad()
def recalibrate_batchnorm(net, volumes, regions, mode, device, *, batch_size=4, cancel=None,
                          return_labels=False, memory_limit=RECALIBRATION_MEMORY):
    """Set every BatchNorm's running statistics to the exact statistics of ``regions``.

    Layer by layer, in forward order: the statistics of layer ``l``'s input
    are computed with the layers before it already recalibrated (precise
    BatchNorm), so the network in eval mode normalises each layer as if the
    whole evaluation set had been one training batch.

    When one layer's activations over all of ``regions`` fit in
    ``memory_limit`` bytes, the set goes through the network once, layer by
    layer, keeping those activations (one forward pass in all); otherwise
    each layer's statistics come from a forward pass stopped at that layer.

    ``regions`` is a list of ``(volume_index, region)``; same-size regions
    of a volume are stacked into batches of ``batch_size``.

    Returns
    -------
    ids : flat int64 ndarray or None
        With ``return_labels``: the eval-mode cluster ids of the regions'
        valid voxels after recalibration (as :func:`region_labels`).
    """
    net.eval()
    batches = list(_batches(volumes, regions, mode, batch_size, volume_halo(net)))
    voxels = sum(int(np.prod(x.shape[2:])) * x.shape[0] for x, _, _, _ in batches)
    if voxels * net.n_channels * 4 <= memory_limit:
        return _recalibrate_in_one_pass(net, batches, device, cancel, return_labels)
    for bn in net.batchnorms:
        stats = _MomentSums()

        def hook(module, inputs):
            stats.add(inputs[0])
            raise _StopForward  # later layers are not needed for this one

        handle = bn.register_forward_pre_hook(hook)
        try:
            for x, _, _, _ in batches:
                check_cancel(cancel)
                try:
                    _forward(net, x, device)
                except _StopForward:
                    pass
        finally:
            handle.remove()
        stats.store(bn)
    if return_labels:
        return region_labels(net, volumes, regions, mode, device, batch_size=batch_size,
                             cancel=cancel)
    return None


#: rows (voxels) per block of :class:`_MomentSums`: a block's float32 temporaries stay in cache
_MOMENT_ROWS = 1 << 14


class _MomentSums:
    """Per-channel mean and biased variance of activations seen in batches (Chan's merge)."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, None, None

    def add(self, a):
        # per batch: two passes over cache-sized row blocks of the channels-last
        # activations (no float64 copy of them). torch's var_mean over the batch and
        # spatial dims took 0.75 s of CPU for one layer of 8 slices of 480x480x32
        # (issue 12), this 0.1 s
        flat = a.movedim(1, -1).reshape(-1, a.shape[1])  # a view when channels-last
        n = flat.shape[0]
        rows = _MOMENT_ROWS if a.device.type == "cpu" else n  # a GPU: one block, few launches
        blocks = [flat[start:start + rows].float() for start in range(0, n, rows)]
        # a block's sums in float32 (16k rows: ~1e-8 relative), accumulated in float64
        total = sum(b.sum(0).double() for b in blocks)
        centre = (total / n).float()
        first = torch.zeros_like(total)
        second = torch.zeros_like(total)
        for b in blocks:
            d = b - centre
            first += d.sum(0).double()
            second += d.mul_(d).sum(0).double()
        # moments about the float32 centre, corrected for its rounding
        mean = centre.double() + first / n
        m2 = second - first * first / n
        if self.mean is None:
            self.n, self.mean, self.m2 = n, mean, m2
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta * delta * (self.n * n / total)
        self.n = total

    def store(self, bn):
        bn.running_mean.copy_(self.mean.to(bn.running_mean))
        bn.running_var.copy_((self.m2 / self.n).clamp_min(0.0).to(bn.running_var))


def _recalibrate_in_one_pass(net, batches, device, cancel, return_labels):
    acts = [torch.from_numpy(np.ascontiguousarray(x)).to(device) for x, _, _, _ in batches]
    with autocast(device):
        for f, bn in net.stages():
            stats = _MomentSums()
            for i, a in enumerate(acts):
                check_cancel(cancel)
                acts[i] = f(a)
                stats.add(acts[i])
            stats.store(bn)
            for i, a in enumerate(acts):
                acts[i] = bn(a)
    if not return_labels:
        return None
    out = [_crop(a.float(), crop).argmax(1).cpu().numpy()[valid]
           for a, (_, valid, _, crop) in zip(acts, batches)]
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _batches(volumes, regions, mode, batch_size, halo):
    """Stack consecutive regions whose grown blocks share volume and shape."""
    group = []

    def key(item):
        i, r = item
        grown, crop = with_halo(r, halo, volumes[i].shape, mode)
        return i, tuple(s.stop - s.start for s in grown), crop

    for item in regions:
        if group and (key(item) != key(group[0]) or len(group) == batch_size):
            yield stack_regions(volumes[group[0][0]], [r for _, r in group], mode, halo)
            group = []
        group.append(item)
    if group:
        yield stack_regions(volumes[group[0][0]], [r for _, r in group], mode, halo)


def _crop(r, crop):
    return r[(slice(None), slice(None)) + tuple(crop)]


@torch.no_grad()
def region_labels(net, volumes, regions, mode, device, *, batch_size=4, cancel=None):
    """Eval-mode cluster ids of the valid voxels of ``regions``: one flat int64 array."""
    net.eval()
    out = []
    for x, valid, _, crop in _batches(volumes, regions, mode, batch_size, volume_halo(net)):
        check_cancel(cancel)
        ids = _crop(_forward(net, x, device), crop).argmax(1).cpu().numpy()
        out.append(ids[valid])
    return np.concatenate(out) if out else np.zeros(0, np.int64)


#: voxels per slab of the float64 feature sums of :func:`label_volume`
_SUM_SLAB = 1 << 16


def _chunks(bbox, size):
    """Cubic chunk grid covering ``bbox`` (tuple of 3 slices)."""
    ranges = [range(s.start, s.stop, size) for s in bbox]
    for z in ranges[0]:
        for y in ranges[1]:
            for x in ranges[2]:
                yield tuple(slice(a, min(a + size, s.stop)) for a, s in zip((z, y, x), bbox))


@torch.no_grad()
@reuse_freed_memory()
def label_volume(net, vol, mode, config, device, *, cancel=None, on_step=None):
    """Label every voxel of ``vol``'s mask with its cluster.

    The cluster is the argmax of the responses or, when ``vol`` carries an
    intensity mixture and the config anchors to it, the anchored target the
    training iterations used (:func:`.prior.anchored_target`: the network's
    log-probability plus ``mixture_weight`` times the intensity
    log-likelihood): the label is the E-step of the mixture whose spatial
    prior is the network, so a class the network has not learnt yet keeps
    the voxels its intensity claims (measured in docs/method.md, "Final labels").
    With ``config.label_smoothing`` > 0 those anchored labels then take an
    edge-stopped Potts prior (:func:`.label_smoothing.smooth_labels`;
    docs/method.md, "CT: an edge-stopped Potts prior").

    Parameters
    ----------
    net : DFCNet
        Put in eval mode (BatchNorm uses its running statistics).
    vol : TrainingVolume
    mode : {"2d", "3d"}
    config : DFCConfig
        ``infer_batch_slices`` (2D) or ``chunk_size`` (3D).
    on_step : callable(done, total) or None
        Called after each batch / chunk.

    Returns
    -------
    RawLabels
    """
    net.eval()
    p = config.n_channels
    shape = vol.shape
    halo = volume_halo(net)  # per axis: anisotropic kernels need less context along z
    ids = np.full(shape, -1, dtype=np.int16)
    counts = torch.zeros(p, dtype=torch.int64)
    feature_sum = torch.zeros(p, p, dtype=torch.float64)
    intensity_sum = torch.zeros(p, dtype=torch.float64)
    mixture = (mixture_tensors(vol.mixture, device)
               if vol.mixture is not None and config.anchor_weight > 0 else None)
    # the Potts prior reads every voxel's scores and its neighbours': they are kept for the
    # mask's bounding box, shifted by their maximum and stored in float16 (exact to ~1e-3
    # log-odds near the top class, where an argmax is decided), and smoothed after the loop
    smoothing = mixture is not None and config.label_smoothing > 0
    if smoothing:
        bbox_shape = tuple(s.stop - s.start for s in vol.bbox)
        # with a border of one zero voxel (label_smoothing's flat shifts need it)
        scores = torch.zeros((mixture[0].shape[0],) + tuple(n + 2 for n in bbox_shape),
                             dtype=torch.float16, device=device)  # the mean field runs there

    if mode == "2d":
        # in plane: the mask's bounding box plus the halo, so every mask
        # voxel sees exactly the context it would see in the full slice
        ys, xs = (slice(max(0, s.start - h), min(n, s.stop + h))
                  for s, n, h in zip(vol.bbox[1:], shape[1:], halo[1:]))
        zs = vol.slices
        step = config.infer_batch_slices
        jobs = [(zs[i:i + step], ys, xs) for i in range(0, len(zs), step)]
    else:
        jobs = list(_chunks(vol.bbox, config.chunk_size))

    for done, job in enumerate(jobs, 1):
        check_cancel(cancel)
        # responses channels last: (b, ..., p)
        if mode == "2d":
            z_idx, ys, xs = job
            x = vol.x[:, z_idx, ys, xs].transpose(1, 0, 2, 3)
            inner = _respond(net, x, device)  # (b, h, w, p)
            target = (z_idx, ys, xs)
            x_inner = x
        else:
            ext = tuple(slice(max(0, s.start - h), min(n, s.stop + h))
                        for s, n, h in zip(job, shape, halo))
            x = vol.x[(slice(None),) + ext][np.newaxis]
            r = _respond(net, x, device)  # (1, dz, dy, dx, p)
            crop = tuple(slice(s.start - e.start, s.stop - e.start) for s, e in zip(job, ext))
            inner = r[(slice(None),) + crop]
            x_inner = x[(slice(None), slice(None)) + crop]
            target = job
        if mixture is None:
            block_ids = inner.argmax(-1).cpu()  # (b, ...) int64
        else:
            x_t = torch.from_numpy(np.ascontiguousarray(x_inner)).to(inner.device)
            block_scores = anchored_scores(inner, x_t, mixture, config.mixture_weight)
            block_ids = block_scores.argmax(-1).cpu()
            if smoothing:
                _keep_scores(scores, block_scores, target, vol.bbox, mode)
        if mode == "2d":
            valid = (np.ones(block_ids.shape, bool) if vol.mask is None
                     else vol.mask[z_idx][:, ys, xs])
            x0 = vol.x[0][z_idx][:, ys, xs]
        else:
            valid = vol.valid(job)[np.newaxis]
            x0 = vol.x[0][job][np.newaxis]
        valid_t = torch.from_numpy(np.ascontiguousarray(valid))
        sel = block_ids[valid_t]
        block = np.full(block_ids.shape, -1, dtype=np.int16)
        block[valid] = sel.numpy().astype(np.int16)
        ids[target] = block if mode == "2d" else block[0]
        counts += torch.bincount(sel, minlength=p)
        # float64 sums (exact enough for any volume), gathered and converted a slab of
        # voxels at a time, in voxel order (the same sums): a float64 copy of a whole
        # batch's responses was ~270 MB on 512×512 slices, its float32 gather 120 MB
        flat, flat_valid, flat_ids = inner.reshape(-1, p), valid_t.reshape(-1), block_ids.reshape(-1)
        on_device = flat_valid.to(inner.device)
        for start in range(0, flat.shape[0], _SUM_SLAB):
            stop = start + _SUM_SLAB
            keep = flat_valid[start:stop]
            feature_sum.index_add_(0, flat_ids[start:stop][keep],
                                   flat[start:stop][on_device[start:stop]].cpu().double())
        intensity_sum += torch.bincount(sel, weights=torch.from_numpy(x0[valid].astype(np.float64)),
                                        minlength=p)
        if on_step is not None:
            on_step(done, len(jobs))
    raw = RawLabels(ids=ids, counts=counts.numpy(), feature_sum=feature_sum.numpy(),
                    intensity_sum=intensity_sum.numpy())
    return _smoothed(raw, scores, vol, config) if smoothing else raw


def _keep_scores(scores, block_scores, target, bbox, mode):
    """Store a block's anchored scores (max-shifted, float16, classes first) in the bordered
    bounding-box buffer (bounding-box voxel i at i + 1)."""
    block = (block_scores - block_scores.amax(-1, keepdim=True)).to(scores.device)
    if mode == "2d":
        z_idx, ys, xs = target
        inner = block[:, bbox[1].start - ys.start:bbox[1].stop - ys.start,
                      bbox[2].start - xs.start:bbox[2].stop - xs.start].permute(3, 0, 1, 2)
        zs = np.asarray(z_idx) - bbox[0].start + 1
        ny, nx = inner.shape[2:]
        if zs.size and np.array_equal(zs, np.arange(zs[0], zs[0] + zs.size)):
            scores[:, zs[0]:zs[0] + zs.size, 1:1 + ny, 1:1 + nx] = inner
        else:
            for i, z in enumerate(zs):
                scores[:, z, 1:1 + ny, 1:1 + nx] = inner[:, i]
    else:
        region = tuple(slice(t.start - b.start + 1, t.stop - b.start + 1) for t, b in zip(target, bbox))
        scores[(slice(None),) + region] = block[0].permute(3, 0, 1, 2)


def _smoothed(raw, scores, vol, config):
    """``raw`` with the labels of the edge-stopped Potts prior (:mod:`.label_smoothing`).

    Voxels move only between the clusters the voxel-wise labels hold; the
    counts and intensity sums are those of the new labels, each cluster's
    feature sum its voxel-wise mean times its new count (the responses are
    not kept).
    """
    from .label_smoothing import edge_weights, smooth_labels
    from .normalize import neighbourhood_radius

    bbox = vol.bbox
    valid = vol.valid(bbox)
    k = scores.shape[0]
    present = raw.counts[:k] > 0
    scores[torch.from_numpy(~present).to(scores.device), 1:-1, 1:-1, 1:-1] = -torch.inf
    radius = neighbourhood_radius(vol.spacing, vol.shape, config.thick_slice_ratio)
    weights = edge_weights(vol.x, bbox, valid, radius)
    new = smooth_labels(scores, valid, weights, config.label_smoothing, radius).numpy()
    ids = raw.ids  # in place: the voxel-wise ids are not needed after this
    inside = ids[bbox]  # a view
    inside[valid] = new[valid]
    sel = inside[valid].astype(np.int64)
    p = raw.counts.shape[0]
    counts = np.bincount(sel, minlength=p)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(raw.counts > 0, counts / np.maximum(raw.counts, 1), 0.0)
    x0 = vol.x[0][bbox][valid].astype(np.float64)
    return RawLabels(ids=ids, counts=counts, feature_sum=raw.feature_sum * scale[:, None],
                     intensity_sum=np.bincount(sel, weights=x0, minlength=p))
