"""The training loop: the paper's self-supervised iterations over mini-batches.

One network is trained for the whole volume (or the whole set of reference
volumes): each iteration draws a mini-batch of slices (2D) or patches (3D),
takes the argmax of the responses as the target, and steps SGD on
``w_sim · similarity + w_con · continuity + w_scr · scribble``, all restricted
to the mask. The stop rule (``min_labels``) is checked on the batch (the
paper) or on a fixed evaluation set with recalibrated BatchNorm (``stop_rule
= "eval"``); see docs/method.md.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .device import autocast, training_autocast
from .inference import check_cancel, recalibrate_batchnorm, region_labels, volume_halo
from .losses import axis_weights, continuity_loss, scribble_loss, similarity_loss
from .network import DFCNet, kernel_shape
from .prior import anchored_target
from .sampling import evaluation_regions, sample_batch, stack_regions

__all__ = ["TrainingHistory", "train_network", "count_clusters", "network_kernel"]

log = logging.getLogger(__name__)


@dataclass
class TrainingHistory:
    """What happened during training."""

    loss: list = field(default_factory=list)
    n_labels: list = field(default_factory=list)
    n_iterations: int = 0
    stopped_by: str = "max_iter"
    recalibrated: bool = False


def count_clusters(ids, min_fraction=0.0):
    """Clusters among ``ids`` covering at least ``min_fraction`` of them (at least one)."""
    if ids.size == 0:
        return 0
    counts = np.bincount(ids)
    counts = counts[counts > 0]
    return max(1, int((counts >= min_fraction * ids.size).sum())) if min_fraction > 0 else counts.size


def _preview(net, vol, mode, device, z):
    """Raw cluster ids + 1 of slice ``z`` (0 outside the mask), (y, x) uint16."""
    hz = volume_halo(net)[0]
    by, bx = vol.bbox[1], vol.bbox[2]
    region = (slice(max(0, z - hz), min(vol.shape[0], z + hz + 1)), by, bx)
    net.eval()
    with torch.no_grad(), autocast(device):
        x = vol.x[(slice(None),) + region]
        x = x.transpose(1, 0, 2, 3) if mode == "2d" else x[np.newaxis]
        ids = net(torch.from_numpy(np.ascontiguousarray(x)).to(device)).argmax(1).cpu().numpy()
    ids = ids[0] if mode == "2d" else ids[0, z - region[0].start]
    out = np.zeros(vol.shape[1:], dtype=np.uint16)
    valid = vol.valid((slice(z, z + 1), by, bx))[0]
    out[by, bx][valid] = ids[valid] + 1
    return out


def _batch_loss(net, vol, regions, mode, config, weights, halo, device):
    """The paper's loss on one stack of regions; also the cluster ids seen on it.

    The input carries a halo of real context, the loss is taken on the
    regions themselves, so training sees no artificial crop edges. With a
    mixture on the volume, the similarity target is anchored to it
    (:func:`.prior.anchored_target`) instead of the bare argmax.
    """
    x, valid, scr, crop = stack_regions(vol, regions, mode, halo)
    x = torch.from_numpy(x).to(device)
    valid = torch.from_numpy(valid).to(device)
    with training_autocast(device, config.precision):
        r = net(x)
    r = r[(slice(None), slice(None)) + tuple(crop)]
    seen = r.argmax(1)
    target = seen
    if vol.mixture is not None:
        mixture = tuple(torch.as_tensor(a, dtype=torch.float32, device=device) for a in vol.mixture)
        with torch.no_grad():
            target = anchored_target(r.detach(), x[(slice(None), slice(None)) + tuple(crop)],
                                     mixture, config.mixture_weight)
    if scr is not None:
        scr = torch.from_numpy(scr).to(device)
        unlabelled = valid & (scr == 0)
        loss = (config.w_similarity * similarity_loss(r, target, unlabelled)
                + config.w_scribble * scribble_loss(r, scr, valid))
    else:
        loss = config.w_similarity * similarity_loss(r, target, valid)
    loss = loss + config.continuity_weight(mode) * continuity_loss(r, valid, weights)
    return loss, seen[valid].detach()


def network_kernel(volumes, dims, config):
    """Per-axis kernel of the network for ``volumes``: see :func:`.network.kernel_shape`.

    An axis gets a 1-voxel kernel only if it is thick in every volume.
    """
    shapes = [kernel_shape(config.kernel, v.spacing[3 - dims:], config.thick_slice_ratio)
              for v in volumes]
    return tuple(int(k) for k in np.max(shapes, axis=0))


def train_network(volumes, *, mode, config, in_channels, seed, device, progress=None, cancel=None):
    """Train one network on ``volumes`` (list of TrainingVolume).

    Returns
    -------
    net : DFCNet
        In eval mode; BatchNorm recalibrated on the evaluation set if
        ``config.recalibrate_bn``.
    history : TrainingHistory
    eval_regions : list
        The fixed evaluation set (``(volume_index, region)`` pairs).
    """
    dims = 2 if mode == "2d" else 3
    rng = np.random.default_rng(seed)
    kernel = network_kernel(volumes, dims, config)
    net = DFCNet(in_channels, config.n_channels, config.n_conv, kernel, dims).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum)
    weights = [axis_weights(v.spacing[3 - dims:], config.spacing_aware) for v in volumes]
    eval_regions = evaluation_regions(volumes, mode, config)
    halo = volume_halo(net)
    bs = config.infer_batch_slices
    preview_z = int(volumes[0].slices[len(volumes[0].slices) // 2])
    history = TrainingHistory()
    n_eval = None
    recal_at = -1

    for it in range(config.max_iter):
        check_cancel(cancel)
        net.train()
        index, regions = sample_batch(volumes, mode, config, rng)
        # 2D: one forward over the batch of slices (they share one crop window);
        # 3D: one forward per patch (grown patches differ in shape at the
        # volume's edges), the loss averaged over the patches
        groups = [regions] if mode == "2d" else [[r] for r in regions]
        loss, labels_seen = 0.0, []
        for group in groups:
            term, seen = _batch_loss(net, volumes[index], group, mode, config, weights[index],
                                     halo, device)
            loss = loss + term / len(groups)
            labels_seen.append(seen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            log.warning("loss became %s at iteration %d; stopping", loss_value, it + 1)
            history.stopped_by = "diverged"
            break
        n_batch = int(torch.unique(torch.cat(labels_seen)).numel())
        if config.stop_rule == "batch":
            n_seen = n_batch
        else:
            if (it + 1) % config.eval_every == 0 or it + 1 == config.max_iter or n_eval is None:
                recalibrate_batchnorm(net, volumes, eval_regions, mode, device,
                                      batch_size=bs, cancel=cancel)
                recal_at = it
                ids = region_labels(net, volumes, eval_regions, mode, device,
                                    batch_size=bs, cancel=cancel)
                n_eval = count_clusters(ids, config.min_cluster_fraction)
            n_seen = n_eval
        history.loss.append(loss_value)
        history.n_labels.append(n_seen)
        history.n_iterations = it + 1

        info = {"iteration": it + 1, "loss": loss_value, "n_labels": n_seen,
                "n_labels_batch": n_batch, "stage": "train"}
        if progress is not None:
            if (it + 1) % config.preview_every == 0 or it == 0:
                # a GUI can ask for the slice its user is looking at
                wanted = getattr(progress, "preview_slice", lambda: None)()
                z = preview_z if wanted is None else min(max(int(wanted), 0), volumes[0].shape[0] - 1)
                info["preview"] = _preview(net, volumes[0], mode, device, z)
                info["preview_index"] = z
            progress(it + 1, config.max_iter, info)
        if it + 1 >= config.min_iter and n_seen <= config.min_labels:
            history.stopped_by = "min_labels"
            break
    log.info("trained %d iterations (stopped by %s), last loss %.4f",
             history.n_iterations, history.stopped_by, history.loss[-1] if history.loss else float("nan"))

    if config.recalibrate_bn and recal_at != history.n_iterations - 1:
        recalibrate_batchnorm(net, volumes, eval_regions, mode, device, batch_size=bs, cancel=cancel)
    history.recalibrated = config.recalibrate_bn
    net.eval()
    return net, history, eval_regions
