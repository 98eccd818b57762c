"""napari-dfcseg: training-free CT/MR segmentation by differentiable feature clustering.

The public API is imported lazily so that ``import napari_dfcseg`` (and
napari's start-up with the plugin installed) imports neither torch nor Qt.

>>> from napari_dfcseg import segment, DFCConfig      # doctest: +SKIP
>>> result = segment(volume, mode="2d", spacing=(2.5, 1, 1), config="fast")  # doctest: +SKIP
"""

import logging
from importlib import import_module

from .errors import Cancelled, DFCError, InvalidInputError, ModelFileError, VolumeIOError

__version__ = "0.1.0"

# a library's loggers get a NullHandler only: without one, where the application configured no
# logging (the dfcseg command), Python's last-resort handler printed each engine warning on
# stderr a second time, under the "dfcseg: warning: ..." line of the same warnings.warn
logging.getLogger(__name__).addHandler(logging.NullHandler())

# name -> module that defines it; resolved on first attribute access (PEP 562)
_LAZY = {
    "segment": "napari_dfcseg.engine.pipeline",
    "SegmentationResult": "napari_dfcseg.engine.result",
    "DFCConfig": "napari_dfcseg.engine.config",
    "assemble_inputs": "napari_dfcseg.engine.inputs",
    "EngineInputs": "napari_dfcseg.engine.inputs",
    "train_model": "napari_dfcseg.engine.pipeline",
    "apply_model": "napari_dfcseg.engine.pipeline",
    "load_model": "napari_dfcseg.engine.model",
    "Model": "napari_dfcseg.engine.model",
    "read_volume": "napari_dfcseg.io",
    "write_labels": "napari_dfcseg.io",
    "Volume": "napari_dfcseg.io",
    "list_series": "napari_dfcseg.io",
}

__all__ = [
    "__version__",
    "DFCError",
    "InvalidInputError",
    "VolumeIOError",
    "ModelFileError",
    "Cancelled",
    *_LAZY,
]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
