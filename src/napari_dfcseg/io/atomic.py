"""The one home of the output rules: never clobber, never leave a partial file.

Every file napari-dfcseg writes (label volumes, their colour tables, model
files) goes through :func:`stage_outputs`:

1. **Checked up front** (:func:`check_outputs`): an existing target is
   refused unless ``overwrite`` is given *and* it is a file of the kind being
   written (a label volume, a model file); the folder must exist and accept
   a new file (probed by creating one, as permissions, ACLs and read-only
   mounts are only known by trying).
2. **Written to temporary files in the target's folder**, created with
   :func:`tempfile.mkstemp` (``O_CREAT | O_EXCL``, an unpredictable name) and
   written through that descriptor: a symlink planted under a predictable
   name cannot redirect the write.  Each temporary file is ``fsync``-ed.
3. **Committed together** once all of them are complete: without
   ``overwrite`` each is hard-linked to its name, which fails if the name
   appeared meanwhile (another run): the files already committed by this
   call are then removed again and :class:`~napari_dfcseg.errors.VolumeIOError`
   says so; with ``overwrite`` each is renamed over its target
   (``os.replace``).  The folders are ``fsync``-ed after the renames, so a
   power loss leaves either the old files or the complete new ones, never a
   renamed but empty file.

On any failure (full disk, permission, interruption) the temporary files are
removed: nothing partial is left behind.  The commit itself is a few
``link``/``rename`` calls; callers that handle signals (the CLI) defer them
around :meth:`Staged.commit`, so that the exit status tells the truth.
"""

from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import DFCError, VolumeIOError
from ._errors import one_line

__all__ = ["Output", "check_outputs", "stage_outputs", "write_outputs", "Staged"]

# hard links are missing on some file systems (FAT, some SMB/NFS exports): fall
# back to check-then-rename there
_NO_LINK = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


@dataclass
class Output:
    """One file to write.

    Attributes
    ----------
    path : Path
        The target.
    write : callable(file) or None
        Writes the content to an open binary file; ``None`` for an output
        that is only checked (:func:`check_outputs`).
    may_replace : callable(Path) -> bool, optional
        With ``overwrite``, an existing target is replaced only if this
        returns True (e.g. "is a label volume"); ``None``: any file.
    kind : str
        What the file is, for messages ("label volume", "model file").
    """

    path: Path
    write: Callable | None = None
    may_replace: Callable | None = None
    kind: str = "file"

    def __post_init__(self):
        self.path = Path(self.path).expanduser()


