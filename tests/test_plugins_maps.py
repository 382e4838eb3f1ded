"""Tests for lfpbold.plugins.maps, .temporal and .removal against independent computations."""

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from lfpbold.plugins import get_plugin
from lfpbold.plugins.hrf import RODENT_P, hrf_regressor, spm_hrf
from lfpbold.plugins.maps import correlation_map, group_mean_map, roi_mean, spatial_similarity
from lfpbold.plugins.removal import censor_removal, ols_removal, soft_removal
from lfpbold.plugins.temporal import (
    fisher_z_mean,
    hrf_sweep,
    lagged_xcorr,
    mutual_information,
    peak_lag,
    pearson,
    shuffled_control,
    spearman,
)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


# ---------------------------------------------------------------------------------------------
# maps


def test_roi_mean(rng):
    data = rng.standard_normal((30, 12)).astype(np.float32)
    roi = np.zeros(12, bool)
    roi[[2, 5, 6]] = True
    expected = [(data[t, 2] + data[t, 5] + data[t, 6]) / 3 for t in range(30)]
    np.testing.assert_allclose(roi_mean(data, roi), expected, rtol=1e-6)
    with pytest.raises(ValueError, match=r"roi has shape \(11,\) but data has 12 voxels"):
        roi_mean(data, roi[:11])
    with pytest.raises(ValueError, match="roi selects no voxels"):
        roi_mean(data, np.zeros(12, bool))


def test_correlation_map_matches_corrcoef(rng):
    data = (rng.standard_normal((50, 9)) + 300).astype(np.float32)
    data[:, 4] = 2.5  # constant voxel
    seeds = rng.standard_normal((3, 50))
    r = correlation_map(seeds, data)
    assert r.shape == (3, 9) and r.dtype == np.float64
    for s in range(3):
        for v in range(9):
            expected = 0.0 if v == 4 else np.corrcoef(seeds[s], data[:, v].astype(float))[0, 1]
            assert r[s, v] == pytest.approx(expected, abs=1e-6)
    np.testing.assert_allclose(correlation_map(seeds[1], data), r[1])


def test_correlation_map_errors(rng):
    with pytest.raises(ValueError, match="seed has 49 time points but data has 50"):
        correlation_map(rng.standard_normal(49), rng.standard_normal((50, 3)))
    with pytest.raises(ValueError, match=r"Expected data of shape \(n_timepoints, n_voxels\); got shape \(50,\)"):
        correlation_map(rng.standard_normal(50), rng.standard_normal(50))
    bad = rng.standard_normal((50, 3))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="must be finite"):
        correlation_map(rng.standard_normal(50), bad)


def test_spatial_similarity_uses_entries_finite_in_both(rng):
    a = rng.standard_normal(40)
    b = a + rng.standard_normal(40)
    a[3], b[10], b[11] = np.nan, np.inf, np.nan
    ok = np.isfinite(a) & np.isfinite(b)
    assert spatial_similarity(a, b) == pytest.approx(pearsonr(a[ok], b[ok]).statistic)
    assert np.isnan(spatial_similarity(np.ones(5), np.arange(5.0)))
    with pytest.raises(ValueError, match="equal length"):
        spatial_similarity(a, b[:-1])


def test_group_mean_map(rng):
    maps = np.tanh(rng.standard_normal((6, 10)))
    maps[2, 3] = np.nan
    plain = group_mean_map(maps)
    fz = group_mean_map(maps, fisher_z=True)
    for v in range(10):
        col = maps[:, v][np.isfinite(maps[:, v])]
        assert plain[v] == pytest.approx(col.mean())
        assert fz[v] == pytest.approx(np.tanh(np.mean(np.arctanh(col))))
    assert not np.allclose(plain, fz)


# ---------------------------------------------------------------------------------------------
# temporal metrics


def test_metric_entry_points():
    assert get_plugin("temporal_metric", "pearson") is pearson
    assert get_plugin("temporal_metric", "spearman") is spearman
    assert get_plugin("temporal_metric", "mutual_information") is mutual_information


