"""Training-loop experiments on a 60-slice slab of the degraded MNI152 volume (2D mode).

Each variant swaps one piece of the engine *in this process only* (monkeypatching),
so that design ideas can be measured before they are built in. Results of the
runs made so far are in docs/method.md ("Experiments on MNI152").

Usage (from the repository root)::

    python -m benchmarks.experiments.mni_slab --seeds 0,1,2
    python -m benchmarks.experiments.mni_slab --override '{"min_labels": 6}'
    python -m benchmarks.experiments.mni_slab --merge intensity --linkage centroid
    python -m benchmarks.experiments.mni_slab --balanced 0.5
    python -m benchmarks.experiments.mni_slab --kmeans-features
    python -m benchmarks.experiments.mni_slab --scribbles 3 [--restrict]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import time

import numpy as np


def _patch(args):
    import napari_dfcseg.engine.inference as inference
    import napari_dfcseg.engine.labelling as labelling
    import napari_dfcseg.engine.pipeline as pipeline

    if args.merge == "intensity":  # merge clusters by mean input intensity, not mean response
        original = labelling.cluster_label_map

        def by_intensity(counts, feature_sum, intensity_sum, **kw):
            return original(counts, np.asarray(intensity_sum, float)[:, None], intensity_sum, **kw)

        pipeline.cluster_label_map = by_intensity
    if args.linkage == "centroid":
        labelling._ward_merge = functools.partial(labelling._ward_merge, size_weighted=False)
    if args.balanced > 0:  # the experiment patched the separate similarity term, gone since
        # training computes the whole loss in one fused pass (engine/losses.dfc_loss)
        raise SystemExit("--balanced is no longer supported: training uses the fused "
                         "engine.losses.dfc_loss; run this experiment on a commit before it")
    if args.restrict and args.scribbles:  # label = argmax over the scribbled classes' channels only
        forward = inference._forward
        n_classes = 3

        def restricted(net, x, device):
            r = forward(net, x, device).clone()
            r[:, n_classes:] = -1e9
            return r

        inference._forward = restricted


def _kmeans_on_features(result, image, mask, k=3):
    import torch
    from sklearn.cluster import KMeans

    net = result.model.network("cpu")
    x = result.model.normalization.apply(image[..., None])
    with torch.no_grad():
        f = torch.cat([net(torch.from_numpy(x[:, z:z + 10]).permute(1, 0, 2, 3))
                       for z in range(0, x.shape[1], 10)])
    f = f.permute(0, 2, 3, 1).numpy()[mask]
    sub = np.random.default_rng(0).choice(len(f), min(50000, len(f)), replace=False)
    km = KMeans(k, n_init=4, random_state=0).fit(f[sub])
    labels = np.zeros(mask.shape, np.int32)
    labels[mask] = km.predict(f) + 1
    return labels


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--override", default="{}", help="JSON dict of DFCConfig fields")
    parser.add_argument("--merge", choices=["feature", "intensity"], default="feature")
    parser.add_argument("--linkage", choices=["ward", "centroid"], default="ward")
    parser.add_argument("--balanced", type=float, default=0.0)
    parser.add_argument("--kmeans-features", action="store_true")
    parser.add_argument("--scribbles", type=int, default=0, help="scribbled slices (0 = none)")
    parser.add_argument("--restrict", action="store_true")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    _patch(args)
    from benchmarks.cases import simulate_scribbles
    from napari_dfcseg import DFCConfig, segment
    from napari_dfcseg.datasets import mni152
    from napari_dfcseg.metrics import dice_per_tissue

    p = mni152(noise=0.05, bias=0.2, seed=0)
    zc = p.image.shape[0] // 2
    slab = slice(zc - 30, zc + 30)
    image, truth, mask = p.image[slab], p.truth[slab], p.mask[slab]
    scribbles = simulate_scribbles(truth, mask, n_slices=args.scribbles, seed=0) if args.scribbles else None
    config = dataclasses.replace(DFCConfig.preset(args.preset), **json.loads(args.override))
    scores = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        t0 = time.perf_counter()
        result = segment(image, mode="2d", spacing=p.spacing, mask=mask, scribbles=scribbles,
                         config=config, seed=seed, device="cpu")
        labels = _kmeans_on_features(result, image, mask) if args.kmeans_features else result.labels
        d = dice_per_tissue(labels, truth, mask)
        scores.append([d[1], d[2], d[3]])
        print(f"seed {seed}: CSF {d[1]:.3f} GM {d[2]:.3f} WM {d[3]:.3f} "
              f"iterations {result.n_iterations} {time.perf_counter() - t0:.0f} s", flush=True)
    m = np.mean(scores, axis=0)
    print(f"mean: CSF {m[0]:.3f} GM {m[1]:.3f} WM {m[2]:.3f} (min {np.min(scores):.3f})")


if __name__ == "__main__":
    main()
