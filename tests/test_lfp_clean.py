"""clean_implant (lfpbold.lfp): one implant's LFP cleaned, decimated and combined, on simulated scans."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from scipy.signal import decimate, welch

from lfpbold.constants import CLASSIC_BANDS as BANDS
from lfpbold.ingest import read_lfp
from lfpbold.lfp import SPECTRUM_MAX_HZ, clean_implant, spectrum_window
from lfpbold.plugins.channels import phase_aligned_combine
from lfpbold.plugins.lfp_cleaning import subsample_template_regression
from lfpbold.plugins.spectral import notch_filter, spectrogram_band_power
from lfpbold.simulate import simulate_study

SERIES = "acquisition/ElectricalSeries"
# The study's parameter set (LFPParams set 0), written out so this test does not import the schemas.
STUDY_PARAMS = {
    "lfp_cleaning": {"method": "subsample_template_regression", "line_freq": 60.0, "notch_max_hz": 300.0},
    "channel_combine": {"method": "phase_aligned", "max_lag_s": 0.005, "fit_s": 60.0},
    "output_rate_hz": 1000.0,
    "keep_channels": True,
}


def _scan(study):
    nwb = next(study.rglob("*_ecephys.nwb"))
    with h5py.File(nwb, "r") as f:
        ds = f[SERIES]["data"]
        sfreq = float(f[SERIES]["starting_time"].attrs["rate"])
        slices = f["events/scanner_slices/timestamp"][:]
        return {"nwb": nwb, "sfreq": sfreq, "slices": slices, "channels": list(range(ds.shape[1]))}


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """One small M1 scan (345 s at 2 kHz, 4 channels), simulated twice from one seed: with and
    without the MR gradient artifact."""
    root = tmp_path_factory.mktemp("lfp_clean")
    kw = dict(subjects=1, scans=1, regions=("M1",), seed=11, size="small")  # seed 11: no bad contacts
    return (
        _scan(simulate_study(root / "artifact", artifact=True, **kw)),
        _scan(simulate_study(root / "clean", artifact=False, **kw)),
    )


def _run(scan, params=STUDY_PARAMS, n_jobs=1):
    return clean_implant(
        scan["nwb"],
        series_path=SERIES,
        channels=scan["channels"],
        sfreq=scan["sfreq"],
        slice_onsets=scan["slices"],
        params=params,
        n_jobs=n_jobs,
    )


@pytest.fixture(scope="module")
def cleaned(scans):
    return _run(scans[0])


#: The study's set with the cleaning method meant for realistic artifacts: on the simulator's
#: artifact (unlocked clocks, per-slice differences, drift, head motion) the earlier default
#: template_regression leaves ~1 mV (benchmarks/artifact_removal.py) and misses these checks.
FRACTIONAL_PARAMS = {
    **STUDY_PARAMS,
    "lfp_cleaning": {**STUDY_PARAMS["lfp_cleaning"], "method": "fractional_template_regression"},
}


@pytest.fixture(scope="module")
def cleaned_fractional(scans):
    return _run(scans[0], params=FRACTIONAL_PARAMS)


def test_the_simulated_pair_differs_only_by_the_artifact(scans):
    # The premise of the acceptance check: one seed gives the same LFP, the artifact rides on top
    # during the scan only (its own random stream; one slice's waveform after the last trigger).
    art, clean = scans
    a = read_lfp(art["nwb"], series_path=SERIES, channels=art["channels"])
    c = read_lfp(clean["nwb"], series_path=SERIES, channels=clean["channels"])
    # The converter's linear-phase filter rings 16 samples before a slice and 24 after it.
    first = int(round(art["slices"][0] * art["sfreq"])) - 18
    last = int(round((art["slices"][-1] + np.diff(art["slices"]).max()) * art["sfreq"])) + 26
    np.testing.assert_array_equal(a[:, :first], c[:, :first])
    np.testing.assert_array_equal(a[:, last:], c[:, last:])
    assert np.median(np.std(a[:, first:last] - c[:, first:last], axis=1) / np.std(c[:, first:last], axis=1)) > 50


def _notch_freqs(line_freq, slice_rate, max_hz):
    # Written independently of the plugin: line and slice-rate harmonics up to max_hz, merged.
    freqs = list(np.arange(line_freq, max_hz + 1e-6, line_freq))
    freqs += [f for f in np.arange(slice_rate, max_hz + 1e-6, slice_rate) if min(abs(f - np.array(freqs))) > 0.5]
    return sorted(freqs)


@pytest.fixture(scope="module")
def band_agreement(scans, cleaned_fractional):
    """The issue's check: the cleaned artifact recording's classic-band power against the
    artifact-free recording's passed through the same notch filters (then the same decimation
    and channel combination), over the scan. Returns (r, mean power ratio) per band.

    The reference is not the artifact-free recording through template_regression: with no
    artifact, the slice-locked "template" is an average of LFP, and regressing it out of every
    slice segment removes LFP (here about 11% of the combined gamma power), so even a perfect
    cleaner would miss that reference by more than 10%."""
    rate, combined, *_ = cleaned_fractional
    scan = scans[1]
    q = int(scan["sfreq"] // STUDY_PARAMS["output_rate_hz"])
    freqs = _notch_freqs(60.0, 1.0 / np.median(np.diff(scan["slices"])), 300.0)
    raw = read_lfp(scan["nwb"], series_path=SERIES, channels=scan["channels"]).astype(np.float64)
    stack = np.stack(
        [decimate(notch_filter(ch, scan["sfreq"], freqs=freqs), q, ftype="fir", zero_phase=True) for ch in raw]
    )
    reference, *_ = phase_aligned_combine(stack, scan["sfreq"] / q, max_lag_s=0.005, fit_s=60.0)
    assert rate == scan["sfreq"] / q == 1000.0
    assert combined.dtype == np.float32 and combined.shape == reference.shape
    bands = list(BANDS.values())
    p_test, times = spectrogram_band_power(combined, rate, bands=bands)
    p_ref, _ = spectrogram_band_power(reference, rate, bands=bands)
    slices = scans[0]["slices"]
    in_scan = (times - 0.5 >= slices[0]) & (times + 0.5 <= slices[-1])
    assert in_scan.sum() > 2500
    r = np.array([np.corrcoef(a, b)[0, 1] for a, b in zip(p_test[:, in_scan], p_ref[:, in_scan], strict=True)])
    ratio = p_test[:, in_scan].mean(axis=1) / p_ref[:, in_scan].mean(axis=1)
    return dict(zip(BANDS, r.round(4), strict=True)), dict(zip(BANDS, ratio.round(4), strict=True))


def test_cleaned_band_power_tracks_the_artifact_free_recording(band_agreement):
    r, _ = band_agreement
    assert all(v >= 0.95 for v in r.values()), r


def test_cleaned_mean_band_power_is_within_ten_percent(band_agreement):
    _, ratio = band_agreement
    assert all(abs(v - 1) <= 0.10 for v in ratio.values()), ratio


def test_clean_implant_is_the_plugins_step_by_step(scans, cleaned):
    # An independent composition of the documented steps: read each channel, the default
    # subsample template regression (without its notches), FIR decimation by floor(sfreq / 1000 Hz), the notches
    # at the output rate (60 Hz and slice-rate harmonics up to 300 Hz), phase-aligned mean.
    # tests/test_lfp_speed_equivalence.py compares this order with notching before decimation.
    scan = scans[0]
    q = int(scan["sfreq"] // 1000.0)
    raw = read_lfp(scan["nwb"], series_path=SERIES, channels=scan["channels"]).astype(np.float64)
    full = [
        subsample_template_regression(
            ch, scan["sfreq"], slice_onsets=scan["slices"], line_freq=None, notch_slice_rate=False
        )
        for ch in raw
    ]
    notches = _notch_freqs(60.0, 1.0 / np.median(np.diff(scan["slices"])), 300.0)
    stack = np.stack(
        [notch_filter(decimate(ch, q, ftype="fir", zero_phase=True), scan["sfreq"] / q, freqs=notches) for ch in full]
    )
    combined, lags, _ = phase_aligned_combine(stack, scan["sfreq"] / q, max_lag_s=0.005, fit_s=60.0)
    rate, got_combined, got_lags, per_channel, spectrum, _ = cleaned
    assert rate == scan["sfreq"] / q
    np.testing.assert_array_equal(got_lags, lags)
    assert got_lags.dtype.kind == "i" and got_lags.shape == (len(scan["channels"]),)
    np.testing.assert_allclose(got_combined, combined.astype(np.float32), rtol=1e-6, atol=1e-12)
    assert per_channel.dtype == np.float32 and per_channel.shape == stack.shape
    np.testing.assert_allclose(per_channel, stack.astype(np.float32), rtol=1e-6, atol=1e-12)
    # the quality figure's spectra: the channels' mean Welch PSD (1 Hz bins) before and after
    # artifact removal (before the notches)
    n = spectrum_window(scan["sfreq"])
    freqs, raw_psd = welch(raw, fs=scan["sfreq"], nperseg=n, axis=-1)
    _, clean_psd = welch(np.stack(full), fs=scan["sfreq"], nperseg=n, axis=-1)
    upto = freqs <= SPECTRUM_MAX_HZ
    np.testing.assert_allclose(spectrum["freqs"], freqs[upto])
    np.testing.assert_allclose(spectrum["raw"], raw_psd.mean(axis=0)[upto], rtol=1e-6)
    np.testing.assert_allclose(spectrum["clean"], clean_psd.mean(axis=0)[upto], rtol=1e-6)


def test_two_workers_give_the_same_result(scans, cleaned):
    rate, combined, lags, per_channel, spectrum, _ = _run(scans[0], n_jobs=2)
    assert rate == cleaned[0]
    np.testing.assert_array_equal(lags, cleaned[2])
    np.testing.assert_allclose(combined, cleaned[1], rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(per_channel, cleaned[3], rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(spectrum["clean"], cleaned[4]["clean"], rtol=1e-6)


def test_keep_channels_false_returns_no_channel_signals(scans):
    params = STUDY_PARAMS | {"keep_channels": False, "lfp_cleaning": {"method": "none"}}
    rate, combined, lags, per_channel, spectrum, _ = _run(scans[1], params=params)
    assert per_channel is None
    np.testing.assert_allclose(spectrum["clean"], spectrum["raw"], rtol=1e-6)  # nothing cleaned, nothing changed
    assert combined.shape == (
        int(np.ceil(len(read_lfp(scans[1]["nwb"], series_path=SERIES, channels=[0])[0]) / (scans[1]["sfreq"] / rate))),
    )
    assert lags.shape == (len(scans[1]["channels"]),)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"channels": []}, "channels is empty"),
        ({"n_jobs": 0}, "n_jobs"),
        ({"params": {"lfp_cleaning": {"method": "none"}}}, "channel_combine"),
        ({"params": STUDY_PARAMS | {"output_rate_hz": 0}}, "output_rate_hz"),
        ({"params": STUDY_PARAMS | {"lfp_cleaning": {"line_freq": 60.0}}}, "'method' key"),
    ],
)
def test_clean_implant_rejects_bad_arguments(scans, change, match):
    scan = scans[1]
    args = (
        dict(
            series_path=SERIES,
            channels=scan["channels"],
            sfreq=scan["sfreq"],
            slice_onsets=scan["slices"],
            params=STUDY_PARAMS,
        )
        | change
    )
    with pytest.raises(ValueError, match=match):
        clean_implant(scan["nwb"], **args)


@pytest.mark.parametrize("name", ["template_regression", "subsample_template_regression"])
def test_no_artifact_means_notches_only(name):
    """On an artifact-free recording the cleaner must not regress LFP out (only notch it)."""
    from lfpbold.plugins import get_plugin
    from lfpbold.plugins.spectral import notch_filter

    template_regression = get_plugin("lfp_cleaning", name)

    rng = np.random.default_rng(5)
    sfreq = 2000.0
    lfp = np.cumsum(rng.standard_normal(int(sfreq * 60))) * 1e-6  # 1/f^2-like background
    lfp += 5e-6 * rng.standard_normal(lfp.size)
    onsets = np.arange(5.0, 55.0, 0.1)
    cleaned = template_regression(lfp, sfreq, slice_onsets=onsets, line_freq=60.0, notch_max_hz=300.0)
    freqs = [60.0, 120.0, 180.0, 240.0, 300.0] + [10.0 * k for k in range(1, 31)]
    reference = notch_filter(lfp, sfreq, freqs=sorted(set(freqs)))
    np.testing.assert_allclose(cleaned, reference, rtol=0, atol=1e-12)
    forced = template_regression(lfp, sfreq, slice_onsets=onsets, line_freq=60.0, min_reliability=None)
    assert not np.allclose(forced, reference, atol=1e-12)  # the check is what made the difference


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"whiten": 4}, "whiten"),
        ({"whiten": 1.0}, "whiten"),
        ({"iterations": 0}, "iterations"),
        ({"obs_components": -1}, "obs_components"),
        ({"slice_onsets": [1.0]}, "at least two"),
    ],
)
def test_subsample_template_regression_rejects_bad_arguments(change, match):
    from lfpbold.plugins.lfp_cleaning import subsample_template_regression

    kw = {"slice_onsets": np.arange(1.0, 9.0, 0.1), **change}
    with pytest.raises(ValueError, match=match):
        subsample_template_regression(np.zeros(20_000), 2000.0, **kw)


@pytest.mark.parametrize(
    ("method", "gamma_tolerance"),
    [("fractional_template_regression", 0.10), ("subsample_template_regression", 0.02)],
)
def test_fractional_cleaning_leaves_little_residual_on_the_realistic_artifact(method, gamma_tolerance):
    """Correctness (not timed): on a short recording with the simulator's realistic gradient
    artifact (unlocked clocks, slice differences, drift, awake head motion), both sub-sample
    methods take the artifact down by more than 500 times, to below a fifth of the LFP's RMS.
    Gamma power: ``fractional_template_regression`` within 10 % (measured here: -4 to -7 %),
    ``subsample_template_regression`` (the default) within the issue's 2 % (measured here: -0.6 to
    +0.0 %; -2.1 % on one channel before the sudden-movement basis rule, undetrended basis shapes
    and ``own_share``)."""
    import dataclasses

    from scipy import signal

    from lfpbold.plugins.lfp_cleaning import _slice_rate_notches
    from lfpbold.simulate import LfpStream, simulate_latents, simulate_motion
    from lfpbold.simulate.signals import slice_onsets
    from lfpbold.simulate.sizes import SIZES

    size = dataclasses.replace(SIZES["small"], n_volumes=60, lead_s=5.0)
    lat = simulate_latents(4, size=size, regions=("M1",))
    motion = simulate_motion(4, "awake", size.n_volumes)
    raw = LfpStream(lat, size, 4, artifact=True, motion=motion, bad_channels={}).read(0, size.n_times)
    clean = LfpStream(lat, size, 4, artifact=False, motion=motion, bad_channels={}).read(0, size.n_times)
    onsets = slice_onsets(size)
    freqs = _slice_rate_notches(60.0, 300.0, 1 / np.median(np.diff(onsets)), size.fs)
    inside = slice(int(onsets[0] * size.fs) + 1000, int(onsets[-1] * size.fs) - 1000)
    params = {k: v for k, v in STUDY_PARAMS["lfp_cleaning"].items() if k != "method"}
    from lfpbold.plugins import get_plugin

    cleaner = get_plugin("lfp_cleaning", method)
    for ch in range(raw.shape[1]):
        cleaned = cleaner(raw[:, ch].astype(float), size.fs, slice_onsets=onsets, **params)
        reference = notch_filter(clean[:, ch].astype(float), size.fs, freqs=freqs)
        residual = (cleaned - reference)[inside]
        artifact = (raw[:, ch] - clean[:, ch])[inside]
        assert np.std(residual) < 0.2 * np.std(reference[inside]), (ch, np.std(residual))
        assert np.std(residual) < 2e-3 * np.std(artifact), (ch, np.std(residual), np.std(artifact))
        f, p_clean = signal.welch(cleaned[inside], size.fs, nperseg=2000)
        _, p_ref = signal.welch(reference[inside], size.fs, nperseg=2000)
        gamma = (f >= 40) & (f <= 100)
        assert abs(p_clean[gamma].sum() / p_ref[gamma].sum() - 1) < gamma_tolerance, ch


def test_default_cleaning_follows_a_sudden_head_movement():
    """Issue #12: the default cleaning keeps mean gamma power within a few % of the artifact-free
    recording's on every channel of a scan with one sudden head movement (0.45 mm and a few
    mrad within one volume, then back: the artifact's shape changes for two volumes). Such a
    change makes an optimal-basis component that is huge on a few segments and does not agree
    one volume apart; kept only by agreement, it was dropped and tens of uV stayed (measured
    here before: -0.1, +1.0, +41 and +52 % on the four channels; now within 0.4 %)."""
    import dataclasses

    from lfpbold.plugins.lfp_cleaning import _slice_rate_notches
    from lfpbold.simulate import LfpStream, simulate_latents, simulate_motion
    from lfpbold.simulate.signals import slice_onsets
    from lfpbold.simulate.sizes import SIZES

    size = dataclasses.replace(SIZES["small"], n_volumes=60, lead_s=5.0)
    lat = simulate_latents(7, size=size, regions=("M1",))
    motion = simulate_motion(7, "sedated", size.n_volumes)  # slow drift and jitter only
    motion[30] += [0.1, -0.1, 0.45, 0.006, -0.004, 0.004]  # mm, rad
    raw = LfpStream(lat, size, 7, artifact=True, motion=motion, bad_channels={}).read(0, size.n_times)
    clean = LfpStream(lat, size, 7, artifact=False, motion=motion, bad_channels={}).read(0, size.n_times)
    onsets = slice_onsets(size)
    freqs = _slice_rate_notches(60.0, 300.0, 1 / np.median(np.diff(onsets)), size.fs)
    params = {k: v for k, v in STUDY_PARAMS["lfp_cleaning"].items() if k != "method"}
    for ch in range(raw.shape[1]):
        cleaned = subsample_template_regression(raw[:, ch].astype(float), size.fs, slice_onsets=onsets, **params)
        reference = notch_filter(clean[:, ch].astype(float), size.fs, freqs=freqs)
        p_clean, times = spectrogram_band_power(cleaned, size.fs, bands=[BANDS["gamma"]])
        p_ref, _ = spectrogram_band_power(reference, size.fs, bands=[BANDS["gamma"]])
        scan = (times - 0.5 >= onsets[0]) & (times + 0.5 <= onsets[-1])
        error = p_clean[0, scan].mean() / p_ref[0, scan].mean() - 1
        assert abs(error) < 0.03, (ch, error)
