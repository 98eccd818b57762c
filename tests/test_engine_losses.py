"""The fused training loss equals the readable definition of the paper's terms, value and gradient."""

import pytest

torch = pytest.importorskip("torch")

from napari_dfcseg.engine.losses import (continuity_loss, dfc_loss, scribble_loss,  # noqa: E402
                                         similarity_loss)
from napari_dfcseg.engine.prior import anchored_target, intensity_loglik  # noqa: E402


def _reference(r, valid, weights, w_con, scribbles=None, w_scr=0.0, anchor=None):
    target = r.argmax(1)
    if anchor is not None:
        x, mixture, weight = anchor
        target = anchored_target(r.detach(), x, mixture, weight)
    if scribbles is not None:
        unlabelled = valid & (scribbles == 0)
        loss = similarity_loss(r, target, unlabelled) + w_scr * scribble_loss(r, scribbles, valid)
    else:
        loss = similarity_loss(r, target, valid)
    return loss + w_con * continuity_loss(r, valid, weights)


def _case(shape, dtype, channels_last, seed=0, invalid=0.2):
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(shape, generator=g).to(dtype)
    if channels_last:
        r = r.contiguous(memory_format=torch.channels_last)
    valid = torch.rand((shape[0],) + shape[2:], generator=g) >= invalid
    return r, valid


@pytest.mark.parametrize("shape, dtype, channels_last, slab, invalid", [
    ((2, 7, 13, 11), torch.float32, True, 1, 0.2),      # one row per slab: every pair straddles
    ((2, 7, 13, 11), torch.float32, False, 50, 0.2),     # several rows per slab, strided layout
    ((1, 5, 9, 10), torch.float32, True, 10**6, 0.2),    # one slab
    ((2, 6, 4, 6, 5), torch.float32, False, 30, 0.2),    # 3D patch
    ((2, 7, 13, 11), torch.bfloat16, True, 40, 0.2),     # the CPU training dtype
    # every voxel valid (no mask: the paper's images), the path without mask arithmetic
    ((2, 7, 13, 11), torch.float32, True, 1, 0.0),
    ((2, 7, 13, 11), torch.bfloat16, True, 40, 0.0),
    ((2, 6, 4, 6, 5), torch.float32, False, 30, 0.0),
])
def test_fused_loss_equals_the_separate_terms(shape, dtype, channels_last, slab, invalid):
    r, valid = _case(shape, dtype, channels_last, invalid=invalid)
    assert bool(valid.all()) == (invalid == 0)
    weights = [0.5, 1.0, 0.8][-len(shape[2:]):]
    a = r.clone().requires_grad_()
    ref = _reference(a, valid, weights, 0.7)
    ref.backward()
    b = r.clone().requires_grad_()
    loss, counts = dfc_loss(b, valid, weights, w_continuity=0.7, slab_elements=slab)
    loss.backward()
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert loss.item() == pytest.approx(ref.item(), rel=tol)
    scale = a.grad.float().abs().max().item()
    assert (b.grad.float() - a.grad.float()).abs().max().item() <= tol * scale
    assert torch.equal(counts, torch.bincount(r.argmax(1)[valid], minlength=shape[1]))


@pytest.mark.parametrize("invalid", [0.2, 0.0])
def test_fused_loss_with_scribbles_and_anchor_equals_the_separate_terms(invalid):
    r, valid = _case((2, 6, 12, 9), torch.float32, True, seed=3, invalid=invalid)
    g = torch.Generator().manual_seed(4)
    scribbles = torch.randint(0, 4, valid.shape, generator=g) * (torch.rand(valid.shape, generator=g) > 0.8)
    x = torch.rand(2, 1, 12, 9, generator=g)
    mixture = (torch.tensor([[0.2], [0.5], [0.8]]), torch.full((3, 1), 0.01), torch.full((3,), 1 / 3))
    a = r.clone().requires_grad_()
    ref = _reference(a, valid, [1.0, 1.0], 1.0, scribbles=scribbles, w_scr=2.0,
                     anchor=(x, mixture, 0.5))
    ref.backward()
    b = r.clone().requires_grad_()
    anchor = (0.5 * intensity_loglik(x, mixture)).movedim(1, -1).contiguous()
    loss, _ = dfc_loss(b, valid, [1.0, 1.0], scribbles=scribbles, w_scribble=2.0, anchor=anchor,
                       slab_elements=60)
    loss.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    assert torch.allclose(b.grad, a.grad, rtol=1e-4, atol=1e-7)


