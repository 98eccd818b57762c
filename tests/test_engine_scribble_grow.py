"""Scribbles are authoritative: hard labels and growth from them where classes share a region
(engine/scribble_grow.py, through labelling.finish_labels and segment)."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_dfcseg.engine.labelling import RawLabels, finish_labels
from napari_dfcseg.engine.scribble_grow import grow_from_scribbles, growth_box, paint_scribbles


def _dice(a, b):
    return 2 * (a & b).sum() / max(1, a.sum() + b.sum())


def _lesion_case(seed=0):
    """A faint 'lesion' (mean 400) in tissue (330), noise 25: the contrast of the real tumour."""
    rng = np.random.default_rng(seed)
    shape = (9, 48, 48)
    zz, yy, xx = np.indices(shape)
    lesion = ((zz - 4.5) / 2.0) ** 2 + ((yy - 24) / 7.0) ** 2 + ((xx - 22) / 8.0) ** 2 <= 1
    image = np.where(lesion, 400.0, 330.0) + rng.normal(0, 25, shape)
    # the strokes a user draws: the lesion's core and a ring around it, on its first and last
    # slices (3 and 6; as in Slicer's "Grow from seeds", the growth stays near the strokes' box)
    scribbles = np.zeros(shape, np.int16)
    for z in (3, 6):
        scribbles[z][ndi.binary_erosion(lesion[z], iterations=1)] = 1
        ring = ndi.binary_dilation(lesion[z], iterations=7) & ~ndi.binary_dilation(lesion[z], iterations=3)
        scribbles[z][ring] = 2
    return image.astype(np.float32), lesion, scribbles


def _raw(ids, p=4):
    """RawLabels of cluster ids (-1 outside), with one-hot responses."""
    counts = np.bincount(ids[ids >= 0], minlength=p).astype(np.int64)
    return RawLabels(ids=ids.astype(np.int16), counts=counts,
                     feature_sum=np.eye(p) * counts[:, None], intensity_sum=np.arange(p) * counts * 1.0)


def test_two_classes_sharing_one_cluster_each_get_their_own_connected_region():
    image, lesion, scribbles = _lesion_case()
    # the network's view: lesion and surroundings are one label (one cluster)
    labels = np.ones(lesion.shape, np.uint8)
    out, grown, _ = grow_from_scribbles(labels, scribbles, image, (2.0, 1.0, 1.0))
    assert set(grown) == {1, 2}
    one, n = ndi.label(out == 1)
    assert n == 1  # the lesion class is one connected region ...
    assert _dice(out == 1, lesion) >= 0.85  # ... that is the lesion, also on the slices between
    assert (out[scribbles > 0] == scribbles[scribbles > 0]).all()
    # the old rule gave the whole region the majority class: no lesion at all
    assert (out == 2).sum() > lesion.size - 2 * lesion.sum()


def test_the_rest_of_a_shared_region_takes_the_class_of_its_tissue_and_nothing_else_moves():
    image, lesion, scribbles = _lesion_case()
    labels = np.full(lesion.shape, 4, np.uint8)  # an unscribbled label holds both classes' strokes
    labels[:, :, 40:] = 3  # another tissue, never touched
    out, grown, unmarked = grow_from_scribbles(labels, scribbles, image, (2.0, 1.0, 1.0))
    assert _dice(out == 1, lesion) >= 0.85
    # beyond the strokes' box the region is the ring's tissue (330): the ring's class
    box = growth_box(np.argwhere(scribbles > 0), labels.shape)
    beyond = np.ones(labels.shape, bool)
    beyond[box] = False
    assert (out[beyond & (labels == 4)] == 2).all()
    assert (out[:, :, 40:] == 3).all() and unmarked is None
    # a brighter third tissue from the box's border on is no stroked class's: it keeps its label
    core = np.zeros(labels.shape, bool)
    core[tuple(slice(b.start + 1, b.stop - 1) for b in box)] = True
    bright = np.where(~core & (labels == 4), image + 300, image).astype(np.float32)
    out, _, _ = grow_from_scribbles(labels, scribbles, bright, (2.0, 1.0, 1.0))
    assert (out[beyond & (labels == 4)] == 4).mean() > 0.99
    assert _dice(out == 1, lesion) >= 0.75


def test_a_shared_cluster_going_on_to_distant_tissue_does_not_take_the_lesion_class():
    """The cluster of the lesion and its ring goes on, by a bridge, to a distant band nobody marked."""
    image, lesion, scribbles = _lesion_case()
    near = ndi.binary_dilation(lesion, structure=np.ones((1, 3, 3), bool), iterations=9)
    ids = np.full(lesion.shape, 1, np.int16)  # cluster 1 -> label 2
    ids[near] = 0  # cluster 0 (class 1's channel): lesion, ring and ...
    ids[:, :4] = 0  # ... a distant band, joined to them by a bridge
    ids[:, 4:12, 22] = 0
    ids[:, :, 44:] = 2  # an unscribbled tissue (label 3)
    raw = _raw(ids)
    label_of = np.array([1, 2, 3, 0])
    for confine in (True, False):
        out = finish_labels(label_of, np.eye(4)[:3], raw, scribbles, confine=confine, image=image,
                            spacing=(2.0, 1.0, 1.0))
        assert (out[scribbles > 0] == scribbles[scribbles > 0]).all()
        assert _dice(out == 1, lesion) >= 0.85
        # the rest of the region takes the class stroked most (the ring, around the lesion)
        assert (out[:, :4, :44] == 2).all()
        assert (out[:, :, 44:] == 3).all()


def test_a_lesion_brighter_than_its_strokes_is_reached_between_them():
    """Strokes on the lesion's end slices; its middle slices are brighter than the strokes' median.

    The reach of a class is measured in the spread of its strokes' raw
    intensities: with the spread of the smoothed strokes only (about a quarter
    of it) the middle was out of reach on several seeds (Dice 0.80-0.84).
    """
    for seed in range(5):
        image, lesion, scribbles = _lesion_case(seed)
        out, _, _ = grow_from_scribbles(np.full(lesion.shape, 4, np.uint8), scribbles, image, (2.0, 1.0, 1.0))
        assert _dice(out == 1, lesion) >= 0.9, seed


def test_a_narrow_bridge_does_not_carry_the_lesion_class_into_a_look_alike():
    """A 2-voxel-wide bright bridge joins the lesion to a blob of its intensity (a vessel).

    The grown classes are opened in-plane (one-voxel cross), as Slicer's
    "Smoothing: Opening" after "Grow from seeds": the bridge is cut and the
    blob, no longer connected to the strokes, is not the lesion. Without the
    opening, 4 of these 5 seeds gave the lesion class 3-14 of the blob's 56 voxels.
    """
    for seed in range(5):
        image, lesion, scribbles = _lesion_case(seed)
        blob = np.zeros(lesion.shape, bool)
        blob[4:6, 34:38, 19:26] = True  # between the stroked slices, in the ring's tissue
        bridge = np.zeros(lesion.shape, bool)
        bridge[4:6, 28:34, 22:24] = True
        noise = np.random.default_rng(100 + seed).normal(0, 25, lesion.shape)
        image = np.where(blob, 400 + noise, np.where(bridge, 420.0, image)).astype(np.float32)
        out, _, _ = grow_from_scribbles(np.full(lesion.shape, 4, np.uint8), scribbles, image, (2.0, 1.0, 1.0))
        assert not (out[blob] == 1).any(), seed
        assert _dice(out == 1, lesion) >= 0.9, seed
        assert ndi.label(out == 1)[1] == 1


def test_a_single_slice_is_split_along_its_edge():
    """A 2D image (one slice): the in-plane opening must not erode the class away along z."""
    rng = np.random.default_rng(0)
    truth = np.add.outer(np.arange(40), np.arange(40))[None] > 40
    image = (np.where(truth, 400.0, 300.0) + rng.normal(0, 10, truth.shape)).astype(np.float32)
    scribbles = np.zeros(truth.shape, np.int16)
    scribbles[0, 3:8, 3:8] = 2
    scribbles[0, 33:37, 33:37] = 1
    out, _, _ = grow_from_scribbles(np.ones(truth.shape, np.uint8), scribbles, image, (1.0, 1.0, 1.0))
    assert (out[truth] == 1).mean() > 0.95 and (out[~truth] == 2).mean() > 0.9


def test_scribbled_voxels_keep_their_class_through_the_island_filter():
    ids = np.zeros((1, 20, 20), np.int16)
    scribbles = np.zeros(ids.shape, np.int16)
    scribbles[0, 10, 10] = 2  # one voxel painted class 2 inside class 1's region
    scribbles[0, 2, 2] = 1
    raw = _raw(ids, p=2)
    out = finish_labels(np.array([1, 2]), np.eye(2), raw, scribbles, min_size=50)
    assert out[0, 10, 10] == 2 and out[0, 2, 2] == 1
    assert out.dtype == np.uint8


def test_paint_scribbles_widens_and_never_paints_outside_the_mask():
    labels = np.zeros((1, 4, 4), np.uint8)
    labels[0, :2] = 1
    scribbles = np.zeros(labels.shape, np.int16)
    scribbles[0, 0, 0] = 300
    scribbles[0, 3, 3] = 1  # outside the mask (label 0)
    out = paint_scribbles(labels, scribbles)
    assert out.dtype == np.uint16 and out[0, 0, 0] == 300 and out[0, 3, 3] == 0


def test_segment_with_strokes_in_a_lesion_and_around_it_gives_the_lesion():
    """End to end: the network, the label map and the growth, on a small synthetic scan."""
    from napari_dfcseg import segment

    image, lesion, scribbles = _lesion_case(seed=1)
    r = segment(image, spacing=(2.0, 1.0, 1.0), scribbles=scribbles, config="fast", seed=0)
    assert (r.labels[scribbles > 0] == scribbles[scribbles > 0]).all()
    comp, _ = ndi.label(r.labels == 1)
    best = max(_dice(comp == c, lesion) for c in np.unique(comp[lesion]) if c)
    assert best >= 0.8
    again = r.relabel(min_size=r.config.min_size)  # the kept clusters grow the same way
    np.testing.assert_array_equal(again.labels, r.labels)


@pytest.mark.slow
def test_real_brain_tumour_with_strokes_on_two_slices_is_its_own_region(real_data):
    import torch

    from conftest import read_real_case
    from napari_dfcseg import segment

    torch.set_num_threads(1)
    vol, image, tumour = read_real_case(real_data, "mr-brain-tumour")
    tumour = tumour > 0
    scribbles = np.zeros(tumour.shape, np.int16)
    z = np.flatnonzero(tumour.any((1, 2)))
    for k in z[len(z) // 2 - 1: len(z) // 2 + 1]:
        scribbles[k][ndi.binary_erosion(tumour[k], iterations=2)] = 1
        ring = ndi.binary_dilation(tumour[k], iterations=8) & ~ndi.binary_dilation(tumour[k], iterations=4)
        scribbles[k][ring] = 2
    r = segment(image, spacing=vol.spacing, scribbles=scribbles, seed=0)
    assert (r.labels[scribbles > 0] == scribbles[scribbles > 0]).all()
    comp, _ = ndi.label(r.labels == 1)
    best = max(_dice(comp == c, tumour) for c in np.unique(comp[tumour]) if c)
    assert best >= 0.8  # 0.827 measured (seeds 0-2: 0.827 / 0.818 / 0.806; 0.791 before)
    assert (r.labels == 1).sum() < 1.5 * tumour.sum()  # the class took no distant tissue
