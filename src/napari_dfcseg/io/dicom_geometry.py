"""Geometry checks of a sorted DICOM series: orientation, tilt, gaps, repeated positions.

Pure numpy on the headers :mod:`.dicom_scan` read; :mod:`.dicom` calls these
before GDCM reads the pixels, so that a clinician never gets a volume whose
slices are not where the scanner put them.
"""

from __future__ import annotations

import numpy as np

from ..errors import VolumeIOError

__all__ = ["normal_of", "slice_geometry", "check_slice_positions", "split_volumes", "pick_volume"]

# tolerances for the series checks, in mm / direction-cosine units; DICOM
# decimal strings carry ~1e-6 relative precision, scanners round to ~1e-3 mm
POSITION_TOL_MM = 0.01  # two slices closer than this share a position
SPACING_TOL_MM = 0.02  # plus 1% of the spacing: a gap differing more is uneven
TILT_TOL_MM = 0.1  # largest in-plane drift of a slice accepted as "not tilted"
ORIENTATION_TOL = 1e-3

def normal_of(orientation):
    normal = np.cross(orientation[:3], orientation[3:])
    norm = np.linalg.norm(normal)
    return normal / norm if norm > 0 else None


def slice_geometry(headers, where):
    """Positions (n, 3) and orientation (6,) of the sorted headers, checked for consistency."""
    missing = sum(h.position is None or h.orientation is None for h in headers)
    if missing:
        raise VolumeIOError(
            f"{where}: {missing} of {len(headers)} files lack ImagePositionPatient/ImageOrientationPatient; "
            "the slices cannot be ordered in space"
        )
    orientations = np.array([h.orientation for h in headers])
    spread = np.abs(orientations - orientations[0]).max()
    if spread > ORIENTATION_TOL:
        n_kinds = len({tuple(np.round(o, 2)) for o in orientations})
        raise VolumeIOError(
            f"{where}: slices have {n_kinds} different orientations (ImageOrientationPatient); "
            "this looks like a localizer or several stacks in one series"
        )
    if normal_of(orientations[0]) is None:
        raise VolumeIOError(f"{where}: ImageOrientationPatient has parallel row and column directions")
    return np.array([h.position for h in headers]), orientations[0]


def check_slice_positions(positions, orientation, where):
    """Check sorted slice positions; return a warning text or ``None``.

    Raises
    ------
    VolumeIOError
        Duplicate positions, a missing slice or a gantry tilt.
    """
    row, col = orientation[:3], orientation[3:]
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    depths = positions @ normal
    close = np.diff(np.sort(depths)) < POSITION_TOL_MM
    if np.any(close):
        raise VolumeIOError(
            f"{where}: {int(np.sum(close))} slice(s) share a position with another; the series "
            "holds several acquisitions (time points, echoes, phases) at the same place"
        )
    along = np.diff(depths)
    if not (np.all(along > 0) or np.all(along < 0)):
        raise VolumeIOError(f"{where}: the slices could not be ordered by position")
    # in-plane drift of every slice from the stack through the first one:
    # direct differences, so DICOM's rounding of positions does not add up
    offsets = positions - positions[0]
    drift = np.linalg.norm(offsets - np.outer(offsets @ normal, normal), axis=1)
    if drift.max() > TILT_TOL_MM:
        last = int(np.argmax(drift))
        tilt = np.degrees(np.arctan2(drift[last], abs(offsets[last] @ normal)))
        raise VolumeIOError(
            f"{where}: slices are stacked at {tilt:.2f} degrees to their normal (gantry/detector tilt); "
            "resample it first, e.g. with dcm2niix or Slicer's 'Acquisition geometry regularization'"
        )
    gaps = np.abs(along)
    typical = float(np.median(gaps))
    ratio = gaps / typical
    uneven = np.abs(gaps - typical) > SPACING_TOL_MM + 0.01 * typical
    missing = uneven & (ratio > 1.5) & (np.abs(ratio - np.round(ratio)) < 0.1)
    if np.any(missing):
        first = int(np.argmax(missing))
        raise VolumeIOError(
            f"{where}: missing slice(s): {int(np.sum(np.round(ratio[missing]) - 1))} gap(s) in a "
            f"{typical:.3g} mm series, first between slices {first + 1} and {first + 2} "
            f"({gaps[first]:.3g} mm apart)"
        )
    if np.any(uneven):
        mean = (gaps.sum()) / len(gaps)
        worst = np.abs(np.cumsum(np.concatenate([[0.0], gaps])) - mean * np.arange(len(gaps) + 1)).max()
        listed = ", ".join(f"{i + 1}-{i + 2}: {gaps[i]:.3g} mm" for i in np.flatnonzero(uneven)[:5])
        return (
            f"{where}: uneven slice spacing (typical {typical:.3g} mm; {listed}); the volume uses the "
            f"mean spacing {mean:.4g} mm, so slices may be up to {worst:.3g} mm from their true position"
        )
    return None


def _number_or_text(value):
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def split_volumes(headers, normal, where):
    """The volumes of a series whose slice positions repeat (4D: time points, echoes, b-values).

    ``headers`` are sorted along ``normal``.  Volumes are told apart by the
    acquisition's own tags (temporal position, echo number, trigger time,
    b-value, acquisition number) when they give every position exactly one
    image per volume; otherwise by InstanceNumber order at each position.

    Returns
    -------
    list of lists of FileHeader
        One list per volume, each sorted along ``normal``; a single list
        when no position repeats.
    """
    depths = [float(h.position @ normal) for h in headers]
    groups = [[0]]
    for i in range(1, len(headers)):
        if depths[i] - depths[groups[-1][0]] < POSITION_TOL_MM:
            groups[-1].append(i)
        else:
            groups.append([i])
    counts = sorted({len(g) for g in groups})
    if counts == [1]:
        return [list(headers)]
    if len(counts) > 1:
        raise VolumeIOError(
            f"{where}: slice positions hold {counts[0]} to {counts[-1]} images each; the series mixes "
            "acquisitions (time points, echoes, phases) that cannot be separated into volumes"
        )
    n = counts[0]
    keys = sorted({h.volume_key for h in headers}, key=lambda k: tuple(map(_number_or_text, k)))
    if len(keys) == n and all(len({headers[i].volume_key for i in g}) == n for g in groups):
        return [[h for h in headers if h.volume_key == key] for key in keys]
    if all(h.instance is not None for h in headers):
        ranked = [sorted(g, key=lambda i: headers[i].instance) for g in groups]
        return [[headers[r[k]] for r in ranked] for k in range(n)]
    raise VolumeIOError(
        f"{where}: {n} images at each of {len(groups)} slice positions, and neither the acquisition "
        "tags nor InstanceNumber tell the volumes apart"
    )


def pick_volume(volumes, volume, where):
    n = len(volumes)
    if volume is None:
        if n == 1:
            return volumes[0]
        raise VolumeIOError(
            f"{where}: holds {n} volumes at the same {len(volumes[0])} slice positions (time points, "
            f"echoes, b-values...): read one with --volume N (volume=N in Python), N = 1..{n}"
        )
    if not 1 <= volume <= n:
        raise VolumeIOError(f"{where}: no volume {volume}: the series holds {n} (numbers start at 1)")
    return volumes[volume - 1]
