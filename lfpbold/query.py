"""The paper-style results table: spatial and temporal LFP-BOLD relationships per group of scans.

:func:`summarize_cohort` summarises any group of scans; the Cohort table stores it per (state,
region), and :func:`results` applies it to any grouping (e.g. per subject), so both agree.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lfpbold.plugins.maps import group_mean_map, spatial_similarity
from lfpbold.plugins.noise_ceiling import estimate_cnr, infer_true_r, simulate_noise_ceiling
from lfpbold.plugins.stats import one_sample_ttest, paired_ttest
from lfpbold.plugins.temporal import fisher_z_mean, peak_lag

__all__ = ["results", "summarize_cohort", "gather", "scan_table", "COLUMNS", "GROUP_COLUMNS", "BAND_COLUMNS"]

GROUPABLE = ("subject", "session", "state", "region", "band")
SCAN_KEY = ["subject", "session", "run"]
#: per group (the same for every band of the group)
GROUP_COLUMNS = ["cnr", "removal_ols_r", "removal_soft_r", "removal_censor_r", "n_scans", "n_subjects", "n_excluded"]
#: per group and band
BAND_COLUMNS = ["spatial_r", "spatial_r2", "scanwise_spatial_r", "spatial_t", "spatial_p", "temporal_r",
                "temporal_r_fisher", "temporal_t", "temporal_p", "spatial_vs_temporal_t", "spatial_vs_temporal_p",
                "spearman_r", "mutual_info", "shuffled_r", "peak_lag_s", "inferred_true_r",
                "temporal_variance_explained"]
COLUMNS = BAND_COLUMNS + GROUP_COLUMNS


@dataclass
class Gathered:
    """Per-scan values and maps of one parameter-set combination, keyed by (subject, session, run, region)."""

    scans: pd.DataFrame  # one row per scan, implant and band
    seed_maps: dict = field(default_factory=dict)
    power_maps: dict = field(default_factory=dict)  # key + (band,)
    removal_maps: dict = field(default_factory=dict)  # key + (method,)
    lag_curves: dict = field(default_factory=dict)  # key + (band,) -> (lags_s, r)
    excluded: pd.DataFrame | None = None  # scan x implant rows left out by motion screening
    n_volumes: int = 0


def _nan(value):
    """A float for the database, None for missing (MySQL has no NaN)."""
    return None if value is None or not np.isfinite(value) else float(value)


def _keys(df: pd.DataFrame, extra=()) -> list[tuple]:
    """(subject, session, run, region, *extra) of each row: how maps are looked up."""
    return [tuple(r) for r in df[SCAN_KEY + ["region", *extra]].itertuples(index=False)]


def scan_set_hash(scans: pd.DataFrame) -> str:
    """Identifies which scans a cohort row was computed from, so a stale row can be found."""
    keys = sorted(set(map(tuple, scans[SCAN_KEY].astype(str).to_numpy().tolist())))
    return hashlib.md5(repr(keys).encode()).hexdigest()


def _restr(lfp_paramset, band_paramset, bold_paramset, relation_paramset=None) -> dict:
    r = {"lfp_paramset": lfp_paramset, "band_paramset": band_paramset, "bold_paramset": bold_paramset}
    if relation_paramset is not None:
        r["relation_paramset"] = relation_paramset
    return r


def scan_table(*, lfp_paramset: int = 0, band_paramset: int = 0, bold_paramset: int = 0, relation_paramset: int = 0,
               band_set: str = "classic", restriction=None) -> pd.DataFrame:
    """Per scan, implant and band: spatial r, temporal r (Pearson, Spearman, MI, shuffled) and peak lag."""
    from lfpbold.schemas import acquisition, analysis, params

    restr = _restr(lfp_paramset, band_paramset, bold_paramset)
    query = (
        analysis.SpatialSimilarity.Band.proj(spatial_r="r")
        * analysis.TemporalCorrelation.Band.proj("spearman_r", "mutual_info", "shuffled_r", temporal_r="r")
        * acquisition.Session.proj("state")
        * (params.FrequencyBand & {"band_set": band_set}).proj("band_order")
        & restr
    )
    if restriction is not None:
        query = query & restriction
    df = query.to_pandas().reset_index()
    lags = (analysis.LagCorrelation.Band & restr & {"relation_paramset": relation_paramset}).proj("peak_lag_s")
    lags = lags.to_pandas().reset_index()
    on = SCAN_KEY + ["region", "band"] + list(restr)
    if lags.empty:
        df["peak_lag_s"] = np.nan
    else:
        df = df.merge(lags[on + ["peak_lag_s"]], on=on, how="left")
    return df.sort_values(["state", "region", "band_order", *SCAN_KEY]).reset_index(drop=True)


def gather(*, lfp_paramset=0, band_paramset=0, bold_paramset=0, relation_paramset=0, band_set="classic",
           restriction=None) -> Gathered:
    """Everything :func:`summarize_cohort` needs, fetched once."""
    from lfpbold.schemas import acquisition, analysis

    restr = _restr(lfp_paramset, band_paramset, bold_paramset)
    scans = scan_table(**restr, relation_paramset=relation_paramset, band_set=band_set, restriction=restriction)
    g = Gathered(scans=scans)
    if scans.empty:
        return g
    seed = (analysis.SeedMap & {"bold_paramset": bold_paramset}).proj("seed_map").to_pandas().reset_index()
    g.seed_maps = dict(zip(_keys(seed), seed["seed_map"]))
    bands = [{"band": b} for b in scans["band"].unique()]
    power = (analysis.LFPPowerMap.Band & restr & bands).proj("power_map").to_pandas().reset_index()
    g.power_maps = dict(zip(_keys(power, ["band"]), power["power_map"]))
    removal = (analysis.LFPRemoval.Method & restr & {"relation_paramset": relation_paramset}).proj("seed_map")
    removal = removal.to_pandas().reset_index()
    if not removal.empty:
        g.removal_maps = dict(zip(_keys(removal, ["removal"]), removal["seed_map"]))
    lags = (analysis.LagCorrelation.Band & restr & {"relation_paramset": relation_paramset} & bands
            & "peak_lag_s IS NOT NULL").proj("lags_s", "r").to_pandas().reset_index()
    if not lags.empty:
        g.lag_curves = dict(zip(_keys(lags, ["band"]), zip(lags["lags_s"], lags["r"])))
    excluded = (analysis.PreprocessedBold & {"bold_paramset": bold_paramset} & {"excluded": True}).proj()
    excluded = (excluded * acquisition.Session.proj("state") * acquisition.Implant.proj()).to_pandas().reset_index()
    g.excluded = excluded.reindex(columns=[*SCAN_KEY, "region", "state"])  # keeps the columns when empty
    n_kept = (analysis.PreprocessedBold & {"bold_paramset": bold_paramset} & {"excluded": False}).to_arrays("n_kept")
    g.n_volumes = int(np.median(n_kept)) if len(n_kept) else 0
    return g


def _peak_of_mean_curve(curves) -> float:
    """Peak lag of the cross-correlation averaged over scans (scans with an unbroken series)."""
    curves = [c for c in curves if c is not None]
    if not curves:
        return np.nan
    lags = curves[0][0]
    return peak_lag(lags, np.mean([r for _, r in curves], axis=0), absolute=True)


def _noise_ceiling(gamma: dict, n_scans: int, n_voxels: int, n_volumes: int, settings: dict):
    """CNR (estimated from the gamma maps as the study did, or given) and the model's curves."""
    from lfpbold.schemas.params import grid as spaced

    cnr = settings.get("cnr", "estimate")
    grid = spaced(settings["cnr_grid"])
    if cnr == "estimate":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cnr = estimate_cnr(group_r=gamma["spatial_r"], mean_scan_r=gamma["scanwise_spatial_r"],
                                   n_trials=n_scans, n_timepoints=n_voxels, cnr_grid=grid)
        except (ValueError, TypeError):  # too few scans, or maps of opposite sign: no estimate
            return np.nan, None
    return float(cnr), grid