def test_pearson_and_spearman_match_scipy(rng):
    x = rng.standard_normal(100)
    y = np.exp(x) + rng.standard_normal(100)
    assert pearson(x, y) == pytest.approx(pearsonr(x, y).statistic, abs=1e-12)
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert np.isnan(pearson(np.ones(10), x[:10]))
    with pytest.raises(ValueError, match="x and y must have the same length; got 100 and 99"):
        pearson(x, y[:-1])


def test_mutual_information_matches_gaussian_formula(rng):
    x = rng.standard_normal(3000)
    y = 0.8 * x + 0.6 * rng.standard_normal(3000)  # r = 0.8
    assert mutual_information(x, y) == pytest.approx(-0.5 * np.log(1 - 0.8**2), abs=0.05)
    assert mutual_information(x, rng.standard_normal(3000)) < 0.03


def test_fisher_z_mean(rng):
    r = np.array([0.2, -0.1, 0.7, np.nan])
    assert fisher_z_mean(r) == pytest.approx(np.tanh((np.arctanh(0.2) + np.arctanh(-0.1) + np.arctanh(0.7)) / 3))
    assert np.isfinite(fisher_z_mean([1.0, 0.5]))


def test_lagged_xcorr_matches_explicit_loop_and_sign(rng):
    x = rng.standard_normal(200)
    y = np.empty(200)
    y[3:] = x[:-3]  # y(t) = x(t - 3): BOLD lagging power by 3 samples
    y[:3] = rng.standard_normal(3)
    y += 0.5 * rng.standard_normal(200)
    lags, r = lagged_xcorr(x, y, t_r=0.5, max_lag_s=4.0)
    np.testing.assert_allclose(lags, np.arange(-8, 9) * 0.5)
    for lag, value in zip(lags, r, strict=True):
        k = int(round(lag / 0.5))
        a, b = (x[: 200 - k], y[k:]) if k >= 0 else (x[-k:], y[: 200 + k])
        assert value == pytest.approx(pearsonr(a, b).statistic, abs=1e-12)
    assert peak_lag(lags, r) == 1.5
    assert peak_lag(lags, -r) != 1.5 and peak_lag(lags, -r, absolute=True) == 1.5


def test_shuffled_control_uses_circular_shifts_of_at_least_min_shift(rng):
    x = np.convolve(rng.standard_normal(300), np.ones(8) / 8, "same")
    y = x + 0.5 * rng.standard_normal(300)
    res = shuffled_control(x, y, n_shuffles=50, seed=3, t_r=1.0, min_shift_s=30)
    allowed = {pearson(np.roll(x, s), y) for s in range(30, 271)}
    assert all(any(np.isclose(v, a) for a in allowed) for v in res["null"])
    forbidden = [pearson(np.roll(x, s), y) for s in list(range(1, 30)) + list(range(271, 300))]
    assert not any(np.isclose(v, forbidden).any() for v in res["null"])
    assert res["observed"] == pytest.approx(pearson(x, y))
    assert res["p"] == pytest.approx(1 / 51)  # no shuffle reaches the real r
    assert res["mean"] == pytest.approx(res["null"].mean())
    unrelated = shuffled_control(x, rng.standard_normal(300), n_shuffles=200)
    assert unrelated["p"] > 0.05
    np.testing.assert_array_equal(
        shuffled_control(x, y, n_shuffles=20)["null"], shuffled_control(x, y, n_shuffles=20)["null"]
    )
    with pytest.raises(ValueError, match="too few for circular shifts of at least 30 samples"):
        shuffled_control(x[:50], y[:50])


def _sweep_case(rng, n_vox=6):
    times = np.arange(0.0, 150.0, 0.1)
    power = np.convolve(rng.standard_normal(times.size), np.ones(20) / 20, "same")
    onsets = np.arange(20.0, 140.0)
    p_true = np.array(RODENT_P)
    p_true[:2] = 5.0, 8.0
    reg = hrf_regressor(power, times, onsets, 1.0, p=p_true)[1]
    pattern = np.linspace(-1, 1, n_vox)
    bold = np.outer(reg, pattern) * 50 + rng.standard_normal((onsets.size, n_vox))
    return power, times, onsets, bold, pattern


