"""The ``dfcseg`` command line: segment, train, apply, info and demo.

Every error a user can cause (a missing file, an unreadable scan, a mask of the
wrong shape, an unknown preset...) ends the program with exit status 2 and one
line ``dfcseg: error: ...`` on stderr: no traceback, and no output file,
because outputs are written only once the whole run has succeeded. Ctrl-C ends
it with status 130 and nothing written.

Heavy modules (torch, SimpleITK, matplotlib) are imported inside the
sub-commands, so ``dfcseg --help`` and ``dfcseg --version`` answer at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from . import __version__
from .errors import Cancelled, DFCError, InvalidInputError

__all__ = ["main", "build_parser", "orientation_codes"]

#: exit status of a run the user stopped (128 + SIGINT, as a shell reports it)
EXIT_CANCELLED = 130
#: exit status of bad input or usage (argparse's own convention)
EXIT_USAGE = 2

_LABEL_SUFFIXES = (".nii", ".nii.gz")


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is the one line ``dfcseg: error: ...``."""

    def error(self, message):
        hint = f" (see '{self.prog} --help')"
        raise _UsageError(f"{message}{hint}")


class _UsageError(Exception):
    pass


# --------------------------------------------------------------------------- parser


def _add_engine_options(p, *, scribbles=True):
    """Options shared by ``segment`` and ``train``: the method's parameters."""
    p.add_argument("--mode", choices=("2d", "3d"), default="2d",
                   help="cluster slice by slice (2d, default) or the whole volume (3d)")
    p.add_argument("--preset", default=None, metavar="NAME",
                   help="parameter preset: default, paper or fast (docs/method.md); default: default")
    p.add_argument("--mask", action="append", default=None, metavar="PATH",
                   help="label/mask volume on the same grid: only voxels > 0 are segmented"
                        " (train: once per INPUT)")
    if scribbles:
        p.add_argument("--scribbles", default=None, metavar="PATH",
                       help="label volume on the same grid with user scribbles (0 = none)")
    p.add_argument("--channel", nargs="+", default=[], metavar="EXTRA_INPUT",
                   help="co-registered volumes stacked as extra channels (e.g. T2, FLAIR)")
    p.add_argument("--series", default=None, metavar="UID",
                   help="DICOM SeriesInstanceUID to read when a folder holds several")
    p.add_argument("--max-iter", type=_positive_int, default=None, metavar="N",
                   help="maximum number of iterations")
    p.add_argument("--min-labels", type=_positive_int, default=None, metavar="K",
                   help="stop once the number of labels falls to K")
    p.add_argument("--n-clusters", type=_positive_int, default=None, metavar="K",
                   help="merge the clusters down to K labels at the end")
    p.add_argument("--anchor", type=_non_negative_float, default=None, metavar="W",
                   help="weight of the intensity mixture in the self-labels (keeps thin "
                        "classes such as CSF; 0 = off, the paper's argmax; default: the preset's)")
    p.add_argument("--min-size", type=_non_negative_int, default=None, metavar="N",
                   help="merge connected regions smaller than N voxels into a neighbour")
    _add_run_options(p)


def _add_run_options(p):
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto",
                   help="torch device (default auto: cuda, then mps, then cpu)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")


def _add_output_options(p):
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUTPUT if it exists and is a label volume (never a scan or an input)")


