"""Noise-ceiling simulation: how much of the BOLD time course gamma power could explain (study step 9).

Estimates the contrast-to-noise ratio (CNR) of single scans, then corrects an observed r for the noise.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["simulate_noise_ceiling", "estimate_cnr", "infer_true_r", "expected_trial_r"]

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
