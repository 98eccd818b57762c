"""The one place that maps a :class:`~napari_dfcseg.io.Volume` to napari layers and back.

napari world coordinates are patient LPS millimetres in (z, y, x) order. The
geometry travels with each layer twice: as the layer's own transform (so that
scans and labels overlay where they are in the patient) and as
``metadata["dfcseg"]`` (so that labels drawn on a scan are saved with exactly
the scan's header, not with a float round-trip of napari's transform).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "METADATA_KEY",
    "TRANSFORM_KEYS",
    "display_contrast_limits",
    "image_layer_data",
    "labels_colormap",
    "labels_layer_data",
    "region_colormap",
    "output_layer_kwargs",
    "slice_layer_kwargs",
    "world_affine_of_layer",
    "spacing_of_layer",
    "volume_of_layer",
    "volume_of_layer_state",
    "world_affine_of_state",
]

#: key of the layer metadata that holds ``Volume.to_metadata()``
METADATA_KEY = "dfcseg"

#: layer attributes that together place the data in the world
TRANSFORM_KEYS = ("scale", "translate", "rotate", "shear", "affine")

# CT soft-tissue window W400 / L40 (HU), what a radiologist opens a head or body CT with
_CT_WINDOW = (40.0 - 200.0, 40.0 + 200.0)
# MR has no absolute scale: clip to robust percentiles of the (subsampled) volume
_MR_PERCENTILES = (0.5, 99.5)
_MR_SAMPLE = 2_000_000


def display_contrast_limits(array, modality=""):
    """Display window of a scan: CT soft-tissue window for CT, robust percentiles otherwise.

    Parameters
    ----------
    array : ndarray
        The scan's voxel values.
    modality : str
        DICOM modality ("CT", "MR", ...); anything but "CT" uses percentiles.

    Returns
    -------
    tuple of 2 floats
        (low, high), with ``high > low``.
    """
    if str(modality).upper() == "CT":
        return _CT_WINDOW
    flat = np.asarray(array).ravel()
    step = max(1, flat.size // _MR_SAMPLE)
    sample = flat[::step]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return (0.0, 1.0)
    low, high = (float(v) for v in np.percentile(sample, _MR_PERCENTILES))
    if high <= low:
        low, high = float(sample.min()), float(sample.max())
    if high <= low:
        high = low + 1.0
    return (low, high)


def image_layer_data(volume, name=None):
    """napari layer-data tuple of a scan: data, geometry, display window and metadata.

    Parameters
    ----------
    volume : Volume
        A scan read by :func:`napari_dfcseg.io.read_volume`.
    name : str, optional
        Layer name; defaults to the series description or the file name.

    Returns
    -------
    tuple
        ``(array, kwargs, "image")`` as napari readers return it.
    """
    kwargs = _placement(volume, name)
    kwargs["contrast_limits"] = display_contrast_limits(volume.array, volume.modality)
    kwargs["colormap"] = "gray"
    return (volume.array, kwargs, "image")


def labels_layer_data(volume, name=None, names=None, colours=None):
    """napari layer-data tuple of a label volume: a Labels layer with its names and colours.

    Parameters
    ----------
    volume : Volume
        An integer label volume.
    name : str, optional
        Layer name; defaults to the file name.
    names : dict, optional
        ``{label: name}`` (from an ITK-SNAP ``.labels.txt``), kept in the layer's ``features``.
    colours : dict, optional
        ``{label: (r, g, b)}`` 0-255; labels without one get :func:`labels_colormap`'s colour.

    Returns
    -------
    tuple
        ``(array, kwargs, "labels")``.
    """
    import pandas as pd

    array = np.asarray(volume.array)
    if not np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.uint16 if array.max(initial=0) > 255 else np.uint8)
    kwargs = _placement(volume, name)
    high = int(array.max(initial=0))
    # a colour per label up to 1023 (more would be a slow colormap; the rest are grey)
    kwargs["colormap"] = labels_colormap(min(max(high, 1), 1023), colours)
    kwargs["opacity"] = 0.5
    if names:
        labels = sorted(names)
        kwargs["features"] = pd.DataFrame({"index": labels, "name": [names[k] for k in labels]})
    return (array, kwargs, "labels")


def _placement(volume, name):
    kwargs = dict(volume.napari_transform())
    # spacings read as 6.499999999999998 (a float32 header) make napari's slider
    # one step short of the last slice; 10 significant digits are exact for
    # every real voxel size and drop that noise. The writer uses the metadata.
    kwargs["scale"] = tuple(float(f"{s:.10g}") for s in kwargs["scale"])
    kwargs["name"] = name or _layer_name(volume)
    kwargs["metadata"] = {METADATA_KEY: volume.to_metadata()}
    return kwargs


def _layer_name(volume):
    from pathlib import Path

    if volume.description:
        return str(volume.description)
    if volume.source:
        from napari_dfcseg.io.suffixes import strip_suffix

        return strip_suffix(Path(str(volume.source)).name)
    return "scan"


def output_layer_kwargs(source_layer):
    """Transform and geometry kwargs that make a new layer sit exactly on ``source_layer``.

    Copies napari's own transform parameters (no float round-trip) and the
    scan geometry kept in the metadata, so the writer can save the new layer
    with the source scan's header.
    """
    kwargs = {key: np.array(getattr(source_layer, key), copy=True) for key in TRANSFORM_KEYS[:-1]}
    kwargs["affine"] = np.array(source_layer.affine.affine_matrix, copy=True)
    meta = source_layer.metadata.get(METADATA_KEY)
    kwargs["metadata"] = {METADATA_KEY: dict(meta)} if meta else {}
    return kwargs


def world_affine_of_state(state):
    """4 × 4 data-to-world matrix (z, y, x) of a layer from its saved state.

    ``state`` is the ``meta`` dict napari passes to writers (or
    ``layer._get_state()``): napari applies scale, shear, rotate and
    translate first, then the ``affine`` parameter.
    """
    from napari.utils.transforms import Affine

    ndim = len(state["scale"])
    linear = Affine(
        scale=state["scale"],
        translate=state["translate"],
        rotate=state.get("rotate"),
        shear=state.get("shear"),
        ndim=ndim,
    )
    extra = state.get("affine")
    if extra is None:
        return linear.affine_matrix
    extra = np.asarray(getattr(extra, "affine_matrix", extra), dtype=float)
    return extra @ linear.affine_matrix


def world_affine_of_layer(layer):
    """4 × 4 data-to-world matrix of a napari layer (scale, rotate, ... and affine composed)."""
    state = {key: getattr(layer, key) for key in TRANSFORM_KEYS}
    return world_affine_of_state(state)


def slice_layer_kwargs(source_layer, index):
    """Kwargs placing a ``(1, y, x)`` layer exactly on slice ``index`` (data axis 0) of a 3D layer.

    Used for the live preview, which the engine computes for one slice.
    """
    shift = np.eye(4)
    shift[0, 3] = float(index)
    return {"affine": world_affine_of_layer(source_layer) @ shift}


def volume_of_layer_state(data, state):
    """The :class:`Volume` of layer data: the source scan's geometry when the layer has it.

    Falls back to the layer's transform (a layer made outside this plugin).
    """
    from napari_dfcseg.io import Volume

    data = np.asarray(data)
    meta = (state.get("metadata") or {}).get(METADATA_KEY)
    if meta:
        return Volume.from_metadata(meta, data)
    return Volume.from_napari_affine(data, world_affine_of_state(state))


def volume_of_layer(layer):
    """The :class:`Volume` of a napari layer (see :func:`volume_of_layer_state`)."""
    state = {key: getattr(layer, key) for key in TRANSFORM_KEYS}
    state["metadata"] = layer.metadata
    return volume_of_layer_state(layer.data, state)


def spacing_of_layer(layer):
    """Voxel size in mm (per data axis) of a layer: the scan's spacing if known, else ``|scale|``."""
    meta = layer.metadata.get(METADATA_KEY)
    if meta and "spacing" in meta and len(meta["spacing"]) == layer.ndim:
        return tuple(float(s) for s in meta["spacing"])
    return tuple(float(abs(s)) for s in layer.scale)


def labels_colormap(max_label=255, colours=None):
    """A napari ``DirectLabelColormap`` with ITK-SNAP/Slicer's colours for labels 1..max_label.

    Label 0 is transparent (the "clear label" outside the patient).
    ``colours`` (``{label: (r, g, b)}``, 0-255) overrides single labels.
    """
    from napari.utils.colormaps import DirectLabelColormap

    from napari_dfcseg.io import label_colour

    colours = dict(colours or {})
    table = {None: (0.5, 0.5, 0.5, 1.0), 0: (0.0, 0.0, 0.0, 0.0)}
    for label in range(1, max(int(max_label), *colours.keys(), 1) + 1):
        r, g, b = colours.get(label) or label_colour(label)  # 0-255, as the written colour tables
        table[label] = (r / 255.0, g / 255.0, b / 255.0, 1.0)
    return DirectLabelColormap(color_dict=table)


def region_colormap():
    """Colours of a region (mask) layer: 0 transparent, 1 a yellow outline like Slicer's ROI."""
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(color_dict={None: (1.0, 0.85, 0.0, 1.0), 0: (0.0, 0.0, 0.0, 0.0),
                                           1: (1.0, 0.85, 0.0, 1.0)})
