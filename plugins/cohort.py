"""Cohort statistics: one group of scans' per-scan values and maps summarised as the study's figures.

:func:`summarize_cohort` is a pure function of arrays. The ``Cohort`` table stores what it returns
per state and region, and ``lfpbold.results`` applies it to any other grouping of the stored
per-scan rows, so every figure has one definition. A figure that cannot be computed is NaN and
its reason is recorded in ``missing``, never silently dropped.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from lfpbold.constants import BAND_FIGURES

from .maps import group_mean_map, spatial_similarity
from .noise_ceiling import estimate_cnr, infer_true_r, nuisance_retention, simulate_noise_ceiling
from .stats import one_sample_ttest, paired_ttest
from .temporal import fisher_z_mean, peak_lag

__all__ = ["summarize_cohort", "CohortSummary", "BAND_FIGURES", "GROUP_FIGURES", "spaced"]

#: Figures of the group as a whole.
GROUP_FIGURES = ("cnr", "n_scans", "n_subjects", "n_excluded")

_TOO_FEW = "fewer than 2 scans with a value"


def spaced(spec) -> np.ndarray:
    """A parameter set's ``[start, stop, step]`` grid (stop included) as an array.

    Rounded so that grid values print as 1.3, not 1.3000000000000003.

    Examples
    --------
    >>> spaced([2.0, 3.0, 0.5]).tolist()
    [2.0, 2.5, 3.0]
    """
    start, stop, step = spec
    if not step > 0 or not stop >= start:
        raise ValueError(f"Expected a grid [start, stop, step] with step > 0 and stop >= start; got {list(spec)}")
    return np.round(np.arange(start, stop + step / 2, step), 10)


@dataclass
class CohortSummary:
    """What :func:`summarize_cohort` returns.

    Attributes
    ----------
    group : dict
        :data:`GROUP_FIGURES`, and ``missing`` (figure -> why it is NaN) for the group's figures,
        including each ``removal_<method>_r``.
    bands : list of dict
        One per band, in the order given: ``band``, :data:`BAND_FIGURES`, ``metrics`` (every
        temporal metric but the primary one -> its mean over scans), ``group_power_map`` and
        ``missing`` (figure or metric name -> why it is NaN).
    removal : dict
        Removal method -> r of the group-mean seed map after removal with the group-mean seed map.
    group_seed_map : ndarray of shape (n_voxels,)
    noise_ceiling : dict or None
        The study's simulation at the inferred true r: ``cnr_grid``, ``true_r``, ``mean_trial_r``
        and ``averaged_r``; None when no true r could be inferred.
    """

    group: dict
    bands: list[dict]
    removal: dict = field(default_factory=dict)
    group_seed_map: np.ndarray | None = None
    noise_ceiling: dict | None = None


def _mean_or_reason(values, not_computed: str):
    """Mean of the finite values, or NaN and why there is none."""
    if values is None:
        return np.nan, not_computed
    values = np.asarray(values, dtype=float)
    if not np.isfinite(values).any():
        return np.nan, "undefined in every scan"
    return float(np.nanmean(values)), None


def _peak_of_mean_curve(curves) -> tuple[float, str | None]:
    """Peak lag of the cross-correlation averaged over the scans that have a curve."""
    if curves is None:
        return np.nan, "lags not computed for this band (RelationParams lag.band_sets)"
    curves = [c for c in curves if c is not None]
    if not curves:
        return np.nan, "no scan has an unbroken series (every scan had scrubbed volumes)"
    lags = np.asarray(curves[0][0], dtype=float)
    return peak_lag(lags, np.mean([np.asarray(r, dtype=float) for _, r in curves], axis=0), absolute=True), None


def _estimate_cnr(band: dict | None, n_scans: int, n_voxels: int, settings: Mapping, grid: np.ndarray):
    """The single-scan CNR: given, or estimated from the band's maps as the study did."""
    cnr = settings.get("cnr", "estimate")
    if cnr != "estimate":
        return float(cnr), None
    if band is None:
        return np.nan, f"the noise-ceiling band {settings['band']!r} is not in this band set"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return estimate_cnr(
                group_r=band["spatial_r"],
                mean_scan_r=band["scanwise_spatial_r"],
                n_trials=n_scans,
                n_timepoints=n_voxels,
                cnr_grid=grid,
            ), None
    except (ValueError, TypeError) as err:  # too few scans, or maps of opposite sign
        return np.nan, f"no CNR estimate from the {settings['band']} maps: {err}"


