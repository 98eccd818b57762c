"""The default preset on the public abdominal CT (issue 11): bone, liver and lung kept, air outside."""

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_dfcseg import segment
from conftest import read_real_case

# TotalSegmentator "total" class ids of ../shared/data/real/README.md
GROUPS = {
    "lung": [10, 11, 12, 13, 14, 16],
    "bone": list(range(25, 51)) + list(range(69, 79)) + [91] + list(range(92, 118)),
    "liver": [5],
}


def _best_label_dice(labels, truth):
    return max(2 * np.sum((labels == v) & truth) / (np.sum(labels == v) + truth.sum())
               for v in np.unique(labels) if v)


@pytest.mark.slow
def test_default_keeps_bone_liver_and_lung_of_the_public_ct(real_data):
    # before the labelling pass took the anchored target, the network's bare argmax after
    # its 50 iterations had not learnt bone yet: bone 0.14 (docs/method.md, "Final labels")
    torch.set_num_threads(1)
    vol, ct, ref = read_real_case(real_data, "ct-abdomen-3mm")
    result = segment(ct, spacing=vol.spacing, seed=0)
    dice = {g: _best_label_dice(result.labels, np.isin(ref, ids)) for g, ids in GROUPS.items()}
    # measured seed 0: bone 0.79, liver 0.76, lung 0.42 (GMM(8) on raw HU: 0.83 / 0.52 / 0.28);
    # the soft-tissue window counted on its own gives K = 8 (the whole range alone: 5-6,
    # and liver 0.52: docs/method.md, "CT: the tissue count")
    assert result.n_tissues >= 7, result.tissue_count_reason
    assert dice["bone"] > 0.74, dice
    assert dice["liver"] > 0.7, dice
    assert dice["lung"] > 0.38, dice
    outside_air = (ct < -900) & ~ndi.binary_fill_holes(ct > -500)
    assert np.mean(result.labels[outside_air] == 0) > 0.95
