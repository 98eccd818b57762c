"""Public abdominal CT: what the network keeps (docs/method.md, "Final labels", "HU windows").

Best-label Dice per tissue group (as ``ct_abdomen.py``) of the default preset with
config overrides, optionally

- ``--bare``: the labels are the network's bare argmax (the labelling before the
  anchored target), to see what the network itself has learnt;
- ``--windows '[[-1350,150],[-160,240],[-500,1300]]'``: those HU windows as extra
  input channels of the network beside the full-range channel 0; the anchor
  mixture and the tissue count stay on channel 0 (monkeypatched in this process).

    PYTHONPATH=src python benchmarks/experiments/ct_diagnosis.py --seeds 0,1,2
    PYTHONPATH=src python benchmarks/experiments/ct_diagnosis.py --bare --override '{"max_iter": 200}'
    PYTHONPATH=src python benchmarks/experiments/ct_diagnosis.py --windows '[[-160,240]]'
"""
import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ct_abdomen import DATA, best_label_dice  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--override", default="{}", help="JSON dict of DFCConfig fields")
    parser.add_argument("--bare", action="store_true", help="labels = the network's bare argmax")
    parser.add_argument("--windows", default="[]", help="JSON list of [low, high] HU windows")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from napari_dfcseg import segment
    from napari_dfcseg.engine import inference, prior, training
    from napari_dfcseg.engine.config import PRESETS
    from napari_dfcseg.io import read_volume

    windows = json.loads(args.windows)
    if windows:  # the mixture on channel 0 only; the windows feed the network alone
        fit = prior.fit_intensity_mixture
        prior.fit_intensity_mixture = lambda x, mask, k, **kw: fit(x[:1], mask, k, **kw)
        loglik = prior.intensity_loglik
        training.intensity_loglik = lambda x, mix: loglik(x[:, :mix[0].shape[1]], mix)
        target = inference.anchored_target
        inference.anchored_target = lambda r, x, mix, w: target(r, x[:, :mix[0].shape[1]], mix, w)
    if args.bare:
        inference.anchored_target = lambda r, x, mix, w: r.argmax(1)

    vol = read_volume(DATA / "ct.nii.gz")
    ct = np.asarray(vol.array).astype(np.float32)
    ref = np.asarray(read_volume(DATA / "reference_totalsegmentator.nii.gz").array)
    image = np.stack([ct] + [np.clip(ct, lo, hi) for lo, hi in windows], -1)
    config = dataclasses.replace(PRESETS["default"], **json.loads(args.override))
    for seed in [int(s) for s in args.seeds.split(",")]:
        t = time.perf_counter()
        r = segment(image, channel_axis=-1, spacing=vol.spacing, config=config, seed=seed)
        d = best_label_dice(r.labels, ref)
        print(f"seed {seed} K={r.n_tissues} " + " ".join(f"{g} {v:.2f}" for g, v in d.items())
              + f" | mean {np.mean(list(d.values())):.3f} | {time.perf_counter() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
