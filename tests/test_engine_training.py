"""Training internals: one-pass BatchNorm recalibration, the screened eval stop rule, the allocator."""

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_dfcseg import DFCConfig, segment  # noqa: E402
from napari_dfcseg.datasets import head_phantom  # noqa: E402
from napari_dfcseg.engine.device import reuse_freed_memory  # noqa: E402
from napari_dfcseg.engine.inference import recalibrate_batchnorm, region_labels  # noqa: E402
from napari_dfcseg.engine.network import DFCNet  # noqa: E402
from napari_dfcseg.engine.sampling import TrainingVolume, evaluation_regions  # noqa: E402

SMALL = dataclasses.replace(DFCConfig.preset("default"), n_channels=32, max_iter=8, min_iter=4,
                            batch_slices=2, eval_slices=4, eval_every=2)


@pytest.fixture(scope="module")
def phantom():
    return head_phantom(shape=(10, 40, 36), spacing=(2.5, 1.0, 1.0), noise=0.05, bias=0.2)


def _trained_like_net(mode, seed=0):
    """A network with non-trivial weights and BatchNorm statistics far from the data's."""
    torch.manual_seed(seed)
    net = DFCNet(1, 8, 2, 3, 2 if mode == "2d" else 3)
    with torch.no_grad():
        for bn in net.batchnorms:
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.uniform_(-0.5, 0.5)
    return net


@pytest.mark.parametrize("mode", ["2d", "3d"])
def test_one_pass_recalibration_equals_layer_by_layer_passes(phantom, mode):
    x = ((phantom.image - phantom.image.mean()) / phantom.image.std()).astype(np.float32)[None]
    vol = TrainingVolume(x, phantom.mask, None, phantom.spacing)
    cfg = dataclasses.replace(SMALL, patch_size=(6, 16, 16))
    regions = evaluation_regions([vol], mode, cfg)
    one, layered = _trained_like_net(mode), _trained_like_net(mode)
    ids = recalibrate_batchnorm(one, [vol], regions, mode, torch.device("cpu"), batch_size=2,
                                return_labels=True)
    recalibrate_batchnorm(layered, [vol], regions, mode, torch.device("cpu"), batch_size=2,
                          memory_limit=0)  # forces one forward per layer
    for a, b in zip(one.batchnorms, layered.batchnorms):
        assert torch.allclose(a.running_mean, b.running_mean, rtol=1e-5, atol=1e-6)
        assert torch.allclose(a.running_var, b.running_var, rtol=1e-4, atol=1e-6)
    # and the labels it returns are those of the recalibrated network
    assert np.array_equal(ids, region_labels(one, [vol], regions, mode, torch.device("cpu"),
                                             batch_size=2))
    assert np.mean(ids == region_labels(layered, [vol], regions, mode, torch.device("cpu"),
                                        batch_size=2)) > 0.999


def test_eval_stop_rule_with_min_labels_1_labels_the_eval_set_only_near_a_collapse(phantom,
                                                                                   monkeypatch):
    from napari_dfcseg.engine import training

    calls = []
    real = training.recalibrate_batchnorm

    def counting(*args, **kwargs):
        calls.append(kwargs.get("return_labels", False))
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "recalibrate_batchnorm", counting)
    r = segment(phantom.image, spacing=phantom.spacing, mask=phantom.mask, config=SMALL)
    # the anchored three tissues never come near one label: no check ran, and BatchNorm
    # was recalibrated once, at the end
    assert r.n_iterations == SMALL.max_iter and r.stopped_by == "max_iter"
    assert calls == [False]
    # a rule that fires (at most 12 labels, near the batch's count): checks run when due
    # (from min_iter on, every eval_every) and the run stops at the first
    calls.clear()
    strict = dataclasses.replace(SMALL, min_labels=12)
    r = segment(phantom.image, spacing=phantom.spacing, mask=phantom.mask, config=strict)
    assert r.stopped_by == "min_labels" and r.n_iterations < strict.max_iter
    assert r.n_labels_history[-1] <= 12
    due = (r.n_iterations - strict.min_iter) // strict.eval_every + 1
    assert all(calls) and 1 <= len(calls) <= due  # the last check recalibrated: none after


def test_freed_memory_setting_is_nested_and_restored():
    with reuse_freed_memory():
        with reuse_freed_memory():
            a = torch.ones(3000, 3000)  # 36 MB: above glibc's mmap threshold
        b = a * 2
    assert float(b[0, 0]) == 2.0


