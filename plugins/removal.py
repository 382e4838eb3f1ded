"""Removing LFP-related signal from BOLD before recomputing seed maps (study step 10).

Step ``lfp_removal``: each method is ``f(data, regressors, **params) -> (cleaned, keep)``.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_array, check_finite, check_voxel_data

__all__ = ["ols_removal", "soft_removal", "censor_removal", "unique_components"]


def _check(data, regressors) -> tuple[np.ndarray, np.ndarray]:
    data = check_voxel_data(data)
    regressors = check_array(
        regressors,
        "regressors",
        ndim=(1, 2),
        dtype=np.float64,
        expected="regressors of shape (n_timepoints,) or (n_timepoints, n_bands)",
    )
    if regressors.ndim == 1:
        regressors = regressors[:, None]
    if regressors.shape[0] != data.shape[0]:
        raise ValueError(f"regressors have {regressors.shape[0]} time points but data has {data.shape[0]}")
    check_finite(regressors, "regressors")
    return data, regressors


def _pick(regressors: np.ndarray, band_index: int) -> np.ndarray:
    n_bands = regressors.shape[1]
    if not -n_bands <= band_index < n_bands:
        raise ValueError(f"band_index {band_index} is out of range for {n_bands} band(s)")
    return regressors[:, band_index]


def _out_dtype(data: np.ndarray):
    return data.dtype if data.dtype.kind == "f" else np.float64


def ols_removal(data, regressors, *, band_index: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Regress one HRF-convolved band power (default gamma) plus an intercept out of every voxel.

    Parameters
    ----------
    data : ndarray of shape (n_timepoints, n_voxels)
        Preprocessed BOLD.
    regressors : ndarray of shape (n_timepoints,) or (n_timepoints, n_bands)
        HRF-convolved band power at the volumes; bands in the order of
        :data:`lfpbold.constants.CLASSIC_BANDS` (delta, theta, alpha, beta, gamma) when there are five.
    band_index : int, default -1
        Column used (-1: gamma).

    Returns
    -------
    cleaned : ndarray of shape (n_timepoints, n_voxels)
        OLS residuals (so zero-mean), in ``data``'s float dtype.
    keep : ndarray of shape (n_timepoints,), bool
        All True.

    References
    ----------
    Tu, Cramer & Zhang (2024), step 10(a).

    Examples
    --------
    >>> t = np.arange(20.0)
    >>> cleaned, keep = ols_removal(np.column_stack([3 * t + 1, t ** 2]), t)
    >>> np.allclose(cleaned[:, 0], 0), bool(keep.all())
    (True, True)
    """
    data, regressors = _check(data, regressors)
    design = np.column_stack([np.ones(data.shape[0]), _pick(regressors, band_index)])
    beta = np.linalg.pinv(design) @ data
    cleaned = (data - design @ beta).astype(_out_dtype(data), copy=False)
    return cleaned, np.ones(data.shape[0], dtype=bool)


def unique_components(regressors) -> np.ndarray:
    """Each band's regressor orthogonalised against an intercept and all the other bands.

    Parameters
    ----------
    regressors : ndarray of shape (n_timepoints, n_bands)

    Returns
    -------
    unique : ndarray of shape (n_timepoints, n_bands)
        Column *j* is the residual of band *j* after OLS on ``[1, other bands]``: the part of
        band *j* no other band (nor a constant) carries.

    Examples
    --------
    >>> t = np.linspace(0, 1, 50)
    >>> bands = np.column_stack([t, t + np.sin(9 * t)])
    >>> u = unique_components(bands)
    >>> bool(abs(u[:, 0] @ bands[:, 1]) < 1e-9)  # band 0's unique part is orthogonal to band 1
    True
    """
    regressors = np.asarray(regressors, dtype=np.float64)
    n_t, n_bands = regressors.shape
    unique = np.empty_like(regressors)
    for j in range(n_bands):
        others = np.column_stack([np.ones(n_t), np.delete(regressors, j, axis=1)])
        coef = np.linalg.lstsq(others, regressors[:, j], rcond=None)[0]
        unique[:, j] = regressors[:, j] - others @ coef
    return unique


