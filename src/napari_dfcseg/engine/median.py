"""The exact 3-voxel median filter (the denoising of :mod:`.normalize`), as min/max networks in torch.

A median picks one of its inputs, so any exact selection gives the value
SimpleITK's ``Median`` gives, bit for bit (its border: the nearest voxel,
``ZeroFluxNeumann``). SimpleITK selects per voxel (``nth_element`` over 27
values, ~190 CPU-ns a voxel: 1.6 CPU-s of MNI152's 14 s run); here whole
slabs go through a fixed network of element-wise ``minimum``/``maximum``:

1. every axis of radius 1 sorted in triples, the first along z, the next
   along x (a column-sorted set stays column-sorted when its rows are
   sorted), each shared by the neighbourhoods that contain it;
2. what remains: 3×3×3: :data:`MEDIAN27_NETWORK` on the 27 values of
   three y-offsets of the 3×3 (z-rank, x-rank) sorted matrices; 3×3 (one
   axis of radius 0, thick slices): the median of the anti-diagonal of the
   sorted 3×3 matrix; one axis: the median of three.

126 operations a voxel for 3×3×3 (24 sorting the triples, 102 of the
network), on slabs of a few slices walked by torch's thread count of Python
threads with one op thread each: 0.18-0.22 CPU-s for MNI152's 156×187×151
block against SimpleITK's 1.5-1.6 (docs/benchmarks.md).
"""

from __future__ import annotations

import numpy as np
import torch

from .losses import MAX_PARTS, _one_cpu_thread, _part_pool

__all__ = ["median_filter", "MEDIAN27_NETWORK"]

#: the 3x3x3 median after the z and x sorts: ``(op, a, b)``, op 0 = min, 1 = max; the
#: result of step ``k`` is value ``27 + k``; values 0-26 are ``r * 9 + c * 3 + d`` (r: rank
#: of the z-sorted triple, c: rank of the x-sorted triple, d: y offset 0-2); the median is
#: value :data:`_MEDIAN27_OUT`. Derived by benchmarks/experiments/median_network.py: the
#: z/x-sorted values sorted along y, each rank of z sorted across its 9, the median as the
#: 7th of the 13 values that can still be it (the 4 largest of the 9 lows, the middle 5
#: of the mids, the 4 smallest highs); comparisons whose outcome the partial order already
#: fixes and results no later step reads are left out. Checked against ``np.median`` and
#: SimpleITK in tests/test_engine_median.py.
MEDIAN27_NETWORK = (
    (1, 0, 1), (1, 27, 2), (0, 3, 4), (1, 3, 4), (0, 30, 5), (1, 30, 5), (1, 29, 31), (0, 6, 7),
    (1, 6, 7), (0, 35, 8), (1, 35, 8), (0, 34, 36), (1, 34, 36), (0, 9, 10), (1, 9, 10),
    (0, 41, 11), (1, 41, 11), (1, 40, 42), (0, 12, 13), (1, 12, 13), (0, 46, 14), (1, 46, 14),
    (0, 45, 47), (1, 45, 47), (0, 15, 16), (1, 15, 16), (0, 52, 17), (0, 51, 53), (1, 51, 53),
    (0, 18, 19), (1, 18, 19), (0, 57, 20), (1, 57, 20), (0, 56, 58), (1, 56, 58), (0, 21, 22),
    (1, 21, 22), (0, 63, 23), (1, 63, 23), (0, 62, 64), (1, 62, 64), (0, 24, 25), (1, 24, 25),
    (0, 69, 26), (0, 68, 70), (1, 68, 70), (1, 28, 38), (0, 32, 39), (1, 32, 39), (0, 73, 74),
    (1, 73, 74), (1, 33, 76), (0, 54, 43), (1, 54, 43), (0, 55, 48), (1, 44, 49), (0, 80, 81),
    (1, 80, 81), (0, 82, 79), (1, 82, 79), (0, 50, 83), (1, 50, 83), (0, 87, 86), (1, 87, 86),
    (0, 71, 59), (1, 71, 59), (0, 72, 65), (0, 61, 66), (1, 61, 66), (0, 92, 93), (0, 95, 91),
    (1, 95, 91), (0, 67, 96), (0, 99, 98), (1, 85, 60), (1, 78, 89), (0, 77, 90), (1, 77, 90),
    (0, 75, 88), (1, 75, 88), (0, 37, 84), (0, 105, 102), (1, 105, 102), (0, 107, 104),
    (1, 107, 104), (0, 103, 108), (1, 103, 108), (0, 110, 109), (1, 110, 109), (0, 111, 106),
    (1, 111, 106), (0, 101, 94), (1, 101, 94), (1, 112, 118), (1, 113, 119), (0, 114, 97),
    (0, 115, 100), (0, 116, 120), (0, 117, 121), (1, 122, 124), (0, 125, 123), (1, 126, 127),
)
_MEDIAN27_OUT = 128

