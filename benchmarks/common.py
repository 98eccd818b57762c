"""Shared plumbing: intensity normalisation, timers, peak memory, machine facts, JSON results."""

from __future__ import annotations

import json
import os
import platform
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
IMG = DOCS / "img"
PAPER_SAMPLES = ROOT.parent / "shared" / "data" / "paper-samples"


def normalise(image, mask, *, low=0.5, high=99.5):
    """Clip ``image`` to its [low, high] percentiles inside ``mask`` and scale that range to [0, 1].

    Every method (baselines and engine) receives this same array, so differences
    come from the methods and not from their preprocessing.
    """
    values = image[mask]
    lo, hi = np.percentile(values, [low, high])
    out = (np.clip(image, lo, hi) - lo) / max(hi - lo, 1e-12)
    return out.astype(np.float32)


class PeakRSS:
    """Sample this process's resident memory every ``interval`` s; report the peak increase.

    Used as a context manager around one method's run. The kernel's high-water
    mark (``ru_maxrss``) cannot be reset inside a process, so sampling is the
    in-process option; the scaling benchmark uses a fresh subprocess per size
    and reads the kernel's VmHWM instead, which is exact.
    """

    def __init__(self, interval=0.02):
        import psutil

        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.start_bytes = 0
        self.peak_bytes = 0

    def _sample(self):
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self):
        self.start_bytes = self.peak_bytes = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)

    @property
    def increase_mib(self):
        """Peak RSS above the RSS at entry, in MiB."""
        return (self.peak_bytes - self.start_bytes) / 2**20


@contextmanager
def timed(record):
    """Store the ``with`` body's wall time (s) and peak RSS increase (MiB) in ``record``."""
    with PeakRSS() as memory:
        start = time.perf_counter()
        yield record
        record["wall_s"] = time.perf_counter() - start
    record["peak_rss_increase_mib"] = memory.increase_mib


def cpu_model():
    """The CPU model string from /proc/cpuinfo (Linux) or platform."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device="cpu"):
    """Facts to print beside every timing: CPU, cores, RAM, torch, device, date."""
    import psutil

    info = {
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "device": device,
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if device == "cuda" and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        info["torch"] = None
    try:
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return info


def summarise(values):
    """Mean and sample SD of a list of numbers (SD 0 for a single value)."""
    values = np.asarray(values, dtype=np.float64)
    sd = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return {"mean": float(values.mean()), "sd": sd, "n": int(values.size)}


def save_results(name, payload, *, folder=None):
    """Write ``payload`` to ``benchmarks/results/<name>.json`` and return the path."""
    folder = Path(folder) if folder is not None else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1, default=_jsonable))
    return path


def load_results(name, *, folder=None):
    """Read ``benchmarks/results/<name>.json``, or None if it has not been produced."""
    folder = Path(folder) if folder is not None else RESULTS
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in JSON")
