"""MR gradient artifact removal: lfpbold's cleaning methods side by side with facetpy.

Same simulated recordings for every method (small-size acquisition: 2 kHz, 4 contacts, 10 slices
per 1 s volume; the simulator's realistic artifact: unlocked clocks, per-slice differences, drift,
respiration and head motion), each simulated twice from one seed, with and without the artifact,
so the artifact-free recording is known. Per method, over channels, scans and seeds:

* ``resid_uV``: RMS of (cleaned - artifact-free) inside the scan, microvolts;
* ``slice_harm_uV2``: residual power at the slice frequency and its harmonics up to 300 Hz
  (Welch, 1 s windows; the bins within 0.5 Hz of each harmonic), microvolts squared;
* ``gamma_err_%``: mean 40-100 Hz power (1 s spectrogram, 0.1 s step) against the artifact-free
  (the table gives its mean over channels and recordings, its median, and the largest error);
* ``gamma_reg_r``: r of the HRF-convolved gamma power per volume with the artifact-free one's;
* ``s_per_ch``: seconds per channel (for this size; one run, shared machine).

Two comparisons: artifact removal alone (lfpbold without its notch filters; reference: the
artifact-free recording), and each method followed by the study's notch filters (60 Hz and
slice-rate harmonics; reference: the artifact-free recording through the same notches), which is
lfpbold's default as the pipeline runs it.

facetpy pins numpy 2.1 and mne 1.10, so it runs in its own virtual environment, named with
``--facet-python`` (``python -m venv V && V/bin/pip install facetpy``); its settings: FASTR-style
AAS (10x upsampling, slice and sub-sample alignment, 30-epoch windows), with and without its PCA
(OBS) step, on slice epochs and on volume epochs (every 10th trigger). Without ``--facet-python``
the facetpy rows are skipped and the script says so.

    python benchmarks/artifact_removal.py --facet-python /tmp/facet/bin/python --seeds 3
    python benchmarks/artifact_removal.py --seeds 0 --rate-seconds 120   # timing at 24 kHz only
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import signal

from lfpbold.plugins.hrf import hrf_regressor
from lfpbold.plugins.lfp_cleaning import (
    _slice_rate_notches,
    fractional_template_regression,
    subsample_template_regression,
    template_regression,
)
from lfpbold.plugins.spectral import notch_filter, spectrogram_band_power
from lfpbold.simulate import LfpStream, simulate_latents, simulate_motion
from lfpbold.simulate.signals import slice_onsets, volume_onsets
from lfpbold.simulate.sizes import SIZES

RUNNER = Path(__file__).with_name("_facet_runner.py")
FACET_SETTINGS = (
    ("aas", "facetpy AAS, slice epochs"),
    ("aas_obs", "facetpy AAS + PCA/OBS, slice epochs"),
    ("vol_aas", "facetpy AAS, volume epochs"),
    ("vol_aas_obs", "facetpy AAS + PCA/OBS, volume epochs"),
)
LFPBOLD = {
    "lfpbold template_regression": template_regression,
    "lfpbold fractional_template_regression": fractional_template_regression,
    "lfpbold subsample_template_regression": subsample_template_regression,
}


def recordings(seed: int, state: str, n_volumes: int):
    size = dataclasses.replace(SIZES["small"], n_volumes=n_volumes, lead_s=5.0)
    lat = simulate_latents(seed, size=size, regions=("M1",))
    motion = simulate_motion(seed, state, n_volumes)
    raw = LfpStream(lat, size, seed, artifact=True, motion=motion, bad_channels={}).read(0, size.n_times)
    clean = LfpStream(lat, size, seed, artifact=False, motion=motion, bad_channels={}).read(0, size.n_times)
    return size, raw.T.astype(np.float64), clean.T.astype(np.float64)


def metrics(cleaned, reference, size, onsets, seconds):
    fs = size.fs
    inside = slice(int(onsets[0] * fs) + int(fs), int(onsets[-1] * fs) - int(fs))
    rows = []
    f_slice = 1.0 / np.median(np.diff(onsets))
    for c, r in zip(cleaned, reference, strict=True):
        e = (c - r)[inside]
        f, p = signal.welch(e, fs, nperseg=int(fs))
        harm = np.zeros(f.size, bool)
        for k in range(1, int(300 / f_slice) + 1):
            harm |= np.abs(f - k * f_slice) <= 0.5
        pw, t = spectrogram_band_power(c, fs, bands=[(40.0, 100.0)])
        pr, _ = spectrogram_band_power(r, fs, bands=[(40.0, 100.0)])
        keep = (t - 0.5 >= onsets[0]) & (t + 0.5 <= onsets[-1])
        vols = volume_onsets(size)
        _, xw = hrf_regressor(pw[0], t, vols, size.t_r)
        _, xr = hrf_regressor(pr[0], t, vols, size.t_r)
        rows.append(
            [
                np.std(e) * 1e6,
                p[harm].sum() * (f[1] - f[0]) * 1e12,
                100 * (pw[0, keep].mean() / pr[0, keep].mean() - 1),
                np.corrcoef(xw, xr)[0, 1],
                seconds / len(cleaned),
            ]
        )
    return rows


def facet(raw, size, onsets, setting, python):
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(
            src,
            data=raw,
            sfreq=size.fs,
            triggers=np.round(onsets * size.fs).astype(np.int64),
            slices_per_volume=size.n_slices,
        )
        subprocess.run([python, str(RUNNER), str(src), str(dst), setting], check=True, capture_output=True)
        z = np.load(dst)
        return z["data"], float(z["seconds"])


def timing_at_rate(sfreq: float, seconds: float, seed: int = 0):
    """Seconds per channel of each lfpbold method at the study's sampling rate, on one synthetic
    channel: 1/f-like noise and a band-limited slice artifact (75 ms slices, 50 ppm clock offset,
    each slice at its own fractional delay; no per-slice differences, so one template)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sfreq)
    lfp = 3e-6 * np.cumsum(rng.standard_normal(n))
    lfp -= np.convolve(lfp, np.ones(2001) / 2001, mode="same")
    period = sfreq * 0.075 * (1 + 5e-5)
    pos = 2 * sfreq + np.arange(int((seconds - 4) / 0.075)) * period
    length = int(period) - 20
    t = np.arange(length)
    w = np.sin(2 * np.pi * 0.013 * t) * np.hanning(length) + 0.3 * np.sign(np.sin(2 * np.pi * 0.002 * t))
    w = np.fft.irfft(np.fft.rfft(w) * (np.fft.rfftfreq(length) < 0.4), n=length)
    spec, om = np.fft.rfft(w, n=2 * length), 2 * np.pi * np.fft.rfftfreq(2 * length)
    raw = lfp.copy()
    for p in pos:
        s = int(np.ceil(p))
        raw[s : s + length] += 1e-3 * np.fft.irfft(spec * np.exp(1j * om * (s - p)), n=2 * length)[:length]
    onsets = np.ceil(pos) / sfreq
    inside = slice(int(3 * sfreq), -int(3 * sfreq))
    rows = []
    for name, method in LFPBOLD.items():
        t0 = time.perf_counter()
        out = method(raw, sfreq, slice_onsets=onsets, line_freq=None, notch_slice_rate=False)
        dt = time.perf_counter() - t0
        rows.append((name, dt, np.std((out - lfp)[inside]) / np.std((raw - lfp)[inside])))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--volumes", type=int, default=120, help="volumes per recording (1 s each)")
    ap.add_argument("--facet-python", help="Python of a virtual environment with facetpy installed")
    ap.add_argument(
        "--rate-seconds",
        type=float,
        default=0.0,
        help="also time each lfpbold method on one synthetic channel this long at 24,414 Hz (0: skip)",
    )
    args = ap.parse_args(argv)
    if args.rate_seconds:
        rows = timing_at_rate(24414.0625, args.rate_seconds)
        base = rows[0][1]
        print(f"\nTime per channel at 24,414 Hz, {args.rate_seconds:g} s synthetic channel (one run)")
        print("| method | s_per_ch | x template_regression | residual / artifact RMS |")
        print("|---|---|---|---|")
        for name, dt, rel in rows:
            print(f"| {name} | {dt:.2f} | {dt / base:.1f} | {rel:.4f} |")
    table = {}
    for seed in range(args.seeds):
        for state in ("sedated", "awake"):
            size, raw, clean = recordings(100 + seed, state, args.volumes)
            onsets = slice_onsets(size)
            notches = _slice_rate_notches(60.0, 300.0, 1 / np.median(np.diff(onsets)), size.fs)
            notched_ref = np.stack([notch_filter(ch, size.fs, freqs=notches) for ch in clean])
            outputs = {}
            for name, method in LFPBOLD.items():
                t0 = time.perf_counter()
                bare = np.stack(
                    [method(ch, size.fs, slice_onsets=onsets, line_freq=None, notch_slice_rate=False) for ch in raw]
                )
                outputs[name] = (bare, time.perf_counter() - t0)
            if args.facet_python:
                for setting, label in FACET_SETTINGS:
                    outputs[label] = facet(raw, size, onsets, setting, args.facet_python)
            for name, (out, seconds) in outputs.items():
                table.setdefault(("alone", name), []).extend(metrics(out, clean, size, onsets, seconds))
                with_notches = np.stack([notch_filter(ch, size.fs, freqs=notches) for ch in out])
                table.setdefault(("+ notches", name), []).extend(
                    metrics(with_notches, notched_ref, size, onsets, seconds)
                )
            print(f"seed {100 + seed} {state}: done", file=sys.stderr)
    if not args.facet_python:
        print("facetpy: not run (no --facet-python given)")
    header = f"| {'method':<52} | {'resid_uV':>8} | {'slice_harm_uV2':>14} | {'gamma_err_%':>11} | "
    header += f"{'gamma_med_%':>11} | {'gamma_max_%':>11} | {'gamma_reg_r':>11} | {'s_per_ch':>8} |"
    for mode in ("alone", "+ notches"):
        print(f"\nArtifact removal {mode} ({args.seeds} seeds x sedated/awake x 4 channels, {args.volumes} s each)")
        print(header)
        print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
        for (m, name), rows in table.items():
            if m != mode:
                continue
            a = np.asarray(rows)
            med = np.mean(a, axis=0)
            gmed, gmax = np.median(a[:, 2]), a[np.argmax(np.abs(a[:, 2])), 2]
            print(
                f"| {name:<52} | {med[0]:8.2f} | {med[1]:14.3f} | {med[2]:+11.2f} | {gmed:+11.2f} | {gmax:+11.2f} | "
                f"{med[3]:11.4f} | {med[4]:8.2f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
