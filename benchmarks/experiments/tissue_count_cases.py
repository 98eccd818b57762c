"""Chosen K (n_clusters="auto") on the phantom, MNI152 and the real scans; run: PYTHONPATH=src python benchmarks/experiments/tissue_count_cases.py"""
import time

from benchmarks.experiments._cases import cases
from napari_dfcseg.engine.foreground import auto_foreground
from napari_dfcseg.engine.tissue_count import choose_tissue_count

for name, img, sp, mask in cases():
    if mask is None:
        mask = auto_foreground(img, sp)
    t = time.perf_counter()
    r = choose_tissue_count(img, mask, seed=0)
    dt = time.perf_counter() - t
    print(f"{name:22s} K={r.k} {dt:.1f}s {r.reason}", flush=True)
