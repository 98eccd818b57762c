"""npe2 writer: a Labels layer → NIfTI (.nii/.nii.gz) with the source scan's geometry.

Also writes ITK-SNAP's label description file next to it, so the labels open
aligned and coloured in 3D Slicer and ITK-SNAP.
"""

from __future__ import annotations

import numpy as np

from ._layers import volume_of_layer_state

__all__ = ["write_labels_layer", "write_seg_nrrd_layer", "label_names_of_features",
           "label_colours_of_state"]


def write_labels_layer(path, data, meta):
    """Write one Labels layer as a NIfTI label volume.

    Parameters
    ----------
    path : str
        Target ``.nii`` or ``.nii.gz`` file.
    data : ndarray
        The label image.
    meta : dict
        The layer's state as napari passes it to writers (transform,
        ``metadata["dfcseg"]`` geometry, ``features`` with optional names,
        ``colormap``: the colours the layer shows go into the label tables).

    Returns
    -------
    list of str
        Every file written.
    """
    from napari_dfcseg.io import write_labels

    labels = np.asarray(data)
    like = volume_of_layer_state(labels, meta)
    names = label_names_of_features(meta.get("features"))
    written = write_labels(path, labels, like=like, names=names or None,
                           colours=label_colours_of_state(meta, labels))
    return [str(p) for p in written]


def write_seg_nrrd_layer(path, data, meta):
    """Write one Labels layer as a 3D Slicer ``.seg.nrrd`` (segment names from its features).

    napari's save dialog has already asked before replacing a file; the
    writer still refuses to replace anything but a Slicer segmentation.
    """
    from napari_dfcseg.io import write_seg_nrrd

    labels = np.asarray(data)
    like = volume_of_layer_state(labels, meta)
    names = label_names_of_features(meta.get("features"))
    return [str(write_seg_nrrd(path, labels, like=like, names=names or None, overwrite=True))]


def label_names_of_features(features):
    """``{label: name}`` from a layer's features table (columns ``index`` and ``name``)."""
    if features is None or len(features) == 0:
        return {}
    columns = getattr(features, "columns", features.keys() if hasattr(features, "keys") else [])
    if "index" not in columns or "name" not in columns:
        return {}
    names = {}
    for label, name in zip(features["index"], features["name"]):
        if int(label) != 0 and isinstance(name, str) and name.strip():
            names[int(label)] = name.strip()
    return names


def label_colours_of_state(meta, labels):
    """``{label: (r, g, b)}`` 0-255 of the labels present, as the layer's colormap shows them.

    Only explicit colours count: a ``DirectLabelColormap`` (this plugin's
    layers, a colour picked in the label table). napari's automatic cyclic
    colours are no one's choice, so those labels get the standard colours of
    the written tables. Hidden labels (alpha 0, *Show* unticked) keep their colour.
    """
    colormap = meta.get("colormap")
    if colormap is None or getattr(colormap, "color_dict", None) is None:
        return {}
    ids = np.unique(np.asarray(labels))
    ids = ids[ids > 0]
    if ids.size == 0:
        return {}
    rgba = np.asarray(colormap.map(ids), dtype=float)
    rgb = np.clip(np.rint(rgba[:, :3] * 255.0), 0, 255).astype(int)
    return {int(k): tuple(int(v) for v in c) for k, c in zip(ids, rgb)}
