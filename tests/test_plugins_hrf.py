"""Tests of the HRF plugin: SPM's spm_hrf port and HRF-convolved band-power regressors.

Checked against a direct evaluation of SPM's formula, nilearn's spm_hrf, and known responses.
"""

from __future__ import annotations

import numpy as np
import pytest
from nilearn.glm.first_level import spm_hrf as nilearn_spm_hrf
from scipy.stats import gamma

from lfpbold.plugins import get_plugin
from lfpbold.plugins.hrf import RODENT_P, SPM_DEFAULT_P, accepts_delays, hrf_regressor, spm_hrf


def _spm_formula(t_r, p, fmri_t=16):
    """spm_hrf.m line by line: spm_Gpdf(x, h, l) is a gamma density of shape h and *rate* l."""
    p1, p2, p3, p4, p5, p6, p7 = p
    dt = t_r / fmri_t
    u = np.arange(0, np.ceil(p7 / dt) + 1) - p6 / dt
    hrf = gamma(p1 / p3, scale=1 / (dt / p3)).pdf(u) - gamma(p2 / p4, scale=1 / (dt / p4)).pdf(u) / p5
    hrf = hrf[(np.arange(0, np.floor(p7 / t_r) + 1) * fmri_t).astype(int)]  # MATLAB's 1-based +1 dropped
    return hrf / hrf.sum()


@pytest.mark.parametrize("p", [RODENT_P, SPM_DEFAULT_P, (5.0, 12.0, 0.9, 1.1, 4.0, 0.5, 25.0)])
@pytest.mark.parametrize("t_r", [0.1, 1.0, 2.0])
def test_spm_hrf_matches_spm_formula(p, t_r):
    h = spm_hrf(t_r, p=p)
    expected = _spm_formula(t_r, p)
    assert h.shape == (int(np.floor(p[6] / t_r)) + 1,)
    np.testing.assert_allclose(h, expected, rtol=1e-10, atol=1e-14)
    assert h.sum() == pytest.approx(1.0)


def test_spm_default_matches_nilearn_up_to_sampling():
    # nilearn samples on linspace(0, 32, n) with a one-step offset and a fixed 1/6 ratio, so
    # compare shapes on a common grid, not samples.
    t_r, oversampling = 1.0, 50
    fine = nilearn_spm_hrf(t_r, oversampling=oversampling, time_length=32.0)
    fine_t = np.linspace(0, 32.0, fine.size)
    ours = spm_hrf(0.1, p=SPM_DEFAULT_P)
    ours_t = np.arange(ours.size) * 0.1
    theirs = np.interp(ours_t, fine_t, fine)
    assert abs(ours_t[np.argmax(ours)] - ours_t[np.argmax(theirs)]) <= 0.15
    np.testing.assert_allclose(ours / ours.max(), theirs / theirs.max(), atol=0.03)


def test_rodent_hrf_peaks_near_three_seconds_and_spm_near_five():
    rodent = spm_hrf(0.1)
    human = spm_hrf(0.1, p=SPM_DEFAULT_P)
    assert 2.8 <= np.argmax(rodent) * 0.1 <= 3.2
    assert 4.8 <= np.argmax(human) * 0.1 <= 5.4
    # SPM's default undershoots after the peak; the rodent p puts the "undershoot" gamma at the
    # response's own delay, so it only scales the response by 5/6 and never goes negative.
    assert human.min() < 0 and np.argmin(human) > np.argmax(human)
    assert rodent.min() >= 0


def test_short_p_overrides_leading_defaults_only():
    np.testing.assert_array_equal(spm_hrf(0.5, p=[4.0]), spm_hrf(0.5, p=(4.0,) + SPM_DEFAULT_P[1:]))


