"""Simulated simultaneous resting-state fMRI + LFP studies with a known ground truth.

:func:`simulate_study` writes a BIDS-style study folder (the layout ``lfpbold ingest`` reads) whose
BOLD, LFP, scanner triggers and head motion follow a generative model the analysis must recover.

Generative model (one scan, one implant region R; ``c`` = true temporal r, ``C`` = CNR)
---------------------------------------------------------------------------------------
* Latent drives on a 10 Hz grid covering the whole recording: ``z`` (seen by the LFP and the BOLD),
  ``w`` (LFP-side noise), ``q`` (the "electrophysiology-invisible" BOLD drive) and ``u`` (BOLD-side
  noise), all independent band-limited noise with one spectrum (flat 0.01-0.1 Hz, cosine tapers).
* Gamma (40-100 Hz) power ``P = P0 * (1 + depth * d)``, ``d = standardized(z + w / C)``.
  Lower bands carry ``-k_b * z`` plus their own fluctuations (``k`` in :data:`BAND_COUPLING`).
* BOLD drive: ``g = standardized(HRF * z)``, ``h = standardized(HRF * q)`` and
  ``e = standardized(HRF * u)`` at the volumes, computed exactly as
  :func:`lfpbold.plugins.hrf.hrf_regressor` does (SPM ``spm_hrf``, rodent ``p``, on the 10 Hz
  grid, averaged within each volume); local signal ``s = c * g + sqrt(1 - c**2) * h``.
* Voxel BOLD (percent of the voxel's baseline ``S0``): the network pattern of each region times ``s``,
  plus in-band noise calibrated so that in the ROI mean (the voxels around the electrode tip,
  what the pipeline correlates) the noise has SD = SD(signal) / C and the signal's spectrum: a
  spatially coherent local part ``e`` (the region's pattern near the tip) and an independent
  per-voxel part of SD ``Size.voxel_noise / C`` (capped at ``Size.voxel_noise_share`` of the ROI-mean
  noise variance). The per-voxel part sets how noisy each scan's correlation maps are; at paper
  size it is calibrated so that the CNR the study estimated from its maps (group-mean vs
  scan-wise spatial r, :func:`lfpbold.plugins.noise_ceiling.estimate_cnr`) comes out at ``C``, i.e.
  one CNR governs both the time courses and the maps, as the study's noise-ceiling inference
  assumes. Outside the 0.01-0.1 Hz band:
  white noise (above 0.15 Hz only), a global fluctuation that is zero near every implant (so that
  global-signal regression has something to remove without touching the ROIs), a small
  motion-correlated signal at the brain edge, and a linear scanner drift.
* The observed per-scan r between HRF-convolved gamma power and the ROI-mean BOLD is then
  ``c * C**2 / (1 + C**2)`` on average (0.59 at C = 1.3 gives 0.37, as the study reports); lower
  bands give ``-k_b * c * C / sqrt(1 + C**2)``. Spectral-estimation noise of a 1-s spectrogram
  lowers the observed gamma value by about 1-2 % (more for delta/theta, whose bands are narrow).

Geometry: coronal EPI slices; array axes (i, j, k) = (ML, DV, AP); world coordinates RAS-like in
mm from bregma (x = ML, right positive; y = AP; z = DV, from the skull surface). The brain is an
ellipsoid of rat size (ML +-8, AP -13.5..6.5, DV 0..-11 mm): 7,300 voxels in paper size
(the study's atlas has 6,157), 184 in small size.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import json
import math
import uuid
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hdmf.data_utils import GenericDataChunkIterator
from scipy import ndimage, signal
from scipy.interpolate import CubicSpline

from lfpbold import __version__
from lfpbold.constants import CLASSIC_BANDS, MOTION_COLUMNS, STATES
from lfpbold.plugins.bold import framewise_displacement, screen_motion
from lfpbold.plugins.hrf import RODENT_P, hrf_regressor, spm_hrf
from lfpbold.plugins.noise_ceiling import expected_trial_r

__all__ = [
    "simulate_study",
    "simulate_latents",
    "simulate_bold",
    "simulate_motion",
    "LfpStream",
    "implant_coordinates",
    "build_atlas",
    "grid_affine",
    "volume_onsets",
    "slice_onsets",
    "scan_seed_for",
    "expected_temporal_r",
    "gradient_artifact_waveform",
    "SIZES",
    "BAND_COUPLING",
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
BACKGROUND_RMS = 50e-6  # 1/f^2 background (corner 1 Hz), volts
CHANNEL_NOISE_RMS = 3e-6  # independent white noise per channel, volts
LINE_NOISE = {60.0: 3e-6, 120.0: 1.5e-6, 180.0: 1e-6}  # mains amplitude (V) per harmonic
ARTIFACT_TO_LFP_RMS = 150.0  # gradient artifact RMS / nominal LFP RMS (times the channel gain, 0.8-1.2)
DRIVE_BAND = (0.016, 0.07)  # Hz: flat part of the latent drives' spectrum (tapers 0.011-0.016, 0.07-0.08)
POWER_STEP = 0.1  # s: the 10 Hz grid of band power and latent drives
# Rotations to mm for the motion-correlated BOLD at the brain's edge: the simulated rat's head, not the
# FD rule's radius (plugins.bold), which is an analysis choice that must not change the data.
HEAD_RADIUS_MM = 5.0


@dataclass(frozen=True)
class Size:
    """Acquisition and geometry of one study size (see the layout contract's Sizes table)."""

    name: str
    grid: tuple  # (ML, DV, AP) voxels
    voxel_mm: tuple  # (dx, dy, dz) = (ML, DV, AP) mm
    origin_mm: tuple  # world (x=ML, y=AP, z=DV) of voxel (0, 0, 0)
    n_volumes: int
    n_slices: int
    t_r: float
    fs: float
    n_channels: int
    lead_s: float
    tail_s: float
    roi_radius_mm: float
    blob_sigma_mm: float
    readout_lines: int
    probe_model: str
    contact_spacing_um: float
    global_free_mm: tuple  # the global fluctuation is 0 within r0 of a tip, 1 beyond r1
    # In-band BOLD noise (see simulate_bold): independent per-voxel SD at CNR 1 (% signal; divided
    # by the CNR, and at most), the largest share of the ROI-mean noise variance it may take, and
    # the width (mm) of the spatially coherent local part around the tip (None: 2.5 blob widths).
    voxel_noise: float = 1.17
    voxel_noise_share: float = 1.0 / 3.0
    local_noise_mm: float | None = None

    @property
    def n_times(self) -> int:
        return int(round((self.lead_s + self.n_volumes * self.t_r + self.tail_s) * self.fs))

    @property
    def duration_s(self) -> float:
        return self.n_times / self.fs

    @property
    def slice_timing(self) -> list:
        return [round(j * self.t_r / self.n_slices, 6) for j in range(self.n_slices)]


SIZES = {
    "small": Size(
        name="small", grid=(32, 32, 10), voxel_mm=(1.0, 1.0, 2.0), origin_mm=(-15.5, -12.5, -20.0),
        n_volumes=300, n_slices=10, t_r=1.0, fs=2000.0, n_channels=4, lead_s=40.0, tail_s=5.0,
        roi_radius_mm=1.5, blob_sigma_mm=1.25, readout_lines=16, probe_model="MRCM4-sim",
        contact_spacing_um=200.0, global_free_mm=(2.25, 5.25),
    ),
    "paper": Size(
        name="paper", grid=(64, 64, 20), voxel_mm=(0.5, 0.5, 1.0), origin_mm=(-16.0, -12.5, -21.5),
        n_volumes=1200, n_slices=20, t_r=1.0, fs=24414.0, n_channels=16, lead_s=600.0, tail_s=5.0,
        roi_radius_mm=1.0, blob_sigma_mm=1.0, readout_lines=64, probe_model="MRCM16LP",
        contact_spacing_um=50.0, global_free_mm=(2.25, 5.25),
        # Calibrated so that the maps' CNR, as the study estimated it (group-mean vs scan-wise
        # spatial r), agrees with the temporal CNR: 1.4 / 1.3 (ACC / M1) from 9 scans at CNR 1.3.
        voxel_noise=1.56, voxel_noise_share=0.95, local_noise_mm=1.0,
    ),
}

# Brain ellipsoid (world mm): centre and semi-axes along (ML, AP, DV).
BRAIN_CENTRE = (0.0, -3.5, -5.5)
BRAIN_SEMI = (8.0, 10.0, 5.5)

# Implants of the study, and the distant blobs of each region's resting-state network
# ((AP, ML, DV) mm, weight, description). Other names: see :func:`implant_coordinates`.
KNOWN_IMPLANTS = {
    "ACC": {"hemisphere": "right", "ap": 1.5, "ml": 0.5, "dv": -2.8, "connected": [
        (1.5, -0.5, -2.8, 0.9, "left ACC (homotopic)"),
        (-5.5, 0.7, -1.8, 0.8, "right retrosplenial cortex"),
        (-5.5, -0.7, -1.8, 0.7, "left retrosplenial cortex"),
    ]},
    "M1": {"hemisphere": "left", "ap": 3.2, "ml": -3.0, "dv": -2.8, "connected": [
        (3.2, 3.0, -2.8, 0.9, "right M1 (homotopic)"),
        (-1.0, -4.5, -2.5, 0.7, "left S1"),
        (0.5, -3.5, -5.2, 0.6, "left caudate putamen"),
    ]},
    # Made up but plausible, for labs that implant elsewhere.
    "S1": {"hemisphere": "left", "ap": -1.0, "ml": -4.5, "dv": -2.5, "connected": [
        (-1.0, 4.5, -2.5, 0.9, "right S1 (homotopic)"), (3.2, -3.0, -2.8, 0.7, "left M1")]},
    "CPu": {"hemisphere": "left", "ap": 0.5, "ml": -3.5, "dv": -5.2, "connected": [
        (0.5, 3.5, -5.2, 0.9, "right CPu (homotopic)"), (3.2, -3.0, -2.8, 0.6, "left M1")]},
    "RSC": {"hemisphere": "right", "ap": -5.5, "ml": 0.7, "dv": -1.8, "connected": [
        (-5.5, -0.7, -1.8, 0.9, "left RSC (homotopic)"), (1.5, 0.5, -2.8, 0.7, "right ACC")]},
    "HPC": {"hemisphere": "left", "ap": -3.8, "ml": -2.5, "dv": -3.2, "connected": [
        (-3.8, 2.5, -3.2, 0.9, "right dorsal hippocampus (homotopic)"), (-5.5, -0.7, -1.8, 0.6, "left RSC")]},
    "V1": {"hemisphere": "left", "ap": -7.0, "ml": -3.5, "dv": -1.8, "connected": [
        (-7.0, 3.5, -1.8, 0.9, "right V1 (homotopic)"), (-3.8, -2.5, -3.2, 0.5, "left dorsal hippocampus")]},
}


def implant_coordinates(region: str) -> dict:
    """Implant tip (AP, ML, DV mm from bregma), hemisphere and network blobs of a region.

    ACC and M1 are the study's implants; S1, CPu, RSC, HPC and V1 have made-up plausible
    coordinates. Any other (alphanumeric) name gets a deterministic pseudo-random left-hemisphere
    site (AP -6..3, ML -4.5..-1.5, DV -5..-2 mm, from a CRC32 of the name) whose network is its
    homotopic site plus a blob 4 mm posterior.

    Examples
    --------
    >>> implant_coordinates("M1")["ml"]
    -3.0
    """
    if region in KNOWN_IMPLANTS:
        return dict(KNOWN_IMPLANTS[region])
    h = zlib.crc32(region.encode())
    frac = [((h >> s) & 0xFF) / 255.0 for s in (0, 8, 16)]
    ap = round(-6.0 + 9.0 * frac[0], 1)
    ml = round(-4.5 + 3.0 * frac[1], 1)
    dv = round(-5.0 + 3.0 * frac[2], 1)
    return {"hemisphere": "left", "ap": ap, "ml": ml, "dv": dv, "connected": [
        (ap, -ml, dv, 0.9, f"right {region} (homotopic)"),
        (ap - 4.0, ml, dv, 0.6, f"{region}, 4 mm posterior"),
    ]}


# --------------------------------------------------------------------------------------------
# Geometry and atlas


def grid_affine(size: Size) -> np.ndarray:
    """Voxel (i=ML, j=DV, k=AP) to world (x=ML, y=AP, z=DV) mm; coronal slices along k."""
    dx, dy, dz = size.voxel_mm
    ox, oy, oz = size.origin_mm
    return np.array([[dx, 0, 0, ox], [0, 0, dz, oy], [0, dy, 0, oz], [0, 0, 0, 1]], dtype=float)


def _world_coords(size: Size):
    i, j, k = np.meshgrid(*[np.arange(n) for n in size.grid], indexing="ij")
    aff = grid_affine(size)
    x = aff[0, 0] * i + aff[0, 3]
    y = aff[1, 2] * k + aff[1, 3]
    z = aff[2, 1] * j + aff[2, 3]
    return x, y, z  # ML, AP, DV


def _ellipsoid(x, y, z, centre, semi):
    (cx, cy, cz), (ax, ay, az) = centre, semi
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 + ((z - cz) / az) ** 2 <= 1.0


def _nonempty(mask, x, y, z, centre):
    """A mask that is empty at coarse resolution becomes the voxel nearest its centre."""
    if mask.any():
        return mask
    d = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2
    out = np.zeros_like(mask)
    out[np.unravel_index(np.argmin(d), d.shape)] = True
    return out


@dataclass
class Atlas:
    """Masks, network patterns and BOLD spatial profiles of one study (all on the BOLD grid)."""

    size: Size
    affine: np.ndarray
    brain: np.ndarray
    wm: np.ndarray
    ventricles: np.ndarray
    rois: dict
    patterns: dict
    local: dict  # spatial profile of each region's local (non-LFP) BOLD noise
    global_profile: np.ndarray
    edge: np.ndarray  # where head motion leaves a signal
    s0: np.ndarray  # baseline EPI intensity
    implants: dict = field(default_factory=dict)


def build_atlas(size: Size | str, regions, seed: int = 0) -> Atlas:
    """Brain, white-matter, ventricle and ROI masks and each region's true network pattern.

    Patterns are soft unions of Gaussian blobs (tip blob plus the region's connected blobs),
    in [0, 1], zero outside grey matter (brain minus white matter and ventricles) and zero in
    any other region's ROI, so ROI means never mix two regions' signals.
    """
    size = SIZES[size] if isinstance(size, str) else size
    x, y, z = _world_coords(size)
    brain = _ellipsoid(x, y, z, BRAIN_CENTRE, BRAIN_SEMI)
    dx, dy, dz = size.voxel_mm
    implants = {r: implant_coordinates(r) for r in regions}
    rois = {}
    for r, imp in implants.items():
        d = np.sqrt((x - imp["ml"]) ** 2 + (y - imp["ap"]) ** 2 + (z - imp["dv"]) ** 2)
        roi = (d <= size.roi_radius_mm + 1e-9) & brain
        if not roi.any():
            roi = np.zeros_like(brain)
            roi[np.unravel_index(np.argmin(np.where(brain, d, np.inf)), d.shape)] = True
        if not brain[roi].all() or not _ellipsoid(imp["ml"], imp["ap"], imp["dv"], BRAIN_CENTRE, BRAIN_SEMI):
            raise ValueError(f"implant {r!r} at AP {imp['ap']} ML {imp['ml']} DV {imp['dv']} lies outside the brain")
        rois[r] = roi
    names = list(rois)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            if (rois[names[a]] & rois[names[b]]).any():
                raise ValueError(
                    f"the ROIs of {names[a]!r} and {names[b]!r} overlap at this resolution; "
                    "choose regions whose tips are further apart"
                )
    any_roi = np.zeros_like(brain)
    for roi in rois.values():
        any_roi |= roi
    keep_away = ndimage.binary_dilation(any_roi, iterations=1)

    def struct(centre, semi):
        semi = (max(semi[0], dx * 0.75), max(semi[1], dz * 0.75), max(semi[2], dy * 0.75))
        m = _ellipsoid(x, y, z, centre, semi) & brain & ~keep_away
        return _nonempty(m, np.where(brain & ~keep_away, x, 1e3), y, z, centre)

    # External capsule-like white matter and lateral ventricles, bilateral.
    wm = struct((-4.2, -2.0, -6.0), (0.6, 2.5, 1.0)) | struct((4.2, -2.0, -6.0), (0.6, 2.5, 1.0))
    ventricles = struct((-1.6, -1.0, -4.2), (0.4, 1.5, 0.9)) | struct((1.6, -1.0, -4.2), (0.4, 1.5, 0.9))
    ventricles &= ~wm
    grey = brain & ~wm & ~ventricles

    sigma = size.blob_sigma_mm

    def blob(ml, ap, dv):
        return np.exp(-((x - ml) ** 2 + (y - ap) ** 2 + (z - dv) ** 2) / (2 * sigma**2))

    patterns, local = {}, {}
    for r, imp in implants.items():
        tip = blob(imp["ml"], imp["ap"], imp["dv"])
        miss = 1.0 - tip
        for ap, ml, dv, weight, _ in imp["connected"]:
            miss *= 1.0 - weight * blob(ml, ap, dv)
        pattern = (1.0 - miss) * grey
        # Local noise: the same profile near the tip, fading over size.local_noise_mm (default a few
        # blob widths), so that
        # spatial smoothing scales signal and local noise alike in the ROI.
        d2 = (x - imp["ml"]) ** 2 + (y - imp["ap"]) ** 2 + (z - imp["dv"]) ** 2
        width = size.local_noise_mm or 2.5 * sigma
        loc = pattern * np.exp(-d2 / (2 * width**2))
        for other, roi in rois.items():
            if other != r:
                pattern = np.where(roi, 0.0, pattern)
                loc = np.where(roi, 0.0, loc)
        patterns[r] = pattern.astype(np.float32)
        local[r] = loc
    r0, r1 = size.global_free_mm
    dmin = np.full(brain.shape, np.inf)
    for imp in implants.values():
        dmin = np.minimum(dmin, np.sqrt((x - imp["ml"]) ** 2 + (y - imp["ap"]) ** 2 + (z - imp["dv"]) ** 2))
    ramp = np.clip((dmin - r0) / (r1 - r0), 0.0, 1.0)
    global_profile = np.sin(ramp * np.pi / 2) ** 2 * brain
    edge = (brain & ~ndimage.binary_erosion(brain)) * global_profile
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    field_ = ndimage.gaussian_filter(rng.standard_normal(brain.shape), sigma=[g / 4 for g in size.grid])
    field_ /= field_[brain].std() if field_[brain].std() > 0 else 1.0
    s0 = np.where(brain, 1000.0 * (1.0 + 0.05 * field_), 20.0)
    s0 = np.where(ventricles, 1250.0, np.where(wm, 900.0, s0))
    return Atlas(size=size, affine=grid_affine(size), brain=brain, wm=wm, ventricles=ventricles, rois=rois,
                 patterns=patterns, local=local, global_profile=global_profile, edge=edge, s0=s0, implants=implants)


# --------------------------------------------------------------------------------------------
# Latent drives, band power and BOLD


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


def volume_onsets(size: Size) -> np.ndarray:
    """Volume trigger times (s), on LFP samples."""
    idx = np.round((size.lead_s + np.arange(size.n_volumes) * size.t_r) * size.fs)
    return idx / size.fs


def slice_onsets(size: Size) -> np.ndarray:
    """Slice trigger times (s), volume-major, on LFP samples."""
    t = size.lead_s + np.arange(size.n_volumes)[:, None] * size.t_r + np.asarray(size.slice_timing)[None, :]
    return np.round(t.ravel() * size.fs) / size.fs


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
        for (band, k), n_b in zip(BAND_COUPLING.items(), own):
            d_b = _standardize(-k * z / z.std() + math.sqrt(1.0 - k**2) * n_b)
            power[band] = BAND_RMS[band] ** 2 * np.maximum(1.0 + POWER_DEPTH * d_b, POWER_FLOOR)
        out["regions"][region] = {
            "z": z, "w": w, "gamma_drive": drive, "power": power,
            "g": g, "h": h, "e": e, "s": c * g + math.sqrt(max(0.0, 1.0 - c**2)) * h,
        }
    return out


def simulate_motion(scan_seed: int, state: str, n_volumes: int) -> np.ndarray:
    """Realignment parameters (n_volumes, 6): mm and radians, rounded as written to the TSV.

    Slow drift plus small jitter; awake scans add sudden head movements (a per-scan rate drawn
    log-normally, median 1.5 per minute), each a displacement that lasts one to several volumes.
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
                motion[onset:onset + dur] += jump
            else:  # step: it stays
                motion[onset:] += jump
    motion[:, :3] = np.round(motion[:, :3], 6)
    motion[:, 3:] = np.round(motion[:, 3:], 8)
    return motion


def simulate_bold(atlas: Atlas, latents: dict, motion: np.ndarray, scan_seed: int, *, cnr=1.3) -> np.ndarray:
    """The 4-D BOLD (float32, atlas grid) of one scan. See the module docstring for the model."""
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
    ramp = np.linspace(-0.5, 0.5, n_vol)  # scanner drift: linear, spatially smooth, 0.5 % per scan
    pct += 0.5 * np.outer(s0 / 1000.0, ramp)
    bold = np.empty((brain.size, n_vol), dtype=np.float32)
    outside = np.flatnonzero(~brain.ravel())
    for lo in range(0, outside.size, 8192):  # thermal noise outside the brain, in pieces to bound memory
        part = outside[lo:lo + 8192]
        bold[part] = atlas.s0.ravel()[part, None] + 5.0 * rng.standard_normal((part.size, n_vol), dtype=np.float32)
    bold[idx] = s0[:, None] * (1.0 + pct / 100.0)
    return bold.reshape(*brain.shape, n_vol)


# --------------------------------------------------------------------------------------------
# LFP


def gradient_artifact_waveform(size: Size) -> np.ndarray:
    """One slice acquisition's gradient artifact (unit RMS), in LFP samples.

    The induced voltage is the time derivative of an EPI slice's gradient waveform (slice-select
    trapezoid, rephaser, a train of ``readout_lines`` alternating readout lobes with
    phase-encode blips, spoiler), plus a little of the gradient itself (the "ramps"), computed
    at 8x the sampling rate and averaged down (the amplifier's anti-alias filter).
    """
    os_ = 8
    dur = size.t_r / size.n_slices
    n = int(np.floor(dur * size.fs)) - 2
    t = (np.arange(n * os_) + 0.5) / (size.fs * os_) / dur  # fraction of the slice duration
    g = np.zeros_like(t)

    def trap(t0, t1, a, ramp):
        up = np.clip((t - t0) / ramp, 0, 1)
        down = np.clip((t1 - t) / ramp, 0, 1)
        return a * np.minimum(up, down)

    g += trap(0.03, 0.12, 1.0, 0.012) + trap(0.125, 0.17, -0.6, 0.008)
    lines = size.readout_lines
    edges = np.linspace(0.2, 0.82, lines + 1)
    lobe = edges[1] - edges[0]
    for m in range(lines):
        g += trap(edges[m] + 0.02 * lobe, edges[m + 1] - 0.02 * lobe, 0.8 * (-1) ** m, 0.2 * lobe)
        g += trap(edges[m + 1] - 0.1 * lobe, edges[m + 1] + 0.1 * lobe, 0.08, 0.05 * lobe)
    g += trap(0.85, 0.95, 1.2, 0.015)
    art = np.gradient(g) * os_ * 20 + 0.5 * g
    art = art.reshape(n, os_).mean(1)
    taper = np.ones(n)
    k = max(2, n // 100)
    taper[:k] = taper[-k:][::-1] = np.sin(np.linspace(0, np.pi / 2, k)) ** 2
    art = (art - art.mean()) * taper
    return art / np.sqrt(np.mean(art**2))


def _impulse_variance(sos, n):
    imp = np.zeros(n)
    imp[0] = 1.0
    return float(np.sum(signal.sosfilt(sos, imp) ** 2))


class LfpStream:
    """Raw LFP of one scan (volts, float32, (n_times, n_channels)), generated in 1-s blocks.

    Reads must go forward (:meth:`read`); going back restarts the stream, so any read pattern
    returns the same samples. Channels are ordered implant by implant, contact 0 (the tip) first.
    Per implant: a common signal (1/f^2 background + band oscillations whose power follows
    ``latents`` + mains) seen by every contact with a small lag (0-3 samples) and gain, plus
    independent white noise per contact, a DC offset and, with ``artifact``, the MR gradient
    artifact locked to the slice triggers (one fixed waveform, +-1 sample onset jitter and
    +-2 % amplitude jitter per slice, a fixed gain per channel; only during the scan).
    """

    def __init__(self, latents: dict, size, scan_seed: int, *, artifact: bool):
        self.size = SIZES[size] if isinstance(size, str) else size
        self.latents = latents
        self.regions = list(latents["regions"])
        self.seed = int(scan_seed)
        self.artifact = bool(artifact)
        self.n_channels = self.size.n_channels * len(self.regions)
        self.n_times = self.size.n_times
        self.block = int(round(10 * self.size.fs))  # 10-s generation blocks (fixes the RNG draw sizes)
        fs = self.size.fs
        setup = np.random.default_rng(np.random.SeedSequence([self.seed, 4, 0]))
        self.lags = setup.integers(0, 4, self.n_channels)
        self.gains = setup.uniform(0.9, 1.1, self.n_channels)
        self.dc = setup.normal(0, 2e-4, self.n_channels)
        self.art_gain = setup.uniform(0.8, 1.2, self.n_channels) * np.where(setup.random(self.n_channels) < 0.5, -1, 1)
        self.sos = {b: signal.butter(3, lim, btype="bandpass", fs=fs, output="sos")
                    for b, lim in CLASSIC_BANDS.items()}
        self.sos["background"] = signal.butter(1, 1.0, btype="lowpass", fs=fs, output="sos")
        n_imp = int(20 * fs)
        self.scale = {b: 1.0 / math.sqrt(_impulse_variance(s, n_imp)) for b, s in self.sos.items()}
        times = latents["power_times"]
        self.env = {r: CubicSpline(times, np.sqrt(np.stack([lat["power"][b] for b in CLASSIC_BANDS], axis=1)))
                    for r, lat in latents["regions"].items()}
        self.nominal_rms = math.sqrt(sum(v**2 for v in BAND_RMS.values()) + BACKGROUND_RMS**2
                                     + CHANNEL_NOISE_RMS**2 + sum(a**2 / 2 for a in LINE_NOISE.values()))
        self.waveform = gradient_artifact_waveform(self.size)
        self.art_amp = ARTIFACT_TO_LFP_RMS * self.nominal_rms
        starts = np.round(slice_onsets(self.size) * fs).astype(np.int64)
        art_rng = np.random.default_rng(np.random.SeedSequence([self.seed, 5]))
        self.slice_starts = starts + art_rng.integers(-1, 2, starts.size)
        self.slice_amps = 1.0 + art_rng.uniform(-0.02, 0.02, starts.size)
        self._reset()

    def _reset(self):
        self._rng = np.random.default_rng(np.random.SeedSequence([self.seed, 4, 1]))
        self._zi = {r: {b: signal.sosfilt_zi(s) * 0.0 for b, s in self.sos.items()} for r in self.regions}
        self._tail = {r: np.zeros(4) for r in self.regions}
        self._pos = 0
        self._blocks = []  # (start, array)

    def _next_block(self) -> np.ndarray:
        size, fs = self.size, self.size.fs
        n0 = self._pos
        n = min(self.block, self.n_times - n0)
        t = (n0 + np.arange(n)) / fs
        out = np.empty((n, self.n_channels), dtype=np.float32)
        nch = size.n_channels
        mains = sum(a * np.sin(2 * np.pi * f0 * t) for f0, a in LINE_NOISE.items())
        for ri, r in enumerate(self.regions):
            white = self._rng.standard_normal((len(self.sos), n))
            env = self.env[r](t)
            common = mains.copy()
            for (b, sos), wn in zip(self.sos.items(), white):
                y, self._zi[r][b] = signal.sosfilt(sos, wn, zi=self._zi[r][b])
                y *= self.scale[b]
                if b == "background":
                    common += BACKGROUND_RMS * y
                else:
                    common += env[:, list(CLASSIC_BANDS).index(b)] * y
            ext = np.concatenate([self._tail[r], common])
            self._tail[r] = ext[-4:]
            noise = self._rng.standard_normal((n, nch), dtype=np.float32) * np.float32(CHANNEL_NOISE_RMS)
            for k in range(nch):
                ch = ri * nch + k
                lag = self.lags[ch]
                out[:, ch] = self.gains[ch] * ext[4 - lag: 4 - lag + n] + self.dc[ch]
            out[:, ri * nch:(ri + 1) * nch] += noise
        if self.artifact:
            self._add_artifact(out, n0)
        self._pos += n
        return out

    def _add_artifact(self, out, n0):
        L = self.waveform.size
        n1 = n0 + out.shape[0]
        first = np.searchsorted(self.slice_starts, n0 - L, side="right")
        last = np.searchsorted(self.slice_starts, n1, side="left")
        acc = np.zeros(out.shape[0])
        for s, a in zip(self.slice_starts[first:last], self.slice_amps[first:last]):
            lo, hi = max(s, n0), min(s + L, n1)
            if hi > lo:
                acc[lo - n0:hi - n0] += a * self.waveform[lo - s:hi - s]
        if acc.any():
            out += (acc[:, None] * (self.art_amp * self.art_gain)[None, :]).astype(np.float32)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``start:stop`` of all channels."""
        stop = min(stop, self.n_times)
        if self._blocks and start < self._blocks[0][0] or (not self._blocks and start < self._pos):
            self._reset()
        while self._pos < stop:
            self._blocks.append((self._pos, self._next_block()))
        parts = [arr[max(start - b0, 0): max(min(stop - b0, arr.shape[0]), 0)]
                 for b0, arr in self._blocks if b0 + arr.shape[0] > start and b0 < stop]
        self._blocks = [(b0, arr) for b0, arr in self._blocks if b0 + arr.shape[0] > stop]
        return np.concatenate(parts, axis=0) if parts else np.empty((0, self.n_channels), np.float32)


class _LfpIterator(GenericDataChunkIterator):
    """Hands :class:`LfpStream` buffers (10 s, all channels) to HDF5; chunks are 1 s x 1 channel."""

    def __init__(self, stream: LfpStream, **kwargs):
        self._stream = stream
        super().__init__(**kwargs)

    def _get_data(self, selection):
        return self._stream.read(selection[0].start, selection[0].stop)[:, selection[1]]

    def _get_maxshape(self):
        return (self._stream.n_times, self._stream.n_channels)

    def _get_dtype(self):
        return np.dtype("float32")


# --------------------------------------------------------------------------------------------
# Writers


def _write_json(path: Path, obj):
    path.write_text(json.dumps(obj, indent=2) + "\n")


def _write_tsv(path: Path, header, rows):
    lines = ["\t".join(header)] + ["\t".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def _fmt(x: float) -> str:
    return np.format_float_positional(float(x), unique=True, trim="-")


def _nifti(data, atlas: Atlas, *, t_r=None):
    import nibabel as nib

    img = nib.Nifti1Image(data, atlas.affine)
    hdr = img.header
    hdr.set_qform(atlas.affine, code=1)
    hdr.set_sform(atlas.affine, code=2)
    hdr.set_xyzt_units("mm", "sec")
    if t_r is not None:
        hdr.set_zooms(tuple(atlas.size.voxel_mm) + (float(t_r),))
        hdr.set_dim_info(freq=0, phase=1, slice=2)
        hdr.set_slice_duration(t_r / atlas.size.n_slices)
        hdr.set_slice_times(atlas.size.slice_timing)
    return img


def _write_nwb(path: Path, *, stream: LfpStream, atlas: Atlas, subject: str, session: str, state: str,
               run: int, start: _dt.datetime, weight_g: float, scan_seed: int, size: Size):
    from hdmf.backends.hdf5 import H5DataIO
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.device import Device, DeviceModel
    from pynwb.ecephys import ElectricalSeries
    from pynwb.event import EventsTable, TimestampVectorData
    from pynwb.file import Subject

    nwb = NWBFile(
        session_description=f"Simulated resting-state {state} scan, simultaneous LFP and fMRI (lfpbold simulate)",
        identifier=str(uuid.uuid5(uuid.NAMESPACE_URL,
                                  f"lfpbold-sim/{scan_seed}/sub-{subject}/ses-{session}/run-{run}")),
        session_start_time=start,
        file_create_date=[start],
        session_id=session,
        experiment_description="Simulated study after Tu, Cramer & Zhang (2024), eLife 13:RP95680.",
        lab="lfpbold simulator",
        institution="none (simulated)",
        subject=Subject(
            subject_id=subject, species="Rattus norvegicus", strain="Long-Evans", sex="M", age="P90D",
            weight=f"{weight_g / 1000:.3f} kg", description="Simulated adult male Long-Evans rat",
        ),
    )
    nch = size.n_channels
    model = DeviceModel(
        name=size.probe_model, manufacturer="NeuroNexus",
        description=(f"NeuroNexus {size.probe_model}: {nch}-channel MR-compatible silicon probe"
                     + (" (simulated reduction of the MRCM16LP)" if nch != 16 else "")),
    )
    nwb.add_device_model(model)
    for col, desc in [("hemisphere", "implanted hemisphere (right/left)"),
                      ("ap_mm", "implant tip AP from bregma, mm (anterior positive)"),
                      ("ml_mm", "implant tip ML from midline, mm (right positive)"),
                      ("dv_mm", "implant tip DV from the skull surface, mm (dorsal positive)"),
                      ("probe_electrode", "index of the contact on the probe (0 = at the tip)")]:
        nwb.add_electrode_column(name=col, description=desc)
    for region in stream.regions:
        imp = atlas.implants[region]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            dev = Device(
                name=f"probe-{region}", manufacturer="NeuroNexus", model=model,
                description=(f"NeuroNexus MRCM16LP 16-channel MR-compatible silicon probe" if nch == 16 else
                             f"NeuroNexus {size.probe_model} {nch}-channel MR-compatible silicon probe (simulated)"),
            )
        nwb.add_device(dev)
        group = nwb.create_electrode_group(
            name=region, location=region, device=dev,
            description=(f"{region} implant, {imp['hemisphere']} hemisphere, "
                         f"tip AP {imp['ap']} ML {imp['ml']} DV {imp['dv']} mm"),
        )
        for k in range(nch):
            nwb.add_electrode(
                x=float(imp["ap"]), y=float(imp["ml"]), z=float(imp["dv"]), location=region, group=group,
                rel_x=0.0, rel_y=float(k * size.contact_spacing_um), hemisphere=imp["hemisphere"],
                ap_mm=float(imp["ap"]), ml_mm=float(imp["ml"]), dv_mm=float(imp["dv"]), probe_electrode=k,
                reference="cerebellum",
            )
    region_all = nwb.create_electrode_table_region(list(range(stream.n_channels)), "all channels")
    chunk = (min(int(round(size.fs)), stream.n_times), 1)
    buffer = (min(10 * chunk[0], stream.n_times), stream.n_channels)
    data = H5DataIO(_LfpIterator(stream, chunk_shape=chunk, buffer_shape=buffer))
    nwb.add_acquisition(ElectricalSeries(
        name="ElectricalSeries", data=data, electrodes=region_all, rate=float(size.fs), starting_time=0.0,
        conversion=1.0, filtering="none (raw, unfiltered; TDT RZ2 style)",
        description="Raw LFP, volts; channels ordered implant by implant, contact 0 (tip) first",
    ))
    vols = volume_onsets(size)
    slices = slice_onsets(size)
    res = 1.0 / size.fs
    nwb.add_events_table(EventsTable(
        name="scanner_volumes",
        description="Scanner TTL triggers: one per EPI volume (onset), seconds on the ElectricalSeries clock",
        source_description="MR scanner TTL output recorded by the acquisition system",
        columns=[TimestampVectorData(name="timestamp", description="volume onset (s)", data=vols, resolution=res)],
    ))
    nwb.add_events_table(EventsTable(
        name="scanner_slices",
        description="Scanner TTL triggers: one per slice acquisition, seconds on the ElectricalSeries clock",
        source_description="MR scanner TTL output recorded by the acquisition system",
        columns=[TimestampVectorData(name="timestamp", description="slice onset (s)", data=slices, resolution=res)],
    ))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def _check_args(subjects, sessions, scans, regions, states, true_temporal_r, cnr, size):
    for name, v in [("subjects", subjects), ("sessions", sessions), ("scans", scans)]:
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer; got {v!r}")
    if isinstance(regions, str) or not regions:
        raise ValueError(f"regions must be a non-empty sequence of region names; got {regions!r}")
    if len(set(regions)) != len(regions) or not all(isinstance(r, str) and r.isalnum() for r in regions):
        raise ValueError(f"regions must be distinct alphanumeric labels (BIDS); got {list(regions)!r}")
    if isinstance(states, str) or not states or any(s not in STATES for s in states) or len(set(states)) != len(states):
        raise ValueError(f"states must be distinct values among {STATES}; got {states!r}")
    if not 0.0 <= true_temporal_r <= 1.0:
        raise ValueError(f"true_temporal_r must be in [0, 1]; got {true_temporal_r!r}")
    if not cnr > 0 or not math.isfinite(cnr):
        raise ValueError(f"cnr must be a positive finite number; got {cnr!r}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}; got {size!r}")


def _fd_rule() -> dict:
    """The FD screening the truth's ``excluded_expected`` follows: the plugins' defaults, the study's rule."""
    rule = {name: p.default for func in (framewise_displacement, screen_motion)
            for name, p in inspect.signature(func).parameters.items() if p.default is not p.empty}
    before, after = rule["neighbours"]
    return {"head_radius_mm": rule["radius_mm"], "threshold_mm": rule["threshold_mm"],
            "awake_max_scrubbed": rule["max_scrub_fraction"],
            "scrub_neighbours": before if before == after else [before, after]}


def scan_seed_for(seed: int, subject_index: int, state: str, session_index: int, run: int) -> int:
    """The seed of one scan, derived from the study seed and the scan's place in the study."""
    # The state's place in STATES is part of the seed: reordering STATES would change every study.
    ss = np.random.SeedSequence([int(seed), subject_index, STATES.index(state), session_index, run])
    return int(ss.generate_state(1, np.uint32)[0])


def simulate_study(out_dir, *, subjects=3, sessions=1, scans=2, regions=("ACC", "M1"), states=("sedated",),
                   true_temporal_r=0.59, cnr=1.3, seed=0, size="small", artifact=None, motion=True,
                   progress=None) -> Path:
    """Write a simulated simultaneous LFP + resting-state fMRI study with a known ground truth.

    Parameters
    ----------
    out_dir : path-like
        The study folder to create (must not exist or be empty).
    subjects : int, default 3
        Rats, labelled "01", "02", ...; every rat carries an implant in every region.
    sessions : int, default 1
        Sessions per state per rat ("sedated01", "awake01", ...).
    scans : int, default 2
        Runs per session (run-1, run-2, ...).
    regions : sequence of str, default ("ACC", "M1")
        Implant regions (see :func:`implant_coordinates`).
    states : sequence of {"sedated", "awake"}, default ("sedated",)
    true_temporal_r : float, default 0.59
        Correlation between the HRF-convolved gamma-power drive and the network's BOLD signal.
    cnr : float, default 1.3
        Contrast-to-noise ratio on both sides (LFP gamma power and ROI-mean BOLD), in 0.01-0.1 Hz.
    seed : int, default 0
        Everything (arrays, identifiers, dates) follows from it.
    size : {"small", "paper"}, default "small"
    artifact : bool or None
        MR gradient artifact in the LFP; None means on for "paper", off for "small".
    motion : bool, default True
        Realistic head motion (drift, jitter, awake spikes); False writes zero motion.
    progress : callable(str), optional
        Receives status lines.

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Examples
    --------
    >>> import tempfile, json, pathlib
    >>> d = simulate_study(pathlib.Path(tempfile.mkdtemp()) / "study", subjects=1, scans=1, regions=("M1",))
    >>> round(json.loads((d / "ground_truth.json").read_text())["expected_observed_temporal_r"], 3)
    0.371
    """
    _check_args(subjects, sessions, scans, regions, states, true_temporal_r, cnr, size)
    regions = tuple(regions)
    states = tuple(states)
    sz = SIZES[size]
    artifact = (size == "paper") if artifact is None else bool(artifact)
    say = progress or (lambda msg: None)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; simulate_study writes a new study folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / "atlas").mkdir()

    atlas = build_atlas(sz, regions, seed)
    import nibabel as nib

    u8 = lambda m: m.astype(np.uint8)  # noqa: E731
    nib.save(_nifti(u8(atlas.brain), atlas), out / "atlas" / "atlas_desc-brain_mask.nii.gz")
    nib.save(_nifti(u8(atlas.wm), atlas), out / "atlas" / "atlas_desc-wm_mask.nii.gz")
    nib.save(_nifti(u8(atlas.ventricles), atlas), out / "atlas" / "atlas_desc-ventricles_mask.nii.gz")
    for r in regions:
        nib.save(_nifti(u8(atlas.rois[r]), atlas), out / "atlas" / f"atlas_desc-{r}_roi.nii.gz")
        nib.save(_nifti(atlas.patterns[r], atlas), out / "atlas" / f"truth_desc-{r}_network.nii.gz")
    _write_json(out / "atlas" / "atlas.json", {
        "Name": "lfpbold simulated rat atlas",
        "VoxelSize": list(sz.voxel_mm),
        "Space": "simulated rat stereotaxic: x = ML (right +), y = AP from bregma (anterior +), "
                 "z = DV from the skull surface (dorsal +), mm; coronal slices along the third array axis",
        "BrainVoxels": int(atlas.brain.sum()),
    })
    _write_json(out / "dataset_description.json", {
        "Name": f"lfpbold simulated study (seed {seed}, {size})", "BIDSVersion": "1.9.0", "DatasetType": "raw",
        "GeneratedBy": [{"Name": "lfpbold simulate", "Version": __version__}],
    })
    sidecar = {"TaskName": "rest", "RepetitionTime": sz.t_r, "SliceTiming": sz.slice_timing, "EchoTime": 0.015,
               "MagneticFieldStrength": 7, "SliceEncodingDirection": "k"}
    _write_json(out / "task-rest_bold.json", sidecar)
    meta_rng = np.random.default_rng(np.random.SeedSequence([int(seed), 9]))
    weights = {f"{s:02d}": round(float(meta_rng.uniform(330, 420)), 1) for s in range(1, subjects + 1)}
    _write_tsv(out / "participants.tsv", ["participant_id", "species", "strain", "sex", "age", "weight_g"],
               [[f"sub-{s}", "Rattus norvegicus", "Long-Evans", "M", "P90D", w] for s, w in weights.items()])

    implants_truth = {r: {"region": r, "true_temporal_r": float(true_temporal_r), "cnr": float(cnr),
                          "expected_observed_temporal_r": expected_temporal_r(true_temporal_r, cnr),
                          "expected_observed_temporal_r_by_band": {
                              b: expected_temporal_r(true_temporal_r, cnr, b) for b in CLASSIC_BANDS},
                          "network_pattern": f"atlas/truth_desc-{r}_network.nii.gz",
                          "roi": f"atlas/atlas_desc-{r}_roi.nii.gz", "roi_voxels": int(atlas.rois[r].sum()),
                          "hemisphere": atlas.implants[r]["hemisphere"], "ap_mm": atlas.implants[r]["ap"],
                          "ml_mm": atlas.implants[r]["ml"], "dv_mm": atlas.implants[r]["dv"],
                          "network_blobs": [{"ap_mm": b[0], "ml_mm": b[1], "dv_mm": b[2], "weight": b[3],
                                             "description": b[4]} for b in atlas.implants[r]["connected"]]}
                      for r in regions}
    truth_scans = []
    base_date = _dt.datetime(2024, 3, 1, 10, 0, 0, tzinfo=_dt.timezone.utc)
    n_total = subjects * len(states) * sessions * scans
    done = 0
    for si in range(1, subjects + 1):
        sub = f"{si:02d}"
        sub_dir = out / f"sub-{sub}"
        sub_dir.mkdir()
        ses_rows = []
        order = 0
        for state in states:
            for se in range(1, sessions + 1):
                ses = f"{state}{se:02d}"
                start = base_date + _dt.timedelta(days=(si - 1) + 7 * order)
                order += 1
                ses_rows.append([f"ses-{ses}", start.strftime("%Y-%m-%dT%H:%M:%S"), state])
                func = sub_dir / f"ses-{ses}" / "func"
                ecephys = sub_dir / f"ses-{ses}" / "ecephys"
                func.mkdir(parents=True)
                ecephys.mkdir()
                for run in range(1, scans + 1):
                    stem = f"sub-{sub}_ses-{ses}_task-rest_run-{run}"
                    sseed = scan_seed_for(seed, si, state, se, run)
                    say(f"[{done + 1}/{n_total}] {stem}: BOLD")
                    lat = simulate_latents(sseed, size=sz, regions=regions, true_temporal_r=true_temporal_r, cnr=cnr)
                    mot = simulate_motion(sseed, state, sz.n_volumes) if motion else np.zeros((sz.n_volumes, 6))
                    bold = simulate_bold(atlas, lat, mot, sseed, cnr=cnr)
                    nib.save(_nifti(bold, atlas, t_r=sz.t_r), func / f"{stem}_bold.nii.gz")
                    del bold
                    _write_json(func / f"{stem}_bold.json", {"RepetitionTime": sz.t_r, "SliceTiming": sz.slice_timing})
                    _write_tsv(func / f"{stem}_motion.tsv", list(MOTION_COLUMNS),
                               [[_fmt(v) for v in row] for row in mot])
                    say(f"[{done + 1}/{n_total}] {stem}: LFP ({sz.n_times} samples x "
                        f"{sz.n_channels * len(regions)} channels{', with gradient artifact' if artifact else ''})")
                    stream = LfpStream(lat, sz, sseed, artifact=artifact)
                    _write_nwb(ecephys / f"{stem}_ecephys.nwb", stream=stream, atlas=atlas, subject=sub, session=ses,
                               state=state, run=run, start=start, weight_g=weights[sub], scan_seed=sseed, size=sz)
                    fd = framewise_displacement(mot)
                    truth_scans.append({
                        "subject": sub, "session": ses, "run": run, "state": state, "seed": sseed,
                        "implants": [implants_truth[r] for r in regions],
                        "artifact": artifact, "excluded_expected": screen_motion(fd, state=state)["excluded"],
                        "max_fd_mm": float(fd.max()), "n_volumes": sz.n_volumes,
                        "bold": f"sub-{sub}/ses-{ses}/func/{stem}_bold.nii.gz",
                        "ecephys": f"sub-{sub}/ses-{ses}/ecephys/{stem}_ecephys.nwb",
                    })
                    done += 1
        _write_tsv(sub_dir / f"sub-{sub}_sessions.tsv", ["session_id", "acq_time", "state"], ses_rows)

    _write_json(out / "ground_truth.json", {
        "simulator": {"version": __version__, "seed": int(seed), "size": size, "options": {
            "subjects": subjects, "sessions": sessions, "scans": scans, "regions": list(regions),
            "states": list(states), "true_temporal_r": float(true_temporal_r), "cnr": float(cnr),
            "artifact": artifact, "motion": bool(motion)}},
        "cnr": float(cnr), "true_temporal_r": float(true_temporal_r),
        "expected_observed_temporal_r": expected_temporal_r(true_temporal_r, cnr),
        "expected_observed_temporal_r_by_band": {b: expected_temporal_r(true_temporal_r, cnr, b)
                                                 for b in CLASSIC_BANDS},
        "model": {
            "drive_band_hz": list(DRIVE_BAND), "power_step_s": POWER_STEP, "hrf": "spm_hrf", "hrf_p": list(RODENT_P),
            "band_coupling": BAND_COUPLING, "power_depth": POWER_DEPTH, "band_rms_v": BAND_RMS,
            "lfp": {"fs": sz.fs, "channels_per_implant": sz.n_channels, "lead_s": sz.lead_s, "tail_s": sz.tail_s,
                    "n_times": sz.n_times},
            "artifact_rms_over_lfp_rms": ARTIFACT_TO_LFP_RMS if artifact else 0.0,
            "fd": _fd_rule(),
            "brain_voxels": int(atlas.brain.sum()),
        },
        "scans": truth_scans,
    })
    say(f"wrote {n_total} scans to {out}")
    return out
