"""Exception types shared by the engine, IO, CLI and plugin.

Every error that a user can cause derives from :class:`DFCError`, so that the
CLI and the napari widget can show its one-line message instead of a traceback.
"""

__all__ = ["DFCError", "InvalidInputError", "VolumeIOError", "ModelFileError", "Cancelled"]


class DFCError(Exception):
    """Base class of every error napari-dfcseg raises on purpose."""


class InvalidInputError(DFCError, ValueError):
    """An image, mask, scribble array or parameter that the engine cannot use."""


class VolumeIOError(DFCError, OSError):
    """A scan or label file that cannot be read or written.

    The message names the file and what is wrong with it, on one line.
    """


class ModelFileError(DFCError, ValueError):
    """A saved model file that is missing, corrupt, or not a napari-dfcseg model."""


class Cancelled(DFCError):
    """Raised inside a run when the user's ``cancel`` callable / event fires."""
