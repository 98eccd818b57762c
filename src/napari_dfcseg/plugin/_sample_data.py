"""npe2 sample data: the synthetic head phantom and nilearn's MNI152 T1 template."""

from __future__ import annotations

from pathlib import Path

from ._layers import image_layer_data

__all__ = ["head_phantom_sample", "mni152_sample", "mni152_template_path"]

_MNI_FILE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def head_phantom_sample():
    """A small T1-like head phantom generated on the fly (nothing is downloaded)."""
    from napari_dfcseg.datasets import head_phantom
    from napari_dfcseg.io import Volume

    phantom = head_phantom()
    volume = Volume.from_array(phantom.image, spacing=phantom.spacing)
    return [image_layer_data(volume, name="head phantom")]


def mni152_template_path():
    """Path of the MNI152 2009 T1 template that the ``nilearn`` wheel ships.

    Raises
    ------
    VolumeIOError
        If nilearn is not installed or does not contain the template.
    """
    from napari_dfcseg.errors import VolumeIOError

    try:
        import nilearn
    except ImportError:
        raise VolumeIOError(
            "the MNI152 sample needs the optional nilearn package: pip install nilearn"
        ) from None
    path = Path(nilearn.__file__).parent / "datasets" / "data" / _MNI_FILE
    if not path.is_file():
        raise VolumeIOError(f"{path}: MNI152 template not found in this nilearn installation")
    return path


def mni152_sample():
    """The MNI152 2009c T1 template (1 mm, 197 × 233 × 189) read with its geometry."""
    from napari_dfcseg.io import read_volume

    volume = read_volume(mni152_template_path())
    return [image_layer_data(volume, name="MNI152 T1")]
