"""The paper-style results table: spatial and temporal LFP-BOLD relationships per group of scans.

One function summarises any group of scans; the Cohort table stores it per (state, region), and
:func:`results` applies it to any grouping (e.g. per subject).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lfpbold.plugins.maps import group_mean_map, spatial_similarity
from lfpbold.plugins.stats import one_sample_ttest, paired_ttest

__all__ = ["results", "summarize_group", "scan_table", "COLUMNS"]

GROUPABLE = ("subject", "state", "region", "band", "session")
COLUMNS = ["spatial_r", "spatial_r2", "scanwise_spatial_r", "spatial_t", "spatial_p", "temporal_r", "temporal_t",
           "temporal_p", "spatial_vs_temporal_t", "spatial_vs_temporal_p", "n_scans", "n_subjects", "n_excluded"]
SCAN_KEY = ["subject", "session", "run"]


def summarize_group(scans: pd.DataFrame, seed_maps: np.ndarray, power_maps: np.ndarray, n_excluded: int = 0) -> dict:
    """Summarise one group of scans for one band.

    Parameters
    ----------
    scans : DataFrame
        One row per scan (and implant) with ``spatial_r`` and ``temporal_r`` (per-scan values) and ``subject``.
    seed_maps, power_maps : ndarray of shape (n_scans, n_voxels)
        The scans' seed maps and this band's LFP power maps, rows in the order of ``scans``.
    n_excluded : int
        Scans of the group left out by motion screening.

    Returns
    -------
    dict with the keys of :data:`COLUMNS`.
    """
    spatial = one_sample_ttest(scans["spatial_r"].to_numpy(float))
    temporal = one_sample_ttest(scans["temporal_r"].to_numpy(float))
    paired = paired_ttest(scans["spatial_r"].to_numpy(float), scans["temporal_r"].to_numpy(float))
    group_r = spatial_similarity(group_mean_map(power_maps), group_mean_map(seed_maps)) if len(scans) else np.nan
    return {
        "spatial_r": group_r,
        "spatial_r2": group_r**2,
        "scanwise_spatial_r": spatial["mean"],
        "spatial_t": spatial["t"],
        "spatial_p": spatial["p"],
        "temporal_r": temporal["mean"],
        "temporal_t": temporal["t"],
        "temporal_p": temporal["p"],
        "spatial_vs_temporal_t": paired["t"],
        "spatial_vs_temporal_p": paired["p"],
        "n_scans": int(len(scans)),
        "n_subjects": int(scans["subject"].nunique()) if len(scans) else 0,
        "n_excluded": int(n_excluded),
    }


def scan_set_hash(scans: pd.DataFrame) -> str:
    """Identifies which scans a cohort row was computed from, so a stale row can be found."""
    keys = sorted(map(tuple, scans[SCAN_KEY].astype(str).to_numpy().tolist()))
    return hashlib.md5(repr(keys).encode()).hexdigest()


def _paramset_restriction(lfp_paramset, band_paramset, bold_paramset) -> dict:
    return {"lfp_paramset": lfp_paramset, "band_paramset": band_paramset, "bold_paramset": bold_paramset}


def scan_table(*, lfp_paramset: int = 0, band_paramset: int = 0, bold_paramset: int = 0,
               band_set: str = "classic", restriction=None) -> pd.DataFrame:
    """Per-scan, per-implant, per-band spatial and temporal r with the scan's state (a DataFrame)."""
    from lfpbold.schemas import acquisition, analysis, params

    restr = _paramset_restriction(lfp_paramset, band_paramset, bold_paramset)
    query = (
        analysis.SpatialSimilarity.Band.proj(spatial_r="r")
        * analysis.TemporalCorrelation.Band.proj(temporal_r="r")
        * acquisition.Session.proj("state")
        * (params.FrequencyBand & {"band_set": band_set}).proj("band_order")
        & restr
    )
    if restriction is not None:
        query = query & restriction
    df = query.to_pandas().reset_index()
    return df.sort_values(["state", "region", "band_order", *SCAN_KEY]).reset_index(drop=True)


def _excluded_scans(bold_paramset: int) -> pd.DataFrame:
    """Scans (per implant) that motion screening left out."""
    from lfpbold.schemas import acquisition, analysis

    query = analysis.PreprocessedBold & {"bold_paramset": bold_paramset} & {"excluded": True}
    query = query.proj() * acquisition.Session.proj("state") * acquisition.Implant.proj()
    return query.to_pandas().reset_index()


def results(by: Sequence[str] = ("state", "region", "band"), *, lfp_paramset: int = 0, band_paramset: int = 0,
            bold_paramset: int = 0, band_set: str = "classic", restriction=None) -> pd.DataFrame:
    """The study's results table, one row per group (default: state x region x band).

    Parameters
    ----------
    by : sequence of {"subject", "session", "state", "region", "band"}
        Grouping. ``state``, ``region`` and ``band`` are always included.
    lfp_paramset, band_paramset, bold_paramset : int
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
    from lfpbold.schemas import analysis

    unknown = set(by) - set(GROUPABLE)
    if unknown:
        raise ValueError(f"Cannot group by {sorted(unknown)}; choose from {list(GROUPABLE)}")
    group_cols = [c for c in ("state", "region", "subject", "session", "band") if c in set(by) | {"state", "region", "band"}]
    restr = _paramset_restriction(lfp_paramset, band_paramset, bold_paramset)
    scans = scan_table(**restr, band_set=band_set, restriction=restriction)
    if scans.empty:
        return pd.DataFrame(columns=group_cols + COLUMNS)
    seed = (analysis.SeedMap & {"bold_paramset": bold_paramset}).to_pandas().reset_index()
    seed_maps = {tuple(r): m for r, m in zip(seed[SCAN_KEY + ["region"]].itertuples(index=False), seed["seed_map"])}
    bands = [{"band": b} for b in scans["band"].unique()]
    pmaps = (analysis.LFPPowerMap.Band & restr & bands).proj("power_map").to_pandas().reset_index()
    power_maps = {tuple(r): m for r, m in zip(pmaps[SCAN_KEY + ["region", "band"]].itertuples(index=False),
                                              pmaps["power_map"])}
    excluded = _excluded_scans(bold_paramset)
    rows = []
    for group, df in scans.groupby(group_cols, sort=False):
        keys = [tuple(r) for r in df[SCAN_KEY + ["region"]].itertuples(index=False)]
        seeds = np.stack([seed_maps[k] for k in keys])
        powers = np.stack([power_maps[k + (b,)] for k, b in zip(keys, df["band"])])
        group_key = dict(zip(group_cols, group))
        exc = excluded
        for col in ("state", "region", "subject", "session"):
            if col in group_key and col in exc:
                exc = exc[exc[col] == group_key[col]]
        rows.append({**group_key, **summarize_group(df, seeds, powers, n_excluded=len(exc))})
    return pd.DataFrame(rows, columns=group_cols + COLUMNS)