@pytest.mark.parametrize("dt", [0.1, 1.0])
@pytest.mark.parametrize(("d", "u"), [(4.0, 4.0), (2.25, 11.5), (8.0, 2.0)])
def test_named_delays_replace_the_first_two_parameters(dt, d, u):
    np.testing.assert_array_equal(
        spm_hrf(dt, response_delay=d, undershoot_delay=u), spm_hrf(dt, p=(d, u, 1, 1, 6, 0, 32))
    )
    # and only those two: the other parameters still come from p
    np.testing.assert_array_equal(
        spm_hrf(dt, p=SPM_DEFAULT_P, response_delay=d), spm_hrf(dt, p=(d,) + SPM_DEFAULT_P[1:])
    )


def test_a_later_response_delay_peaks_later():
    early = spm_hrf(0.1, response_delay=3.0, undershoot_delay=12.0)
    late = spm_hrf(0.1, response_delay=6.0, undershoot_delay=12.0)
    assert np.argmax(late) > np.argmax(early)


def test_spm_hrf_can_be_swept_and_a_kernel_without_delays_cannot():
    assert accepts_delays(spm_hrf)
    assert not accepts_delays(lambda dt, **params: np.ones(3))
    assert not accepts_delays(lambda dt, *, response_delay=4.0: np.ones(3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dt": 0.0}, "dt must be a positive number of seconds"),
        ({"dt": 1.0, "p": [1, 2, 3, 4, 5, 6, 7, 8]}, "at most 7"),
        ({"dt": 1.0, "p": [4, 4, -1]}, "must be positive"),
    ],
)
def test_spm_hrf_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        spm_hrf(**kwargs)


def test_regressor_of_constant_power_is_constant():
    times = np.arange(0, 120, 0.1)
    convolved, regressor = hrf_regressor(np.full(times.size, 3.0), times, np.arange(40.0, 100.0), 1.0)
    # The kernel sums to one, so once it has filled (32 s) a constant passes through unchanged.
    np.testing.assert_allclose(convolved[330:], 3.0)
    np.testing.assert_allclose(regressor, 3.0)


def test_regressor_of_delayed_impulse_is_the_kernel_binned_by_volume():
    step = 0.1
    times = np.arange(0, 80, step)
    power = np.zeros(times.size)
    power[100] = 1.0  # impulse at 10 s
    kernel = spm_hrf(step)
    convolved, regressor = hrf_regressor(power, times, np.arange(0.0, 60.0), 1.0)
    expected = np.zeros(times.size)
    expected[100 : 100 + kernel.size] = kernel
    # atol: the step estimated from `times` is 0.1 - 6e-15, which can change the kernel's last
    # (1e-11) sample through floor(32 / step).
    np.testing.assert_allclose(convolved, expected, rtol=1e-9, atol=1e-10)
    # Volume k averages the ten power samples in [k, k + 1) s.
    np.testing.assert_allclose(regressor, expected[:600].reshape(60, 10).mean(axis=1), rtol=1e-9, atol=1e-10)
    assert np.argmax(regressor) == 13  # 10 s + the 3 s rodent peak opens the 13-14 s volume


def test_regressor_handles_several_bands_and_a_custom_kernel():
    times = np.arange(0, 50, 0.1)
    power = np.vstack([np.ones(times.size), np.arange(times.size, dtype=float)])
    kernel = np.zeros(5)
    kernel[2] = 1.0  # a pure 0.2 s delay
    convolved, regressor = hrf_regressor(power, times, np.arange(10.0, 20.0), 1.0, kernel=kernel)
    assert convolved.shape == power.shape and regressor.shape == (2, 10)
    np.testing.assert_allclose(convolved[1, 2:], power[1, :-2])


def test_regressor_rejects_mismatched_or_uncovered_input():
    times = np.arange(0, 10, 0.1)
    with pytest.raises(ValueError, match="samples but times has"):
        hrf_regressor(np.ones(50), times, [1.0], 1.0)
    with pytest.raises(ValueError, match="at least two samples"):
        hrf_regressor(np.ones(1), np.zeros(1), [0.0], 1.0)
    with pytest.raises(ValueError, match="volumes span"):
        hrf_regressor(np.ones(times.size), times, [5.0, 20.0], 1.0)


def test_entry_point_resolves_to_spm_hrf():
    assert get_plugin("hrf", "spm") is spm_hrf
