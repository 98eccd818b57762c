"""The cheaper forms of the stages around training give the labels of the plain forms (issue 12).

Each fast path is checked against the computation it replaces: the median
filter of only the part of a scan later steps read, the BatchNorm moments in
cache-sized blocks, the one-channel anchored labelling target.
"""

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_dfcseg import DFCConfig, segment  # noqa: E402
from napari_dfcseg.datasets import head_phantom  # noqa: E402
from napari_dfcseg.engine import pipeline  # noqa: E402
from napari_dfcseg.engine.inference import _MomentSums, anchored_ids  # noqa: E402
from napari_dfcseg.engine.normalize import denoise  # noqa: E402
from napari_dfcseg.engine.prior import intensity_loglik  # noqa: E402


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (5.0, 1.0, 1.0)])
def test_denoising_a_region_gives_the_whole_volume_filter_there_and_leaves_the_rest(spacing):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 9, 30, 26)).astype(np.float32)
    whole = denoise(x.copy(), "median", spacing)
    region = (slice(2, 7), slice(0, 11), slice(5, 26))  # touches two volume borders
    part = denoise(x.copy(), "median", spacing, region=region)
    assert np.array_equal(part[(slice(None),) + region], whole[(slice(None),) + region])
    outside = np.ones(x.shape[1:], bool)
    outside[region] = False
    assert np.array_equal(part[:, outside], x[:, outside])
    assert not np.array_equal(whole[:, outside], x[:, outside])  # the test can tell


@pytest.mark.parametrize("mode", ["2d", "3d"])
def test_segment_denoising_only_what_it_reads_keeps_the_labels(monkeypatch, mode):
    # a mask whose bounding box is a fraction of the volume: the voxels outside it (beyond
    # the network's halo, and a patch in 3D) are left unfiltered and the labels are those
    # of filtering the whole volume
    p = head_phantom(shape=(12, 48, 44), noise=0.05, bias=0.2, seed=1)
    mask = np.zeros(p.image.shape, bool)
    mask[3:9, 10:34, 8:30] = p.mask[3:9, 10:34, 8:30]
    cfg = dataclasses.replace(DFCConfig.preset("default"), max_iter=6, min_iter=2,
                              patch_size=(4, 8, 8), n_clusters=3)
    fast = segment(p.image, mode=mode, spacing=p.spacing, mask=mask, config=cfg, seed=0,
                   device="cpu")
    assert pipeline._read_region(
        *_volume_of(p.image, mask), mode, cfg, training=True) != tuple(
        slice(0, n) for n in p.image.shape)  # the fast path is taken
    monkeypatch.setattr(pipeline, "_read_region", lambda *a, **k: None)  # the whole volume
    whole = segment(p.image, mode=mode, spacing=p.spacing, mask=mask, config=cfg, seed=0,
                    device="cpu")
    assert np.array_equal(fast.labels, whole.labels)


def _volume_of(image, mask):
    from napari_dfcseg.engine.sampling import TrainingVolume

    return (TrainingVolume(image[None].astype(np.float32), mask, None, (1.0, 1.0, 1.0)),)


@pytest.mark.parametrize("layout", ["2d", "2d-channels-last", "3d"])
def test_batchnorm_moments_in_blocks_equal_float64_moments(layout):
    torch.manual_seed(0)
    shape = (3, 5, 100, 83) if layout != "3d" else (2, 5, 6, 40, 37)  # > 1 block of rows
    batches = [torch.randn(shape) * 4 + 100 for _ in range(3)]  # a large mean: cancellation
    if layout == "2d-channels-last":
        batches = [b.contiguous(memory_format=torch.channels_last) for b in batches]
    stats = _MomentSums()
    for b in batches:
        stats.add(b)
    ref = torch.cat(batches).double()
    dims = [d for d in range(ref.ndim) if d != 1]
    var, mean = torch.var_mean(ref, dim=dims, correction=0)
    assert stats.n == ref.numel() // ref.shape[1]
    assert torch.allclose(stats.mean, mean, rtol=1e-7, atol=0)
    assert torch.allclose(stats.m2 / stats.n, var, rtol=1e-5, atol=0)


def test_one_channel_anchored_ids_are_those_of_the_broadcast_loglik():
    torch.manual_seed(0)
    r = torch.randn(2, 30, 40, 8) * 3  # channels last
    x = torch.rand(2, 1, 30, 40)
    mixture = (torch.rand(4, 1), torch.rand(4, 1) * 0.01 + 1e-4, torch.softmax(torch.randn(4), 0))
    for weight in (0.5, 1.0):
        ref = intensity_loglik(x, mixture).movedim(1, -1).mul_(weight).add_(r[..., :4]).argmax(-1)
        assert torch.equal(anchored_ids(r, x, mixture, weight), ref)


def test_ct_trains_ct_max_iter_iterations_and_a_users_count_replaces_it():
    from napari_dfcseg.engine.parameters import apply_user_values

    rng = np.random.default_rng(0)
    hu = np.full((6, 40, 40), -1000.0, np.float32)  # air around a body of fat, muscle, bone
    hu[:, 8:32, 8:32] = -100.0
    hu[:, 14:26, 14:26] = 50.0
    hu[:, 18:22, 18:22] = 700.0
    hu += rng.normal(0, 10, hu.shape).astype(np.float32)
    cfg = dataclasses.replace(DFCConfig.preset("default"), max_iter=12, ct_max_iter=6, min_iter=8)
    ct = segment(hu, spacing=(3.0, 1.0, 1.0), config=cfg, seed=0, device="cpu")
    assert ct.n_iterations == 6 and ct.config.max_iter == 6
    mr = segment(hu + 1000.0, spacing=(3.0, 1.0, 1.0), config=cfg, seed=0, device="cpu")
    assert mr.n_iterations == 12  # not CT numbers: max_iter
    # the CLI passes the options given: any --max-iter holds on CT; the widget passes every
    # field: a value other than the preset's
    assert apply_user_values(cfg, {"max_iter": 12}).ct_max_iter is None
    assert apply_user_values(cfg, {"max_iter": 12}, words="label").ct_max_iter == 6
    assert apply_user_values(cfg, {"max_iter": 30}, words="label").ct_max_iter is None
    assert DFCConfig.preset("default").ct_max_iter == 20
    assert DFCConfig.preset("brain").ct_max_iter is None
