"""Pure helpers of the label table: the features table, its text form, undoable edits, colours."""

from __future__ import annotations

import numpy as np

__all__ = ["changed_block", "apply_labels_edit", "features_table", "names_of", "table_text",
           "colour_of", "NAMES_KEY"]

#: layer-metadata key of every name a label ever had in this session ({label: name})
NAMES_KEY = "dfcseg_label_names"


def changed_block(old, new):
    """Smallest box that holds every voxel where ``new`` differs from ``old``.

    Returns
    -------
    (tuple of slice, ndarray) or None
        The box and ``new``'s values inside it; None when nothing changed.
    """
    changed = np.asarray(old) != np.asarray(new)
    if not changed.any():
        return None
    box = []
    for axis in range(changed.ndim):
        others = tuple(a for a in range(changed.ndim) if a != axis)
        hit = np.flatnonzero(changed.any(axis=others))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    box = tuple(box)
    return box, np.array(np.asarray(new)[box], copy=True)


def apply_labels_edit(layer, box, values):
    """Write ``values`` into ``layer.data[box]`` as one undoable step.

    Records a napari history atom ``(indices, before, after)``: a box of
    slices rather than per-voxel indices, so undoing a relabel of a whole
    CT costs two copies of the box, not 40 bytes per voxel.
    """
    before = np.array(layer.data[box], copy=True)
    layer._save_history((box, before, np.array(values, copy=True)))
    layer.data[box] = values
    layer.refresh()


def features_table(stats, names=None):
    """napari ``features`` table (pandas) from ``label_table``'s columns, keeping names.

    Parameters
    ----------
    stats : dict
        ``{"label", "voxels", "volume_ml", "mean", "sd"}`` sequences.
    names : dict, optional
        ``{label: name}`` to carry over from the previous table.
    """
    import pandas as pd

    labels = [int(v) for v in stats["label"]]
    names = names or {}
    return pd.DataFrame(
        {
            "index": labels,
            "name": [names.get(v, "") for v in labels],
            "voxels": np.asarray(stats["voxels"], dtype=np.int64),
            "volume_ml": np.asarray(stats["volume_ml"], dtype=float),
            "mean": np.asarray(stats["mean"], dtype=float),
            "sd": np.asarray(stats["sd"], dtype=float),
        }
    )


def names_of(layer):
    """Names of the layer's labels: the remembered ones, then the current features' ones."""
    names = dict(layer.metadata.get(NAMES_KEY) or {})
    features = layer.features
    if "index" in features and "name" in features:
        for k, n in zip(features["index"], features["name"]):
            if isinstance(n, str) and n:
                names[int(k)] = n
    return names


def table_text(features, sep=","):
    """The table as text (CSV with ``sep=","``, tab-separated for the clipboard).

    Columns: label, name, voxels, volume_ml, mean, sd; one row per label > 0.
    """
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, delimiter=sep, lineterminator="\n")
    writer.writerow(["label", "name", "voxels", "volume_ml", "mean", "sd"])
    rows = features[features["index"] != 0] if len(features) else features
    for row in rows.itertuples(index=False):
        writer.writerow([int(row.index), row.name, int(row.voxels), f"{row.volume_ml:.4f}",
                         f"{row.mean:.3f}", f"{row.sd:.3f}"])
    return out.getvalue()


def colour_of(layer, label):
    """(r, g, b) 0-255 of ``label`` in ``layer``'s colormap, ignoring its visibility."""
    if layer is None:
        return None
    table = getattr(layer.colormap, "color_dict", None) or {}
    colour = table.get(label)
    if colour is None:
        colour = layer.get_color(label)
    if colour is None:
        return None
    return tuple(int(round(255 * float(v))) for v in np.asarray(colour)[:3])
