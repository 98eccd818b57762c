"""Train a reference model on one scan, save it, and apply it to another scan.

    python examples/reference_model.py [--max-iter N] [--model model.pt]

A model trained once labels new scans in seconds, with the *same* label numbers
(label 3 means the same tissue in every scan), which per-scan runs cannot
promise. The two scans here are head phantoms with different noise, bias field
and cortical folding.
"""

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from napari_dfcseg import DFCConfig, apply_model, load_model, train_model
from napari_dfcseg.datasets import head_phantom
from napari_dfcseg.metrics import dice_per_tissue


def mean_dice(labels, phantom):
    scores = dice_per_tissue(labels, phantom.truth, phantom.mask)
    return float(np.mean(list(scores.values())))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(40, 112, 96), metavar=("Z", "Y", "X"))
    parser.add_argument("--max-iter", type=int, default=None, help="fewer iterations: faster")
    parser.add_argument("--model", default=None, help="where to save the model (.pt)")
    args = parser.parse_args(argv)

    train_scan = head_phantom(shape=args.shape, seed=0)
    new_scan = head_phantom(shape=args.shape, seed=7)  # another "subject"

    config = DFCConfig.preset("default")
    if args.max_iter:
        config = dataclasses.replace(config, max_iter=args.max_iter)
    model = train_model(train_scan.image, mode="2d", spacing=train_scan.spacing,
                        config=config, seed=0)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.model) if args.model else Path(tmp) / "model.pt"
        model.save(path)
        print(f"saved the model ({path.stat().st_size / 1e6:.2f} MB, {model.n_labels} labels)")
        reloaded = load_model(path)  # torch.load(weights_only=True): no code in model files

    on_train = apply_model(reloaded, train_scan.image, spacing=train_scan.spacing).labels
    on_new = apply_model(reloaded, new_scan.image, spacing=new_scan.spacing).labels
    print(f"training scan: mean brain Dice {mean_dice(on_train, train_scan):.3f}")
    print(f"new scan:      mean brain Dice {mean_dice(on_new, new_scan):.3f}")


if __name__ == "__main__":
    main()