def _positive_int(text):
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def build_parser():
    """The ``dfcseg`` argument parser (exposed for the docs and the tests)."""
    parser = _OneLineParser(
        prog="dfcseg",
        description="Training-free CT/MR segmentation by differentiable feature clustering.",
        epilog="Exit status: 0 success, 2 bad input or usage, 130 interrupted (Ctrl-C).",
    )
    parser.add_argument("--version", action="version", version=f"dfcseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_OneLineParser)

    p = sub.add_parser("segment", help="segment one scan, write a NIfTI label volume")
    p.add_argument("input", metavar="INPUT", help="scan: NIfTI, NRRD, MHA, ... or a DICOM folder")
    p.add_argument("output", metavar="OUTPUT", help="label volume to write (.nii or .nii.gz)")
    _add_engine_options(p)
    p.add_argument("--save-model", default=None, metavar="PATH",
                   help="also save the trained network, to apply to other scans")
    _add_output_options(p)

    p = sub.add_parser("train", help="train a reference model on one or more scans")
    p.add_argument("model", metavar="MODEL", help="model file to write (.pt)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="training scans")
    _add_engine_options(p, scribbles=False)
    _add_output_options(p)

    p = sub.add_parser("apply", help="label a scan with a trained reference model")
    p.add_argument("model", metavar="MODEL", help="model file written by train or --save-model")
    p.add_argument("input", metavar="INPUT", help="scan to label")
    p.add_argument("output", metavar="OUTPUT", help="label volume to write (.nii or .nii.gz)")
    p.add_argument("--mask", default=None, metavar="PATH", help="only label voxels > 0")
    p.add_argument("--series", default=None, metavar="UID", help="DICOM series to read")
    p.add_argument("--channel", nargs="+", default=[], metavar="EXTRA_INPUT",
                   help="extra channels, as when the model was trained")
    p.add_argument("--min-size", type=_non_negative_int, default=None, metavar="N",
                   help="merge connected regions smaller than N voxels into a neighbour")
    _add_run_options(p)
    _add_output_options(p)

    p = sub.add_parser("info", help="shape, spacing, orientation and series of a scan")
    p.add_argument("input", metavar="INPUT", help="scan file or DICOM folder")
    p.add_argument("--series", default=None, metavar="UID", help="DICOM series to describe")

    p = sub.add_parser("demo", help="segment a synthetic head phantom and write an overview")
    p.add_argument("outdir", nargs="?", default="demo-output", metavar="OUTDIR",
                   help="folder for the results (default ./demo-output)")
    p.add_argument("--preset", default="default", metavar="NAME",
                   help="parameter preset (default: default)")
    # measured on the phantom: 60 iterations of the default preset give a mean brain Dice of
    # 0.92 in 43 CPU-s, its full 300 give 0.89 in 270 CPU-s (docs/cli.md)
    p.add_argument("--max-iter", type=_positive_int, default=60, metavar="N",
                   help="maximum number of iterations (default 60)")
    p.add_argument("--shape", type=_positive_int, nargs=3, default=(40, 112, 96),
                   metavar=("Z", "Y", "X"), help="phantom size in voxels (default 40 112 96)")
    _add_run_options(p)
    return parser


# --------------------------------------------------------------------------- helpers


def _say(args, message):
    """A summary line on stdout, unless --quiet."""
    if not getattr(args, "quiet", False):
        print(message, flush=True)


class _Progress:
    """The engine's ``progress(i, n, info)`` callback, drawn as a tqdm bar on stderr.

    The bar is shown only when stderr is a terminal and ``--quiet`` was not
    given, so that logs and pipes get no control characters.
    """

    def __init__(self, enabled, desc):
        self.enabled = enabled
        self.desc = desc
        self.bar = None

    def __call__(self, i, n, info=None):
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=n, desc=self.desc, unit="it", file=sys.stderr, leave=False,
                            ncols=_terminal_columns())
        if n and self.bar.total != n:
            self.bar.total = n
        self.bar.n = i
        if isinstance(info, dict):
            shown = {k: v for k, v in info.items() if isinstance(v, (int, float, str))}
            self.bar.set_postfix(shown, refresh=False)
        self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _terminal_columns():
    """stderr's width; a terminal that reports 0 columns (some ptys) gets 100."""
    try:
        columns = os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError, AttributeError):
        columns = 0
    return columns or 100


def _progress(args, desc):
    return _Progress(sys.stderr.isatty() and not getattr(args, "quiet", False), desc)


@contextmanager
def _sigint_cancels(event):
    """While inside, the first Ctrl-C sets ``event`` (the engine then stops at its
    next iteration and raises Cancelled); a second one interrupts at once."""

    def handler(signum, frame):
        if event.is_set():
            raise KeyboardInterrupt
        event.set()

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (e.g. main() called from a worker)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _check_cancel(event):
    if event.is_set():
        raise Cancelled("interrupted")


def _check_output(output, inputs, *, overwrite, suffixes=_LABEL_SUFFIXES, what="OUTPUT"):
    """Refuse an output that would overwrite an input or any existing file."""
    from .io import is_label_volume, is_same_file

    out = Path(output)
    if not str(out.name).lower().endswith(suffixes):
        raise InvalidInputError(f"{what} {output}: must end with {' or '.join(suffixes)}")
    for path in inputs:
        if path is not None and is_same_file(out, path):
            raise InvalidInputError(f"{what} {output} is the input {path}: refusing to overwrite a scan")
    if out.is_dir():
        raise InvalidInputError(f"{what} {output} is a folder")
    if out.exists() and not overwrite:
        raise InvalidInputError(f"{what} {output} exists: pass --overwrite to replace it")
    if out.exists() and suffixes == _LABEL_SUFFIXES and not is_label_volume(out):
        # write_labels refuses it too, but only after the run: say so before the minutes of work
        raise InvalidInputError(f"{what} {output} exists and is not a label volume: refusing to"
                                " overwrite it")
    if not out.parent.exists() and str(out.parent) != "":
        raise InvalidInputError(f"{what} {output}: folder {out.parent} does not exist")


def _quiet_itk():
    """ITK prints warnings (e.g. 'No Series were found') straight to stderr: keep it to one line."""
    import SimpleITK as sitk

    sitk.ProcessObject_SetGlobalWarningDisplay(False)


