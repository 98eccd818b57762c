"""One call of the napari-dfcseg engine, timed, with the options the benchmarks vary."""

from __future__ import annotations

import dataclasses
import time

import numpy as np


#: quick mode: tiny mini-batches so that the harness is exercised in seconds (numbers meaningless)
QUICK_OVERRIDES = {"batch_slices": 2, "crop_size": 64, "patch_size": (8, 32, 32),
                   "batch_patches": 1, "eval_slices": 4, "eval_every": 1}


def engine_config(preset, *, max_iter=None, quick=False, **overrides):
    """``DFCConfig.preset(preset)`` with ``max_iter`` capped and other overrides.

    ``quick=True`` adds :data:`QUICK_OVERRIDES` (tiny batches) for smoke runs.
    """
    from napari_dfcseg import DFCConfig

    config = DFCConfig.preset(preset)
    if quick:
        overrides = {**QUICK_OVERRIDES, **overrides}
    if max_iter is not None:
        overrides["max_iter"] = min(config.max_iter, max_iter)
        overrides["min_iter"] = min(config.min_iter, overrides["max_iter"])
    return dataclasses.replace(config, **overrides) if overrides else config


def run_engine(image, *, mode, spacing, mask=None, scribbles=None, config="default", seed=0,
               device="cpu", channel_axis=None, progress=None):
    """Run :func:`napari_dfcseg.segment` and time it.

    ``progress`` (optional) is called with the engine's progress arguments
    after the time stamp of each call is taken.

    Returns
    -------
    labels : ndarray
    info : dict
        ``wall_s``, ``n_iterations``, ``n_labels_final`` (labels inside the mask)
        and ``iteration_times_s`` (from the progress callback, when it is called
        once per iteration).
    """
    from napari_dfcseg import segment

    stamps = []

    def stamp(i, n, info=None):
        # called once per training iteration (and by later stages, which are not timed here)
        if info is None or info.get("stage", "train") == "train":
            stamps.append(time.perf_counter())
        if progress is not None:
            progress(i, n, info)

    kwargs = dict(mode=mode, spacing=spacing, mask=mask, scribbles=scribbles, config=config,
                  seed=seed, device=device, progress=stamp)
    if channel_axis is not None:
        kwargs["channel_axis"] = channel_axis
    start = time.perf_counter()
    result = segment(image, **kwargs)
    wall = time.perf_counter() - start
    labels = np.asarray(result.labels)
    inside = labels[mask] if mask is not None else labels
    info = {
        "wall_s": wall,
        "n_iterations": int(result.n_iterations),
        "n_labels_final": int(np.unique(inside).size),
        "train_progress_calls": len(stamps),
        "iteration_times_s": np.diff(stamps).tolist() if len(stamps) > 1 else [],
    }
    return labels, info
