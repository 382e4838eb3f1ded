"""Tests of the LFP plugins: band power, notch filter, channel combination and artifact removal.

Small synthetic recordings checked against independent computations (scipy.signal) and known truths.
"""

from __future__ import annotations

import mne
import numpy as np
import pytest
import scipy.fft
import scipy.signal

from lfpbold.plugins import get_plugin
from lfpbold.plugins.channels import find_bad_channels, mean_combine, phase_aligned_combine
from lfpbold.plugins.lfp_cleaning import fractional_template_regression, no_cleaning, template_regression
from lfpbold.plugins.spectral import notch_filter, spectrogram_band_power

FIVE_BANDS = {"delta": (1, 4), "theta": (4, 7), "alpha": (7, 13), "beta": (13, 30), "gamma": (40, 100)}
TDT_RATE = 24414.0625


# --- synthetic recordings (reusable by other tests) -------------------------------------------


def _band_noise(rng, n, sfreq, low, high):
    """Unit-variance Gaussian noise restricted to [low, high) Hz."""
    n_fft = scipy.fft.next_fast_len(n, real=True)  # an awkward n makes a slow FFT
    spec = np.fft.rfft(rng.standard_normal(n_fft))
    f = np.fft.rfftfreq(n_fft, 1 / sfreq)
    spec[(f < low) | (f >= high)] = 0
    out = np.fft.irfft(spec, n_fft)[:n]
    return out / out.std()


def _slow_envelope(rng, n, sfreq, max_hz=0.1, depth=0.8):
    """A positive envelope that wanders below ``max_hz`` around 1 (amplitude modulation)."""
    env = _band_noise(rng, n, sfreq, 0.005, max_hz)
    return 1 + depth * np.tanh(env)


def simulate_lfp(n_times, sfreq, *, rng, scale=1e-4):
    """A realistic LFP in volts: 1/f background, slowly modulated gamma (40-100 Hz), weaker
    delta/theta/alpha/beta activity each with its own slow modulation."""
    n_fft = scipy.fft.next_fast_len(n_times, real=True)
    spec = np.fft.rfft(rng.standard_normal(n_fft))
    f = np.fft.rfftfreq(n_fft, 1 / sfreq)
    spec[1:] /= np.sqrt(f[1:])  # 1/f power
    spec[0] = 0
    background = np.fft.irfft(spec, n_fft)[:n_times]
    lfp = background / background.std()
    lfp += 1.5 * _slow_envelope(rng, n_times, sfreq) * _band_noise(rng, n_times, sfreq, 40, 100)
    for (low, high), weight in zip([(1, 4), (4, 7), (7, 13), (13, 30)], [0.8, 0.6, 0.5, 0.4], strict=True):
        lfp += weight * _slow_envelope(rng, n_times, sfreq) * _band_noise(rng, n_times, sfreq, low, high)
    return scale * lfp / lfp.std()


def _trapezoids(t, lobes):
    """Piecewise-linear gradient: sum of trapezoids (start, ramp, flat, amplitude), times in s."""
    g = np.zeros_like(t)
    for start, ramp, flat, amp in lobes:
        knots = [start, start + ramp, start + ramp + flat, start + 2 * ramp + flat]
        g += amp * np.interp(t, knots, [0, 1, 1, 0], left=0, right=0)
    return g


