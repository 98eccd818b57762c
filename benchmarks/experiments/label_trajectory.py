"""Label trajectory over the training iterations (issue 12): is a shorter run as good?

    PYTHONPATH=src:. python benchmarks/experiments/label_trajectory.py {ct,mni,phantom,mr} [SEED]

Trains the default preset once (environment: MAXIT iterations, default 50; LR; BS slices per
batch; DECAY=linear|cosine from LR to 0 over MAXIT) and, every 5 iterations, takes a snapshot
of the weights, recalibrates BatchNorm, labels the whole volume as segment() does and scores
it (ct: best-label Dice per tissue group; mni: Dice many-to-one; phantom: Dice per tissue),
with the share of labels that changed since the previous snapshot (whole volume, and on the
evaluation slices with training-mode BatchNorm). A run stopped at iteration n gives the
snapshot at n (nothing in the loop depends on max_iter). One JSON line per snapshot.
docs/benchmarks.md, "End to end: the stages around training".
"""

import copy
import dataclasses
import json
import os
import sys

import numpy as np
import torch

import napari_dfcseg.engine.training as training
from napari_dfcseg import segment
from napari_dfcseg.engine.config import PRESETS
from napari_dfcseg.engine.inference import (_batches, anchored_ids, label_volume,
                                            recalibrate_batchnorm, volume_halo)
from napari_dfcseg.engine.labelling import cluster_label_map, finish_labels, label_means
from napari_dfcseg.engine.prior import mixture_tensors

EVERY = 5
MAXIT = int(os.environ.get("MAXIT", 50))
LR = float(os.environ.get("LR", 0.01))
DECAY = os.environ.get("DECAY")
snapshots = {}
plain_step = training._SGD.step


def step(self):
    done = getattr(self, "done", 0)
    if DECAY == "linear":
        self.lr = LR * (1 - done / MAXIT)
    elif DECAY == "cosine":
        self.lr = LR * 0.5 * (1 + np.cos(np.pi * done / MAXIT))
    plain_step(self)
    self.done = done + 1
    if self.done % EVERY == 0:
        snapshots[self.done] = [p.detach().clone() for p in self.params]


def probe_ids(net, probe, mixture, weight):
    """Anchored ids of the evaluation slices with training-mode BatchNorm (no running-stat update)."""
    saved = [(b.running_mean.clone(), b.running_var.clone()) for b in net.batchnorms]
    net.train()
    out = []
    with torch.no_grad():
        for x, valid, _, crop in probe:
            xt = torch.from_numpy(np.ascontiguousarray(x))
            inside = (slice(None), slice(None)) + tuple(crop)
            r = net(xt)[inside].movedim(1, -1)
            out.append(anchored_ids(r, xt[inside], mixture, weight).numpy()[valid])
        for b, (m, v) in zip(net.batchnorms, saved):
            b.running_mean.copy_(m)
            b.running_var.copy_(v)
    return np.concatenate(out)


def make_train(scorer):
    plain_train = training.train_network

    def train(volumes, *, mode, config, **kwargs):
        net, history, eval_regions = plain_train(volumes, mode=mode, config=config, **kwargs)
        work = copy.deepcopy(net)
        probe = list(_batches(volumes, eval_regions, mode, 4, volume_halo(net)))
        mixture = mixture_tensors(volumes[0].mixture, torch.device("cpu"))
        previous = previous_probe = None
        for n in sorted(snapshots):
            with torch.no_grad():
                for p, s in zip(work.parameters(), snapshots[n]):
                    p.copy_(s)
            ids = probe_ids(work, probe, mixture, config.mixture_weight)
            recalibrate_batchnorm(work, volumes, eval_regions, mode, torch.device("cpu"),
                                  batch_size=4)
            raw = label_volume(work, volumes[0], mode, config, torch.device("cpu"))
            label_of = cluster_label_map(raw.counts, raw.feature_sum, raw.intensity_sum,
                                         n_clusters=config.n_clusters)
            labels = finish_labels(label_of, label_means(label_of, raw.counts, raw.feature_sum),
                                   raw, None, config.min_size)
            inside = raw.ids >= 0
            record = {"it": n,
                      "raw_change": None if previous is None
                      else float((raw.ids[inside] != previous[inside]).mean()),
                      "probe_change": None if previous_probe is None
                      else float((ids != previous_probe).mean())}
            record.update(scorer(labels))
            print(json.dumps(record), flush=True)
            previous, previous_probe = raw.ids.copy(), ids
        return net, history, eval_regions
    return train


def load(case, seed):
    """(image, spacing, mask, scorer) of ``case``."""
    if case == "ct":
        from benchmarks.real import score_real
        from benchmarks.real_cases import ct_abdomen

        c = ct_abdomen()

        def scorer(labels):
            s = score_real(labels, c)
            return {"ct_mean": round(s["ct_mean"], 4),
                    **{k: round(v, 3) for k, v in s["best_label"].items()}}
        return c.image, c.spacing, None, scorer
    if case == "mni":
        from benchmarks.cases import mni_case
        from napari_dfcseg.metrics import evaluate

        c = mni_case(0.05, 0.2, seed=0)
        return c.image, c.spacing, c.mask, lambda labels: {
            k: round(v, 4) for k, v in evaluate(labels, c.truth, c.mask)["dice_many_to_one"].items()}
    if case == "phantom":
        from napari_dfcseg.datasets import head_phantom
        from napari_dfcseg.metrics import dice_per_tissue

        p = head_phantom(shape=(40, 112, 96), seed=seed)
        return p.image, p.spacing, None, lambda labels: {
            str(k): round(v, 4) for k, v in dice_per_tissue(labels, p.truth, p.mask).items()}
    from benchmarks.real_cases import real_cases

    (c,) = real_cases(names=("mr-brain-tumour",))
    return np.asarray(c.image, np.float32), tuple(c.spacing), None, lambda labels: {}


def main():
    torch.set_num_threads(1)
    case, seed = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0
    image, spacing, mask, scorer = load(case, seed)
    training._SGD.step = step
    training.train_network = make_train(scorer)
    config = dataclasses.replace(PRESETS["default"], max_iter=MAXIT, ct_max_iter=None, lr=LR,
                                 batch_slices=int(os.environ.get("BS", 4)))
    result = segment(image, spacing=spacing, mask=mask, seed=seed, device="cpu", config=config)
    print("final", case, seed, result.n_iterations, result.n_tissues)


if __name__ == "__main__":
    main()
