"""Group statistics across scans: t-tests on per-scan correlations and the Fisher z transform.

Thin wrappers over :mod:`scipy.stats` that drop NaNs and return plain dicts the schema can insert.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as _stats

from ._validation import check_array

__all__ = ["one_sample_ttest", "paired_ttest", "fisher_z", "inverse_fisher_z"]

#: |r| is clipped here before arctanh so that r = +-1 (a voxel correlated with itself, e.g. the
#: seed voxels in a seed map) gives a large finite z (about 8.3) rather than inf, which would
#: swamp any mean it enters.
R_CLIP = 1.0 - 1e-7


def fisher_z(r):
    """Fisher's z transform, ``arctanh(r)``, with ``|r|`` clipped just below one.

    Parameters
    ----------
    r : float or array-like
        Correlation coefficient(s) in [-1, 1]; NaN passes through.

    Returns
    -------
    z : float or ndarray
        ``arctanh(clip(r, -R_CLIP, R_CLIP))``, same shape as ``r``.

    Examples
    --------
    >>> round(float(fisher_z(0.5)), 4)
    0.5493
    >>> bool(np.isfinite(fisher_z(1.0)))
    True
    """
    r = np.asarray(r, dtype=float)
    if np.any(np.abs(r[np.isfinite(r)]) > 1.0 + 1e-12):
        raise ValueError(f"Correlations must lie in [-1, 1]; got values up to {np.nanmax(np.abs(r)):.4g}")
    z = np.arctanh(np.clip(r, -R_CLIP, R_CLIP))
    return z[()] if z.ndim == 0 else z


def inverse_fisher_z(z):
    """Back-transform Fisher z values to correlations, ``tanh(z)``.

    Parameters
    ----------
    z : float or array-like

    Returns
    -------
    r : float or ndarray
        Same shape as ``z``.

    Examples
    --------
    >>> round(float(inverse_fisher_z(fisher_z(0.3))), 6)
    0.3
    """
    r = np.tanh(np.asarray(z, dtype=float))
    return r[()] if r.ndim == 0 else r


def _as_1d(values, name: str) -> np.ndarray:
    return check_array(values, name, ndim=1, dtype=float, expected=f"a 1-D array of per-scan values for {name}")


def one_sample_ttest(values, popmean: float = 0.0) -> dict:
    """One-sample t-test of per-scan values against ``popmean`` (two-sided).

    The study's test across scans of the temporal and spatial correlations (e.g. "is the
    mean scan-wise gamma r above zero?"). NaNs (scans where the value is undefined) are dropped.

    Parameters
    ----------
    values : array-like of shape (n_scans,)
        One value per scan, e.g. Pearson r or Fisher z.
    popmean : float, default 0.0
        Mean under the null hypothesis.

    Returns
    -------
    result : dict
        ``mean``, ``sem`` (standard error, ddof=1), ``t``, ``p``, ``n`` (values used),
        ``d`` (Cohen's d: ``(mean - popmean) / sd``, ddof=1) and ``ci_low``, ``ci_high`` (the
        t-based 95% confidence interval of the mean). With fewer than two values all but ``mean``
        and ``n`` are NaN; no exception is raised, so a group with a single surviving scan still
        gets a row.

    References
    ----------
    Tu, Cramer & Zhang (2024), eLife 13:RP95680: one-sample t-tests across scans.

    Examples
    --------
    >>> res = one_sample_ttest([0.3, 0.4, 0.35, np.nan])
    >>> res["n"], round(res["mean"], 3), round(res["d"], 2)
    (3, 0.35, 7.0)
    >>> res["ci_low"] < res["mean"] < res["ci_high"]
    True
    """
    values = _as_1d(values, "values")
    values = values[np.isfinite(values)]
    n = int(values.size)
    mean = float(values.mean()) if n else np.nan
    if n < 2:
        nan = np.nan
        return {"mean": mean, "sem": nan, "t": nan, "p": nan, "n": n, "d": nan, "ci_low": nan, "ci_high": nan}
    res = _stats.ttest_1samp(values, popmean)
    ci = res.confidence_interval(0.95)
    sd = float(values.std(ddof=1))
    return {
        "mean": mean,
        "sem": float(_stats.sem(values)),
        "t": float(res.statistic),
        "p": float(res.pvalue),
        "n": n,
        "d": (mean - popmean) / sd if sd > 0 else np.nan,
        "ci_low": float(ci.low),
        "ci_high": float(ci.high),
    }


def paired_ttest(a, b) -> dict:
    """Paired t-test of ``a`` against ``b`` (two-sided), e.g. spatial vs temporal r per scan.

    Pairs with a NaN on either side are dropped.

    Parameters
    ----------
    a, b : array-like of shape (n_scans,)
        Paired values, one pair per scan.

    Returns
    -------
    result : dict
        ``mean_diff`` (mean of ``a - b``), ``t``, ``p``, ``n`` (pairs used). With fewer than
        two pairs ``t`` and ``p`` are NaN.

    References
    ----------
    Tu, Cramer & Zhang (2024): paired t-tests of spatial against temporal correlations.

    Examples
    --------
    >>> res = paired_ttest([0.6, 0.5, 0.7], [0.3, 0.2, 0.5])
    >>> res["n"], round(res["mean_diff"], 3)
    (3, 0.267)
    """
    a = _as_1d(a, "a")
    b = _as_1d(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"Paired values must have the same length; got {a.size} and {b.size}")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    n = int(a.size)
    mean_diff = float(np.mean(a - b)) if n else np.nan
    if n < 2:
        return {"mean_diff": mean_diff, "t": np.nan, "p": np.nan, "n": n}
    res = _stats.ttest_rel(a, b)
    return {"mean_diff": mean_diff, "t": float(res.statistic), "p": float(res.pvalue), "n": n}
