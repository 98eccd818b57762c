"""Real-scan suite (issue 11): the engine's default against its peers on real, unmasked scans.

    python -m benchmarks.run --only real            # CT + MR + MNI 5/20 and 9/40 + demo seeds
    python -m benchmarks.run --only real --quick    # one seed, fewer K, no MNI (~20 min shared)
    python -m benchmarks.run --only real --quick --real-cases ct-abdomen-3mm,mr-breast \
        --real-parts scans,demo                      # while iterating on the engine: minutes

Parts, each one record per (case, method, seed):

- **real scans** (``../shared/data/real``): the engine as a user gets it
  (``segment(image, spacing=...)``, default preset, 2D, no mask) and the peers
  on the same raw array: scikit-learn GaussianMixture and k-means, a 3×3×3
  median then GaussianMixture, and (``bench`` extra) ANTs Atropos and dipy's
  HMRF, at a K grid and at the K the engine chose; scored by
  :func:`score_real`.
- **MNI152** at 5 %/20 % and 9 %/40 % (noise/bias), the brain mask given to
  every method: engine default 2D (3 seeds) vs GMM, k-means, median+GMM,
  Atropos, dipy at K = 3; scored many-to-one by ``metrics.evaluate``.
- **demo**: the head phantom as ``dfcseg demo`` segments it (no mask), seeds
  0–9, Dice per tissue.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from .baselines import baseline_name, run_baseline
from .common import timed
from .peers import available as available_peers, run_peer
from .real_cases import CT_MEAN_GROUPS, real_cases
from .real_metrics import best_component_dice, best_label_dice, n_labels, zero_share

#: the K grid of the peers per kind of case (plus the K the engine chose): the CT with
#: its reference, an MR with a lesion, an MR without reference (timing and label count only)
PEER_KS = {"CT": (4, 5, 6, 7, 8), "lesion": (8,), "plain": ()}
QUICK_PEER_KS = {"CT": (8,), "lesion": (), "plain": ()}
#: the sklearn baselines on the real scans: (clusterer, denoiser)
CLASSICAL = (("gmm", "none"), ("kmeans", "none"), ("gmm", "median3"))
#: scans above this many voxels get only the first engine seed (a 1.5-Mvoxel MR takes
#: minutes per run on the shared 2-core machine)
ONE_SEED_ABOVE = 1_000_000
MNI_POINTS = ((0.05, 0.2), (0.09, 0.4))
DEMO_SEEDS = tuple(range(10))


def _load():
    return round(os.getloadavg()[0], 2)


def score_real(labels, case):
    """Scores of one label volume on a :class:`~benchmarks.real_cases.RealCase`.

    ``best_label`` (per structure: Dice of the best-matching label > 0),
    ``ct_mean`` (CT: their mean over :data:`CT_MEAN_GROUPS`), ``lesion_component``
    (best connected component), ``n_labels`` (labels > 0), ``outside_zero`` (share
    of the surely-outside voxels labelled 0) and ``structures_nonzero`` (share of
    the reference structures' voxels not labelled 0: the body kept inside).
    """
    labels = np.asarray(labels)
    out = {"n_labels": n_labels(labels), "outside_zero": zero_share(labels, case.outside),
           "outside_voxels": int(case.outside.sum())}
    if case.structures:
        best = {name: best_label_dice(labels, s) for name, s in case.structures.items()}
        out["best_label"] = {name: d for name, (d, _) in best.items()}
        out["best_label_id"] = {name: lab for name, (_, lab) in best.items()}
        union = np.logical_or.reduce(list(case.structures.values()))
        out["structures_nonzero"] = 1.0 - zero_share(labels, union)
    if case.modality == "CT":
        out["ct_mean"] = float(np.mean([out["best_label"][g] for g in CT_MEAN_GROUPS]))
        out["lung_nonzero"] = 1.0 - zero_share(labels, case.structures["lung"])
    if case.lesion:
        d, lab = best_component_dice(labels, case.structures[case.lesion])
        out["lesion_component"], out["lesion_component_id"] = d, lab
    return out


def _result_facts(result):
    """Small facts of a ``SegmentationResult``: every scalar field or property it has.

    Generic on purpose: the automatic tissue count and mask add fields (chosen K,
    the criterion) that this records without knowing their names in advance.
    """
    facts = {}
    names = [f.name for f in dataclasses.fields(result)] if dataclasses.is_dataclass(result) \
        else list(vars(result))
    names += [n for n in dir(type(result)) if isinstance(getattr(type(result), n, None), property)]
    for name in dict.fromkeys(names):
        if name.startswith("_") or name in ("labels", "loss_history", "n_labels_history"):
            continue
        try:
            value = getattr(result, name)
        except Exception:  # noqa: BLE001 - a property that cannot be computed is not a fact
            continue
        if isinstance(value, (bool, int, float, str)) or value is None:
            facts[name] = value
        elif isinstance(value, np.generic):
            facts[name] = value.item()
        elif isinstance(value, np.ndarray) and value.dtype == bool:
            facts[f"{name}_share"] = float(value.mean())
        elif isinstance(value, dict) and len(value) <= 20:
            facts[name] = {str(k): (v if isinstance(v, (bool, int, float, str)) else str(v))
                           for k, v in value.items()}
    config = getattr(result, "config", None)
    if config is not None:
        facts["config_n_clusters"] = getattr(config, "n_clusters", None)
    return facts


def lesion_scribbles(case, *, n_slices=2, seed=0):
    """What a user draws on a lesion: strokes in it (class 1) and around it (class 2).

    The lesion and a ring around it (3 voxels wide in-plane, not outside the
    patient), on the ``n_slices`` slices where the lesion is largest, are given
    to :func:`benchmarks.cases.simulate_scribbles`, which draws short strokes
    along the middle of each region there.
    """
    from scipy import ndimage as ndi

    from .cases import simulate_scribbles

    lesion = case.structures[case.lesion]
    footprint = np.zeros((1, 3, 3), bool)
    footprint[0] = True
    ring = ndi.binary_dilation(lesion, structure=footprint, iterations=3) & ~lesion & ~case.outside
    truth = np.where(lesion, 1, np.where(ring, 2, 0)).astype(np.int16)
    largest = np.sort(np.argsort(lesion.sum(axis=(1, 2)))[::-1][:n_slices])
    where = np.zeros(truth.shape, bool)
    where[largest] = truth[largest] > 0
    return simulate_scribbles(truth, where, n_slices=n_slices, tissues=(1, 2), seed=seed)


def run_engine_case(image, spacing, *, seed, mask=None, scribbles=None, preset="default",
                    mode="2d", device="cpu", overrides=None):
    """``segment()`` as a user calls it; returns ``(labels, facts)`` with wall time."""
    from napari_dfcseg import segment

    from .engine_runner import engine_config

    config = engine_config(preset, **(overrides or {}))
    start = time.perf_counter()
    result = segment(image, mode=mode, spacing=spacing, mask=mask, scribbles=scribbles,
                     config=config, seed=seed, device=device)
    wall = time.perf_counter() - start
    facts = _result_facts(result)
    facts["engine_wall_s"] = wall
    return np.asarray(result.labels), facts, getattr(result, "foreground", None)


def foreground_facts(foreground, case):
    """How the engine's own automatic mask sits against the outside rule and the references."""
    if foreground is None or np.shape(foreground) != case.image.shape:
        return {}
    fg = np.asarray(foreground, bool)
    out = {"foreground_share": float(fg.mean()),
           "outside_rule_in_foreground": float(fg[case.outside].mean()) if case.outside.any()
           else float("nan")}
    if case.structures:
        union = np.logical_or.reduce(list(case.structures.values()))
        out["structures_in_foreground"] = float(fg[union].mean())
    return out


def _record(case, family, method, seed, **extra):
    return {"case": case, "family": family, "method": method, "seed": seed,
            "load_before": _load(), **extra}


def real_scan_records(cases, *, seeds=(0,), peer_ks=PEER_KS, peers=None, preset="default",
                      mode="2d", device="cpu", overrides=None, scribble_slices=2, reuse=None,
                      log=print, checkpoint=None):
    """Engine (each seed) then the peers (seed 0) on every real case; one record each.

    On a case with a lesion, the engine also runs (first seed) with
    :func:`lesion_scribbles` on ``scribble_slices`` slices (0: not).
    ``reuse``: ``{(case, method): record}`` of peers measured in an earlier run
    (their labels do not depend on the engine), copied instead of re-run, except
    GaussianMixture(8) on the CT, the time reference, which is always re-run.
    """
    reuse = reuse or {}
    peers = available_peers() if peers is None else peers
    records = []
    for case in cases:
        log(f"{case.name}: {'×'.join(map(str, case.image.shape))}, {case.modality}, "
            f"outside rule {int(case.outside.sum())} voxels")
        kind = "CT" if case.modality == "CT" else "lesion" if case.lesion else "plain"
        case_seeds = seeds if case.image.size <= ONE_SEED_ABOVE else seeds[:1]
        engine_ks = []
        method = f"DFC {preset} {mode}" + (
            " [" + ", ".join(f"{k}={v}" for k, v in overrides.items()) + "]" if overrides else "")
        for seed in case_seeds:
            record = _record(case.name, "engine", method, seed, preset=preset, mode=mode,
                             overrides=overrides or {})
            with timed(record):
                labels, facts, foreground = run_engine_case(
                    case.image, case.spacing, seed=seed, preset=preset, mode=mode,
                    device=device, overrides=overrides)
            record["facts"] = {**facts, **foreground_facts(foreground, case)}
            record.update(score_real(labels, case))
            record["k"] = record["n_labels"]
            engine_ks.append(record["n_labels"])
            log(_line(record))
            records.append(record)
            if checkpoint:
                checkpoint(records)
        if case.lesion and scribble_slices:
            scribbles = lesion_scribbles(case, n_slices=scribble_slices, seed=seeds[0])
            drawn = np.unique(np.nonzero(scribbles)[0]).size
            record = _record(case.name, "engine-scribbles", f"{method} +scribbles({drawn} sl)",
                             seeds[0], preset=preset, mode=mode, overrides=overrides or {},
                             scribbled_voxels=int(np.count_nonzero(scribbles)),
                             scribbled_slices=drawn)
            with timed(record):
                labels, facts, _ = run_engine_case(case.image, case.spacing, seed=seeds[0],
                                                   scribbles=scribbles, preset=preset,
                                                   mode=mode, device=device,
                                                   overrides=overrides)
            record["facts"] = facts
            record.update(score_real(labels, case))
            record["k"] = record["n_labels"]
            log(_line(record))
            records.append(record)
        ks = sorted(set(peer_ks.get(kind, ())) | set(engine_ks))
        # without a reference, the peers only give the time and label-count scale
        everyone = [("gmm", "none")] if kind == "plain" else \
            [(c, d) for c, d in CLASSICAL] + [(p, None) for p in peers]
        for k in ks:
            for clusterer, denoiser in everyone:
                if denoiser is None:
                    name, family = f"{clusterer} K={k}", "peer"
                else:
                    name, family = baseline_name(clusterer, denoiser, k), "baseline"
                if (case.name, name) in reuse and (case.modality, name) != ("CT", "gmm K=8"):
                    records.append({**reuse[case.name, name], "at_engine_k": k in engine_ks,
                                    "reused": True})
                    continue
                record = _record(case.name, family, name, 0, k=k,
                                 at_engine_k=k in engine_ks)
                with timed(record):
                    if denoiser is None:
                        labels = run_peer(clusterer, case.image, k, spacing=case.spacing)
                    else:
                        labels = run_baseline(case.image, np.ones(case.image.shape, bool),
                                              clusterer=clusterer, denoiser=denoiser,
                                              n_classes=k)
                record.update(score_real(labels, case))
                log(_line(record))
                records.append(record)
        if checkpoint:
            checkpoint(records)
    return records


def _line(r):
    parts = [f"  {r['case']:<22} {r['method']:<26} seed {r['seed']}  labels {r['n_labels']:>2}"]
    if "ct_mean" in r:
        parts.append(f"CT mean {r['ct_mean']:.3f} (" + " ".join(
            f"{g} {r['best_label'][g]:.2f}" for g in r["best_label"]) + ")")
    if "lesion_component" in r:
        name = next(iter(r["best_label"]))
        parts.append(f"{name} label {r['best_label'][name]:.3f} comp {r['lesion_component']:.3f}")
    parts.append(f"outside→0 {r['outside_zero']:.3f}  {r['wall_s']:.1f}s")
    return "  ".join(parts)


def mni_records(*, seeds=(0, 1, 2), points=MNI_POINTS, peers=None, preset="default",
                mode="2d", device="cpu", overrides=None, crop=None, reuse=None, log=print,
                checkpoint=None):
    """MNI152 degraded, brain mask given: engine (seeds) and peers at K = 3; one record each.

    ``reuse``: as for :func:`real_scan_records` (no exception here).
    """
    reuse = reuse or {}
    from .cases import mni_case
    from .quality import score

    peers = available_peers() if peers is None else peers
    records = []
    for noise, bias in points:
        case = mni_case(noise, bias, crop=crop)
        log(f"{case.name} (mask given)")
        for seed in seeds:
            record = _record(case.name, "engine", f"DFC {preset} {mode}", seed, k=3,
                             noise=noise, bias=bias)
            with timed(record):
                labels, facts, _ = run_engine_case(case.image, case.spacing, seed=seed,
                                                   mask=case.mask, preset=preset, mode=mode,
                                                   device=device, overrides=overrides)
            record["facts"] = facts
            record.update(score(labels, case))
            log(_mni_line(record))
            records.append(record)
            if checkpoint:
                checkpoint(records)
        methods = [(c, d) for c, d in CLASSICAL] + [(p, None) for p in peers]
        for clusterer, denoiser in methods:
            if denoiser is None:
                name, family = f"{clusterer} K=3", "peer"
            else:
                name, family = baseline_name(clusterer, denoiser, 3), "baseline"
            if (case.name, name) in reuse:
                records.append({**reuse[case.name, name], "reused": True})
                continue
            record = _record(case.name, family, name, 0, k=3, noise=noise, bias=bias)
            with timed(record):
                if denoiser is None:
                    labels = run_peer(clusterer, case.image, 3, mask=case.mask,
                                      spacing=case.spacing)
                else:
                    labels = run_baseline(case.image, case.mask, clusterer=clusterer,
                                          denoiser=denoiser, n_classes=3)
            record.update(score(labels, case))
            log(_mni_line(record))
            records.append(record)
    return records


def _mni_line(r):
    d = r["dice_many_to_one"]
    return (f"  {r['case']:<12} {r['method']:<22} seed {r['seed']}  CSF/GM/WM "
            + "/".join(f"{d[k]:.3f}" for k in sorted(d)) + f"  {r['wall_s']:.1f}s")


def demo_records(*, seeds=DEMO_SEEDS, device="cpu", log=print):
    """``dfcseg demo`` as a user runs it (its own defaults), one run per seed.

    Calls the CLI's handler in-process and reads the Dice it prints, so the
    numbers are the ones the user sees.
    """
    import re
    import tempfile

    from napari_dfcseg.cli import main as cli_main

    records = []
    for seed in seeds:
        record = _record("demo phantom", "engine", "dfcseg demo", seed)
        with tempfile.TemporaryDirectory() as tmp, timed(record):
            import contextlib
            import io

            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                rc = cli_main(["demo", str(os.path.join(tmp, "out")), "--seed", str(seed),
                               "--device", device])
        text = buffer.getvalue()
        record["rc"] = rc
        line = next((ln for ln in text.splitlines() if "Dice" in ln), "")
        record["printed"] = line.strip()
        record["summary"] = [ln.strip() for ln in text.splitlines()
                             if ln.strip() and not ln.startswith((" ", "wrote", "view"))][:5]
        # "Dice vs ground truth (...): CSF 0.95, grey matter 0.96; mean 0.95[; worst ...]"
        per_tissue = line.split(":", 1)[-1].split(";")[0]
        scores = re.findall(r"([A-Za-z][\w ]*?) (\d\.\d+)", per_tissue)
        record["dice"] = {k.strip(): float(v) for k, v in scores}
        labels = re.search(r"(\d+) labels", text)
        record["n_labels"] = int(labels.group(1)) if labels else None
        log(f"  demo seed {seed}: {record['printed']}  {record['wall_s']:.1f}s")
        records.append(record)
    return records


def run_real(*, quick=False, seeds=None, device="cpu", parts=("scans", "mni", "demo"),
             cases=None, preset="default", mode="2d", overrides=None, reuse_peers=None,
             log=print, checkpoint=None):
    """The whole real-scan suite; returns ``{"settings": ..., "records": [...]}``.

    ``quick``: one engine seed, the peers at the engine's K only (and GMM(8) on
    the CT), no Atropos/dipy, no MNI, demo seed 0. ``cases``: names of the real
    scans to run (default all). ``reuse_peers``: a results payload (e.g.
    ``real-before.json``) whose peer records are copied rather than re-run.
    """
    seeds = tuple(seeds) if seeds else ((0,) if quick else (0, 1, 2))
    peers = () if quick else available_peers()
    settings = {"quick": quick, "seeds": list(seeds), "parts": list(parts), "preset": preset,
                "mode": mode, "device": device, "overrides": overrides or {},
                "peers_available": list(peers),
                "peer_ks": {m: list(k) for m, k in (QUICK_PEER_KS if quick else PEER_KS).items()},
                "one_seed_above_voxels": ONE_SEED_ABOVE, "load_start": _load()}
    reuse = {(r["case"], r["method"]): r for r in (reuse_peers or {}).get("records", [])
             if r["family"] in ("peer", "baseline")}
    settings["peers_reused_from"] = (reuse_peers or {}).get("command")
    records = []

    def save(so_far):
        if checkpoint:
            checkpoint(settings, records + so_far)

    if "scans" in parts:
        records += real_scan_records(real_cases(names=cases), seeds=seeds,
                                     peer_ks=QUICK_PEER_KS if quick else PEER_KS, peers=peers,
                                     preset=preset, mode=mode, device=device,
                                     overrides=overrides, reuse=reuse, log=log,
                                     checkpoint=save)
    if "mni" in parts and not quick:
        records += mni_records(seeds=seeds, peers=peers, preset=preset, mode=mode, device=device,
                               overrides=overrides, reuse=reuse, log=log, checkpoint=save)
    if "demo" in parts:
        records += demo_records(seeds=(0,) if quick else DEMO_SEEDS, device=device, log=log)
    settings["load_end"] = _load()
    return {"settings": settings, "records": records}
