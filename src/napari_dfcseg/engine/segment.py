"""``segment()``: one call from a volume to its labels (train + apply)."""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .config import DFCConfig

__all__ = ["segment", "SegmentationResult"]

log = logging.getLogger(__name__)


@dataclass
class SegmentationResult:
    """Output of :func:`segment` and :func:`~napari_dfcseg.engine.model.apply_model`.

    Attributes
    ----------
    labels : ndarray
        Same spatial shape as the image; uint8 (uint16 beyond 255 labels).
        0 outside the mask; scribbled classes keep their ids 1..S; the other
        labels follow, ordered by mean intensity of channel 0.
    n_iterations : int
        Training iterations run (0 for ``apply_model``).
    loss_history : list of float
        Loss of every iteration.
    n_labels_history : list of int
        Label count the stop rule saw at every iteration.
    config : DFCConfig
        The configuration used.
    seed : int
    device : str
        The torch device that ran it.
    elapsed_s : float
        Wall-clock seconds of the call.
    stopped_by : str
        ``"min_labels"`` (the stop rule), ``"max_iter"``, ``"diverged"``,
        ``"constant"`` (no intensity variation) or ``"applied"``.
    model : Model or None
        The trained model (save it with ``result.model.save(path)``).
    """

    labels: np.ndarray
    n_iterations: int
    loss_history: list
    n_labels_history: list
    config: DFCConfig | None = None
    seed: int = 0
    device: str = "cpu"
    elapsed_s: float = 0.0
    stopped_by: str = "applied"
    model: object = field(default=None, repr=False)

    @property
    def n_labels(self) -> int:
        """Distinct labels > 0 in :attr:`labels`."""
        return int(np.count_nonzero(np.bincount(self.labels.ravel())[1:]))


def segment(image, *, mode="2d", spacing=None, channel_axis=None, mask=None, scribbles=None,
            config=None, seed=0, device="auto", progress=None, cancel=None):
    """Segment a CT/MR volume without training labels (differentiable feature clustering).

    Trains one network on the volume (Kim, Kanezaki & Tanaka, 2020), then
    labels every voxel with it. Implemented as
    :func:`~napari_dfcseg.engine.model.train_model` followed by the
    labelling code of :func:`~napari_dfcseg.engine.model.apply_model`, so
    ``apply_model(result.model, image)`` gives the same labels.

    Parameters
    ----------
    image : ndarray
        (z, y, x) intensities of any real dtype (CT in HU, MR), or (y, x) for
        a single image; plus a channel axis named by ``channel_axis`` for
        co-registered contrasts (e.g. an RGB photo with ``channel_axis=-1``).
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
    mask : bool ndarray, optional
        Voxels to segment; outside get label 0 and never drive training.
    scribbles : int ndarray, optional
        Same spatial shape; 0 = unlabelled, 1..S = the user's classes. Class
        s keeps label s in the output. Regions that look alike but were
        scribbled as different classes are told apart by connectivity
        (:func:`~napari_dfcseg.engine.postprocess.split_by_scribbles`).
    config : DFCConfig or str, optional
        A config or a preset name (``"default"``, ``"fast"``, ``"paper"``);
        default ``"default"``.
    seed : int
        Same seed, same device → identical labels.
    device : str
        ``"auto"`` (CUDA, then MPS, then CPU), or a torch device name.
    progress : callable(i, n, info), optional
        Two stages, in order:

        1. ``info["stage"] == "train"``: called after every training
           iteration ``i`` = 1, 2, ... with ``n = config.max_iter`` (the run
           may stop earlier), ``info = {"stage", "iteration", "loss",
           "n_labels"`` (the count the stop rule saw), ``"n_labels_batch"}``;
           at the first iteration and every ``config.preview_every``
           iterations ``info`` also holds ``"preview"``: a (y, x) uint16
           array of the raw cluster ids + 1 (not yet ordered or merged; 0
           outside the mask) of slice ``info["preview_index"]``, from the
           current network.
        2. ``info["stage"] == "label"``: while the volume is labelled,
           ``progress(k, n_batches, {"stage": "label"})`` after every batch
           of ``config.infer_batch_slices`` slices (2D) or chunk (3D),
           ``k`` = 1..``n_batches``.
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
    >>> r.labels.shape
    (12, 40, 36)                                                              # doctest: +SKIP
    """
    from .config import resolve_config
    from .model import finish_labels, fit

    start = time.perf_counter()
    config = resolve_config(config)
    arr = np.asarray(image)
    model, volumes, stats, raws = fit([arr], mode=mode, spacings=spacing,
                                      channel_axis=channel_axis, masks=mask, scribbles=scribbles,
                                      config=config, seed=seed, device=device,
                                      progress=progress, cancel=cancel)
    squeeze = arr.ndim == (2 if channel_axis is None else 3)
    if model is None:
        msg = "image has no intensity variation inside the mask: returning a single label"
        warnings.warn(msg, UserWarning, stacklevel=2)
        log.warning(msg)
        vol = volumes[0]
        labels = np.ones(vol.shape, np.uint8) if vol.mask is None else vol.mask.astype(np.uint8)
        return SegmentationResult(labels=labels[0] if squeeze else labels, n_iterations=0,
                                  loss_history=[], n_labels_history=[], config=config,
                                  seed=seed, device="none", elapsed_s=time.perf_counter() - start,
                                  stopped_by="constant")
    labels = finish_labels(model, raws[0], volumes[0].scribbles)
    hist = model.history
    return SegmentationResult(
        labels=labels[0] if squeeze else labels,
        n_iterations=model.n_iterations,
        loss_history=list(hist["loss"]),
        n_labels_history=list(hist["n_labels"]),
        config=config,
        seed=seed,
        device=hist["device"],
        elapsed_s=time.perf_counter() - start,
        stopped_by=hist["stopped_by"],
        model=model,
    )
