"""Smoke tests of the benchmark harness (benchmarks/): small inputs, real components.

The benchmark numbers themselves live in docs/benchmarks.md; these tests only
make sure the harness runs and measures what it says, so it cannot rot.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ is a top-level folder, not part of the package
    sys.path.insert(0, str(ROOT))

from benchmarks.baselines import CLUSTERERS, run_baseline  # noqa: E402
from benchmarks import figures  # noqa: E402
from benchmarks.cases import phantom_case, simulate_scribbles  # noqa: E402
from napari_dfcseg.datasets import head_phantom  # noqa: E402


@pytest.fixture(scope="module")
def small_case():
    return phantom_case("phantom test", (16, 48, 40), (2.5, 1.0, 1.0), 0.05, 0.2)


@pytest.mark.parametrize("clusterer", CLUSTERERS)
def test_raw_baselines_recover_phantom_tissues(small_case, clusterer):
    from napari_dfcseg.metrics import dice_per_tissue

    labels = run_baseline(small_case.image, small_case.mask, clusterer=clusterer, n_classes=3)
    assert np.all(labels[~small_case.mask] == 0)
    # clusters are numbered by intensity: CSF < GM < WM on T1, i.e. 1, 2, 3
    dice = dice_per_tissue(labels, small_case.truth, small_case.mask, matching="one-to-one")
    assert min(dice.values()) > 0.95
    means = [small_case.image[labels == k].mean() for k in (1, 2, 3)]
    assert means == sorted(means)


def test_denoised_baseline_smooths_a_noisy_volume():
    p = head_phantom(shape=(24, 64, 56), spacing=(1.0, 1.0, 1.0), noise=0.25, bias=0.0)
    from benchmarks.common import normalise
    from napari_dfcseg.metrics import adjusted_rand_index

    image = normalise(p.image, p.mask)
    raw = run_baseline(image, p.mask, clusterer="kmeans", n_classes=3)
    smooth = run_baseline(image, p.mask, clusterer="kmeans", denoiser="median3", n_classes=3)
    assert adjusted_rand_index(smooth, p.truth, p.mask) > adjusted_rand_index(raw, p.truth, p.mask)


def test_simulated_scribbles_are_correct_strokes_on_few_slices(small_case):
    s = simulate_scribbles(small_case.truth, small_case.mask, n_slices=2, seed=1)
    drawn = s > 0
    assert np.unique(np.nonzero(drawn)[0]).size == 2
    assert np.array_equal(s[drawn], small_case.truth[drawn])  # a careful user: no wrong labels
    assert set(np.unique(s[drawn])) == {1, 2, 3}
    assert drawn.sum() < 0.2 * small_case.mask[np.nonzero(drawn)[0]].sum()  # strokes, not fills


@pytest.mark.slow
def test_mni152_ground_truth_and_degradation():
    pytest.importorskip("nilearn")
    from napari_dfcseg.datasets import mni152

    clean = mni152(noise=0.0, bias=0.0)
    assert clean.image.shape == (189, 233, 197) and clean.spacing == (1.0, 1.0, 1.0)
    assert np.array_equal(clean.truth > 0, clean.mask)
    assert set(np.unique(clean.truth)) == {0, 1, 2, 3}
    means = [clean.image[clean.truth == t].mean() for t in (1, 2, 3)]
    assert means == sorted(means)  # T1: CSF darker than GM darker than WM
    noisy = mni152(noise=0.05, bias=0.0)
    wm = clean.truth == 3
    sd = (noisy.image[wm] - clean.image[wm]).std() / clean.image[wm].mean()
    assert 0.04 < sd < 0.06  # BrainWeb's 5 %: relative to the white-matter intensity


@pytest.mark.slow
def test_original_loop_times_fixed_iterations_and_keeps_its_stop_rule():
    pytest.importorskip("torch")
    from benchmarks.common import PAPER_SAMPLES
    from benchmarks.original_dfc import original_dfc, read_bgr

    path = PAPER_SAMPLES / "101027.jpg"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    im = read_bgr(path)[100:140, 200:260]
    labels, times = original_dfc(im, n_channel=8, max_iter=3, stop_rule=False)
    assert labels.shape == (40, 60) and len(times) == 3 and min(times) > 0
    # the paper's rule: stop as soon as the image shows min_labels labels or fewer
    _, times = original_dfc(im, n_channel=8, max_iter=3, min_labels=8)
    assert len(times) == 1


def test_quality_records_render_into_a_report(tmp_path):
    pytest.importorskip("torch")
    from benchmarks.common import save_results
    from benchmarks.quality import baseline_records, engine_records
    from benchmarks.report import render

    # the report's plumbing, not its numbers: a case smaller than small_case
    small_case = phantom_case("phantom test", (6, 32, 28), (2.5, 1.0, 1.0), 0.05, 0.2)
    records = baseline_records(small_case, ks=(3,), denoisers=("none",), log=lambda s: None)
    records += engine_records(small_case, presets=("fast",), modes=("2d",), seeds=(0, 1),
                              scribble_slices=(1,), max_iter=2, log=lambda s: None)
    engine = [r for r in records if r["family"] == "engine"]
    assert len(engine) == 4 and all(r["n_iterations"] <= 2 for r in engine)
    assert all(0 <= r["dice_many_to_one"]["3"] <= 1 and r["wall_s"] > 0 for r in records)
    for r in records:  # the report's reference case is the MNI one: relabel for the table
        r["case"] = "MNI n5 b20"
    save_results("quality", {"settings": {"seeds": [0, 1], "baseline_seed": 0, "max_iter_cap": 2,
                                          "mni_crop": None}, "records": records}, folder=tmp_path)
    md = render(tmp_path, tmp_path).read_text()
    assert "| DFC fast 2d | 2 |" in md and "| gmm K=3 | 1 |" in md
    assert "No GPU figure was measured" in md
    assert (tmp_path / "img" / "bench_mni_reference.png").stat().st_size > 1000


@pytest.mark.slow
def test_worker_reports_time_and_peak_memory_of_a_fresh_process(small_case, tmp_path):
    pytest.importorskip("torch")
    from benchmarks.speed import _save_volume, run_worker

    path = _save_volume(tmp_path / "v.npz", small_case.image, small_case.mask,
                        small_case.spacing, small_case.truth)
    r = run_worker(path, "2d", preset="fast", max_iter=2, timeout=300)
    assert r["shape"] == [16, 48, 40] and r["n_iterations"] <= 2
    assert r["peak_rss_mib"] >= r["rss_before_mib"] > 50  # interpreter + torch at least
    assert set(r["dice_many_to_one"]) == {"1", "2", "3"}


def test_scribbles_from_png_maps_255_to_unlabelled():
    png = np.full((4, 4), 255, np.uint8)
    png[0, 0], png[1, 1], png[2, 2] = 0, 7, 0
    scr, mapping = figures.scribbles_from_png(png)
    assert mapping == {0: 1, 7: 2}
    assert scr[0, 0] == 1 and scr[1, 1] == 2 and scr[3, 3] == 0
    with pytest.raises(ValueError, match="2D array"):
        figures.scribbles_from_png(np.zeros((2, 2, 2, 2)))
