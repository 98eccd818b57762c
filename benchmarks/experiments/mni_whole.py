"""Engine variants on the whole degraded MNI152 volume (5 % noise, 20 % bias by default), 2D or 3D mode.

Each run prints Dice CSF / GM / WM (many-to-one) inside the brain mask. The
variants measured so far are in docs/method.md ("Anchored self-labels").

Usage (from the repository root)::

    python -m benchmarks.experiments.mni_whole --seeds 0,1,2
    python -m benchmarks.experiments.mni_whole --override '{"mixture_weight": 1.0}'
    python -m benchmarks.experiments.mni_whole --override '{"mixture_components": null, "min_labels": 3}'
    python -m benchmarks.experiments.mni_whole --mode 3d --seeds 0
    python -m benchmarks.experiments.mni_whole --scribbles 3
    python -m benchmarks.experiments.mni_whole --noise 0.09 --bias 0.4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--mode", choices=["2d", "3d"], default="2d")
    parser.add_argument("--override", default="{}", help="JSON dict of DFCConfig fields")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--scribbles", type=int, default=0, help="simulated scribbled slices")
    parser.add_argument("--noise", type=float, default=0.05, help="Rician noise (0.09: issue 11's hard case)")
    parser.add_argument("--bias", type=float, default=0.2, help="bias-field amplitude (0.4: the hard case)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from napari_dfcseg import DFCConfig, segment
    from napari_dfcseg.datasets import mni152
    from napari_dfcseg.metrics import dice_per_tissue

    from benchmarks.cases import simulate_scribbles

    p = mni152(noise=args.noise, bias=args.bias, seed=0)
    config = dataclasses.replace(DFCConfig.preset(args.preset), **json.loads(args.override))
    scores = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        scribbles = (simulate_scribbles(p.truth, p.mask, n_slices=args.scribbles, seed=seed)
                     if args.scribbles else None)
        t0 = time.perf_counter()
        r = segment(p.image, mode=args.mode, spacing=p.spacing, mask=p.mask, scribbles=scribbles,
                    config=config, seed=seed, device="cpu")
        d = dice_per_tissue(r.labels, p.truth, p.mask)
        scores.append([d[1], d[2], d[3]])
        print(f"seed {seed}: CSF {d[1]:.3f} GM {d[2]:.3f} WM {d[3]:.3f} labels {r.n_labels} "
              f"iterations {r.n_iterations} ({r.stopped_by}) {time.perf_counter() - t0:.0f} s",
              flush=True)
    m = np.mean(scores, axis=0)
    print(f"mean: CSF {m[0]:.3f} GM {m[1]:.3f} WM {m[2]:.3f}")


if __name__ == "__main__":
    main()