def test_engine_sgd_steps_exactly_as_torch_optim_sgd():
    from napari_dfcseg.engine.training import _SGD

    torch.manual_seed(0)
    a, b = DFCNet(1, 4, 2, 3, 2), DFCNet(1, 4, 2, 3, 2)
    b.load_state_dict(a.state_dict())
    ours = _SGD(list(a.parameters()), lr=0.1, momentum=0.9)
    ref = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(2, 1, 12, 10)
    for _ in range(3):
        for net, opt in ((a, ours), (b, ref)):
            opt.zero_grad(set_to_none=True)
            net(x).square().mean().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("mode", ["2d", "3d"])
def test_eval_responses_in_place_equal_the_eval_forward(mode):
    # labelling uses net.respond (in-place ReLU/BatchNorm, head as one matrix product):
    # it must give forward()'s responses, channels last, and the same argmax
    net = _trained_like_net(mode).eval()
    with torch.no_grad():
        for bn in net.batchnorms:
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    torch.manual_seed(1)
    x = torch.rand((2, 1, 20, 24) if mode == "2d" else (1, 1, 8, 12, 10))
    with torch.no_grad():
        ref = net(x).movedim(1, -1)
    out = net.respond(x)
    assert out.shape == ref.shape and out.is_contiguous()
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-5)
    assert torch.mean((out.argmax(-1) == ref.argmax(-1)).float()) > 0.999
    with pytest.raises(RuntimeError, match="eval"):
        net.train().respond(x)


def test_labelling_target_without_the_softmax_is_the_anchored_target():
    # labelling drops log_softmax's log-sum-exp (the same for every class of a voxel)
    from napari_dfcseg.engine.inference import anchored_ids
    from napari_dfcseg.engine.prior import anchored_target

    torch.manual_seed(0)
    r = torch.randn(2, 8, 30, 40) * 3  # (B, p, h, w)
    x = torch.rand(2, 1, 30, 40)
    mixture = (torch.tensor([[0.1], [0.5], [0.9]]), torch.full((3, 1), 0.02),
               torch.tensor([0.2, 0.5, 0.3]))
    for weight in (0.0, 1.0, 3.0):
        ref = anchored_target(r, x, mixture, weight)
        out = anchored_ids(r.movedim(1, -1).contiguous(), x, mixture, weight)
        assert out.shape == ref.shape
        assert torch.mean((out == ref).float()) > 0.999
        assert out.max() < 3  # only the mixture's channels are targets


@pytest.mark.slow
def test_compiled_training_is_reproducible_and_agrees_with_eager(phantom):
    # DFCConfig.compile: the 2D training forward through torch.compile (inductor, a real
    # C++ build); same seed -> the same labels, and nearly the labels of eager training
    pytest.importorskip("torch._inductor")
    from sklearn.metrics import adjusted_rand_score

    eager_cfg = dataclasses.replace(SMALL, max_iter=6, min_iter=6)
    compiled_cfg = dataclasses.replace(eager_cfg, compile=True)
    kwargs = dict(mode="2d", spacing=phantom.spacing, mask=phantom.mask, seed=0, device="cpu")
    eager = np.asarray(segment(phantom.image, config=eager_cfg, **kwargs).labels)
    first = segment(phantom.image, config=compiled_cfg, **kwargs)
    second = segment(phantom.image, config=compiled_cfg, **kwargs)
    a, b = np.asarray(first.labels), np.asarray(second.labels)
    assert np.array_equal(a, b)
    inside = phantom.mask
    assert adjusted_rand_score(eager[inside], a[inside]) > 0.8


@pytest.mark.slow
def test_training_falls_back_to_eager_when_compiling_fails(phantom, caplog):
    # a C++ compiler that is not there: compiling fails for real, training goes on eagerly
    # with the labels of eager training and one warning
    inductor_config = pytest.importorskip("torch._inductor.config")
    cfg = dataclasses.replace(SMALL, max_iter=3, min_iter=3)
    kwargs = dict(mode="2d", spacing=phantom.spacing, mask=phantom.mask, seed=0, device="cpu")
    eager = np.asarray(segment(phantom.image, config=cfg, **kwargs).labels)
    old = inductor_config.cpp.cxx
    inductor_config.cpp.cxx = ("/nonexistent/c++",)
    try:
        torch._dynamo.reset()
        with caplog.at_level("WARNING", logger="napari_dfcseg.engine.device"):
            fallback = segment(phantom.image, config=dataclasses.replace(cfg, compile=True),
                               **kwargs)
    finally:
        inductor_config.cpp.cxx = old
        torch._dynamo.reset()
    assert np.array_equal(np.asarray(fallback.labels), eager)
    assert sum("torch.compile failed" in r.message for r in caplog.records) == 1
