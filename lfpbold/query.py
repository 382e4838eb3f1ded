"""The paper-style results table: spatial and temporal LFP-BOLD relationships per group of scans.

Grouped as the ``Cohort`` table stores it (state x region x band), :func:`results` reads the stored
rows. Any other grouping (per subject, per session) or a restriction to some scans applies the same
function, :func:`lfpbold.plugins.cohort.summarize_cohort`, to the stored per-scan rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from lfpbold.constants import BAND_FIGURES
from lfpbold.validate import check_restriction

__all__ = ["results", "add_fdr", "COLUMNS", "FDR_COLUMNS", "GROUPABLE"]

GROUPABLE = ("subject", "session", "state", "region", "band")
#: What a ``restriction`` may name: the attributes of a scan and implant.
RESTRICTABLE = ("subject", "session", "run", "state", "region")

#: FDR-adjusted p values added to the table as a whole: column -> the p values it adjusts.
FDR_COLUMNS = {"spatial_p_fdr": "spatial_p", "temporal_p_fdr": "temporal_p"}


def _with_fdr(figures) -> list[str]:
    out = []
    for c in figures:
        out.append(c)
        out += [fdr for fdr, p in FDR_COLUMNS.items() if p == c]
    return out


#: Band figures shown before the other temporal metrics' columns, and after them.
_BEFORE_METRICS = _with_fdr(BAND_FIGURES[: BAND_FIGURES.index("shuffled_r")])
_AFTER_METRICS = BAND_FIGURES[BAND_FIGURES.index("shuffled_r") :]
_COUNTS = ["n_scans", "n_subjects", "n_excluded"]
#: The columns every results table has (besides the grouping, the other temporal metrics, one
#: ``removal_<method>_r`` per removal method, and ``missing``).
COLUMNS = [*_BEFORE_METRICS, *_AFTER_METRICS, "cnr", *_COUNTS]


def _columns(relation: dict) -> list[str]:
    metrics = relation["temporal"]["metrics"][1:]
    removal = [f"removal_{m}_r" for m in relation["removal"]["methods"]]
    return [*_BEFORE_METRICS, *metrics, *_AFTER_METRICS, "cnr", *removal, *_COUNTS, "missing"]


def _missing_text(*dicts) -> str:
    """Why figures are missing, as one readable string: ``figure, figure: reason; ...``."""
    by_reason: dict[str, list[str]] = {}
    for d in dicts:
        for figure, reason in (d or {}).items():
            by_reason.setdefault(reason, []).append(figure)
    return "; ".join(f"{', '.join(figures)}: {reason}" for reason, figures in by_reason.items())


def _rows_from_summary(group: dict, summary) -> list[dict]:
    g = summary.group
    removal = {f"removal_{m}_r": r for m, r in summary.removal.items()}
    return [
        {
            **group,
            "band": b["band"],
            **{c: b[c] for c in BAND_FIGURES},
            **b["metrics"],
            "cnr": g["cnr"],
            **removal,
            **{c: g[c] for c in _COUNTS},
            "missing": _missing_text(g["missing"], b["missing"]),
        }
        for b in summary.bands
    ]


def add_fdr(df: pd.DataFrame) -> pd.DataFrame:
    """Add :data:`FDR_COLUMNS`: Benjamini-Hochberg over every row of the table with a p value.

    The family is the table's rows (bands x regions x states, and subjects or sessions when grouped
    by them); rows without a p value stay NaN and do not count.

    Examples
    --------
    >>> df = add_fdr(pd.DataFrame({"spatial_p": [0.01, 0.04, None], "temporal_p": [0.02, 0.5, 0.03]}))
    >>> df["spatial_p_fdr"].round(3).tolist(), df["temporal_p_fdr"].round(3).tolist()
    ([0.02, 0.04, nan], [0.045, 0.5, 0.045])
    """
    from scipy.stats import false_discovery_control

    df = df.copy()
    for fdr, p in FDR_COLUMNS.items():
        values = pd.to_numeric(df[p], errors="coerce") if p in df else pd.Series(dtype=float, index=df.index)
        out = pd.Series(float("nan"), index=df.index)
        ok = values.notna()
        if ok.any():
            out[ok] = false_discovery_control(values[ok].to_numpy(dtype=float), method="bh")
        df[fdr] = out
    return df


def _stored(combo: dict, band_set: str) -> pd.DataFrame:
    """The Cohort table's rows for one combination, one per state, region and band."""
    from lfpbold.schemas import cohort, params

    master = (cohort.Cohort & combo).proj(*_COUNTS).to_pandas().reset_index()
    if master.empty:
        return master
    bands = params.FrequencyBand & {"band_set": band_set}
    band = (cohort.Cohort.Band * bands.proj("band_order") & combo).proj(*BAND_FIGURES, "cnr", "missing", "band_order")
    keys = ["state", "region"]
    df = band.to_pandas().reset_index().merge(master[[*keys, *_COUNTS]], on=keys)
    metric = (cohort.Cohort.Metric & combo & bands).proj("value").to_pandas().reset_index()
    if not metric.empty:
        wide = metric.pivot_table(index=[*keys, "band"], columns="metric", values="value", dropna=False)
        df = df.merge(wide.reset_index(), on=[*keys, "band"], how="left")
    removal = (cohort.Cohort.Removal & combo).proj("spatial_r").to_pandas().reset_index()
    if not removal.empty:
        removal["removal"] = "removal_" + removal["removal"] + "_r"
        wide = removal.pivot_table(index=keys, columns="removal", values="spatial_r", dropna=False)
        df = df.merge(wide.reset_index(), on=keys, how="left")
    df["missing"] = [_missing_text(m) for m in df["missing"]]
    return df.sort_values(["state", "region", "band_order"], ignore_index=True)


