"""Throughput of ``dfcseg batch``: 8 small scans, sequential vs Dask, 1 vs 2 worker processes.

    PYTHONPATH=src python benchmarks/batch_throughput.py [--shape 40 192 160] [--rows 8] [--repeats 1]

Each configuration labels the same 8 phantom scans into a fresh folder with one
model (the default preset's network, 100 channels, trained for 5 iterations:
labelling cost does not depend on how long it trained). The configurations run
interleaved in one process, ``repeats`` times, and the load average is printed
before and after, because this machine's 2 cores are shared. Reported: wall
seconds of ``run_batch`` (cluster already up), cluster start-up separately, and
scans per minute.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np


def _load():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _write(path, zyx):
    img = nib.Nifti1Image(np.ascontiguousarray(zyx.T), np.diag([1.2, 0.9, 2.5, 1.0]))
    nib.save(img, str(path))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", type=int, nargs=3, default=(40, 192, 160))
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    import torch

    from napari_dfcseg.batch import read_manifest, run_batch, set_torch_threads, SequentialExecutor
    from napari_dfcseg.batch.cluster import DaskExecutor, machine_cores
    from napari_dfcseg.datasets import head_phantom
    from napari_dfcseg.engine.config import resolve_config
    from napari_dfcseg.engine.pipeline import train_model

    root = Path(tempfile.mkdtemp(prefix="dfcseg-batch-bench-"))
    cores = machine_cores()
    lines = []
    for s in range(args.rows):
        p = head_phantom(shape=tuple(args.shape), spacing=(2.5, 0.9, 1.2), seed=s)
        _write(root / f"scan{s}.nii.gz", p.image.astype(np.int16))
        lines.append(f"scan{s}.nii.gz")
        if s == 0:
            config = dataclasses.replace(resolve_config("default"), max_iter=5)
            torch.set_num_threads(cores)
            train_model([p.image], spacing=p.spacing, config=config, device="cpu").save(root / "model.pt")
    (root / "m.csv").write_text("input\n" + "\n".join(lines) + "\n")

    configs = [  # (name, executor factory, torch threads in this process for the sequential path)
        ("sequential, 1 torch thread", lambda: SequentialExecutor(), 1),
        ("dask, 1 worker x 1 torch thread", lambda: DaskExecutor(workers=1, torch_threads=1), None),
        ("dask, 2 workers x 1 torch thread", lambda: DaskExecutor(workers=2, torch_threads=1), None),
        ("sequential, 2 torch threads", lambda: SequentialExecutor(), 2),
        ("dask, 1 worker x 2 torch threads", lambda: DaskExecutor(workers=1, torch_threads=2), None),
    ]
    results = []
    print(f"{args.rows} scans {tuple(args.shape)}, {cores} cores; load before {_load()}", flush=True)
    for repeat in range(args.repeats):
        for name, make, threads in configs:
            out = root / f"out-{repeat}-{len(results)}"
            rows = read_manifest(root / "m.csv", out)
            if threads:
                set_torch_threads(threads)
            t0 = time.perf_counter()
            with make() as executor:
                t1 = time.perf_counter()
                report = run_batch(root / "model.pt", rows, out, executor=executor, device="cpu")
                t2 = time.perf_counter()
            assert len(report.done) == args.rows, report.summary()
            per_row = [r["seconds"] for r in report.done]
            result = {"config": name, "repeat": repeat, "startup_s": round(t1 - t0, 2),
                      "run_s": round(t2 - t1, 2), "scans_per_min": round(60 * args.rows / (t2 - t1), 2),
                      "scans_per_min_with_startup": round(60 * args.rows / (t2 - t0), 2),
                      "row_s_median": round(float(np.median(per_row)), 2), "load": _load()}
            results.append(result)
            print(json.dumps(result), flush=True)
    print(f"load after {_load()}")
    median = {name: float(np.median([r["run_s"] for r in results if r["config"] == name]))
              for name, _, _ in configs}
    base = median[configs[0][0]]
    for name in median:
        print(f"{name}: median run {median[name]:.1f} s, {60 * args.rows / median[name]:.2f} scans/min,"
              f" run time / '{configs[0][0]}' = {median[name] / base:.2f}")

if __name__ == "__main__":
    main()
