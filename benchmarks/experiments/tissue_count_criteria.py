"""Which criterion chooses the tissue count K of a scan? (issue 11; docs/method.md)

For each scan: the automatic foreground, intensities inside it (raw or 3x3x3 median),
a 1-D Gaussian mixture for K = 2..12 on a 20 000-voxel subsample, and the K each
criterion picks (BIC, ICL = BIC + 2 * entropy of the assignment).

    PYTHONPATH=src python benchmarks/experiments/tissue_count_criteria.py
"""
import time

import numpy as np
from scipy import ndimage as ndi

from napari_dfcseg.datasets import head_phantom, mni152
from napari_dfcseg.engine.foreground import auto_foreground
from napari_dfcseg.engine.prior import _log_joint, fit_gaussian_mixture
from napari_dfcseg.io import read_volume

from benchmarks.experiments._cases import REAL


def scores(v, kmax=12, tied=False):
    out = []
    n = len(v)
    for k in range(1, kmax + 1):
        m, var, w = fit_gaussian_mixture(v[:, None], k, tied=tied)
        lj = _log_joint(v[:, None], m, var, w)
        top = lj.max(1, keepdims=True)
        tot = np.exp(lj - top).sum(1, keepdims=True)
        ll = float((np.log(tot) + top).sum())
        resp = np.exp(lj - top) / tot
        ent = float(-(resp * np.log(np.maximum(resp, 1e-300))).sum())
        p = (3 * k - 1) if not tied else (2 * k)
        bic = -2 * ll + p * np.log(n)
        out.append((k, bic, bic + 2 * ent))
    return out


def cases():
    for s in (0, 1):
        p = head_phantom(seed=s)
        yield f"phantom s{s}", p.image, p.spacing, None
    for nz, b in ((0.05, 0.2), (0.09, 0.4)):
        p = mni152(noise=nz, bias=b)
        yield f"mni {nz}/{b} (mask)", p.image, p.spacing, p.mask
    for c in ["ct-abdomen-3mm/ct.nii.gz", "mr-abdomen-3mm/mr.nii.gz", "mr-brain-tumour/image.nrrd",
              "mr-head-sagittal-dicom", "mr-breast/image.nrrd"]:
        v = read_volume(REAL / c)
        yield c.split("/")[0], np.asarray(v.array).astype(np.float32), v.spacing, None


rng = np.random.default_rng(0)
for name, img, sp, mask in cases():
    if mask is None:
        mask = auto_foreground(img, sp)
    for den in ("raw", "median3"):
        im = ndi.median_filter(img, 3) if den == "median3" else img
        v = im[mask].astype(np.float64)
        v = v[rng.choice(v.size, min(v.size, 20000), replace=False)]
        v = (v - np.percentile(v, 0.5)) / (np.percentile(v, 99.5) - np.percentile(v, 0.5))
        t = time.perf_counter()
        sc = scores(v)
        ks, bic, icl = zip(*sc)
        print(f"{name:28s} {den:8s} BIC->{ks[int(np.argmin(bic))]:2d} ICL->{ks[int(np.argmin(icl))]:2d}"
              f"  ({time.perf_counter() - t:.1f}s)", flush=True)
