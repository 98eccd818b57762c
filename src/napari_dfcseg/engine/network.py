"""The paper's feature extractor, in 2D (per slice) and 3D variants.

Kim, Kanezaki & Tanaka (2020), Fig. 2: ``n_conv`` blocks of
(conv k×k → ReLU → BatchNorm) with ``p`` channels, then a 1×1 convolution and
BatchNorm giving the response map whose argmax is the cluster.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DFCNet", "receptive_radius"]


def receptive_radius(n_conv: int, kernel: int) -> int:
    """Voxels of context on each side that one output voxel depends on.

    Each k×k convolution (zero padded) adds ``k // 2``; the 1×1 head adds
    none. Chunked inference needs a halo of this width to be exact.
    """
    return int(n_conv) * (int(kernel) // 2)


class DFCNet(nn.Module):
    """Fully convolutional extractor: (B, C_in, *spatial) → (B, p, *spatial) responses.

    Parameters
    ----------
    in_channels : int
    n_channels : int
        ``p``: feature channels, also the number of possible clusters.
    n_conv : int
    kernel : int
    dims : {2, 3}
    """

    def __init__(self, in_channels: int, n_channels: int, n_conv: int, kernel: int, dims: int):
        super().__init__()
        conv = {2: nn.Conv2d, 3: nn.Conv3d}[dims]
        norm = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims]
        self.dims = dims
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i in range(n_conv):
            self.convs.append(conv(in_channels if i == 0 else n_channels, n_channels,
                                   kernel, padding=kernel // 2))
            self.norms.append(norm(n_channels))
        self.head = conv(n_channels, n_channels, 1)
        self.head_norm = norm(n_channels)

    @property
    def batchnorms(self):
        """Every BatchNorm layer, in forward order (for recalibration)."""
        return [*self.norms, self.head_norm]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms):
            x = norm(torch.relu(conv(x)))
        return self.head_norm(self.head(x))
