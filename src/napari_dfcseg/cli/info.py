"""``dfcseg info``: geometry and series of a scan (never patient data)."""

from __future__ import annotations

import os

from ..errors import InvalidInputError
from ._files import quiet_itk, read
from ._options import add_input_choice_options


def register(sub):
    """Add ``info`` to the sub-parsers ``sub``."""
    p = sub.add_parser("info", help="shape, spacing, orientation and series of a scan")
    p.add_argument("input", metavar="INPUT", help="scan file or DICOM folder")
    add_input_choice_options(p)
    p.set_defaults(handler=run_info)


def orientation_codes(direction):
    """Axis codes of a SimpleITK direction matrix, e.g. ``"LPS"`` or ``"RAS"``.

    Each letter is where the x, y and z voxel axes point *towards* in the
    patient (the DICOM / nibabel / 3D Slicer reading of such codes).

    Parameters
    ----------
    direction : sequence of 9 floats or (3, 3) array
        Direction cosines in LPS, row-major, columns = x, y, z voxel axes.

    Examples
    --------
    >>> orientation_codes([1, 0, 0, 0, 1, 0, 0, 0, 1])
    'LPS'
    >>> orientation_codes([-1, 0, 0, 0, -1, 0, 0, 0, 1])
    'RAS'
    """
    import numpy as np

    d = np.asarray(direction, dtype=float).reshape(3, 3)
    towards = (("R", "L"), ("A", "P"), ("I", "S"))  # (negative, positive) LPS axis
    codes = []
    for column in d.T:
        axis = int(np.argmax(np.abs(column)))
        codes.append(towards[axis][int(column[axis] > 0)])
    return "".join(codes)


def run_info(args, cancel):
    """Geometry and series of a scan; never patient data (only what Volume carries)."""
    from ..io import list_series

    path = args.input
    if not os.path.exists(path):
        raise InvalidInputError(f"INPUT {path}: no such file or folder")
    if os.path.isdir(path):
        quiet_itk()
        series = list_series(path)
        if series:  # (none: read below says why, as one error line)
            print(f"{path}: {len(series)} DICOM series")
        for s in series:
            size = f"{s.n_slices} frames in 1 file" if s.multiframe else f"{s.n_slices} slices"
            print(f"  {s.number}: series {s.uid}  {s.modality or '?'}  {size}"
                  f"  {s.description or ''}".rstrip())
    volume = read(path, series=args.series, volume=args.volume)
    shape = tuple(volume.array.shape)
    spacing = ", ".join(f"{s:g}" for s in volume.spacing)
    origin = ", ".join(f"{o:.2f}" for o in volume.origin)
    print(f"shape (z, y, x{', c' if len(shape) == 4 else ''}): {shape}")
    print(f"spacing (z, y, x) mm: {spacing}")
    print(f"orientation (x, y, z voxel axes point towards): {orientation_codes(volume.direction)}")
    print(f"origin (L, P, S) mm: {origin}")
    print(f"modality: {volume.modality or 'unknown'}")
    if volume.description:
        print(f"description: {volume.description}")
    print(f"dtype: {volume.array.dtype}")
    return 0
