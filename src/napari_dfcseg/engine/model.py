"""Reference models: what training fitted, stored once and applied to unseen volumes.

A :class:`Model` holds everything needed to label a new volume exactly as
the training volume was labelled, nnU-Net style (fitted once, stored,
applied): the config, the training voxel sizes and the per-axis kernel they
chose, the network weights (with recalibrated BatchNorm statistics), the
intensity normalisation (:class:`~.normalize.IntensityNormalization`), and the cluster → label map.
:mod:`.pipeline` trains and applies it; this module only holds, saves and
loads it.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import ModelFileError
from .config import DFCConfig
from .model_check import DamagedModel, checked_fields, one_line_text
from .network import DFCNet, kernel_shape
from .normalize import IntensityNormalization

__all__ = ["Model", "load_model", "is_model_file"]

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
    normalization : IntensityNormalization
        Fitted on the training images; applied to every image the model labels
        (stored in the file as ``norm_stats``, plain types).
    mixture : tuple of (k, c) means, (k, c) variances, (k,) weights, or None
        The intensity mixture that anchored training (of the first training
        volume); the labelling pass takes the anchored target with it
        (:func:`~napari_dfcseg.engine.inference.label_volume`). None: the
        bare argmax (not anchored, or a model file written before it was stored).
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
    spacings : tuple of (sz, sy, sx) tuples or None
        Voxel sizes of the training volumes, in mm (None: a model file
        written before they were stored).
    history : dict
        Of the training run: ``loss``, ``n_labels``, ``stopped_by``,
        ``train_seconds``, ``device`` (not saved).
    """

    config: DFCConfig
    mode: str
    in_channels: int
    state_dict: dict
    normalization: IntensityNormalization
    label_of: np.ndarray
    label_means: np.ndarray
    mixture: tuple | None = None
    n_scribble_classes: int = 0
    seed: int = 0
    n_iterations: int = 0
    kernel_shape: tuple | None = None
    spacings: tuple | None = None
    history: dict = field(default_factory=dict)

    @property
    def n_labels(self) -> int:
        return int(self.label_of.max()) if self.label_of.size else 0

    def kernel_for(self, spacing) -> tuple:
        """The per-axis kernel training would choose for voxels of ``spacing`` (sz, sy, sx).

        :func:`~.pipeline.apply_model` compares it with :attr:`kernel_shape`:
        a network trained with 1×3×3 kernels for thick slices mixes nothing
        across slices, and applied to isotropic voxels it is not the network
        training on them would have built.
        """
        dims = 2 if self.mode == "2d" else 3
        return kernel_shape(self.config.kernel, tuple(spacing)[3 - dims:],
                            self.config.thick_slice_ratio)

    def check_spacing(self, spacing):
        """Warn (``UserWarning``) when voxels of ``spacing`` would make training choose
        another kernel than :attr:`kernel_shape` (see :meth:`kernel_for`)."""
        if self.kernel_shape is None:
            return
        wanted = tuple(self.kernel_for(spacing))
        if wanted == tuple(self.kernel_shape):
            return
        trained = (" on voxels of " + " / ".join("×".join(f"{v:g}" for v in s) for s in self.spacings)
                   + " mm") if self.spacings else ""
        msg = (f"the model's network has {'×'.join(map(str, self.kernel_shape))} kernels (trained"
               f"{trained}); voxels of {'×'.join(f'{v:g}' for v in spacing)} mm would get"
               f" {'×'.join(map(str, wanted))}: its labels may not match a model trained on such scans")
        warnings.warn(msg, UserWarning, stacklevel=3)
        log.warning(msg)

    def network(self, device="cpu") -> DFCNet:
        """The network in eval mode, on ``device``."""
        cfg = self.config
        kernel = cfg.kernel if self.kernel_shape is None else tuple(self.kernel_shape)
        net = DFCNet(self.in_channels, cfg.n_channels, cfg.n_conv, kernel,
                     2 if self.mode == "2d" else 3)
        net.load_state_dict(self.state_dict)
        return net.to(device).eval()

    def _payload(self) -> dict:
        payload = {
            "format": _FORMAT,
            "version": _VERSION,
            "config": self.config.to_dict(),
            "mode": self.mode,
            "in_channels": int(self.in_channels),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict.items()},
            "norm_stats": self.normalization.to_dict(),
            "label_of": torch.from_numpy(np.asarray(self.label_of, dtype=np.int64)),
            "label_means": torch.from_numpy(np.asarray(self.label_means, dtype=np.float64)),
            "n_scribble_classes": int(self.n_scribble_classes),
            "seed": int(self.seed),
            "n_iterations": int(self.n_iterations),
        }
        if self.mixture is not None:
            payload["mixture"] = [torch.from_numpy(np.asarray(a, dtype=np.float64)) for a in self.mixture]
        if self.kernel_shape is not None:
            payload["kernel_shape"] = [int(k) for k in self.kernel_shape]
        if self.spacings is not None:
            payload["spacings"] = [[float(v) for v in s] for s in self.spacings]
        return payload

    def output(self, path):
        """The model file as an :class:`~napari_dfcseg.io.atomic.Output`, to be written together
        with other outputs (``dfcseg segment --save-model``) by :func:`~napari_dfcseg.io.write_outputs`."""
        from ..io.atomic import Output

        payload = self._payload()
        return Output(path, write=lambda stream: torch.save(payload, stream),
                      may_replace=is_model_file, kind="napari-dfcseg model file")

    def save(self, path, *, overwrite=True) -> Path:
        """Write the model to ``path`` (by convention ``*.pt``): tensors and plain types only.

        Atomic (:mod:`napari_dfcseg.io.atomic`): the file is written to a
        temporary file in the same folder (``mkstemp``, through its
        descriptor, fsync-ed) and renamed into place, so a full disk or an
        interruption never leaves a truncated model.  With ``overwrite``
        (default, as a save dialog that has asked) only an existing
        napari-dfcseg model file may be replaced; without, any existing file
        is refused.

        Raises
        ------
        ModelFileError
            The folder is missing or unwritable, the disk is full, or the
            target exists and may not be replaced; nothing is left behind.
        """
        from ..io.atomic import write_outputs

        return write_outputs([self.output(path)], overwrite=overwrite, error=ModelFileError)[0]


