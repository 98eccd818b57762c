"""Reference models: train once, save, apply to unseen volumes.

A :class:`Model` holds everything needed to label a new volume exactly as
the training volume was labelled: the config, the network weights (with
recalibrated BatchNorm statistics), the intensity normalisation statistics,
and the cluster → label map. :func:`~napari_dfcseg.engine.segment.segment`
is :func:`train_model` followed by the same labelling code as
:func:`apply_model`, so the two paths cannot drift.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import InvalidInputError, ModelFileError
from .config import DFCConfig, resolve_config
from .device import reproducible, resolve_device
from .inference import label_volume
from .network import DFCNet
from .normalize import (apply_normalization, normalize_intensity, prepare_image, prepare_mask,
                        prepare_scribbles, prepare_spacing)
from .postprocess import (apply_label_map, cluster_label_map, remove_small_islands,
                          split_by_scribbles)
from .prior import fit_intensity_mixture, scribble_mixture
from .sampling import TrainingVolume
from .training import train_network

__all__ = ["Model", "train_model", "apply_model", "load_model"]

log = logging.getLogger(__name__)

_FORMAT = "napari-dfcseg-model"
_VERSION = 1


@dataclass
class Model:
    """A trained segmentation network with what is needed to apply it.

    Attributes
    ----------
    config : DFCConfig
    mode : {"2d", "3d"}
    in_channels : int
    state_dict : dict of str → CPU tensor
        Network weights and (recalibrated) BatchNorm statistics.
    norm_stats : dict
        Output of :func:`~napari_dfcseg.engine.normalize.normalize_intensity`.
    label_of : (p,) int64 ndarray
        Label of every cluster; 0 for clusters never seen in training.
    label_means : (K, p) float64 ndarray
        Mean response vector of each label (row ``k`` = label ``k + 1``):
        a cluster unseen in training is given the label nearest to it.
    n_scribble_classes : int
    seed : int
    n_iterations : int
    kernel_shape : tuple of ints or None
        Per-axis kernel of the network (chosen from the training spacing);
        ``None``: ``config.kernel`` along every axis.
    """

    config: DFCConfig
    mode: str
    in_channels: int
    state_dict: dict
    norm_stats: dict
    label_of: np.ndarray
    label_means: np.ndarray
    n_scribble_classes: int = 0
    seed: int = 0
    n_iterations: int = 0
    kernel_shape: tuple | None = None
    history: dict = field(default_factory=dict)

    @property
    def n_labels(self) -> int:
        return int(self.label_of.max()) if self.label_of.size else 0

    def network(self, device="cpu") -> DFCNet:
        """The network in eval mode, on ``device``."""
        cfg = self.config
        kernel = cfg.kernel if self.kernel_shape is None else tuple(self.kernel_shape)
        net = DFCNet(self.in_channels, cfg.n_channels, cfg.n_conv, kernel,
                     2 if self.mode == "2d" else 3)
        net.load_state_dict(self.state_dict)
        return net.to(device).eval()

    def save(self, path) -> Path:
        """Write the model to ``path`` (by convention ``*.pt``): tensors and plain types only."""
        path = Path(path)
        payload = {
            "format": _FORMAT,
            "version": _VERSION,
            "config": self.config.to_dict(),
            "mode": self.mode,
            "in_channels": int(self.in_channels),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict.items()},
            "norm_stats": dict(self.norm_stats),
            "label_of": torch.from_numpy(np.asarray(self.label_of, dtype=np.int64)),
            "label_means": torch.from_numpy(np.asarray(self.label_means, dtype=np.float64)),
            "n_scribble_classes": int(self.n_scribble_classes),
            "seed": int(self.seed),
            "n_iterations": int(self.n_iterations),
        }
        if self.kernel_shape is not None:
            payload["kernel_shape"] = [int(k) for k in self.kernel_shape]
        try:
            torch.save(payload, path)
        except OSError as exc:
            raise ModelFileError(f"cannot write model file {path}: {exc.strerror or exc}") from None
        return path


def load_model(path) -> Model:
    """Read a model written by :meth:`Model.save`.

    The file is read with ``torch.load(weights_only=True)``: only tensors and
    plain Python types are accepted, so a file carrying code is refused with
    :class:`~napari_dfcseg.errors.ModelFileError` before anything runs.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError (not a zip), EOFError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path} is not a safe napari-dfcseg model file: {first}") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ModelFileError(f"{path} is not a napari-dfcseg model file")
    if payload.get("version") != _VERSION:
        raise ModelFileError(f"{path}: unsupported model file version {payload.get('version')!r}")
    try:
        model = Model(
            config=DFCConfig.from_dict(payload["config"]),
            mode=payload["mode"],
            in_channels=int(payload["in_channels"]),
            state_dict=payload["state_dict"],
            norm_stats=payload["norm_stats"],
            label_of=payload["label_of"].numpy(),
            label_means=payload["label_means"].numpy(),
            n_scribble_classes=int(payload["n_scribble_classes"]),
            seed=int(payload["seed"]),
            n_iterations=int(payload["n_iterations"]),
            kernel_shape=(tuple(int(k) for k in payload["kernel_shape"])
                          if "kernel_shape" in payload else None),
        )
        model.network()  # the weights must fit the architecture
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise ModelFileError(f"{path} is a damaged napari-dfcseg model file: {exc}") from None
    return model


