"""What the engine gives back, and the two callbacks it takes (torch-free).

- :class:`SegmentationResult`: the output of :func:`~.pipeline.segment` and
  :func:`~.pipeline.apply_model`.
- ``progress(i, n, info)``: :data:`ProgressCallback`, with ``info`` a
  :class:`ProgressInfo`; :func:`report_progress` is the one place the engine calls it.
- ``cancel``: a callable or a ``threading.Event``; :func:`check_cancel` is the
  one place the engine asks whether it fired.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Callable, TypedDict

import numpy as np

from ..errors import Cancelled, InvalidInputError

__all__ = ["SegmentationResult", "KeptClusters", "ProgressInfo", "ProgressCallback", "report_progress",
           "check_cancel", "cancel_fired"]


class ProgressInfo(TypedDict, total=False):
    """The ``info`` of a ``progress(i, n, info)`` call.

    ``stage`` is ``"train"`` (after every training iteration, ``n`` =
    ``config.max_iter``) or ``"label"`` (after every batch of slices / chunk
    of the labelling pass, ``n`` = the number of batches). Training reports
    also carry ``iteration``, ``loss``, ``n_labels`` (the count the stop rule
    saw) and ``n_labels_batch``; at the first iteration and every
    ``config.preview_every`` iterations ``preview`` (a (y, x) uint16 array of
    raw cluster ids + 1, 0 outside the mask) of slice ``preview_index``.
    """

    stage: str
    iteration: int
    loss: float
    n_labels: int
    n_labels_batch: int
    preview: np.ndarray
    preview_index: int


#: ``progress(i, n, info)``
ProgressCallback = Callable[[int, int, ProgressInfo], None]


def report_progress(progress, i, n, info):
    """Call ``progress(i, n, info)`` if there is a callback."""
    if progress is not None:
        progress(i, n, info)


def cancel_fired(cancel) -> bool:
    """Whether ``cancel`` (None, a callable or a ``threading.Event``) has fired."""
    if cancel is None:
        return False
    return bool(cancel.is_set() if hasattr(cancel, "is_set") else cancel())


def check_cancel(cancel):
    """Raise :class:`~napari_dfcseg.errors.Cancelled` if ``cancel`` fired."""
    if cancel_fired(cancel):
        raise Cancelled("segmentation cancelled by the user")


@dataclass
class SegmentationResult:
    """Output of :func:`~.pipeline.segment` and :func:`~.pipeline.apply_model`.

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

    The raw clusters of the run are kept, so :meth:`relabel` gives the
    labels for another tissue count or minimum island size in a second,
    without training again.
    n_tissues : int or None
        The number of labels asked for: the chosen one with ``n_clusters="auto"``,
        the forced one otherwise (None: no merging).
    tissue_count_reason : str
        Why ``n_tissues`` (one line: the criterion and its numbers, or "forced").
    mask_source : str
        ``"user"`` (the caller's mask), ``"auto"`` (the automatic body / head
        mask) or ``"none"`` (the whole array).
    foreground : bool ndarray or None
        The automatic mask when ``mask_source == "auto"`` (to show or save it).
    """

    labels: np.ndarray
    n_iterations: int
    loss_history: list
    n_labels_history: list
    config: object = None
    seed: int = 0
    device: str = "cpu"
    elapsed_s: float = 0.0
    stopped_by: str = "applied"
    model: object = field(default=None, repr=False)
    clusters: "KeptClusters | None" = field(default=None, repr=False)
    n_tissues: int | None = None
    tissue_count_reason: str = ""
    mask_source: str = "none"
    foreground: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_labels(self) -> int:
        """Distinct labels > 0 in :attr:`labels`."""
        return int(np.count_nonzero(np.bincount(self.labels.ravel())[1:]))

    def relabel(self, *, n_clusters=..., min_size=None) -> "SegmentationResult":
        """The labels again, from the kept clusters, with another tissue count or island size.

        No training and no network: the cluster → label map is rebuilt from
        the clusters the run measured (:func:`~.labelling.cluster_label_map`)
        and the islands merged again; a second on a large volume.

        Parameters
        ----------
        n_clusters : int or None, optional
            Merge the clusters down to this many labels (None: no merging).
            Only for a :func:`~.pipeline.segment` result: a model's labels are
            fixed by its training. Asking for more labels than the run's
            clusters gives its clusters.
        min_size : int, optional
            Islands smaller than this many voxels are merged into their surroundings.

        Returns
        -------
        SegmentationResult
            With the new labels, and a :attr:`model` (and ``config``) that
            gives them, so ``result.relabel(...).model.save(path)`` saves
            the relabelled model.
        """
        from .labelling import cluster_label_map, finish_labels, label_means

        kept, model = self.clusters, self.model
        if kept is None or model is None:
            raise InvalidInputError("this result kept no clusters to relabel (the image had no"
                                    " intensity variation)")
        start = time.perf_counter()
        changes = {}
        if n_clusters is not ...:
            if not kept.from_training:
                raise InvalidInputError("n_clusters: the labels of apply_model are fixed by the"
                                        " model's training; train again with another n_clusters")
            changes["n_clusters"] = n_clusters
        if min_size is not None:
            changes["min_size"] = min_size
        config = dataclasses.replace(model.config, **changes)  # checks the values
        label_of, means = model.label_of, model.label_means
        if "n_clusters" in changes:
            raw = kept.raw
            label_of = cluster_label_map(raw.counts, raw.feature_sum, raw.intensity_sum,
                                         n_scribble_classes=model.n_scribble_classes,
                                         n_clusters=config.n_clusters)
            means = label_means(label_of, raw.counts, raw.feature_sum)
        labels = finish_labels(label_of, means, kept.raw, kept.scribbles, config.min_size,
                               confine=config.scribble_connected, image=kept.image,
                               spacing=kept.spacing)
        model = dataclasses.replace(model, config=config, label_of=label_of, label_means=means)
        return dataclasses.replace(self, labels=labels[0] if kept.was_2d else labels,
                                   config=config, model=model,
                                   elapsed_s=time.perf_counter() - start)


@dataclass(frozen=True, eq=False)
class KeptClusters:
    """What :meth:`SegmentationResult.relabel` needs: the run's raw clusters.

    Attributes
    ----------
    raw : RawLabels
        Cluster ids of the volume and per-cluster statistics (:mod:`.labelling`).
    scribbles : int ndarray or None
    was_2d : bool
    from_training : bool
        True for :func:`~.pipeline.segment` (the label map may be rebuilt),
        False for :func:`~.pipeline.apply_model`.
    image : (z, y, x, c) ndarray or None
        The scan (the caller's array, not a copy, where no channel was
        stacked), kept only with scribbles: their growth needs it.
    spacing : tuple of 3 floats or None
    """

    raw: object
    scribbles: np.ndarray | None
    was_2d: bool
    from_training: bool
    image: np.ndarray | None = None
    spacing: tuple | None = None
