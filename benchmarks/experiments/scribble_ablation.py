"""What each part of the scribble growth gives on the real brain-MR tumour (issue 11).

    PYTHONPATH=src python benchmarks/experiments/scribble_ablation.py [--seeds 0,1,2]

Trains once per seed and stroke set (the 2-slice strokes of ``mr_tumour.py`` and
the benchmark's short strokes), keeps the inputs of the final labelling
(``labelling.finish_labels``: the network's cluster ids and label map), and
labels them again with each variant of ``engine/scribble_grow.py``, so that the
variants differ only in the growth. Prints the tumour's best-component Dice.
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
torch.set_num_threads(1)

from benchmarks.experiments.mr_tumour import DATA, read_tumour_case, scores, two_slice_scribbles  # noqa: E402
from benchmarks.real import lesion_scribbles  # noqa: E402
from benchmarks.real_cases import real_cases  # noqa: E402
from napari_dfcseg import segment  # noqa: E402
from napari_dfcseg.engine import labelling, pipeline, scribble_grow  # noqa: E402

VARIANTS = {  # name: module constants of scribble_grow (and "open": the opening on/off)
    "as shipped": {},
    "no edge term": {"EDGE_WEIGHT": 0.0},
    "no opening": {"open": False},
    "no edge term, no opening": {"EDGE_WEIGHT": 0.0, "open": False},
    "box + 2 voxels (the slice beyond the strokes grows)": {"MIN_MARGIN_VOXELS": 2},
    "box + 25 % in-plane": {"MARGIN_FRACTION": 0.25},
}


def captured_inputs(image, spacing, scribbles, seed):
    """The arguments ``segment`` gives ``finish_labels``."""
    got = {}
    original = pipeline.finish_labels

    def keep(*args, **kwargs):
        got["args"], got["kwargs"] = args, kwargs
        return original(*args, **kwargs)

    pipeline.finish_labels = keep
    try:
        segment(image, spacing=spacing, scribbles=scribbles, seed=seed)
    finally:
        pipeline.finish_labels = original
    return got["args"], got["kwargs"]


def relabel(args, kwargs, variant):
    saved = {k: getattr(scribble_grow, k) for k in ("EDGE_WEIGHT", "MIN_MARGIN_VOXELS", "MARGIN_FRACTION",
                                                     "_open_classes")}
    try:
        for k, v in variant.items():
            if k == "open":
                if not v:
                    scribble_grow._open_classes = lambda *a: None
            else:
                setattr(scribble_grow, k, v)
        return labelling.finish_labels(*args, **kwargs)
    finally:
        for k, v in saved.items():
            setattr(scribble_grow, k, v)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    vol, image, tumour = read_tumour_case()
    strokes = {"2-slice strokes": two_slice_scribbles(tumour)[0],
               "short strokes": lesion_scribbles(real_cases(DATA.parent, names=["mr-brain-tumour"])[0],
                                                 n_slices=2)}
    inputs = {(name, seed): captured_inputs(image, vol.spacing, s, seed)
              for name, s in strokes.items() for seed in seeds}
    for vname, variant in VARIANTS.items():
        parts = []
        for name in strokes:
            dice = [scores(relabel(*inputs[name, seed], variant), tumour)[1] for seed in seeds]
            parts.append(f"{name} {' / '.join(f'{d:.3f}' for d in dice)}")
        print(f"{vname}: {' | '.join(parts)}", flush=True)


if __name__ == "__main__":
    main()