def gradient_artifact_waveform(sfreq, *, duration=0.045, oversample=16):
    """One slice's EPI gradient artifact, finely sampled: (times, waveform) with waveform ~ dG/dt.

    Slice-select and refocusing lobes, phase/readout prewinders, 64 alternating readout lobes
    (0.4 ms echo spacing, ~1.25 kHz) with phase-encode blips, and a spoiler; the induced voltage
    is the time derivative of each axis's gradient, smoothed like an amplifier's anti-alias filter,
    plus a slow ramp.
    """
    dt = 1 / (sfreq * oversample)
    t = np.arange(0, duration, dt)
    gz = _trapezoids(t, [(0.0005, 0.0002, 0.0026, 1.0), (0.0037, 0.0002, 0.0011, -1.0), (0.038, 0.0004, 0.002, 1.5)])
    readout = [(0.0035, 0.0003, 0.0006, -0.8)]
    readout += [(0.0060 + k * 0.0004, 0.00005, 0.0003, 1.0 if k % 2 == 0 else -1.0) for k in range(64)]
    gx = _trapezoids(t, readout)
    blips = [(0.0035, 0.0003, 0.0006, -0.5)] + [(0.00637 + k * 0.0004, 0.00002, 0.0, 0.1) for k in range(63)]
    gy = _trapezoids(t, blips)
    dgdt = sum(w * np.gradient(g, dt) for w, g in zip((1.0, 0.7, 0.4), (gz, gx, gy), strict=True))
    dgdt = _gaussian_smooth(dgdt, 20e-6 / dt)
    # A slow zero-mean ramp across the slice (as the amplifier's coupling network recovers) puts
    # artifact power at the slice rate's low harmonics, inside the LFP bands.
    ramp = _gaussian_smooth(np.where(t < duration - 0.001, t / (duration - 0.001) - 0.5, 0.0), 0.0002 / dt)
    return t, dgdt / np.abs(dgdt).max() + 0.5 * ramp


def _gaussian_smooth(x, sigma):
    half = int(np.ceil(4 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    return np.convolve(x, kernel / kernel.sum(), mode="same")


def add_gradient_artifacts(
    lfp, sfreq, slice_onsets, *, rng, ratio=100.0, onset_jitter_samples=1.0, amplitude_jitter=0.02
):
    """``lfp`` plus slice-locked gradient artifacts whose RMS over the scan is ``ratio`` x the LFP's.

    Each slice's waveform starts at its trigger plus a continuous onset jitter uniform in
    ``±onset_jitter_samples`` (scanner and amplifier clocks are not locked, so the jitter is not
    a whole number of samples) and is scaled by 1 ± ``amplitude_jitter`` (uniform).
    """
    t_fine, wave = gradient_artifact_waveform(sfreq)
    n_wave = int(np.ceil(t_fine[-1] * sfreq)) + 2
    onsets = np.asarray(slice_onsets) + rng.uniform(-1, 1, len(slice_onsets)) * onset_jitter_samples / sfreq
    first = np.floor(onsets * sfreq).astype(int)
    idx = first[:, None] + np.arange(n_wave)
    rel = idx / sfreq - onsets[:, None]
    gains = 1 + rng.uniform(-1, 1, len(onsets)) * amplitude_jitter
    artifact = np.zeros(len(lfp))
    artifact[idx.ravel()] = (gains[:, None] * np.interp(rel, t_fine, wave, left=0, right=0)).ravel()
    scan = slice(first[0], idx[-1, -1])
    artifact *= ratio * np.std(lfp[scan]) / np.std(artifact[scan])
    return lfp + artifact, artifact


# --- band power -----------------------------------------------------------------------------


def _sine_plus_noise(sfreq, duration, freq=10.0, amp=1e-4, noise=1e-5, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration * sfreq)) / sfreq
    return amp * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size)


def test_band_power_mean_matches_welch_on_stationary_signal():
    sfreq = 1000.0
    x = _sine_plus_noise(sfreq, 60.0)
    bands = [(5, 15), (20, 40), (150, 250)]
    power, _ = spectrogram_band_power(x, sfreq, bands=bands)
    # Independent estimate: Welch's method with the same taper and resolution on the raw signal.
    f, psd = scipy.signal.welch(x, sfreq, window=scipy.signal.get_window("hamming", 1000, fftbins=False),
                                nperseg=1000, noverlap=900, detrend=False)  # fmt: skip
    expected = [psd[(f >= lo) & (f < hi)].mean() for lo, hi in bands]
    np.testing.assert_allclose(power[:, 20:-20].mean(axis=1), expected, rtol=0.03)
    # The white-noise bands sit at the noise's density, 2 * sigma^2 / sfreq.
    np.testing.assert_allclose(power[1:, 20:-20].mean(axis=1), 2 * 1e-10 / sfreq, rtol=0.05)


