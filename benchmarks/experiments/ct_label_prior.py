"""Public abdominal CT: forms of the spatial prior on the final labels (issue 11).

The default's edge-stopped Potts prior (``engine/label_smoothing.py``) against
the forms it was chosen from, each replacing ``smooth_labels`` in the default
pipeline (same training, same anchored scores); best-label Dice per tissue
group as ``ct_abdomen.py``:

- ``none``: each voxel's anchored label on its own (``ct_label_smoothing=0``);
- ``edge``: the default (weight exp(-(range / (2 median range))^2) at each voxel);
- ``plain``: the same mean field with weight 1 everywhere (a plain Potts prior);
- ``pairwise``: contrast-sensitive pairs, each neighbour weighted by
  exp(-(x_i - x_j)^2 / (2 sigma^2)), sigma the rms neighbour difference in the
  mask (graph-cut style; 26 rolls a step);
- ``inplane``: the edge-stopped prior over the 8 in-plane neighbours only.

    PYTHONPATH=src python benchmarks/experiments/ct_label_prior.py --forms none,edge,plain --seeds 0,1,2
    PYTHONPATH=src python benchmarks/experiments/ct_label_prior.py --forms edge --betas 0.5,1,2
"""
import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ct_abdomen import read_ct_case, scored_run  # noqa: E402

CAPTURED = {}


def _pairwise(scores, valid, beta, steps, x):
    """Mean field with contrast-sensitive pair weights over the 26 neighbours (numpy)."""
    offsets = [(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)
               if (a, b, c) != (0, 0, 0)]
    d = [(x - np.roll(x, 1, a))[valid & np.roll(valid, 1, a)] for a in range(3)]
    sigma = np.sqrt(np.mean(np.concatenate(d) ** 2))
    pair = [np.exp(-(x - np.roll(x, o, (0, 1, 2))) ** 2 / (2 * sigma ** 2)) for o in offsets]

    def posterior(t):
        q = np.exp(t - t.max(0))
        return q / q.sum(0) * valid

    q, t = posterior(scores), scores
    for _ in range(steps):
        n = sum(w * np.roll(q, o, (1, 2, 3)) for w, o in zip(pair, offsets))
        t = scores + beta * n
        q = posterior(t)
    return torch.from_numpy(t.argmax(0))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forms", default="none,edge,plain,pairwise,inplane")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--betas", default="1.0")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from napari_dfcseg.engine import label_smoothing
    from napari_dfcseg.engine.config import PRESETS

    real_smooth, real_edges = label_smoothing.smooth_labels, label_smoothing.edge_weights

    def edges(x, bbox, valid, radius):
        CAPTURED["x"] = np.asarray(x[0][bbox], np.float32)
        return real_edges(x, bbox, valid, radius)

    def smooth(form, scores, valid, weights, beta, radius, **kw):
        if form == "plain":
            weights = np.ones_like(weights)
        if form == "inplane":
            radius = (0,) + tuple(radius[1:])
        if form == "pairwise":
            inner = scores[:, 1:-1, 1:-1, 1:-1].float().numpy()
            inner = np.where(np.isfinite(inner), inner, -1e4)
            return _pairwise(inner, valid, beta, label_smoothing.SMOOTHING_STEPS, CAPTURED["x"])
        return real_smooth(scores, valid, weights, beta, radius, **kw)

    vol, ct, ref = read_ct_case()
    label_smoothing.edge_weights = edges
    for form in args.forms.split(","):
        for beta in ([0.0] if form == "none" else [float(b) for b in args.betas.split(",")]):
            label_smoothing.smooth_labels = (lambda *a, _f=form, **k: smooth(_f, *a, **k))
            config = dataclasses.replace(PRESETS["default"], ct_label_smoothing=beta)
            for seed in [int(s) for s in args.seeds.split(",")]:
                _, line, seconds = scored_run(ct, vol.spacing, ref, config, seed)
                print(f"{form:8s} beta {beta:.2f} {line} | {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main()
