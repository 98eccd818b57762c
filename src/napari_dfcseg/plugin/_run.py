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

__all__ = ["RunInputs", "RunOutput", "segment_call", "apply_model_call", "recorded_call",
           "auto_region", "run_record", "write_settings", "RUN_KEY", "STAGE_TEXT"]

#: layer-metadata key of the run record (parameters, seed, tissues chosen, timings)
RUN_KEY = "dfcseg_run"

#: what the status line says while a stage runs (before the first iteration)
STAGE_TEXT = {
    "inputs": "Reading the image…",
    "region": "Finding the body outline…",
    "prepare": "Preparing: normalising intensities, fitting the intensity classes…",
    "model": "Loading the model…",
    "region_found": "Body outline found (layer '… body'); preparing…",
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
    names: dict = field(default_factory=dict)  # layer names for messages: image, region, scribbles


@dataclass
class RunOutput:
    """What a run hands back to the GUI thread."""

    result: object
    region: np.ndarray | None  # the automatic region (bool), when one was computed
    region_source: str  # "auto", "layer" or "whole"
    seconds: dict  # wall seconds per stage
    n_labels: int = 0  # distinct labels > 0 (counted on the worker thread)
    record: dict = field(default_factory=dict)  # :func:`run_record`, for the layer's metadata


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
    """PLACEHOLDER body mask until issue 11's engine/foreground.py is on main.

    Otsu threshold of the smoothed image, closing, the largest component,
    holes filled in every slice and then in 3D (skull and CSF are dark but
    inside the head).
    """
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    a = np.asarray(image, dtype=np.float32)
    if float(a.max()) <= float(a.min()):
        return np.ones(a.shape, bool)
    smooth = ndimage.median_filter(a, size=3)
    body = smooth > threshold_otsu(smooth)
    body = ndimage.binary_closing(body, iterations=2)
    labelled, n = ndimage.label(body)
    if n == 0:
        return np.ones(a.shape, bool)
    sizes = np.bincount(labelled.ravel())[1:]
    body = labelled == (1 + int(np.argmax(sizes)))
    if body.ndim == 3:
        body = np.stack([ndimage.binary_fill_holes(s) for s in body])
    return ndimage.binary_fill_holes(body)


def warm_up():
    """First-use costs paid on a worker thread when the widget opens, not during a run.

    The first colormap napari builds costs 0.3-2 s (lazy imports, colour
    parsing), pandas' import ~0.9 s (the first Labels layer's features), torch's
    a few seconds (the first run).
    """
    import pandas  # noqa: F401

    from ._layers import labels_colormap, region_colormap

    labels_colormap()
    region_colormap()
    import torch  # noqa: F401

    import napari_dfcseg.engine.pipeline  # noqa: F401


def _assemble(inputs):
    """The engine's inputs (:func:`~napari_dfcseg.engine.inputs.assemble_inputs`: the one rule)."""
    from napari_dfcseg.engine.inputs import assemble_inputs

    names = inputs.names
    return assemble_inputs(
        inputs.image,
        channel_axis=-1 if inputs.rgb else None,
        channels=[data for _, data in inputs.channels] or None,
        scribbles=inputs.scribbles,
        spacing=inputs.spacing,
        names={"image": f"image {names.get('image')!r}",
               "scribbles": f"scribbles layer {names.get('scribbles')!r}",
               "channels": [f"contrast {name!r}" for name, _ in inputs.channels]},
    )


def _with_region(inputs, engine_inputs, progress, seconds):
    """(engine inputs with the region as mask, automatic region or None, source)."""
    region = inputs.region
    if not isinstance(region, str):
        masked = engine_inputs.with_mask(np.asarray(region) > 0,
                                         name=f"region layer {inputs.names.get('region')!r}")
        return masked, None, "layer"
    if region == "whole" or inputs.rgb:  # a photo has no "body"
        # an explicit all-voxels mask: the engine's own automatic mask stays off
        return engine_inputs.with_mask(np.ones(engine_inputs.shape, bool)), None, "whole"
    progress(0, 0, {"stage": "region"})
    start = time.perf_counter()
    mask = auto_region(engine_inputs.image[..., 0], engine_inputs.spacing, inputs.modality)
    seconds["region"] = time.perf_counter() - start
    shown = engine_inputs.restore_shape(mask)
    progress(0, 0, {"stage": "region_found", "region": shown})  # the GUI shows it at once
    return engine_inputs.with_mask(mask), shown, "auto"


def segment_call(inputs, *, mode, config, seed, device, progress, cancel):
    """Segment ``inputs`` (worker thread): assemble, region, then :func:`~napari_dfcseg.engine.pipeline.segment`."""
    from napari_dfcseg.engine.pipeline import segment
    from napari_dfcseg.engine.result import check_cancel

    seconds = {}
    start = time.perf_counter()
    progress(0, 0, {"stage": "inputs"})
    engine_inputs = _assemble(inputs)
    engine_inputs, auto, source = _with_region(inputs, engine_inputs, progress, seconds)
    check_cancel(cancel)
    progress(0, 0, {"stage": "prepare"})
    engine_start = time.perf_counter()
    result = segment(engine_inputs, mode="2d" if inputs.rgb else mode, config=config, seed=seed,
                     device=device, progress=progress, cancel=cancel)
    seconds["engine"] = time.perf_counter() - engine_start
    seconds["total"] = time.perf_counter() - start
    return RunOutput(result=result, region=auto, region_source=source, seconds=seconds)


def apply_model_call(model_path, inputs, *, device, progress, cancel):
    """Label ``inputs`` with a saved model (worker thread), with the same contrasts and region rule."""
    from napari_dfcseg.engine.model import load_model
    from napari_dfcseg.engine.pipeline import apply_model

    seconds = {}
    start = time.perf_counter()
    progress(0, 0, {"stage": "model"})
    model = load_model(model_path)
    engine_inputs = _assemble(inputs)
    engine_inputs, auto, source = _with_region(inputs, engine_inputs, progress, seconds)
    result = apply_model(model, engine_inputs, device=device, progress=progress, cancel=cancel)
    seconds["total"] = time.perf_counter() - start
    return RunOutput(result=result, region=auto, region_source=source, seconds=seconds)


def recorded_call(call, *, progress, cancel, **record):
    """Run ``call`` and count its labels and build its :func:`run_record` on the worker thread.

    Both walk the whole label volume or the config: done here, the GUI
    thread only puts the finished values into the layer.
    """
    output = call(progress=progress, cancel=cancel)
    output.n_labels = int(output.result.n_labels)
    output.record = run_record(output, **record)
    return output


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
        "tissues_chosen": getattr(result, "n_tissues", None),
        "tissue_count_reason": getattr(result, "tissue_count_reason", ""),
        "iterations": int(getattr(result, "n_iterations", 0)),
        "stopped_by": getattr(result, "stopped_by", ""),
        "device": getattr(result, "device", ""),
        "seconds": {k: round(float(v), 3) for k, v in output.seconds.items()},
        "config": config.to_dict() if config is not None else None,
    }
    if model_path is not None:
        record["model"] = str(model_path)
    return _plain(record)


def write_settings(path, config):
    """Write the run's settings file (``dfcseg segment --config FILE`` reads it); returns the path.

    The format is :func:`~napari_dfcseg.engine.parameters.save_config`'s; a
    user who picked the file name in a save dialog has agreed to replace it.
    """
    from napari_dfcseg.engine.parameters import save_config

    path = Path(path)
    if path.suffix.lower() != ".json":
        path = path.with_name(path.name + ".json")
    return save_config(config, path, overwrite=True)
