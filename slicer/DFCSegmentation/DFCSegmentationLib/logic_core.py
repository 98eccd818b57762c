"""The DFCSegmentation module's pure logic: no Slicer, no Qt, no napari-dfcseg.

It runs inside Slicer's Python *before* napari-dfcseg is installed (the
module must still load and offer to install it), and in plain pytest here
(tests/test_slicer_logic_core.py).  It holds:

* :class:`RunParameters` and :func:`build_command`: the ``PythonSlicer -m
  napari_dfcseg ...`` command line the module launches with ``qt.QProcess``;
* :func:`parse_progress_line` / :class:`ProgressEvent`: the engine's
  ``--progress json`` lines, for the progress bar and status text;
* geometry helpers between a Slicer IJK-to-RAS matrix and napari-dfcseg's
  ``Volume`` convention (LPS origin/direction, (z, y, x) spacing), and a
  flip-tolerant "same voxel grid" test;
* the install rules (what to install, what never to replace).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "MIN_SLICER_VERSION", "ENGINE_REQUIREMENT", "NEVER_REPLACE", "RunParameters", "build_command",
    "ProgressEvent", "parse_progress_line", "parse_warning_line", "status_text", "worth_logging", "geometry_from_ijk_to_ras",
    "ijk_to_ras_from_geometry", "grid_corners_ras", "same_grid", "slicer_version_ok", "install_method",
]

#: Slicer 5.10 is the first release whose Python (3.12) and PyTorch extension suit the engine
MIN_SLICER_VERSION = (5, 10)
#: what pip installs into Slicer's Python (a local wheel or folder can be set instead, see docs/slicer.md)
ENGINE_REQUIREMENT = "napari-dfcseg"
#: Slicer ships these (its SimpleITK has Slicer's IO; torch comes from the PyTorch extension):
#: installing napari-dfcseg must never replace them
NEVER_REPLACE = ("SimpleITK", "numpy", "torch")

MODES = ("2d", "3d")
DEVICES = ("auto", "cpu", "cuda", "mps")
#: LPS <-> RAS: negate x and y
_FLIP_XY = np.diag([-1.0, -1.0, 1.0, 1.0])


# --------------------------------------------------------------------------- command line


@dataclass
class RunParameters:
    """What the module's widget (and parameter node) holds for one run.

    ``n_tissues`` None means "auto" (the engine decides); ``apply_model_path``
    switches from ``segment`` (train on this scan) to ``apply`` (label it with a
    saved model).  Paths are the temporary files the logic wrote.
    """

    mode: str = "2d"
    n_tissues: int | None = None
    device: str = "auto"
    seed: int = 0
    preset: str | None = None
    max_iter: int | None = None
    mask_path: str | None = None
    scribbles_path: str | None = None
    save_model_path: str | None = None
    apply_model_path: str | None = None
    extra_args: list = field(default_factory=list)

    def validate(self):
        """Raise ValueError with one line naming the bad field."""
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {self.mode!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}; got {self.device!r}")
        for name in ("n_tissues", "max_iter"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a whole number >= 1 or None (auto); got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be a whole number; got {self.seed!r}")
        if self.apply_model_path and (self.scribbles_path or self.save_model_path):
            raise ValueError("apply a saved model, or segment with scribbles / save a model: not both")


def build_command(python, input_path, output_path, params):
    """The argument list (program first) that runs the engine on one volume.

    Parameters
    ----------
    python : str
        Slicer's ``PythonSlicer`` executable (``shutil.which("PythonSlicer")``).
    input_path, output_path : str
        The scan written by the module (NRRD) and the segmentation to read
        back (``.seg.nrrd``).
    params : RunParameters

    Returns
    -------
    list of str
        For ``qt.QProcess.start(program, arguments)``: ``[python, "-m", "napari_dfcseg", ...]``.
    """
    params.validate()
    if params.apply_model_path:
        args = ["apply", str(params.apply_model_path), str(input_path), str(output_path)]
    else:
        args = ["segment", str(input_path), str(output_path), "--mode", params.mode]
        if params.preset:
            args += ["--preset", str(params.preset)]
        if params.n_tissues is not None:
            args += ["--n-clusters", str(params.n_tissues)]
        if params.max_iter is not None:
            args += ["--max-iter", str(params.max_iter)]
        if params.scribbles_path:
            args += ["--scribbles", str(params.scribbles_path)]
        if params.save_model_path:
            args += ["--save-model", str(params.save_model_path)]
    if params.mask_path:
        args += ["--mask", str(params.mask_path)]
    args += ["--device", params.device, "--seed", str(params.seed), "--progress", "json", "--overwrite"]
    return [str(python), "-m", "napari_dfcseg", *args, *map(str, params.extra_args)]


# --------------------------------------------------------------------------- progress


@dataclass(frozen=True)
class ProgressEvent:
    """One ``--progress json`` line (fields absent from the line are None)."""

    stage: str
    fraction: float | None = None
    iteration: int | None = None
    total: int | None = None
    loss: float | None = None
    labels: int | None = None
    message: str | None = None


def _finite(value):
    # the reader's side of cli._machine_progress._number (NaN/inf are written as null); not
    # imported from there: this module loads before napari-dfcseg is installed
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def parse_progress_line(line):
    """A :class:`ProgressEvent` from one stdout line, or None for anything else.

    Accepts the engine's JSON lines and Slicer's ``<filter-progress>x</filter-progress>``;
    other text (a library's stray print) is not an error, just not progress.
    """
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    text = line.strip()
    if text.startswith("<filter-progress>") and text.endswith("</filter-progress>"):
        fraction = _finite(text[len("<filter-progress>"):-len("</filter-progress>")])
        return None if fraction is None else ProgressEvent("progress", fraction=min(max(fraction, 0.0), 1.0))
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("stage"), str):
        return None
    fraction = _finite(data.get("fraction"))

    def whole(key):
        value = data.get(key)
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    return ProgressEvent(
        stage=data["stage"],
        fraction=None if fraction is None else min(max(fraction, 0.0), 1.0),
        iteration=whole("iteration"),
        total=whole("total"),
        loss=_finite(data.get("loss")),
        labels=whole("labels"),
        message=data.get("message") if isinstance(data.get("message"), str) else None,
    )


def parse_warning_line(line):
    """The text of a ``dfcseg: warning: ...`` stderr line (the engine's warnings), or None."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    prefix = "dfcseg: warning:"
    text = line.strip()
    if not text.startswith(prefix):
        return None
    return text[len(prefix):].strip() or None


_STAGE_NAMES = {"train": "Training", "label": "Labelling", "apply": "Labelling", "segment": "Segmenting"}


def status_text(event):
    """A short status line for the module, e.g. ``Training 12/300 - loss 2.710 - 9 labels``."""
    if event.message:
        return event.message
    parts = [_STAGE_NAMES.get(event.stage, event.stage.capitalize())]
    if event.iteration is not None and event.total:
        parts[0] += f" {event.iteration}/{event.total}"
    if event.loss is not None:
        parts.append(f"loss {event.loss:.3f}")
    if event.labels is not None:
        parts.append(f"{event.labels} labels")
    return " - ".join(parts)


def worth_logging(event, every=25):
    """Whether the status box should get a line for ``event``: messages, the first and
    last step of a stage and every ``every``-th iteration (the progress bar shows the rest)."""
    if event.message or event.iteration is None:
        return True
    return event.iteration in (1, event.total) or event.iteration % every == 0


# --------------------------------------------------------------------------- geometry


def geometry_from_ijk_to_ras(ijk_to_ras):
    """napari-dfcseg ``Volume`` geometry of a Slicer IJK-to-RAS matrix.

    Slicer's IJK is (i, j, k) with ``slicer.util.arrayFromVolume`` giving
    ``array[k, j, i]``: the same (z, y, x) order as ``Volume.array``.

    Returns
    -------
    spacing : tuple
        (sz, sy, sx) mm.
    origin : tuple
        LPS mm of voxel (0, 0, 0).
    direction : (3, 3) ndarray
        Columns = LPS unit vectors of i, j, k (SimpleITK's direction).
    """
    lps = _FLIP_XY @ np.asarray(ijk_to_ras, dtype=float).reshape(4, 4)
    spacing_ijk = np.linalg.norm(lps[:3, :3], axis=0)
    if np.any(spacing_ijk <= 0):
        raise ValueError("IJK-to-RAS matrix collapses a voxel axis")
    return tuple(spacing_ijk[::-1]), tuple(lps[:3, 3]), lps[:3, :3] / spacing_ijk


def ijk_to_ras_from_geometry(spacing, origin, direction):
    """Inverse of :func:`geometry_from_ijk_to_ras` (equals ``Volume.affine_ras``)."""
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(direction, dtype=float).reshape(3, 3) @ np.diag(np.asarray(spacing, float)[::-1])
    lps[:3, 3] = origin
    return _FLIP_XY @ lps


def grid_corners_ras(ijk_to_ras, dims_ijk):
    """(8, 3) RAS centres of the corner voxels of a grid with ``dims_ijk`` voxels, sorted."""
    ni, nj, nk = (int(d) - 1 for d in dims_ijk)
    corners = np.array([[i, j, k, 1.0] for i in (0, ni) for j in (0, nj) for k in (0, nk)])
    points = (np.asarray(ijk_to_ras, float).reshape(4, 4) @ corners.T)[:3].T
    return points[np.lexsort(np.round(points, 3).T[::-1])]


def same_grid(ijk_to_ras_a, dims_a, ijk_to_ras_b, dims_b, tol_mm=1e-3):
    """True when two grids have the same voxel centres, whatever their index order.

    A reader may store a left-handed grid with its k axis flipped (and so a
    different IJK-to-RAS matrix): the voxels are still the same points.
    """
    if sorted(int(d) for d in dims_a) != sorted(int(d) for d in dims_b):
        return False
    a, b = grid_corners_ras(ijk_to_ras_a, dims_a), grid_corners_ras(ijk_to_ras_b, dims_b)
    return bool(np.abs(a - b).max() <= tol_mm)


# --------------------------------------------------------------------------- install


def slicer_version_ok(major, minor):
    """True for a Slicer release the module supports (>= :data:`MIN_SLICER_VERSION`)."""
    return (int(major), int(minor)) >= MIN_SLICER_VERSION


def install_method(major, minor):
    """``"pydeps"`` (``slicer.pydeps.pip_ensure``, Slicer >= 5.11) or ``"pip_install"`` (older)."""
    return "pydeps" if (int(major), int(minor)) >= (5, 11) else "pip_install"
