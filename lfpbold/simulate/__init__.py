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
  noise variance). The per-voxel part sets how noisy each scan's correlation maps are; at each
  size it is calibrated (``benchmarks/cnr_check.py``) so that the CNR the study estimated from its maps (group-mean vs
  scan-wise spatial r, :func:`lfpbold.plugins.noise_ceiling.estimate_cnr`) comes out at ``C``, i.e.
  one CNR governs both the time courses and the maps, as the study's noise-ceiling inference
  assumes. Outside the 0.01-0.1 Hz band:
  white noise (above 0.15 Hz only), a global fluctuation that is zero near every implant (so that
  global-signal regression has something to remove without touching the ROIs), a small
  motion-correlated signal at the brain edge, and a linear scanner drift.
* The observed per-scan r between HRF-convolved gamma power and the ROI-mean BOLD is then
  ``c * C**2 / (1 + C**2)`` on average (0.59 at C = 1.3 gives 0.37, as the study reports); lower
  bands give ``-k_b * c * C / sqrt(1 + C**2)`` (the raw attenuation formula). What the study
  observes is lower: its nuisance regression (each regressor costs the BOLD a degree of freedom) and the 1 s
  spectrogram's estimation noise (1-2 % for gamma; delta/theta power is tracked at r ~0.6-0.8,
  their bands being narrow). :mod:`~lfpbold.simulate.expected` computes that honest expected
  value per scan, implant and band (``expected_after_preprocessing_r`` in ``ground_truth.json``).
* Band oscillations are band-limited noise from sharp FIR band-passes whose transitions lie inside
  each band (:func:`~lfpbold.simulate.lfp.band_fir`), so bands do not leak into one another.

Geometry: coronal EPI slices; array axes (i, j, k) = (ML, DV, AP); world coordinates RAS-like in
mm from bregma (x = ML, right positive; y = AP; z = DV, from the skull surface). The brain is an
ellipsoid of rat size (ML +-8, AP -13.5..6.5, DV 0..-11 mm): 7,300 voxels in paper size
(the study's atlas has 6,157), 936 in small size.

Modules
-------
* :mod:`~lfpbold.simulate.sizes`: the "small" and "paper" acquisitions and their calibration.
* :mod:`~lfpbold.simulate.anatomy`: implant coordinates, grid geometry and the atlas.
* :mod:`~lfpbold.simulate.signals`: latent drives and band power, head motion, BOLD, scanner timing.
* :mod:`~lfpbold.simulate.artifacts`: the MR gradient artifact in the LFP.
* :mod:`~lfpbold.simulate.lfp`: :class:`LfpStream`, the raw LFP generated block by block.
* :mod:`~lfpbold.simulate.writers`: NIfTI, NWB, TSV and JSON files.
* :mod:`~lfpbold.simulate.study`: :func:`simulate_study`, scan seeds and the ground truth.
"""

from __future__ import annotations

from lfpbold.simulate.anatomy import build_atlas, grid_affine, implant_coordinates
from lfpbold.simulate.artifacts import gradient_artifact_waveform
from lfpbold.simulate.lfp import LfpStream
from lfpbold.simulate.signals import (
    BAND_COUPLING,
    expected_temporal_r,
    simulate_bold,
    simulate_latents,
    simulate_motion,
    slice_onsets,
    volume_onsets,
)
from lfpbold.simulate.sizes import SIZES
from lfpbold.simulate.study import scan_seed_for, simulate_study

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
