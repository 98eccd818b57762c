"""Guide the segmentation with a few scribbles, as you would paint them in napari.

    python examples/scribble_guided.py [--max-iter N] [--out labels.nii.gz]

Scribbles are a label volume on the scan's grid: 0 where nothing is painted,
1..S on a few voxels of each tissue. Scribbled classes keep their ids in the
result, so label 3 *is* the tissue you painted as 3 — no matching needed.
Here the strokes are drawn from the head phantom's ground truth; in napari
they come from a Labels layer (or ``dfcseg segment --scribbles PATH``).
"""

import argparse
import dataclasses

import numpy as np
from scipy import ndimage

from napari_dfcseg import DFCConfig, segment
from napari_dfcseg.datasets import TISSUES, head_phantom
from napari_dfcseg.metrics import dice_per_tissue


def strokes_from_truth(truth, *, slices, per_tissue=60, seed=0):
    """A few scribbled voxels per tissue on some slices, well inside each tissue."""
    rng = np.random.default_rng(seed)
    scribbles = np.zeros(truth.shape, dtype=np.uint8)
    for z in slices:
        for tissue in TISSUES:
            inside = ndimage.binary_erosion(truth[z] == tissue, iterations=1)
            ys, xs = np.nonzero(inside)
            if ys.size == 0:
                continue
            # a short stroke: consecutive voxels of one row through a random point
            pick = rng.integers(ys.size)
            row = xs[ys == ys[pick]]
            start = np.searchsorted(row, xs[pick])
            stroke = row[max(0, start - per_tissue // 2): start + per_tissue // 2]
            scribbles[z, ys[pick], stroke] = tissue
    return scribbles


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(40, 112, 96), metavar=("Z", "Y", "X"))
    parser.add_argument("--max-iter", type=int, default=None, help="fewer iterations: faster")
    parser.add_argument("--out", default=None, help="also write the labels as NIfTI here")
    args = parser.parse_args(argv)

    phantom = head_phantom(shape=args.shape)
    nz = phantom.image.shape[0]
    scribbles = strokes_from_truth(phantom.truth, slices=[nz // 3, nz // 2, 2 * nz // 3])
    print(f"scribbled {np.count_nonzero(scribbles)} voxels "
          f"({100 * np.count_nonzero(scribbles) / scribbles.size:.2f} % of the volume)")

    config = DFCConfig.preset("default")
    if args.max_iter:
        config = dataclasses.replace(config, max_iter=args.max_iter)
    result = segment(phantom.image, mode="2d", spacing=phantom.spacing, scribbles=scribbles,
                     config=config, seed=0)

    # scribbled classes keep their ids: compare label t with tissue t directly
    truth_inside = np.isin(phantom.truth, list(TISSUES))
    for tissue, name in TISSUES.items():
        a, b = result.labels[truth_inside] == tissue, phantom.truth[truth_inside] == tissue
        dice = 2 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)
        print(f"  label {tissue} = {name:13s} Dice {dice:.3f}")
    brain = dice_per_tissue(result.labels, phantom.truth, phantom.mask)
    print(f"brain tissues, clusters matched: mean Dice {np.mean(list(brain.values())):.3f}")

    if args.out:
        from napari_dfcseg.io import Volume, write_labels

        like = Volume.from_array(phantom.image, spacing=phantom.spacing)
        names = {t: n for t, n in TISSUES.items()}
        print("wrote", ", ".join(map(str, write_labels(args.out, result.labels, like=like, names=names))))


if __name__ == "__main__":
    main()
