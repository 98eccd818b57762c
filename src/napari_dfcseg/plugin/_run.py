"""What one widget run computes off the GUI thread, and the record it leaves on the result layer.

The widget copies layer references on the GUI thread and binds them into
:func:`segment_call` / :func:`apply_model_call`; everything that touches the
voxels (stacking contrasts, the automatic region, the engine itself) runs on
the worker thread and reports its stage through ``progress`` so the user sees
what is happening from the first second.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["RunInputs", "RunOutput", "segment_call", "apply_model_call", "auto_region",
           "run_record", "write_settings", "RUN_KEY", "STAGE_TEXT"]

#: layer-metadata key of the run record (parameters, seed, tissues chosen, timings)
RUN_KEY = "dfcseg_run"

#: what the status line says while a stage runs (before the first iteration)
STAGE_TEXT = {
    "inputs": "Reading the image…",
    "region": "Finding the body outline…",
    "prepare": "Preparing: normalising intensities, fitting the intensity classes…",
    "model": "Loading the model…",
}


@dataclass
class RunInputs:
    """Layer data of a run, referenced (not copied) on the GUI thread.

    ``region`` is an array (a Labels layer's data), ``"auto"`` or ``"whole"``.
    """

    image: object
    channels: list = field(default_factory=list)  # [(name, data)]
    region: object = "auto"
    scribbles: object = None
    rgb: bool = False
    modality: str = ""
    spacing: tuple = ()


@dataclass
class RunOutput:
    """What a run hands back to the GUI thread."""

    result: object
    region: np.ndarray | None  # the automatic region (bool), when one was computed
    region_source: str  # "auto", "layer" or "whole"
    seconds: dict  # wall seconds per stage


def auto_region(image, spacing, modality=""):
    """Automatic body outline of a scan (bool array of the image's shape).

    Uses the engine's :func:`~napari_dfcseg.engine.foreground.auto_foreground`.
    """
    try:
        from napari_dfcseg.engine.foreground import auto_foreground
    except ImportError:  # PLACEHOLDER until engine/foreground.py (issue 11) is on main
        return _placeholder_foreground(image)
    return np.asarray(auto_foreground(image, spacing, modality=modality), dtype=bool)


def _placeholder_foreground(image):
    """PLACEHOLDER body mask (Otsu threshold, largest component, holes filled); issue 11 replaces it."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    a = np.asarray(image, dtype=np.float32)
    if float(a.max()) <= float(a.min()):
        return np.ones(a.shape, bool)
    body = a > threshold_otsu(a[:: max(1, a.size // 1_000_000)] if a.ndim == 1 else a)
    labelled, n = ndimage.label(body)
    if n == 0:
        return np.ones(a.shape, bool)
    sizes = np.bincount(labelled.ravel())[1:]
    body = labelled == (1 + int(np.argmax(sizes)))
    return ndimage.binary_fill_holes(body)


def _stack(inputs):
    """(image, channel_axis): the image with its extra contrasts on a last channel axis."""
    from napari_dfcseg.errors import InvalidInputError

    image = np.asarray(inputs.image)
    if inputs.rgb:
        return image, -1
    if not inputs.channels:
        return image, None
    for name, extra in inputs.channels:
        if np.shape(extra) != image.shape:
            raise InvalidInputError(
                f"contrast {name!r} has {np.shape(extra)} voxels, the image {image.shape}: "
                "extra contrasts must be co-registered on the image's grid"
            )
    return np.stack([image, *(np.asarray(extra) for _, extra in inputs.channels)], axis=-1), -1


def _check_cancel(cancel):
    from napari_dfcseg.errors import Cancelled

    if cancel is not None and (cancel.is_set() if hasattr(cancel, "is_set") else cancel()):
        raise Cancelled("cancelled")


def _first_channel(image, channel_axis):
    return image if channel_axis is None else np.moveaxis(image, channel_axis, 0)[0]


def _region(inputs, image, channel_axis, progress, seconds):
    """(mask or None, automatic region or None, source)."""
    region = inputs.region
    if isinstance(region, str):
        if region == "whole" or inputs.rgb:  # a photo has no "body"
            return None, None, "whole"
        progress(0, 0, {"stage": "region"})
        start = time.perf_counter()
        mask = auto_region(_first_channel(image, channel_axis), inputs.spacing, inputs.modality)
        seconds["region"] = time.perf_counter() - start
        return mask, mask, "auto"
    return np.asarray(region) > 0, None, "layer"


def segment_call(inputs, *, mode, config, seed, device, progress, cancel):
    """Segment ``inputs`` (worker thread): stack, region, then :func:`~napari_dfcseg.engine.segment.segment`."""
    from napari_dfcseg.engine.segment import segment

    seconds = {}
    start = time.perf_counter()
    progress(0, 0, {"stage": "inputs"})
    image, channel_axis = _stack(inputs)
    mask, auto, source = _region(inputs, image, channel_axis, progress, seconds)
    _check_cancel(cancel)
    scribbles = None if inputs.scribbles is None else np.asarray(inputs.scribbles)
    progress(0, 0, {"stage": "prepare"})
    engine_start = time.perf_counter()
    result = segment(image, mode="2d" if inputs.rgb else mode, spacing=inputs.spacing,
                     channel_axis=channel_axis, mask=mask, scribbles=scribbles, config=config,
                     seed=seed, device=device, progress=progress, cancel=cancel)
    seconds["engine"] = time.perf_counter() - engine_start
    seconds["total"] = time.perf_counter() - start
    return RunOutput(result=result, region=auto, region_source=source, seconds=seconds)


def apply_model_call(model_path, inputs, *, device, progress, cancel):
    """Label ``inputs`` with a saved model (worker thread), with the same contrasts and region rule."""
    from napari_dfcseg.engine.model import apply_model, load_model

    seconds = {}
    start = time.perf_counter()
    progress(0, 0, {"stage": "model"})
    model = load_model(model_path)
    image, channel_axis = _stack(inputs)
    mask, auto, source = _region(inputs, image, channel_axis, progress, seconds)
    scribbles = None if inputs.scribbles is None else np.asarray(inputs.scribbles)
    result = apply_model(model, image, spacing=inputs.spacing, channel_axis=channel_axis,
                         mask=mask, scribbles=scribbles, device=device, progress=progress,
                         cancel=cancel)
    seconds["total"] = time.perf_counter() - start
    return RunOutput(result=result, region=auto, region_source=source, seconds=seconds)


def _plain(value):
    """JSON-able copy of ``value`` (numpy scalars and tuples become Python numbers and lists)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def run_record(output, *, image_name, mode, seed, preset, model_path=None):
    """The run's parameters and outcome, stored in the result layer's metadata under :data:`RUN_KEY`."""
    result = output.result
    config = getattr(result, "config", None)
    record = {
        "image": image_name,
        "mode": mode,
        "seed": int(seed),
        "preset": preset,
        "region": output.region_source,
        "labels": int(result.n_labels),
        "tissues_chosen": getattr(result, "n_clusters", None) or getattr(result, "chosen_k", None),
        "iterations": int(getattr(result, "n_iterations", 0)),
        "stopped_by": getattr(result, "stopped_by", ""),
        "device": getattr(result, "device", ""),
        "seconds": {k: round(float(v), 3) for k, v in output.seconds.items()},
        "config": config.to_dict() if config is not None else None,
    }
    if model_path is not None:
        record["model"] = str(model_path)
    return _plain(record)


def write_settings(path, config, *, mode, seed):
    """Write the run's settings as a JSON file the CLI reads (``dfcseg segment --config FILE``).

    Returns the written path.
    """
    from napari_dfcseg.engine import config as config_module

    path = Path(path)
    if path.suffix.lower() != ".json":
        path = path.with_name(path.name + ".json")
    save = getattr(config_module, "save_config", None)
    if save is not None:  # the settings-file format of engine/config.py (issue 17)
        try:
            save(config, path, mode=mode, seed=seed)
            return path
        except TypeError:
            save(config, path)
            return path
    payload = {"mode": mode, "seed": int(seed), "config": config.to_dict()}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_plain(payload), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
