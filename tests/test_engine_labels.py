"""Cluster → label mapping (engine/labelling.py) and the label edits the widget calls (label_edits.py)."""

import numpy as np

from napari_dfcseg.engine.label_edits import (label_table, merge_labels, relabel_by_intensity,
                                              relabel_by_size, remove_small_islands)
from napari_dfcseg.engine.labelling import apply_label_map, cluster_label_map, split_by_scribbles


def test_labels_are_consecutive_and_ordered_by_intensity():
    counts = np.array([10, 0, 5, 7])
    feats = np.eye(4) * counts[:, None]
    intensity = np.array([0.9, 0.0, 0.1, 0.5]) * counts
    label_of = cluster_label_map(counts, feats, intensity)
    assert label_of.tolist() == [3, 0, 1, 2]


def test_ward_merge_joins_the_closest_clusters_first():
    counts = np.array([100, 100, 100])
    means = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0]])
    intensity = np.array([0.2, 0.3, 0.9]) * counts
    label_of = cluster_label_map(counts, means * counts[:, None], intensity, n_clusters=2)
    assert label_of.tolist() == [1, 1, 2]


def test_scribbled_classes_keep_their_ids_and_are_never_merged_together():
    counts = np.array([50, 50, 50, 50])
    means = np.array([[0.0], [0.01], [3.0], [3.01]])
    intensity = np.array([0.9, 0.8, 0.1, 0.2]) * counts
    label_of = cluster_label_map(counts, means * counts[:, None], intensity,
                                 n_scribble_classes=2, n_clusters=2)
    # clusters 0, 1 are scribble classes 1, 2; 2 and 3 are absorbed by the nearest class
    assert label_of[0] == 1 and label_of[1] == 2
    assert set(label_of[2:]) <= {1, 2}
    label_of = cluster_label_map(counts, means * counts[:, None], intensity, n_scribble_classes=2)
    assert label_of.tolist() == [1, 2, 3, 4]  # free clusters numbered after S, by intensity


def test_apply_label_map_puts_zero_outside_mask():
    ids = np.array([[-1, 0], [1, 2]], dtype=np.int16)
    labels = apply_label_map(ids, np.array([2, 1, 3]))
    assert labels.dtype == np.uint8
    assert labels.tolist() == [[0, 2], [1, 3]]


def test_merge_labels_gives_the_smallest_id():
    labels = np.array([[1, 2, 3], [3, 4, 0]])
    assert merge_labels(labels, [4, 3]).tolist() == [[1, 2, 3], [3, 3, 0]]


def test_small_island_takes_the_surrounding_label_and_isolated_ones_stay():
    labels = np.full((5, 12, 12), 2, dtype=np.uint8)
    labels[2, 5:7, 5:7] = 3          # 4-voxel island inside label 2
    labels[:, :, 10:] = 0            # background strip
    labels[2, 2, 11] = 1             # 1-voxel island touching only background
    out = remove_small_islands(labels, min_size=5)
    assert (out[2, 5:7, 5:7] == 2).all()
    assert out[2, 2, 11] == 1
    assert (out[:, :, 10:][labels[:, :, 10:] == 0] == 0).all()
    assert remove_small_islands(labels, min_size=4)[2, 5, 5] == 3  # not smaller than min_size


def test_relabel_by_size_and_by_intensity():
    labels = np.array([0, 5, 5, 5, 7, 9, 9])
    image = np.array([0, 3.0, 3, 3, 1, 2, 2])
    assert relabel_by_size(labels).tolist() == [0, 1, 1, 1, 3, 2, 2]
    assert relabel_by_intensity(labels, image).tolist() == [0, 3, 3, 3, 1, 2, 2]


def test_label_table_reports_volume_in_ml_and_intensity():
    labels = np.zeros((2, 10, 10), np.uint8)
    labels[:, :5] = 1
    labels[:, 5:] = 2
    image = np.where(labels == 1, 10.0, 20.0)
    image[0, 5:] = 30.0
    table = label_table(labels, image, spacing=(2.0, 0.5, 0.5))
    assert table["label"].tolist() == [1, 2]
    assert table["voxels"].tolist() == [100, 100]
    np.testing.assert_allclose(table["volume_ml"], [0.05, 0.05])
    np.testing.assert_allclose(table["mean"], [10.0, 25.0])
    np.testing.assert_allclose(table["sd"], [0.0, 5.0])


def test_split_by_scribbles_separates_connected_regions_of_one_label():
    labels = np.zeros((10, 20), np.uint8)
    labels[2:8, 2:8] = 4
    labels[2:8, 12:18] = 4  # looks the same, another connected region
    labels[0] = 3
    scribbles = np.zeros(labels.shape, np.int16)
    scribbles[4, 3:6] = 1
    scribbles[4, 13:16] = 2
    out = split_by_scribbles(labels, scribbles)
    assert (out[2:8, 2:8] == 1).all() and (out[2:8, 12:18] == 2).all()
    assert (out[0] == 3).all() and (out[labels == 0] == 0).all()
    # a label scribbled with one class only is left as the network gave it
    scribbles[4, 13:16] = 1
    np.testing.assert_array_equal(split_by_scribbles(labels, scribbles), labels)
