"""Device choice, mixed precision and reproducibility for the engine's torch code."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import platform
import sys
import logging
import threading

import torch

from ..errors import InvalidInputError

log = logging.getLogger(__name__)

__all__ = ["resolve_device", "autocast", "training_autocast", "cpu_has_native_bf16",
           "reproducible", "reuse_freed_memory", "CompiledForward"]


def resolve_device(device="auto") -> torch.device:
    """``"auto"`` → CUDA if available, else Apple MPS, else CPU; or the named device."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidInputError(f"device {device!r} is not a torch device name") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device {device!r} requested but CUDA is not available")
    return dev


def autocast(device: torch.device):
    """Mixed precision (bfloat16 where supported, else float16) on CUDA only."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (x86 AVX512-BF16 or AMX; Linux only)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def training_autocast(device: torch.device, precision: str = "auto"):
    """Precision of the training iterations (``DFCConfig.precision``).

    CUDA: mixed precision as :func:`autocast` unless ``"float32"``. CPU:
    bfloat16 autocast for ``"bfloat16"``, and for ``"auto"`` on a CPU with
    native bfloat16 (there it roughly halves the convolutions' time; without
    it bfloat16 is emulated and slower). Labelling, BatchNorm recalibration
    and the stop rule's evaluation stay in float32 on CPU, so the labels do
    not depend on how the volume is chunked.
    """
    if precision == "float32":
        return contextlib.nullcontext()
    if device.type == "cuda":
        return autocast(device)
    if device.type == "cpu" and (precision == "bfloat16" or cpu_has_native_bf16()):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def reproducible(seed: int, device: torch.device):
    """Seed torch without disturbing the caller's global RNG; deterministic kernels on CPU.

    The global generators are forked (restored on exit) and the
    deterministic-algorithms flag is restored too, so running the engine
    inside napari changes nothing for other plugins.
    """
    devices = [torch.cuda.current_device()] if device.type == "cuda" else []
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_filling = _fills_uninitialized_memory()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        if device.type == "cpu":
            _set_deterministic(True)
            # deterministic mode also fills every new tensor with NaN (a debugging aid:
            # reads of uninitialised memory show); the engine writes every element it
            # allocates, and the fills measured ~20 % of a training iteration (issue 12:
            # nine full-size activations per iteration of the brain MR)
            _set_fill_uninitialized_memory(False)
        try:
            yield
        finally:
            _set_deterministic(was_deterministic)
            _set_fill_uninitialized_memory(was_filling)


def _fills_uninitialized_memory():
    """Whether deterministic mode fills new tensors (None: this torch has no such flag)."""
    get = getattr(torch._C, "_get_deterministic_fill_uninitialized_memory", None)
    return None if get is None else bool(get())


def _set_fill_uninitialized_memory(mode) -> None:
    set_ = getattr(torch._C, "_set_deterministic_fill_uninitialized_memory", None)
    if set_ is not None and mode is not None:
        set_(bool(mode))


def _set_deterministic(mode: bool) -> None:
    """``torch.use_deterministic_algorithms(mode)`` without importing the compiler.

    The public function also sets the inductor's flag, and importing
    ``torch._inductor`` for that costs ~2.3 s (measured) on the first run of
    a process; the engine does not compile, so the flag only matters if the
    compiler is already loaded, and then the public function is used.
    """
    if "torch._inductor" in sys.modules or not hasattr(torch._C, "_set_deterministic_algorithms"):
        torch.use_deterministic_algorithms(mode)
    else:
        torch._C._set_deterministic_algorithms(mode)


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_GLIBC_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_MMAP_MAX: 65536}
_allocator_lock = threading.Lock()
_allocator_users = 0


@functools.lru_cache(maxsize=1)
def _glibc():
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


@contextlib.contextmanager
def reuse_freed_memory(enabled: bool = True):
    """Keep freed tensor memory in the process for reuse while the engine runs (Linux glibc).

    glibc serves every block over 32 MiB with a fresh ``mmap`` and returns it
    on free, so each iteration's large activations are page-faulted in anew:
    on a 512×512 CT most of the wall time was system time. Inside this
    context blocks come from the heap and freed ones stay there (up to
    1 GiB kept free), so they are reused without page faults; on exit the
    defaults are restored and ``malloc_trim`` returns the free memory to the
    system. Nested and concurrent uses share one setting. Elsewhere (macOS,
    Windows, musl) it does nothing.
    """
    global _allocator_users
    libc = _glibc() if enabled else None
    if libc is None:
        yield
        return
    with _allocator_lock:
        if _allocator_users == 0:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
        _allocator_users += 1
    try:
        yield
    finally:
        with _allocator_lock:
            _allocator_users -= 1
            if _allocator_users == 0:
                for param, value in _GLIBC_DEFAULTS.items():
                    libc.mallopt(param, value)
                libc.malloc_trim(0)


class CompiledForward:
    """``net``'s training forward through ``torch.compile`` (``DFCConfig.compile``), eager on failure.

    Compiles on the first call (inductor; fixed shapes, as a 2D run's
    batches have). If compiling fails (no C++ compiler, an unsupported
    platform) the call and every later one run ``net`` eagerly, with one
    warning. Eval-mode calls (previews, labelling) use ``net`` itself.
    """

    def __init__(self, net):
        self.net = net
        self.compiled = None
        self.failed = False
        self.compile_s = None

    def __call__(self, x):
        if self.failed:
            return self.net(x)
        import time

        start = time.perf_counter() if self.compiled is None else None
        try:
            if self.compiled is None:
                self.compiled = torch.compile(self.net, dynamic=False)
                # the compiler is loaded now: keep its deterministic flag with the engine's
                torch.use_deterministic_algorithms(torch.are_deterministic_algorithms_enabled())
            out = self.compiled(x)
        except Exception as exc:  # noqa: BLE001 - any compiler failure means: run eagerly
            log.warning("torch.compile failed (%s: %s); training runs eagerly",
                        type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "")
            self.failed = True
            return self.net(x)
        if start is not None:
            self.compile_s = time.perf_counter() - start
            log.info("compiled the training forward in %.1f s", self.compile_s)
        return out