def results(
    by: Sequence[str] = ("state", "region", "band"),
    *,
    lfp_paramset: int = 0,
    band_paramset: int = 0,
    bold_paramset: int = 0,
    relation_paramset: int = 0,
    band_set: str = "classic",
    restriction=None,
) -> pd.DataFrame:
    """The study's results table, one row per group (default: state x region x band).

    Parameters
    ----------
    by : sequence of {"subject", "session", "state", "region", "band"}
        Grouping. ``state``, ``region`` and ``band`` are always included.
    lfp_paramset, band_paramset, bold_paramset, relation_paramset : int
        Which parameter sets' results to summarise.
    band_set : {"classic", "one_hz"}
        The five named bands, or the 1-Hz bands.
    restriction : dict or list of dicts, optional
        Limit the scans, e.g. ``{"subject": "01"}``, by any of :data:`RESTRICTABLE` (plain string
        or integer values; a string restriction would be SQL and is refused).

    Returns
    -------
    DataFrame
        The grouping columns, :data:`COLUMNS`, a column per temporal metric other than the primary
        one (named after the metric), ``removal_<method>_r`` per LFP-removal method, and ``missing``:
        why a figure is empty.

    Examples
    --------
    >>> import lfpbold
    >>> lfpbold.connect()                                           # doctest: +SKIP
    >>> df = lfpbold.results()                                      # doctest: +SKIP
    >>> df.query("band == 'gamma'")[["state", "region", "spatial_r", "temporal_r"]]  # doctest: +SKIP
    """
    from lfpbold.schemas import cohort, params

    unknown = set(by) - set(GROUPABLE)
    if unknown:
        raise ValueError(f"Cannot group by {sorted(unknown)}; choose from {list(GROUPABLE)}")
    if band_set not in params.BAND_SETS:
        raise ValueError(f"band_set must be one of {list(params.BAND_SETS)}; got {band_set!r}")
    combo = {
        "lfp_paramset": lfp_paramset,
        "band_paramset": band_paramset,
        "bold_paramset": bold_paramset,
        "relation_paramset": relation_paramset,
    }
    combo = params.check_paramsets(combo)
    restriction = check_restriction(restriction, RESTRICTABLE)
    relation = params.RelationParams.get_params(combo)
    group_cols = [c for c in ("state", "region", "subject", "session") if c in set(by) | {"state", "region"}]
    columns = [*group_cols, "band", *_columns(relation)]
    if set(group_cols) == {"state", "region"} and restriction is None:
        return add_fdr(_stored(combo, band_set)).reindex(columns=columns)
    data = cohort.gather(combo, band_set=band_set, restriction=restriction)
    if data.scans.empty:
        return pd.DataFrame(columns=columns)
    rows = [row for group, summary in cohort.summarize(data, group_cols) for row in _rows_from_summary(group, summary)]
    return add_fdr(pd.DataFrame(rows)).reindex(columns=columns)