def test_hrf_sweep_matches_explicit_loop(rng):
    power, times, onsets, bold, pattern = _sweep_case(rng)
    roi = np.zeros(6, bool)
    roi[-2:] = True
    seed_map = pattern + 0.3 * rng.standard_normal(6)
    seed_map[0] = np.nan
    delays, undershoots = np.array([3.0, 5.0, 6.5]), np.array([6.0, 8.0])
    res = hrf_sweep(
        power,
        times,
        onsets,
        1.0,
        bold,
        roi=roi,
        response_delays=delays,
        undershoot_delays=undershoots,
        seed_map=seed_map,
    )
    local = bold[:, roi].mean(axis=1)
    for i, d in enumerate(delays):
        for j, u in enumerate(undershoots):
            p = list(RODENT_P)
            p[:2] = d, u
            reg = hrf_regressor(power, times, onsets, 1.0, p=p)[1]
            assert res["temporal_r"][i, j] == pytest.approx(pearsonr(reg, local).statistic, abs=1e-9)
            power_map = np.array([pearsonr(reg, bold[:, v]).statistic for v in range(6)])
            assert res["spatial_r"][i, j] == pytest.approx(pearsonr(power_map[1:], seed_map[1:]).statistic, abs=1e-9)
    np.testing.assert_array_equal(res["response_delays"], delays)


def test_hrf_sweep_default_grid_finds_true_delay(rng):
    power, times, onsets, bold, _ = _sweep_case(rng)
    res = hrf_sweep(power, times, onsets, 1.0, bold, roi=np.arange(6) >= 4)
    assert res["temporal_r"].shape == (25, 21) and res["spatial_r"] is None
    i, _ = np.unravel_index(np.argmax(res["temporal_r"]), res["temporal_r"].shape)
    assert res["response_delays"][i] == pytest.approx(5.0, abs=0.5)


def _todays_sweep(power, times, onsets, t_r, bold, roi, delays, undershoots, p, seed_map):
    """hrf_sweep as it was when it built SPM kernels itself: the reference its defaults must equal bit for bit."""
    from scipy.signal import fftconvolve

    from lfpbold.plugins.maps import _standardise_columns

    step = float(np.median(np.diff(times)))
    regressors = np.empty((delays.size, undershoots.size, onsets.size))
    for i, d in enumerate(delays):
        kernels = []
        for u in undershoots:
            p_k = np.asarray(p, dtype=float).copy()
            p_k[:2] = d, u
            kernels.append(spm_hrf(step, p=p_k))
        convolved = fftconvolve(power[None, :], np.array(kernels), axes=1)[:, : power.size]
        regressors[i] = hrf_regressor(convolved, times, onsets, t_r, kernel=np.ones(1))[1]
    flat = regressors.reshape(-1, onsets.size)
    local = roi_mean(bold, roi)
    temporal_r = correlation_map(flat, local[:, None])[:, 0].reshape(delays.size, undershoots.size)
    maps = correlation_map(flat, bold)
    ok = np.isfinite(seed_map)
    spatial_r = _standardise_columns(maps[:, ok].T).T @ _standardise_columns(seed_map[ok, None])
    return temporal_r, np.clip(spatial_r[:, 0], -1, 1).reshape(delays.size, undershoots.size)


def test_hrf_sweep_defaults_are_todays_spm_sweep_bit_for_bit(rng):
    power, times, onsets, bold, pattern = _sweep_case(rng)
    roi = np.arange(6) >= 4
    seed_map = pattern + 0.3 * rng.standard_normal(6)
    delays, undershoots = np.arange(2, 8.001, 0.25), np.arange(2, 12.001, 0.5)
    temporal_r, spatial_r = _todays_sweep(power, times, onsets, 1.0, bold, roi, delays, undershoots, RODENT_P, seed_map)
    res = hrf_sweep(power, times, onsets, 1.0, bold, roi=roi, seed_map=seed_map)
    np.testing.assert_array_equal(res["temporal_r"], temporal_r)
    np.testing.assert_array_equal(res["spatial_r"], spatial_r)


