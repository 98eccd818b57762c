"""Speed and memory: per-iteration time vs the original code, end-to-end MNI, scaling with size."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .common import PAPER_SAMPLES, ROOT, summarise

#: scaling sizes (z, y, x) and the training-iteration cap used at that size (None = preset's)
SCALING_SIZES = (
    ((64, 64, 64), None),
    ((128, 128, 128), None),
    ((200, 256, 256), None),
    ((300, 512, 512), 50),
)
QUICK_SCALING_SIZES = (((24, 32, 32), 3), ((32, 48, 48), 3))
CACHE = Path(tempfile.gettempdir()) / "dfcseg-bench-cache"


def per_iteration(*, image_name="101027.jpg", n_iter=20, warmup=3, crop=None, device="cpu",
                  compile=False, log=print):
    """Time per training iteration: the original loop vs the engine's paper preset, interleaved.

    Both train on the whole 321×481 RGB image (the engine's 2D crop is
    widened to the whole image and its stop rule is off, ``min_iter =
    max_iter``, so both do the same work each iteration). The two loops run
    in one process, one iteration each in turn: the engine's progress
    callback, called after every engine iteration, runs one iteration of the
    original. A change in machine load therefore hits both alike, which
    matters on a shared machine. Recorded per iteration: wall time and the
    process's CPU time (all threads; less sensitive to other jobs than wall
    time). The first ``warmup`` iterations of each are dropped. The original
    runs with glibc's default allocator settings, as published (the engine
    keeps freed memory for reuse while it trains,
    :func:`napari_dfcseg.engine.device.reuse_freed_memory`). ``crop`` (quick
    runs): use only the top-left ``crop × crop`` pixels. ``compile``: the engine
    trains through ``torch.compile`` (``DFCConfig.compile``); its compile time
    falls in the first iteration, reported apart as ``engine_first_iteration_s``
    (from the call to the end of the first iteration, set-up included).
    """
    import os
    import time

    from .engine_runner import engine_config, run_engine
    from .original_dfc import OriginalDFC, read_bgr

    im = read_bgr(PAPER_SAMPLES / image_name)
    if crop is not None:
        im = np.ascontiguousarray(im[:crop, :crop])
    rgb = np.ascontiguousarray(im[..., ::-1])
    total = n_iter + warmup
    # previews off: the original shows nothing during training either
    config = engine_config("paper", max_iter=total, min_iter=total,
                           crop_size=max(im.shape[:2]), preview_every=10 * total, compile=compile)
    original = OriginalDFC(im, seed=0, device=device)
    times = {"original": [], "engine": [], "original_cpu": [], "engine_cpu": []}
    sync = _synchronizer(device)
    mark = {}

    def now():
        sync()
        return time.perf_counter(), time.process_time()

    def progress(i, n, info=None):
        if info is not None and info.get("stage", "train") != "train":
            return
        wall, cpu = now()
        mark.setdefault("first", wall)
        if "wall" in mark:  # the engine's iteration ends here
            times["engine"].append(wall - mark["wall"])
            times["engine_cpu"].append(cpu - mark["cpu"])
        with _default_allocator():
            w0, c0 = now()
            original.step()
            w1, c1 = now()
        times["original"].append(w1 - w0)
        times["original_cpu"].append(c1 - c0)
        mark["wall"], mark["cpu"] = now()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    start = time.perf_counter()
    _, info = run_engine(rgb, mode="2d", spacing=(1.0, 1.0), channel_axis=-1, config=config,
                         seed=0, device=device, progress=progress)
    # the engine's first interval starts after the original's first iteration
    kept = {k: v[warmup:] for k, v in times.items()}
    out = {"image": image_name, "shape": list(im.shape), "n_iter": n_iter, "warmup": warmup,
           "interleaved": True, "device": device, "compile": bool(compile),
           "engine_first_iteration_s": mark["first"] - start, "load_average_1min_start": load,
           "load_average_1min_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    for k in ("original", "engine"):
        out[f"{k}_s_per_it"] = float(np.median(kept[k]))
        out[f"{k}_cpu_s_per_it"] = float(np.median(kept[f"{k}_cpu"]))
        out[f"{k}_summary"] = summarise(kept[k])
    out["ratio"] = out["engine_s_per_it"] / out["original_s_per_it"]
    out["ratio_cpu"] = out["engine_cpu_s_per_it"] / out["original_cpu_s_per_it"]
    # per-pair ratios: each engine iteration against the original's next to it
    pairs = np.array(kept["engine"]) / np.array(kept["original"][:len(kept["engine"])])
    out["ratio_pairs_median"] = float(np.median(pairs))
    log(f"  original {out['original_s_per_it']:.3f} s/it (CPU {out['original_cpu_s_per_it']:.3f}), "
        f"engine {out['engine_s_per_it']:.3f} s/it (CPU {out['engine_cpu_s_per_it']:.3f}); "
        f"ratio {out['ratio']:.3f} (CPU {out['ratio_cpu']:.3f}, pairs {out['ratio_pairs_median']:.3f})"
        + (f"; compiled, first iteration {out['engine_first_iteration_s']:.1f} s" if compile else ""))
    return out


def _synchronizer(device):
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


_M_MMAP_THRESHOLD = -3  # glibc malloc.h


def _default_allocator():
    """glibc's default malloc settings for the original's iterations, inside the engine's run."""
    from contextlib import contextmanager

    from napari_dfcseg.engine import device as engine_device

    @contextmanager
    def swap():
        libc = engine_device._glibc()
        if libc is None or engine_device._allocator_users == 0:
            yield
            return
        # blocks over 32 MiB (glibc's largest dynamic threshold: the most a default process
        # keeps on its heap) by mmap again, as by default; the trim threshold stays high,
        # or the original's frees would trim the engine's kept memory and bill it to the engine
        libc.mallopt(engine_device._M_MMAP_MAX, engine_device._GLIBC_DEFAULTS[
            engine_device._M_MMAP_MAX])
        libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
        try:
            yield
        finally:
            libc.mallopt(engine_device._M_MMAP_MAX, 0)

    return swap()