def summarize_cohort(scans: pd.DataFrame, data: Gathered, *, relation: dict, n_excluded: int = 0):
    """Summarise one group of scans (all bands): the group's values and one dict per band.

    Parameters
    ----------
    scans : DataFrame
        The group's rows of :func:`scan_table` (one per scan, implant and band).
    data : Gathered
        Maps for those scans.
    relation : dict
        The RelationParams parameters (noise ceiling, removal methods).
    n_excluded : int
        Scans of the group left out by motion screening.

    Returns
    -------
    group : dict
        :data:`GROUP_COLUMNS` plus ``noise_ceiling`` (cnr grid and curves, or None).
    bands : list of dict
        ``band``, :data:`BAND_COLUMNS` and the band's ``group_seed_map`` and ``group_power_map``,
        in the order of ``scans``.
    """
    per_scan = scans.drop_duplicates(SCAN_KEY + ["region"])
    keys = _keys(per_scan)
    seeds = np.stack([data.seed_maps[k] for k in keys])
    group_seed = group_mean_map(seeds)
    bands = []
    for band, df in scans.groupby("band", sort=False):
        bkeys = _keys(df)
        powers = np.stack([data.power_maps[k + (band,)] for k in bkeys])
        bseeds = np.stack([data.seed_maps[k] for k in bkeys])
        spatial = one_sample_ttest(df["spatial_r"].to_numpy(float))
        temporal = one_sample_ttest(df["temporal_r"].to_numpy(float))
        paired = paired_ttest(df["spatial_r"].to_numpy(float), df["temporal_r"].to_numpy(float))
        group_power, group_band_seed = group_mean_map(powers), group_mean_map(bseeds)
        group_r = spatial_similarity(group_power, group_band_seed)
        bands.append({
            "band": band, "spatial_r": group_r, "spatial_r2": group_r**2, "scanwise_spatial_r": spatial["mean"],
            "spatial_t": spatial["t"], "spatial_p": spatial["p"], "temporal_r": temporal["mean"],
            "temporal_r_fisher": fisher_z_mean(df["temporal_r"].to_numpy(float)),
            "temporal_t": temporal["t"], "temporal_p": temporal["p"],
            "spatial_vs_temporal_t": paired["t"], "spatial_vs_temporal_p": paired["p"],
            "spearman_r": float(df["spearman_r"].mean()),
            "mutual_info": float(df["mutual_info"].mean()) if df["mutual_info"].notna().any() else np.nan,
            "shuffled_r": float(df["shuffled_r"].mean()) if df["shuffled_r"].notna().any() else np.nan,
            "peak_lag_s": _peak_of_mean_curve([data.lag_curves.get(k + (band,)) for k in bkeys]),
            "group_seed_map": group_band_seed, "group_power_map": group_power,
        })
    nc = relation["noise_ceiling"]
    gamma = next((b for b in bands if b["band"] == nc.get("band", "gamma")), None)
    cnr, grid = (np.nan, None) if gamma is None else _noise_ceiling(gamma, len(keys), seeds.shape[1],
                                                                    data.n_volumes, nc)
    curves = None
    for b in bands:
        b["inferred_true_r"] = b["temporal_variance_explained"] = np.nan
        if np.isfinite(cnr) and np.isfinite(b["temporal_r"]) and data.n_volumes >= 3:
            try:
                with warnings.catch_warnings(record=True) as clipped:
                    warnings.simplefilter("always")
                    inferred = infer_true_r(b["temporal_r"], cnr=cnr, n_trials=len(keys), n_timepoints=data.n_volumes)
            except (ValueError, RuntimeError):  # too few scans for a monotone curve: no inference
                continue
            if clipped:  # the observed r is beyond what the model reaches at this CNR: no inference
                continue
            b["inferred_true_r"], b["temporal_variance_explained"] = inferred["true_r"], inferred["variance_explained"]
    if gamma is not None and np.isfinite(gamma["inferred_true_r"]) and grid is not None:
        sim = simulate_noise_ceiling(true_r=abs(gamma["inferred_true_r"]) or 1e-6, n_trials=len(keys),
                                     n_timepoints=data.n_volumes, cnr_grid=grid)
        curves = {"cnr_grid": grid, "true_r": abs(gamma["inferred_true_r"]), "mean_trial_r": sim["mean_trial_r"],
                  "averaged_r": sim["averaged_r"]}
    group = {"cnr": cnr, "n_scans": len(keys), "n_subjects": int(per_scan["subject"].nunique()),
             "n_excluded": int(n_excluded), "noise_ceiling": curves}
    for method in ("ols", "soft", "censor"):
        maps = [data.removal_maps.get(k + (method,)) for k in keys]
        group[f"removal_{method}_r"] = (spatial_similarity(group_mean_map(np.stack(maps)), group_seed)
                                        if maps and all(m is not None for m in maps) else np.nan)
    return group, bands