#: elements of a slab (a few slices): its ~30 live temporaries stay near the cache
_SLAB_ELEMENTS = 1 << 17


def _last_use(network):
    last = {}
    for k, (_, a, b) in enumerate(network):
        last[a] = last[b] = k
    return last


_LAST27 = _last_use(MEDIAN27_NETWORK)


def _sort3(a, b, c):
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    m, top = torch.minimum(hi, c), torch.maximum(hi, c)
    return torch.minimum(lo, m), torch.maximum(lo, m), top


def _median3(a, b, c):
    return torch.maximum(torch.minimum(a, b), torch.minimum(torch.maximum(a, b), c))


def _triple(t, axis):
    """The three neighbours along ``axis`` (padded by one on both sides) of the inner voxels."""
    n = t.shape[axis] - 2
    return t.narrow(axis, 0, n), t.narrow(axis, 1, n), t.narrow(axis, 2, n)


def _median(p, axes):
    """Median over the 3-voxel neighbourhood along ``axes`` of ``p`` (padded by 1 along them)."""
    if len(axes) == 1:
        return _median3(*_triple(p, axes[0]))
    first = _sort3(*_triple(p, axes[0]))  # ranks along the first axis
    if len(axes) == 2:
        lows, mids, highs = (_triple(t, axes[1]) for t in first)
        low = torch.maximum(torch.maximum(lows[0], lows[1]), lows[2])
        high = torch.minimum(torch.minimum(highs[0], highs[1]), highs[2])
        return _median3(low, _median3(*mids), high)
    rows = [_sort3(*_triple(t, 2)) for t in first]  # rows[r][c]: z-rank r, x-rank c
    values = {r * 9 + c * 3 + d: rows[r][c].narrow(1, d, p.shape[1] - 2)
              for r in range(3) for c in range(3) for d in range(3)}
    del first, rows
    for k, (op, a, b) in enumerate(MEDIAN27_NETWORK):
        values[27 + k] = (torch.maximum if op else torch.minimum)(values[a], values[b])
        for v in (a, b):
            if _LAST27[v] == k:
                values.pop(v, None)
    return values[_MEDIAN27_OUT]


def median_filter(a, radius):
    """The median of every voxel's neighbourhood, ``2 r + 1`` voxels along each axis, r in {0, 1}.

    Parameters
    ----------
    a : (z, y, x) float ndarray
    radius : 3 ints, each 0 or 1
        (z, y, x); voxels beyond the edge repeat the nearest (as SimpleITK's ``Median``).

    Returns
    -------
    (z, y, x) ndarray of ``a``'s dtype: bit for bit ``SimpleITK.Median(a, radius[::-1])``.
    """
    a = np.ascontiguousarray(a)
    radius = tuple(int(r) for r in radius)
    if len(radius) != 3 or a.ndim != 3 or any(r not in (0, 1) for r in radius):
        raise ValueError(f"need a (z, y, x) array and radii 0 or 1, got {a.shape} and {radius}")
    axes = tuple(i for i, r in enumerate(radius) if r)
    if not axes:
        return a.copy()
    x = torch.from_numpy(a)
    rz, ry, rx = radius
    p = torch.nn.functional.pad(x[None, None], (rx, rx, ry, ry, rz, rz), mode="replicate")[0, 0]
    out = np.empty_like(a)
    step = max(1, _SLAB_ELEMENTS // max(1, a[:1].size))
    starts = list(range(0, a.shape[0], step))

    def walk(part):  # every slab of one run, its ops on one thread (no OpenMP barrier)
        with torch.no_grad():
            for z0 in part:
                z1 = min(a.shape[0], z0 + step)
                out[z0:z1] = _median(p[z0:z1 + 2 * rz], axes).numpy()

    # the slabs in runs walked by torch's thread count of Python threads, one op thread
    # each (as the loss's slabs, engine/losses.py): measured at load 2-3 on 2 cores, the
    # ~100 small ops a slab on two OpenMP threads took 11-17 CPU-s of MNI152's block (each
    # op's barrier waits for the busy core), against 0.3 CPU-s on a quiet machine
    parts = min(torch.get_num_threads(), MAX_PARTS, len(starts)) if x.device.type == "cpu" else 1
    runs = [starts[i * len(starts) // parts:(i + 1) * len(starts) // parts] for i in range(parts)]
    with _one_cpu_thread(x.device):
        futures = [_part_pool().submit(walk, run) for run in runs[1:]]
        walk(runs[0])
        for f in futures:
            f.result()
    return out
