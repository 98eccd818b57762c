"""Public abdominal CT (no mask): best-label Dice per tissue group vs TotalSegmentator (issue 11).

For each tissue group of ../shared/data/real/README.md, the single label with the
best Dice; mean over lung/bone/liver/kidney/spleen/muscle; the share of outside air
(HU < -900 outside the body reference) labelled 0; and, in the same run, the classical
baselines GaussianMixture / KMeans on raw HU and GMM after a 3x3x3 median, K = 4..8.

    PYTHONPATH=src python benchmarks/experiments/ct_abdomen.py [preset ...]
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi

from napari_dfcseg import segment
from napari_dfcseg.io import read_volume

torch.set_num_threads(1)
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "ct-abdomen-3mm"
GROUPS = {
    "lung": [10, 11, 12, 13, 14, 16],
    "bone": list(range(25, 51)) + list(range(69, 79)) + [91] + list(range(92, 118)),
    "liver": [5], "kidney": [2, 3], "spleen": [1], "muscle": list(range(80, 90)),
}


def read_ct_case():
    """The public CT: its Volume, the HU as float32 and the TotalSegmentator reference."""
    vol = read_volume(DATA / "ct.nii.gz")
    ref = np.asarray(read_volume(DATA / "reference_totalsegmentator.nii.gz").array)
    return vol, np.asarray(vol.array).astype(np.float32), ref


def best_label_dice(labels, ref):
    out = {}
    for g, ids in GROUPS.items():
        t = np.isin(ref, ids)
        best = 0.0
        for lab in np.unique(labels):
            if lab == 0:
                continue
            p = labels == lab
            best = max(best, 2 * (p & t).sum() / (p.sum() + t.sum()))
        out[g] = best
    return out


def scored_run(ct, spacing, ref, config, seed):
    """One ``segment`` of the public CT: (result, its best-label Dice line with the mean, seconds)."""
    from napari_dfcseg import segment

    t = time.perf_counter()
    r = segment(ct, spacing=spacing, config=config, seed=seed)
    d = best_label_dice(r.labels, ref)
    line = (f"seed {seed} K={r.n_tissues} " + " ".join(f"{g} {v:.3f}" for g, v in d.items())
            + f" | mean {np.mean(list(d.values())):.3f}")
    return r, line, time.perf_counter() - t


def report(name, labels, ref, ct, seconds):
    d = best_label_dice(labels, ref)
    air = (ct < -900) & ~ndi.binary_fill_holes(ct > -500)
    zero = (labels[air] == 0).mean()
    print(f"{name:22s} " + " ".join(f"{g} {v:.2f}" for g, v in d.items())
          + f" | mean {np.mean(list(d.values())):.3f} | labels {len(np.unique(labels[labels > 0]))}"
          + f" | air->0 {zero:.2f} | {seconds:.1f}s", flush=True)


def main():
    vol, ct, ref = read_ct_case()
    from sklearn.cluster import KMeans
    from sklearn.mixture import GaussianMixture

    x = ct.reshape(-1, 1)
    med = ndi.median_filter(ct, 3).reshape(-1, 1)
    for k in range(4, 9):
        t = time.perf_counter()
        lab = GaussianMixture(k, random_state=0).fit_predict(x).reshape(ct.shape) + 1
        report(f"GMM({k}) raw HU", lab, ref, ct, time.perf_counter() - t)
        t = time.perf_counter()
        lab = KMeans(k, n_init=3, random_state=0).fit_predict(x).reshape(ct.shape) + 1
        report(f"KMeans({k}) raw HU", lab, ref, ct, time.perf_counter() - t)
        t = time.perf_counter()
        lab = GaussianMixture(k, random_state=0).fit_predict(med).reshape(ct.shape) + 1
        report(f"median3+GMM({k})", lab, ref, ct, time.perf_counter() - t)
    for preset in sys.argv[1:] or ["default"]:
        for seed in (0, 1, 2):
            t = time.perf_counter()
            r = segment(ct, spacing=vol.spacing, config=preset, seed=seed)
            report(f"dfcseg {preset} s{seed} K={r.n_tissues}", r.labels, ref, ct,
                   time.perf_counter() - t)


if __name__ == "__main__":
    main()
