"""What every ``dfcseg`` sub-command shares: the one-line parser, argument types,
the progress bar, Ctrl-C handling and the one-line error report."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from contextlib import contextmanager

#: exit status of a run the user stopped (128 + SIGINT, as a shell reports it)
EXIT_CANCELLED = 130
#: exit status of bad input or usage (argparse's own convention)
EXIT_USAGE = 2
#: exit status after SIGTERM (128 + 15, as a shell reports it)
EXIT_TERMINATED = 143
#: seeds are 0..2**32 - 1, the range numpy's legacy seeding and every torch device accept
MAX_SEED = 2**32 - 1


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is the one line ``dfcseg: error: ...``."""

    def error(self, message):
        hint = f" (see '{self.prog} --help')"
        raise UsageError(f"{message}{hint}")


class UsageError(Exception):
    pass


# --------------------------------------------------------------------------- argument types


def positive_int(text):
    value = non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def seed(text):
    """``--seed``: a whole number 0..2**32 - 1."""
    value = non_negative_int(text)
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SEED} (2**32 - 1), got {text}")
    return value


def device(text):
    """``--device``: auto, cpu, or an accelerator this torch build and machine really have."""
    from ..engine.config import DEVICES

    if text not in DEVICES:
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(DEVICES)})")
    if text in ("auto", "cpu"):
        return text
    import torch  # only for an explicit accelerator: --help stays fast

    if text == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(
            f"CUDA is not available (torch {torch.__version__}, built for CUDA "
            f"{torch.version.cuda or 'none'}; no usable GPU found): use --device cpu or auto")
    if text == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise argparse.ArgumentTypeError(
            f"MPS (Apple GPU) is not available in torch {torch.__version__} on this machine: "
            "use --device cpu or auto")
    return text


# --------------------------------------------------------------------------- output


def warning_line(message, category, filename, lineno, file=None, line=None):
    """``warnings.showwarning`` for the command line: ``dfcseg: warning: ...``, one line."""
    text = " ".join(str(message).split())
    print(f"dfcseg: warning: {text}", file=sys.stderr if file is None else file, flush=True)


def say(args, message):
    """A summary line on stdout, unless --quiet (with ``--progress json``: a JSON line)."""
    mode = getattr(args, "progress", "bar")
    if mode in ("json", "slicer"):
        from ._machine_progress import MachineProgress

        MachineProgress(mode, "message").message(message)  # stdout stays machine-readable
    elif not getattr(args, "quiet", False):
        print(message, flush=True)


def error(message):
    """Print ``dfcseg: error: MESSAGE`` as one line on stderr; return the usage exit status."""
    text = " ".join(str(message).split()) or "failed"
    print(f"dfcseg: error: {text}", file=sys.stderr, flush=True)
    return EXIT_USAGE


class Progress:
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


def progress_for(args, desc):
    """A :class:`Progress` bar, enabled when stderr is a terminal and not ``--quiet``;
    with ``--progress json``/``slicer``, machine-readable lines on stdout instead."""
    mode = getattr(args, "progress", "bar")
    if mode in ("json", "slicer"):
        from ._machine_progress import MachineProgress

        return MachineProgress(mode, desc)
    return Progress(mode == "bar" and sys.stderr.isatty() and not getattr(args, "quiet", False), desc)


def run_engine(args, desc, call, cancel):
    """``call(progress)`` under the sub-command's progress display (closed afterwards);
    raises Cancelled if Ctrl-C came meanwhile, so nothing is written after it."""
    from ..engine.result import check_cancel

    progress = progress_for(args, desc)
    try:
        result = call(progress)
    finally:
        progress.close()
    check_cancel(cancel)
    return result


# --------------------------------------------------------------------------- Ctrl-C


class Terminated(BaseException):
    """SIGTERM arrived: stop at once (schedulers and ``docker stop`` follow it with SIGKILL)."""


class _Signals:
    """What SIGINT / SIGTERM do now, and what arrived while the outputs were being committed."""

    def __init__(self, event):
        self.event = event
        self.deferring = False  # set while the outputs are renamed into place, and after
        self.late = []  # signals that arrived then: the outputs are complete regardless

    def handler(self, signum, frame):
        if self.deferring:
            self.late.append(signum)
            return
        if signum == signal.SIGTERM:
            self.event.set()
            raise Terminated
        if self.event.is_set():  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.event.set()  # the engine stops at its next iteration


_active = None


@contextmanager
def signals_cancel(event):
    """While inside, the first Ctrl-C sets ``event`` (the engine then stops at its next
    iteration and raises Cancelled); a second one interrupts at once; SIGTERM interrupts at
    once (:class:`Terminated`).  Yields the state whose ``late`` lists the signals that
    arrived once the outputs were being committed (:func:`signals_deferred`)."""
    global _active
    state = _Signals(event)
    try:
        previous = {sig: signal.signal(sig, state.handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread (e.g. main() called from a worker)
        yield state
        return
    _active = state
    try:
        yield state
    finally:
        _active = None
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def signals_deferred():
    """Inside, SIGINT/SIGTERM are only recorded: the outputs are being put in place.

    If the block fails the signals act again (nothing was committed); if it
    succeeds they stay recorded until the program ends, so that the exit
    status says the outputs were written, which they were.
    """
    state = _active
    if state is None:
        yield
        return
    state.deferring = True
    try:
        yield
    except BaseException:
        state.deferring = False
        raise