def _torch_load(path):
    """``torch.load(weights_only=True)``, without torch's warnings (they speak of pickle
    protocols; the caller says what is wrong with the file in the user's words)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=True)


def _unreadable(path, exc) -> str:
    """What is wrong with a file ``torch.load`` refused, in the user's words (torch says
    ``101`` for a text file, ``[Errno 22] Invalid argument`` for a truncated one)."""
    import pickle

    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as err:
        return f"cannot be read: {err.strerror or type(err).__name__}"
    if not head:
        return "is not a napari-dfcseg model file: the file is empty"
    if isinstance(exc, pickle.UnpicklingError) and "weights only" in str(exc).lower():
        return ("is not a safe napari-dfcseg model file: it holds Python objects other than tensors"
                " and plain values (code could run), so it was not loaded")
    if head == b"PK\x03\x04":  # torch.save's zip archive
        return "is a damaged napari-dfcseg model file: it is truncated or corrupt"
    return "is not a napari-dfcseg model file: it is not a file PyTorch wrote"


def is_model_file(path) -> bool:
    """True when ``path`` is a napari-dfcseg model file (safe to replace with ``overwrite``)."""
    try:
        payload = _torch_load(path)
    except Exception:  # noqa: BLE001 - unreadable means "not ours to overwrite"
        return False
    return isinstance(payload, dict) and payload.get("format") == _FORMAT


def load_model(path) -> Model:
    """Read a model written by :meth:`Model.save`, checking every field.

    The file is read with ``torch.load(weights_only=True)``: only tensors and
    plain Python types are accepted, so a file carrying code is refused with
    :class:`~napari_dfcseg.errors.ModelFileError` before anything runs.  Then
    every field is checked (:func:`check_model_payload`): types, ranges,
    shapes against the network, finiteness, and the label map against the
    label file's range, so that a damaged file is an error rather than a
    volume of wrong labels.
    """
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder, not a napari-dfcseg model file")
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    try:
        payload = _torch_load(path)
    except Exception as exc:  # noqa: BLE001 - UnpicklingError, OSError, KeyError, EOFError, ...
        raise ModelFileError(f"{path} {_unreadable(path, exc)}") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ModelFileError(f"{path} is not a napari-dfcseg model file")
    if payload.get("version") != _VERSION:
        raise ModelFileError(f"{path}: unsupported model file version {payload.get('version')!r}")
    try:
        model = Model(**checked_fields(payload))
        model.network()  # the weights must fit the architecture (strict shapes)
    except DamagedModel as exc:
        raise ModelFileError(f"{path} is a damaged napari-dfcseg model file: {exc}") from None
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else one_line_text(exc)
        raise ModelFileError(f"{path} is a damaged napari-dfcseg model file: {detail}") from None
    return model
