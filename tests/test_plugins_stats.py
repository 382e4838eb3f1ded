"""Tests for lfpbold.plugins.stats and .noise_ceiling, with ground-truth cases for the noise ceiling."""

import numpy as np
import pytest
from scipy import stats

from lfpbold.plugins.noise_ceiling import (
    estimate_cnr,
    expected_trial_r,
    infer_true_r,
    simulate_noise_ceiling,
)
from lfpbold.plugins.stats import fisher_z, inverse_fisher_z, one_sample_ttest, paired_ttest

# ---------------------------------------------------------------------------------------------
# t-tests and Fisher z


def test_one_sample_ttest_matches_scipy_without_nans():
    values = np.array([0.31, 0.42, np.nan, 0.18, 0.5, 0.27])
    res = one_sample_ttest(values, popmean=0.1)
    finite = values[np.isfinite(values)]
    ref = stats.ttest_1samp(finite, 0.1)
    assert res["n"] == 5
    assert res["mean"] == pytest.approx(finite.mean())
    assert res["sem"] == pytest.approx(finite.std(ddof=1) / np.sqrt(5))
    assert res["t"] == pytest.approx(ref.statistic)
    assert res["p"] == pytest.approx(ref.pvalue)


def test_one_sample_ttest_too_few_values_gives_nan():
    res = one_sample_ttest([0.4, np.nan])
    assert res["n"] == 1 and res["mean"] == 0.4
    assert np.isnan(res["t"]) and np.isnan(res["p"]) and np.isnan(res["sem"])
    assert one_sample_ttest([])["n"] == 0
    with pytest.raises(ValueError, match=r"Expected a 1-D array of per-scan values for values; got shape \(2, 2\)"):
        one_sample_ttest(np.zeros((2, 2)))


def test_paired_ttest_drops_incomplete_pairs():
    a = np.array([0.6, 0.5, np.nan, 0.7, 0.55])
    b = np.array([0.3, 0.2, 0.1, np.nan, 0.4])
    res = paired_ttest(a, b)
    ref = stats.ttest_rel([0.6, 0.5, 0.55], [0.3, 0.2, 0.4])
    assert res["n"] == 3
    assert res["mean_diff"] == pytest.approx(np.mean([0.3, 0.3, 0.15]))
    assert res["t"] == pytest.approx(ref.statistic) and res["p"] == pytest.approx(ref.pvalue)
    assert np.isnan(paired_ttest([1.0], [0.0])["p"])
    with pytest.raises(ValueError, match="same length; got 2 and 3"):
        paired_ttest([1, 2], [1, 2, 3])


def test_fisher_z_round_trip_and_clipping():
    r = np.array([-0.9, -0.2, 0.0, 0.35, 0.99])
    np.testing.assert_allclose(fisher_z(r), 0.5 * np.log((1 + r) / (1 - r)))
    np.testing.assert_allclose(inverse_fisher_z(fisher_z(r)), r)
    assert np.isfinite(fisher_z(1.0)) and fisher_z(1.0) > 8 and fisher_z(-1.0) == -fisher_z(1.0)
    assert isinstance(fisher_z(0.5), float)
    with pytest.raises(ValueError, match=r"Correlations must lie in \[-1, 1\]"):
        fisher_z([0.5, 1.5])


# ---------------------------------------------------------------------------------------------
# noise ceiling


