"""The training loop: the paper's self-supervised iterations over mini-batches.

One network is trained for the whole volume (or the whole set of reference
volumes): each iteration draws a mini-batch of slices (2D) or patches (3D),
takes the argmax of the responses as the target, and steps SGD on
``w_sim · similarity + w_con · continuity + w_scr · scribble``, all restricted
to the mask. The stop rule (``min_labels``) is checked on the batch (the
paper) or on a fixed evaluation set with recalibrated BatchNorm (``stop_rule
= "eval"``); see docs/method.md. The evaluation costs more than an
iteration, so it runs only when the batch itself comes near the rule
(:data:`EVAL_SCREEN_FACTOR`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .device import CompiledForward, reuse_freed_memory, training_autocast
from .inference import check_cancel, recalibrate_batchnorm, volume_halo
from .losses import axis_weights, dfc_loss
from .network import DFCNet, kernel_shape
from .prior import intensity_loglik
from .sampling import evaluation_regions, sample_batch, stack_regions

__all__ = ["TrainingHistory", "train_network", "count_clusters", "network_kernel",
           "EVAL_SCREEN_FACTOR"]

log = logging.getLogger(__name__)

#: ``stop_rule="eval"``: the evaluation set is labelled (with recalibrated BatchNorm)
#: only once the training batch shows at most ``EVAL_SCREEN_FACTOR × min_labels``
#: clusters (counted with ``min_cluster_fraction``). Far from the rule the batch
#: and the evaluation set agree that it has not fired; the check used to cost
#: 27 s of a 66 s run with ``min_labels=1`` (issue 12).
EVAL_SCREEN_FACTOR = 2


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
    return _count_from_counts(np.bincount(ids), min_fraction)


def _count_from_counts(counts, min_fraction):
    """:func:`count_clusters` from the voxel count of every cluster."""
    total = int(counts.sum())
    if total == 0:
        return 0
    counts = counts[counts > 0]
    return max(1, int((counts >= min_fraction * total).sum())) if min_fraction > 0 else counts.size


def _preview(net, vol, mode, device, z):
    """Raw cluster ids + 1 of slice ``z`` (0 outside the mask), (y, x) uint16."""
    hz = volume_halo(net)[0]
    by, bx = vol.bbox[1], vol.bbox[2]
    region = (slice(max(0, z - hz), min(vol.shape[0], z + hz + 1)), by, bx)
    net.eval()
    # the preview is only looked at: the training precision is good enough and cheaper
    with torch.no_grad(), training_autocast(device):
        x = vol.x[(slice(None),) + region]
        x = x.transpose(1, 0, 2, 3) if mode == "2d" else x[np.newaxis]
        ids = net(torch.from_numpy(np.ascontiguousarray(x)).to(device)).argmax(1).cpu().numpy()
    ids = ids[0] if mode == "2d" else ids[0, z - region[0].start]
    out = np.zeros(vol.shape[1:], dtype=np.uint16)
    valid = vol.valid((slice(z, z + 1), by, bx))[0]
    out[by, bx][valid] = ids[valid] + 1
    return out


def _batch_loss(net, vol, regions, mode, config, weights, halo, device, forward=None):
    """The paper's loss on one stack of regions; also how many valid voxels each cluster has.

    The input carries a halo of real context, the loss is taken on the
    regions themselves, so training sees no artificial crop edges. With a
    mixture on the volume, the similarity target is anchored to it
    (:func:`.prior.anchored_target`) instead of the bare argmax. ``forward``:
    the training forward of ``net`` (``net`` itself, or a :class:`.device.CompiledForward`).
    """
    x, valid, scr, crop = stack_regions(vol, regions, mode, halo)
    x = torch.from_numpy(x).to(device)
    valid = torch.from_numpy(valid).to(device)
    with training_autocast(device, config.precision):
        r = (forward or net)(x)
    crop = (slice(None), slice(None)) + tuple(crop)
    anchor = None
    if vol.mixture is not None:
        mixture = tuple(torch.as_tensor(a, dtype=torch.float32, device=device) for a in vol.mixture)
        loglik = intensity_loglik(x[crop], mixture) * config.mixture_weight
        anchor = loglik.movedim(1, -1).contiguous()
    return dfc_loss(r, valid, weights, crop=crop[2:], w_similarity=config.w_similarity,
                    w_continuity=config.continuity_weight(mode),
                    scribbles=None if scr is None else torch.from_numpy(scr).to(device),
                    w_scribble=config.w_scribble, anchor=anchor)


class _SGD:
    """SGD with momentum, step for step ``torch.optim.SGD(lr, momentum)`` (no dampening).

    ``torch.optim``'s constructor imports the compiler (``torch._dynamo``):
    measured 2-12 s on the first run of a process (load-dependent), more than
    a whole default run should take.
    """

    def __init__(self, params, *, lr, momentum):
        self.params, self.lr, self.momentum = params, float(lr), float(momentum)
        self.buffers = [None] * len(params)

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            if self.buffers[i] is None:
                self.buffers[i] = torch.clone(p.grad).detach()
            else:
                self.buffers[i].mul_(self.momentum).add_(p.grad)
            p.add_(self.buffers[i], alpha=-self.lr)


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
    opt = _SGD(list(net.parameters()), lr=config.lr, momentum=config.momentum)
    weights = [axis_weights(v.spacing[3 - dims:], config.spacing_aware) for v in volumes]
    eval_regions = evaluation_regions(volumes, mode, config)
    halo = volume_halo(net)
    bs = config.infer_batch_slices
    preview_z = int(volumes[0].slices[len(volumes[0].slices) // 2])
    history = TrainingHistory()
    recal_at = -1
    # opt-in: 2D batches keep one shape, so the compiled graph is reused every iteration
    forward = CompiledForward(net) if config.compile and mode == "2d" else net

    with reuse_freed_memory():
        for it in range(config.max_iter):
            check_cancel(cancel)
            net.train()
            index, regions = sample_batch(volumes, mode, config, rng)
            # 2D: one forward over the batch of slices (they share one crop window);
            # 3D: one forward per patch (grown patches differ in shape at the
            # volume's edges), the loss averaged over the patches
            groups = [regions] if mode == "2d" else [[r] for r in regions]
            loss, counts = 0.0, 0
            for group in groups:
                term, seen = _batch_loss(net, volumes[index], group, mode, config, weights[index],
                                         halo, device, forward)
                loss = loss + term / len(groups)
                counts = counts + seen
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                log.warning("loss became %s at iteration %d; stopping", loss_value, it + 1)
                history.stopped_by = "diverged"
                break
            counts = counts.cpu().numpy()
            n_batch = int(np.count_nonzero(counts))
            if config.stop_rule == "batch":
                n_seen = n_batch
            else:
                # the batch's own count under the evaluation rule; the evaluation set is
                # labelled only when the rule may fire and the batch comes near it
                n_seen = _count_from_counts(counts, config.min_cluster_fraction)
                due = (it + 1 >= config.min_iter
                       and ((it + 1) % config.eval_every == 0 or it + 1 == config.max_iter))
                if due and n_seen <= EVAL_SCREEN_FACTOR * config.min_labels:
                    ids = recalibrate_batchnorm(net, volumes, eval_regions, mode, device,
                                                batch_size=bs, cancel=cancel, return_labels=True)
                    recal_at = it
                    n_seen = count_clusters(ids, config.min_cluster_fraction)
            history.loss.append(loss_value)
            history.n_labels.append(n_seen)
            history.n_iterations = it + 1

            info = {"iteration": it + 1, "loss": loss_value, "n_labels": n_seen,
                    "n_labels_batch": n_batch, "stage": "train"}
            if progress is not None:
                if (it + 1) % config.preview_every == 0 or it == 0:
                    # a GUI can ask for the slice its user is looking at
                    wanted = getattr(progress, "preview_slice", lambda: None)()
                    z = (preview_z if wanted is None
                         else min(max(int(wanted), 0), volumes[0].shape[0] - 1))
                    info["preview"] = _preview(net, volumes[0], mode, device, z)
                    info["preview_index"] = z
                progress(it + 1, config.max_iter, info)
            if it + 1 >= config.min_iter and n_seen <= config.min_labels:
                history.stopped_by = "min_labels"
                break
        log.info("trained %d iterations (stopped by %s), last loss %.4f", history.n_iterations,
                 history.stopped_by, history.loss[-1] if history.loss else float("nan"))

        if config.recalibrate_bn and recal_at != history.n_iterations - 1:
            recalibrate_batchnorm(net, volumes, eval_regions, mode, device, batch_size=bs,
                                  cancel=cancel)
    history.recalibrated = config.recalibrate_bn
    net.eval()
    return net, history, eval_regions
