"""The study's per-scan analysis written directly with h5py, nibabel, nilearn and SciPy: no lfpbold, no DataJoint.

An independent reference for one simulated scan and one implant. It reads the same files lfpbold's
ingest reads (the NWB LFP with its scanner triggers, the BOLD ``.nii.gz``, the atlas masks and
the implant's ROI, the motion confounds TSV) and computes what lfpbold's pipeline computes for that
scan with the study's default parameter sets:

- clean LFP: one slice-locked template per scan subtracted (average artifact subtraction, only
  where the odd and even slices' templates agree, as lfpbold's reliability check), notches at
  60 Hz and the slice rate and their harmonics up to 300 Hz (second-order IIR, f0 / 200 wide,
  zero-phase ``sosfiltfilt``), FIR decimation to ~1 kHz, plain channel mean. lfpbold's default
  is more elaborate (Tu & Zhang 2022 template *regression* with sub-sample alignment, FIR
  notches, phase-aligned channel mean), so here the two agree only approximately, by design;
- band power: the 0.1-300 Hz band-pass MNE's ``filter_data`` designs (its firwin design with
  'auto' transition bands and odd-reflected padding, re-derived here with SciPy), then a 1 s
  Hamming spectrogram every 0.1 s, averaged over each band's bins;
- the HRF-convolved regressor: SPM's ``spm_hrf`` with p = [4 4 1 1 6 0 32] at the power step,
  causal convolution, mean over each volume's acquisition window;
- preprocessed BOLD: FD screening (sedated: none above 0.1 mm; awake: scrub FD > 0.1 mm and one
  neighbour each side), Gaussian smoothing FWHM 0.75 mm (nilearn), then ``nilearn.signal.clean``
  with detrending, the 6 motion parameters, white-matter, ventricle and global signals as
  confounds and a Butterworth band-pass 0.01-0.1 Hz;
- seed map (Pearson r of the ROI-mean BOLD with every brain voxel), gamma power map (Pearson r
  of the gamma regressor with every brain voxel), spatial r (the two maps) and temporal r (the
  gamma regressor and the ROI-mean BOLD).

Each step is a function taking arrays, so ``benchmarks/run.py`` and ``tests/test_benchmarks.py``
can feed a step either its own upstream result or lfpbold's, and so tell a difference of method
apart from a difference inherited from upstream.

    python benchmarks/reference.py STUDY_DIR [--subject 01] [--session sedated01] [--run 1] [--region M1]
                                   [--out ref.npz]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import scipy.fft
import scipy.signal
from nilearn.image import smooth_img
from nilearn.signal import clean
from scipy.stats import gamma as gamma_dist

SERIES = "acquisition/ElectricalSeries"
#: The study's five bands and its 1-Hz bands (0.1-1, 1-2, ..., 99-100 Hz), computed together as
#: lfpbold's default band-power set does: the 1-Hz bands' 0.1-1 Hz band makes the spectrum
#: zero-padded to 0.5 Hz bins, which changes every band's average.
CLASSIC = {"delta": (1.0, 4.0), "theta": (4.0, 7.0), "alpha": (7.0, 13.0), "beta": (13.0, 30.0), "gamma": (40.0, 100.0)}
ONE_HZ = [(0.1, 1.0)] + [(float(f), float(f + 1)) for f in range(1, 100)]
RODENT_P = (4.0, 4.0, 1.0, 1.0, 6.0, 0.0, 32.0)

__all__ = [
    "find_scan",
    "read_scan",
    "clean_lfp",
    "bandpass_like_mne",
    "band_power",
    "spm_hrf",
    "hrf_regressor",
    "screen",
    "preprocess_bold",
    "pearson_map",
    "pearson",
    "run_reference",
    "CLASSIC",
    "ONE_HZ",
]


# --------------------------------------------------------------------------------------------
# Reading


def find_scan(study: Path, subject: str, session: str, run: int) -> dict:
    """Paths of one scan's files in a simulated study (BIDS + NWB + atlas derivatives)."""
    study = Path(study)
    stem = f"sub-{subject}_ses-{session}_task-rest_run-{run}"
    paths = {
        "nwb": study / f"sub-{subject}" / f"ses-{session}" / "ecephys" / f"{stem}_ecephys.nwb",
        "bold": study / f"sub-{subject}" / f"ses-{session}" / "func" / f"{stem}_bold.nii.gz",
        "confounds": next(
            study.glob(f"derivatives/*/sub-{subject}/ses-{session}/func/{stem}_desc-confounds_timeseries.tsv")
        ),
        "atlas": next(study.glob("derivatives/atlas/tpl-*/anat")),
        "sidecar": study / "task-rest_bold.json",
    }
    for name, path in paths.items():
        if not path.exists():
            raise FileNotFoundError(f"{name}: {path} is missing")
    return paths