def test_hrf_sweep_takes_the_hrf_method_and_its_params(rng):
    power, times, onsets, bold, pattern = _sweep_case(rng)
    roi = np.arange(6) >= 4
    delays, undershoots = np.array([3.0, 5.0]), np.array([6.0, 9.0])
    human = {"p": (6.0, 16.0, 1.0, 1.0, 6.0, 0.0, 32.0)}
    res = hrf_sweep(
        power,
        times,
        onsets,
        1.0,
        bold,
        roi=roi,
        response_delays=delays,
        undershoot_delays=undershoots,
        hrf=spm_hrf,
        hrf_params=human,
    )
    reference = _todays_sweep(power, times, onsets, 1.0, bold, roi, delays, undershoots, human["p"], pattern)[0]
    np.testing.assert_array_equal(res["temporal_r"], reference)

    def boxcar(dt, *, response_delay, undershoot_delay, width=2.0):
        """A lab's HRF: a box from the response delay on, of ``width`` seconds; the undershoot is ignored."""
        t = np.arange(0, response_delay + width + dt, dt)
        kernel = ((t >= response_delay) & (t < response_delay + width)).astype(float)
        return kernel / kernel.sum()

    res = hrf_sweep(
        power,
        times,
        onsets,
        1.0,
        bold,
        roi=roi,
        response_delays=delays,
        undershoot_delays=undershoots,
        hrf=boxcar,
        hrf_params={"width": 3.0},
    )
    local = bold[:, roi].mean(axis=1)
    step = float(np.median(np.diff(times)))  # the sweep samples the kernel at the power's own step
    for i, d in enumerate(delays):
        reg = hrf_regressor(
            power, times, onsets, 1.0, kernel=boxcar(step, response_delay=d, undershoot_delay=0, width=3.0)
        )[1]
        assert res["temporal_r"][i] == pytest.approx([pearsonr(reg, local).statistic] * 2, abs=1e-9)


def test_hrf_sweep_rejects_an_hrf_without_delays(rng):
    power, times, onsets, bold, _ = _sweep_case(rng)
    with pytest.raises(ValueError, match="takes response_delay and undershoot_delay.*fixed_kernel does not"):

        def fixed_kernel(dt, **params):
            return np.ones(3) / 3

        hrf_sweep(power, times, onsets, 1.0, bold, roi=np.ones(6, bool), hrf=fixed_kernel)


def test_hrf_sweep_errors(rng):
    power, times, onsets, bold, _ = _sweep_case(rng)
    with pytest.raises(ValueError, match="volume_onsets has 119 entries but bold has 120 volumes"):
        hrf_sweep(power, times, onsets[1:], 1.0, bold, roi=np.ones(6, bool))
    with pytest.raises(ValueError, match=r"seed_map has shape \(5,\) but bold has 6 voxels"):
        hrf_sweep(power, times, onsets, 1.0, bold, roi=np.ones(6, bool), seed_map=np.zeros(5))


# ---------------------------------------------------------------------------------------------
# LFP removal


def test_removal_entry_points():
    assert get_plugin("lfp_removal", "ols") is ols_removal
    assert get_plugin("lfp_removal", "soft") is soft_removal
    assert get_plugin("lfp_removal", "censor") is censor_removal


def test_ols_removal_matches_lstsq(rng):
    regs = rng.standard_normal((60, 5))
    data = (np.outer(regs[:, 4], rng.standard_normal(7)) + rng.standard_normal((60, 7))).astype(np.float32)
    cleaned, keep = ols_removal(data, regs)
    design = np.column_stack([np.ones(60), regs[:, 4]])
    expected = data - design @ np.linalg.lstsq(design, data.astype(float), rcond=None)[0]
    assert keep.all() and cleaned.dtype == np.float32
    np.testing.assert_allclose(cleaned, expected, atol=1e-5)
    cleaned_theta, _ = ols_removal(data, regs, band_index=1)
    assert not np.allclose(cleaned_theta, cleaned, atol=1e-3)
    with pytest.raises(ValueError, match="band_index 5 is out of range for 5 band"):
        ols_removal(data, regs, band_index=5)
    with pytest.raises(ValueError, match="regressors have 59 time points but data has 60"):
        ols_removal(data, regs[1:])


