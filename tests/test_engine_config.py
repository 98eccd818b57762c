"""DFCConfig, presets, normalisation and the torch-free import contract."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from napari_dfcseg.engine.config import PRESETS, DFCConfig, resolve_config
from napari_dfcseg.engine.inputs import prepare_image
from napari_dfcseg.engine.normalize import IntensityNormalization
from napari_dfcseg.errors import InvalidInputError


def test_paper_preset_is_the_published_defaults():
    cfg = DFCConfig.preset("paper")
    assert (cfg.n_channels, cfg.n_conv, cfg.kernel) == (100, 2, 3)
    assert (cfg.lr, cfg.momentum, cfg.max_iter, cfg.min_labels) == (0.1, 0.9, 1000, 3)
    assert (cfg.w_similarity, cfg.w_continuity, cfg.w_scribble) == (1.0, 1.0, 0.5)
    assert cfg.stop_rule == "batch" and cfg.n_clusters is None


def test_config_is_frozen_and_replace_works():
    cfg = DFCConfig.preset("fast")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.max_iter = 3
    assert dataclasses.replace(cfg, max_iter=50).max_iter == 50


def test_unknown_preset_names_the_valid_ones():
    with pytest.raises(InvalidInputError, match="default.*fast.*paper"):
        DFCConfig.preset("turbo")
    with pytest.raises(InvalidInputError, match="valid presets"):
        resolve_config("turbo")


def test_resolve_config_accepts_name_config_or_none():
    assert resolve_config("paper") is PRESETS["paper"]
    assert resolve_config(None) == PRESETS["default"]
    cfg = DFCConfig(max_iter=7)
    assert resolve_config(cfg) is cfg


def test_invalid_field_is_named_in_the_error():
    with pytest.raises(InvalidInputError, match="kernel"):
        DFCConfig(kernel=4)
    with pytest.raises(InvalidInputError, match="n_clusters"):
        DFCConfig(n_channels=8, n_clusters=9)


def test_config_round_trips_through_plain_types():
    cfg = dataclasses.replace(PRESETS["default"], hu_window=(-100.0, 200.0), n_clusters=4)
    plain = cfg.to_dict()
    assert all(not isinstance(v, tuple) for v in plain.values())
    assert DFCConfig.from_dict(plain) == cfg


def test_normalisation_maps_mask_percentiles_to_0_and_1():
    rng = np.random.default_rng(0)
    img = rng.uniform(100, 200, size=(4, 20, 20)).astype(np.float32)
    img[:, :2] = 5000  # outside the mask: must not move the scale
    mask = np.zeros(img.shape, bool)
    mask[:, 2:] = True
    norm = IntensityNormalization.fit(prepare_image(img)[0], mask, percentiles=(0, 100))
    x = norm.apply(prepare_image(img)[0])
    assert x.shape == (1, 4, 20, 20) and x.dtype == np.float32
    assert x[0][mask].min() == pytest.approx(0, abs=1e-6)
    assert x[0][mask].max() == pytest.approx(1, abs=1e-6)
    assert x[0][~mask].max() == pytest.approx(2.0)  # clipped
    assert not norm.constant and norm.n_channels == 1


def test_hu_window_clips_before_scaling():
    img = np.linspace(-1000, 1000, 2 * 10 * 10).reshape(2, 10, 10)
    norm = IntensityNormalization.fit(prepare_image(img)[0], None, percentiles=(0, 100),
                                      hu_window=(-100, 100))
    assert norm.low == (-100.0,) and norm.high == (100.0,)
    x = norm.apply(prepare_image(img)[0])
    assert x.min() == 0.0 and x.max() == 1.0


def test_normalisation_is_stored_as_plain_types_and_restored_exactly():
    img = np.random.default_rng(1).normal(50, 10, size=(3, 12, 12, 2))
    norm = IntensityNormalization.fit(img, hu_window=(0, 80))
    stored = norm.to_dict()
    assert stored == {"low": list(norm.low), "high": list(norm.high), "hu_window": [0.0, 80.0],
                      "constant": False}
    assert all(type(v) is float for v in stored["low"] + stored["high"])
    back = IntensityNormalization.from_dict(stored)
    assert back == norm
    np.testing.assert_array_equal(back.apply(img), norm.apply(img))


def test_a_constant_image_fits_a_constant_normalisation():
    norm = IntensityNormalization.fit(np.full((2, 6, 6, 1), 7.0))
    assert norm.constant and norm.high[0] > norm.low[0]


def test_applying_to_other_channels_or_nan_is_a_clear_error():
    norm = IntensityNormalization.fit(np.arange(32.0).reshape(2, 4, 4, 1))
    with pytest.raises(InvalidInputError, match="image has 2 channels, the model was trained on 1"):
        norm.apply(np.zeros((2, 4, 4, 2)))
    bad = np.zeros((2, 4, 4, 1))
    bad[1, 2, 3] = np.nan
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        norm.apply(bad)


def test_torch_free_modules_do_not_import_torch():
    code = ("import sys; import napari_dfcseg, napari_dfcseg.engine.config, "
            "napari_dfcseg.engine.normalize, napari_dfcseg.engine.labelling, napari_dfcseg.engine.label_edits, "
            "napari_dfcseg.engine.inputs, napari_dfcseg.engine.result, napari_dfcseg.engine.parameters; "
            "napari_dfcseg.DFCConfig.preset('fast'); "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_thick_axes_get_one_voxel_kernels():
    from napari_dfcseg.engine.network import DFCNet, kernel_shape, receptive_radius

    assert kernel_shape(3, (2.5, 1.0, 1.0)) == (1, 3, 3)
    assert kernel_shape(3, (1.5, 1.0, 1.0)) == (3, 3, 3)
    assert kernel_shape(5, (1.0, 0.5, 1.0)) == (1, 5, 1)
    assert kernel_shape(3, (2.5, 1.0, 1.0), thick_ratio=None) == (3, 3, 3)
    assert receptive_radius(2, (1, 3, 3)) == (0, 2, 2)
    net = DFCNet(1, 4, 2, (1, 3, 3), dims=3)
    assert net.halo == (0, 2, 2) and net.convs[0].weight.shape[2:] == (1, 3, 3)
    with pytest.raises(InvalidInputError, match="thick_slice_ratio"):
        DFCConfig(thick_slice_ratio=0.5)


def test_continuity_weight_per_mode_and_anchor_helpers():
    default, paper = DFCConfig.preset("default"), DFCConfig.preset("paper")
    assert default.continuity_weight("2d") == default.w_continuity == 1.0
    assert default.continuity_weight("3d") == 0.25
    assert paper.continuity_weight("3d") == paper.w_continuity  # unset: the 2D weight
    assert default.anchor_weight == 1.0 and paper.anchor_weight == 0.0
    off = default.with_anchor(0.0)
    assert off.mixture_components is None and off.anchor_weight == 0.0
    on = paper.with_anchor(2.0)
    assert on.mixture_components == 3 and on.anchor_weight == 2.0
