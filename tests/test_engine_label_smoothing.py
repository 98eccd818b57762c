"""The edge-stopped Potts prior on the final labels (issue 11, CT soft tissues)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_dfcseg.engine import label_smoothing  # noqa: E402
from napari_dfcseg.engine.label_smoothing import edge_weights  # noqa: E402
from conftest import trunk_ct  # noqa: E402


def smooth_labels(scores, *args, **kw):
    """:func:`label_smoothing.smooth_labels` of (k, z, y, x) scores (it takes them bordered)."""
    bordered = torch.nn.functional.pad(scores, (1, 1, 1, 1, 1, 1))
    return label_smoothing.smooth_labels(bordered, *args, **kw)


def _ambiguous_halves(rng, shape=(10, 24, 24), margin=0.3):
    """Two classes, left and right halves, whose voxel-wise scores favour the truth by
    ``margin`` log-odds under unit noise: a third of the voxels on their own go wrong."""
    truth = np.zeros(shape, np.int64)
    truth[..., shape[2] // 2:] = 1
    scores = rng.normal(0, 1, (2,) + shape).astype(np.float32)  # classes first
    scores[0] += np.where(truth == 0, margin, -margin)
    scores[1] += np.where(truth == 1, margin, -margin)
    return truth, torch.from_numpy(scores)


def test_the_prior_settles_ambiguous_voxels_inside_a_region():
    rng = np.random.default_rng(0)
    truth, scores = _ambiguous_halves(rng)
    valid = np.ones(truth.shape, bool)
    flat = np.ones(truth.shape, np.float32)
    alone = (scores.argmax(0).numpy() != truth).mean()
    smoothed = (smooth_labels(scores, valid, flat, 1.0, (1, 1, 1)).numpy() != truth).mean()
    assert alone > 0.25  # the test can tell: on their own a third of the voxels are wrong
    assert smoothed < 0.05, (alone, smoothed)


def test_a_thin_structure_with_contrast_keeps_its_label():
    # a one-voxel line of bright voxels (a rib, a vessel wall) inside a flat region: the edge
    # weight stops the prior there, where a plain Potts prior of the same strength erases it
    shape = (8, 20, 20)
    x = np.zeros((1,) + shape, np.float32)
    rng = np.random.default_rng(1)
    x += rng.normal(0, 0.01, x.shape).astype(np.float32)
    x[0, :, 10, 4:16] = 1.0
    line = np.zeros(shape, bool)
    line[:, 10, 4:16] = True
    scores = torch.zeros((2,) + shape)
    scores[1] = torch.from_numpy(np.where(line, 2.0, -2.0).astype(np.float32))
    valid = np.ones(shape, bool)
    bbox = tuple(slice(0, n) for n in shape)
    w = edge_weights(x, bbox, valid, (1, 1, 1))
    assert w[line].max() < 1e-3 and np.median(w) > 0.7
    kept = smooth_labels(scores, valid, w, 1.0, (1, 1, 1)).numpy()
    plain = smooth_labels(scores, valid, np.ones(shape, np.float32), 1.0, (1, 1, 1)).numpy()
    assert (kept[line] == 1).all() and (kept[~line] == 0).all()
    assert (plain[line] == 0).mean() > 0.9  # without the edge weight the line is gone


def test_slabs_give_the_whole_volume_result(monkeypatch):
    rng = np.random.default_rng(2)
    truth, scores = _ambiguous_halves(rng, shape=(13, 9, 8))
    valid = rng.random(truth.shape) > 0.1
    weights = rng.random(truth.shape).astype(np.float32)
    whole = smooth_labels(scores, valid, weights, 1.5, (1, 1, 1))
    assert not torch.equal(whole.long(), scores.argmax(0))  # the prior did change labels
    per_slice = 11 * 10  # bordered
    for slices in (1, 2, 5):  # slabs of 1, 2 and 5 slices + halo (3 steps + 1)
        monkeypatch.setattr(label_smoothing, "_SLAB_VOXELS", (slices + 8) * per_slice)
        assert torch.equal(smooth_labels(scores, valid, weights, 1.5, (1, 1, 1))[valid],
                           whole[valid]), slices


def test_thick_slices_are_smoothed_each_on_its_own():
    rng = np.random.default_rng(3)
    _, scores = _ambiguous_halves(rng, shape=(4, 16, 16))
    valid = np.ones((4, 16, 16), bool)
    flat = np.ones((4, 16, 16), np.float32)
    a = smooth_labels(scores, valid, flat, 1.0, (0, 1, 1))
    changed = scores.clone()
    changed[:, 0] = torch.flip(changed[:, 0], (-1,))
    b = smooth_labels(changed, valid, flat, 1.0, (0, 1, 1))
    assert torch.equal(a[1:], b[1:]) and not torch.equal(a[0], b[0])
    assert not torch.equal(smooth_labels(changed, valid, flat, 1.0, (1, 1, 1))[1], a[1])


def test_voxels_outside_the_mask_neither_vote_nor_break_the_sums():
    rng = np.random.default_rng(4)
    truth, scores = _ambiguous_halves(rng, shape=(6, 12, 12))
    valid = np.zeros(truth.shape, bool)
    valid[:, 2:10, 2:10] = True
    outside = torch.from_numpy(~valid)
    scores[0][outside], scores[1][outside] = -torch.inf, 0.0  # as a class absent there
    out = smooth_labels(scores, valid, np.ones(truth.shape, np.float32), 1.0, (1, 1, 1))
    assert out[torch.from_numpy(valid)].float().mean() > 0.3  # both classes inside
    again = scores.clone()
    again[0][outside], again[1][outside] = 50.0, -50.0
    assert torch.equal(smooth_labels(again, valid, np.ones(truth.shape, np.float32), 1.0,
                                     (1, 1, 1))[torch.from_numpy(valid)],
                       out[torch.from_numpy(valid)])


def test_edge_weights_read_true_neighbours_outside_the_box():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1, 10, 12, 14)).astype(np.float32)
    bbox = (slice(2, 8), slice(0, 12), slice(3, 10))
    valid = np.ones((6, 12, 7), bool)
    whole = edge_weights(x, tuple(slice(0, n) for n in x.shape[1:]), np.ones(x.shape[1:], bool),
                         (1, 1, 1))
    part = edge_weights(x, bbox, valid, (1, 1, 1))
    # the same local ranges; only the scale (the median over the box) differs
    ratio = np.log(part) / np.log(whole[bbox])
    assert np.allclose(ratio, ratio.flat[0], rtol=1e-4)
    constant = edge_weights(np.zeros_like(x), bbox, valid, (1, 1, 1))
    assert (constant == 1).all()


def _small_ct(seed=0):
    """A 12x48x48 'trunk' in HU: fat, two organs 10 HU apart under 15 HU noise, a vertebra."""
    hu = trunk_ct((12, 48, 48), [((8, 24), (8, 40), 40.0), ((24, 38), (8, 40), 50.0),
                                 ((38, 42), (16, 32), 600.0)], noise=15.0, seed=seed)
    return np.round(hu).astype(np.float32)


def test_the_default_smooths_ct_labels_and_not_mr_labels():
    import dataclasses

    from napari_dfcseg import DFCConfig, segment
    from napari_dfcseg.datasets import head_phantom

    config = dataclasses.replace(DFCConfig.preset("default"), max_iter=5, ct_max_iter=5)
    ct = segment(_small_ct(), spacing=(3.0, 1.0, 1.0), config=config, seed=0)
    assert ct.model.config.label_smoothing == 1.0
    off = segment(_small_ct(), spacing=(3.0, 1.0, 1.0), seed=0,
                  config=dataclasses.replace(config, ct_label_smoothing=None))
    assert off.model.config.label_smoothing == 0.0
    assert not np.array_equal(ct.labels, off.labels)
    p = head_phantom(shape=(16, 48, 40))
    mr = segment(p.image, spacing=p.spacing, config=config, seed=0)
    assert mr.model.config.label_smoothing == 0.0


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf"), "1"])
def test_a_bad_smoothing_strength_is_refused(value):
    from napari_dfcseg import DFCConfig
    from napari_dfcseg.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="label_smoothing"):
        DFCConfig(label_smoothing=value)
    with pytest.raises(InvalidInputError, match="ct_label_smoothing"):
        DFCConfig(ct_label_smoothing=value)


@pytest.mark.parametrize("radius", [(1, 1, 1), (0, 1, 1)])
@pytest.mark.parametrize("planes_a_slab", [None, 1, 3])
def test_edge_weights_take_scipys_local_range(radius, planes_a_slab, monkeypatch):
    if planes_a_slab:  # the ranges in slabs of planes, each reading its neighbour planes
        monkeypatch.setattr(label_smoothing, "_SLAB_VOXELS", 4 * 11 * 9 * planes_a_slab)
    from scipy import ndimage

    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 7, 11, 9)).astype(np.float32)
    bbox = tuple(slice(0, n) for n in x.shape[1:])
    valid = np.ones(x.shape[1:], bool)
    size = tuple(2 * r + 1 for r in radius)
    r = np.maximum(*(ndimage.maximum_filter(c, size=size) - ndimage.minimum_filter(c, size=size)
                     for c in x))
    expected = np.exp(-(r / (label_smoothing.EDGE_SCALE * np.median(r))) ** 2)
    np.testing.assert_allclose(edge_weights(x, bbox, valid, radius), expected, rtol=1e-5)


def test_a_class_kept_off_every_voxel_stays_off_across_unequal_windows(monkeypatch):
    # -inf scores (an absent class) in windows of unequal length sharing the same buffers:
    # stale -inf cells on the zero border must not become NaN (0 * -inf) and reach the labels
    rng = np.random.default_rng(7)
    truth, two = _ambiguous_halves(rng, shape=(11, 9, 8))
    scores = torch.cat([torch.full((1,) + truth.shape, -torch.inf), two])  # class 0 absent
    valid = np.ones(truth.shape, bool)
    weights = rng.random(truth.shape).astype(np.float32)
    whole = smooth_labels(scores, valid, weights, 1.0, (1, 1, 1))
    assert (whole > 0).all()
    monkeypatch.setattr(label_smoothing, "_SLAB_VOXELS", (3 + 8) * 11 * 10)  # 3 + 3 + 3 + 2
    assert torch.equal(smooth_labels(scores, valid, weights, 1.0, (1, 1, 1)), whole)