def soft_removal(data, regressors) -> tuple[np.ndarray, np.ndarray]:
    """ "Soft" regression: remove only each band's unique variance from every voxel.

    For each band, the part of its regressor orthogonal to an intercept and to all other bands
    is found (:func:`unique_components`), and the data's projection on that unique component is
    removed, band by band, each projection taken separately:

    ``cleaned = data - sum_j u_j (u_j . data) / (u_j . u_j)``

    By the Frisch-Waugh-Lovell theorem ``(u_j . data) / (u_j . u_j)`` is band *j*'s coefficient
    in the multiple regression on all bands, so this removes ``beta_j * u_j`` for every band and
    leaves ``beta_j * (r_j - u_j)``, the part of each band's fit that it shares with the other
    bands. (A *joint* least-squares fit on all the ``u_j`` would not do this: they span the same
    space as the bands, so it would equal ordinary regression of all five bands.)

    Parameters
    ----------
    data : ndarray of shape (n_timepoints, n_voxels)
    regressors : ndarray of shape (n_timepoints, n_bands)
        HRF-convolved band powers (the study: all five bands).

    Returns
    -------
    cleaned : ndarray of shape (n_timepoints, n_voxels)
        In ``data``'s float dtype. The voxel means are untouched (the components are zero-mean).
    keep : ndarray of shape (n_timepoints,), bool
        All True.

    References
    ----------
    Tu, Cramer & Zhang (2024), step 10(b). Pruim et al. (2015) NeuroImage 112:267 for the
    same "non-aggressive" idea in ICA-AROMA.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> shared = rng.standard_normal(100)
    >>> bands = np.column_stack([shared + rng.standard_normal(100), shared + rng.standard_normal(100)])
    >>> cleaned, _ = soft_removal(shared[:, None], bands)
    >>> bool(np.corrcoef(cleaned[:, 0], shared)[0, 1] > 0.5)  # the shared signal survives
    True
    """
    data, regressors = _check(data, regressors)
    unique = unique_components(regressors)
    norms = np.einsum("ij,ij->j", unique, unique)
    if np.any(norms <= np.finfo(float).eps * np.abs(regressors).max() ** 2 * regressors.shape[0]):
        raise ValueError("A band's regressor is a linear combination of the others; it has no unique variance")
    coef = (unique.T @ data) / norms[:, None]
    cleaned = (data - unique @ coef).astype(_out_dtype(data), copy=False)
    return cleaned, np.ones(data.shape[0], dtype=bool)


def censor_removal(
    data, regressors, *, band_index: int = -1, percentile: float = 85.0
) -> tuple[np.ndarray, np.ndarray]:
    """Drop the volumes where one band's HRF-convolved power is above the scan's percentile.

    Parameters
    ----------
    data : ndarray of shape (n_timepoints, n_voxels)
    regressors : ndarray of shape (n_timepoints,) or (n_timepoints, n_bands)
    band_index : int, default -1
        Column used (-1: gamma).
    percentile : float, default 85.0
        Volumes with power strictly above this percentile of the scan's own values are dropped.

    Returns
    -------
    cleaned : ndarray of shape (n_kept, n_voxels)
        The kept rows of ``data``.
    keep : ndarray of shape (n_timepoints,), bool

    References
    ----------
    Tu, Cramer & Zhang (2024), step 10(c).

    Examples
    --------
    >>> cleaned, keep = censor_removal(np.arange(20.0)[:, None], np.arange(20.0))
    >>> int(keep.sum()), float(cleaned.max())
    (17, 16.0)
    """
    data, regressors = _check(data, regressors)
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must lie in (0, 100]; got {percentile!r}")
    power = _pick(regressors, band_index)
    keep = power <= np.percentile(power, percentile)
    return data[keep], keep