def _read(path, *, series=None, what="INPUT"):
    """read_volume with the argument's name in the message of plain OS errors."""
    from .io import read_volume

    _quiet_itk()
    if not os.path.exists(path):
        raise InvalidInputError(f"{what} {path}: no such file or folder")
    try:
        return read_volume(path, series=series)
    except DFCError:
        raise
    except (OSError, ValueError, RuntimeError, EOFError) as exc:
        # a reader library's own error (SimpleITK raises RuntimeError): name the file
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InvalidInputError(f"{what} {path}: cannot read it ({first_line})") from None


def _read_on_grid(path, shape, *, what):
    """A mask/scribble/channel volume that must have the scan's spatial shape."""
    import numpy as np

    vol = _read(path, what=what)
    array = np.asarray(vol.array)
    if array.shape[:3] != tuple(shape):
        raise InvalidInputError(
            f"{what} {path}: shape {array.shape[:3]} does not match INPUT shape {tuple(shape)}"
        )
    return array


def _load_image(args, path, *, mask_path=None):
    """The scan, its extra channels and mask: (volume, image, channel_axis, mask)."""
    import numpy as np

    volume = _read(path, series=getattr(args, "series", None))
    image = np.asarray(volume.array)
    spatial = image.shape[:3]
    channel_axis = -1 if image.ndim == 4 else None
    if args.channel:
        extra = [_read_on_grid(p, spatial, what="--channel") for p in args.channel]
        parts = [image if image.ndim == 4 else image[..., None]]
        parts += [e if e.ndim == 4 else e[..., None] for e in extra]
        image = np.concatenate([p.astype(np.float32, copy=False) for p in parts], axis=-1)
        channel_axis = -1
    mask = None
    if mask_path is not None:
        mask = _read_on_grid(mask_path, spatial, what="--mask")
        mask = (mask[..., 0] if mask.ndim == 4 else mask) > 0
    return volume, image, channel_axis, mask


