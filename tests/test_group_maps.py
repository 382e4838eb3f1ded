"""Voxel-wise group statistics on maps, against independent computations and a planted network."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, stats

from lfpbold.plugins.group_maps import one_sample_map_test


def _mask(shape=(10, 10, 3)):
    mask = np.zeros(shape, bool)
    mask[1:-1, 1:-1, :] = True
    return mask


def _planted(n_scans=10, effect=0.5, noise=0.15, seed=0):
    """Correlation maps with a compact 'network' of 3x3x3 voxels and noise elsewhere."""
    rng = np.random.default_rng(seed)
    mask = _mask()
    truth = np.zeros(mask.shape)
    truth[2:5, 2:5, :] = effect
    signal = truth[mask]
    maps = np.tanh(signal + noise * rng.standard_normal((n_scans, signal.size)))
    return maps, mask, signal != 0


def test_voxel_statistics_match_scipy_on_fisher_z():
    maps, mask, _ = _planted()
    out = one_sample_map_test(maps, mask, np.eye(4), n_permutations=0)
    z = np.arctanh(maps)
    ref = stats.ttest_1samp(z, 0.0, axis=0)
    np.testing.assert_allclose(out["t"], ref.statistic, rtol=1e-5)
    np.testing.assert_allclose(out["p"], ref.pvalue, rtol=1e-4, atol=1e-12)
    np.testing.assert_allclose(out["p_fdr"], stats.false_discovery_control(ref.pvalue), rtol=1e-4, atol=1e-12)
    np.testing.assert_allclose(out["mean"], np.tanh(z.mean(axis=0)), rtol=1e-5)
    assert out["fisher"] and np.isnan(out["p_fwe"]).all() and out["n_fwe"] == 0
    assert out["t_threshold"] == pytest.approx(stats.t.isf(0.0005, maps.shape[0] - 1))


def test_permutation_fwe_finds_the_planted_network_and_little_else():
    maps, mask, network = _planted()
    out = one_sample_map_test(maps, mask, np.eye(4), n_permutations=500)
    assert (out["p_fwe"][network] < 0.05).all()
    assert (out["p_fwe"][~network] < 0.05).mean() < 0.05
    # FWE is stricter than FDR, which is stricter than no correction
    assert out["n_fwe"] <= out["n_fdr"] <= out["n_p"]
    # the network is one 3x3x3 cluster: its voxels share one cluster p, and it is significant
    assert (out["cluster_p_fwe"][network] < 0.05).all()
    assert np.unique(out["cluster_p_fwe"][network]).size == 1
    # every voxel with cluster p < 1 lies in a supra-threshold connected component
    supra = np.zeros(mask.shape, bool)
    supra[mask] = np.abs(out["t"]) > out["t_threshold"]
    labels, _ = ndimage.label(supra)
    in_cluster = np.zeros(mask.shape, bool)
    in_cluster[mask] = out["cluster_p_fwe"] < 1
    assert not (in_cluster & (labels == 0)).any()


def test_null_maps_give_few_fwe_voxels():
    rng = np.random.default_rng(3)
    mask = _mask()
    maps = np.tanh(0.2 * rng.standard_normal((8, int(mask.sum()))))
    out = one_sample_map_test(maps, mask, np.eye(4), n_permutations=300, random_state=1)
    assert out["n_fwe"] <= 3
    again = one_sample_map_test(maps, mask, np.eye(4), n_permutations=300, random_state=1)
    np.testing.assert_array_equal(out["p_fwe"], again["p_fwe"])  # reproducible


def test_non_correlation_maps_are_tested_as_they_are():
    rng = np.random.default_rng(0)
    mask = _mask()
    maps = 3.0 + rng.standard_normal((6, int(mask.sum())))  # e.g. mutual information in nats
    out = one_sample_map_test(maps, mask, np.eye(4), n_permutations=0)
    assert not out["fisher"]
    np.testing.assert_allclose(out["t"], stats.ttest_1samp(maps, 0.0, axis=0).statistic, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(maps=np.zeros((1, 192))), "at least 2 scans"),
        (dict(maps=np.zeros((4, 10))), "one True voxel per map voxel"),
        (dict(maps=np.zeros(192)), "(n_scans, n_voxels)"),
        (dict(maps=np.zeros((4, 192)), cluster_forming_p=2.0), "(0, 1)"),
    ],
)
def test_bad_input_says_what_was_expected(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        one_sample_map_test(brain_mask=_mask(), affine=np.eye(4), n_permutations=0, **kwargs)
