"""The engine's entry points: :func:`segment`, :func:`train_model`, :func:`apply_model`.

All three go through the same steps, each with one home:

1. inputs: :func:`~.inputs.assemble_inputs` (shapes, mask rule, 2D flag);
2. config: :func:`~.config.resolve_config`, once, in the entry point;
3. :func:`_fit` (segment, train_model): mask resolution
   (:func:`~.scan_choices.resolve_masks`), normalisation, tissue-count resolution
   (:func:`~.scan_choices.resolve_tissue_count`), intensity anchoring
   (:func:`~.scan_choices.anchor_mixtures`), training, the labelling
   pass, the cluster → label map; it returns a :class:`_Fit`;
4. labels: :func:`~.labelling.finish_labels` (map, unseen clusters,
   scribbles, islands), shared with :func:`apply_model`, so
   ``apply_model(result.model, image)`` gives ``segment``'s labels, and with
   :meth:`~.result.SegmentationResult.relabel`, which re-labels the kept
   clusters without training.

Progress reaches the caller through :func:`~.result.report_progress` and one
adapter for the labelling pass (:func:`_label_steps`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from .config import MODES, DFCConfig, resolve_config
from .inputs import EngineInputs, as_inputs, per_image
from .model import Model
from .labelling import cluster_label_map, finish_labels, label_means
from .result import KeptClusters, SegmentationResult, report_progress
from .scan_choices import anchor_mixtures, resolve_masks, resolve_tissue_count

__all__ = ["segment", "train_model", "apply_model"]

log = logging.getLogger(__name__)


def segment(image, *, mode="2d", spacing=None, channel_axis=None, mask=None, scribbles=None,
            config=None, seed=0, device="auto", progress=None, cancel=None):
    """Segment a CT/MR volume without training labels (differentiable feature clustering).

    Trains one network on the volume (Kim, Kanezaki & Tanaka, 2020), then
    labels every voxel with it, with the same labelling code as
    :func:`apply_model`, so ``apply_model(result.model, image)`` gives the
    same labels.

    Parameters
    ----------
    image : ndarray or EngineInputs
        (z, y, x) intensities of any real dtype (CT in HU, MR), or (y, x) for
        a single image; plus a channel axis named by ``channel_axis`` for
        co-registered contrasts (e.g. an RGB photo with ``channel_axis=-1``).
        Or what :func:`~.inputs.assemble_inputs` returned (then ``spacing``,
        ``channel_axis``, ``mask`` and ``scribbles`` are not given here).
    mode : {"2d", "3d"}
        ``"2d"``: one network over the slices, trained on mini-batches of
        slices from the whole volume, so a label means the same tissue on
        every slice. ``"3d"``: 3D convolutions (1-voxel along axes at least
        ``config.thick_slice_ratio`` times thicker than the finest), trained
        on patches inside the mask and applied in chunks with a halo.
    spacing : tuple of 3 floats, optional
        Voxel size (sz, sy, sx) in mm; weights the continuity term (thick
        slices count less). Default isotropic.
    channel_axis : int or None
    mask : ndarray, optional
        Voxels ``> 0`` are segmented; the others get label 0 and never drive training.
    scribbles : int ndarray, optional
        Same spatial shape; 0 = unlabelled, 1..S = the user's classes. Class
        s keeps label s in the output. Regions that look alike but were
        scribbled as different classes are told apart by connectivity
        (:func:`~napari_dfcseg.engine.labelling.split_by_scribbles`).
    config : DFCConfig or str, optional
        A config or a preset name (``"default"``, ``"fast"``, ``"paper"``);
        default ``"default"``.
    seed : int
        Same seed, same device → identical labels.
    device : str
        ``"auto"`` (CUDA, then MPS, then CPU), or a torch device name.
    progress : callable(i, n, info), optional
        Two stages, in order (:class:`~.result.ProgressInfo`):

        1. ``info["stage"] == "train"``: after every training iteration
           ``i`` = 1, 2, ... with ``n = config.max_iter`` (the run may stop
           earlier), with ``"iteration"``, ``"loss"``, ``"n_labels"`` (the
           count the stop rule saw) and ``"n_labels_batch"``; at the first
           iteration and every ``config.preview_every`` iterations also
           ``"preview"``: a (y, x) uint16 array of the raw cluster ids + 1
           (not yet ordered or merged; 0 outside the mask) of slice
           ``info["preview_index"]``, from the current network.
        2. ``info["stage"] == "label"``: while the volume is labelled,
           ``progress(k, n_batches, {"stage": "label"})`` after every batch
           of ``config.infer_batch_slices`` slices (2D) or chunk (3D).
    cancel : callable or threading.Event, optional
        Checked before every training iteration and every batch / chunk of
        evaluation, BatchNorm recalibration and labelling; when it fires
        the run stops with :class:`~napari_dfcseg.errors.Cancelled`.

    Returns
    -------
    SegmentationResult

    Raises
    ------
    InvalidInputError
        Bad shapes, NaN/Inf, unknown preset, ...
    Cancelled
        When ``cancel`` fired.

    Notes
    -----
    An image with no intensity variation (inside the mask) gives one label
    and a ``UserWarning``.

    Examples
    --------
    >>> from napari_dfcseg.datasets import head_phantom
    >>> p = head_phantom(shape=(12, 40, 36))
    >>> r = segment(p.image, spacing=p.spacing, mask=p.mask, config="fast")  # doctest: +SKIP
    >>> r.labels.shape  # doctest: +SKIP
    (12, 40, 36)
    """
    start = time.perf_counter()
    config = resolve_config(config)
    inputs = as_inputs(image, spacing=spacing, channel_axis=channel_axis, mask=mask,
                        scribbles=scribbles)
    fit = _fit([inputs], mode=mode, config=config, seed=seed, device=device,
               progress=progress, cancel=cancel)
    inputs = fit.inputs[0]
    if fit.model is None:
        msg = "image has no intensity variation inside the mask: returning a single label"
        warnings.warn(msg, UserWarning, stacklevel=2)
        log.warning(msg)
        labels = (np.ones(inputs.shape, np.uint8) if inputs.mask is None
                  else inputs.mask.astype(np.uint8))
        return SegmentationResult(labels=inputs.restore_shape(labels), n_iterations=0,
                                  loss_history=[], n_labels_history=[], config=fit.config,
                                  seed=seed, device="none", elapsed_s=time.perf_counter() - start,
                                  stopped_by="constant", n_tissues=1,
                                  tissue_count_reason="no intensity variation",
                                  **_mask_report(fit, inputs))
    model = fit.model
    labels = _finish_labels(model, fit.raws[0], inputs.scribbles, inputs.image, inputs.spacing)
    hist = model.history
    return SegmentationResult(
        labels=inputs.restore_shape(labels),
        n_iterations=model.n_iterations,
        loss_history=list(hist["loss"]),
        n_labels_history=list(hist["n_labels"]),
        config=model.config,
        seed=seed,
        device=hist["device"],
        elapsed_s=time.perf_counter() - start,
        stopped_by=hist["stopped_by"],
        model=model,
        clusters=KeptClusters(fit.raws[0], inputs.scribbles, inputs.was_2d, from_training=True,
                              **_growth_inputs(inputs)),
        n_tissues=model.config.n_clusters,
        tissue_count_reason=fit.tissue_count_reason,
        **_mask_report(fit, inputs),
    )


def _growth_inputs(inputs):
    """What :meth:`~.result.SegmentationResult.relabel` needs to grow from the scribbles again."""
    if inputs.scribbles is None:
        return {}
    return {"image": inputs.image, "spacing": inputs.spacing}


def _mask_report(fit, inputs):
    source = fit.mask_sources[0] if fit.mask_sources else "none"
    foreground = inputs.restore_shape(inputs.mask) if source == "auto" else None
    return {"mask_source": source, "foreground": foreground}


def train_model(images, *, mode="2d", spacing=None, spacings=None, channel_axis=None, mask=None,
                masks=None, scribbles=None, config=None, seed=0, device="auto", progress=None,
                cancel=None):
    """Train one network on one or several volumes (the paper's reference mode).

    Parameters
    ----------
    images : ndarray, EngineInputs or a list of them
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
    progress, cancel : see :func:`segment`

    Returns
    -------
    Model

    Raises
    ------
    InvalidInputError
        Bad inputs, or images with no intensity variation (nothing to learn).
    """
    config = resolve_config(config)
    images = list(images) if isinstance(images, (list, tuple)) else [images]
    if not images:
        raise InvalidInputError("images is empty: give at least one volume")
    n = len(images)
    per = zip(per_image(spacings if spacings is not None else spacing, n, "spacing"),
              per_image(masks if masks is not None else mask, n, "masks"),
              per_image(scribbles, n, "scribbles"))
    inputs = [as_inputs(img, spacing=sp, channel_axis=channel_axis, mask=m, scribbles=s,
                         name="image" if n == 1 else f"images[{i}]")
              for i, (img, (sp, m, s)) in enumerate(zip(images, per))]
    model = _fit(inputs, mode=mode, config=config, seed=seed, device=device,
                 progress=progress, cancel=cancel).model
    if model is None:
        raise InvalidInputError("images have no intensity variation: nothing to learn")
    return model


def apply_model(model, image, *, spacing=None, channel_axis=None, mask=None, scribbles=None,
                device="auto", progress=None, cancel=None):
    """Label ``image`` with a trained :class:`~.model.Model`.

    Normalises with the model's stored statistics, runs the same labelling
    pass as training and maps clusters with the stored map. Applied to its
    training volume, it reproduces ``segment``'s labels exactly (same device).

    ``image`` may also be an :class:`~.inputs.EngineInputs`. ``scribbles``
    (optional) split clusters whose scribbles carry several classes, as in
    ``segment`` (:func:`~napari_dfcseg.engine.labelling.split_by_scribbles`);
    pass the training scribbles to reproduce a scribbled ``segment`` run.

    When ``spacing`` is given and its voxels would make training choose
    another per-axis kernel than the model's (e.g. a model trained with
    1×3×3 kernels on 5 mm slices, applied to 1 mm isotropic voxels), a
    ``UserWarning`` says so: the labels are those of a network built for
    other voxels.

    ``progress(i, n, info)`` is called after every batch/chunk with
    ``info = {"stage": "label"}``.

    Returns
    -------
    SegmentationResult
    """
    from .device import reproducible, resolve_device
    from .inference import label_volume
    from .normalize import denoise
    from .sampling import TrainingVolume

    if not isinstance(model, Model):
        raise InvalidInputError(f"model must be a Model (see load_model), got {type(model).__name__}")
    start = time.perf_counter()
    inputs = as_inputs(image, spacing=spacing, channel_axis=channel_axis, mask=mask,
                        scribbles=scribbles)
    if inputs.n_channels != model.in_channels:
        raise InvalidInputError(
            f"image has {inputs.n_channels} channel(s), the model was trained on {model.in_channels}"
        )
    if spacing is not None or isinstance(image, EngineInputs):
        model.check_spacing(inputs.spacing)
    # a model trained inside an automatic mask labels a new scan inside its own
    (inputs,), sources = resolve_masks([inputs], model.config)
    dev = resolve_device(device)
    vol = TrainingVolume(model.normalization.apply(inputs.image), inputs.mask, None,
                         inputs.spacing, mixture=model.mixture)
    denoise(vol.x, model.config.denoise, inputs.spacing,
            thick_slice_ratio=model.config.thick_slice_ratio,
            region=_read_region(vol, model.mode, model.config, training=False))
    with reproducible(model.seed, dev):
        raw = label_volume(model.network(dev), vol, model.mode, model.config, dev,
                           cancel=cancel, on_step=_label_steps(progress))
    labels = _finish_labels(model, raw, inputs.scribbles, inputs.image, inputs.spacing)
    return SegmentationResult(labels=inputs.restore_shape(labels), n_iterations=0,
                              loss_history=[], n_labels_history=[], config=model.config,
                              seed=model.seed, device=str(dev),
                              elapsed_s=time.perf_counter() - start, model=model,
                              clusters=KeptClusters(raw, inputs.scribbles, inputs.was_2d,
                                                    from_training=False, **_growth_inputs(inputs)),
                              n_tissues=model.config.n_clusters,
                              tissue_count_reason="the model's",
                              mask_source=sources[0],
                              foreground=(inputs.restore_shape(inputs.mask)
                                          if sources[0] == "auto" else None))


# --------------------------------------------------------------------------- the fit


@dataclass
class _Fit:
    """What :func:`_fit` produced.

    ``model`` is None when the images have no intensity variation (nothing
    to learn); ``raws`` then is empty. ``inputs`` are the inputs after mask
    resolution, ``config`` the config after tissue-count resolution.
    """

    model: Model | None
    inputs: list
    raws: list
    config: DFCConfig
    mask_sources: tuple = ()
    tissue_count_reason: str = ""


def _fit(inputs, *, mode, config, seed, device, progress, cancel) -> _Fit:
    """Train one network on ``inputs`` (list of EngineInputs) and label them with it."""
    from .device import reproducible, resolve_device
    from .inference import label_volume
    from .normalize import IntensityNormalization, check_finite, denoise
    from .sampling import TrainingVolume
    from .training import train_network

    mode = _check_mode(mode)
    dev = resolve_device(device)
    n_scribble = max(i.n_scribble_classes for i in inputs)
    if n_scribble > config.n_channels:
        raise InvalidInputError(
            f"scribbles use {n_scribble} classes but the network has only {config.n_channels} channels"
        )
    if sum(int(np.prod(i.shape)) for i in inputs) < 2:
        raise InvalidInputError("image has a single voxel: nothing to segment")
    for k, i in enumerate(inputs):  # before the automatic mask, whose ITK filters fail on NaN
        check_finite(i.image, "image" if len(inputs) == 1 else f"images[{k}]")
    inputs, mask_sources = resolve_masks(inputs, config)
    normalization = IntensityNormalization.fit([i.image for i in inputs], [i.mask for i in inputs],
                                               percentiles=config.percentiles,
                                               hu_window=config.hu_window, seed=seed)
    xs = [normalization.apply(i.image) for i in inputs]
    volumes = [TrainingVolume(x, i.mask, i.scribbles, i.spacing) for x, i in zip(xs, inputs)]
    if normalization.constant:
        return _Fit(None, inputs, [], config, mask_sources)
    from .foreground import looks_like_ct
    from .tissue_count import CT_AIR_HU

    ct = looks_like_ct(inputs[0].image[..., 0])
    if ct and config.ct_max_iter is not None and config.ct_max_iter < config.max_iter:
        config = dataclasses.replace(config, max_iter=config.ct_max_iter,
                                     min_iter=min(config.min_iter, config.ct_max_iter))
    if ct and config.ct_label_smoothing is not None:
        config = dataclasses.replace(config, label_smoothing=config.ct_label_smoothing)
    # the tissue count before the denoising: its criterion takes its own 3x3x3 median
    # (docs/method.md, "Tissue count"); counted after the median too, the twice-filtered
    # classes were narrower and MNI 9 %/40 % got K = 4 on 2 of 3 seeds instead of 3
    config, reason, n_air = resolve_tissue_count(volumes, config, n_scribble, seed,
                                                 hu=[i.image[..., 0] for i in inputs] if ct else None)
    for v, i in zip(volumes, inputs):  # in place: the volumes see the filtered intensities
        denoise(v.x, config.denoise, i.spacing, thick_slice_ratio=config.thick_slice_ratio,
                region=_read_region(v, mode, config, training=True))
    if config.mixture_components:
        # CT: one variance per component (HU are calibrated, no bias field, and CT tissues
        # differ in spread: on the public CT a tied 6-component mixture kept bone at Dice
        # 0.47, a free one 0.74), air / lung and the body's flat insides fitted apart (no
        # partial-volume component: bone 0.79 -> 0.83, lung 0.42 -> 0.68; docs/method.md,
        # "CT: the anchor mixture")
        air_level = float(normalization.apply(np.full((1, 1, 1, inputs[0].n_channels),
                                                      CT_AIR_HU, np.float32))[0, 0, 0, 0])
        anchor_mixtures(volumes, config, n_scribble, seed, tied=not ct,
                        ct_air=[(air_level, a) for a in n_air] if ct else None)
    start = time.perf_counter()
    with reproducible(seed, dev):
        net, history, _ = train_network(volumes, mode=mode, config=config,
                                        in_channels=inputs[0].n_channels, seed=seed, device=dev,
                                        progress=progress, cancel=cancel)
        raws = [label_volume(net, v, mode, config, dev, cancel=cancel,
                             on_step=_label_steps(progress)) for v in volumes]
    counts = sum(r.counts for r in raws)
    feature_sum = sum(r.feature_sum for r in raws)
    intensity_sum = sum(r.intensity_sum for r in raws)
    label_of = cluster_label_map(counts, feature_sum, intensity_sum,
                                 n_scribble_classes=n_scribble, n_clusters=config.n_clusters)
    model = Model(config=config, mode=mode, in_channels=inputs[0].n_channels,
                  state_dict={k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
                  normalization=normalization, mixture=volumes[0].mixture,
                  label_of=label_of,
                  label_means=label_means(label_of, counts, feature_sum),
                  n_scribble_classes=n_scribble, seed=int(seed),
                  n_iterations=history.n_iterations, kernel_shape=net.kernel_shape,
                  spacings=tuple(i.spacing for i in inputs),
                  history={"loss": history.loss, "n_labels": history.n_labels,
                           "stopped_by": history.stopped_by,
                           "train_seconds": time.perf_counter() - start, "device": str(dev)})
    return _Fit(model, inputs, raws, config, mask_sources, reason)


def _finish_labels(model, raw, scribbles=None, image=None, spacing=None):
    """The labels of one volume with ``model``'s map and island size."""
    return finish_labels(model.label_of, model.label_means, raw, scribbles, model.config.min_size,
                         confine=model.config.scribble_connected, image=image, spacing=spacing)


# --------------------------------------------------------------------------- helpers


def _read_region(vol, mode, config, *, training):
    """The voxels of ``vol`` that training and labelling read (the denoising needs no more).

    2D: the mask's slices, its in-plane bounding box grown by the network's
    receptive radius (training crops, the evaluation set and labelling stay
    inside it). 3D: the bounding box grown by the radius and, when
    training, by a patch (a patch centred on a mask voxel reaches that far).
    Voxels outside it never reach the network's input.
    """
    radius = config.n_conv * (config.kernel // 2)
    if mode == "2d":
        margins = (0, radius, radius)
    else:
        margins = tuple(radius + (p if training else 0) for p in config.patch_size)
    return tuple(slice(max(0, s.start - m), min(n, s.stop + m))
                 for s, m, n in zip(vol.bbox, margins, vol.shape))


def _label_steps(progress):
    """The labelling pass's ``on_step(done, total)`` as ``progress(done, total, {"stage": "label"})``."""
    def on_step(done, total):
        report_progress(progress, done, total, {"stage": "label"})
    return on_step


def _check_mode(mode):
    if mode not in MODES:
        raise InvalidInputError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    return mode