def test_band_power_equals_scipy_spectrogram_of_band_passed_signal():
    sfreq = 1000.0  # 0.1 s is a whole number of samples here, so scipy's framing is the same
    x = _sine_plus_noise(sfreq, 45.0, freq=23.0, seed=1)
    bands = [(1, 4), (20, 30), (40, 100)]
    power, times = spectrogram_band_power(x, sfreq, bands=bands)
    filtered = mne.filter.filter_data(x, sfreq, 0.1, 300.0, verbose=False)
    f, t, sxx = scipy.signal.spectrogram(
        filtered, sfreq, window=scipy.signal.get_window("hamming", 1000, fftbins=False),
        nperseg=1000, noverlap=900, detrend=False, scaling="density", mode="psd",
    )  # fmt: skip
    expected = np.stack([sxx[(f >= lo) & (f < hi)].mean(axis=0) for lo, hi in bands])
    np.testing.assert_allclose(times, t)
    np.testing.assert_allclose(power, expected, rtol=1e-8)


def test_times_are_window_centres_on_the_step_grid():
    sfreq = 2000.0
    power, times = spectrogram_band_power(_sine_plus_noise(sfreq, 40.0), sfreq, bands=[(8, 12)])
    assert power.shape == (1, times.size) and power.dtype == np.float64
    assert times.size == 391  # (40 s - 1 s) / 0.1 s + 1
    np.testing.assert_allclose(times, 0.5 + 0.1 * np.arange(391), atol=1e-9)


def test_every_one_hz_band_holds_a_bin():
    sfreq = 1000.0
    bands = [(0.1, 1.0)] + [(k, k + 1.0) for k in range(1, 100)]
    power, _ = spectrogram_band_power(_sine_plus_noise(sfreq, 40.0), sfreq, bands=bands)
    assert power.shape[0] == 100
    assert np.all(np.isfinite(power)) and np.all(power > 0)
    # The 10 Hz sine lands in the 10-11 Hz band (Hamming main lobe spans ±2 bins).
    assert np.argmax(power.mean(axis=1)) == 10


def test_decimated_and_full_rate_band_power_agree():
    rng = np.random.default_rng(3)
    n = int(50 * TDT_RATE)
    x = simulate_lfp(n, TDT_RATE, rng=rng).astype(np.float32)
    bands = list(FIVE_BANDS.values())
    fast, t_fast = spectrogram_band_power(x, TDT_RATE, bands=bands)
    slow, t_slow = spectrogram_band_power(x, TDT_RATE, bands=bands, decimate=False)
    assert fast.shape == slow.shape
    np.testing.assert_allclose(t_fast, t_slow, atol=1e-3)  # centres differ by under one decimated sample
    # Away from the recording's ends, where the 33 s long 0.1 Hz high-pass meets its padding
    # differently at the two rates.
    middle = (t_fast > 10) & (t_fast < t_fast[-1] - 10)
    np.testing.assert_allclose(fast[:, middle].mean(axis=1), slow[:, middle].mean(axis=1), rtol=0.03)
    for a, b in zip(fast[:, middle], slow[:, middle], strict=True):
        assert np.corrcoef(a, b)[0, 1] > 0.99


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lfp": np.zeros((2, 5000))}, "1-D array"),
        ({"sfreq": 500.0}, "Nyquist"),
        ({"bands": [(0.0, 4.0)]}, "0 < low < high"),
        ({"bands": [(40.0, 600.0)]}, "0 < low < high"),
        ({"bands": [(4.0, 1.0)]}, "0 < low < high"),
        ({"bands": [1, 2, 3]}, "pairs"),
        ({"lfp": np.zeros(800)}, "one 1 s window"),
        ({"sfreq": -1.0}, "positive sampling rate"),
    ],
)
def test_band_power_rejects_bad_input(kwargs, match):
    args = {"lfp": np.zeros(5000), "sfreq": 1000.0, "bands": [(1.0, 4.0)]} | kwargs
    with pytest.raises(ValueError, match=match):
        spectrogram_band_power(args.pop("lfp"), args.pop("sfreq"), **args)