def _check_mode(mode):
    if mode not in ("2d", "3d"):
        raise InvalidInputError(f"mode must be '2d' or '3d', got {mode!r}")
    return mode


def _per_image(value, n, name):
    """One value per image: a single array / spacing is shared, a list must have ``n``."""
    if value is None:
        return [None] * n
    single = np.ndim(value) == 1 if name == "spacing" else isinstance(value, np.ndarray)
    if single:
        if n == 1 or name == "spacing":
            return [value] * n
        raise InvalidInputError(f"{name} must be a list of {n} arrays, one per image")
    value = list(value)
    if len(value) != n:
        raise InvalidInputError(f"{name} has {len(value)} entries for {n} images")
    return value


def fit(images, *, mode, spacings, channel_axis, masks, scribbles, config, seed, device,
        progress, cancel):
    """Train on a list of images; return the model, their raw labels and the run's facts.

    Internal: :func:`train_model` and ``segment`` both call this.
    """
    mode = _check_mode(mode)
    config = resolve_config(config)
    dev = resolve_device(device)
    n = len(images)
    prepared = [prepare_image(img, channel_axis, name="image" if n == 1 else f"images[{i}]")[0]
                for i, img in enumerate(images)]
    masks = [prepare_mask(m, p.shape[:3]) for m, p in zip(_per_image(masks, n, "masks"), prepared)]
    scr = [prepare_scribbles(s, p.shape[:3])
           for s, p in zip(_per_image(scribbles, n, "scribbles"), prepared)]
    n_scribble = max(s for _, s in scr)
    if n_scribble > config.n_channels:
        raise InvalidInputError(
            f"scribbles use {n_scribble} classes but the network has only {config.n_channels} channels"
        )
    spacings = [prepare_spacing(s) for s in _per_image(spacings, n, "spacing")]
    if sum(int(np.prod(p.shape[:3])) for p in prepared) < 2:
        raise InvalidInputError("image has a single voxel: nothing to segment")
    xs, stats = normalize_intensity(prepared, masks, percentiles=config.percentiles,
                                    hu_window=config.hu_window, seed=seed)
    volumes = [TrainingVolume(x, m, s, sp) for x, m, (s, _), sp in zip(xs, masks, scr, spacings)]
    if stats["constant"]:
        return None, volumes, stats, None
    if config.mixture_components:
        _anchor(volumes, config, n_scribble, seed)
    start = time.perf_counter()
    with reproducible(seed, dev):
        net, history, _ = train_network(volumes, mode=mode, config=config,
                                        in_channels=prepared[0].shape[-1], seed=seed, device=dev,
                                        progress=progress, cancel=cancel)
        def on_step(done, total):
            if progress is not None:
                progress(done, total, {"stage": "label"})

        raws = [label_volume(net, v, mode, config, dev, cancel=cancel, on_step=on_step)
                for v in volumes]
    counts = sum(r.counts for r in raws)
    feature_sum = sum(r.feature_sum for r in raws)
    intensity_sum = sum(r.intensity_sum for r in raws)
    label_of = cluster_label_map(counts, feature_sum, intensity_sum,
                                 n_scribble_classes=n_scribble, n_clusters=config.n_clusters)
    label_means = _label_means(label_of, counts, feature_sum)
    model = Model(config=config, mode=mode, in_channels=prepared[0].shape[-1],
                  state_dict={k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
                  norm_stats=stats, label_of=label_of, label_means=label_means,
                  n_scribble_classes=n_scribble, seed=int(seed),
                  n_iterations=history.n_iterations, kernel_shape=net.kernel_shape,
                  history={"loss": history.loss, "n_labels": history.n_labels,
                           "stopped_by": history.stopped_by,
                           "train_seconds": time.perf_counter() - start, "device": str(dev)})
    return model, volumes, stats, raws


def _anchor(volumes, config, n_scribble, seed):
    """Give the training volumes the intensity mixture that anchors their self-labels.

    Without scribbles: a mixture fitted to each volume (at least ``n_clusters``
    components, so asking for more labels gives them). With scribbles that
    cover the requested labels (``n_clusters`` unset or ≤ the scribbled
    classes): one component per scribbled class, from the scribbled voxels.
    Otherwise (fewer scribbled classes than labels asked for) the paper's argmax.
    """
    if not n_scribble:
        k = max(config.mixture_components, config.n_clusters or 0)
        for v in volumes:
            v.mixture = fit_intensity_mixture(v.x, v.mask, k, seed=seed)
    elif config.n_clusters is None or config.n_clusters <= n_scribble:
        mixture = scribble_mixture(volumes)
        for v in volumes:
            v.mixture = mixture


def _label_means(label_of, counts, feature_sum):
    k = int(label_of.max()) if label_of.size else 0
    means = np.full((k, feature_sum.shape[1]), np.nan)
    for label in range(1, k + 1):
        members = label_of == label
        c = counts[members].sum()
        if c:
            means[label - 1] = feature_sum[members].sum(0) / c
    return means


def finish_labels(model, raw, scribbles=None):
    """Labels of one volume from its raw cluster ids: map, unseen clusters, scribbles, islands."""
    label_of = model.label_of.copy()
    unseen = np.flatnonzero((label_of == 0) & (raw.counts > 0))
    known = np.flatnonzero(~np.isnan(model.label_means).any(1))
    for c in unseen:  # a cluster training never produced: give it the nearest label
        if known.size == 0:
            label_of[c] = 1
            continue
        f = raw.feature_sum[c] / raw.counts[c]
        d = ((model.label_means[known] - f) ** 2).sum(1)
        label_of[c] = known[np.argmin(d)] + 1
    if unseen.size:
        log.info("%d cluster(s) unseen in training mapped to the nearest label", unseen.size)
    labels = apply_label_map(raw.ids, label_of)
    if scribbles is not None:
        labels = split_by_scribbles(labels, scribbles)
    if model.config.min_size > 1:
        labels = remove_small_islands(labels, model.config.min_size)
    return labels


def train_model(images, *, mode="2d", spacing=None, spacings=None, channel_axis=None, mask=None,
                masks=None, scribbles=None, config=None, seed=0, device="auto", progress=None,
                cancel=None):
    """Train one network on one or several volumes (the paper's reference mode).

    Parameters
    ----------
    images : ndarray or list of ndarrays
        (z, y, x) volumes (or (y, x) images), with ``channel_axis`` if multi-channel.
    mode : {"2d", "3d"}
    spacing, spacings : tuple or list of tuples
        Voxel size(s) (sz, sy, sx) in mm; ``spacings`` gives one per image.
    mask, masks : ndarray, list of them, or None
        ``mask`` for one image, ``masks`` one per image.
    scribbles : ndarray, list of them, or None
    config : DFCConfig or preset name
    seed : int
    device : str
    progress, cancel : see :func:`~napari_dfcseg.engine.segment.segment`

    Returns
    -------
    Model

    Raises
    ------
    InvalidInputError
        Bad inputs, or images with no intensity variation (nothing to learn).
    """
    images = list(images) if isinstance(images, (list, tuple)) else [images]
    if not images:
        raise InvalidInputError("images is empty: give at least one volume")
    model, *_ = fit(images, mode=mode, spacings=spacings if spacings is not None else spacing,
                    channel_axis=channel_axis, masks=masks if masks is not None else mask,
                    scribbles=scribbles, config=config,
                    seed=seed, device=device, progress=progress, cancel=cancel)
    if model is None:
        raise InvalidInputError("images have no intensity variation: nothing to learn")
    return model


def apply_model(model, image, *, spacing=None, channel_axis=None, mask=None, scribbles=None,
                device="auto", progress=None, cancel=None):
    """Label ``image`` with a trained :class:`Model`.

    Normalises with the model's stored statistics, runs the same labelling
    pass as training and maps clusters with the stored map. Applied to its
    training volume, it reproduces ``segment``'s labels exactly (same device).

    ``scribbles`` (optional) split clusters whose scribbles carry several
    classes, as in ``segment``
    (:func:`~napari_dfcseg.engine.postprocess.split_by_scribbles`); pass the
    training scribbles to reproduce a scribbled ``segment`` run.

    ``progress(i, n, info)`` is called after every batch/chunk with
    ``info = {"stage": "label"}``.

    Returns
    -------
    SegmentationResult
    """
    from .segment import SegmentationResult

    if not isinstance(model, Model):
        raise InvalidInputError(f"model must be a Model (see load_model), got {type(model).__name__}")
    start = time.perf_counter()
    dev = resolve_device(device)
    prepared, _ = prepare_image(image, channel_axis)
    if prepared.shape[-1] != model.in_channels:
        raise InvalidInputError(
            f"image has {prepared.shape[-1]} channel(s), the model was trained on {model.in_channels}"
        )
    m = prepare_mask(mask, prepared.shape[:3])
    scr, _ = prepare_scribbles(scribbles, prepared.shape[:3])
    x = apply_normalization(prepared, model.norm_stats)
    vol = TrainingVolume(x, m, None, prepare_spacing(spacing))

    def on_step(done, total):
        if progress is not None:
            progress(done, total, {"stage": "label"})

    with reproducible(model.seed, dev):
        raw = label_volume(model.network(dev), vol, model.mode, model.config, dev,
                           cancel=cancel, on_step=on_step)
    labels = finish_labels(model, raw, scr)
    if prepared.shape[0] == 1 and np.asarray(image).ndim == (2 if channel_axis is None else 3):
        labels = labels[0]
    return SegmentationResult(labels=labels, n_iterations=0, loss_history=[], n_labels_history=[],
                              config=model.config, seed=model.seed, device=str(dev),
                              elapsed_s=time.perf_counter() - start, model=model)
