"""Temporal LFP-BOLD relationships: per-scan metrics, lagged correlation, shuffle control, HRF sweep.

Step ``temporal_metric``: each method is ``f(x, y, **params) -> float`` with x the HRF-convolved band power.
Step ``lagged_correlation``: ``f(x, y, *, t_r, max_lag_s, **params) -> (lags_s, r)``, positive lag = y lags x.
``output_range`` on a method is the range its values keep (read by :mod:`lfpbold.plugins.contracts`).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve
from scipy.stats import spearmanr
from sklearn.feature_selection import mutual_info_regression

from ._validation import check_array, check_seconds, check_series_pair, check_t_r
from .hrf import accepts_delays, hrf_regressor, spm_hrf
from .maps import _standardise_columns, correlation_map, roi_mean
from .stats import fisher_z, inverse_fisher_z

__all__ = [
    "pearson",
    "spearman",
    "mutual_information",
    "fisher_z_mean",
    "lagged_xcorr",
    "peak_lag",
    "shuffled_control",
    "hrf_sweep",
]


#: The study's HRF sensitivity grids (s): response delay 2-8 by 0.25, undershoot delay 2-12 by 0.5.
STUDY_RESPONSE_DELAYS = np.arange(2, 8.001, 0.25)
STUDY_UNDERSHOOT_DELAYS = np.arange(2, 12.001, 0.5)


def pearson(x, y) -> float:
    """Pearson r between HRF-convolved band power ``x`` and BOLD ``y`` (the study's metric).

    Parameters
    ----------
    x, y : array-like of shape (n_timepoints,)

    Returns
    -------
    r : float
        NaN if either series is constant (so the scan drops out of group t-tests).

    Examples
    --------
    >>> round(pearson([1, 2, 3, 4], [2, 4, 6, 9]), 4)
    0.9944
    """
    x, y = check_series_pair(x, y)
    x = x - x.mean()
    y = y - y.mean()
    denom = np.sqrt((x @ x) * (y @ y))
    if denom == 0:
        return float("nan")
    return float(np.clip((x @ y) / denom, -1.0, 1.0))


pearson.output_range = (-1.0, 1.0)


def spearman(x, y) -> float:
    """Spearman rank correlation (robust to outliers and monotone non-linearity).

    Parameters
    ----------
    x, y : array-like of shape (n_timepoints,)

    Returns
    -------
    rho : float

    Examples
    --------
    >>> spearman([1, 2, 3, 4], [1, 4, 9, 100])
    1.0
    """
    x, y = check_series_pair(x, y)
    return float(spearmanr(x, y).statistic)


spearman.output_range = (-1.0, 1.0)


def mutual_information(x, y, *, n_neighbors: int = 3, random_state: int = 0) -> float:
    """Mutual information in nats (Kraskov k-nearest-neighbour estimator, scikit-learn).

    Captures non-linear dependence. For jointly Gaussian series it equals
    ``-0.5 * log(1 - r**2)``.

    Parameters
    ----------
    x, y : array-like of shape (n_timepoints,)
    n_neighbors : int, default 3
        k of the estimator.
    random_state : int, default 0
        Seed of the tiny jitter scikit-learn adds to break ties; fixed for reproducibility.

    Returns
    -------
    mi : float
        Non-negative, in nats.

    References
    ----------
    Kraskov, Stoegbauer & Grassberger (2004) Phys Rev E 69:066138;
    :func:`sklearn.feature_selection.mutual_info_regression`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(2000)
    >>> mutual_information(x, x + rng.standard_normal(2000)) > 0.2
    True
    """
    x, y = check_series_pair(x, y)
    if n_neighbors < 1 or n_neighbors >= x.size:
        raise ValueError(f"n_neighbors must lie in [1, {x.size - 1}]; got {n_neighbors}")
    mi = mutual_info_regression(x[:, None], y, n_neighbors=n_neighbors, random_state=random_state)
    return float(mi[0])


mutual_information.output_range = (0.0, np.inf)


def fisher_z_mean(r) -> float:
    """Average correlations in Fisher z: ``tanh(mean(arctanh(r)))``, NaNs dropped.

    ``|r|`` is clipped just below one before ``arctanh`` (see :func:`lfpbold.plugins.stats.fisher_z`).

    Parameters
    ----------
    r : array-like
        Correlations, e.g. one per scan.

    Returns
    -------
    r_mean : float
        NaN if no finite values.

    Examples
    --------
    >>> round(fisher_z_mean([0.1, 0.9]), 4)
    0.6563
    """
    z = np.atleast_1d(fisher_z(r))
    z = z[np.isfinite(z)]
    if z.size == 0:
        return float("nan")
    return float(inverse_fisher_z(z.mean()))


def lagged_xcorr(x, y, *, t_r: float, max_lag_s: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r between ``x`` and ``y`` shifted by -max_lag..+max_lag.

    At lag ``k`` samples, ``r[k] = corr(x[t], y[t + k])`` over the overlapping samples, so a
    positive lag means ``y`` lags ``x``: with ``x`` the band power (unconvolved) and ``y`` the
    BOLD, the haemodynamic delay shows as a positive peak lag (about +2 s in the study).

    Parameters
    ----------
    x, y : array-like of shape (n_timepoints,)
        Equally sampled every ``t_r`` seconds.
    t_r : float
        Sampling interval in seconds.
    max_lag_s : float, default 20.0
        Largest lag in seconds (rounded down to whole samples).

    Returns
    -------
    lags_s : ndarray of shape (2 * K + 1,)
        Lags in seconds, ``K = floor(max_lag_s / t_r)``.
    r : ndarray of shape (2 * K + 1,)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(300)
    >>> y = np.roll(x, 2)          # y(t) = x(t - 2): y lags x by 2 samples
    >>> lags, r = lagged_xcorr(x, y, t_r=1.0, max_lag_s=5)
    >>> peak_lag(lags, r)
    2.0
    """
    x, y = check_series_pair(x, y)
    t_r = check_t_r(t_r)
    max_lag_s = check_seconds(max_lag_s, "max_lag_s", allow_zero=True)
    n = x.size
    k_max = int(np.floor(max_lag_s / t_r + 1e-9))
    if k_max > n - 3:
        raise ValueError(f"max_lag_s={max_lag_s} s is {k_max} samples, too long for {n} samples")
    lags = np.arange(-k_max, k_max + 1)
    r = np.array([pearson(x[: n - k], y[k:]) if k >= 0 else pearson(x[-k:], y[: n + k]) for k in lags])
    return lags * t_r, r


lagged_xcorr.output_range = (-1.0, 1.0)  # of r


def peak_lag(lags_s, r, *, absolute: bool = False) -> float:
    """Lag of the largest correlation (of the largest ``|r|`` with ``absolute=True``).

    Parameters
    ----------
    lags_s, r : ndarray of shape (n_lags,)
        As returned by :func:`lagged_xcorr`.
    absolute : bool, default False
        Use ``|r|``, for bands whose power is anti-correlated with BOLD (e.g. delta).

    Returns
    -------
    lag : float
        In seconds; NaN if every r is NaN.

    Examples
    --------
    >>> peak_lag(np.array([-1.0, 0.0, 1.0]), np.array([0.1, 0.2, 0.5]))
    1.0
    """
    lags_s = np.asarray(lags_s, dtype=float)
    r = np.asarray(r, dtype=float)
    if lags_s.ndim != 1 or lags_s.shape != r.shape:
        raise ValueError(f"lags_s and r must be 1-D of equal length; got {lags_s.shape} and {r.shape}")
    score = np.abs(r) if absolute else r
    if not np.any(np.isfinite(score)):
        return float("nan")
    return float(lags_s[np.nanargmax(score)])


def shuffled_control(
    x,
    y,
    *,
    n_shuffles: int = 1000,
    seed: int = 0,
    metric=pearson,
    t_r: float = 1.0,
    min_shift_s: float = 30.0,
) -> dict:
    """Null distribution of a temporal metric with the band power shifted in time.

    The study's control uses temporally shuffled band power. A random permutation would
    destroy the band power's autocorrelation (HRF-convolved power is smooth over ~10 s), making
    the null too narrow and p-values too small; a circular shift keeps the autocorrelation and
    only breaks the alignment with BOLD. Shifts are drawn uniformly (with replacement) from
    ``[min_shift, n - min_shift]`` samples so that no shifted series stays close to aligned.

    Parameters
    ----------
    x : array-like of shape (n_timepoints,)
        HRF-convolved band power (the series that is shifted).
    y : array-like of shape (n_timepoints,)
        BOLD.
    n_shuffles : int, default 1000
    seed : int, default 0
    metric : callable, default :func:`pearson`
        Any ``temporal_metric`` method ``f(x, y) -> float``.
    t_r : float, default 1.0
        Sampling interval in seconds (the study's TR).
    min_shift_s : float, default 30.0
        Smallest shift in seconds, well beyond the HRF and band-power autocorrelation.

    Returns
    -------
    result : dict
        ``null`` (n_shuffles,), ``mean`` (mean of the null), ``observed`` (``metric(x, y)``)
        and ``p``: two-sided, ``(1 + #{|null| >= |observed|}) / (n_shuffles + 1)``.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> x = np.convolve(rng.standard_normal(400), np.ones(5), "same")
    >>> res = shuffled_control(x, x + rng.standard_normal(400), n_shuffles=200)
    >>> res["p"] < 0.01, abs(res["mean"]) < 0.1
    (True, True)
    """
    x, y = check_series_pair(x, y)
    if n_shuffles < 1:
        raise ValueError(f"n_shuffles must be at least 1; got {n_shuffles}")
    t_r = check_t_r(t_r)
    min_shift_s = check_seconds(min_shift_s, "min_shift_s", allow_zero=True)
    n = x.size
    min_shift = int(np.ceil(min_shift_s / t_r))
    if n - 2 * min_shift < 1:
        raise ValueError(
            f"{n} samples are too few for circular shifts of at least {min_shift} samples "
            f"({min_shift_s} s); lower min_shift_s"
        )
    rng = np.random.default_rng(seed)
    shifts = rng.integers(min_shift, n - min_shift + 1, size=n_shuffles)
    null = np.array([metric(np.roll(x, s), y) for s in shifts], dtype=float)
    observed = float(metric(x, y))
    p = (1 + np.sum(np.abs(null) >= abs(observed))) / (n_shuffles + 1)
    return {"null": null, "mean": float(np.nanmean(null)), "observed": observed, "p": float(p)}


def hrf_sweep(
    power,
    times,
    volume_onsets,
    t_r: float,
    bold,
    *,
    roi,
    response_delays=STUDY_RESPONSE_DELAYS,
    undershoot_delays=STUDY_UNDERSHOOT_DELAYS,
    hrf=spm_hrf,
    hrf_params=None,
    seed_map=None,
) -> dict:
    """Temporal (and spatial) LFP-BOLD correlation for a grid of HRF shapes.

    For every pair (response delay ``d``, undershoot delay ``u``) the band power is convolved
    with the kernel ``hrf(step, response_delay=d, undershoot_delay=u, **hrf_params)``, ``step``
    being the power's sampling interval, and brought to the volumes exactly as
    :func:`~lfpbold.plugins.hrf.hrf_regressor` does; the temporal r is its Pearson r with the
    ROI-mean BOLD, and, given ``seed_map``, the spatial r is the similarity of its power map
    (:func:`~lfpbold.plugins.maps.correlation_map`) to the seed map. With the defaults the
    kernels are the study's: :func:`~lfpbold.plugins.hrf.spm_hrf` with the rodent ``p`` and
    ``p[0]``, ``p[1]`` replaced.

    All HRFs sharing a response delay are convolved at once (FFT) and all power maps come from
    one matrix product. At paper size (25 x 21 = 525 HRFs, 1200 volumes, 6157 voxels, 30 min of
    power at 10 Hz) the maps are a 525 x 1200 x 6157 product (~4 GFLOP) and hold 525 x 6157
    float64 (26 MB); the whole sweep took 0.6-1 s and ~100 MB on two shared cores.

    Parameters
    ----------
    power : ndarray of shape (n_times,)
        One band's power on a uniform grid.
    times : ndarray of shape (n_times,)
        Times of the power samples (s), on the clock of ``volume_onsets``.
    volume_onsets : ndarray of shape (n_volumes,)
        Onsets of the volumes in ``bold`` (after any scrubbing: one per row of ``bold``).
    t_r : float
        Repetition time (s).
    bold : ndarray of shape (n_volumes, n_voxels)
        Preprocessed BOLD in brain-mask order.
    roi : ndarray of shape (n_voxels,), bool
        Voxels around the electrode tip, for the local BOLD.
    response_delays, undershoot_delays : array-like
        Grids of the HRF's response and undershoot delays in seconds (the study: 2-8 s by 0.25,
        2-12 s by 0.5).
    hrf : callable, default :func:`~lfpbold.plugins.hrf.spm_hrf`
        A method of step ``hrf`` that takes ``response_delay`` and ``undershoot_delay``
        (:func:`~lfpbold.plugins.hrf.accepts_delays`).
    hrf_params : dict, optional
        The method's other parameters, e.g. ``{"p": RODENT_P}`` for ``spm_hrf`` (whose
        ``p[0]``, ``p[1]`` the swept delays replace).
    seed_map : ndarray of shape (n_voxels,), optional
        Seed map to compare power maps against.

    Returns
    -------
    result : dict
        ``temporal_r`` (n_delays, n_undershoot), ``spatial_r`` (same shape, or None without
        ``seed_map``), ``response_delays``, ``undershoot_delays``.

    References
    ----------
    Tu, Cramer & Zhang (2024): HRF sensitivity analysis (figure supplements).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> times = np.arange(0, 200, 0.1)
    >>> power = rng.standard_normal(times.size)
    >>> onsets = np.arange(20.0, 180.0)
    >>> bold = rng.standard_normal((onsets.size, 5))
    >>> res = hrf_sweep(power, times, onsets, 1.0, bold, roi=np.ones(5, bool))
    >>> res["temporal_r"].shape
    (25, 21)
    """
    hrf_params = dict(hrf_params or {})
    if not accepts_delays(hrf):
        name = getattr(hrf, "__name__", repr(hrf))
        raise ValueError(
            f"Expected an HRF method that takes response_delay and undershoot_delay (the swept parameters); "
            f"{name} does not, so it cannot be swept"
        )
    power = check_array(power, "power", ndim=1, dtype=np.float64, expected="one band's power of shape (n_times,)")
    times = np.asarray(times, dtype=np.float64)
    onsets = np.asarray(volume_onsets, dtype=np.float64)
    bold = check_array(bold, "bold", ndim=2, expected="bold of shape (n_volumes, n_voxels)")
    t_r = check_t_r(t_r)
    if onsets.ndim != 1 or onsets.size != bold.shape[0]:
        raise ValueError(f"volume_onsets has {onsets.size} entries but bold has {bold.shape[0]} volumes")
    delays = np.atleast_1d(np.asarray(response_delays, dtype=float))
    undershoots = np.atleast_1d(np.asarray(undershoot_delays, dtype=float))
    if delays.ndim != 1 or undershoots.ndim != 1 or not delays.size or not undershoots.size:
        raise ValueError("response_delays and undershoot_delays must be non-empty 1-D grids")
    local = roi_mean(bold, roi)
    if seed_map is not None:
        seed_map = np.asarray(seed_map, dtype=np.float64)
        if seed_map.shape != (bold.shape[1],):
            raise ValueError(f"seed_map has shape {seed_map.shape} but bold has {bold.shape[1]} voxels")
    if times.size < 2:
        raise ValueError("power needs at least two samples")
    step = float(np.median(np.diff(times)))

    regressors = np.empty((delays.size, undershoots.size, onsets.size))
    identity = np.ones(1)  # hrf_regressor with a unit kernel only averages over each volume
    for i, delay in enumerate(delays):
        kernels = [
            hrf(step, response_delay=float(delay), undershoot_delay=float(undershoot), **hrf_params)
            for undershoot in undershoots
        ]
        if len({k.shape for k in kernels}) > 1:
            # one FFT convolution per response delay needs one length; a shorter kernel is zero after its end
            length = max(k.size for k in kernels)
            kernels = [np.pad(k, (0, length - k.size)) for k in kernels]
        kernels = np.array(kernels, dtype=np.float64)
        convolved = fftconvolve(power[None, :], kernels, axes=1)[:, : power.size]
        regressors[i] = hrf_regressor(convolved, times, onsets, t_r, kernel=identity)[1]
    flat = regressors.reshape(-1, onsets.size)

    temporal_r = correlation_map(flat, local[:, None])[:, 0].reshape(delays.size, undershoots.size)
    spatial_r = None
    if seed_map is not None:
        power_maps = correlation_map(flat, bold)
        ok = np.isfinite(seed_map)
        # Pearson r of every power map with the seed map at once, over the seed map's finite voxels.
        spatial_r = _standardise_columns(power_maps[:, ok].T).T @ _standardise_columns(seed_map[ok, None])
        spatial_r = np.clip(spatial_r[:, 0], -1, 1).reshape(delays.size, undershoots.size)
    return {
        "temporal_r": temporal_r,
        "spatial_r": spatial_r,
        "response_delays": delays,
        "undershoot_delays": undershoots,
    }
