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
                  log=print):
    """Median time per training iteration: the original loop vs the engine's paper preset.

    Both train on the whole 321×481 RGB image for exactly ``n_iter``
    iterations (stop rules off: the original's by flag, the engine's by
    ``min_iter = max_iter``; the engine's 2D crop is widened to the whole
    image so that both see the same pixels). The first ``warmup`` iterations
    are dropped. The two runs alternate (original, engine, original, engine)
    so that a change in machine load hits both. ``crop`` (quick runs): use
    only the top-left ``crop × crop`` pixels.
    """
    from .engine_runner import engine_config, run_engine
    from .original_dfc import original_dfc, read_bgr

    im = read_bgr(PAPER_SAMPLES / image_name)
    if crop is not None:
        im = np.ascontiguousarray(im[:crop, :crop])
    rgb = np.ascontiguousarray(im[..., ::-1])
    total = n_iter + warmup
    # previews off: the original shows nothing during training either
    config = engine_config("paper", max_iter=total, min_iter=total,
                           crop_size=max(im.shape[:2]), preview_every=10 * total)
    original_times, engine_times = [], []
    for rep in range(2):
        _, t = original_dfc(im, max_iter=total, stop_rule=False, seed=rep, device=device)
        original_times += t[warmup:]
        _, info = run_engine(rgb, mode="2d", spacing=(1.0, 1.0), channel_axis=-1, config=config,
                             seed=rep, device=device)
        # the progress callback is called once per iteration: its intervals are iteration times
        engine_times += info["iteration_times_s"][warmup:]
        log(f"  rep {rep}: original {np.median(t[warmup:]):.3f} s/it, "
            f"engine {np.median(info['iteration_times_s'][warmup:]):.3f} s/it")
    original = float(np.median(original_times))
    engine = float(np.median(engine_times))
    return {"image": image_name, "shape": list(im.shape), "n_iter": n_iter, "warmup": warmup,
            "repeats": 2, "device": device,
            "original_s_per_it": original, "engine_s_per_it": engine,
            "original_summary": summarise(original_times),
            "engine_summary": summarise(engine_times),
            "ratio": engine / original}


def run_worker(volume_path, mode, *, preset="default", max_iter=None, seed=0, device="cpu",
               quick=False, timeout=None):
    """Run :mod:`benchmarks.worker` in a fresh interpreter; returns its result dict."""
    cmd = [sys.executable, "-m", "benchmarks.worker", "--volume", str(volume_path), "--mode", mode,
           "--preset", preset, "--seed", str(seed), "--device", device]
    if max_iter is not None:
        cmd += ["--max-iter", str(max_iter)]
    if quick:
        cmd += ["--quick"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
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
