"""Brain MR with a tumour, unmasked (issue 11): label 0 outside the head, tumour as best label
and as best connected component, by default and with scribbles on 2 slices.

    PYTHONPATH=src python benchmarks/experiments/mr_tumour.py [--scribbles-only] [--short] [--seeds 0,1,2]

The scribbles: the tumour eroded by 2 voxels (class 1) and a ring 4-8 voxels
around it (class 2), in-plane, on the 2 middle slices of the tumour. With
``--short``, also the benchmark's short strokes
(``benchmarks.real.lesion_scribbles``: lines along the middle of the tumour
and of a 3-voxel ring around it, on the 2 slices where it is largest).
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi

from napari_dfcseg import segment
from napari_dfcseg.io import read_volume

torch.set_num_threads(1)
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "mr-brain-tumour"


def dice(a, b):
    return 2 * (a & b).sum() / max(1, a.sum() + b.sum())


def scores(labels, tumour):
    best_label = max(dice(labels == k, tumour) for k in np.unique(labels) if k)
    best_comp = 0.0
    for k in np.unique(labels[tumour]):
        if not k:
            continue
        comp, _ = ndi.label(labels == k)
        for c in np.unique(comp[tumour]):
            if c:
                best_comp = max(best_comp, dice(comp == c, tumour))
    return best_label, best_comp


def two_slice_scribbles(tumour):
    z = np.flatnonzero(tumour.any((1, 2)))
    slices = z[len(z) // 2 - 1: len(z) // 2 + 1]
    s = np.zeros(tumour.shape, np.int16)
    for k in slices:
        inner = ndi.binary_erosion(tumour[k], iterations=2)
        ring = ndi.binary_dilation(tumour[k], iterations=8) & ~ndi.binary_dilation(tumour[k], iterations=4)
        s[k][inner] = 1
        s[k][ring] = 2
    return s, slices


def read_tumour_case():
    """The brain MR with a tumour: its Volume, the voxels as float32 and the tumour ROI as a mask."""
    vol = read_volume(DATA / "image.nrrd")
    tumour = np.asarray(read_volume(DATA / "tumour_label.nrrd").array) > 0
    return vol, np.asarray(vol.array).astype(np.float32), tumour


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scribbles-only", action="store_true")
    parser.add_argument("--short", action="store_true")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    vol, image, tumour = read_tumour_case()
    scr, slices = two_slice_scribbles(tumour)
    runs = [("default", {}), (f"scribbles on slices {list(slices)}", {"scribbles": scr})]
    if args.short:
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from benchmarks.real import lesion_scribbles
        from benchmarks.real_cases import real_cases

        short = lesion_scribbles(real_cases(DATA.parent, names=["mr-brain-tumour"])[0], n_slices=2)
        runs.append((f"short strokes ({int((short == 1).sum())} + {int((short == 2).sum())} voxels)",
                     {"scribbles": short}))
    for name, kw in runs[1:] if args.scribbles_only else runs:
        for seed in seeds:
            t = time.perf_counter()
            r = segment(image, spacing=vol.spacing, seed=seed, **kw)
            bl, bc = scores(r.labels, tumour)
            lab1 = (r.labels == 1).sum() * np.prod(vol.spacing) / 1000
            s = kw.get("scribbles")
            kept = (f" | scribbled voxels with their class: {np.mean(r.labels[s > 0] == s[s > 0]):.3f}"
                    if s is not None else "")
            print(f"{name} s{seed}: K={r.n_tissues} tumour best label {bl:.3f} best component {bc:.3f}"
                  f" | label 1 {lab1:.1f} mL (tumour {tumour.sum() * np.prod(vol.spacing) / 1000:.1f} mL)"
                  f" | view corners labelled 0: {(r.labels[:, :12, :12] == 0).mean():.2f}{kept}"
                  f" | {time.perf_counter() - t:.0f}s", flush=True)


if __name__ == "__main__":
    main()