def test_fused_loss_on_no_valid_voxel_is_zero_with_zero_gradient():
    r = torch.randn(1, 4, 5, 6, requires_grad=True)
    loss, counts = dfc_loss(r, torch.zeros(1, 5, 6, dtype=torch.bool), [1.0, 1.0])
    loss.backward()
    assert loss.item() == 0.0 and counts.sum().item() == 0
    assert r.grad.abs().max().item() == 0.0


@pytest.mark.parametrize("shape, crop, channels_last", [
    ((2, 7, 15, 13), (slice(2, 13), slice(1, 12)), True),           # 2D, a halo on every side
    ((2, 7, 15, 13), (slice(0, 13), slice(2, 13)), False),          # a crop at the edges
    ((1, 6, 6, 9, 8), (slice(1, 5), slice(2, 7), slice(0, 8)), False),  # 3D patch
])
def test_loss_of_a_crop_equals_the_loss_of_the_cropped_responses(shape, crop, channels_last):
    # training passes the whole response (input + halo) and the loss region; the gradient
    # must be that of the cropped tensor, exactly, and zero in the halo
    r, _ = _case(shape, torch.bfloat16, channels_last, seed=3)
    g = torch.Generator().manual_seed(4)
    region = (slice(None), slice(None)) + crop
    valid = torch.rand(r[region][:, 0].shape, generator=g) > 0.2
    anchor = torch.randn(r[region][:, 0].shape + (3,), generator=g)
    a = r.clone().requires_grad_()
    ref, ref_counts = dfc_loss(a[region], valid, [0.5, 1.0, 0.8], anchor=anchor, slab_elements=60)
    ref.backward()
    b = r.clone().requires_grad_()
    loss, counts = dfc_loss(b, valid, [0.5, 1.0, 0.8], anchor=anchor, slab_elements=60, crop=crop)
    loss.backward()
    assert torch.equal(loss, ref) and torch.equal(counts, ref_counts)
    assert torch.equal(b.grad, a.grad)
    outside = torch.ones(shape, dtype=torch.bool)
    outside[region] = False
    assert (b.grad[outside] == 0).all() and (b.grad[~outside] != 0).any()


def test_fused_loss_gradient_scales_with_the_outer_gradient():
    # backward skips the product by the outer gradient when it is 1: any other factor must
    # still reach the responses
    r, valid = _case((2, 7, 13, 11), torch.float32, True, invalid=0.0)
    a = r.clone().requires_grad_()
    dfc_loss(a, valid, [1.0, 1.0])[0].backward()
    b = r.clone().requires_grad_()
    (dfc_loss(b, valid, [1.0, 1.0])[0] * -2.5).backward()
    assert torch.allclose(b.grad, -2.5 * a.grad, rtol=1e-6, atol=0)


@pytest.mark.parametrize("invalid, channels_last", [(0.2, True), (0.0, True), (0.2, False)])
def test_loss_split_over_threads_gives_the_gradient_of_one_thread(invalid, channels_last):
    # the slabs are walked by several threads on CPU; each part reads its neighbours' rows
    # for the pairs that straddle, so the gradient and counts are bitwise those of one part
    r, valid = _case((2, 7, 23, 11), torch.bfloat16, channels_last, seed=5, invalid=invalid)
    g = torch.Generator().manual_seed(6)
    scribbles = torch.randint(0, 3, valid.shape, generator=g) * (torch.rand(valid.shape, generator=g) > 0.9)
    anchor = torch.randn(valid.shape + (3,), generator=g)
    out = []
    for parts in (1, 2, 3):
        a = r.clone().requires_grad_()
        loss, counts = dfc_loss(a, valid, [0.5, 1.0], scribbles=scribbles, w_scribble=0.5,
                                anchor=anchor, slab_elements=2 * 11 * 7 * 2, parts=parts)
        loss.backward()
        out.append((loss.item(), counts, a.grad))
    for loss, counts, grad in out[1:]:
        assert loss == pytest.approx(out[0][0], rel=1e-6)
        assert torch.equal(counts, out[0][1]) and torch.equal(grad, out[0][2])


def test_loss_split_over_threads_runs_in_a_forked_child():
    # the part threads do not survive a fork: a child (multiprocessing's default start
    # method on Linux) must get a new pool instead of queueing work for dead threads
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    r, valid = _case((1, 7, 40, 11), torch.float32, True, seed=2)
    loss, _ = dfc_loss(r, valid, [1.0, 1.0], slab_elements=77, parts=2)  # the parent's pool
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        child = pool.apply_async(_loss_value_in_child, (r, valid)).get(timeout=60)
    assert child == pytest.approx(loss.item(), rel=1e-6)


def _loss_value_in_child(r, valid):
    return dfc_loss(r, valid, [1.0, 1.0], slab_elements=77, parts=2)[0].item()
