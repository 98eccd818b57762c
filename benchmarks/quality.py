"""Segmentation quality: baselines and the engine on degraded MNI152 and head phantoms.

Every method gets the same normalised image and mask (:class:`benchmarks.cases.Case`)
and is scored by :func:`napari_dfcseg.metrics.evaluate` inside that mask.
"""

from __future__ import annotations

import itertools

from napari_dfcseg.metrics import evaluate

from .baselines import CLUSTERERS, DENOISERS, baseline_name, run_baseline
from .cases import (MNI_BIAS, MNI_NOISE, MNI_REFERENCE, PHANTOMS, QUICK_PHANTOMS, mni_case,
                    phantom_case, simulate_scribbles)
from .common import timed

PRESETS = ("default", "fast", "paper")
MODES = ("2d", "3d")


def score(labels, case):
    """Metrics of ``labels`` on ``case`` with tissue keys as strings (JSON-friendly)."""
    m = evaluate(labels, case.truth, case.mask)
    return {
        "dice_many_to_one": {str(k): v for k, v in m["dice_many_to_one"].items()},
        "dice_one_to_one": {str(k): v for k, v in m["dice_one_to_one"].items()},
        "ari": m["ari"],
        "n_clusters": m["n_clusters"],
    }


def baseline_records(case, *, clusterers=CLUSTERERS, denoisers=DENOISERS, ks=(3, 4), seed=0,
                     log=print):
    """Run every (clusterer, denoiser, K) on ``case``; one record each."""
    records = []
    for denoiser, clusterer, k in itertools.product(denoisers, clusterers, ks):
        record = {"case": case.name, "noise": case.noise, "bias": case.bias,
                  "family": "baseline", "method": baseline_name(clusterer, denoiser, k),
                  "clusterer": clusterer, "denoiser": denoiser, "k": k, "seed": seed}
        with timed(record):
            labels = run_baseline(case.image, case.mask, clusterer=clusterer, denoiser=denoiser,
                                  n_classes=k, seed=seed)
        record.update(score(labels, case))
        log(_line(record))
        records.append(record)
    return records


def engine_records(case, *, presets=PRESETS, modes=MODES, seeds=(0, 1, 2), scribble_slices=(),
                   scribble_preset="default", max_iter=None, quick=False, device="cpu", log=print,
                   checkpoint=None, overrides=None):
    """Run the engine for each preset × mode × seed, then with scribbles; one record each.

    ``scribble_slices``: numbers of scribbled slices (e.g. ``(1, 3)``) for the
    scribble runs, which use ``scribble_preset`` in both modes. ``checkpoint``
    is called with the records so far after each run (long runs save as they go).
    ``overrides``: ``DFCConfig`` fields changed in every run (the method name says so).
    """
    from .engine_runner import engine_config, run_engine

    runs = [(p, m, s, 0) for p, m, s in itertools.product(presets, modes, seeds)]
    runs += [(scribble_preset, m, s, n)
             for n, m, s in itertools.product(scribble_slices, modes, seeds)]
    records = []
    for preset, mode, seed, n_slices in runs:
        scribbles = (simulate_scribbles(case.truth, case.mask, n_slices=n_slices, seed=seed)
                     if n_slices else None)
        method = f"DFC {preset} {mode}" + (f" +scribbles({n_slices} sl)" if n_slices else "")
        if overrides:
            method += " [" + ", ".join(f"{k}={v}" for k, v in overrides.items()) + "]"
        record = {"case": case.name, "noise": case.noise, "bias": case.bias, "family": "engine",
                  "method": method, "preset": preset, "mode": mode, "seed": seed,
                  "scribble_slices": n_slices, "max_iter_cap": max_iter, "quick": quick,
                  "device": device, "overrides": overrides or {}}
        config = engine_config(preset, max_iter=max_iter, quick=quick, **(overrides or {}))
        with timed(record):
            labels, info = run_engine(case.image, mode=mode, spacing=case.spacing, mask=case.mask,
                                      scribbles=scribbles, config=config, seed=seed,
                                      device=device)
        info.pop("iteration_times_s")
        record.update(info)
        record.update(score(labels, case))
        log(_line(record))
        records.append(record)
        if checkpoint is not None:
            checkpoint(records)
    return records


def _line(r):
    d = r["dice_many_to_one"]
    return (f"  {r['case']:<22} {r['method']:<34} seed {r['seed']}  Dice m2o "
            + " ".join(f"{d[k]:.3f}" for k in sorted(d)) + f"  ARI {r['ari']:.3f}"
            + f"  {r['wall_s']:.1f}s  +{r['peak_rss_increase_mib']:.0f} MiB")


def run_quality(*, quick=False, device="cpu", engine=True, seeds=(0, 1, 2), presets=PRESETS,
                modes=MODES, scribble_slices=(1, 3), grid=True, phantoms=True, reference=True,
                log=print, checkpoint=None, overrides=None):
    """The quality suite; returns ``{"records": [...], "settings": {...}}``.

    Full: every baseline and every engine variant (``presets`` × ``modes`` ×
    ``seeds``, then the default preset with ``scribble_slices``) at MNI 5 % /
    20 %; the baselines (K = 3) over the MNI noise × bias grid; baselines and
    the default preset on the head phantoms. Quick: a 12-slice MNI slab, one
    small phantom, 2 seeds, at most 3 engine iterations on tiny batches.
    ``checkpoint(settings, records)`` is called after every engine run.
    """
    max_iter = 3 if quick else None
    if quick:
        seeds = seeds[:2]
    crop = 12 if quick else None
    settings = {"quick": quick, "seeds": list(seeds), "max_iter_cap": max_iter, "mni_crop": crop,
                "baseline_seed": 0, "device": device, "presets": list(presets),
                "modes": list(modes), "scribble_slices": list(scribble_slices),
                "overrides": overrides or {}}
    records = []

    def save(engine_so_far):
        if checkpoint is not None:
            checkpoint(settings, records + engine_so_far)

    if reference:
        noise, bias = MNI_REFERENCE
        log(f"MNI reference point: noise {noise:.0%}, bias {bias:.0%}")
        case = mni_case(noise, bias, crop=crop)
        records += baseline_records(case, log=log)
        if engine:
            records += engine_records(case, presets=presets, modes=modes, seeds=seeds,
                                      scribble_slices=scribble_slices, max_iter=max_iter,
                                      quick=quick, device=device, log=log, checkpoint=save,
                                      overrides=overrides)
        del case

    if grid:
        points = [(n, b) for n in MNI_NOISE for b in MNI_BIAS if (n, b) != MNI_REFERENCE]
        if quick:
            points = points[:2]
        log("MNI degradation grid (baselines, K = 3)")
        for n, b in points:
            records += baseline_records(mni_case(n, b, crop=crop), ks=(3,), log=log)

    if phantoms:
        log("head phantoms")
        for spec in QUICK_PHANTOMS if quick else PHANTOMS:
            case = phantom_case(*spec)
            records += baseline_records(case, log=log)
            if engine and "default" in presets:
                records += engine_records(case, presets=("default",), modes=modes, seeds=seeds,
                                          max_iter=max_iter, quick=quick, device=device, log=log,
                                          checkpoint=save, overrides=overrides)
    return {"settings": settings, "records": records}
