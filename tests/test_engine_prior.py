"""The intensity mixture that anchors the self-labels (engine.prior, DFCConfig.mixture_components)."""

import dataclasses

import numpy as np
import pytest
import torch

from napari_dfcseg import DFCConfig, InvalidInputError, apply_model, segment
from napari_dfcseg.datasets import head_phantom
from conftest import trunk_ct
from napari_dfcseg.engine.prior import (anchored_target, fit_gaussian_mixture, fit_intensity_mixture,
                                        intensity_prior, scribble_mixture)


def _three_classes(rng, sd=(0.05, 0.1, 0.05)):
    parts = [rng.normal(1.0, sd[2], 3000), rng.normal(0.0, sd[0], 2000), rng.normal(0.5, sd[1], 5000)]
    return np.concatenate(parts)[:, None]


def test_mixture_recovers_known_components_in_intensity_order():
    x = _three_classes(np.random.default_rng(0))
    means, variances, weights = fit_gaussian_mixture(x, 3)
    np.testing.assert_allclose(means[:, 0], [0.0, 0.5, 1.0], atol=0.02)
    np.testing.assert_allclose(np.sqrt(variances[:, 0]), [0.05, 0.1, 0.05], atol=0.01)
    np.testing.assert_allclose(weights, [0.2, 0.5, 0.3], atol=0.02)


def test_tied_mixture_shares_one_variance():
    x = _three_classes(np.random.default_rng(1), sd=(0.07, 0.07, 0.07))
    means, variances, weights = fit_gaussian_mixture(x, 3, tied=True)
    np.testing.assert_allclose(means[:, 0], [0.0, 0.5, 1.0], atol=0.02)
    assert np.ptp(variances) == 0 and abs(np.sqrt(variances[0, 0]) - 0.07) < 0.01
    np.testing.assert_allclose(weights, [0.2, 0.5, 0.3], atol=0.02)


def test_prior_is_minus_one_outside_the_mask_and_ordered_by_intensity():
    p = head_phantom(shape=(6, 40, 36), noise=0.05, bias=0.0)
    x = p.image[np.newaxis].astype(np.float32)
    prior = intensity_prior(x, p.mask, 3, seed=0)
    assert prior.shape == p.image.shape and prior.dtype == np.int16
    assert (prior[~p.mask] == -1).all() and set(np.unique(prior[p.mask])) == {0, 1, 2}
    means = [p.image[prior == k].mean() for k in range(3)]
    assert means == sorted(means)
    # the phantom's tissues differ in intensity only: the mixture finds them
    agree = np.mean(prior[p.mask] + 1 == p.truth[p.mask])
    assert agree > 0.9, agree


def test_anchored_target_weighs_belief_against_intensity():
    mixture = (torch.tensor([[0.0], [1.0]]), torch.tensor([[0.01], [0.01]]), torch.tensor([0.5, 0.5]))
    x = torch.tensor([0.0, 0.45, 1.0]).reshape(1, 1, 3)
    # the network believes channel 0 (component 0) everywhere, mildly; channels
    # beyond the mixture's (2, 3) are never targets
    r = torch.zeros(1, 4, 3)
    r[:, 0] = 2.0
    r[:, 3] = 5.0
    target = anchored_target(r, x, mixture, 1.0)
    # clear intensities win; the ambiguous voxel (0.45) follows the belief
    assert target.tolist() == [[0, 0, 1]]
    # with no weight on the intensities the target is the belief alone
    assert anchored_target(r, x, mixture, 0.0).tolist() == [[0, 0, 0]]
    # a belief strong enough overrules a clear intensity
    r[:, 0] = 200.0
    assert anchored_target(r, x, mixture, 1.0).tolist() == [[0, 0, 0]]


def test_anchored_training_keeps_every_mixture_class():
    # the paper's self-training with few channels collapses classes; anchored, the
    # labels are the mixture's components (channels 0..2), spatially regularised
    p = head_phantom(shape=(6, 48, 40), noise=0.05, bias=0.1)
    cfg = dataclasses.replace(DFCConfig.preset("fast"), n_channels=12, max_iter=30, min_labels=1,
                              lr=0.1, n_clusters=None, mixture_components=3, batch_slices=2)
    result = segment(p.image, mask=p.mask, config=cfg, seed=0)
    assert set(np.flatnonzero(result.model.label_of).tolist()) == {0, 1, 2}
    assert set(np.unique(result.labels[p.mask]).tolist()) == {1, 2, 3}


