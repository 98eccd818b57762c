"""Public abdominal CT: where each tissue group goes, and the CT anchor's flat share (issue 11).

For the default preset (seed 0 unless ``--seeds``): the best-label Dice per
tissue group (as ``ct_abdomen.py``); with ``--composition``, every output
label's HU (5th / 50th / 95th percentile) and the groups it holds, and for
each group the labels it is spread over (is the lung split over two labels,
or sharing one with bowel gas?). ``--flat-shares 0.3,0.5,1.0`` reruns with
the CT anchor's body components fitted to that share of the flattest body
voxels (``prior._CT_FLAT_SHARE``; 1.0: every body voxel).

    PYTHONPATH=src python benchmarks/experiments/ct_anchor.py --composition
    PYTHONPATH=src python benchmarks/experiments/ct_anchor.py --flat-shares 0.3,0.4,0.5,0.6,0.7,1.0
    PYTHONPATH=src python benchmarks/experiments/ct_anchor.py --override '{"n_clusters": 9, "mixture_components": 9}'
    PYTHONPATH=src python benchmarks/experiments/ct_anchor.py --oracle

``--oracle``: no segmentation; for each group the best Dice of any single HU interval
(10 HU steps) inside the automatic mask, on the raw HU and after a 3- and 5-voxel
median: what any one label of a per-voxel intensity rule could reach.
"""
import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ct_abdomen import GROUPS, read_ct_case, scored_run  # noqa: E402

SHOWN = {**GROUPS, "vessels": [52] + list(range(62, 69))}


def composition(labels, ref, ct):
    for lab in np.unique(labels):
        p = labels == lab
        share = {g: np.isin(ref[p], ids).mean() for g, ids in SHOWN.items()}
        share["unlabelled"] = (ref[p] == 0).mean()
        print(f"  label {lab:2d}: {p.sum():6d} voxels, HU {np.percentile(ct[p], [5, 50, 95]).round()} "
              + " ".join(f"{g} {v:.2f}" for g, v in share.items() if v > 0.02))
    for g, ids in SHOWN.items():
        t = np.isin(ref, ids)
        c = np.bincount(labels[t], minlength=labels.max() + 1) / t.sum()
        print(f"  {g} HU {np.percentile(ct[t], [5, 25, 50, 75, 95]).round()} in labels "
              + " ".join(f"{i}: {v:.2f}" for i, v in enumerate(c) if v > 0.03))


def oracle(ct, ref, mask):
    """Per group: (best Dice of one HU interval, low, high) over 10-HU steps inside ``mask``."""
    edges = np.arange(-1050, 1300, 10)
    v, r = ct[mask], ref[mask]
    every = np.concatenate([[0], np.cumsum(np.histogram(v, bins=edges)[0])])
    out = {}
    for g, ids in GROUPS.items():
        t = np.isin(r, ids)
        hit = np.concatenate([[0], np.cumsum(np.histogram(v[t], bins=edges)[0])])
        best = (0.0, 0, 0)
        for i in range(len(edges) - 1):
            dice = 2 * (hit[i + 1:] - hit[i]) / (every[i + 1:] - every[i] + t.sum())
            j = int(dice.argmax())
            if dice[j] > best[0]:
                best = (float(dice[j]), int(edges[i]), int(edges[i + 1 + j]))
        out[g] = best
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--override", default="{}", help="JSON dict of DFCConfig fields")
    parser.add_argument("--flat-shares", default="", help="comma-separated shares (default: as built)")
    parser.add_argument("--composition", action="store_true")
    parser.add_argument("--oracle", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from napari_dfcseg.engine import prior
    from napari_dfcseg.engine.config import PRESETS

    vol, ct, ref = read_ct_case()
    if args.oracle:
        import SimpleITK as sitk
        from napari_dfcseg.engine.foreground import auto_foreground

        mask = auto_foreground(ct, vol.spacing)
        for name, r in (("raw HU", 0), ("median 3", 1), ("median 5", 2)):
            img = ct if not r else sitk.GetArrayFromImage(
                sitk.Median(sitk.GetImageFromArray(ct), [r] * 3))
            o = oracle(img, ref, mask)
            print(f"{name:9s} " + " ".join(f"{g} {d:.2f} [{a}, {b}]" for g, (d, a, b) in o.items())
                  + f" | mean {np.mean([d for d, _, _ in o.values()]):.3f}")
        return
    config = dataclasses.replace(PRESETS["default"], **json.loads(args.override))
    shares = [float(s) for s in args.flat_shares.split(",")] if args.flat_shares else [None]
    for share in shares:
        if share is not None:
            prior._CT_FLAT_SHARE = share
        for seed in [int(s) for s in args.seeds.split(",")]:
            r, line, seconds = scored_run(ct, vol.spacing, ref, config, seed)
            print(f"flat share {prior._CT_FLAT_SHARE} {line} | {seconds:.0f} s"
                  f"\n  why: {r.tissue_count_reason}", flush=True)
            if args.composition:
                composition(r.labels, ref, ct)


if __name__ == "__main__":
    main()
