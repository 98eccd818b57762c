"""Scribbles authoritative (issue 11): phantoms and the real MR lesions with strokes.

    PYTHONPATH=src python benchmarks/experiments/scribble_checks.py [phantom] [real] [--seeds 0,1]

- phantom: the demo phantom (``head_phantom()``) with strokes on CSF, GM and WM on one
  slice (Dice of each stroked class), and the same phantom with a small lesion (12 %
  brighter than white matter) stroked with a ring around it on its 2 middle slices
  (best connected component);
- real: ``mr-brain-tumour`` and ``mr-breast`` with the benchmark's strokes on the 2
  slices where the lesion is largest (``benchmarks.real.lesion_scribbles``).

Every line also gives the share of stroked voxels that end with their class.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
torch.set_num_threads(1)

from napari_dfcseg import segment  # noqa: E402
from napari_dfcseg.datasets import head_phantom  # noqa: E402


def dice(a, b):
    return 2 * (a & b).sum() / max(1, a.sum() + b.sum())


def best_component(labels, truth):
    best = 0.0
    for k in np.unique(labels[truth]):
        if k:
            comp, _ = ndi.label(labels == k)
            for c in np.unique(comp[truth]):
                if c:
                    best = max(best, dice(comp == c, truth))
    return best


def kept(labels, scribbles):
    return np.mean(labels[scribbles > 0] == scribbles[scribbles > 0])


def tail(t):
    return f"{time.perf_counter() - t:.0f}s, load {os.getloadavg()[0]:.1f}"


def phantom(seed):
    from benchmarks.cases import simulate_scribbles

    p = head_phantom(seed=seed)
    scr = simulate_scribbles(p.truth, p.truth > 0, n_slices=1, tissues=(1, 2, 3), seed=seed)
    t = time.perf_counter()
    r = segment(p.image, spacing=p.spacing, scribbles=scr, seed=seed)
    d = " ".join(f"{n} {dice(r.labels == c, p.truth == c):.3f}" for c, n in ((1, "CSF"), (2, "GM"), (3, "WM")))
    print(f"demo phantom, strokes on 1 slice, s{seed}: {d} | kept {kept(r.labels, scr):.3f} | {tail(t)}",
          flush=True)
    zz, yy, xx = np.indices(p.image.shape)
    c = np.array(p.image.shape) // 2 + [0, -18, 14]
    lesion = ((((zz - c[0]) * p.spacing[0] / 5.5) ** 2 + ((yy - c[1]) / 6.0) ** 2
               + ((xx - c[2]) / 6.0) ** 2 <= 1) & (p.truth == 3))
    image = np.where(lesion, p.image * 1.12, p.image).astype(np.float32)
    scr = np.zeros(p.image.shape, np.int16)
    zs = np.flatnonzero(lesion.any((1, 2)))
    for z in zs[len(zs) // 2 - 1: len(zs) // 2 + 1]:
        scr[z][ndi.binary_erosion(lesion[z], iterations=1)] = 1
        ring = (ndi.binary_dilation(lesion[z], iterations=6) & ~ndi.binary_dilation(lesion[z], iterations=3)
                & (p.truth[z] > 0))
        scr[z][ring] = 2
    t = time.perf_counter()
    r = segment(image, spacing=p.spacing, scribbles=scr, seed=seed)
    print(f"phantom + lesion ({lesion.sum()} voxels on {len(zs)} slices), strokes on 2, s{seed}: best component "
          f"{best_component(r.labels, lesion):.3f} | kept {kept(r.labels, scr):.3f} | {tail(t)}", flush=True)


def real(seed):
    from benchmarks.real import lesion_scribbles, score_real
    from benchmarks.real_cases import real_cases

    for case in real_cases(names=["mr-brain-tumour", "mr-breast"]):
        scr = lesion_scribbles(case, n_slices=2)
        t = time.perf_counter()
        r = segment(case.image, spacing=case.spacing, scribbles=scr, seed=seed)
        s = score_real(r.labels, case)
        print(f"{case.name} s{seed}: lesion best label {s['best_label'][case.lesion]:.3f} best component "
              f"{s['lesion_component']:.3f} | strokes {int((scr == 1).sum())} + {int((scr == 2).sum())} | "
              f"kept {kept(r.labels, scr):.3f} | {tail(t)}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("parts", nargs="*", default=["phantom", "real"], choices=["phantom", "real"])
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()
    for part in args.parts:
        for seed in (int(s) for s in args.seeds.split(",")):
            {"phantom": phantom, "real": real}[part](seed)


if __name__ == "__main__":
    main()