def test_labels_follow_the_mixture_where_the_network_has_not_learnt_yet():
    # after 2 iterations the network's argmax is still noise; the labelling pass takes
    # the anchored target (belief + intensity log-likelihood), as training does, so the
    # labels are the mixture's classes (bone on the public CT: docs/method.md, "Final labels")
    p = head_phantom(shape=(6, 48, 40), noise=0.03, bias=0.0)
    cfg = dataclasses.replace(DFCConfig.preset("fast"), n_channels=12, max_iter=2, min_iter=0,
                              min_labels=1, n_clusters=None, mixture_components=3, batch_slices=2,
                              denoise=None, auto_mask=False)
    result = segment(p.image, mask=p.mask, config=cfg, seed=0)
    agree = np.mean(result.labels[p.mask] == p.truth[p.mask])
    assert agree > 0.9, agree
    # only the mixture's channels are labels; applying the model gives the same labels
    assert set(np.flatnonzero(result.model.label_of).tolist()) <= {0, 1, 2}
    again = apply_model(result.model, p.image, mask=p.mask)
    np.testing.assert_array_equal(again.labels, result.labels)


def test_mixture_components_beyond_the_channels_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="mixture_components"):
        dataclasses.replace(DFCConfig.preset("default"), mixture_components=64)
    with pytest.raises(InvalidInputError, match="mixture_weight"):
        dataclasses.replace(DFCConfig.preset("default"), mixture_weight=-1.0)


def test_scribble_mixture_has_one_component_per_class_from_the_scribbled_voxels():
    from napari_dfcseg.engine.sampling import TrainingVolume

    rng = np.random.default_rng(0)
    x = rng.normal(0.5, 0.05, (1, 4, 20, 20)).astype(np.float32)
    x[0, :, :, 10:] += 0.4  # right half brighter
    scribbles = np.zeros((4, 20, 20), np.int16)
    scribbles[1, 5, 2:8] = 1
    scribbles[2, 12, 12:18] = 2
    vol = TrainingVolume(x, None, scribbles, (1.0, 1.0, 1.0))
    means, variances, weights = scribble_mixture([vol])
    np.testing.assert_allclose(means[:, 0], [0.5, 0.9], atol=0.05)
    assert np.ptp(variances) == 0 and np.sqrt(variances[0, 0]) < 0.1
    np.testing.assert_allclose(weights, [0.5, 0.5])
    # a class id with no scribbled voxel: no mixture (the paper's argmax is used)
    scribbles[scribbles == 1] = 3
    assert scribble_mixture([TrainingVolume(x, None, scribbles, (1.0, 1.0, 1.0))]) is None


def test_mixture_of_repeated_values_equals_the_mixture_of_every_sample(monkeypatch):
    # CT and most MR intensities take a few thousand distinct values: EM runs on those,
    # each weighted by its count; that must be the EM over every sample
    import napari_dfcseg.engine.mixture_em as prior  # where the EM lives

    rng = np.random.default_rng(3)
    hu = np.round(np.concatenate([rng.normal(-80, 20, 4000), rng.normal(40, 15, 9000),
                                  rng.normal(700, 250, 1500)]))
    x = ((hu - hu.min()) / np.ptp(hu))[:, None]
    assert prior._distinct_rows(x) is not None  # this data takes the weighted path
    for tied, init in ((False, "quantile"), (True, "quantile"), (False, "uniform")):
        fast = fit_gaussian_mixture(x, 4, tied=tied, init=init)
        with monkeypatch.context() as m:
            m.setattr(prior, "_distinct_rows", lambda values: None)
            every = fit_gaussian_mixture(x, 4, tied=tied, init=init)
        for a, b in zip(fast, every):
            np.testing.assert_allclose(a, b, rtol=1e-6)
    # a second channel (a different window of the same values) takes the same path
    two = np.concatenate([x, np.clip(x * 3 - 1, 0, 1)], axis=1)
    assert prior._distinct_rows(two) is not None
    means = fit_gaussian_mixture(two, 3)[0]
    with monkeypatch.context() as m:
        m.setattr(prior, "_distinct_rows", lambda values: None)
        np.testing.assert_allclose(means, fit_gaussian_mixture(two, 3)[0], rtol=1e-6)