def test_soft_removal_matches_explicit_construction(rng):
    n_t, n_bands = 80, 5
    shared = rng.standard_normal(n_t)
    regs = 0.7 * shared[:, None] + rng.standard_normal((n_t, n_bands)) + 3.0
    data = rng.standard_normal((n_t, 4)) + regs @ rng.standard_normal((n_bands, 4)) + 10
    # explicit: each band's unique part, then its projection removed band by band
    expected = data.copy()
    unique = np.empty((n_t, n_bands))
    for j in range(n_bands):
        others = np.column_stack([np.ones(n_t)] + [regs[:, k] for k in range(n_bands) if k != j])
        beta, *_ = np.linalg.lstsq(others, regs[:, j], rcond=None)
        unique[:, j] = regs[:, j] - others @ beta
        for v in range(4):
            expected[:, v] -= unique[:, j] * (unique[:, j] @ data[:, v]) / (unique[:, j] @ unique[:, j])
    cleaned, keep = soft_removal(data, regs)
    np.testing.assert_allclose(cleaned, expected, atol=1e-9)
    assert keep.all()
    np.testing.assert_allclose(cleaned.mean(axis=0), data.mean(axis=0))
    # Frisch-Waugh-Lovell: what stays is the shared part of each band's multiple-regression fit
    full = np.column_stack([np.ones(n_t), regs])
    coef = np.linalg.lstsq(full, data, rcond=None)[0]
    all_bands = data - full @ coef
    np.testing.assert_allclose(cleaned - all_bands, full[:, :1] @ coef[:1] + (regs - unique) @ coef[1:], atol=1e-8)
    assert np.abs(cleaned - all_bands - (cleaned - all_bands).mean(axis=0)).max() > 1.0  # not full regression


def test_soft_removal_rejects_collinear_bands(rng):
    regs = rng.standard_normal((50, 3))
    regs[:, 2] = regs[:, 0] - 2 * regs[:, 1]
    with pytest.raises(ValueError, match="no unique variance"):
        soft_removal(rng.standard_normal((50, 2)), regs)


def test_censor_removal_drops_top_volumes(rng):
    regs = rng.standard_normal((100, 5))
    data = rng.standard_normal((100, 3))
    cleaned, keep = censor_removal(data, regs)
    threshold = np.sort(regs[:, 4])[int(round(0.85 * 99))]  # numpy's linear percentile, index 84.15
    assert keep.sum() == 85 and threshold <= regs[keep, 4].max() + 1e-12
    np.testing.assert_array_equal(keep, regs[:, 4] <= np.percentile(regs[:, 4], 85))
    np.testing.assert_array_equal(cleaned, data[keep])
    assert regs[~keep, 4].min() > regs[keep, 4].max()
    # volumes exactly at the percentile stay ("above the percentile" is dropped)
    _, keep = censor_removal(data[:21], np.arange(21.0), percentile=85)  # 85th percentile = 17
    np.testing.assert_array_equal(np.flatnonzero(~keep), [18, 19, 20])
    with pytest.raises(ValueError, match=r"percentile must lie in \(0, 100\]"):
        censor_removal(data, regs, percentile=0)


def test_rank_correlation_map_matches_scipy_spearman():
    from scipy.stats import spearmanr

    from lfpbold.plugins.maps import rank_correlation_map

    rng = np.random.default_rng(3)
    data = rng.standard_normal((40, 6)) ** 3
    seed = data[:, 0] + rng.standard_normal(40)
    got = rank_correlation_map(seed, data)
    want = [spearmanr(seed, data[:, j]).statistic for j in range(6)]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_mutual_information_map_matches_gaussian_formula_and_ignores_monotone_warps():
    from lfpbold.plugins.maps import mutual_information_map

    rng = np.random.default_rng(4)
    x = rng.standard_normal(20000)
    ys = np.column_stack([0.8 * x + 0.6 * rng.standard_normal(20000), rng.standard_normal(20000)])
    mi = mutual_information_map(x, ys)
    assert mi[0] == pytest.approx(-0.5 * np.log(1 - 0.64), abs=0.02)
    assert mi[1] == pytest.approx(0.0, abs=0.005)
    warped = mutual_information_map(np.exp(x), np.column_stack([ys[:, 0] ** 3, ys[:, 1]]))
    np.testing.assert_allclose(warped, mi, atol=1e-9)
