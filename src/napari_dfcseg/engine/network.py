"""The paper's feature extractor, in 2D (per slice) and 3D variants.

Kim, Kanezaki & Tanaka (2020), Fig. 2: ``n_conv`` blocks of
(conv k×k → ReLU → BatchNorm) with ``p`` channels, then a 1×1 convolution and
BatchNorm giving the response map whose argmax is the cluster.

On anisotropic volumes the kernel is shaped per axis (:func:`kernel_shape`):
an axis whose voxels are much thicker than the finest gets a 1-voxel kernel,
so no layer mixes tissue across thick slices (docs/method.md, "3D mode").
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DFCNet", "kernel_shape", "receptive_radius"]


def kernel_shape(kernel: int, spacing, thick_ratio: float | None = 2.0) -> tuple:
    """Per-axis kernel size for voxels of ``spacing`` (one entry per spatial axis).

    An axis whose spacing is at least ``thick_ratio`` times the finest gets
    size 1 (its neighbours are ``thick_ratio`` or more voxels away in
    millimetres, farther than the whole in-plane kernel reaches); the other
    axes get ``kernel``. ``thick_ratio=None`` (or 0) gives an isotropic kernel.

    Examples
    --------
    >>> kernel_shape(3, (2.5, 1.0, 1.0))
    (1, 3, 3)
    >>> kernel_shape(3, (1.5, 1.0, 1.0))
    (3, 3, 3)
    """
    spacing = [float(s) for s in spacing]
    if not thick_ratio:
        return (int(kernel),) * len(spacing)
    finest = min(spacing)
    return tuple(1 if s >= thick_ratio * finest else int(kernel) for s in spacing)


def _eval_affine(norm, dtype):
    """``(scale, shift)`` of an eval-mode BatchNorm: ``norm(x) = x * scale + shift``."""
    scale = norm.weight.float() * torch.rsqrt(norm.running_var.float() + norm.eps)
    shift = norm.bias.float() - norm.running_mean.float() * scale
    return scale.to(dtype), shift.to(dtype)


def receptive_radius(n_conv: int, kernel) -> "int | tuple":
    """Voxels of context on each side that one output voxel depends on.

    Each convolution (zero padded) adds ``k // 2`` along each axis; the 1×1
    head adds none. Chunked inference needs a halo of this width to be exact.
    ``kernel`` is an int (returns an int) or a per-axis tuple (returns a tuple).
    """
    if isinstance(kernel, (tuple, list)):
        return tuple(int(n_conv) * (int(k) // 2) for k in kernel)
    return int(n_conv) * (int(kernel) // 2)


class DFCNet(nn.Module):
    """Fully convolutional extractor: (B, C_in, *spatial) → (B, p, *spatial) responses.

    Parameters
    ----------
    in_channels : int
    n_channels : int
        ``p``: feature channels, also the number of possible clusters.
    n_conv : int
    kernel : int or tuple of ``dims`` ints
        Kernel size, isotropic or per axis (odd sizes).
    dims : {2, 3}
    """

    def __init__(self, in_channels: int, n_channels: int, n_conv: int, kernel, dims: int):
        super().__init__()
        conv = {2: nn.Conv2d, 3: nn.Conv3d}[dims]
        norm = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims]
        self.dims = dims
        self.n_channels = int(n_channels)
        self.kernel_shape = (tuple(int(k) for k in kernel) if isinstance(kernel, (tuple, list))
                             else (int(kernel),) * dims)
        if len(self.kernel_shape) != dims:
            raise ValueError(f"kernel {kernel!r} has not {dims} sizes")
        padding = tuple(k // 2 for k in self.kernel_shape)
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i in range(n_conv):
            self.convs.append(conv(in_channels if i == 0 else n_channels, n_channels,
                                   self.kernel_shape, padding=padding))
            self.norms.append(norm(n_channels))
        self.head = conv(n_channels, n_channels, 1)
        self.head_norm = norm(n_channels)
        # 2D: NHWC ("channels last") lets oneDNN run the convolutions ~10-15 % faster
        # on CPU (measured in docs/benchmarks.md); the maths is unchanged.
        self._memory_format = torch.channels_last if dims == 2 else torch.contiguous_format
        self.to(memory_format=self._memory_format)

    @property
    def halo(self) -> tuple:
        """Receptive radius per spatial axis (see :func:`receptive_radius`)."""
        return receptive_radius(len(self.convs), self.kernel_shape)

    @property
    def batchnorms(self):
        """Every BatchNorm layer, in forward order (for recalibration)."""
        return [*self.norms, self.head_norm]

    def stages(self):
        """The network as ``(f, norm)`` pairs: stage ``i`` maps ``x`` to ``norm(f(x))``.

        ``forward`` is their composition; BatchNorm recalibration walks them
        one at a time (it needs each norm's input).
        """
        def first(x, conv=self.convs[0]):
            return torch.relu(conv(x.contiguous(memory_format=self._memory_format)))

        out = [(first, self.norms[0])]
        for conv, norm in zip(self.convs[1:], self.norms[1:]):
            out.append((lambda x, conv=conv: torch.relu(conv(x)), norm))
        out.append((self.head, self.head_norm))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for f, norm in self.stages():
            x = norm(f(x))
        return x

    @torch.no_grad()
    def respond(self, x: torch.Tensor) -> torch.Tensor:
        """Eval-mode responses, channels last: ``forward(x).movedim(1, -1)`` up to rounding.

        For labelling whole volumes: each ReLU and BatchNorm (its running
        statistics, as in eval mode) is applied in place on the convolution's
        output, and the 1×1 head is one matrix product on the channels-last
        features with its BatchNorm folded in. A fresh full-size tensor per
        layer was most of the labelling time on 512×512 slices (each is
        page-faulted in: ``relu`` measured 4.7× slower than ``relu_``).

        Returns
        -------
        (B, *spatial, p) tensor, contiguous.
        """
        if self.training:
            raise RuntimeError("respond() uses the running statistics: call eval() first")
        shape = (1, -1) + (1,) * self.dims
        x = x.contiguous(memory_format=self._memory_format)
        for conv, norm in zip(self.convs, self.norms):
            x = torch.relu_(conv(x))
            scale, shift = _eval_affine(norm, x.dtype)
            x.mul_(scale.view(shape)).add_(shift.view(shape))
        features = x.movedim(1, -1).contiguous()  # a view in 2D (channels last)
        scale, shift = _eval_affine(self.head_norm, torch.float32)
        weight = self.head.weight.reshape(self.n_channels, -1).float() * scale[:, None]
        bias = self.head.bias.float() * scale + shift
        flat = features.reshape(-1, features.shape[-1])
        out = torch.addmm(bias.to(flat.dtype), flat, weight.t().to(flat.dtype))
        return out.reshape(features.shape[:-1] + (self.n_channels,))
