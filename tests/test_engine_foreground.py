"""Automatic body / head mask (engine/foreground.py) on real scans and the phantom."""

import numpy as np
import pytest

from conftest import read_real_case
from napari_dfcseg.datasets import head_phantom
from napari_dfcseg.engine.foreground import auto_foreground, looks_like_ct, resolve_mask
from napari_dfcseg.io import read_volume

LUNG = [10, 11, 12, 13, 14, 16]  # TotalSegmentator "total": lobes and trachea


def dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_ct_mask_keeps_lungs_and_organs_inside_and_air_and_table_outside(real_data):
    vol, ct, ref = read_real_case(real_data, "ct-abdomen-3mm")
    assert looks_like_ct(ct)
    mask = auto_foreground(ct, vol.spacing)
    assert mask[np.isin(ref, LUNG)].mean() > 0.999  # the lungs are air-like but inside
    assert mask[ref > 0].mean() > 0.999  # every segmented organ is inside
    # outside air: HU < -900 in the rows below / above the body in the first slice
    assert not mask[:, :3, :].any() and not mask[:, -3:, :].any()
    # the table is a bright structure (> -500 HU) beneath the body, cut off by the opening:
    # voxels > -500 HU outside the mask exist, and none of them touches the mask's rows
    table = (ct > -500) & ~mask
    assert table.sum() > 500
    inside_air = (ct < -900) & mask
    assert inside_air.sum() < 0.1 * (ct < -900).sum()


def test_mr_head_mask_is_the_head(real_data):
    vol, image, tumour = read_real_case(real_data, "mr-brain-tumour")
    tumour = tumour > 0
    assert not looks_like_ct(image)
    mask = auto_foreground(image, vol.spacing)
    assert mask[tumour].all()
    assert 0.3 < mask.mean() < 0.8
    for corner in (mask[:, :12, :12], mask[:, :12, -12:], mask[:, -12:, :12], mask[:, -12:, -12:]):
        assert not corner.any()  # the air in the corners of the view is outside


def test_mr_crop_without_air_is_all_foreground(real_data):
    vol = read_volume(real_data / "mr-breast" / "image.nrrd")
    assert auto_foreground(np.asarray(vol.array), vol.spacing).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_phantom_mask_is_the_head(seed):
    p = head_phantom(shape=(16, 48, 40), seed=seed)
    mask = auto_foreground(p.image, p.spacing)
    assert dice(mask, p.truth > 0) > 0.97


def test_modality_decides_and_user_mask_replaces_the_automatic_one():
    p = head_phantom(shape=(8, 32, 28))
    assert looks_like_ct(p.image, "CT") and not looks_like_ct(p.image - 1000, "MR")
    user = np.zeros(p.image.shape, bool)
    user[2:4, 5:9, 5:9] = True
    mask, source = resolve_mask(p.image, user, spacing=p.spacing)
    assert source == "user" and mask.sum() == user.sum()
    assert resolve_mask(p.image, None, auto=False) == (None, "none")
    assert resolve_mask(p.image, None, spacing=p.spacing)[1] == "auto"
    assert auto_foreground(np.zeros((4, 8, 8))).all()  # constant: everything
