"""A scribbled class keeps only the regions connected to its scribbles (engine/scribble_reach.py)."""

import numpy as np

from napari_dfcseg.engine.scribble_reach import confine_scribbled_classes


def _case():
    labels = np.full((4, 20, 20), 3, np.uint8)  # label 3: background tissue (unscribbled)
    labels[1:3, 2:6, 2:6] = 1     # the marked tumour
    labels[1:3, 14:18, 14:18] = 1  # a distant look-alike, never marked
    labels[:, :, 10] = 2          # label 2: another unscribbled tissue, a wall between them
    scribbles = np.zeros(labels.shape, np.int16)
    scribbles[1, 3, 3] = 1
    ids = labels.astype(np.int16) - 1  # cluster c -> label c + 1
    p = 3
    cluster_means = np.eye(p)
    cluster_means[0] = [0.9, 0.0, 0.1]  # class 1 looks most like label 3 among the free labels
    label_means = cluster_means.copy()
    return labels, scribbles, ids, cluster_means, label_means


def test_distant_look_alike_leaves_the_scribbled_class():
    labels, scribbles, ids, cm, lm = _case()
    out, moved = confine_scribbled_classes(labels, scribbles, 1, ids, cm, lm)
    assert (out[1:3, 2:6, 2:6] == 1).all()  # the marked region keeps its id
    assert (out[1:3, 14:18, 14:18] == 3).all()  # the unmarked one: the nearest free label
    assert moved == {1: 32}
    assert (out[labels != 1] == labels[labels != 1]).all()  # nothing else changes


def test_only_label_gives_a_new_label():
    labels = np.zeros((3, 12, 12), np.uint8)
    labels[1, 1:4, 1:4] = 1
    labels[1, 8:11, 8:11] = 1
    scribbles = np.zeros(labels.shape, np.int16)
    scribbles[1, 2, 2] = 1
    ids = np.where(labels > 0, 0, -1).astype(np.int16)
    out, moved = confine_scribbled_classes(labels, scribbles, 1, ids, np.eye(2), np.eye(2)[:1])
    assert (out[1, 8:11, 8:11] == 2).all() and (out[1, 1:4, 1:4] == 1).all()
    assert moved == {1: 9}


def test_an_orphan_never_becomes_another_scribbled_class_it_does_not_touch():
    labels = np.full((3, 20, 30), 3, np.uint8)  # label 3: unscribbled tissue
    labels[1, 2:6, 2:6] = 1  # the marked lesion
    labels[1, 14:18, 14:18] = 1  # a look-alike far from it, never marked ...
    labels[1, 2:6, 24:28] = 2  # ... and class 2, marked, far from both
    scribbles = np.zeros(labels.shape, np.int16)
    scribbles[1, 3, 3] = 1
    scribbles[1, 3, 25] = 2
    ids = labels.astype(np.int16) - 1
    cluster_means = np.eye(3)
    label_means = np.array([[1.0, 0, 0], [0.9, 0.1, 0], [0, 0, 1.0]])  # class 1 looks like class 2
    out, moved = confine_scribbled_classes(labels, scribbles, 2, ids, cluster_means, label_means)
    assert moved == {1: 16}
    assert (out[1, 14:18, 14:18] == 3).all()  # not class 2: it does not touch class 2's region
    assert (out[1, 2:6, 24:28] == 2).all() and (out[1, 2:6, 2:6] == 1).all()