def _file_mode():
    """0o666 minus the process umask: what ``open()`` would have created (mkstemp uses 0o600)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _refusal(output, overwrite):
    """Why ``output.path`` may not be (re)placed now, or ``None``."""
    path = output.path
    if path.is_dir():
        return f"{path}: is a folder"
    if os.path.lexists(path):
        if not overwrite:
            return f"{path}: exists; refusing to overwrite it (pass --overwrite / overwrite=True to replace it)"
        if output.may_replace is not None and not output.may_replace(path):
            return f"{path}: exists and is not a {output.kind}; refusing to overwrite it"
    return None


def check_outputs(outputs, *, overwrite=False, error=VolumeIOError, probe=True):
    """Refuse, before any work, outputs that :func:`stage_outputs` would refuse.

    Parameters
    ----------
    outputs : list of Output
    overwrite : bool
        Allow replacing existing targets that ``may_replace`` accepts.
    error : type
        Exception class raised (``VolumeIOError``; ``ModelFileError`` for models).
    probe : bool
        Also create and remove a temporary file in each folder, so that a
        read-only folder is refused now rather than after minutes of work.
    """
    seen = set()
    for output in outputs:
        key = os.path.normcase(os.path.abspath(output.path))
        if key in seen:
            raise error(f"{output.path}: named twice among the outputs")
        seen.add(key)
        folder = output.path.parent
        if not folder.is_dir():
            raise error(f"{output.path}: the folder {folder} does not exist")
        reason = _refusal(output, overwrite)
        if reason:
            raise error(reason)
    if probe:
        for folder in {o.path.parent for o in outputs}:
            try:
                fd, name = tempfile.mkstemp(dir=folder, prefix=".dfcseg-probe-")
                os.close(fd)
                os.unlink(name)
            except OSError as err:
                raise error(f"{folder}: cannot write there: {err.strerror or err}") from None


def _fsync_folder(folder):
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # Windows cannot open folders; its renames are durable on NTFS
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Staged:
    """Complete temporary files, ready to be committed under their names."""

    def __init__(self, outputs, temps, overwrite, error):
        self.outputs, self.temps, self.overwrite, self.error = outputs, temps, overwrite, error
        self.committed = False

    def commit(self):
        """Put every staged file in place; return their paths.

        Raises
        ------
        error
            A target appeared meanwhile (without ``overwrite``) or became a
            file that may not be replaced; nothing of this call is left then.
        """
        placed = []
        try:
            for output, temp in zip(self.outputs, self.temps):
                reason = _refusal(output, self.overwrite)
                if reason:
                    raise self.error(reason + " (it appeared while this run was working)")
                if self.overwrite:
                    os.replace(temp, output.path)
                else:
                    self._link(temp, output.path)
                placed.append((output.path, temp))
        except BaseException:
            for path, temp in placed:  # only files this call created (never a replaced one)
                if not self.overwrite and _same_file(path, temp):
                    path.unlink(missing_ok=True)
            raise
        for folder in {o.path.parent for o in self.outputs}:
            _fsync_folder(folder)
        self.committed = True
        return [o.path for o in self.outputs]

    def _link(self, temp, target):
        try:
            os.link(temp, target)
        except FileExistsError:
            raise self.error(
                f"{target}: exists; refusing to overwrite it (it appeared while this run was working)"
            ) from None
        except OSError as err:
            if err.errno not in _NO_LINK:
                raise
            if os.path.lexists(target):
                raise self.error(f"{target}: exists; refusing to overwrite it") from None
            os.replace(temp, target)


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@contextmanager
def stage_outputs(outputs, *, overwrite=False, error=VolumeIOError):
    """Write every output to a temporary file beside it; yield a :class:`Staged` to commit.

    The temporary files are removed when the block ends, committed or not
    (after a commit they are extra hard links, or already renamed away).

    Raises
    ------
    error
        The checks of :func:`check_outputs`, or an OS error while writing
        (full disk, quota, permission), with the target's name.
    """
    outputs = list(outputs)
    check_outputs(outputs, overwrite=overwrite, error=error, probe=False)
    temps = []
    mode = _file_mode()
    try:
        for output in outputs:
            try:
                fd, name = tempfile.mkstemp(dir=output.path.parent, prefix=f".{output.path.name}.",
                                            suffix=".partial")
            except OSError as err:
                raise error(f"{output.path}: cannot write it: {err.strerror or err}") from None
            temps.append(name)
            try:
                with os.fdopen(fd, "wb") as stream:
                    output.write(stream)
                    stream.flush()
                    os.fsync(stream.fileno())
                os.chmod(name, mode)
            except DFCError:
                raise
            except OSError as err:
                raise error(f"{output.path}: cannot write it: {err.strerror or err}") from None
            except Exception as err:  # noqa: BLE001 - e.g. torch's RuntimeError on a full disk
                raise error(f"{output.path}: cannot write it: {one_line(err)}") from None
        yield Staged(outputs, temps, overwrite, error)
    finally:
        for name in temps:
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass


def write_outputs(outputs, *, overwrite=False, error=VolumeIOError):
    """:func:`stage_outputs` then commit: all outputs in place, or none; returns their paths."""
    with stage_outputs(outputs, overwrite=overwrite, error=error) as staged:
        return staged.commit()
