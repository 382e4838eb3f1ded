"""Correlation maps over brain voxels: seed maps, LFP power maps and their spatial similarity.

Data are (n_timepoints, n_voxels) arrays in brain-mask order, as returned by ``bold_preprocessing``.
Step ``correlation_map``: each method is ``f(seed, data, **params) -> values`` of shape (n_voxels,) or
(n_seeds, n_voxels); ``output_range`` on a method is the range its values keep (read by the
conformance check, :mod:`lfpbold.plugins.contracts`).
"""

from __future__ import annotations

import numpy as np

from ._validation import check_array, check_finite, check_voxel_data

# aliased: group_mean_map's keyword ``fisher_z`` would shadow the function
from .stats import fisher_z as _fisher_z
from .stats import inverse_fisher_z

__all__ = [
    "roi_mean",
    "correlation_map",
    "rank_correlation_map",
    "mutual_information_map",
    "spatial_similarity",
    "group_mean_map",
]


def _check_seed(seed) -> np.ndarray:
    return check_array(
        seed, "seed", ndim=(1, 2), dtype=np.float64, expected="seed of shape (n_timepoints,) or (n_seeds, n_timepoints)"
    )


def _standardise_columns(x: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit norm (float64); zero-variance columns become 0."""
    x = np.array(x, dtype=np.float64)  # float64 copy: sums over 1200 float32 samples lose digits
    x -= x.mean(axis=0)
    norm = np.sqrt(np.einsum("ij,ij->j", x, x))
    # A constant column has no defined r; scaling it by 1 keeps its zeros, so its r comes out 0.
    norm[norm <= np.finfo(np.float64).eps * x.shape[0]] = np.inf
    x /= norm
    return x


def roi_mean(data, roi) -> np.ndarray:
    """Mean time series over the voxels of a region (e.g. around the electrode tip).

    Parameters
    ----------
    data : ndarray of shape (n_timepoints, n_voxels)
        Preprocessed BOLD in brain-mask order.
    roi : ndarray of shape (n_voxels,), bool
        The region, already restricted to the brain voxels (``roi_3d[brain_mask]``).

    Returns
    -------
    mean : ndarray of shape (n_timepoints,), float64

    Examples
    --------
    >>> roi_mean(np.array([[1.0, 2.0, 9.0], [3.0, 4.0, 9.0]]), np.array([True, True, False]))
    array([1.5, 3.5])
    """
    data = check_voxel_data(data)
    roi = np.asarray(roi)
    if roi.dtype != bool:
        raise ValueError(f"roi must be a boolean mask over brain voxels; got dtype {roi.dtype}")
    if roi.shape != (data.shape[1],):
        raise ValueError(f"roi has shape {roi.shape} but data has {data.shape[1]} voxels")
    if not roi.any():
        raise ValueError("roi selects no voxels")
    return data[:, roi].mean(axis=1, dtype=np.float64)


def correlation_map(seed, data) -> np.ndarray:
    """Pearson r between one or more seed time series and every voxel.

    Seed maps (seed = ROI-mean BOLD) and LFP power maps (seed = HRF-convolved band power)
    are both this. Computed by standardising and one matrix product, in float64.

    Parameters
    ----------
    seed : ndarray of shape (n_timepoints,) or (n_seeds, n_timepoints)
    data : ndarray of shape (n_timepoints, n_voxels)

    Returns
    -------
    r : ndarray of shape (n_voxels,) or (n_seeds, n_voxels), float64
        A voxel (or seed) with zero variance has no defined correlation; it gets 0.0 rather
        than NaN, so maps stay finite for spatial similarity and group means. Mask such voxels
        out beforehand if that matters.

    References
    ----------
    Tu, Cramer & Zhang (2024): seed maps and LFP power maps (steps 5 and 6 of the study).

    Examples
    --------
    >>> t = np.arange(10.0)
    >>> data = np.column_stack([t, -t, np.ones(10)])
    >>> correlation_map(t, data)
    array([ 1., -1.,  0.])
    """
    data = check_voxel_data(data)
    seed = _check_seed(seed)
    squeeze = seed.ndim == 1
    seed = np.atleast_2d(seed)
    if seed.shape[1] != data.shape[0]:
        raise ValueError(f"seed has {seed.shape[1]} time points but data has {data.shape[0]}")
    if data.shape[0] < 3:
        raise ValueError(f"Need at least 3 time points for a correlation; got {data.shape[0]}")
    check_finite(seed, "seed")
    check_finite(data, "data")
    r = _standardise_columns(seed.T).T @ _standardise_columns(data)
    np.clip(r, -1.0, 1.0, out=r)
    return r[0] if squeeze else r


correlation_map.output_range = (-1.0, 1.0)


def _ranks(x: np.ndarray, axis: int = 0) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, axis=axis).astype(np.float64)


def rank_correlation_map(seed, data) -> np.ndarray:
    """Spearman r of ``seed`` with every voxel: :func:`correlation_map` on ranks.

    Parameters
    ----------
    seed : ndarray of shape (n_timepoints,) or (n_seeds, n_timepoints)
    data : ndarray of shape (n_timepoints, n_voxels)

    Returns
    -------
    r : ndarray of shape (n_voxels,) or (n_seeds, n_voxels)

    Examples
    --------
    >>> t = np.arange(20.0)
    >>> float(rank_correlation_map(t, np.exp(t)[:, None])[0])
    1.0
    """
    seed = _check_seed(seed)
    data = check_voxel_data(data)
    return correlation_map(_ranks(seed, axis=-1), _ranks(data, axis=0))


rank_correlation_map.output_range = (-1.0, 1.0)


def mutual_information_map(seed, data) -> np.ndarray:
    """Gaussian-copula mutual information (nats) of ``seed`` with every voxel.

    Each series is rank-transformed to a standard normal (its copula), and the information of
    two Gaussians with correlation ``r`` is ``-log(1 - r**2) / 2``. A lower bound on the true
    mutual information that is fast enough for every voxel and every band, and robust to
    outliers and monotone non-linearities (Ince et al. 2017, Hum Brain Mapp 38:1541).

    Parameters
    ----------
    seed : ndarray of shape (n_timepoints,) or (n_seeds, n_timepoints)
    data : ndarray of shape (n_timepoints, n_voxels)

    Returns
    -------
    mi : ndarray of shape (n_voxels,) or (n_seeds, n_voxels), >= 0

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(5000)
    >>> y = 0.6 * x + 0.8 * rng.standard_normal(5000)
    >>> mi = float(mutual_information_map(x, y[:, None])[0])
    >>> bool(abs(mi - (-np.log(1 - 0.6**2) / 2)) < 0.01)   # the Gaussian value, 0.223, to sampling error
    True
    """
    from scipy.special import ndtri

    seed = _check_seed(seed)
    data = check_voxel_data(data)
    n = data.shape[0]
    seed_g = ndtri(_ranks(seed, axis=-1) / (n + 1))
    data_g = ndtri(_ranks(data, axis=0) / (n + 1))
    r = correlation_map(seed_g, data_g)
    return -0.5 * np.log1p(-np.minimum(r * r, 1 - 1e-12))


mutual_information_map.output_range = (0.0, np.inf)


def spatial_similarity(map_a, map_b) -> float:
    """Pearson r between two maps over the voxels finite in both ("spatial r").

    Its square is the study's "spatial variance explained".

    Parameters
    ----------
    map_a, map_b : ndarray of shape (n_voxels,)

    Returns
    -------
    r : float
        NaN when fewer than 3 voxels are finite in both or either map is constant there.

    Examples
    --------
    >>> round(spatial_similarity([0.1, 0.5, np.nan, 0.9], [0.2, 0.4, 0.3, 1.0]), 4)
    0.9608
    """
    a = np.asarray(map_a, dtype=np.float64)
    b = np.asarray(map_b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"Expected two 1-D maps of equal length; got shapes {a.shape} and {b.shape}")
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    a = a[ok] - a[ok].mean()
    b = b[ok] - b[ok].mean()
    denom = np.sqrt((a @ a) * (b @ b))
    if denom == 0:
        return float("nan")
    return float(np.clip((a @ b) / denom, -1.0, 1.0))


def group_mean_map(maps, *, fisher_z: bool = False) -> np.ndarray:
    """Voxel-wise mean of per-scan maps.

    Parameters
    ----------
    maps : ndarray of shape (n_scans, n_voxels)
        Correlation maps, one row per scan. NaNs are ignored voxel by voxel.
    fisher_z : bool, default False
        Average in Fisher z (``tanh(mean(arctanh r))``) instead of averaging r directly.

    Returns
    -------
    mean_map : ndarray of shape (n_voxels,)

    Examples
    --------
    >>> group_mean_map(np.array([[0.2, 0.4], [0.4, 0.8]]))
    array([0.3, 0.6])
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 2 or maps.shape[0] == 0:
        raise ValueError(f"Expected maps of shape (n_scans, n_voxels) with at least one scan; got {maps.shape}")
    values = _fisher_z(maps) if fisher_z else maps
    with np.errstate(invalid="ignore"):
        count = np.isfinite(values).sum(axis=0)
        mean = np.where(count > 0, np.nansum(values, axis=0) / np.maximum(count, 1), np.nan)
    return inverse_fisher_z(mean) if fisher_z else mean
