"""Device choice, mixed precision and reproducibility for the engine's torch code."""

from __future__ import annotations

import contextlib

import torch

from ..errors import InvalidInputError

__all__ = ["resolve_device", "autocast", "reproducible"]


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


@contextlib.contextmanager
def reproducible(seed: int, device: torch.device):
    """Seed torch without disturbing the caller's global RNG; deterministic kernels on CPU.

    The global generators are forked (restored on exit) and the
    deterministic-algorithms flag is restored too, so running the engine
    inside napari changes nothing for other plugins.
    """
    devices = [torch.cuda.current_device()] if device.type == "cuda" else []
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        if device.type == "cpu":
            torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_deterministic)
