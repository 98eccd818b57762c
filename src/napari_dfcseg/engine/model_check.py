"""Every field of a model file checked before it labels anything.

A damaged or hand-edited model file must be an error, never a volume of
wrong labels: a ``label_of`` of 70000 or -3 wraps round in the uint16/uint8
label file (every voxel labelled 4464 or 253), NaN weights or normalisation
statistics label every voxel 1, a ``label_means`` of the wrong shape breaks
the unseen-cluster rule.  :func:`checked_fields` turns a loaded payload into
:class:`~.model.Model` keyword arguments, or raises :class:`DamagedModel`
naming the field and what is wrong with it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .config import DFCConfig
from .normalize import IntensityNormalization

__all__ = ["DamagedModel", "checked_fields", "one_line_text", "MAX_LABEL"]

#: label files are uint16: a label above this cannot be written
MAX_LABEL = 65535
MAX_SEED = 2**63 - 1


class DamagedModel(ValueError):
    """A model file field that is missing, of the wrong type, out of range or not finite."""


def one_line_text(exc):
    text = " ".join(str(exc).split())
    return (text[:200] + "...") if len(text) > 200 else (text or type(exc).__name__)


def _int(payload, key, low, high):
    value = payload[key]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DamagedModel(f"{key} must be an integer; got {type(value).__name__}")
    if not low <= int(value) <= high:
        raise DamagedModel(f"{key} = {value} is outside {low}..{high}")
    return int(value)


def _finite_floats(values, key, count=None):
    if not isinstance(values, (list, tuple)) or (count is not None and len(values) != count):
        raise DamagedModel(f"{key} must be a list of {count if count is not None else 'some'} numbers")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            raise DamagedModel(f"{key} holds {v!r}, not a number")
        if not math.isfinite(float(v)):
            raise DamagedModel(f"{key} holds {v}, not a finite number")
        out.append(float(v))
    return out


def _normalization(stats, in_channels):
    """The stored ``norm_stats`` (:meth:`.IntensityNormalization.to_dict`), checked."""
    if not isinstance(stats, dict):
        raise DamagedModel("norm_stats must be a dict")
    missing = {"low", "high"} - set(stats)
    if missing:
        raise DamagedModel(f"norm_stats lacks {', '.join(sorted(missing))}")
    low = _finite_floats(stats["low"], "norm_stats.low", in_channels)
    high = _finite_floats(stats["high"], "norm_stats.high", in_channels)
    if any(h <= lo for lo, h in zip(low, high)):
        raise DamagedModel("norm_stats.high must be above norm_stats.low for every channel")
    window = stats.get("hu_window")
    if window is not None:
        window = _finite_floats(window, "norm_stats.hu_window", 2)
        if window[1] <= window[0]:
            raise DamagedModel(f"norm_stats.hu_window {window} is empty")
    constant = stats.get("constant", False)
    if not isinstance(constant, bool):
        raise DamagedModel("norm_stats.constant must be true or false")
    return IntensityNormalization.from_dict({"low": low, "high": high, "hu_window": window,
                                             "constant": constant})


def _state_dict(state):
    if not isinstance(state, dict) or not state:
        raise DamagedModel("state_dict must be a non-empty dict of tensors")
    for name, tensor in state.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise DamagedModel(f"state_dict entry {name!r} is not a named tensor")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise DamagedModel(f"state_dict[{name!r}] holds NaN or infinite weights")
        if name.endswith("running_var") and bool((tensor < 0).any()):
            raise DamagedModel(f"state_dict[{name!r}] holds negative variances")
    return state


def _label_of(tensor, n_clusters):
    if not isinstance(tensor, torch.Tensor) or tensor.ndim != 1 or tensor.is_floating_point():
        raise DamagedModel("label_of must be a 1-D integer tensor")
    if tensor.numel() != n_clusters:
        raise DamagedModel(f"label_of has {tensor.numel()} entries; the network has {n_clusters} clusters")
    label_of = tensor.numpy().astype(np.int64)
    # a cluster's label is at most the number of clusters; anything else wraps
    # round in the uint8/uint16 label file
    top = min(n_clusters, MAX_LABEL)
    if label_of.size and (label_of.min() < 0 or label_of.max() > top):
        raise DamagedModel(f"label_of holds {int(label_of.min())}..{int(label_of.max())}; labels are 0..{top}")
    return label_of


def _label_means(tensor, n_labels, n_features):
    if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
        raise DamagedModel("label_means must be a floating-point tensor")
    means = tensor.numpy().astype(np.float64)
    if means.shape != (n_labels, n_features):
        raise DamagedModel(f"label_means has shape {tuple(means.shape)}; expected ({n_labels}, {n_features})")
    if np.isinf(means).any():
        raise DamagedModel("label_means holds infinite values")
    partial = np.isnan(means).any(1) & ~np.isnan(means).all(1)
    if partial.any():  # NaN marks a whole row: a label without members in training
        raise DamagedModel(f"label_means row {int(np.argmax(partial))} is partly NaN")
    return means


def _mixture(value, n_channels, in_channels):
    """(means, variances, weights) float64 arrays from the stored list of three tensors."""
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or not all(isinstance(t, torch.Tensor) and t.is_floating_point() for t in value)):
        raise DamagedModel("mixture must be three floating-point tensors (means, variances, weights)")
    means, variances, weights = (t.numpy().astype(np.float64) for t in value)
    k = weights.shape[0] if weights.ndim == 1 else -1
    if not (1 <= k <= n_channels and means.shape == (k, in_channels) == variances.shape):
        raise DamagedModel(f"mixture has shapes {means.shape}, {variances.shape}, {weights.shape}; "
                           f"expected (k, {in_channels}), (k, {in_channels}), (k,) with k <= {n_channels}")
    if not all(np.isfinite(a).all() for a in (means, variances, weights)):
        raise DamagedModel("mixture holds NaN or infinite values")
    if (variances <= 0).any() or (weights <= 0).any():
        raise DamagedModel("mixture variances and weights must be positive")
    return means, variances, weights


def checked_fields(payload):
    """:class:`~.model.Model` keyword arguments from a loaded model file, every field checked.

    Raises
    ------
    DamagedModel
        Naming the first field that is wrong.
    KeyError
        A required field is missing.
    """
    config = DFCConfig.from_dict(payload["config"])
    mode = payload["mode"]
    if mode not in ("2d", "3d"):
        raise DamagedModel(f"mode must be '2d' or '3d'; got {mode!r}")
    in_channels = _int(payload, "in_channels", 1, 4096)
    p = config.n_channels
    label_of = _label_of(payload["label_of"], p)
    n_labels = int(label_of.max()) if label_of.size else 0
    kernel = None
    if "kernel_shape" in payload:
        kernel = payload["kernel_shape"]
        dims = 2 if mode == "2d" else 3
        if (not isinstance(kernel, (list, tuple)) or len(kernel) != dims
                or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0 for k in kernel)):
            raise DamagedModel(f"kernel_shape must be {dims} positive odd integers; got {kernel!r}")
        kernel = tuple(kernel)
    spacings = None
    if "spacings" in payload:
        if not isinstance(payload["spacings"], (list, tuple)) or not payload["spacings"]:
            raise DamagedModel("spacings must be a list of (sz, sy, sx)")
        spacings = tuple(tuple(_finite_floats(s, "spacings", 3)) for s in payload["spacings"])
        if any(v <= 0 for s in spacings for v in s):
            raise DamagedModel("spacings must be positive")
    normalization = _normalization(payload["norm_stats"], in_channels)
    mixture = _mixture(payload["mixture"], p, in_channels) if "mixture" in payload else None
    return dict(
        config=config,
        mode=mode,
        in_channels=in_channels,
        state_dict=_state_dict(payload["state_dict"]),
        normalization=normalization,
        label_of=label_of,
        label_means=_label_means(payload["label_means"], n_labels, p),
        mixture=mixture,
        n_scribble_classes=_int(payload, "n_scribble_classes", 0, p),
        seed=_int(payload, "seed", 0, MAX_SEED),
        n_iterations=_int(payload, "n_iterations", 0, 10**9),
        kernel_shape=kernel,
        spacings=spacings,
    )