def test_one_channel_em_gives_the_general_loops_floats_bit_for_bit(monkeypatch):
    # the tissue count's 36 one-channel fits run a (k, n) EM and k-means (numpy's short-axis
    # loops cost ~0.5 ms an iteration); the chosen K rests on the same floats as the general
    # (n, k) loop, for every K (8 components on: numpy's pairwise row sums), start and tie
    import napari_dfcseg.engine.mixture_em as prior  # where the EM lives
    from napari_dfcseg.engine.tissue_count import _sample

    rng = np.random.default_rng(5)
    p = head_phantom(seed=1)
    phantom = _sample(p.image, p.image > np.percentile(p.image, 20), 0)
    repeated = np.round(_three_classes(rng)[:, 0] * 40) / 40         # the distinct-rows path
    assert prior._distinct_rows(phantom[:, None]) is None
    assert prior._distinct_rows(repeated[:, None]) is not None
    general = prior._em

    def general_nearest(values, centres):
        return ((values[:, None, :] - centres[None]) ** 2).sum(2).argmin(1)

    def general_centres(values, counts, assign, k, x):
        return np.stack([prior._weighted_mean(values, counts, assign == i) if np.any(assign == i)
                         else x.mean(0) for i in range(k)])

    for values in (phantom, repeated):
        x = values[:, None]
        for k in (2, 3, 5, 8, 9, 12):
            for init, tied in (("quantile", False), ("uniform", False), ("quantile", True)):
                fast = fit_gaussian_mixture(x, k, n_iter=100, tol=1e-5, var_floor=1e-4, init=init,
                                            tied=tied)
                with monkeypatch.context() as m:
                    m.setattr(prior, "_em_one_channel", general)
                    m.setattr(prior, "_nearest", general_nearest)
                    m.setattr(prior, "_centres", general_centres)
                    slow = fit_gaussian_mixture(x, k, n_iter=100, tol=1e-5, var_floor=1e-4,
                                                init=init, tied=tied)
                for a, b in zip(fast, slow):
                    np.testing.assert_array_equal(a, b)


def _blurred_ct(seed=0):
    """A small CT in HU with partial volume at every border: fat, two organs, lung, gas, a vertebra."""
    hu = trunk_ct((12, 64, 64), [((10, 30), (10, 54), 40.0),        # organ A
                                 ((30, 50), (10, 54), 60.0),        # organ B
                                 ((12, 26), (14, 30), -850.0),      # lung
                                 ((14, 20), (36, 44), -1000.0),     # bowel gas
                                 ((50, 58), (24, 40), 500.0)],      # a vertebra
                  blur=1.0, seed=seed)
    mask = np.zeros(hu.shape, bool)
    mask[:, 4:60, 4:60] = True
    return hu, mask


@pytest.mark.parametrize("k", [6, 7, 8])
def test_ct_mixture_has_no_partial_volume_component(k):
    # fitted to the whole foreground at once, one free component covers the partial volume
    # between air / lung and tissue (on the public CT -208 ± 256 HU: its tails took a third
    # of the lung and a tenth of the bone); air and the body's flat insides fitted apart
    # give every component one tissue (docs/method.md, "CT: the anchor mixture")
    from napari_dfcseg.engine.prior import fit_ct_mixture

    hu, mask = _blurred_ct()
    lo, hi = np.percentile(hu[mask], [0.5, 99.5])
    x = ((hu - lo) / (hi - lo))[None].astype(np.float32)

    def in_hu(mixture):
        return mixture[0][:, 0] * (hi - lo) + lo, np.sqrt(mixture[1][:, 0]) * (hi - lo)

    whole_mean, whole_sd = in_hu(fit_intensity_mixture(x, mask, k, tied=False))
    ct = fit_ct_mixture(x, mask, k, air_level=(-500 - lo) / (hi - lo), n_air=2, spacing=(3, 1, 1))
    ct_mean, ct_sd = in_hu(ct)
    between = (whole_mean > -700) & (whole_mean < -150)
    assert np.any(between & (whole_sd > 100)), (whole_mean, whole_sd)
    assert ct_sd.max() < 60, (ct_mean, ct_sd)
    assert np.isclose(ct[2].sum(), 1.0) and np.all(np.diff(ct[0][:, 0]) >= 0)
    assert np.min(np.abs(ct_mean - 500)) < 20 and np.min(np.abs(ct_mean + 850)) < 20, ct_mean
