"""The torch median network gives SimpleITK's 3-voxel median bit for bit (engine/median.py)."""

import itertools

import numpy as np
import pytest

pytest.importorskip("torch")
sitk = pytest.importorskip("SimpleITK")

from benchmarks.experiments import median_network  # noqa: E402
from napari_dfcseg.engine import median  # noqa: E402
from napari_dfcseg.engine.median import median_filter  # noqa: E402
from napari_dfcseg.engine.normalize import denoise  # noqa: E402

RADII = [r for r in itertools.product((0, 1), repeat=3) if any(r)]


def _sitk(a, radius):
    return sitk.GetArrayFromImage(sitk.Median(sitk.GetImageFromArray(a), list(radius[::-1])))


@pytest.mark.parametrize("radius", RADII)
@pytest.mark.parametrize("shape", [(6, 9, 7), (1, 8, 5), (2, 3, 3), (3, 1, 4)])
def test_equals_simpleitks_median_on_distinct_tied_and_float64_values(radius, shape):
    rng = np.random.default_rng(sum(shape) + 7 * sum(radius))
    for a in (rng.random(shape, dtype=np.float32),
              rng.integers(0, 3, shape).astype(np.float32),  # many ties
              rng.normal(size=shape)):  # float64
        got = median_filter(a, radius)
        assert got.dtype == a.dtype
        assert np.array_equal(got, _sitk(a, radius))


def test_equals_the_27_value_median_of_every_neighbourhood_across_slab_borders(monkeypatch):
    monkeypatch.setattr(median, "_SLAB_ELEMENTS", 2 * 11 * 10)  # slabs of 2 slices
    rng = np.random.default_rng(3)
    a = rng.integers(0, 50, (7, 11, 10)).astype(np.float32)
    pad = np.pad(a, 1, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(pad, (3, 3, 3))
    expected = np.median(windows.reshape(a.shape + (27,)), axis=-1)
    assert np.array_equal(median_filter(a, (1, 1, 1)), expected)


def test_the_engines_table_is_the_derivation_and_selects_the_median():
    steps, out = median_network.derive()
    assert steps == median.MEDIAN27_NETWORK and out == median._MEDIAN27_OUT
    assert len(steps) == 102
    rng = np.random.default_rng(1)
    cube = rng.integers(0, 5, (3, 3, 3, 20000)).astype(np.float64)
    assert np.array_equal(median_network.evaluate(steps, out, cube),
                          np.median(cube.reshape(27, -1), axis=0))


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (5.0, 1.0, 1.0)])
def test_denoise_gives_simpleitks_filter(spacing):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 9, 20, 17)).astype(np.float32)
    radius = (0 if spacing[0] > 2 else 1, 1, 1)
    expected = np.stack([_sitk(c, radius) for c in x])
    assert np.array_equal(denoise(x.copy(), "median", spacing), expected)


def test_rejects_other_radii_and_shapes():
    with pytest.raises(ValueError):
        median_filter(np.zeros((3, 3, 3), np.float32), (2, 1, 1))
    with pytest.raises(ValueError):
        median_filter(np.zeros((3, 3), np.float32), (1, 1, 1))