def _infer(observed: float, cnr: float, cnr_reason, n_scans: int, n_volumes: int, retention: float = 1.0):
    """The true r implied by the observed mean r at this CNR, or NaN and why not.

    ``observed`` is first divided by ``retention`` (:func:`~.noise_ceiling.nuisance_retention`:
    what the BOLD nuisance regression leaves of an r)."""
    if not np.isfinite(cnr):
        return np.nan, f"no CNR ({cnr_reason})"
    if not np.isfinite(observed):
        return np.nan, "no temporal r"
    if n_volumes < 3:
        return np.nan, f"{n_volumes} volumes are too few for the simulation"
    observed = observed / retention
    if abs(observed) > 1:
        return np.nan, f"observed r over the nuisance retention {retention:.3f} exceeds 1"
    try:
        with warnings.catch_warnings(record=True) as clipped:
            warnings.simplefilter("always")
            inferred = infer_true_r(observed, cnr=cnr, n_trials=n_scans, n_timepoints=n_volumes)
    except (ValueError, RuntimeError) as err:  # e.g. too few scans for a monotone curve
        return np.nan, f"no inference: {err}"
    if clipped:
        return np.nan, f"observed r {observed:.3f} is beyond what the model reaches at CNR {cnr:g} (would be clipped)"
    return inferred["true_r"], None