def _config(args):
    """DFCConfig from --preset and the explicit overrides."""
    import dataclasses

    from .engine.config import resolve_config

    try:
        config = resolve_config(args.preset)  # None: the "default" preset
    except DFCError as exc:
        raise InvalidInputError(f"--preset: {exc}") from None
    overrides = {
        "max_iter": getattr(args, "max_iter", None),
        "min_labels": getattr(args, "min_labels", None),
        "n_clusters": getattr(args, "n_clusters", None),
        "min_size": getattr(args, "min_size", None),
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        config = dataclasses.replace(config, **overrides)
    anchor = getattr(args, "anchor", None)
    return config if anchor is None else config.with_anchor(anchor)


def _write(output, labels, like, names=None):
    from .io import write_labels

    Path(output).parent.mkdir(parents=True, exist_ok=True)
    return write_labels(output, labels, like=like, names=names)


def _save_model(model, path):
    """model.save to a temporary file beside ``path``, renamed at the end."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}{''.join(target.suffixes)}")
    try:
        model.save(tmp)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


def _label_summary(labels):
    import numpy as np

    values = np.unique(labels)
    return int(values[values > 0].size)


# --------------------------------------------------------------------------- commands


def _cmd_segment(args, cancel):
    _check_output(args.output, [args.input, args.mask and args.mask[0], args.scribbles,
                                *args.channel], overwrite=args.overwrite)
    if args.mask and len(args.mask) > 1:
        raise InvalidInputError("--mask: give one mask for segment")
    if args.save_model:
        _check_output(args.save_model, [args.input, args.output], overwrite=args.overwrite,
                      suffixes=(".pt", ".pth"), what="--save-model")
    config = _config(args)
    volume, image, channel_axis, mask = _load_image(
        args, args.input, mask_path=args.mask[0] if args.mask else None)
    scribbles = None
    if args.scribbles:
        scribbles = _read_on_grid(args.scribbles, image.shape[:3], what="--scribbles")
        scribbles = scribbles[..., 0] if scribbles.ndim == 4 else scribbles
    _check_cancel(cancel)
    from .engine.segment import segment

    progress = _progress(args, "segment")
    try:
        result = segment(
            image, mode=args.mode, spacing=tuple(volume.spacing), channel_axis=channel_axis,
            mask=mask, scribbles=scribbles, config=config, seed=args.seed, device=args.device,
            progress=progress, cancel=cancel,
        )
    finally:
        progress.close()
    _check_cancel(cancel)
    written = _write(args.output, result.labels, volume)
    if args.save_model:
        _save_model(result.model, args.save_model)
        written = [*written, args.save_model]
    stopped = getattr(result, "stopped_by", "")
    _say(args, f"{_label_summary(result.labels)} labels after {result.n_iterations} iterations"
               f"{f' (stopped by {stopped})' if stopped else ''};"
               f" wrote {', '.join(str(p) for p in written)}")
    return 0


def _cmd_train(args, cancel):
    _check_output(args.model, [*args.inputs, *(args.mask or [])], overwrite=args.overwrite,
                  suffixes=(".pt", ".pth"), what="MODEL")
    masks = args.mask or []
    if masks and len(masks) != len(args.inputs):
        raise InvalidInputError(f"--mask: give one per INPUT ({len(args.inputs)}), got {len(masks)}")
    config = _config(args)
    images, spacings, mask_arrays, channel_axis = [], [], [], None
    for i, path in enumerate(args.inputs):
        volume, image, channel_axis, mask = _load_image(
            args, path, mask_path=masks[i] if masks else None)
        images.append(image)
        spacings.append(tuple(volume.spacing))
        mask_arrays.append(mask)
        _check_cancel(cancel)
    from .engine.model import train_model

    progress = _progress(args, "train")
    try:
        model = train_model(
            images, mode=args.mode, spacings=spacings, channel_axis=channel_axis,
            masks=mask_arrays if masks else None, config=config, seed=args.seed,
            device=args.device, progress=progress, cancel=cancel,
        )
    finally:
        progress.close()
    _check_cancel(cancel)
    _save_model(model, args.model)
    _say(args, f"trained on {len(images)} scan(s); wrote {args.model}")
    return 0


def _cmd_apply(args, cancel):
    import dataclasses

    _check_output(args.output, [args.input, args.model, args.mask, *args.channel],
                  overwrite=args.overwrite)
    if not os.path.exists(args.model):
        raise InvalidInputError(f"MODEL {args.model}: no such file")
    from .engine.model import apply_model, load_model

    model = load_model(args.model)
    volume, image, channel_axis, mask = _load_image(args, args.input, mask_path=args.mask)
    _check_cancel(cancel)
    if args.min_size is not None:
        model.config = dataclasses.replace(model.config, min_size=args.min_size)
    progress = _progress(args, "apply")
    try:
        labels = apply_model(model, image, spacing=tuple(volume.spacing), channel_axis=channel_axis,
                             mask=mask, device=args.device, progress=progress, cancel=cancel)
    finally:
        progress.close()
    labels = getattr(labels, "labels", labels)
    _check_cancel(cancel)
    written = _write(args.output, labels, volume)
    _say(args, f"{_label_summary(labels)} labels; wrote {', '.join(str(p) for p in written)}")
    return 0


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


def _cmd_info(args, cancel):
    """Geometry and series of a scan; never patient data (only what Volume carries)."""
    from .io import list_series

    path = args.input
    if not os.path.exists(path):
        raise InvalidInputError(f"INPUT {path}: no such file or folder")
    if os.path.isdir(path):
        _quiet_itk()
        series = list_series(path)
        if series:  # (none: read_volume below says why, as one error line)
            print(f"{path}: {len(series)} DICOM series")
        for s in series:
            print(f"  series {s.uid}  {s.modality or '?'}  {s.n_slices} slices"
                  f"  {s.description or ''}".rstrip())
    volume = _read(path, series=args.series)
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


def _cmd_demo(args, cancel):
    """Segment the synthetic head phantom, score it, write NIfTI files and a PNG."""
    from .demo import run_demo

    outdir = Path(args.outdir)
    if outdir.exists() and not outdir.is_dir():
        raise InvalidInputError(f"OUTDIR {outdir} exists and is not a folder")
    config = _config(args)
    progress = _progress(args, "demo")
    try:
        report = run_demo(outdir, shape=tuple(args.shape), config=config, seed=args.seed,
                          device=args.device, progress=progress, cancel=cancel)
    finally:
        progress.close()
    _say(args, report)
    return 0


_COMMANDS = {
    "segment": _cmd_segment,
    "train": _cmd_train,
    "apply": _cmd_apply,
    "info": _cmd_info,
    "demo": _cmd_demo,
}


# --------------------------------------------------------------------------- main


def _error(message):
    # one line, whatever the message held
    text = " ".join(str(message).split()) or "failed"
    print(f"dfcseg: error: {text}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def main(argv=None):
    """Run ``dfcseg`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        return _error(exc)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    cancel = threading.Event()
    try:
        with _sigint_cancels(cancel):
            return _COMMANDS[args.command](args, cancel)
    except (Cancelled, KeyboardInterrupt):
        print("dfcseg: interrupted, nothing written", file=sys.stderr, flush=True)
        return EXIT_CANCELLED
    except DFCError as exc:
        return _error(exc)
    except OSError as exc:
        # writing: permission denied, disk full, ... (reading errors are DFCErrors already)
        return _error(exc)
    except MemoryError:
        return _error("out of memory: try --mode 2d, a mask, or a smaller volume")


if __name__ == "__main__":
    sys.exit(main())
