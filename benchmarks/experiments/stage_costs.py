"""CPU seconds of every stage of `segment()` (default settings), in-process; issue 12.

    PYTHONPATH=src:. python benchmarks/experiments/stage_costs.py CASE [--threads 1] [--profile]

CASE: ct-abdomen-3mm, ct-512x512x20, ct-512x512x300 (the CT cases of benchmarks/speed.py),
mr (the real brain MR), mni (MNI152 5 %/20 % with its brain mask). Each stage is wrapped
and timed with process CPU time (SimpleITK stages count all their threads; on CT the
tissue count's line includes the soft-window count's own call); --profile adds
cProfile's cumulative listing. Run it with another tree's src first on PYTHONPATH for a
before/after pair (docs/benchmarks.md, "End to end: the stages around training").
"""
import argparse
import cProfile
import io
import pstats
import time

import numpy as np
import torch

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("case")
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--profile", action="store_true")
args = parser.parse_args()
torch.set_num_threads(args.threads)

import napari_dfcseg.engine.foreground as F  # noqa: E402
import napari_dfcseg.engine.inference as I  # noqa: E402
import napari_dfcseg.engine.normalize as N  # noqa: E402
import napari_dfcseg.engine.pipeline as P  # noqa: E402
import napari_dfcseg.engine.tissue_count as TC  # noqa: E402
import napari_dfcseg.engine.training as T  # noqa: E402
from napari_dfcseg import segment  # noqa: E402

if args.case.startswith("ct"):
    from benchmarks.speed import _ct_volume

    with np.load(_ct_volume(args.case)) as d:
        image, spacing, mask = d["image"], tuple(float(s) for s in d["spacing"]), None
else:
    from benchmarks.speed_peers import _load

    image, spacing, mask = _load(args.case)

times = {}


def wrap(module, name, key=None):
    f = getattr(module, name)

    def timed(*a, **k):
        t = time.process_time()
        try:
            return f(*a, **k)
        finally:
            times[key or name] = times.get(key or name, 0.0) + time.process_time() - t
    setattr(module, name, timed)


wrap(F, "auto_foreground", "automatic mask")
wrap(TC, "choose_tissue_count", "tissue count")
wrap(TC, "choose_ct_tissue_count", "CT soft-tissue count")
wrap(N, "denoise", "median denoise")
wrap(P, "anchor_mixtures", "anchor mixture")
wrap(T, "recalibrate_batchnorm", "BatchNorm recalibration (in training)")
wrap(T, "train_network", "training (with recalibration)")
wrap(I, "label_volume", "labelling pass")
wrap(P, "_finish_labels", "post-processing")
profiler = cProfile.Profile() if args.profile else None
start, cpu = time.perf_counter(), time.process_time()
if profiler:
    profiler.enable()
result = segment(image, spacing=spacing, mask=mask, seed=0, device="cpu")
if profiler:
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
    print(out.getvalue())
print(f"{args.case} {image.shape}: wall {time.perf_counter() - start:.2f} s, segment CPU "
      f"{time.process_time() - cpu:.2f} s, process CPU {time.process_time():.2f} s, "
      f"{result.n_iterations} iterations, K = {result.n_tissues}")
for k, v in times.items():
    print(f"  {k:40s} {v:6.2f} CPU-s")
