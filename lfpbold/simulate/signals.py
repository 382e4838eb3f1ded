"""One scan's signals: latent drives and band power, head motion, BOLD, and the scanner's timing.

Everything here is deterministic in the scan's seed and holds whole arrays in memory (the LFP,
which does not fit, is generated in blocks by :class:`lfpbold.simulate.lfp.LfpStream`). The
model is described in :mod:`lfpbold.simulate`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from lfpbold.plugins.hrf import RODENT_P, hrf_regressor, spm_hrf
from lfpbold.plugins.noise_ceiling import expected_trial_r
from lfpbold.simulate.anatomy import Atlas
from lfpbold.simulate.sizes import SIZES, Size

__all__ = [
    "BAND_COUPLING",
    "BAND_RMS",
    "POWER_DEPTH",
    "POWER_FLOOR",
    "DRIVE_BAND",
    "POWER_STEP",
    "HEAD_RADIUS_MM",
    "volume_onsets",
    "slice_onsets",
    "slice_positions",
    "expected_temporal_r",
    "simulate_latents",
    "simulate_motion",
    "simulate_bold",
]

#: Lower bands carry ``-k * z``: chosen so the expected observed r at c=0.59, CNR=1.3 is
#: about -0.20/-0.19/-0.11/-0.06 (delta/theta/alpha/beta), the study's M1 values.
BAND_COUPLING = {"delta": 0.43, "theta": 0.41, "alpha": 0.24, "beta": 0.13}
#: Baseline RMS of each band's oscillation, volts.
BAND_RMS = {"delta": 60e-6, "theta": 25e-6, "alpha": 15e-6, "beta": 10e-6, "gamma": 10e-6}
#: Relative modulation of each band's power by its drive (power = P0 * (1 + depth * drive)).
POWER_DEPTH = 0.45
#: Power never drops below this fraction of its baseline (clip; touches ~3 % of samples).
POWER_FLOOR = 0.05
DRIVE_BAND = (0.016, 0.07)  # Hz: flat part of the latent drives' spectrum (tapers 0.011-0.016, 0.07-0.08)
POWER_STEP = 0.1  # s: the 10 Hz grid of band power and latent drives
# Rotations to mm for the motion-correlated BOLD at the brain's edge: the simulated rat's head, not the
# FD rule's radius (plugins.bold), which is an analysis choice that must not change the data.
HEAD_RADIUS_MM = 5.0
#: SD (% signal) of the white matter's and the ventricles' own in-band fluctuations (see simulate_bold).
WM_FLUCTUATION = 1.0
CSF_FLUCTUATION = 2.0


def _band_mask(f):
    """Spectral amplitude of the latent drives: flat in :data:`DRIVE_BAND`, cosine tapers to 0.011
    and 0.08 Hz, so that a 0.01-0.1 Hz band-pass (Butterworth, as nilearn's) keeps > 99 % of it."""
    lo, hi = DRIVE_BAND
    a, b = 0.011, 0.08
    m = np.zeros_like(f)
    m[(f >= lo) & (f <= hi)] = 1.0
    up = (f > a) & (f < lo)
    m[up] = np.sin((f[up] - a) / (lo - a) * np.pi / 2) ** 2
    down = (f > hi) & (f < b)
    m[down] = np.cos((f[down] - hi) / (b - hi) * np.pi / 2) ** 2
    return m


def _standardize(a, axis=-1):
    a = a - a.mean(axis=axis, keepdims=True)
    return a / a.std(axis=axis, keepdims=True)


def _slow_noise(rng, shape, step):
    """Standardized band-limited Gaussian noise (spectrum :func:`_band_mask`) on a grid of ``step`` s."""
    n = shape[-1]
    spec = np.fft.rfft(rng.standard_normal(shape), axis=-1) * _band_mask(np.fft.rfftfreq(n, step))
    return _standardize(np.fft.irfft(spec, n, axis=-1))


def _bold_band_noise(rng, shape, t_r):
    """Noise at the volumes with the spectrum of an HRF-convolved, volume-averaged latent drive."""
    n = shape[-1]
    f = np.fft.rfftfreq(n, t_r)
    h = spm_hrf(POWER_STEP)
    hf = np.abs(np.exp(-2j * np.pi * np.outer(f, np.arange(h.size) * POWER_STEP)) @ h)
    amp = _band_mask(f) * hf * np.abs(np.sinc(f * t_r))
    spec = np.fft.rfft(rng.standard_normal(shape), axis=-1) * amp
    return _standardize(np.fft.irfft(spec, n, axis=-1))


def slice_positions(size: Size) -> np.ndarray:
    """Where each slice acquisition truly starts, in (fractional) LFP samples, volume-major.

    The scanner and the amplifier run on their own clocks: a scanner second is
    ``1 + clock_ppm * 1e-6`` amplifier seconds plus a slow drift (a sine of ``clock_drift_ppm``
    over the scan), so the slice period is not a whole number of samples and slice onsets fall
    between samples. The scan starts on a sample (``lead_s``).

    Examples
    --------
    >>> pos = slice_positions(SIZES["small"])
    >>> float(pos[0]), round(float(np.diff(pos[:2])[0]), 4)  # 0.1 s slices: 200.01 samples, not 200
    (80000.0, 200.01)
    """
    t = np.arange(size.n_volumes)[:, None] * size.t_r + np.asarray(size.slice_timing)[None, :]
    t = t.ravel()
    span = size.n_volumes * size.t_r
    drift = size.clock_drift_ppm * 1e-6 * span / (2 * np.pi) * (1 - np.cos(2 * np.pi * t / span))
    return (size.lead_s + t * (1 + size.clock_ppm * 1e-6) + drift) * size.fs


def slice_onsets(size: Size) -> np.ndarray:
    """Slice trigger times (s) as the amplifier records the scanner's TTL: the first sample at or
    after each slice's true onset (:func:`slice_positions`), volume-major.

    Examples
    --------
    >>> slice_onsets(SIZES["small"])[:3]
    array([40.    , 40.1005, 40.2005])
    """
    return np.ceil(slice_positions(size) - 1e-9) / size.fs


def volume_onsets(size: Size) -> np.ndarray:
    """Volume trigger times (s): the trigger of each volume's first slice.

    Examples
    --------
    >>> volume_onsets(SIZES["small"])[:3]
    array([40.    , 41.0005, 42.0005])
    """
    return slice_onsets(size)[:: size.n_slices]


def expected_temporal_r(true_temporal_r: float, cnr: float, band: str = "gamma") -> float:
    """Average observed per-scan r between HRF-convolved band power and the ROI-mean BOLD.

    Gamma power and the BOLD each carry independent noise of SD ``1 / cnr``, so gamma's r is the
    noise ceiling's attenuation (:func:`lfpbold.plugins.noise_ceiling.expected_trial_r`). A lower
    band's power correlates ``-k_b`` with ``z`` (:data:`BAND_COUPLING`; its own fluctuations are the
    rest), and only the BOLD side's noise attenuates that: ``-k_b * c * C / sqrt(1 + C**2)``.

    Parameters
    ----------
    true_temporal_r : float
        Correlation between the HRF-convolved gamma drive and the network's BOLD signal.
    cnr : float
        Contrast-to-noise ratio on both sides.
    band : str, default "gamma"
        A name in :data:`lfpbold.constants.CLASSIC_BANDS`.

    Returns
    -------
    float

    Examples
    --------
    >>> round(expected_temporal_r(0.59, 1.3), 3), round(expected_temporal_r(0.59, 1.3, "delta"), 3)
    (0.371, -0.201)
    """
    if band == "gamma":
        return float(expected_trial_r(true_temporal_r, cnr))
    return -BAND_COUPLING[band] * true_temporal_r * cnr / math.sqrt(1.0 + cnr**2)


def simulate_latents(scan_seed: int, *, size="small", regions=("ACC", "M1"), true_temporal_r=0.59, cnr=1.3) -> dict:
    """The latent drives, band powers and BOLD drives of one scan (deterministic in ``scan_seed``).

    Returns
    -------
    dict with ``power_times`` (10 Hz grid over the whole recording, s), ``volume_onsets`` and per
    region ``regions[r]`` a dict: ``z``, ``w``, ``gamma_drive`` (= standardized(z + w/cnr)),
    ``power`` (band -> power in V^2 on the grid), ``g``, ``h``, ``e`` (standardized, at the
    volumes) and ``s`` (= c*g + sqrt(1-c^2)*h, the network's local BOLD signal).

    Examples
    --------
    >>> lat = simulate_latents(3, regions=("M1",), true_temporal_r=0.59)
    >>> m1 = lat["regions"]["M1"]
    >>> sorted(m1["power"]), round(float(np.corrcoef(m1["g"], m1["s"])[0, 1]), 6)
    (['alpha', 'beta', 'delta', 'gamma', 'theta'], 0.59)
    """
    size = SIZES[size] if isinstance(size, str) else size
    c = float(true_temporal_r)
    rng = np.random.default_rng(np.random.SeedSequence([int(scan_seed), 1]))
    n_p = int(np.floor(size.duration_s / POWER_STEP)) + 1
    times = np.arange(n_p) * POWER_STEP
    onsets = volume_onsets(size)
    kernel = spm_hrf(POWER_STEP, p=RODENT_P)
    out = {"power_times": times, "volume_onsets": onsets, "regions": {}}
    for region in regions:
        z, w, q, u, *own = _slow_noise(rng, (4 + len(BAND_COUPLING), n_p), POWER_STEP)
        # Make the scan's HRF-convolved drives exactly orthogonal with equal variance over its
        # volumes (Gram-Schmidt on linear combinations of same-spectrum processes keeps the
        # spectrum), so the per-scan truths hold without finite-sample scatter.
        series = [z, q, u, w]
        _, reg = hrf_regressor(np.stack(series), times, onsets, size.t_r, kernel=kernel)
        reg = reg - reg.mean(axis=1, keepdims=True)
        sd = reg[0].std()
        for m in range(1, 4):
            basis = reg[:m]
            coef = np.linalg.lstsq(basis.T, reg[m], rcond=None)[0]
            reg[m] = reg[m] - coef @ basis
            series[m] = series[m] - coef @ np.stack(series[:m])
            scale = sd / reg[m].std()
            reg[m] *= scale
            series[m] = series[m] * scale
        z, q, u, w = series
        g, h, e = reg[:3] / sd
        drive = _standardize(z + w / cnr)
        power = {"gamma": BAND_RMS["gamma"] ** 2 * np.maximum(1.0 + POWER_DEPTH * drive, POWER_FLOOR)}
        for (band, k), n_b in zip(BAND_COUPLING.items(), own, strict=True):
            d_b = _standardize(-k * z / z.std() + math.sqrt(1.0 - k**2) * n_b)
            power[band] = BAND_RMS[band] ** 2 * np.maximum(1.0 + POWER_DEPTH * d_b, POWER_FLOOR)
        out["regions"][region] = {
            "z": z,
            "w": w,
            "gamma_drive": drive,
            "power": power,
            "g": g,
            "h": h,
            "e": e,
            "s": c * g + math.sqrt(max(0.0, 1.0 - c**2)) * h,
        }
    return out


def simulate_motion(scan_seed: int, state: str, n_volumes: int) -> np.ndarray:
    """Realignment parameters (n_volumes, 6): mm and radians, rounded as written to the TSV.

    Slow drift plus small jitter; awake scans add sudden head movements (a per-scan rate drawn
    log-normally, median 1.5 per minute), each a displacement that lasts one to several volumes.

    Examples
    --------
    >>> from lfpbold.plugins.bold import framewise_displacement
    >>> motion = simulate_motion(0, "sedated", 1200)
    >>> motion.shape, bool(framewise_displacement(motion).max() < 0.1)  # sedated scans pass the FD screen
    ((1200, 6), True)
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(scan_seed), 3]))
    n = n_volumes
    t = np.arange(n) / max(n - 1, 1)
    awake = state == "awake"
    jitter = np.array([0.004, 0.004, 0.006, 0.0004, 0.0004, 0.0003]) * (1.8 if awake else 1.0)
    drift = np.array([0.05, 0.05, 0.08, 0.001, 0.001, 0.001]) * (2.0 if awake else 1.0)
    slow = ndimage.gaussian_filter1d(rng.standard_normal((n, 6)).cumsum(0), sigma=20, axis=0, mode="nearest")
    slow = slow / max(np.abs(slow).max(), 1e-12)
    motion = slow * drift + rng.standard_normal((n, 6)) * jitter * 0.7
    motion += np.outer(t, rng.normal(0, 1, 6) * drift)
    if awake:
        rate = 1.5 * math.exp(rng.normal(0.0, 0.8))  # events per minute
        n_events = rng.poisson(rate * n / 60.0)
        for onset in rng.integers(1, n, n_events):
            dur = int(rng.integers(1, 6))
            jump = rng.normal(0, 1, 6) * np.array([0.12, 0.12, 0.2, 0.008, 0.008, 0.006])
            if rng.random() < 0.7:  # transient: the head comes back
                motion[onset : onset + dur] += jump
            else:  # step: it stays
                motion[onset:] += jump
    motion[:, :3] = np.round(motion[:, :3], 6)
    motion[:, 3:] = np.round(motion[:, 3:], 8)
    return motion


def simulate_bold(atlas: Atlas, latents: dict, motion: np.ndarray, scan_seed: int, *, cnr=1.3) -> np.ndarray:
    """The 4-D BOLD (float32, atlas grid) of one scan. See :mod:`lfpbold.simulate` for the model.

    Examples
    --------
    >>> from lfpbold.simulate.anatomy import build_atlas
    >>> atlas = build_atlas("small", ("M1",))
    >>> lat = simulate_latents(3, regions=("M1",))
    >>> bold = simulate_bold(atlas, lat, simulate_motion(3, "sedated", 300), 3)
    >>> bold.shape, bold.dtype
    ((32, 32, 10, 300), dtype('float32'))
    """
    size = atlas.size
    n_vol = size.n_volumes
    rng = np.random.default_rng(np.random.SeedSequence([int(scan_seed), 2]))
    brain = atlas.brain
    idx = np.flatnonzero(brain.ravel())
    s0 = atlas.s0.ravel()[idx]
    amp = 1.0  # percent signal change of the network signal where the pattern is 1
    sigma_ind_max = size.voxel_noise * amp / cnr
    # In-band independent noise: one SD for all voxels, inversely proportional to the CNR so that
    # each scan's maps are as noisy as its time courses, and small enough that in every ROI mean
    # it takes at most ``size.voxel_noise_share`` of the noise variance that the CNR allows.
    targets, sigma_ind = {}, sigma_ind_max
    for r, roi in atlas.rois.items():
        w = roi.ravel()[idx].astype(float)
        w /= w.sum()
        m_p = np.dot(w, s0 * atlas.patterns[r].ravel()[idx])
        targets[r] = (amp * m_p / cnr) ** 2
        sigma_ind = min(sigma_ind, math.sqrt(targets[r] * size.voxel_noise_share / np.dot(w**2, s0**2)))
    pct = np.zeros((idx.size, n_vol))
    for r in atlas.rois:
        lat = latents["regions"][r]
        pct += amp * np.outer(atlas.patterns[r].ravel()[idx], lat["s"])
        w = atlas.rois[r].ravel()[idx].astype(float)
        w /= w.sum()
        loc = atlas.local[r].ravel()[idx]
        m_l = np.dot(w, s0 * loc)
        remaining = targets[r] - sigma_ind**2 * np.dot(w**2, s0**2)
        a_r = math.sqrt(max(remaining, 0.0)) / m_l
        pct += a_r * np.outer(loc, lat["e"])
    pct += sigma_ind * _bold_band_noise(rng, (idx.size, n_vol), size.t_r)
    white = rng.standard_normal((idx.size, n_vol))
    f = np.fft.rfftfreq(n_vol, size.t_r)
    white = np.fft.irfft(np.fft.rfft(white, axis=1) * (f >= 0.15), n_vol, axis=1)
    pct += 1.0 * white / white.std()
    glob = _bold_band_noise(rng, (1, n_vol), size.t_r)[0]
    pct += 1.5 * np.outer(atlas.global_profile.ravel()[idx], glob)
    mot = motion - motion.mean(0)
    mot_mm = np.concatenate([mot[:, :3], HEAD_RADIUS_MM * mot[:, 3:]], axis=1)
    beta = rng.normal(0, 1, (idx.size, 6))
    pct += 2.0 * atlas.edge.ravel()[idx][:, None] * (beta @ mot_mm.T)  # 2 % per mm at the edge
    # White matter and ventricles carry physiological fluctuations of their own (CSF pulsation,
    # aliased cardiac and respiratory noise), not only the global fluctuation. Without them the
    # few voxels of these masks would average to the global fluctuation alone, and the study's
    # regression of global + WM + ventricle signals together would isolate, in their difference,
    # the networks' share of the global mean and remove it from every ROI (observed gamma r 25 %
    # below the attenuation formula at 300 volumes instead of the ~10-14 % that the regression's
    # degrees of freedom cost).
    for mask, amp in ((atlas.wm, WM_FLUCTUATION), (atlas.ventricles, CSF_FLUCTUATION)):
        pct += amp * np.outer(mask.ravel()[idx].astype(float), _bold_band_noise(rng, (1, n_vol), size.t_r)[0])
    ramp = np.linspace(-0.5, 0.5, n_vol)  # scanner drift: linear, spatially smooth, 0.5 % per scan
    pct += 0.5 * np.outer(s0 / 1000.0, ramp)
    bold = np.empty((brain.size, n_vol), dtype=np.float32)
    outside = np.flatnonzero(~brain.ravel())
    for lo in range(0, outside.size, 8192):  # thermal noise outside the brain, in pieces to bound memory
        part = outside[lo : lo + 8192]
        bold[part] = atlas.s0.ravel()[part, None] + 5.0 * rng.standard_normal((part.size, n_vol), dtype=np.float32)
    bold[idx] = s0[:, None] * (1.0 + pct / 100.0)
    return bold.reshape(*brain.shape, n_vol)