# --- notch filter ---------------------------------------------------------------------------


def test_notch_filter_is_mne_and_blocks_change_nothing(monkeypatch):
    sfreq = 1000.0
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 60_000))
    freqs = [20.0, 60.0, 120.0]
    expected = mne.filter.notch_filter(x, sfreq, freqs, verbose=False)
    np.testing.assert_allclose(notch_filter(x, sfreq, freqs=freqs), expected, atol=1e-10)
    # Force the block-by-block path on a recording MNE filters in one go.
    import lfpbold.plugins.spectral as spectral

    monkeypatch.setattr(spectral, "_BLOCK", 5_000)
    np.testing.assert_allclose(notch_filter(x, sfreq, freqs=freqs), expected, atol=1e-8)
    np.testing.assert_allclose(notch_filter(x[0], sfreq, freqs=freqs), expected[0], atol=1e-8)


def test_notch_filter_removes_the_line_and_keeps_the_rest():
    sfreq = 1000.0
    t = np.arange(30_000) / sfreq
    keep = np.sin(2 * np.pi * 10 * t)
    y = notch_filter(keep + np.sin(2 * np.pi * 60 * t), sfreq, freqs=[60.0])
    np.testing.assert_allclose(y[5000:-5000], keep[5000:-5000], atol=0.02)


@pytest.mark.parametrize(("freqs", "match"), [([600.0], "Nyquist"), ([], "one or more"), ([-60.0], "Nyquist")])
def test_notch_filter_rejects_bad_frequencies(freqs, match):
    with pytest.raises(ValueError, match=match):
        notch_filter(np.zeros(5000), 1000.0, freqs=freqs)


# --- channel combination --------------------------------------------------------------------


def test_mean_combine():
    x = np.random.default_rng(5).standard_normal((4, 1000)).astype(np.float32)
    combined, lags = mean_combine(x, 1000.0)
    np.testing.assert_allclose(combined, x.astype(float).mean(axis=0))
    assert combined.dtype == np.float64
    np.testing.assert_array_equal(lags, 0)
    assert lags.dtype.kind == "i" and lags.shape == (4,)
    with pytest.raises(ValueError, match=r"2-D array \(n_channels, n_times\)"):
        mean_combine(np.zeros(10), 1000.0)


def test_phase_aligned_combine_recovers_known_lags():
    sfreq = 2000.0
    rng = np.random.default_rng(6)
    n, pad = 40_000, 50
    source = simulate_lfp(n + 2 * pad, sfreq, rng=rng, scale=1.0)
    true = np.array([0, 3, -4, 7, -9, 2])  # samples each channel lags the source by
    lfp = np.stack([source[pad - d : pad - d + n] for d in true])
    lfp += 0.3 * rng.standard_normal(lfp.shape)
    combined, lags, excluded = phase_aligned_combine(lfp, sfreq, fit_s=10.0)
    assert excluded == {}
    ref = np.flatnonzero(lags == 0)
    assert ref.size >= 1
    np.testing.assert_array_equal(lags - lags[0], true - true[0])
    # Aligned, the channels add up: the combination tracks the source closely, the plain mean less so.
    shifted = source[pad + lags[0] - true[0] : pad + lags[0] - true[0] + n]
    assert np.corrcoef(combined[20:-20], shifted[20:-20])[0, 1] > 0.99
    plain, _ = mean_combine(lfp, sfreq)
    assert np.corrcoef(plain[20:-20], shifted[20:-20])[0, 1] < np.corrcoef(combined[20:-20], shifted[20:-20])[0, 1]


