"""Turn third-party reader/writer exceptions into one-line :class:`VolumeIOError`."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import contextmanager

from ..errors import DFCError, VolumeIOError

MAX_DETAIL = 200

# SimpleITK's exception text starts with the C++ source file it was thrown in
# ("Exception thrown in SimpleITK ImageFileReader_Execute: /tmp/SimpleITK-build/...cxx:935:"),
# then "ITK ERROR: NrrdImageIO(0x55...): ..." lines, then for NRRD a chain of
# "[nrrd] function: ..." lines whose last one is the cause
_THROWN_IN = re.compile(r"^Exception thrown in SimpleITK")
_ITK_PREFIX = re.compile(r"^(?:sitk::ERROR|itk::ERROR|ITK ERROR):\s*(?:\w+\(0x[0-9a-fA-F]+\):\s*)?")
_NRRD_PREFIX = re.compile(r"^\[nrrd\]\s*(?:\w+:\s*)?")

# library wording -> the user's: what is wrong with their file ({0}, {1}: the pattern's groups)
_TRUNCATED = "the file is truncated: "
_IN_USER_WORDS = tuple((re.compile(pattern), words) for pattern, words in (
    (r"expected (\d+) bytes but received (\d+)", _TRUNCATED + "{1} of its {0} bytes of voxel data are there"),
    (r"fread got only (\d+) \d+-sized things, not (\d+)", _TRUNCATED + "{0} of its {1} voxels are there"),
    (r"data not read completely\s*ideal = (\d+) : actual = (\d+)",
     _TRUNCATED + "{1} of its {0} bytes of voxel data are there"),
    (r"Compressed file ended before the end-of-stream marker", _TRUNCATED + "its compressed data end early"),
    (r"CRC check failed|Error -3 while decompressing",
     "the file is damaged: its compressed data do not decompress"),
    (r"is not a gzip file|Not a gzipped file", "it is not gzip-compressed (is the .gz suffix right?)"),
    (r"Cannot work out file type of", "it has no valid NIfTI header"),
    (r"Unable to determine ImageIO reader",
     "its content is not an image format SimpleITK reads (is the suffix right?)"),
    (r"DimSize required and not defined|Cannot parse file", "its header is incomplete or damaged"),
))


def _clip(text):
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."


def one_line(err, extra=""):
    """The informative line of a library exception, in the user's words where we know them.

    SimpleITK's messages are multi-line and start with the C++ source path of
    the build; the cause is the ``ITK ERROR`` line or, for NRRD, the last
    ``[nrrd]`` line. ``extra``: what the library printed on the native stderr
    meanwhile (MetaIO explains a truncated ``.mha`` only there).
    """
    text = f"{err}\n{extra}"
    flat = " ".join(text.split())
    for pattern, words in _IN_USER_WORDS:
        found = pattern.search(flat)
        if found:
            return _clip(words.format(*found.groups()))
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip() and not _THROWN_IN.match(ln.strip())]
    nrrd = [_NRRD_PREFIX.sub("", ln) for ln in lines if ln.startswith("[nrrd]")]
    nrrd = [ln for ln in nrrd if ln]
    if nrrd:
        return _clip(nrrd[-1])
    lines = [_ITK_PREFIX.sub("", ln) for ln in lines]
    return _clip((lines or [type(err).__name__])[0])


@contextmanager
def _native_stderr():
    """Collect what C/C++ code writes on file descriptor 2 meanwhile (yields a list that
    holds the text afterwards); on success it is written back, so nothing is lost."""
    caught = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable fd 2 (embedded interpreters)
        yield caught
        return
    with tempfile.TemporaryFile() as spool:
        os.dup2(spool.fileno(), 2)
        failed = False
        try:
            yield caught
        except BaseException:
            failed = True
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            spool.seek(0)
            text = spool.read()
            caught.append(text.decode(errors="replace"))
            if text and not failed:
                os.write(2, text)


@contextmanager
def library_errors(path, what, native_stderr=False):
    """Re-raise any exception from a file library as ``VolumeIOError("<path>: cannot <what>: ...")``.

    Corrupt files make nibabel, zlib, SimpleITK and GDCM raise a wide range
    of exception types; users need one type with a message naming the file.
    With ``native_stderr`` (SimpleITK reads), what the C++ library prints on
    stderr while failing goes into that one line instead of above it.
    """
    caught = []
    try:
        if native_stderr:
            with _native_stderr() as caught:
                yield
        else:
            yield
    except DFCError:
        raise
    except MemoryError:
        raise VolumeIOError(f"{path}: cannot {what}: not enough memory") from None
    except Exception as err:  # noqa: BLE001 - see docstring
        raise VolumeIOError(f"{path}: cannot {what}: {one_line(err, ''.join(caught))}") from None
