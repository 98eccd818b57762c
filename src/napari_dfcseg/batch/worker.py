"""The worker side of a batch: :func:`apply_one` labels one row (what Dask runs).

The model is loaded once per process and kept (module state); torch gets the
worker's share of the cores (:func:`set_torch_threads`, called by the Dask
worker plugin).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
import warnings
from pathlib import Path

import numpy as np

from ..errors import Cancelled, DFCError, InvalidInputError
from .manifest import file_stamp, inputs_stamp

__all__ = ["apply_one", "load_row", "set_torch_threads"]

_MODEL = {}  # per process: (path, size, mtime) -> Model; a worker loads the model once
_STATE = {"model_loads": 0}


def set_torch_threads(n):
    """Give torch ``n`` intra-op threads in this process (a worker's share of the cores)."""
    import torch

    n = max(1, int(n))
    torch.set_num_threads(n)
    os.environ["OMP_NUM_THREADS"] = str(n)
    _STATE["torch_threads"] = n


def _torch_threads():
    import torch

    return torch.get_num_threads()


def _model(model_path):
    from ..engine.model import load_model

    key = (str(Path(model_path).resolve()), *(file_stamp(model_path) or [None, None]))
    if key not in _MODEL:
        _MODEL.clear()
        _MODEL[key] = load_model(model_path)
        _STATE["model_loads"] += 1
    return _MODEL[key]


def _where():
    """The Dask worker's address (or ``"local"``), for the ledger."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "local"


def _log_event(kind, row):
    """An audit event on the Dask scheduler (topic ``dfcseg-batch``); nothing in-process."""
    try:
        from distributed import get_worker

        get_worker().log_event("dfcseg-batch", {"event": kind, "row": row.index, "pid": os.getpid()})
    except (ImportError, ValueError):
        pass


def _read(path, what, series=None):
    """read_volume; a missing file or a reader library's complaint is the user's (bad input),
    other OS errors (a lost network file system) are the infrastructure's and propagate."""
    from ..io import read_volume

    if not os.path.exists(path):
        raise InvalidInputError(f"{what} {path}: no such file or folder")
    try:
        return read_volume(path, series=series)
    except DFCError:
        raise
    except (ValueError, RuntimeError, EOFError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InvalidInputError(f"{what} {path}: cannot read it ({first_line})") from None


def load_row(row):
    """The row's scan and its :class:`~napari_dfcseg.engine.inputs.EngineInputs`.

    As ``dfcseg apply`` reads them: :func:`~napari_dfcseg.engine.inputs.assemble_inputs`
    stacks the channels and applies the mask rule, so the labels are the same.
    """
    from ..engine.inputs import assemble_inputs

    volume = _read(row.input, "input", series=row.series)
    channels = [_read(p, "channel").array for p in row.channels]
    mask = None if row.mask is None else _read(row.mask, "mask").array
    inputs = assemble_inputs(
        volume.array, channel_axis=-1 if volume.array.ndim == 4 else None, channels=channels,
        mask=mask, spacing=tuple(volume.spacing),
        names={"image": f"input {row.input}", "mask": f"mask {row.mask}",
               "channels": [f"channel {p}" for p in row.channels]})
    return volume, inputs


def _existing_labels(path, spatial_shape):
    """The labels in ``path`` if it is a whole label volume on the scan's grid, else None."""
    from ..io import is_label_volume

    if not Path(path).is_file() or not is_label_volume(path):
        return None
    import nibabel as nib

    try:
        data = np.asarray(nib.load(str(path)).dataobj)  # reads (and inflates) every byte
    except Exception:  # noqa: BLE001 - truncated or damaged: not complete
        return None
    labels = np.ascontiguousarray(data.T)  # NIfTI (i, j, k) -> (z, y, x)
    return labels if labels.shape == tuple(spatial_shape) else None


def _volumes(labels, volume, image):
    """Per-label voxel counts, mL per voxel and mean intensity (first channel, scan units)."""
    flat = np.asarray(labels).ravel().astype(np.int64)
    first = np.asarray(image[..., 0], dtype=np.float64).ravel()  # (z, y, x, c): channels last
    counts = np.bincount(flat)
    sums = np.bincount(flat, weights=first, minlength=counts.size)
    voxels = {str(k): int(c) for k, c in enumerate(counts) if k > 0 and c > 0}
    means = {k: float(sums[int(k)] / counts[int(k)]) for k in voxels}
    return {"voxels": voxels, "mean_intensity": means,
            "ml_per_voxel": float(np.prod(volume.spacing)) / 1000.0}


def apply_one(model_path, row, *, device="auto", min_size=None, cancel=None):
    """Label one manifest row with the model at ``model_path``; return its ledger record.

    The model is loaded once per process and kept. A row whose output already
    exists as a complete label volume on the scan's grid is not labelled again
    (its record says ``"reused": true``).

    Returns
    -------
    dict
        ``status`` ``"ok"`` (with ``voxels``, ``mean_intensity``,
        ``ml_per_voxel``, ``labels``, ``seconds``, ``device``, ``worker``) or
        ``"bad-input"`` (with ``error``, the one-line message) when the scan,
        mask, channels or model is unusable: a :class:`~napari_dfcseg.errors.DFCError`,
        which a retry cannot fix.

    Raises
    ------
    Cancelled
        ``cancel`` fired: nothing was written.
    Exception
        Anything else (out of memory, a lost file system, a bug): raised, so
        that a scheduler retries the row elsewhere.
    """
    from ..engine.result import check_cancel

    start = time.perf_counter()
    check_cancel(cancel)
    _log_event("start", row)
    record = {"row": row.index, "input": row.input, "output": row.output, "status": "ok",
              "error": None, "worker": _where(), "host": socket.gethostname(), "pid": os.getpid(),
              "inputs_stamp": inputs_stamp(row), "reused": False}
    try:
        volume, inputs = load_row(row)
        labels = _existing_labels(row.output, inputs.shape)
        if labels is not None:
            record.update(reused=True, device=None)
        else:
            model = _model(model_path)
            if min_size is not None:
                model = dataclasses.replace(model, config=dataclasses.replace(model.config,
                                                                              min_size=min_size))
            check_cancel(cancel)
            from ..engine.pipeline import apply_model

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UserWarning)
                result = apply_model(model, inputs, device=device, cancel=cancel)
            labels = result.labels
            record["warnings"] = sorted({" ".join(str(w.message).split()) for w in caught})
            check_cancel(cancel)
            from ..io import write_labels

            Path(row.output).parent.mkdir(parents=True, exist_ok=True)
            write_labels(row.output, labels, like=volume)
            _log_event("written", row)
            record["device"] = result.device
            record["torch_threads"] = _torch_threads()
    except Cancelled:
        raise
    except DFCError as exc:
        record.update(status="bad-input", error=" ".join(str(exc).split()) or type(exc).__name__)
    else:
        record.update(_volumes(labels, volume, inputs.image))
        record["labels"] = len(record["voxels"])
        record["output_stamp"] = file_stamp(row.output)
    record["seconds"] = round(time.perf_counter() - start, 3)
    record["model_loads"] = _STATE["model_loads"]
    return record