def results(by: Sequence[str] = ("state", "region", "band"), *, lfp_paramset: int = 0, band_paramset: int = 0,
            bold_paramset: int = 0, relation_paramset: int = 0, band_set: str = "classic",
            restriction=None) -> pd.DataFrame:
    """The study's results table, one row per group (default: state x region x band).

    Parameters
    ----------
    by : sequence of {"subject", "session", "state", "region", "band"}
        Grouping. ``state``, ``region`` and ``band`` are always included.
    lfp_paramset, band_paramset, bold_paramset, relation_paramset : int
        Which parameter sets' results to summarise.
    band_set : {"classic", "one_hz"}
        The five named bands, or the 1-Hz bands.
    restriction : dict or DataJoint restriction, optional
        Limit the scans, e.g. ``{"subject": "01"}``.

    Returns
    -------
    DataFrame with the grouping columns and :data:`COLUMNS`.

    Examples
    --------
    >>> import lfpbold
    >>> lfpbold.connect()                                           # doctest: +SKIP
    >>> df = lfpbold.results()                                      # doctest: +SKIP
    >>> df.query("band == 'gamma'")[["state", "region", "spatial_r", "temporal_r"]]  # doctest: +SKIP
    """
    from lfpbold.schemas import params

    unknown = set(by) - set(GROUPABLE)
    if unknown:
        raise ValueError(f"Cannot group by {sorted(unknown)}; choose from {list(GROUPABLE)}")
    group_cols = [c for c in ("state", "region", "subject", "session") if c in set(by) | {"state", "region"}]
    data = gather(lfp_paramset=lfp_paramset, band_paramset=band_paramset, bold_paramset=bold_paramset,
                  relation_paramset=relation_paramset, band_set=band_set, restriction=restriction)
    if data.scans.empty:
        return pd.DataFrame(columns=group_cols + ["band"] + COLUMNS)
    relation = params.RelationParams.get_params({"relation_paramset": relation_paramset})
    rows = []
    for group, df in data.scans.groupby(group_cols, sort=False):
        group_key = dict(zip(group_cols, group))
        exc = data.excluded
        for col, value in group_key.items():
            exc = exc[exc[col] == value]
        summary, bands = summarize_cohort(df, data, relation=relation, n_excluded=len(exc))
        for b in bands:
            rows.append({**group_key, **b, **{c: summary[c] for c in GROUP_COLUMNS}})
    return pd.DataFrame(rows, columns=group_cols + ["band"] + COLUMNS)
