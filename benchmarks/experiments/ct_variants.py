"""The public CT made into other CTs: noisier (low dose) and cut in two (with / without lungs).

Not a substitute for other real scans, but a check that the CT path is not fitted to
one file: each variant is segmented by the default preset (seed 0) and, for bone,
lung and liver, compared with the best of GMM / k-means / median+GMM at K 4-8 on the
same array (``benchmarks.baselines``, as the real-scan benchmark). Variants: Gaussian
noise of 20 and 40 HU added (rounded to integer HU, seed 0); slices 0-14 (lower
abdomen, no lung); slices 15-29 (upper abdomen and lung bases); every other slice
(6 mm slices: the thick-slice path, 1x3x3 median and neighbourhoods).

    PYTHONPATH=src python benchmarks/experiments/ct_variants.py
    PYTHONPATH=src python benchmarks/experiments/ct_variants.py --no-peers
    PYTHONPATH=src python benchmarks/experiments/ct_variants.py --no-peers --seeds 0,1,2 \
        --override '{"ct_label_smoothing": 0}'
"""
import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))
from ct_abdomen import best_label_dice, read_ct_case  # noqa: E402


def variants(ct, ref):
    rng = np.random.default_rng(0)
    yield "noise 20 HU", np.round(ct + rng.normal(0, 20, ct.shape)).astype(np.float32), ref, None
    yield "noise 40 HU", np.round(ct + rng.normal(0, 40, ct.shape)).astype(np.float32), ref, None
    half = ct.shape[0] // 2
    yield "slices 0-14", ct[:half], ref[:half], None
    yield "slices 15-29", ct[half:], ref[half:], None
    yield "6 mm slices", ct[::2], ref[::2], 2.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--override", default="{}", help="JSON dict of DFCConfig fields")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from benchmarks.baselines import run_baseline
    from napari_dfcseg import segment
    from napari_dfcseg.engine.config import PRESETS

    config = dataclasses.replace(PRESETS["default"], **json.loads(args.override))

    vol, ct, ref = read_ct_case()
    for name, image, reference, z_factor in variants(ct, ref):
        t = time.perf_counter()
        spacing = tuple(vol.spacing)
        if z_factor:
            spacing = (spacing[0] * z_factor,) + spacing[1:]
        for seed in [int(s) for s in args.seeds.split(",")]:
            r = segment(image, spacing=spacing, config=config, seed=seed)
            d = best_label_dice(r.labels, reference)
            print(f"{name:13s} seed {seed} K={r.n_tissues} " + " ".join(f"{g} {v:.3f}" for g, v in d.items())
                  + f" | mean {np.mean(list(d.values())):.3f} | {time.perf_counter() - t:.0f} s",
                  flush=True)
        if args.no_peers:
            continue
        best = {}
        for k in range(4, 9):
            for clusterer, denoiser in (("gmm", "none"), ("kmeans", "none"), ("gmm", "median3")):
                labels = run_baseline(image, np.ones(image.shape, bool), clusterer=clusterer,
                                      denoiser=denoiser, n_classes=k)
                for g, v in best_label_dice(labels, reference).items():
                    if g in ("bone", "lung", "liver") and v > best.get(g, (0.0, ""))[0]:
                        best[g] = (v, f"{'' if denoiser == 'none' else denoiser + '+'}{clusterer} K={k}")
        print(f"{'':13s} best peer  " + " ".join(f"{g} {v:.3f} ({m})" for g, (v, m) in best.items()),
              flush=True)


if __name__ == "__main__":
    main()
