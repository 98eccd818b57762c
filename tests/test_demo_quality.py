"""The demo's promise: the phantom without a mask is segmented well (issue 11)."""

import numpy as np
import pytest

from napari_dfcseg.demo import run_demo


@pytest.mark.slow
def test_demo_without_mask_reaches_dice_090_on_every_tissue(tmp_path):
    import torch

    torch.set_num_threads(1)
    text = run_demo(tmp_path / "demo", shape=(20, 72, 64), seed=0, device="cpu")
    line = next(l for l in text.splitlines() if l.startswith("Dice"))
    worst = float(line.rsplit("worst", 1)[1])
    assert worst >= 0.9, text
    assert "automatic head mask" in text and "tissues:" in text
    import nibabel as nib

    labels = np.asarray(nib.load(str(tmp_path / "demo" / "phantom_labels.nii.gz")).dataobj)
    truth = np.asarray(nib.load(str(tmp_path / "demo" / "phantom_truth.nii.gz")).dataobj)
    assert (labels[truth == 0] == 0).mean() > 0.95  # label 0 = outside the head
