"""Per-scan decisions taken before training: the region, the tissue count, the anchor.

Each is one step of :func:`~.pipeline._fit`, in this order:

1. :func:`resolve_masks`: the user's mask, else the automatic body / head
   mask (:mod:`.foreground`), else the whole scan (before normalisation, so
   the intensity statistics are taken inside it);
2. :func:`resolve_tissue_count`: ``n_clusters="auto"`` becomes K
   (:mod:`.tissue_count`), with the reason the result reports;
3. :func:`anchor_mixtures`: the intensity mixture that anchors the
   self-labels (:mod:`.prior`).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

__all__ = ["resolve_masks", "scribbled_outside", "resolve_tissue_count", "anchor_mixtures"]

log = logging.getLogger(__name__)


def resolve_masks(inputs, config):
    """The region each scan is segmented in, and where it came from.

    The caller's mask when given; else, with ``config.auto_mask``, the
    automatic body / head mask of channel 0
    (:func:`~.foreground.auto_foreground`); else the whole scan. Runs before
    normalisation, so the intensity statistics are taken inside the mask.

    Returns
    -------
    inputs : list of EngineInputs
    sources : tuple of str
        ``"user"``, ``"auto"`` or ``"none"`` per input.
    """
    out, sources = [], []
    for i in inputs:
        if i.mask is not None:
            out.append(i)
            sources.append("user")
        elif config.auto_mask:
            from .foreground import auto_foreground

            mask = auto_foreground(i.image[..., 0], i.spacing)
            if scribbled_outside(i.scribbles, mask):
                # the user scribbled a class mostly outside the automatic mask: they mean
                # to segment what lies there too, so the whole array is segmented
                log.info("a scribbled class lies outside the automatic mask: no automatic mask")
                out.append(i)
                sources.append("none")
                continue
            out.append(i.with_mask(mask, name="automatic mask"))
            sources.append("auto")
        else:
            out.append(i)
            sources.append("none")
    return out, tuple(sources)


def scribbled_outside(scribbles, mask):
    """True when some scribbled class has more than half of its voxels outside ``mask``."""
    if scribbles is None:
        return False
    classes = scribbles[scribbles > 0]
    total = np.bincount(classes)
    outside = np.bincount(scribbles[(scribbles > 0) & ~mask], minlength=total.size)
    present = total > 0
    return bool(np.any(outside[present] > 0.5 * total[present]))


def resolve_tissue_count(volumes, config, n_scribble, seed, hu=None):
    """The config after looking at the normalised volumes, why its tissue count, and the air count.

    With ``n_clusters="auto"``: K from :func:`~.tissue_count.choose_tissue_count`
    on channel 0 inside each volume's mask; on CT (``hu``: channel 0 of each
    volume in HU) :func:`~.tissue_count.choose_ct_tissue_count`, which counts
    the soft-tissue window and the air / lung on their own. The largest K over several
    volumes, so no volume loses a tissue; at least the scribbled classes,
    at most ``n_channels``. The anchor then gets K components. The returned
    config is the one the model stores and the result reports.

    Returns
    -------
    config, reason
    n_air : list of int
        Per volume, how many of the K anchor components are air / lung
        (:func:`~.prior.fit_ct_mixture`); zeros off CT. With a forced K the
        air / lung part is counted alone (at most K - 1).
    """
    from .tissue_count import K_RANGE, choose_ct_tissue_count, choose_tissue_count

    if config.n_clusters != "auto":
        reason = ("forced" if config.n_clusters is not None
                  else "not merged (n_clusters=None): as many labels as the network keeps")
        n_air = [0] * len(volumes)
        if hu is not None and config.n_clusters is not None:
            from .tissue_count import count_ct_air

            n_air = [min(count_ct_air(h, v.mask, seed=seed), config.n_clusters - 1)
                     for h, v in zip(hu, volumes)]
        return config, reason, n_air
    k_range = (K_RANGE[0], min(K_RANGE[1], config.n_channels))
    counts = [choose_tissue_count(v.x[0], v.mask, k_range=k_range, seed=seed) for v in volumes]
    if hu is not None:
        counts = [choose_ct_tissue_count(h, v.mask, k_range=k_range, seed=seed, full=c)
                  for h, v, c in zip(hu, volumes, counts)]
    chosen = max(counts, key=lambda c: c.k)
    k, reason = chosen.k, chosen.reason
    if n_scribble > k:
        k, reason = n_scribble, f"{n_scribble} scribbled classes ({reason})"
    log.info("tissue count: %s", reason)
    changes = {"n_clusters": k}
    if config.mixture_components:
        changes["mixture_components"] = k
    return dataclasses.replace(config, **changes), reason, [min(c.n_air, k - 1) for c in counts]


def anchor_mixtures(volumes, config, n_scribble, seed, tied=True, ct_air=None):
    """Give the training volumes the intensity mixture that anchors their self-labels.

    Without scribbles: a mixture fitted to each volume (at least ``n_clusters``
    components, so asking for more labels gives them); on CT (``ct_air``: per
    volume ``(air_level, n_air)``, the normalised :data:`~.tissue_count.CT_AIR_HU`
    and the air / lung count) air / lung and the body are fitted apart
    (:func:`~.prior.fit_ct_mixture`). With scribbles: one
    component per scribbled class, from the scribbled voxels (components
    0..S-1, the response channels the scribble loss trains), plus, when more
    labels are asked for than classes were scribbled, the free components of
    a mixture of the whole foreground that are not the scribbled classes
    (:func:`~.prior.scribbles_and_free_mixture`).
    """
    from .prior import (fit_ct_mixture, fit_intensity_mixture, scribble_mixture,
                        scribbles_and_free_mixture)

    if not n_scribble:
        k = max(config.mixture_components, config.n_clusters or 0)
        for i, v in enumerate(volumes):
            if ct_air is not None:
                v.mixture = fit_ct_mixture(v.x, v.mask, k, air_level=ct_air[i][0],
                                           n_air=ct_air[i][1], spacing=v.spacing,
                                           thick_slice_ratio=config.thick_slice_ratio, seed=seed)
            else:
                v.mixture = fit_intensity_mixture(v.x, v.mask, k, seed=seed, tied=tied)
    elif config.n_clusters is None or config.n_clusters <= n_scribble:
        mixture = scribble_mixture(volumes)
        for v in volumes:
            v.mixture = mixture
    else:
        for v in volumes:
            v.mixture = scribbles_and_free_mixture(volumes, v, config.n_clusters, seed=seed,
                                                   tied=tied)
