"""The ``dfcseg`` command line: segment, train, apply, info and demo.

Every error a user can cause (a missing file, an unreadable scan, a mask of the
wrong shape, an unknown preset...) ends the program with exit status 2 and one
line ``dfcseg: error: ...`` on stderr: no traceback, and no output file,
because outputs are written only once the whole run has succeeded (all of them
together: :mod:`napari_dfcseg.io.atomic`). Ctrl-C ends it with status 130,
SIGTERM with 143, and nothing written; a signal that arrives while the outputs
are being put in place is deferred until they are complete (status 0).

Heavy modules (torch, SimpleITK, matplotlib) are imported inside the
sub-commands, so ``dfcseg --help`` and ``dfcseg --version`` answer at once.

Layout: ``_common`` (parser class, argument types, progress bar, Ctrl-C, error
line), ``_files`` (reading inputs, checking and writing outputs), ``_options``
(options shared by sub-commands, the DFCConfig they build) and one module per
group of sub-commands, each with a ``register(sub)`` that adds its parsers and
sets ``handler``. A new sub-command is a new module added to ``_SUBCOMMANDS``.
"""

from __future__ import annotations

import sys
import threading
import warnings

from .. import __version__
from ..errors import Cancelled, DFCError
from . import batch, demo, info, model, segment
from ._common import (EXIT_CANCELLED, EXIT_TERMINATED, EXIT_USAGE, OneLineParser, Terminated,
                      UsageError, error, signals_cancel, warning_line)
from .info import orientation_codes

__all__ = ["main", "build_parser", "orientation_codes", "EXIT_CANCELLED", "EXIT_TERMINATED", "EXIT_USAGE"]

#: modules with a ``register(sub)``, in the order ``dfcseg --help`` lists them
_SUBCOMMANDS = (segment, model, batch, info, demo)


def build_parser():
    """The ``dfcseg`` argument parser (exposed for the docs and the tests)."""
    parser = OneLineParser(
        prog="dfcseg",
        description="Training-free CT/MR segmentation by differentiable feature clustering.",
        epilog="Exit status: 0 success (every output written), 2 bad input or usage, 130 interrupted "
               "(Ctrl-C), 143 terminated (SIGTERM); on 2, 130 and 143 nothing was written.",
    )
    parser.add_argument("--version", action="version", version=f"dfcseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for module in _SUBCOMMANDS:
        module.register(sub)
    return parser


def main(argv=None):
    """Run ``dfcseg`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return error(exc)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    cancel = threading.Event()
    try:
        with signals_cancel(cancel) as signals, warnings.catch_warnings():
            warnings.showwarning = warning_line  # the engine's warnings, as one line each
            status = args.handler(args, cancel)
        if signals.late:  # they arrived while the outputs were put in place: those are complete
            print("dfcseg: interrupt received after the outputs were complete; they are kept",
                  file=sys.stderr, flush=True)
        return status
    except Terminated:
        print("dfcseg: terminated, nothing written", file=sys.stderr, flush=True)
        return EXIT_TERMINATED
    except (Cancelled, KeyboardInterrupt):
        print("dfcseg: interrupted, nothing written", file=sys.stderr, flush=True)
        return EXIT_CANCELLED
    except DFCError as exc:
        return error(exc)
    except OSError as exc:
        # writing: permission denied, disk full, ... (reading errors are DFCErrors already)
        return error(exc)
    except MemoryError:
        return error("out of memory: try --mode 2d, a mask, or a smaller volume")