def test_phase_aligned_combine_rejects_bad_input():
    with pytest.raises(ValueError, match="2-D array"):
        phase_aligned_combine(np.zeros(100), 1000.0)
    with pytest.raises(ValueError, match="flat"):
        phase_aligned_combine(np.zeros((2, 1000)), 1000.0)
    with pytest.raises(ValueError, match="estimate lags"):
        phase_aligned_combine(np.ones((2, 8)), 1000.0)


# --- artifact removal -----------------------------------------------------------------------


def test_no_cleaning_is_identity():
    x = np.random.default_rng(7).standard_normal((3, 100))
    assert no_cleaning(x, 1000.0, slice_onsets=[1.0], whatever=3) is x
    y = no_cleaning(x.astype(np.float32), 1000.0)
    assert y.dtype == np.float64 and np.allclose(y, x, atol=1e-6)


def _notch_freqs(line_freq, slice_rate, max_hz):
    # Written independently of the plugin: line and slice-rate harmonics up to max_hz, merged.
    freqs = list(np.arange(line_freq, max_hz + 1e-6, line_freq))
    freqs += [f for f in np.arange(slice_rate, max_hz + 1e-6, slice_rate) if min(abs(f - np.array(freqs))) > 0.5]
    return sorted(freqs)


@pytest.fixture(scope="module")
def scan_recording():
    """70 s at the TDT rate: 5 s before the scan, 60 volumes x 20 slices (TR 1 s), 5 s after."""
    rng = np.random.default_rng(2024)
    n = int(70 * TDT_RATE)
    lfp = simulate_lfp(n, TDT_RATE, rng=rng)
    onsets = 5.0 + np.arange(60 * 20) * 0.05
    raw, artifact = add_gradient_artifacts(lfp, TDT_RATE, onsets, rng=rng)
    return lfp, raw, artifact, onsets


def _band_agreement(test, reference, onsets):
    bands = list(FIVE_BANDS.values())
    p_test, times = spectrogram_band_power(test, TDT_RATE, bands=bands)
    p_ref, _ = spectrogram_band_power(reference, TDT_RATE, bands=bands)
    in_scan = (times - 0.5 >= onsets[0]) & (times + 0.5 <= onsets[-1])
    r = np.array([np.corrcoef(a, b)[0, 1] for a, b in zip(p_test[:, in_scan], p_ref[:, in_scan], strict=True)])
    ratio = p_test[:, in_scan].mean(axis=1) / p_ref[:, in_scan].mean(axis=1)
    return r, ratio


def test_template_regression_meets_the_acceptance_check(scan_recording):
    lfp, raw, artifact, onsets = scan_recording
    scan = slice(int(onsets[0] * TDT_RATE), int(onsets[-1] * TDT_RATE))
    assert np.std(artifact[scan]) >= 99 * np.std(lfp[scan])  # 100x over the simulator's slightly longer span
    cleaned = template_regression(raw, TDT_RATE, slice_onsets=onsets)
    reference = notch_filter(lfp, TDT_RATE, freqs=_notch_freqs(60.0, 20.0, 300.0))
    r, ratio = _band_agreement(cleaned, reference, onsets)
    assert np.all(r >= 0.95), dict(zip(FIVE_BANDS, r, strict=True))
    np.testing.assert_allclose(ratio, 1.0, atol=0.10)


def test_fractional_template_regression_meets_the_acceptance_check(scan_recording):
    """The study's default method also passes the check on this file's own (independent) artifact model."""
    lfp, raw, _, onsets = scan_recording
    cleaned = fractional_template_regression(raw, TDT_RATE, slice_onsets=onsets)
    reference = notch_filter(lfp, TDT_RATE, freqs=_notch_freqs(60.0, 20.0, 300.0))
    r, ratio = _band_agreement(cleaned, reference, onsets)
    assert np.all(r >= 0.95), dict(zip(FIVE_BANDS, r, strict=True))
    np.testing.assert_allclose(ratio, 1.0, atol=0.10)