def summarize_cohort(
    *,
    subjects: Sequence,
    seed_maps,
    bands: Sequence[str],
    spatial_r: Mapping,
    power_maps: Mapping,
    metrics: Mapping[str, Mapping],
    primary_metric: str,
    n_volumes: int,
    noise_ceiling: Mapping,
    shuffled_r: Mapping | None = None,
    lag_curves: Mapping | None = None,
    removal_maps: Mapping | None = None,
    n_excluded: int = 0,
    nuisance: Mapping | None = None,
) -> CohortSummary:
    """Summarise one group of scans (the study's statistics across scans) for every band.

    Parameters
    ----------
    subjects : sequence of str, length n_scans
        The subject of each scan (of each scan and implant: one entry per seed map).
    seed_maps : ndarray of shape (n_scans, n_voxels)
        Each scan's seed map.
    bands : sequence of str
        The bands to summarise, in display order.
    spatial_r : mapping band -> ndarray of shape (n_scans,)
        Each scan's spatial r of the band's power map with the seed map.
    power_maps : mapping band -> ndarray of shape (n_scans, n_voxels)
        Each scan's LFP power map of the band (the primary map method's).
    metrics : mapping metric -> (mapping band -> ndarray of shape (n_scans,) or None)
        Each scan's value of each temporal metric; None where the metric was not computed for
        the band. NaN marks a scan where it is undefined.
    primary_metric : str
        The metric behind ``temporal_r``, its t-test, the spatial-vs-temporal test and the noise
        ceiling (the study: Pearson r). Every other metric's mean is reported under its own name.
    n_volumes : int
        Volumes per scan for the noise-ceiling simulation (the study: 1200).
    noise_ceiling : mapping
        ``cnr`` ("estimate" or a number), ``band`` (whose maps give the CNR estimate) and
        ``cnr_grid`` (``[start, stop, step]``).
    shuffled_r : mapping band -> ndarray of shape (n_scans,) or None, optional
        Each scan's mean metric under circularly shifted band power (the control).
    lag_curves : mapping band -> list of (lags_s, r) or None per scan, optional
        Each scan's lagged cross-correlation; None for a scan without an unbroken series.
    removal_maps : mapping method -> list of ndarray (n_voxels,) or None per scan, optional
        Each scan's seed map after each LFP-removal method.
    n_excluded : int
        Scans of the group left out by motion screening (reported, not used).
    nuisance : mapping, optional
        The BOLD preprocessing's nuisance regression, for the noise ceiling: ``n_confounds``,
        ``t_r``, ``high_pass`` and ``low_pass`` (:func:`~.noise_ceiling.nuisance_retention`).
        The observed r is divided by the share of an r that regression leaves at ``n_volumes``
        before the model is inverted (about 0.87 at 300 volumes, 0.97 at 1,200, with the study's
        9 regressors); ``group["nuisance_retention"]`` reports the factor. None: no correction,
        as the study did.

    Returns
    -------
    CohortSummary

    References
    ----------
    Tu, Cramer & Zhang (2024): one-sample and paired t-tests across scans, group-mean maps,
    noise-ceiling simulation.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> pattern = rng.standard_normal(500)
    >>> seeds = pattern + rng.standard_normal((8, 500))
    >>> powers = 0.5 * pattern + rng.standard_normal((8, 500))
    >>> r = np.array([np.corrcoef(p, s)[0, 1] for p, s in zip(powers, seeds)])
    >>> out = summarize_cohort(subjects=["01"] * 4 + ["02"] * 4, seed_maps=seeds, bands=["gamma"],
    ...                        spatial_r={"gamma": r}, power_maps={"gamma": powers},
    ...                        metrics={"pearson": {"gamma": np.full(8, 0.3)}}, primary_metric="pearson",
    ...                        n_volumes=300, noise_ceiling={"cnr": 1.3, "band": "gamma", "cnr_grid": [0.1, 5, 0.1]})
    >>> out.group["n_scans"], out.group["n_subjects"], round(out.bands[0]["temporal_r"], 2)
    (8, 2, 0.3)
    >>> out.bands[0]["spatial_r"] > out.bands[0]["scanwise_spatial_r"]   # averaging scans strengthens it
    True
    >>> out.bands[0]["missing"]["peak_lag_s"]
    'lags not computed for this band (RelationParams lag.band_sets)'
    """
    seed_maps = np.asarray(seed_maps, dtype=np.float64)
    if seed_maps.ndim != 2 or seed_maps.shape[0] == 0:
        raise ValueError(
            f"Expected seed_maps of shape (n_scans, n_voxels) with at least one scan; got {seed_maps.shape}"
        )
    n_scans, n_voxels = seed_maps.shape
    if len(subjects) != n_scans:
        raise ValueError(f"subjects has {len(subjects)} entries but there are {n_scans} seed maps")
    if primary_metric not in metrics:
        raise ValueError(f"primary_metric {primary_metric!r} is not among the metrics given: {sorted(metrics)}")
    group_seed = group_mean_map(seed_maps)
    shuffled_r = shuffled_r or {}
    lag_curves = lag_curves or {}

    summaries = []
    for band in bands:
        missing = {}
        s_r = np.asarray(spatial_r[band], dtype=float)
        primary = metrics[primary_metric].get(band)
        t_r = np.full(n_scans, np.nan) if primary is None else np.asarray(primary, dtype=float)
        spatial = one_sample_ttest(s_r)
        temporal = one_sample_ttest(t_r)
        paired = paired_ttest(s_r, t_r)
        group_power = group_mean_map(np.asarray(power_maps[band], dtype=np.float64))
        group_r = spatial_similarity(group_power, group_seed)
        try:
            fisher = fisher_z_mean(t_r)
        except ValueError:  # a primary metric that is not a correlation
            fisher = np.nan
            missing["temporal_r_fisher"] = f"{primary_metric} values are not correlations"
        out = {
            "band": band,
            "spatial_r": group_r,
            "spatial_r2": group_r**2,
            "scanwise_spatial_r": spatial["mean"],
            "spatial_t": spatial["t"],
            "spatial_p": spatial["p"],
            "spatial_d": spatial["d"],
            "spatial_ci_low": spatial["ci_low"],
            "spatial_ci_high": spatial["ci_high"],
            "temporal_r": temporal["mean"],
            "temporal_r_fisher": fisher,
            "temporal_t": temporal["t"],
            "temporal_p": temporal["p"],
            "temporal_d": temporal["d"],
            "temporal_ci_low": temporal["ci_low"],
            "temporal_ci_high": temporal["ci_high"],
            "spatial_vs_temporal_t": paired["t"],
            "spatial_vs_temporal_p": paired["p"],
            "group_power_map": group_power,
            "metrics": {},
        }
        if not np.isfinite(group_r):
            missing["spatial_r"] = missing["spatial_r2"] = "group maps constant or < 3 voxels finite in both"
        for name, test in (("spatial", spatial), ("temporal", temporal)):
            if test["n"] < 2:
                missing.update(dict.fromkeys((f"{name}_{f}" for f in ("t", "p", "d", "ci_low", "ci_high")), _TOO_FEW))
            elif not np.isfinite(test["d"]):
                missing[f"{name}_d"] = "no spread across scans (every scan has the same value)"
        if paired["n"] < 2:
            missing["spatial_vs_temporal_t"] = missing["spatial_vs_temporal_p"] = "fewer than 2 scans with both values"
        if primary is None:
            missing["temporal_r"] = f"{primary_metric} not computed for this band (RelationParams temporal.band_sets)"
        for name, per_band in metrics.items():
            if name != primary_metric:
                out["metrics"][name], why = _mean_or_reason(
                    per_band.get(band), "not computed for this band (RelationParams temporal.band_sets)"
                )
                if why:
                    missing[name] = why
        out["shuffled_r"], why = _mean_or_reason(
            shuffled_r.get(band), "shuffled control not computed for this band (temporal.shuffle.band_sets)"
        )
        if why:
            missing["shuffled_r"] = why
        out["peak_lag_s"], why = _peak_of_mean_curve(lag_curves.get(band))
        if why:
            missing["peak_lag_s"] = why
        out["missing"] = missing
        summaries.append(out)

    nc_band = next((b for b in summaries if b["band"] == noise_ceiling["band"]), None)
    grid = spaced(noise_ceiling["cnr_grid"])
    cnr, cnr_reason = _estimate_cnr(nc_band, n_scans, n_voxels, noise_ceiling, grid)
    retention = 1.0
    if nuisance and nuisance.get("n_confounds") and n_volumes >= 3:
        retention = nuisance_retention(
            int(n_volumes),
            t_r=float(nuisance["t_r"]),
            n_confounds=int(nuisance["n_confounds"]),
            high_pass=nuisance.get("high_pass"),
            low_pass=nuisance.get("low_pass"),
        )
    for b in summaries:
        b["inferred_true_r"], why = _infer(b["temporal_r"], cnr, cnr_reason, n_scans, n_volumes, retention)
        b["temporal_variance_explained"] = b["inferred_true_r"] ** 2
        if why:
            b["missing"]["inferred_true_r"] = b["missing"]["temporal_variance_explained"] = why
    curves = None
    if nc_band is not None and np.isfinite(nc_band["inferred_true_r"]):
        true_r = abs(nc_band["inferred_true_r"]) or 1e-6
        sim = simulate_noise_ceiling(true_r=true_r, n_trials=n_scans, n_timepoints=n_volumes, cnr_grid=grid)
        curves = {
            "cnr_grid": grid,
            "true_r": abs(nc_band["inferred_true_r"]),
            "mean_trial_r": sim["mean_trial_r"],
            "averaged_r": sim["averaged_r"],
        }

    group_missing = {"cnr": cnr_reason} if cnr_reason else {}
    removal = {}
    for method, maps in (removal_maps or {}).items():
        if maps is not None and len(maps) == n_scans and all(m is not None for m in maps):
            removal[method] = spatial_similarity(group_mean_map(np.stack(maps)), group_seed)
        else:
            removal[method] = np.nan
            group_missing[f"removal_{method}_r"] = "not computed for every scan of the group"
    group = {
        "cnr": cnr,
        "n_scans": n_scans,
        "n_subjects": len(set(subjects)),
        "n_excluded": int(n_excluded),
        "nuisance_retention": retention,
        "missing": group_missing,
    }
    return CohortSummary(group=group, bands=summaries, removal=removal, group_seed_map=group_seed, noise_ceiling=curves)