def run_worker(volume_path, mode, *, preset="default", max_iter=None, seed=0, device="cpu",
               quick=False, timeout=None, engine_src=None):
    """Run :mod:`benchmarks.worker` in a fresh interpreter; returns its result dict.

    ``engine_src``: a ``src`` folder of another napari-dfcseg checkout to time
    instead of this one (before/after comparisons).
    """
    import os

    cmd = [sys.executable, "-m", "benchmarks.worker", "--volume", str(volume_path), "--mode", mode,
           "--preset", preset, "--seed", str(seed), "--device", device]
    if max_iter is not None:
        cmd += ["--max-iter", str(max_iter)]
    if quick:
        cmd += ["--quick"]
    env = None
    if engine_src is not None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(engine_src), str(ROOT)])}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"worker failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")


def _save_volume(path, image, mask, spacing, truth=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"image": image.astype(np.float32), "mask": mask, "spacing": np.asarray(spacing)}
    if truth is not None:
        arrays["truth"] = truth
    np.savez(path, **arrays)
    return path


def end_to_end_mni(*, modes=("2d", "3d"), preset="default", max_iter=None, crop=None, seeds=(0,),
                   quick=False, device="cpu", log=print):
    """Time the engine on the degraded MNI volume (5 % / 20 %), one fresh process per run.

    The engine gets the degraded intensities as a user would load them (it
    normalises them itself) and the brain mask.
    """
    from napari_dfcseg.datasets import mni152

    p = mni152(noise=0.05, bias=0.2, seed=0)
    image, truth, mask = p.image, p.truth, p.mask
    if crop is not None:
        z0 = image.shape[0] // 2 - crop // 2
        image, truth, mask = (a[z0:z0 + crop] for a in (image, truth, mask))
    path = _save_volume(CACHE / f"mni_n5_b20_{crop}.npz", image, mask, p.spacing, truth)
    runs = []
    for mode in modes:
        for seed in seeds:
            r = run_worker(path, mode, preset=preset, max_iter=max_iter, seed=seed, device=device,
                           quick=quick)
            log(f"  MNI {tuple(image.shape)} {mode} {preset}: {r['wall_s']:.1f} s, "
                f"{r['n_iterations']} it, peak RSS {r['peak_rss_mib']:.0f} MiB, Dice "
                + " ".join(f"{v:.3f}" for v in r["dice_many_to_one"].values()))
            runs.append(r)
    return runs


