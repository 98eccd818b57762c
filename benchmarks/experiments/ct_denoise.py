"""Public abdominal CT: which denoising before the network keeps bone and the organs (issue 11).

Each candidate replaces the pipeline's ``denoise`` step (monkeypatched in this
process: the filter runs on the HU, which the pipeline's linear normalisation then
maps as it maps the raw scan); the rest is the default preset. Best-label Dice per
tissue group as ``ct_abdomen.py``; ``--mixture`` scores the anchor mixture alone
(no network: seconds per candidate).

    PYTHONPATH=src python benchmarks/experiments/ct_denoise.py --seeds 0 median raw bone-kept
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ct_abdomen import DATA, best_label_dice  # noqa: E402

BONE_HU = 240.0  # the top of the soft-tissue window (W 400 / L 40)


def _sitk(a, f):
    import SimpleITK as sitk
    return sitk.GetArrayFromImage(f(sitk.GetImageFromArray(np.ascontiguousarray(a, np.float32))))


def candidates():
    import SimpleITK as sitk
    med = lambda a, r=1: _sitk(a, lambda i: sitk.Median(i, [r] * 3))  # noqa: E731
    return {
        "raw": lambda a: a,
        "median": med,
        # in plane only (1x3x3): across slices a rib is often one voxel thick
        "median-2d": lambda a: _sitk(a, lambda i: sitk.Median(i, [1, 1, 0])),
        # the median, but voxels above the soft-tissue window keep their own HU
        "bone-kept": lambda a: np.where(a > BONE_HU, a, med(a)),
        # the median, but a voxel never goes below its own HU where it is above the window
        "bone-max": lambda a: np.where(a > BONE_HU, np.maximum(a, med(a)), med(a)),
        # the median where its change is within the soft-tissue noise, else the voxel
        "median-limited": lambda a: np.where(np.abs(med(a) - a) < 100, med(a), a),
        "curvature-flow": lambda a: _sitk(a, lambda i: sitk.CurvatureFlow(i, 0.0625, 5)),
        "curvature-flow10": lambda a: _sitk(a, lambda i: sitk.CurvatureFlow(i, 0.0625, 10)),
        "anisotropic": lambda a: _sitk(a, lambda i: sitk.GradientAnisotropicDiffusion(i, 0.0625, 2.0, 5)),
        "anisotropic-c1": lambda a: _sitk(a, lambda i: sitk.GradientAnisotropicDiffusion(i, 0.0625, 1.0, 5)),
        "curvature-aniso": lambda a: _sitk(a, lambda i: sitk.CurvatureAnisotropicDiffusion(i, 0.0625, 2.0, 5)),
        "bilateral": lambda a: _sitk(a, lambda i: sitk.Bilateral(i, 3.0, 50.0)),
        "bilateral-r30": lambda a: _sitk(a, lambda i: sitk.Bilateral(i, 3.0, 30.0)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=["median", "raw", "bone-kept"])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--mixture", action="store_true", help="score the anchor mixture alone")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from napari_dfcseg import segment
    from napari_dfcseg.engine import normalize
    from napari_dfcseg.engine.config import PRESETS
    from napari_dfcseg.engine.foreground import auto_foreground
    from napari_dfcseg.engine.prior import intensity_prior
    from napari_dfcseg.io import read_volume

    vol = read_volume(DATA / "ct.nii.gz")
    ct = np.asarray(vol.array).astype(np.float32)
    ref = np.asarray(read_volume(DATA / "reference_totalsegmentator.nii.gz").array)
    mask = auto_foreground(ct, vol.spacing)
    filters = candidates()
    for name in args.names:
        filtered = filters[name](ct)
        for seed in [int(s) for s in args.seeds.split(",")]:
            norm = normalize.IntensityNormalization.fit(ct[..., None], mask, seed=seed)
            x = norm.apply(filtered[..., None])  # the same affine map as the pipeline's
            t = time.perf_counter()
            if args.mixture:
                from napari_dfcseg.engine.tissue_count import choose_ct_tissue_count, choose_tissue_count
                k = choose_ct_tissue_count(ct, mask, seed=seed,
                                           full=choose_tissue_count(x[0], mask, seed=seed)).k
                labels = intensity_prior(x, mask, k, seed=seed, tied=False) + 1
            else:
                normalize.denoise = lambda v, method, spacing=None, **kw: np.copyto(v, x) or v
                r = segment(ct, spacing=vol.spacing, config=PRESETS["default"], seed=seed)
                labels, k = r.labels, r.n_tissues
            d = best_label_dice(labels, ref)
            print(f"{name:18s} seed {seed} K={k} " + " ".join(f"{g} {v:.3f}" for g, v in d.items())
                  + f" | mean {np.mean(list(d.values())):.3f} | {time.perf_counter() - t:.0f} s",
                  flush=True)


if __name__ == "__main__":
    main()
