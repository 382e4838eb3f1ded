"""CleanLFP's order of operations (notches after decimation, filters designed once, block-wise
polyphase decimation and spectra) against the order before it, composed here step by step:
the cleaning method notching at the full rate, then :func:`scipy.signal.decimate` on the whole
channel.

The science tests accept band power that tracks its reference with r >= 0.95 and a mean within
10 % (tests/test_lfp_clean.py, tests/test_plugins_lfp.py); the two orders agree far closer than
that, and these tests hold them to it.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from scipy.signal import decimate, welch

import lfpbold.lfp as lfp_module
from lfpbold.ingest import read_lfp
from lfpbold.lfp import SPECTRUM_MAX_HZ, clean_implant, spectrum_window
from lfpbold.plugins.channels import phase_aligned_combine
from lfpbold.plugins.lfp_cleaning import fractional_template_regression, no_cleaning, template_regression
from lfpbold.plugins.spectral import notch_filter, spectrogram_band_power
from lfpbold.simulate import simulate_study
from tests.test_plugins_lfp import FIVE_BANDS, TDT_RATE, add_gradient_artifacts, simulate_lfp

SERIES = "acquisition/ElectricalSeries"
STUDY_PARAMS = {
    "lfp_cleaning": {"method": "template_regression", "line_freq": 60.0, "notch_max_hz": 300.0},
    "channel_combine": {"method": "phase_aligned", "max_lag_s": 0.005, "fit_s": 60.0},
    "output_rate_hz": 1000.0,
    "keep_channels": True,
}
#: Seconds at each end where the two orders' notch filters (6.6 s long at either rate) pad the
#: recording differently (MNE's odd reflection of the full-rate or of the decimated signal).
EDGE_S = 7.0


def _notch_freqs(line_freq, slice_rate, max_hz):
    # Written independently of the plugin: line and slice-rate harmonics up to max_hz, merged.
    freqs = list(np.arange(line_freq, max_hz + 1e-6, line_freq))
    freqs += [f for f in np.arange(slice_rate, max_hz + 1e-6, slice_rate) if min(abs(f - np.array(freqs))) > 0.5]
    return sorted(freqs)


def _assert_agree(new, old, rate, *, interior_rtol, whole_rtol):
    """The new signal against the old: relative RMS difference inside and over the whole
    recording, and classic-band power inside it far within the science tests' tolerance."""
    assert new.shape == old.shape
    edge = int(EDGE_S * rate)
    inside = slice(edge, old.size - edge)
    assert np.std(new[inside] - old[inside]) <= interior_rtol * np.std(old[inside])
    assert np.std(new - old) <= whole_rtol * np.std(old)
    bands = list(FIVE_BANDS.values())
    p_new, times = spectrogram_band_power(new, rate, bands=bands)
    p_old, _ = spectrogram_band_power(old, rate, bands=bands)
    keep = (times >= EDGE_S) & (times <= old.size / rate - EDGE_S)
    p_new, p_old = p_new[:, keep], p_old[:, keep]
    r = [np.corrcoef(a, b)[0, 1] for a, b in zip(p_new, p_old, strict=True)]
    ratio = p_new.mean(axis=1) / p_old.mean(axis=1)
    assert min(r) >= 0.999, dict(zip(FIVE_BANDS, r, strict=True))  # science tests: 0.95
    np.testing.assert_allclose(ratio, 1.0, atol=0.01)  # science tests: 0.10


# --- at the paper's rate: 24,414 Hz, decimated by 24 ------------------------------------------


@pytest.fixture(scope="module")
def paper_rate_channels():
    """Two 60 s channels at the TDT rate: one LFP, the second contact 2 ms behind, each with its
    own noise, a 60 Hz line and slice-locked gradient artifacts (50 volumes x 20 slices from
    5 s), float32 as read_lfp returns them."""
    rng = np.random.default_rng(5)
    n = int(60 * TDT_RATE)
    delay = int(round(0.002 * TDT_RATE))
    source = simulate_lfp(n + delay, TDT_RATE, rng=rng)
    onsets = 5.0 + np.arange(50 * 20) * 0.05
    t = np.arange(n) / TDT_RATE
    chans = []
    for lag, phase in ((0, 0.3), (delay, 1.1)):
        lfp = source[delay - lag : delay - lag + n] + 0.3 * simulate_lfp(n, TDT_RATE, rng=rng)
        lfp += 3e-5 * np.sin(2 * np.pi * 60 * t + phase)
        raw, _ = add_gradient_artifacts(lfp, TDT_RATE, onsets, rng=rng)
        chans.append(raw.astype(np.float32))
    return np.stack(chans), onsets