def _mask(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj) > 0


def read_scan(study: Path, subject: str = "01", session: str = "sedated01", run: int = 1, region: str = "M1") -> dict:
    """Every input of one scan and implant, as plain arrays.

    Returns
    -------
    dict
        ``raw`` (n_channels, n_times) float32 volts of the implant's channels, ``sfreq``,
        ``slices`` and ``volumes`` (trigger times, s), ``bold`` (X, Y, Z, T) float32, ``affine``,
        ``t_r``, ``brain``, ``wm``, ``ventricles``, ``roi`` (3-D bool), ``motion`` (T, 6),
        ``state`` ("sedated" or "awake").
    """
    paths = find_scan(study, subject, session, run)
    with h5py.File(paths["nwb"], "r") as f:
        series = f[SERIES]
        sfreq = float(series["starting_time"].attrs["rate"])
        rows = series["electrodes"][:]
        location = f["general/extracellular_ephys/electrodes/location"][:].astype(str)
        channels = [i for i, row in enumerate(rows) if location[row] == region]
        if not channels:
            raise ValueError(f"{paths['nwb']}: no electrode in region {region!r} (locations {sorted(set(location))})")
        data = series["data"]
        raw = np.empty((len(channels), data.shape[0]), dtype=np.float32)  # (channels, times), filled in 10 s blocks
        step = int(10 * sfreq)
        for a in range(0, data.shape[0], step):
            raw[:, a : a + step] = data[a : a + step][:, channels].T
        slices = f["events/scanner_slices/timestamp"][:]
        volumes = f["events/scanner_volumes/timestamp"][:]
    img = nib.load(paths["bold"])
    bold = np.asarray(img.dataobj, dtype=np.float32)
    t_r = float(json.loads(paths["sidecar"].read_text())["RepetitionTime"])
    atlas = paths["atlas"]
    stem = atlas.parent.name
    with open(paths["confounds"], newline="") as fh:
        table = list(csv.DictReader(fh, delimiter="\t"))
    motion = np.array(
        [[float(r[c]) for c in ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")] for r in table]
    )
    return {
        "raw": raw,
        "sfreq": sfreq,
        "slices": slices,
        "volumes": volumes,
        "bold": bold,
        "affine": img.affine,
        "t_r": t_r,
        "brain": _mask(atlas / f"{stem}_desc-brain_mask.nii.gz"),
        "wm": _mask(atlas / f"{stem}_desc-wm_mask.nii.gz"),
        "ventricles": _mask(atlas / f"{stem}_desc-ventricles_mask.nii.gz"),
        "roi": _mask(atlas / f"{stem}_label-{region}_mask.nii.gz"),
        "motion": motion,
        "state": "awake" if session.startswith("awake") else "sedated",
    }


# --------------------------------------------------------------------------------------------
# LFP


def _template_subtract(x: np.ndarray, sfreq: float, slices: np.ndarray, min_reliability: float = 0.5) -> np.ndarray:
    """Average artifact subtraction: one mean slice segment, subtracted at every trigger."""
    starts = np.round(slices * sfreq).astype(np.int64)
    length = int(round(np.median(np.diff(slices)) * sfreq))
    ok = (starts >= 0) & (starts + length <= x.size)
    starts = starts[ok]
    segs = x[starts[:, None] + np.arange(length)]
    odd, even = np.diff(segs[1::2].mean(axis=0)), np.diff(segs[0::2].mean(axis=0))
    reliability = float(odd @ even / (np.linalg.norm(odd) * np.linalg.norm(even) or 1.0))
    if reliability < min_reliability:  # no slice-locked artifact: subtracting would remove LFP
        return x
    template = segs.mean(axis=0)
    template -= template.mean()
    y = x.copy()
    # Each segment up to the next trigger (never over it).
    valid = np.minimum(np.append(np.diff(starts), length), length)
    for s, v in zip(starts.tolist(), valid.tolist(), strict=True):
        y[s : s + v] -= template[:v]
    return y


def _notches(x: np.ndarray, sfreq: float, slice_rate: float, line_freq: float = 60.0, max_hz: float = 300.0):
    freqs = [f for base in (line_freq, slice_rate) for f in base * np.arange(1, int(max_hz / base + 1e-9) + 1)]
    freqs = np.unique(np.round(freqs, 6))
    freqs = freqs[np.concatenate([[True], np.diff(freqs) > 0.5])]
    # One cascade of second-order notches f0 / 200 wide (MNE notch_filter's width), forward and backward once.
    sos = np.vstack(
        [scipy.signal.tf2sos(*scipy.signal.iirnotch(f0, Q=200.0, fs=sfreq)) for f0 in freqs[freqs < sfreq / 2 - 1]]
    )
    return scipy.signal.sosfiltfilt(sos, x)


def clean_lfp(raw: np.ndarray, sfreq: float, slices: np.ndarray, output_rate: float = 1000.0):
    """Artifact-cleaned, notched, decimated channel mean of one implant.

    Returns
    -------
    rate : float
        ``sfreq / q`` with ``q = floor(sfreq / output_rate)``.
    combined : ndarray (n_samples,), float64
    """
    q = max(1, int(sfreq // output_rate))
    slice_rate = 1.0 / float(np.median(np.diff(slices)))
    out = []
    for channel in raw:  # one channel in float64 at a time
        y = _notches(_template_subtract(np.asarray(channel, dtype=np.float64), sfreq, slices), sfreq, slice_rate)
        out.append(scipy.signal.decimate(y, q, ftype="fir", zero_phase=True) if q > 1 else y)
    return sfreq / q, np.mean(out, axis=0)


def _odd(n: int) -> int:
    return n + (n % 2 == 0)


def _firwin_lowpass_sum(n_taps: int, freq, gain) -> np.ndarray:
    """A linear-phase FIR with the given piecewise gains, built as a sum of windowed-sinc low-passes,
    each as long as its own transition band needs (the construction of MNE's ``fir_design='firwin'``)."""
    h = np.zeros(n_taps)
    if gain[-1] == 1:
        h[n_taps // 2] = 1.0
    prev_f, prev_g = freq[-1], gain[-1]
    for f, g in zip(freq[::-1][1:], gain[::-1][1:], strict=True):
        if g != prev_g:
            n = _odd(int(round(3.3 / ((prev_f - f) / 2.0))))  # 3.3: the Hamming window's length factor
            part = scipy.signal.firwin(n, (prev_f + f) / 2.0, window="hamming", pass_zero=True, fs=2.0)
            off = (n_taps - n) // 2
            h[off : n_taps - off] += part if g == 1 else -part
        prev_f, prev_g = f, g
    return h


def bandpass_like_mne(x: np.ndarray, rate: float, l_freq: float = 0.1, h_freq: float = 300.0) -> np.ndarray:
    """Zero-phase FIR band-pass with the design of ``mne.filter.filter_data``'s defaults, in SciPy.

    Transition bands ``min(max(l/4, 2), l)`` and ``min(max(h/4, 2), nyquist - h)``; length
    3.3 / narrowest transition (s), odd; edges of the pass band at ``l - tl/2`` and ``h + th/2``;
    the signal padded at both ends by the filter length - 1 with its odd reflection, convolved,
    and the delay removed.
    """
    nyq = rate / 2.0
    lt = min(max(0.25 * l_freq, 2.0), l_freq)
    ht = min(max(0.25 * h_freq, 2.0), nyq - h_freq)
    n_taps = _odd(int(round(rate * 3.3 / min(lt, ht))))
    freq, gain = [l_freq - lt, l_freq, h_freq, h_freq + ht], [0, 1, 1, 0]
    if freq[0] != 0:
        freq, gain = [0.0, *freq], [0, *gain]
    if freq[-1] != nyq:
        freq, gain = [*freq, nyq], [*gain, 0]
    h = _firwin_lowpass_sum(n_taps, np.array(freq) / nyq, gain)
    n_edge = min(n_taps, x.size) - 1
    padded = np.concatenate(
        [
            np.zeros(max(n_edge - x.size + 1, 0)),
            2 * x[:1] - x[n_edge:0:-1],
            x,
            2 * x[-1:] - x[-2 : -n_edge - 2 : -1],
            np.zeros(max(n_edge - x.size + 1, 0)),
        ]
    )
    full = scipy.signal.oaconvolve(padded, h, mode="full")
    shift = (n_taps - 1) // 2 + n_edge + max(n_edge - x.size + 1, 0)
    return full[shift : shift + x.size]


def band_power(lfp: np.ndarray, rate: float, bands, window_s: float = 1.0, step_s: float = 0.1):
    """Band power series from a Hamming-window spectrogram of the 0.1-300 Hz band-passed LFP.

    Returns ``power`` (n_bands, n_windows) V^2/Hz and ``times`` (window centres, s). Window k
    starts at sample ``round(k * step_s * rate)``; a band's power is the mean one-sided PSD over
    bins ``low <= f < high`` (the spectrum zero-padded by the smallest whole factor that puts a
    bin in every band).
    """
    x = bandpass_like_mne(np.asarray(lfp, dtype=np.float64), rate)
    bands = np.asarray(bands, dtype=float)
    nperseg = int(round(window_s * rate))
    for factor in range(1, 64):
        nfft = factor * nperseg
        freqs = np.fft.rfftfreq(nfft, 1 / rate)
        in_band = (freqs[None, :] >= bands[:, :1]) & (freqs[None, :] < bands[:, 1:])
        if in_band.any(axis=1).all():
            break
    k = np.arange(int(np.floor((x.size - nperseg) / (step_s * rate))) + 2)
    k = k[np.round(k * step_s * rate) + nperseg <= x.size]
    starts = np.round(k * step_s * rate).astype(np.int64)
    window = scipy.signal.get_window("hamming", nperseg, fftbins=False)
    scale = np.full(freqs.size, 2.0 / (rate * np.sum(window**2)))
    scale[0] /= 2
    if nfft % 2 == 0:
        scale[-1] /= 2
    frames = x[starts[:, None] + np.arange(nperseg)] * window
    psd = np.abs(scipy.fft.rfft(frames, n=nfft, axis=1)) ** 2 * scale
    power = (in_band / in_band.sum(axis=1, keepdims=True)) @ psd.T
    return power, (starts + nperseg / 2) / rate


def spm_hrf(dt: float, p=RODENT_P, fmri_t: int = 16) -> np.ndarray:
    """SPM12 ``spm_hrf``: difference of two gammas on a ``dt / fmri_t`` grid, at multiples of ``dt``, sum 1."""
    full = np.array([6.0, 16.0, 1.0, 1.0, 6.0, 0.0, 32.0])
    full[: len(p)] = p
    delay, u_delay, disp, u_disp, ratio, onset, length = full
    step = dt / fmri_t
    u = np.arange(int(np.ceil(length / step - 1e-9)) + 1) - onset / step
    h = (
        gamma_dist.pdf(u, delay / disp, scale=disp / step)
        - gamma_dist.pdf(u, u_delay / u_disp, scale=u_disp / step) / ratio
    )
    h = h[np.arange(int(np.floor(length / dt + 1e-9)) + 1) * fmri_t]
    return h / h.sum()


def hrf_regressor(power: np.ndarray, times: np.ndarray, volumes: np.ndarray, t_r: float) -> np.ndarray:
    """HRF-convolved power, averaged over each volume's window ``[onset, onset + t_r)``."""
    step = float(np.median(np.diff(times)))
    kernel = spm_hrf(step)
    power = np.atleast_2d(power)
    conv = np.stack([np.convolve(row, kernel)[: times.size] for row in power])
    out = np.empty((power.shape[0], volumes.size))
    for i, onset in enumerate(volumes):
        inside = (times >= onset) & (times < onset + t_r)
        out[:, i] = conv[:, inside].mean(axis=1) if inside.any() else conv[:, np.searchsorted(times, onset)]
    return out


# --------------------------------------------------------------------------------------------
# BOLD


def screen(motion: np.ndarray, state: str, threshold: float = 0.1, radius: float = 5.0, max_fraction: float = 0.25):
    """Framewise displacement (Power 2012, rotations on a 5 mm sphere) and the study's rules.

    Returns ``(fd, keep, excluded)``.
    """
    d = np.abs(np.diff(motion, axis=0))
    fd = np.concatenate([[0.0], d[:, :3].sum(axis=1) + radius * d[:, 3:].sum(axis=1)])
    high = fd > threshold
    keep = np.ones(fd.size, dtype=bool)
    if state == "sedated":
        return fd, keep, bool(high.any())
    for i in np.flatnonzero(high):
        keep[max(i - 1, 0) : i + 2] = False
    return fd, keep, bool((~keep).mean() > max_fraction)


def preprocess_bold(bold, affine, t_r, brain, wm, ventricles, motion, keep=None, fwhm=0.75):
    """Smoothed, nuisance-regressed, band-passed brain-voxel time series (n_kept, n_brain), float32."""
    smoothed = np.asarray(smooth_img(nib.Nifti1Image(bold, affine), fwhm).dataobj, dtype=np.float32)
    signals = smoothed[brain].T
    nuisance = np.column_stack(
        [
            smoothed[wm].mean(axis=0, dtype=float),
            smoothed[ventricles].mean(axis=0, dtype=float),
            signals.mean(axis=1, dtype=float),
        ]
    )
    out = clean(
        signals,
        detrend=True,
        standardize=None,
        confounds=np.column_stack([motion, nuisance]),
        sample_mask=None if keep is None or keep.all() else keep,
        filter="butterworth",
        low_pass=0.1,
        high_pass=0.01,
        t_r=t_r,
    )
    return np.asarray(out, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Maps and relationships


def pearson_map(seed: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Pearson r of one time series with every column of ``data`` (0 for constant columns)."""
    s = np.asarray(seed, dtype=np.float64)
    s = (s - s.mean()) / (s.std() or 1.0)
    d = np.asarray(data, dtype=np.float64)
    sd = d.std(axis=0)
    z = (d - d.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    return np.where(sd > 0, s @ z / s.size, 0.0)


def pearson(a, b) -> float:
    return float(np.corrcoef(np.asarray(a, dtype=float), np.asarray(b, dtype=float))[0, 1])


def run_reference(scan: dict, band: str = "gamma", combined=None, rate=None) -> dict:
    """Every output of the reference for one scan (``read_scan``'s dict), with the time of each step.

    ``combined`` and ``rate`` replace the reference's own clean LFP (to test the steps after it
    on lfpbold's clean LFP).
    """
    out, seconds = {}, {}
    t0 = time.perf_counter()
    if combined is None:
        rate, combined = clean_lfp(scan["raw"], scan["sfreq"], scan["slices"])
    out["rate"], out["combined"] = rate, np.asarray(combined, dtype=np.float64)
    seconds["clean_lfp"] = time.perf_counter() - (t := t0)
    t = time.perf_counter()
    power, times = band_power(out["combined"], rate, [*CLASSIC.values(), *ONE_HZ])
    i = list(CLASSIC).index(band)
    out["power"], out["times"] = power[i], times
    out["regressor"] = hrf_regressor(power[i], times, scan["volumes"], scan["t_r"])[0]
    seconds["band_power_hrf"] = time.perf_counter() - t
    t = time.perf_counter()
    out["fd"], out["keep"], out["excluded"] = screen(scan["motion"], scan["state"])
    if out["excluded"]:
        out["seconds"] = seconds
        return out
    out["bold"] = preprocess_bold(
        scan["bold"],
        scan["affine"],
        scan["t_r"],
        scan["brain"],
        scan["wm"],
        scan["ventricles"],
        scan["motion"],
        out["keep"],
    )
    seconds["preprocess_bold"] = time.perf_counter() - t
    t = time.perf_counter()
    roi = scan["roi"][scan["brain"]]
    out["seed_ts"] = out["bold"][:, roi].mean(axis=1, dtype=np.float64)
    out["seed_map"] = pearson_map(out["seed_ts"], out["bold"])
    reg = out["regressor"][out["keep"]]
    out["power_map"] = pearson_map(reg, out["bold"])
    out["spatial_r"] = pearson(out["power_map"], out["seed_map"])
    out["temporal_r"] = pearson(reg, out["seed_ts"])
    seconds["maps_and_r"] = time.perf_counter() - t
    out["seconds"] = seconds
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--subject", default="01")
    parser.add_argument("--session", default="sedated01")
    parser.add_argument("--run", type=int, default=1)
    parser.add_argument("--region", default="M1")
    parser.add_argument("--out", type=Path, default=None, help="save the outputs as .npz")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    scan = read_scan(args.study, args.subject, args.session, args.run, args.region)
    t_read = time.perf_counter() - t0
    out = run_reference(scan)
    print(f"read {t_read:.2f} s; " + "; ".join(f"{k} {v:.2f} s" for k, v in out["seconds"].items()))
    if not out["excluded"]:
        print(f"gamma spatial r {out['spatial_r']:.4f}, temporal r {out['temporal_r']:.4f}")
    if args.out:
        np.savez(args.out, **{k: v for k, v in out.items() if not isinstance(v, dict)})


if __name__ == "__main__":
    main()
