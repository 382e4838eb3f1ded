"""BOLD preprocessing: framewise-displacement screening and the study's nuisance cleaning.

Step ``bold_preprocessing``; every method takes realigned 4-D BOLD and returns brain-voxel time series.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from nilearn.image import get_data, smooth_img
from nilearn.signal import clean

from ._validation import (
    check_array,
    check_filter_band,
    check_finite,
    check_mask,
    check_motion,
    check_sample_mask,
    check_state,
    check_t_r,
)

__all__ = ["framewise_displacement", "screen_motion", "fd_screening", "bandpass_only", "preprocess_bold"]

#: Time points smoothed at once. Smoothing acts on space only, so doing it a block of volumes at
#: a time gives the same result while the smoothed copy never holds the whole 4-D array.
_SMOOTH_BLOCK = 64
#: Voxels cleaned per nilearn.signal.clean call. Cleaning is voxel-wise, so blocks give the same
#: result; they bound clean's float64 temporaries (its scrubbing spline is ~4x the input).
_CLEAN_BLOCK = 2048


def framewise_displacement(motion, *, radius_mm: float = 5.0) -> np.ndarray:
    """Framewise displacement (Power et al. 2012) from realignment parameters.

    FD of volume *i* is the sum of the absolute backward differences of the six rigid-body
    parameters, with rotations turned into millimetres as the arc length they sweep on a
    sphere of ``radius_mm``.

    Parameters
    ----------
    motion : array-like of shape (n_volumes, 6)
        Translations x, y, z in mm, then rotations about x, y, z in radians (SPM's ``rp_*.txt``
        order and units).
    radius_mm : float, default 5.0
        Radius of the sphere for rotations. Power et al. use 50 mm, the distance from the
        centre of a human head to the cortex; the rat brain is about 20 x 15 x 10 mm, so its
        cortex lies about 5 mm from the centre. With 50 mm a rat's rotations would count ten
        times too much and the study's 0.1 mm threshold would scrub nearly everything.

    Returns
    -------
    fd : ndarray of shape (n_volumes,)
        Framewise displacement in mm; ``fd[0] = 0``.

    References
    ----------
    Power et al. (2012) NeuroImage 59:2142. Tu, Cramer & Zhang (2024) for the 0.1 mm threshold.

    Examples
    --------
    >>> motion = np.zeros((3, 6))
    >>> motion[1, 0] = 0.05          # 0.05 mm shift along x
    >>> motion[2, 3] = 0.01          # 0.01 rad about x: 0.05 mm on a 5 mm sphere
    >>> framewise_displacement(motion).round(3).tolist()
    [0.0, 0.05, 0.1]
    """
    motion = check_motion(motion)
    if not radius_mm > 0:
        raise ValueError(f"radius_mm must be positive; got {radius_mm!r}")
    delta = np.abs(np.diff(motion, axis=0))
    fd = delta[:, :3].sum(axis=1) + radius_mm * delta[:, 3:].sum(axis=1)
    return np.concatenate([[0.0], fd])


def screen_motion(
    fd,
    *,
    state: str,
    threshold_mm: float = 0.1,
    max_scrub_fraction: float = 0.25,
    neighbours: tuple[int, int] = (1, 1),
) -> dict:
    """Apply the study's motion rules to a scan: scrub (awake) or exclude (sedated).

    - ``"awake"``: volumes with FD above ``threshold_mm`` are scrubbed together with
      ``neighbours[0]`` volumes before and ``neighbours[1]`` after each; the scan is excluded
      when more than ``max_scrub_fraction`` of its volumes are scrubbed.
    - ``"sedated"``: the scan is excluded if any volume has FD above ``threshold_mm``; otherwise
      every volume is kept (sedated scans are never scrubbed).

    Parameters
    ----------
    fd : array-like of shape (n_volumes,)
        Framewise displacement in mm (:func:`framewise_displacement`).
    state : {"awake", "sedated"}
        The animal's state during the scan.
    threshold_mm : float, default 0.1
    max_scrub_fraction : float, default 0.25
        Awake scans only.
    neighbours : (int, int), default (1, 1)
        Volumes scrubbed before and after each high-motion volume (awake scans only).

    Returns
    -------
    result : dict
        ``keep`` (bool array, True = volume kept; for an excluded awake scan it still shows
        which volumes would have been scrubbed), ``excluded`` (bool), ``reason`` (plain English,
        ``""`` when the scan is kept), ``n_scrubbed`` and ``fraction_scrubbed``.

    References
    ----------
    Tu, Cramer & Zhang (2024); Power et al. (2012) for scrubbing.

    Examples
    --------
    >>> fd = np.array([0, 0.02, 0.23, 0.03, 0.01, 0.02, 0.02, 0.01])
    >>> screen_motion(fd, state="awake")["keep"].astype(int).tolist()
    [1, 0, 0, 0, 1, 1, 1, 1]
    >>> screen_motion(fd, state="sedated")["reason"]
    '1 volume with FD > 0.1 mm (max 0.23 mm); sedated scans allow none'
    """
    fd = check_array(
        fd, "fd", ndim=1, dtype=float, non_empty=True, expected="a 1-D framewise displacement array (n_volumes,)"
    )
    check_finite(fd, "Framewise displacement")
    state_key = check_state(state)
    if not threshold_mm > 0:
        raise ValueError(f"threshold_mm must be positive; got {threshold_mm!r}")
    if not 0 <= max_scrub_fraction <= 1:
        raise ValueError(f"max_scrub_fraction must lie in [0, 1]; got {max_scrub_fraction!r}")
    before, after = (int(n) for n in neighbours)
    if before < 0 or after < 0:
        raise ValueError(f"neighbours must be two non-negative counts (before, after); got {neighbours!r}")

    n = fd.size
    high = fd > threshold_mm
    n_high = int(high.sum())
    max_fd = float(fd.max())
    plural = "volume" if n_high == 1 else "volumes"
    if state_key == "sedated":
        excluded = n_high > 0
        reason = (
            f"{n_high} {plural} with FD > {threshold_mm:g} mm (max {max_fd:.2f} mm); sedated scans allow none"
            if excluded
            else ""
        )
        return {
            "keep": np.ones(n, dtype=bool),
            "excluded": excluded,
            "reason": reason,
            "n_scrubbed": 0,
            "fraction_scrubbed": 0.0,
        }

    keep = np.ones(n, dtype=bool)
    for i in np.flatnonzero(high):
        keep[max(i - before, 0) : i + after + 1] = False
    n_scrubbed = int(n - keep.sum())
    fraction = n_scrubbed / n
    excluded = fraction > max_scrub_fraction
    reason = (
        f"{n_scrubbed} of {n} volumes scrubbed ({100 * fraction:.1f}%): {n_high} {plural} with "
        f"FD > {threshold_mm:g} mm (max {max_fd:.2f} mm) plus {before} before and {after} after each; "
        f"awake scans allow at most {100 * max_scrub_fraction:g}%"
        if excluded
        else ""
    )
    return {
        "keep": keep,
        "excluded": bool(excluded),
        "reason": reason,
        "n_scrubbed": n_scrubbed,
        "fraction_scrubbed": float(fraction),
    }


def fd_screening(
    motion,
    *,
    state: str,
    radius_mm: float = 5.0,
    threshold_mm: float = 0.1,
    max_scrub_fraction: float = 0.25,
    neighbours: tuple[int, int] = (1, 1),
) -> dict:
    """The study's motion screening: framewise displacement, then scrub (awake) or exclude (sedated).

    Step ``motion_screening``: :func:`framewise_displacement` of the realignment parameters, then
    :func:`screen_motion`'s rules.

    Parameters
    ----------
    motion : array-like of shape (n_volumes, 6)
        Translations in mm, then rotations in radians.
    state : {"awake", "sedated"}
    radius_mm, threshold_mm, max_scrub_fraction, neighbours
        As in :func:`framewise_displacement` and :func:`screen_motion` (the study's values by default).

    Returns
    -------
    result : dict
        ``fd`` (n_volumes,) mm, and :func:`screen_motion`'s ``keep``, ``excluded``, ``reason``,
        ``n_scrubbed`` and ``fraction_scrubbed``.

    Examples
    --------
    >>> motion = np.zeros((6, 6))
    >>> motion[3:, 0] = 0.2          # the head moves 0.2 mm between volumes 2 and 3
    >>> out = fd_screening(motion, state="awake")
    >>> out["fd"].round(2).tolist(), out["keep"].astype(int).tolist()
    ([0.0, 0.0, 0.0, 0.2, 0.0, 0.0], [1, 1, 0, 0, 0, 1])
    >>> fd_screening(motion, state="sedated")["excluded"]
    True
    """
    fd = framewise_displacement(motion, radius_mm=radius_mm)
    verdict = screen_motion(
        fd, state=state, threshold_mm=threshold_mm, max_scrub_fraction=max_scrub_fraction, neighbours=tuple(neighbours)
    )
    return {"fd": fd, **verdict}


# --------------------------------------------------------------------------------------------
# Input checks shared by the preprocessing methods


def _check_bold(bold) -> np.ndarray:
    bold = check_array(bold, "BOLD", ndim=4, expected="a 4-D BOLD array (X, Y, Z, T)")
    if bold.shape[-1] < 3:
        raise ValueError(f"Expected at least 3 volumes in the BOLD array; got shape {bold.shape}")
    return bold


def _clean_blocks(signals, *, t_r, high_pass, low_pass, detrend, confounds=None, sample_mask=None):
    """nilearn.signal.clean on blocks of voxels; returns float32 (n_kept, n_voxels)."""
    n_kept = signals.shape[0] if sample_mask is None else int(sample_mask.sum())
    out = np.empty((n_kept, signals.shape[1]), dtype=np.float32)
    for start in range(0, signals.shape[1], _CLEAN_BLOCK):
        cols = slice(start, start + _CLEAN_BLOCK)
        out[:, cols] = clean(
            signals[:, cols],
            detrend=detrend,
            standardize=None,
            confounds=confounds,
            sample_mask=sample_mask,
            filter="butterworth" if (high_pass or low_pass) else False,
            low_pass=low_pass,
            high_pass=high_pass,
            t_r=t_r,
            # filter the block at once rather than voxel by voxel (3x faster; block-sized temporaries)
            butterworth__copy=True,
        )
    return out


# --------------------------------------------------------------------------------------------
# Methods of step ``bold_preprocessing``


def bandpass_only(
    bold,
    *,
    t_r: float,
    brain_mask,
    high_pass: float | None = 0.01,
    low_pass: float | None = 0.1,
    detrend: bool = True,
    sample_mask=None,
    **ignored,
) -> np.ndarray:
    """Linear detrend and Butterworth band-pass of brain voxels; nothing else.

    A minimal alternative to :func:`preprocess_bold` (no smoothing, no nuisance regression),
    with the same call signature so the schema can call either by name.

    Parameters
    ----------
    bold : ndarray of shape (X, Y, Z, T)
        Realigned BOLD, float32 preferred (kept float32 throughout).
    t_r : float
        Repetition time in seconds.
    brain_mask : ndarray of shape (X, Y, Z), bool
        Voxels to return.
    high_pass, low_pass : float or None, default 0.01 and 0.1
        Band edges in Hz (None disables that edge).
    detrend : bool, default True
        Remove a linear trend first.
    sample_mask : ndarray of shape (T,), bool, optional
        True = keep. Dropped volumes are interpolated before filtering and removed after,
        as :func:`nilearn.signal.clean` does.
    **ignored
        ``affine``, ``motion``, ``wm_mask``, ``ventricle_mask`` and other arguments of the
        shared signature; not used.

    Returns
    -------
    cleaned : ndarray of shape (n_kept_volumes, n_brain_voxels), float32
        Voxels in ``bold[brain_mask]`` order.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> bold = rng.standard_normal((4, 4, 2, 100)).astype(np.float32)
    >>> mask = np.zeros((4, 4, 2), bool); mask[1:3, 1:3] = True
    >>> bandpass_only(bold, t_r=1.0, brain_mask=mask).shape
    (100, 8)
    """
    bold = _check_bold(bold)
    brain_mask = check_mask(brain_mask, bold.shape[:3], "brain_mask")
    t_r = check_t_r(t_r)
    check_filter_band(high_pass, low_pass, t_r)
    sample_mask = check_sample_mask(sample_mask, bold.shape[-1])
    signals = bold[brain_mask].astype(np.float32, copy=False).T
    check_finite(signals, "BOLD", axis=0, unit="brain voxels")
    return _clean_blocks(
        signals, t_r=t_r, high_pass=high_pass, low_pass=low_pass, detrend=detrend, sample_mask=sample_mask
    )


def preprocess_bold(
    bold,
    *,
    t_r: float,
    brain_mask,
    affine,
    motion,
    wm_mask,
    ventricle_mask,
    sample_mask=None,
    fwhm: float | None = 0.75,
    high_pass: float | None = 0.01,
    low_pass: float | None = 0.1,
    global_signal: bool = True,
    detrend: bool = True,
) -> np.ndarray:
    """The study's BOLD preprocessing after registration and motion correction.

    The data arrive already realigned (motion-corrected) and co-registered to the atlas;
    ``motion`` holds the realignment parameters that produced them. This function then
    (1) smooths each volume with a Gaussian kernel of ``fwhm`` mm, and (2) in a single
    :func:`nilearn.signal.clean` call per block of voxels, linearly detrends, band-passes and
    regresses out, voxel by voxel, the six motion parameters and the mean white-matter,
    ventricle and (optionally) global brain signals. As in nilearn the confounds are filtered
    with the same band-pass so filtering and regression stay orthogonal (Lindquist et al.
    2019), and volumes dropped by ``sample_mask`` are interpolated before filtering and left
    out of the regression.

    The nuisance signals are means over their masks of the *smoothed* data, i.e. of the data
    they are regressed from, following the study's order (smoothing, then regression).

    Parameters
    ----------
    bold : ndarray of shape (X, Y, Z, T)
        Realigned BOLD in atlas space, float32 preferred. Not modified; no float64 copy of
        the 4-D array is made (smoothing runs on blocks of volumes). NaNs (e.g. SPM's outside
        the field of view) are set to zero before smoothing, as nilearn does.
    t_r : float
        Repetition time in seconds (the study: 1 s).
    brain_mask : ndarray of shape (X, Y, Z), bool
        Brain voxels: the voxels returned, and the mask of the global signal.
    affine : ndarray of shape (4, 4)
        Voxel-to-mm affine of the BOLD array; sets the smoothing kernel in voxels.
    motion : ndarray of shape (T, 6)
        Realignment parameters (translations mm, rotations rad).
    wm_mask, ventricle_mask : ndarray of shape (X, Y, Z), bool
        White-matter and ventricle masks for the nuisance signals.
    sample_mask : ndarray of shape (T,), bool, optional
        True = keep (e.g. ``screen_motion(...)["keep"]``).
    fwhm : float or None, default 0.75
        Smoothing kernel FWHM in mm; None or 0 skips smoothing.
    high_pass, low_pass : float or None, default 0.01 and 0.1
        Band edges in Hz.
    global_signal : bool, default True
        Regress the global (mean brain) signal too (the study's default; switchable).
    detrend : bool, default True
        Remove linear trends from data and confounds first.

    Returns
    -------
    cleaned : ndarray of shape (n_kept_volumes, n_brain_voxels), float32
        Voxels in ``bold[brain_mask]`` order. As with nilearn, each series keeps the small mean
        the band-pass leaves (the demeaned confounds carry no intercept); correlations ignore it.

    References
    ----------
    Tu, Cramer & Zhang (2024) eLife 13:RP95680, Methods. Lindquist et al. (2019) Hum Brain
    Mapp 40:2358 on ordering filtering and nuisance regression.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> bold = rng.standard_normal((6, 6, 3, 80)).astype(np.float32)
    >>> brain = np.zeros((6, 6, 3), bool); brain[1:5, 1:5] = True
    >>> wm = np.zeros_like(brain); wm[1, 1:5] = True
    >>> csf = np.zeros_like(brain); csf[4, 1:5] = True
    >>> out = preprocess_bold(bold, t_r=1.0, brain_mask=brain, affine=np.diag([0.5, 0.5, 1, 1]),
    ...                       motion=rng.standard_normal((80, 6)) * 0.01, wm_mask=wm,
    ...                       ventricle_mask=csf)
    >>> out.shape, out.dtype
    ((80, 48), dtype('float32'))
    """
    bold = _check_bold(bold)
    shape3 = bold.shape[:3]
    n_t = bold.shape[-1]
    brain_mask = check_mask(brain_mask, shape3, "brain_mask")
    wm_mask = check_mask(wm_mask, shape3, "wm_mask")
    ventricle_mask = check_mask(ventricle_mask, shape3, "ventricle_mask")
    t_r = check_t_r(t_r)
    check_filter_band(high_pass, low_pass, t_r)
    sample_mask = check_sample_mask(sample_mask, n_t)
    motion = check_motion(motion, n_t)
    smooth = fwhm is not None and fwhm != 0
    if smooth:
        if not fwhm > 0:
            raise ValueError(f"fwhm must be a positive number of mm or None; got {fwhm!r}")
        if affine is None:
            raise ValueError("affine is required to smooth in mm (fwhm given); pass the BOLD array's 4x4 affine")
        affine = np.asarray(affine, dtype=float)
        if affine.shape != (4, 4):
            raise ValueError(f"Expected a 4x4 affine; got shape {affine.shape}")

    # Smooth only the box around the masks, with a margin wider than the Gaussian kernel's
    # support (scipy truncates at 4 sigma), so masked voxels get exactly the full-array result
    # while the field of view beyond the brain (most of a 64x64x20 rat EPI) costs nothing.
    box = (slice(None),) * 3
    if smooth:
        sigma_vox = fwhm / (np.sqrt(8 * np.log(2)) * np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
        margin = (4.0 * sigma_vox + 0.5).astype(int) + 1
        where = np.nonzero(brain_mask | wm_mask | ventricle_mask)
        box = tuple(slice(max(int(w.min()) - m, 0), int(w.max()) + m + 1) for w, m in zip(where, margin, strict=True))
    brain_box, wm_box, ventricle_box = brain_mask[box], wm_mask[box], ventricle_mask[box]

    signals = np.empty((n_t, int(brain_mask.sum())), dtype=np.float32)
    nuisance = np.empty((n_t, 3), dtype=float)  # WM, ventricles, global
    for start in range(0, n_t, _SMOOTH_BLOCK):
        block = bold[box + (slice(start, start + _SMOOTH_BLOCK),)].astype(np.float32, copy=False)
        if smooth:
            block = get_data(smooth_img(nib.Nifti1Image(block, affine), fwhm))
        rows = slice(start, start + block.shape[-1])
        signals[rows] = block[brain_box].T
        nuisance[rows, 0] = block[wm_box].mean(axis=0, dtype=float)
        nuisance[rows, 1] = block[ventricle_box].mean(axis=0, dtype=float)
        nuisance[rows, 2] = signals[rows].mean(axis=1, dtype=float)
    check_finite(signals, "BOLD", axis=0, unit="brain voxels")
    confounds = np.column_stack([motion, nuisance if global_signal else nuisance[:, :2]])
    return _clean_blocks(
        signals,
        t_r=t_r,
        high_pass=high_pass,
        low_pass=low_pass,
        detrend=detrend,
        confounds=confounds,
        sample_mask=sample_mask,
    )


# How many nuisance series each method regresses out of the BOLD, given its parameters: the noise
# ceiling corrects the observed r for what that regression takes
# (:func:`lfpbold.plugins.noise_ceiling.nuisance_retention`). A lab's method may carry the same
# attribute; without it no correction is made.
bandpass_only.nuisance_regressors = lambda **params: 0
preprocess_bold.nuisance_regressors = lambda global_signal=True, **params: 6 + 2 + bool(global_signal)
