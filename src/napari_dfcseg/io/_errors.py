"""Turn third-party reader/writer exceptions into one-line :class:`VolumeIOError`."""

from __future__ import annotations

from contextlib import contextmanager

from ..errors import DFCError, VolumeIOError

MAX_DETAIL = 200


def one_line(err):
    """The informative line of a library exception (SimpleITK's are multi-line)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    itk = [ln.split("sitk::ERROR:", 1)[1].strip() for ln in lines if "sitk::ERROR:" in ln]
    detail = (itk or lines or [type(err).__name__])[0]
    return detail if len(detail) <= MAX_DETAIL else detail[: MAX_DETAIL - 3] + "..."


@contextmanager
def library_errors(path, what):
    """Re-raise any exception from a file library as ``VolumeIOError("<path>: cannot <what>: ...")``.

    Corrupt files make nibabel, zlib, SimpleITK and GDCM raise a wide range
    of exception types; users need one type with a message naming the file.
    """
    try:
        yield
    except DFCError:
        raise
    except MemoryError:
        raise VolumeIOError(f"{path}: cannot {what}: not enough memory") from None
    except Exception as err:  # noqa: BLE001 - see docstring
        raise VolumeIOError(f"{path}: cannot {what}: {one_line(err)}") from None