def test_bad_channels_found_on_simulated_contacts():
    """Flat, noisy and intermittent contacts of the simulator are named, with the right reason,
    and the phase-aligned combination leaves them out (lag 0, not in the mean)."""
    from scipy.signal import decimate

    from lfpbold.simulate import LfpStream, simulate_latents

    lat = simulate_latents(7, regions=("M1",))
    for bad in ({1: "flat"}, {2: "noisy"}, {0: "intermittent"}, {0: "noisy", 3: "noisy"}, {}):
        x = LfpStream(lat, "small", 7, artifact=False, bad_channels=bad).read(0, 690_000).T.astype(float)
        x = np.stack([decimate(c, 2, ftype="fir", zero_phase=True) for c in x])
        assert find_bad_channels(x, 1000.0) == bad
        combined, lags, excluded = phase_aligned_combine(x, 1000.0)
        assert excluded == bad
        good = [c for c in range(4) if c not in bad]
        assert all(lags[c] == 0 for c in bad)
        aligned = np.mean([np.roll(x[c], -lags[c]) for c in good], axis=0)
        np.testing.assert_allclose(combined[50:-50], aligned[50:-50], rtol=1e-9, atol=1e-12)


def test_the_acceptance_check_fails_without_cleaning(scan_recording):
    # The check has teeth: notch filters alone leave the artifact's broadband power in every band.
    lfp, raw, _, onsets = scan_recording
    freqs = _notch_freqs(60.0, 20.0, 300.0)
    notched_raw = notch_filter(raw, TDT_RATE, freqs=freqs)
    r, ratio = _band_agreement(notched_raw, notch_filter(lfp, TDT_RATE, freqs=freqs), onsets)
    assert not np.all((r >= 0.95) & (np.abs(ratio - 1) <= 0.10))


def test_template_regression_leaves_unscanned_samples_alone(scan_recording):
    lfp, raw, _, onsets = scan_recording
    cleaned = template_regression(raw, TDT_RATE, slice_onsets=onsets, line_freq=None, notch_slice_rate=False)
    first = int(round(onsets[0] * TDT_RATE)) - int(round(0.0005 * TDT_RATE))
    last = int(round((onsets[-1] + 0.05) * TDT_RATE)) + int(round(0.0005 * TDT_RATE))
    np.testing.assert_array_equal(cleaned[:first], raw[:first])
    np.testing.assert_array_equal(cleaned[last:], raw[last:])
    # Inside the scan, what is left is the LFP plus a small fraction of the artifact.
    scan = slice(first, last)
    assert np.std(cleaned[scan] - lfp[scan]) < 0.05 * np.std(raw[scan] - lfp[scan])


@pytest.mark.parametrize(
    ("onsets", "match"),
    [
        ([1.0], "at least two"),
        ([2.0, 1.0, 3.0], "strictly increasing"),
        ([1.0, 2.0, 50.0], "recording covers"),
        ([-1.0, 0.0, 1.0], "recording covers"),
    ],
)
def test_template_regression_rejects_bad_triggers(onsets, match):
    with pytest.raises(ValueError, match=match):
        template_regression(np.zeros(10_000), 1000.0, slice_onsets=onsets)


def test_template_regression_rejects_multichannel_input():
    with pytest.raises(ValueError, match="1-D array"):
        template_regression(np.zeros((2, 10_000)), 1000.0, slice_onsets=[1.0, 2.0])


# --- registry -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "method", "func"),
    [
        ("band_power", "spectrogram", spectrogram_band_power),
        ("channel_combine", "mean", mean_combine),
        ("channel_combine", "phase_aligned", phase_aligned_combine),
        ("lfp_cleaning", "none", no_cleaning),
        ("lfp_cleaning", "template_regression", template_regression),
        ("lfp_cleaning", "fractional_template_regression", fractional_template_regression),
    ],
)
def test_entry_points_resolve_to_these_functions(step, method, func):
    assert get_plugin(step, method) is func