def _phantom_volume(shape):
    path = CACHE / f"phantom_{'x'.join(map(str, shape))}.npz"
    if not path.is_file():
        from napari_dfcseg.datasets import head_phantom

        p = head_phantom(shape=shape, spacing=(1.0, 1.0, 1.0), noise=0.05, bias=0.2, seed=0)
        _save_volume(path, p.image, p.mask, p.spacing)
    return path


def scaling(*, quick=False, modes=("2d", "3d"), preset="default", device="cpu", log=print):
    """Wall time and peak RSS of the engine vs volume size (head phantom, 1 mm), both modes."""
    runs = []
    for shape, cap in QUICK_SCALING_SIZES if quick else SCALING_SIZES:
        path = _phantom_volume(shape)
        for mode in modes:
            r = run_worker(path, mode, preset=preset, max_iter=cap, device=device, quick=quick)
            log(f"  {tuple(shape)} {mode}: {r['wall_s']:.1f} s, {r['n_iterations']} it "
                f"(cap {cap}), peak RSS {r['peak_rss_mib']:.0f} MiB")
            runs.append(r)
    return runs


#: CT end-to-end cases: name → (slices, rows, columns) and the nominal spacing (mm);
#: None keeps the public scan's own grid
CT_CASES = {
    "ct-abdomen-3mm": (None, None),
    "ct-512x512x20": ((20, 512, 512), (3.0, 0.7, 0.7)),
    "ct-512x512x300": ((300, 512, 512), (1.0, 0.7, 0.7)),
}
REAL = ROOT.parent / "shared" / "data" / "real"


def _ct_volume(name):
    """The public abdominal CT, or it resampled (linear) to a clinical 512×512 grid.

    The resampled volumes are real anatomy at a typical clinical matrix size
    (the public file is small), for timing only.
    """
    path = CACHE / f"{name}.npz"
    if path.is_file():
        return path
    from napari_dfcseg.io import read_volume

    vol = read_volume(REAL / "ct-abdomen-3mm" / "ct.nii.gz")
    image, spacing = np.asarray(vol.array), tuple(float(s) for s in vol.spacing)
    shape, nominal = CT_CASES[name]
    if shape is not None:
        from scipy.ndimage import zoom

        image = zoom(image.astype(np.float32), [n / s for n, s in zip(shape, image.shape)],
                     order=1)
        spacing = nominal
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, image=image.astype(np.int16), spacing=np.asarray(spacing))
    return path


def end_to_end_ct(*, names=("ct-abdomen-3mm", "ct-512x512x20"), mode="2d", preset="default",
                  quick=False, device="cpu", log=print):
    """Default settings on CT, as a user runs them (no mask): wall, CPU and system time, peak RSS.

    One fresh process per run (:mod:`benchmarks.worker`); the 512×512 cases
    are the public CT resampled (:func:`_ct_volume`).
    """
    runs = []
    for name in names:
        r = run_worker(_ct_volume(name), mode, preset=preset, device=device, quick=quick,
                       max_iter=3 if quick else None)
        r["case"] = name
        log(f"  {name} {tuple(r['shape'])} {mode}: {r['wall_s']:.1f} s wall, user "
            f"{r['user_s']:.1f} s, system {r['system_s']:.1f} s, {r['n_iterations']} it, "
            f"peak RSS {r['peak_rss_mib']:.0f} MiB")
        runs.append(r)
    return runs


def before_after_ct(before_src, *, names=("ct-abdomen-3mm", "ct-512x512x20"), repeats=1,
                    mode="2d", device="cpu", log=print):
    """The CT end-to-end runs with an earlier engine (``before_src``) and this one, alternating.

    ``before_src`` is the ``src`` folder of an older checkout (e.g. ``git
    archive <commit> src | tar -x -C /tmp/before``). The two alternate run by
    run, so that both meet the same machine load; the ratios are per pair.
    """
    runs = []
    for _ in range(repeats):
        for name in names:
            pair = {}
            for which, src in (("before", before_src), ("after", None)):
                r = run_worker(_ct_volume(name), mode, device=device, engine_src=src)
                r.update(case=name, engine=which)
                pair[which] = r
                runs.append(r)
            log(f"  {name}: before {pair['before']['wall_s']:.1f} s (system "
                f"{pair['before']['system_s']:.1f} s), after {pair['after']['wall_s']:.1f} s "
                f"(system {pair['after']['system_s']:.1f} s): "
                f"{pair['after']['wall_s'] / pair['before']['wall_s']:.2f}×")
    return runs
