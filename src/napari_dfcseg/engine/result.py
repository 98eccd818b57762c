"""What the engine gives back, and the two callbacks it takes (torch-free).

- :class:`SegmentationResult`: the output of :func:`~.pipeline.segment` and
  :func:`~.pipeline.apply_model`.
- ``progress(i, n, info)``: :data:`ProgressCallback`, with ``info`` a
  :class:`ProgressInfo`; :func:`report_progress` is the one place the engine calls it.
- ``cancel``: a callable or a ``threading.Event``; :func:`check_cancel` is the
  one place the engine asks whether it fired.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, TypedDict

import numpy as np

from ..errors import Cancelled

__all__ = ["SegmentationResult", "ProgressInfo", "ProgressCallback", "report_progress",
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

    @property
    def n_labels(self) -> int:
        """Distinct labels > 0 in :attr:`labels`."""
        return int(np.count_nonzero(np.bincount(self.labels.ravel())[1:]))
