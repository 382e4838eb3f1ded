"""The temporal r an ideal pipeline would observe after the study's own BOLD preprocessing.

The raw attenuation formula (:func:`lfpbold.simulate.signals.expected_temporal_r`) ignores what
the study does to the BOLD before correlating it: voxel-wise regression of the six motion
parameters and the white-matter, ventricle and global signals, then a 0.01-0.1 Hz band-pass.
Each regressor takes one of the few degrees of freedom the band leaves (about 54 at 300
volumes), and the BOLD side loses the part of its signal that lies in them by chance: at 300
volumes the observed gamma r falls about 13 % below the formula, at 1,200 volumes about 3 %
(:func:`lfpbold.plugins.noise_ceiling.nuisance_retention`, which the noise ceiling divides by).

:func:`expected_after_preprocessing` computes it by running signals through the study's
preprocessing (the ``study`` method's cleaning step, :func:`lfpbold.plugins.bold._clean_blocks`,
with the scan's own confounds and FD screening), not analytically: per implant, the LFP side is
the study's 1 s spectrogram band power, HRF-convolved, of an ideal LFP: the implant's band
oscillations with the scan's true envelopes (gamma's including its own noise of SD ``1 / cnr``)
and the 1/f^2 background, without contact noise, mains, bad contacts or artifact (a
spectrogram's own estimation noise and window leakage are part of what any pipeline observes:
a 1 s window tracks delta and theta power at r ~0.6-0.8); the BOLD
side is the ROI mean of the noise-free network signal plus ``n_draws`` draws of ROI-mean noise
with the simulator's in-band spectrum and the variance the CNR sets. The expected r is the mean
Pearson r over the draws (a Monte Carlo expectation over the BOLD noise; its standard error is
about ``0.06 / sqrt(n_draws)`` at 300 volumes).

Approximations, each small: the confounds are the masks' means of the simulated BOLD before the
0.75 mm smoothing the pipeline applies first, and the ROI mean is taken before smoothing.
"""

from __future__ import annotations

import numpy as np
from scipy import signal
from scipy.interpolate import CubicSpline

from lfpbold.constants import CLASSIC_BANDS
from lfpbold.plugins.bold import _clean_blocks, fd_screening
from lfpbold.plugins.hrf import RODENT_P, hrf_regressor, spm_hrf
from lfpbold.plugins.spectral import spectrogram_band_power
from lfpbold.simulate.lfp import BACKGROUND_RMS, COHERENCE_LENGTH_MM, band_fir
from lfpbold.simulate.signals import POWER_STEP, _bold_band_noise

__all__ = ["METHOD", "N_DRAWS", "IDEAL_RATE_HZ", "expected_after_preprocessing"]

#: How ``ground_truth.json``'s ``expected_after_preprocessing_r`` was obtained.
METHOD = (
    "computed: HRF-convolved 1 s spectrogram band power of the ideal (noise-free, artifact-free) combined LFP "
    "vs the ROI-mean noise-free network BOLD plus draws of in-band "
    "ROI noise at the scan's CNR, through the study's nuisance regression (motion, WM, ventricles, global; "
    "the scan's own confounds) and 0.01-0.1 Hz band-pass, with its FD screening; mean r over draws"
)
N_DRAWS = 64
#: Sampling rate (Hz) of the ideal LFP whose spectrogram gives the LFP side.
IDEAL_RATE_HZ = 1000.0


def _combined_weight(band: str, size) -> float:
    """RMS of the mean over an implant's contacts of a unit-variance band source, coherent between
    contacts as :class:`~lfpbold.simulate.lfp.LfpStream` makes it (channel combination's effect)."""
    depth = np.arange(size.n_channels) * size.contact_spacing_um / 1000.0
    cov = np.exp(-np.abs(depth[:, None] - depth[None, :]) / COHERENCE_LENGTH_MM[band])
    return float(np.sqrt(cov.mean()))


