"""Run one engine segmentation in a fresh process and print its time and peak memory as JSON.

The scaling and end-to-end benchmarks start this module once per (volume, mode)
so that the kernel's high-water mark (``ru_maxrss``) is the peak of that run
alone::

    python -m benchmarks.worker --volume /tmp/vol.npz --mode 2d --preset default
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np


def _peak_rss_mib():
    """This process's peak resident memory (VmHWM), in MiB.

    Not ``ru_maxrss``: Linux carries that high-water mark across ``execve``,
    so a worker started by a large parent would report the parent's peak.
    """
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: best effort


def _rss_mib():
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volume", required=True,
                        help=".npz with image, mask (and optionally truth), spacing")
    parser.add_argument("--mode", choices=("2d", "3d"), required=True)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--max-iter", type=int, default=None, help="cap on training iterations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="tiny training batches (smoke runs)")
    args = parser.parse_args(argv)

    from napari_dfcseg.metrics import evaluate

    from .engine_runner import engine_config, run_engine

    with np.load(args.volume) as data:
        image = data["image"]
        mask = data["mask"] if "mask" in data else None  # None: default settings, no mask
        truth = data["truth"] if "truth" in data else None
        spacing = tuple(float(s) for s in data["spacing"])
    import torch  # imported before the baseline so that its own footprint is not counted as work

    config = engine_config(args.preset, max_iter=args.max_iter, quick=args.quick)
    rss_before = _rss_mib()
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    labels, info = run_engine(image, mode=args.mode, spacing=spacing, mask=mask, config=config,
                              seed=args.seed, device=args.device)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_mib = _peak_rss_mib()
    out = {
        "shape": list(image.shape), "mode": args.mode, "preset": args.preset,
        "max_iter_cap": args.max_iter, "quick": args.quick, "seed": args.seed,
        "device": args.device,
        "wall_s": wall, "peak_rss_mib": peak_mib, "rss_before_mib": rss_before,
        # CPU time of the run, all threads: system time is the kernel's (page faults)
        "user_s": usage.ru_utime - before.ru_utime, "system_s": usage.ru_stime - before.ru_stime,
        "minor_faults": usage.ru_minflt - before.ru_minflt,
        "n_iterations": info["n_iterations"], "n_labels_final": info["n_labels_final"],
        "iteration_median_s": float(np.median(info["iteration_times_s"]))
        if info["iteration_times_s"] else None,
        "torch_threads": torch.get_num_threads(),
    }
    if args.device.startswith("cuda"):
        out["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        out["gpu"] = torch.cuda.get_device_name(0)
    if truth is not None:
        m = evaluate(labels, truth, mask)
        out["dice_many_to_one"] = {str(k): v for k, v in m["dice_many_to_one"].items()}
        out["ari"] = m["ari"]
    print("RESULT " + json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
