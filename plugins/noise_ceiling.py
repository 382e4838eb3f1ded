"""Noise-ceiling simulation: how much of the BOLD time course gamma power could explain (study step 9).

Estimates the contrast-to-noise ratio (CNR) of single scans, then corrects an observed r for the noise.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

__all__ = ["simulate_noise_ceiling", "estimate_cnr", "infer_true_r", "expected_trial_r", "nuisance_retention"]

# rounded so grid values print as 1.3, not 1.3000000000000003
_CNR_GRID = np.round(np.arange(0.1, 5.0001, 0.1), 10)
# candidate true r values for the inversion, 0..1 by 0.01
_TRUE_R_GRID = np.linspace(0, 1, 101)


def expected_trial_r(true_r, cnr):
    """Analytic attenuation of one trial's r under the model: ``true_r * CNR**2 / (1 + CNR**2)``.

    Both signals have unit variance and each trial adds independent noise of SD ``1 / cnr``
    to each, so each variance becomes ``1 + 1/cnr**2`` while the covariance stays ``true_r``.

    Examples
    --------
    >>> round(float(expected_trial_r(0.59, 1.3)), 3)
    0.371
    """
    cnr2 = np.asarray(cnr, dtype=float) ** 2
    return np.asarray(true_r, dtype=float) * cnr2 / (1.0 + cnr2)


@functools.lru_cache(maxsize=64)
def nuisance_retention(
    n_timepoints: int,
    *,
    t_r: float,
    n_confounds: int,
    high_pass: float | None = 0.01,
    low_pass: float | None = 0.1,
    n_sets: int = 32,
    seed: int = 0,
) -> float:
    """The share of an observed r that survives regressing ``n_confounds`` nuisance series out of one side.

    The study regresses motion, white-matter, ventricle and global signals out of the BOLD (not
    out of the LFP power) within a 0.01-0.1 Hz band. Each regressor takes a dimension of the few
    the band leaves (about 54 at 300 volumes of TR 1 s), and the BOLD side loses the part of its
    signal that lies in those dimensions by chance while the LFP side keeps it, so the observed r
    falls below what the noise-ceiling model (white signals, no regression) predicts: by about
    10-15 % at 300 volumes and 3 % at 1,200 with 9 regressors. The noise ceiling divides the
    observed r by this factor before inverting the model, so that it infers the true r of the
    signals, not of their regressed remainder.

    Computed by simulation, as the study's own pipeline does it (:func:`nilearn.signal.clean`:
    linear detrend, Butterworth band-pass, confounds filtered with the same band-pass and
    regressed out): pairs of in-band signals correlated 0.5, the second side cleaned with
    ``n_sets`` draws of ``n_confounds`` white confound series and once without them; the
    factor is the ratio of the mean r. It does not depend on the r (checked 0.2-0.8 to within
    simulation noise, about 0.01). Cached per argument set.

    Parameters
    ----------
    n_timepoints : int
        Volumes per scan (kept after scrubbing).
    t_r : float
        Repetition time (s).
    n_confounds : int
        Nuisance series regressed out of the BOLD (the study: 6 motion + WM + ventricles + global = 9).
    high_pass, low_pass : float or None
        The band-pass (Hz) applied with the regression; None for none.
    n_sets : int, default 32
        Draws of confounds (32 signal pairs each).
    seed : int, default 0

    Returns
    -------
    float
        Mean r with the regression over mean r without it, in (0, 1]; 1.0 when ``n_confounds`` is 0.

    Examples
    --------
    >>> k300 = nuisance_retention(300, t_r=1.0, n_confounds=9)
    >>> k1200 = nuisance_retention(1200, t_r=1.0, n_confounds=9)
    >>> bool(0.8 < k300 < 0.92 < k1200 < 1.0), nuisance_retention(300, t_r=1.0, n_confounds=0)
    (True, 1.0)
    """
    from nilearn.signal import clean

    _check_sizes(1, n_timepoints)
    if int(n_confounds) != n_confounds or n_confounds < 0:
        raise ValueError(f"n_confounds must be a non-negative integer; got {n_confounds!r}")
    if not t_r > 0:
        raise ValueError(f"t_r must be positive; got {t_r!r}")
    if n_confounds == 0:
        return 1.0
    n = int(n_timepoints)
    rng = np.random.default_rng(seed)
    options = dict(
        detrend=True,
        standardize=None,
        t_r=float(t_r),
        high_pass=high_pass,
        low_pass=low_pass,
        filter="butterworth" if (high_pass or low_pass) else False,
    )

    def in_band(a):
        return clean(a, **options) if (high_pass or low_pass) else a - a.mean(axis=0)

    def mean_r(x, y):
        x = x - x.mean(axis=0)
        y = y - y.mean(axis=0)
        return float(np.mean(np.sum(x * y, axis=0) / np.sqrt(np.sum(x * x, axis=0) * np.sum(y * y, axis=0))))

    sets, pairs = int(n_sets), 32
    x = in_band(rng.standard_normal((n, sets * pairs)))
    other = in_band(rng.standard_normal((n, sets * pairs)))
    x /= x.std(axis=0)
    other /= other.std(axis=0)
    y = 0.5 * x + np.sqrt(0.75) * other
    # One call filters every signal and every confound alike (nilearn's clean detrends and
    # band-passes the confounds exactly as the signals, then projects them out); the projection
    # of each draw's confounds is then a QR solve here, instead of a clean call per draw.
    y = clean(y, **options)
    without = mean_r(x, y)
    confounds = clean(rng.standard_normal((n, sets * int(n_confounds))), **options).reshape(n, sets, -1)
    with_conf = []
    for i in range(sets):
        q, _ = np.linalg.qr(confounds[:, i])
        part = y[:, i * pairs : (i + 1) * pairs]
        with_conf.append(mean_r(x[:, i * pairs : (i + 1) * pairs], part - q @ (q.T @ part)))
    return float(min(1.0, np.mean(with_conf) / without))


def _check_sizes(n_trials, n_timepoints) -> None:
    if int(n_trials) != n_trials or n_trials < 1:
        raise ValueError(f"n_trials must be a positive integer (the number of scans); got {n_trials!r}")
    if int(n_timepoints) != n_timepoints or n_timepoints < 3:
        raise ValueError(f"n_timepoints must be an integer >= 3; got {n_timepoints!r}")


def _check_grid(grid, name: str, *, low: float, high: float, closed_low: bool) -> np.ndarray:
    grid = np.atleast_1d(np.asarray(grid, dtype=float))
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)):
        raise ValueError(f"{name} must be a non-empty 1-D array of finite values")
    too_low = grid < low if closed_low else grid <= low
    if np.any(too_low) or np.any(grid > high):
        raise ValueError(
            f"{name} values must lie in {'[' if closed_low else '('}{low}, {high}]; got {grid.min()}..{grid.max()}"
        )
    return grid


class _Simulation:
    """One draw of the model; r for any (true_r, CNR) from its inner products.

    A and a unit-variance N orthogonal to A are drawn once, and so are the trials' standard
    noise series; B = c*A + sqrt(1-c^2)*N then has sample correlation exactly c with A, and a
    trial's observed signals are A + e/CNR and B + f/CNR. Every correlation the model needs is a
    ratio of inner products that are linear or quadratic in c and 1/CNR, so they are stored once
    and the whole (c, CNR) grid is evaluated exactly without redrawing: the same random numbers
    serve every grid point, which keeps the curves smooth and the inversions monotone.
    """

    def __init__(self, n_trials: int, n_timepoints: int, seed) -> None:
        rng = np.random.default_rng(seed)
        n = int(n_timepoints)
        a = rng.standard_normal(n)
        a -= a.mean()
        a /= a.std()
        z = rng.standard_normal(n)
        z -= z.mean()
        z -= a * (a @ z) / (a @ a)
        z /= z.std()
        e = rng.standard_normal((int(n_trials), n))
        f = rng.standard_normal((int(n_trials), n))
        e -= e.mean(axis=1, keepdims=True)
        f -= f.mean(axis=1, keepdims=True)
        self.n = n
        self.trial = self._products(a, z, e, f)
        self.avg = self._products(a, z, e.mean(axis=0, keepdims=True), f.mean(axis=0, keepdims=True))

    @staticmethod
    def _products(a, z, e, f) -> dict:
        return {
            "ae": e @ a,
            "ze": e @ z,
            "af": f @ a,
            "zf": f @ z,
            "ef": np.einsum("ij,ij->i", e, f),
            "ee": np.einsum("ij,ij->i", e, e),
            "ff": np.einsum("ij,ij->i", f, f),
        }

    def r(self, true_r: float, cnr: float, which: str) -> np.ndarray:
        """Sample r of the observed pairs ('trial': one per trial; 'avg': trial-averaged)."""
        g = self.trial if which == "trial" else self.avg
        c, s, k = true_r, np.sqrt(max(1.0 - true_r**2, 0.0)), 1.0 / cnr
        bf = c * g["af"] + s * g["zf"]  # B . f
        cov = c * self.n + k * (g["af"] + c * g["ae"] + s * g["ze"]) + k * k * g["ef"]
        var_a = self.n + 2 * k * g["ae"] + k * k * g["ee"]
        var_b = self.n + 2 * k * bf + k * k * g["ff"]
        return cov / np.sqrt(var_a * var_b)


def simulate_noise_ceiling(*, true_r: float, n_trials: int, n_timepoints: int, cnr_grid=_CNR_GRID, seed=0) -> dict:
    """Simulate per-trial and trial-averaged correlations of two noisy signals.

    The model of the reference study: standardised A; B = c*A + sqrt(1-c^2)*N with N
    standard normal (made orthogonal to A here so that A and B correlate exactly ``true_r``);
    every trial (scan) observes A and B with fresh, independent Gaussian noise of SD 1/CNR.
    One trial's r is therefore attenuated by about CNR^2 / (1 + CNR^2)
    (:func:`expected_trial_r`); averaging ``n_trials`` trials divides the noise variance by
    ``n_trials``.

    Parameters
    ----------
    true_r : float
        Correlation c of the noise-free signals, in [-1, 1].
    n_trials : int
        Number of trials: the number of scans in the study's group.
    n_timepoints : int
        Length of each signal: the number of brain voxels when the signals stand for spatial
        maps (the study: 6157), the number of volumes for time courses.
    cnr_grid : array-like, default 0.1..5.0 by 0.1
        Contrast-to-noise ratios (signal SD / noise SD) to simulate.
    seed : int or numpy.random.SeedSequence, default 0

    Returns
    -------
    result : dict
        ``cnr`` (n_cnr,), ``mean_trial_r`` (mean over trials of each trial's r) and
        ``averaged_r`` (r between the trial-averaged A and B), each (n_cnr,).

    References
    ----------
    Tu, Cramer & Zhang (2024), noise-ceiling simulation (step 9).

    Examples
    --------
    >>> sim = simulate_noise_ceiling(true_r=0.6, n_trials=100, n_timepoints=2000, cnr_grid=[1.0])
    >>> round(float(sim["mean_trial_r"][0]), 2), round(float(sim["averaged_r"][0]), 2)
    (0.3, 0.59)
    """
    if not -1 <= true_r <= 1:
        raise ValueError(f"true_r must lie in [-1, 1]; got {true_r!r}")
    _check_sizes(n_trials, n_timepoints)
    cnr_grid = _check_grid(cnr_grid, "cnr_grid", low=0, high=np.inf, closed_low=False)
    sim = _Simulation(n_trials, n_timepoints, seed)
    mean_trial_r = np.array([sim.r(true_r, k, "trial").mean() for k in cnr_grid])
    averaged_r = np.array([sim.r(true_r, k, "avg")[0] for k in cnr_grid])
    return {"cnr": cnr_grid, "mean_trial_r": mean_trial_r, "averaged_r": averaged_r}


def estimate_cnr(
    *,
    group_r: float,
    mean_scan_r: float,
    n_trials: int,
    n_timepoints: int,
    true_r: float | None = None,
    seed=0,
    cnr_grid=_CNR_GRID,
) -> float:
    """Single-scan CNR from how much averaging over scans raises a correlation.

    The study compared the spatial r of the group-mean maps (``group_r``, "trial-averaged")
    with the mean scan-wise spatial r (``mean_scan_r``, "mean per-trial"). Under the model the
    ratio ``averaged_r / mean_trial_r`` hardly depends on the true r but falls steadily with CNR,
    from about ``n_trials`` at low CNR to 1 at high CNR. The criterion used:

        the CNR on ``cnr_grid`` whose simulated ratio ``averaged_r / mean_trial_r`` is closest
        to the observed ratio ``group_r / mean_scan_r`` on a log scale.

    The answer is therefore a grid value (0.1 resolution by default, like the study's grid).

    Parameters
    ----------
    group_r : float
        r computed on the group-mean (trial-averaged) data.
    mean_scan_r : float
        Mean of the per-scan r; same sign as ``group_r``.
    n_trials : int
        Number of scans averaged.
    n_timepoints : int
        Length of the correlated signals: the number of brain voxels for spatial maps.
    true_r : float, optional
        r of the simulated noise-free signals. Default: ``group_r``, which is close to the true
        r when many scans are averaged.
    seed : int, default 0
    cnr_grid : array-like, default 0.1..5.0 by 0.1

    Returns
    -------
    cnr : float
        A value of ``cnr_grid``. When the observed ratio lies outside the simulated range the
        nearest end of the grid is returned with a warning.

    Examples
    --------
    >>> # the study's sedated M1 gamma band: group-mean spatial r 0.95, scan-wise 0.58, 159 scans
    >>> estimate_cnr(group_r=0.95, mean_scan_r=0.58, n_trials=159, n_timepoints=6157)
    1.2
    """
    _check_sizes(n_trials, n_timepoints)
    for name, value in (("group_r", group_r), ("mean_scan_r", mean_scan_r)):
        if not -1 <= value <= 1:
            raise ValueError(f"{name} must lie in [-1, 1]; got {value!r}")
    if mean_scan_r == 0 or group_r == 0 or np.sign(group_r) != np.sign(mean_scan_r):
        raise ValueError(
            f"group_r ({group_r}) and mean_scan_r ({mean_scan_r}) must be non-zero and of the same sign: "
            "under the noise model averaging scans only strengthens a correlation"
        )
    cnr_grid = _check_grid(cnr_grid, "cnr_grid", low=0, high=np.inf, closed_low=False)
    c = abs(group_r) if true_r is None else abs(true_r)
    if not 0 < c <= 1:
        raise ValueError(f"true_r must be non-zero and in [-1, 1]; got {true_r!r}")
    sim = simulate_noise_ceiling(true_r=c, n_trials=n_trials, n_timepoints=n_timepoints, cnr_grid=cnr_grid, seed=seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log(sim["averaged_r"] / sim["mean_trial_r"])
    observed = np.log(group_r / mean_scan_r)
    best = int(np.nanargmin(np.abs(log_ratio - observed)))
    lo, hi = np.nanmin(log_ratio), np.nanmax(log_ratio)
    if not lo <= observed <= hi:
        warnings.warn(
            f"The observed ratio group_r / mean_scan_r = {group_r / mean_scan_r:.3f} is outside the simulated "
            f"range {np.exp(lo):.3f}..{np.exp(hi):.3f} for CNR {cnr_grid.min():g}..{cnr_grid.max():g}; "
            f"returning the grid end {cnr_grid[best]:g}",
            stacklevel=2,
        )
    return float(cnr_grid[best])


def infer_true_r(
    observed_r: float,
    *,
    cnr: float,
    n_trials: int,
    n_timepoints: int,
    seed=0,
    true_r_grid=_TRUE_R_GRID,
) -> dict:
    """The noise-free r that would produce ``observed_r`` as the mean per-scan r at this CNR.

    Simulates the model at ``cnr`` for every value of ``true_r_grid`` and interpolates the
    (monotone) curve of mean per-trial r against true r at ``|observed_r|``; the sign of
    ``observed_r`` is carried over. Agrees with the analytic
    ``observed_r * (1 + cnr**2) / cnr**2`` (:func:`expected_trial_r`) up to simulation noise.

    Parameters
    ----------
    observed_r : float
        Mean per-scan r, e.g. the temporal gamma r (the study: 0.37).
    cnr : float
        Single-scan contrast-to-noise ratio (:func:`estimate_cnr`).
    n_trials, n_timepoints : int
        Scans and time points of the simulation (the study's temporal r: scans x 1200 volumes).
    seed : int, default 0
    true_r_grid : array-like, default 0..1 by 0.01
        Non-negative candidate true r values.

    Returns
    -------
    result : dict
        ``true_r`` (float), ``variance_explained`` (``true_r**2``) and ``cnr``. If
        ``|observed_r|`` exceeds what the largest ``true_r_grid`` value produces, that value is
        returned with a warning.

    Examples
    --------
    >>> res = infer_true_r(0.37, cnr=1.3, n_trials=159, n_timepoints=1200)
    >>> round(res["true_r"], 2), round(res["variance_explained"], 2)
    (0.59, 0.35)
    """
    if not -1 <= observed_r <= 1:
        raise ValueError(f"observed_r must lie in [-1, 1]; got {observed_r!r}")
    if not cnr > 0:
        raise ValueError(f"cnr must be positive; got {cnr!r}")
    _check_sizes(n_trials, n_timepoints)
    grid = np.sort(_check_grid(true_r_grid, "true_r_grid", low=0, high=1, closed_low=True))
    sim = _Simulation(n_trials, n_timepoints, seed)
    curve = np.array([sim.r(c, cnr, "trial").mean() for c in grid])
    if np.any(np.diff(curve) < 0):
        raise RuntimeError("Simulated r is not monotone in true r; use more trials or time points")
    target = abs(observed_r)
    if target > curve[-1]:
        warnings.warn(
            f"|observed_r| = {target:.3f} exceeds the simulated mean r {curve[-1]:.3f} at true r {grid[-1]:g} "
            f"and CNR {cnr:g}; returning true_r = {grid[-1]:g}",
            stacklevel=2,
        )
    true_r = float(np.sign(observed_r) * np.interp(target, curve, grid))
    return {"true_r": true_r, "variance_explained": true_r**2, "cnr": float(cnr)}