def _ideal_regressors(lat, latents, size, kernel, t_r, rng) -> np.ndarray:
    """HRF regressors (n_bands, n_volumes) of the study's spectrogram band power of an ideal LFP.

    The ideal LFP is the implant's combined signal without contact noise, mains, bad contacts or
    artifact, at :data:`IDEAL_RATE_HZ`: each band's oscillation (the simulator's FIR, its
    envelope) and the 1/f^2 background, weighted as the mean over contacts weights them. Its
    power goes through the study's default ``band_power`` (1 s spectrogram, 0.1 s step) and HRF.
    """
    fs = IDEAL_RATE_HZ
    n = int(round(size.duration_s * fs))
    t = np.arange(n) / fs
    env = CubicSpline(latents["power_times"], np.sqrt(np.stack([lat["power"][b] for b in CLASSIC_BANDS], axis=1)))(t)
    x = np.zeros(n)
    for i, (band, lim) in enumerate(CLASSIC_BANDS.items()):
        h = band_fir(lim, fs)
        y = signal.oaconvolve(rng.standard_normal(n + h.size - 1), h, mode="valid") / np.sqrt(np.sum(h**2))
        x += _combined_weight(band, size) * env[:, i] * y
    sos = signal.butter(1, 1.0, btype="lowpass", fs=fs, output="sos")
    bg = signal.sosfilt(sos, rng.standard_normal(n + int(20 * fs)))[int(20 * fs) :]
    x += _combined_weight("background", size) * BACKGROUND_RMS * bg / bg.std()
    power, times = spectrogram_band_power(
        x, fs, bands=list(CLASSIC_BANDS.values()), window_s=1.0, step_s=POWER_STEP, l_freq=0.1, h_freq=300.0
    )
    _, reg = hrf_regressor(power, times, latents["volume_onsets"], t_r, kernel=kernel)
    return reg


def expected_after_preprocessing(
    atlas, latents, motion, bold, *, state: str, cnr: float, scan_seed: int, n_draws: int = N_DRAWS
) -> dict:
    """``{region: {band: expected r}}`` for one scan after the study's BOLD preprocessing.

    Parameters
    ----------
    atlas : lfpbold.simulate.anatomy.Atlas
    latents : dict
        :func:`~lfpbold.simulate.signals.simulate_latents` of the scan.
    motion : ndarray (n_volumes, 6)
        The scan's realignment parameters (confounds and FD screening).
    bold : ndarray (X, Y, Z, n_volumes)
        The scan's simulated BOLD (:func:`~lfpbold.simulate.signals.simulate_bold`): the source of
        the WM, ventricle and global confounds.
    state : str
        Screening rule (awake scans are scrubbed; a sedated scan with any FD > 0.1 mm is dropped,
        which does not change its expected r).
    cnr : float
    scan_seed : int
        Seeds the noise draws (independent of the scan's own noise).
    n_draws : int, default :data:`N_DRAWS`

    Returns
    -------
    dict

    Examples
    --------
    >>> from lfpbold.simulate.anatomy import build_atlas
    >>> from lfpbold.simulate.signals import simulate_bold, simulate_latents, simulate_motion
    >>> atlas = build_atlas("small", ("M1",))
    >>> lat = simulate_latents(3, regions=("M1",))
    >>> mot = simulate_motion(3, "sedated", 300)
    >>> bold = simulate_bold(atlas, lat, mot, 3)
    >>> r = expected_after_preprocessing(atlas, lat, mot, bold, state="sedated", cnr=1.3, scan_seed=3)
    >>> sorted(r["M1"]), bool(0.2 < r["M1"]["gamma"] < 0.45)
    (['alpha', 'beta', 'delta', 'gamma', 'theta'], True)
    """
    size = atlas.size
    t_r = size.t_r
    n_vol = bold.shape[-1]
    flat = bold.reshape(-1, n_vol)

    def mean_of(mask):
        return flat[np.flatnonzero(mask.ravel())].mean(axis=0, dtype=float)

    confounds = np.column_stack([motion, mean_of(atlas.wm), mean_of(atlas.ventricles), mean_of(atlas.brain)])
    keep = fd_screening(motion, state=state)["keep"]
    kernel = spm_hrf(POWER_STEP, p=RODENT_P)
    rng = np.random.default_rng(np.random.SeedSequence([int(scan_seed), 7]))
    s0 = atlas.s0
    out = {}
    for region, lat in latents["regions"].items():
        roi = atlas.rois[region]
        w = roi / roi.sum()
        s0_roi = float((w * s0).sum())
        m_p = float((w * s0 * atlas.patterns[region]).sum()) / 100.0  # ROI-mean BOLD per unit of s
        signal = m_p * lat["s"]
        noise = (m_p / cnr) * _bold_band_noise(rng, (n_draws, n_vol), t_r)
        y = s0_roi + signal[:, None] + noise.T  # (n_vol, n_draws), in scanner units like the voxels
        cleaned = _clean_blocks(
            y.astype(np.float32),
            t_r=t_r,
            high_pass=0.01,
            low_pass=0.1,
            detrend=True,
            confounds=confounds,
            sample_mask=keep,
        ).astype(float)
        x = _ideal_regressors(lat, latents, size, kernel, t_r, rng)[:, keep]
        xc = x - x.mean(axis=1, keepdims=True)
        yc = cleaned - cleaned.mean(axis=0, keepdims=True)
        r = (xc @ yc) / np.outer(np.linalg.norm(xc, axis=1), np.linalg.norm(yc, axis=0))
        out[region] = {b: float(r[i].mean()) for i, b in enumerate(CLASSIC_BANDS)}
    return out