def _brute_force(true_r, cnr, n_trials, n_timepoints, seed):
    """The model written out trial by trial, using the same random draws as the module."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n_timepoints)
    a = (a - a.mean()) / a.std()
    z = rng.standard_normal(n_timepoints)
    z -= z.mean()
    z -= a * (a @ z) / (a @ a)
    z /= z.std()
    b = true_r * a + np.sqrt(1 - true_r**2) * z
    e = rng.standard_normal((n_trials, n_timepoints))
    f = rng.standard_normal((n_trials, n_timepoints))
    obs_a = a + e / cnr
    obs_b = b + f / cnr
    trial_r = [np.corrcoef(obs_a[i], obs_b[i])[0, 1] for i in range(n_trials)]
    return np.mean(trial_r), np.corrcoef(obs_a.mean(axis=0), obs_b.mean(axis=0))[0, 1]


def test_simulation_equals_trial_by_trial_model():
    sim = simulate_noise_ceiling(true_r=0.6, n_trials=12, n_timepoints=300, cnr_grid=[0.5, 1.3, 3.0], seed=4)
    for k, cnr in enumerate([0.5, 1.3, 3.0]):
        mean_r, avg_r = _brute_force(0.6, cnr, 12, 300, 4)
        assert sim["mean_trial_r"][k] == pytest.approx(mean_r, abs=1e-10)
        assert sim["averaged_r"][k] == pytest.approx(avg_r, abs=1e-10)


def test_simulation_follows_analytic_attenuation():
    # The brief's example: true r 0.59 at CNR 1.3 gives an observed per-scan r of 0.37.
    assert expected_trial_r(0.59, 1.3) == pytest.approx(0.59 * 1.69 / 2.69)
    assert expected_trial_r(0.59, 1.3) == pytest.approx(0.37, abs=0.002)
    n = 100
    sim = simulate_noise_ceiling(true_r=0.59, n_trials=n, n_timepoints=2000)
    np.testing.assert_allclose(sim["mean_trial_r"], expected_trial_r(0.59, sim["cnr"]), atol=0.01)
    averaged = 0.59 * n * sim["cnr"] ** 2 / (1 + n * sim["cnr"] ** 2)  # noise variance / n_trials
    np.testing.assert_allclose(sim["averaged_r"], averaged, atol=0.02)
    assert sim["cnr"][12] == 1.3


def test_estimate_cnr_recovers_known_cnr():
    # Ground truth drawn independently of the module (its own seed and code).
    rng = np.random.default_rng(123)
    n_trials, n_vox, c, cnr = 60, 3000, 0.8, 1.5
    a = rng.standard_normal(n_vox)
    b = c * a + np.sqrt(1 - c**2) * rng.standard_normal(n_vox)
    maps_a = a + rng.standard_normal((n_trials, n_vox)) / cnr
    maps_b = b + rng.standard_normal((n_trials, n_vox)) / cnr
    group_r = np.corrcoef(maps_a.mean(0), maps_b.mean(0))[0, 1]
    mean_scan_r = np.mean([np.corrcoef(maps_a[i], maps_b[i])[0, 1] for i in range(n_trials)])
    est = estimate_cnr(group_r=group_r, mean_scan_r=mean_scan_r, n_trials=n_trials, n_timepoints=n_vox)
    assert est == pytest.approx(cnr, abs=0.15)
    # Negative correlations (e.g. delta band) give the same CNR.
    assert estimate_cnr(group_r=-group_r, mean_scan_r=-mean_scan_r, n_trials=n_trials, n_timepoints=n_vox) == est


def test_estimate_cnr_on_the_study_numbers():
    # Sedated M1 gamma: group-mean spatial r 0.95, scan-wise 0.58, 159 scans, 6157 voxels;
    # the analytic ratio n(1+C)/(1+nC) = 0.95/0.58 gives CNR = sqrt(C) = 1.245.
    est = estimate_cnr(group_r=0.95, mean_scan_r=0.58, n_trials=159, n_timepoints=6157)
    assert est in (1.2, 1.3)


def test_estimate_cnr_errors_and_warnings():
    with pytest.raises(ValueError, match="must be non-zero and of the same sign"):
        estimate_cnr(group_r=0.5, mean_scan_r=-0.2, n_trials=10, n_timepoints=100)
    with pytest.warns(UserWarning, match="outside the simulated range"):
        est = estimate_cnr(group_r=0.3, mean_scan_r=0.4, n_trials=10, n_timepoints=500)
    assert est == 5.0


@pytest.mark.parametrize("observed, cnr", [(0.37, 1.3), (0.2, 0.8), (-0.15, 2.0)])
def test_infer_true_r_matches_analytic_inversion(observed, cnr):
    res = infer_true_r(observed, cnr=cnr, n_trials=150, n_timepoints=1200)
    analytic = observed * (1 + cnr**2) / cnr**2
    assert res["true_r"] == pytest.approx(analytic, abs=0.01)
    assert res["variance_explained"] == pytest.approx(res["true_r"] ** 2)
    assert res["cnr"] == cnr


def test_infer_true_r_study_headline():
    res = infer_true_r(0.37, cnr=1.3, n_trials=159, n_timepoints=1200)
    assert res["true_r"] == pytest.approx(0.59, abs=0.01)
    assert res["variance_explained"] == pytest.approx(0.35, abs=0.01)


def test_infer_true_r_ceiling_and_errors():
    with pytest.warns(UserWarning, match="exceeds the simulated mean r"):
        assert infer_true_r(0.9, cnr=0.5, n_trials=20, n_timepoints=200)["true_r"] == 1.0
    with pytest.raises(ValueError, match="cnr must be positive"):
        infer_true_r(0.3, cnr=0, n_trials=20, n_timepoints=200)
    with pytest.raises(ValueError, match="n_trials must be a positive integer"):
        infer_true_r(0.3, cnr=1.0, n_trials=0, n_timepoints=200)