def _clean_in_memory(monkeypatch, data, onsets, params):
    """clean_implant on channels held in memory: read_lfp answers from ``data`` (n_jobs=1 runs
    in this process, so the patch is seen)."""
    monkeypatch.setattr(lfp_module, "read_lfp", lambda path, series_path, channels: data[channels])
    return clean_implant(
        "in-memory.nwb",
        series_path=SERIES,
        channels=range(data.shape[0]),
        sfreq=TDT_RATE,
        slice_onsets=onsets,
        params=params,
    )


def _old_order(data, onsets, method, kw, q):
    # Today's steps: the method with its notches at the full rate, then scipy.signal.decimate.
    full = [method(ch.astype(np.float64), TDT_RATE, slice_onsets=onsets, **kw) for ch in data]
    return np.stack([decimate(ch, q, ftype="fir", zero_phase=True) for ch in full]), full


def test_template_regression_at_the_paper_rate_agrees_with_the_old_order(monkeypatch, paper_rate_channels):
    data, onsets = paper_rate_channels
    q = int(TDT_RATE // 1000.0)
    rate, combined, lags, per_channel, spectrum, _ = _clean_in_memory(monkeypatch, data, onsets, STUDY_PARAMS)
    assert rate == TDT_RATE / q
    old_stack, _ = _old_order(data, onsets, template_regression, {"line_freq": 60.0, "notch_max_hz": 300.0}, q)
    old_combined, old_lags, _ = phase_aligned_combine(old_stack, rate, max_lag_s=0.005, fit_s=60.0)
    np.testing.assert_array_equal(lags, old_lags)
    for new, old in zip(per_channel, old_stack, strict=True):
        _assert_agree(new.astype(np.float64), old, rate, interior_rtol=2e-4, whole_rtol=1e-2)
    _assert_agree(combined.astype(np.float64), old_combined, rate, interior_rtol=2e-4, whole_rtol=1e-2)
    # The 60 Hz line is gone either way: its power at 60 Hz is down by orders of magnitude.
    f, p_raw = welch(data[0].astype(np.float64)[: int(30 * TDT_RATE)] / 1.0, fs=TDT_RATE, nperseg=int(TDT_RATE))
    g, p_new = welch(combined.astype(np.float64), fs=rate, nperseg=int(rate))
    assert p_new[np.argmin(abs(g - 60))] < 1e-3 * p_raw[np.argmin(abs(f - 60))]
    # The quality figure's clean spectrum is of the artifact-removed channels before the notches.
    n = spectrum_window(TDT_RATE)
    unnotched = [template_regression(ch, TDT_RATE, slice_onsets=onsets, line_freq=None, notch_slice_rate=False)
                 for ch in data]  # fmt: skip
    freqs, psd = welch(np.stack(unnotched), fs=TDT_RATE, nperseg=n, axis=-1)
    upto = freqs <= SPECTRUM_MAX_HZ
    np.testing.assert_allclose(spectrum["freqs"], freqs[upto])
    np.testing.assert_allclose(spectrum["clean"], psd.mean(axis=0)[upto], rtol=1e-6)
    _, raw_psd = welch(data.astype(np.float64), fs=TDT_RATE, nperseg=n, axis=-1)
    np.testing.assert_allclose(spectrum["raw"], raw_psd.mean(axis=0)[upto], rtol=1e-6)


def test_fractional_template_regression_follows_the_same_rule(monkeypatch, paper_rate_channels):
    data, onsets = paper_rate_channels
    data = data[:1]
    q = int(TDT_RATE // 1000.0)
    params = {
        **STUDY_PARAMS,
        "lfp_cleaning": {**STUDY_PARAMS["lfp_cleaning"], "method": "fractional_template_regression"},
    }
    rate, combined, _, per_channel, _, _ = _clean_in_memory(monkeypatch, data, onsets, params)
    kw = {"line_freq": 60.0, "notch_max_hz": 300.0}
    old_stack, _ = _old_order(data, onsets, fractional_template_regression, kw, q)
    _assert_agree(per_channel[0].astype(np.float64), old_stack[0], rate, interior_rtol=2e-4, whole_rtol=1e-2)


def test_no_cleaning_notches_only_what_the_set_names(monkeypatch, paper_rate_channels):
    data, onsets = paper_rate_channels
    data = data[:1, : int(40 * TDT_RATE)]
    q = int(TDT_RATE // 1000.0)
    # No notch keys: nothing but the decimation, exactly scipy.signal.decimate.
    params = {**STUDY_PARAMS, "lfp_cleaning": {"method": "none"}}
    rate, _, _, per_channel, _, _ = _clean_in_memory(monkeypatch, data, onsets, params)
    expected = decimate(data[0].astype(np.float64), q, ftype="fir", zero_phase=True)
    np.testing.assert_allclose(per_channel[0], expected.astype(np.float32), rtol=1e-6, atol=1e-12)
    # Notch keys named: the old order would be the same notches at the full rate, then decimate.
    params = {**STUDY_PARAMS, "lfp_cleaning": {"method": "none", "line_freq": 60.0, "notch_slice_rate": True}}
    rate, _, _, per_channel, _, _ = _clean_in_memory(monkeypatch, data, onsets, params)
    freqs = _notch_freqs(60.0, 20.0, 300.0)
    old = decimate(notch_filter(data[0], TDT_RATE, freqs=freqs), q, ftype="fir", zero_phase=True)
    _assert_agree(per_channel[0].astype(np.float64), old, rate, interior_rtol=2e-4, whole_rtol=2e-2)
    assert no_cleaning(data[0], TDT_RATE, line_freq=60.0).dtype == np.float64  # the method itself ignores them


def test_the_cleaning_method_is_called_without_its_notches():
    kw, settings = lfp_module._notch_plan(template_regression, {"line_freq": 50.0, "max_shift_s": 0.001})
    assert kw == {"max_shift_s": 0.001, "line_freq": None, "notch_slice_rate": False}
    assert settings == {"line_freq": 50.0, "notch_max_hz": 300.0, "notch_slice_rate": True}  # the method's defaults
    kw, settings = lfp_module._notch_plan(no_cleaning, {})
    assert settings == {"line_freq": None, "notch_max_hz": 300.0, "notch_slice_rate": False}

    def strict(lfp, sfreq, /, *, slice_onsets, gain=1.0):  # takes no notch keywords
        return lfp * gain

    kw, settings = lfp_module._notch_plan(strict, {"gain": 2.0, "line_freq": 60.0})
    assert kw == {"gain": 2.0} and settings["line_freq"] == 60.0
    assert lfp_module._notch_freqs(settings, [0.0, 0.05, 0.1], 1017.25).tolist() == [60.0 * k for k in range(1, 6)]


def test_blockwise_decimation_and_spectra_are_the_whole_array_ones(monkeypatch):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(300_001).cumsum()
    monkeypatch.setattr(lfp_module, "_DECIMATE_BLOCK", 997)
    monkeypatch.setattr(lfp_module, "_WELCH_SEGMENTS", 5)
    for q in (2, 7, 24):
        np.testing.assert_allclose(
            lfp_module._decimate(x, q), decimate(x, q, ftype="fir", zero_phase=True), rtol=0, atol=1e-9
        )
    f, p = welch(x, fs=2000.0, nperseg=2000)
    g, r = lfp_module._spectrum(x, 2000.0)
    np.testing.assert_allclose(g, f[f <= SPECTRUM_MAX_HZ])
    np.testing.assert_allclose(r, p[f <= SPECTRUM_MAX_HZ], rtol=1e-9)


# --- a simulated scan through its NWB file ----------------------------------------------------


def test_clean_implant_on_a_simulated_scan_agrees_with_the_old_order(tmp_path):
    study = simulate_study(tmp_path / "s", subjects=1, scans=1, regions=("M1",), seed=11, size="small")
    nwb = next(study.rglob("*_ecephys.nwb"))
    with h5py.File(nwb, "r") as f:
        sfreq = float(f[SERIES]["starting_time"].attrs["rate"])
        slices = f["events/scanner_slices/timestamp"][:]
        channels = list(range(f[SERIES]["data"].shape[1]))
    kw = dict(series_path=SERIES, channels=channels, sfreq=sfreq, slice_onsets=slices, params=STUDY_PARAMS)
    rate, combined, lags, per_channel, _, _ = clean_implant(nwb, **kw)
    q = int(sfreq // 1000.0)
    raw = read_lfp(nwb, series_path=SERIES, channels=channels).astype(np.float64)
    full = [template_regression(ch, sfreq, slice_onsets=slices, line_freq=60.0, notch_max_hz=300.0) for ch in raw]
    old_stack = np.stack([decimate(ch, q, ftype="fir", zero_phase=True) for ch in full])
    old_combined, old_lags, _ = phase_aligned_combine(old_stack, rate, max_lag_s=0.005, fit_s=60.0)
    np.testing.assert_array_equal(lags, old_lags)
    _assert_agree(combined.astype(np.float64), old_combined, rate, interior_rtol=2e-4, whole_rtol=1e-2)
    # The private switch kept for the benchmark is the old order itself.
    _, old_path, _, old_path_channels, *_ = clean_implant(nwb, **kw, _old_order=True)
    np.testing.assert_allclose(old_path, old_combined.astype(np.float32), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(old_path_channels, old_stack.astype(np.float32), rtol=1e-6, atol=1e-12)
