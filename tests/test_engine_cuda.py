"""The CUDA path (mixed precision): runs where a GPU is visible, skipped elsewhere.

``benchmarks/gpu.sh`` runs this file before the benchmark suite on a GPU machine.
"""

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch")

from napari_dfcseg import DFCConfig, apply_model, segment  # noqa: E402
from napari_dfcseg.datasets import head_phantom  # noqa: E402
from napari_dfcseg.engine.losses import dfc_loss  # noqa: E402
from napari_dfcseg.metrics import dice_per_tissue  # noqa: E402

CFG = dataclasses.replace(DFCConfig.preset("default"), max_iter=30, min_iter=30)


@pytest.fixture(scope="module")
def phantom():
    return head_phantom(shape=(8, 128, 112), spacing=(3.0, 1.0, 1.0), noise=0.05, bias=0.2)


@pytest.mark.parametrize("mode", ["2d", "3d"])
def test_cuda_run_recovers_the_phantom_tissues_and_its_model_reapplies(phantom, mode):
    torch.cuda.reset_peak_memory_stats()
    r = segment(phantom.image, mode=mode, spacing=phantom.spacing, mask=phantom.mask,
                config=CFG, device="cuda")
    assert r.device.startswith("cuda")
    dice = dice_per_tissue(r.labels, phantom.truth, phantom.mask)
    assert min(dice.values()) > 0.8, dice
    again = apply_model(r.model, phantom.image, spacing=phantom.spacing, mask=phantom.mask,
                        device="cuda")
    assert np.mean(again.labels == r.labels) > 0.999
    assert torch.cuda.max_memory_allocated() < 2 * 2**30


def test_cuda_fused_loss_equals_the_cpu_one():
    g = torch.Generator().manual_seed(0)
    r = torch.randn(2, 16, 40, 33, generator=g)
    valid = torch.rand(2, 40, 33, generator=g) > 0.1
    cpu = r.clone().requires_grad_()
    loss_cpu, counts_cpu = dfc_loss(cpu, valid, [1.0, 1.0], slab_elements=4000)
    loss_cpu.backward()
    gpu = r.cuda().requires_grad_()
    loss_gpu, counts_gpu = dfc_loss(gpu, valid.cuda(), [1.0, 1.0], slab_elements=4000)
    loss_gpu.backward()
    assert loss_gpu.item() == pytest.approx(loss_cpu.item(), rel=1e-5)
    assert torch.allclose(gpu.grad.cpu(), cpu.grad, rtol=1e-4, atol=1e-7)
    assert torch.equal(counts_gpu.cpu(), counts_cpu)


def test_cuda_label_smoothing_agrees_with_the_cpu_one():
    from napari_dfcseg.engine.label_smoothing import smooth_labels

    g = torch.Generator().manual_seed(0)
    scores = torch.nn.functional.pad(torch.randn(5, 9, 30, 28, generator=g), (1, 1, 1, 1, 1, 1))
    valid = (torch.rand(9, 30, 28, generator=g) > 0.1).numpy()
    weights = torch.rand(9, 30, 28, generator=g).numpy()
    cpu = smooth_labels(scores, valid, weights, 1.0, (1, 1, 1))
    gpu = smooth_labels(scores.cuda(), valid, weights, 1.0, (1, 1, 1))
    assert not gpu.is_cuda  # labels come back to the host
    assert (gpu == cpu)[torch.from_numpy(valid)].float().mean() > 0.999
