"""Cohort-level statistics: the study's figures per state and region, stored for every combination.

:func:`gather` reads the stored per-scan rows of one parameter-set combination; :func:`summarize`
groups them and applies :func:`lfpbold.plugins.cohort.summarize_cohort`, the one definition of every
cohort figure. :class:`Cohort` stores that summary per (state, region); a row remembers which scans
it summarised, and ``lfpbold populate`` recomputes rows whose scans changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import datajoint as dj
import numpy as np
import pandas as pd

from lfpbold.constants import BAND_FIGURES

from . import acquisition, analysis, params, relations
from .analysis import db_float
from .params import PARAMSET_KEYS

if TYPE_CHECKING:
    from lfpbold.plugins.cohort import CohortSummary

schema = dj.Schema()

SCAN_KEY = ["subject", "session", "run"]
#: one row of per-scan data: a scan and one of its implants
SCAN_IMPLANT = [*SCAN_KEY, "region"]


def _keys(df: pd.DataFrame, extra=()) -> list[tuple]:
    """(subject, session, run, region, *extra) of each row: how per-scan values are looked up."""
    return [tuple(r) for r in df[[*SCAN_IMPLANT, *extra]].itertuples(index=False)]


def scan_set_hash(scans: pd.DataFrame) -> str:
    """Identifies which scans a cohort row was computed from, so a stale row can be found."""
    keys = sorted(set(map(tuple, scans[SCAN_KEY].astype(str).to_numpy().tolist())))
    return hashlib.md5(repr(keys).encode()).hexdigest()


@dataclass
class Gathered:
    """The stored per-scan rows of one parameter-set combination and one band set."""

    relation: dict  # the combination's RelationParams parameters
    bands: list[str]  # the band set's bands, in display order
    scans: pd.DataFrame  # one row per scan and implant with a seed map: SCAN_IMPLANT + state
    seed_maps: dict = field(default_factory=dict)  # scan-implant key -> map
    spatial_r: dict = field(default_factory=dict)  # key + (band,) -> r
    power_maps: dict = field(default_factory=dict)  # key + (band,) -> the primary method's map
    metrics: dict = field(default_factory=dict)  # key + (band, metric) -> value
    computed: set = field(default_factory=set)  # (band, metric) pairs some scan has
    shuffled: dict = field(default_factory=dict)  # key + (band,) -> mean of the shuffled control
    lag_curves: dict = field(default_factory=dict)  # key + (band,) -> (lags_s, r) or None
    removal_maps: dict = field(default_factory=dict)  # key + (method,) -> map
    excluded: pd.DataFrame | None = None  # scan x implant rows left out by motion screening
    n_volumes: int = 0
    nuisance: dict | None = None  # the BOLD method's nuisance regression (summarize_cohort's ``nuisance``)


def nuisance_regression(combo: dict, scans) -> dict | None:
    """What the combination's BOLD preprocessing regresses out, for the noise ceiling: the method's
    ``nuisance_regressors`` (none if it does not say), its band-pass and the scans' median TR."""
    from lfpbold.plugins import get_plugin

    name, kw = params.method_and_kwargs(params.BoldParams.get_params(combo)["bold_preprocessing"], "bold_preprocessing")
    counter = getattr(get_plugin("bold_preprocessing", name), "nuisance_regressors", None)
    if counter is None or scans.empty:
        return None
    runs = scans[SCAN_KEY].drop_duplicates().to_dict("records")
    t_r = (acquisition.FMRIRun & runs).to_arrays("t_r")
    return {
        "n_confounds": int(counter(**kw)),
        "t_r": float(np.median(t_r)),
        "high_pass": kw.get("high_pass", 0.01),
        "low_pass": kw.get("low_pass", 0.1),
    }


def combination(key) -> dict:
    """The parameter-set numbers of ``key`` (dict-like with the four ``*_paramset`` attributes)."""
    return {k: int(key[k]) for k in PARAMSET_KEYS}


def _scans(combo: dict, restriction=None):
    """The scans and implants (with ``state``) that have spatial similarity rows for ``combo``, as a query."""
    query = (relations.SpatialSimilarity.proj() * acquisition.Session.proj("state")) & combo
    return query if restriction is None else query & restriction


def scan_keys(combo: dict, restriction=None) -> pd.DataFrame:
    """Scan and implant keys (with ``state``) that have a seed map and spatial similarity for ``combo``."""
    df = _scans(combo, restriction).to_pandas().reset_index()
    return df.reindex(columns=[*SCAN_IMPLANT, "state"]).sort_values(["state", "region", *SCAN_KEY], ignore_index=True)


#: what :func:`gather_sets` can read; a caller names the parts it needs, the rest is not fetched
GATHERED_PARTS = (
    "seed_maps",
    "spatial_r",
    "power_maps",
    "metrics",
    "shuffled",
    "lag_curves",
    "removal_maps",
    "excluded",
)


def gather(combo: dict, *, band_set: str = "classic", restriction=None) -> Gathered:
    """Everything :func:`summarize` needs for one combination and band set, fetched once.

    Parameters
    ----------
    combo : dict
        ``lfp_paramset``, ``band_paramset``, ``bold_paramset``, ``relation_paramset``.
    band_set : str
        A FrequencyBand set: ``classic`` or ``one_hz``.
    restriction : dict or list of dicts, optional
        Limits the scans, e.g. ``{"state": "sedated"}`` or ``{"subject": "01"}``.
    """
    return gather_sets(combo, [band_set], restriction=restriction)[band_set]


def gather_sets(
    combo: dict, band_sets: Sequence[str], *, restriction=None, parts=GATHERED_PARTS
) -> dict[str, Gathered]:
    """:func:`gather` for several band sets at once, each table read once for all of them.

    The scans, seed maps, LFP-removal maps and excluded scans are the same for every band set;
    the per-band rows of all the sets come in one query per table (a band's name is its
    FrequencyBand key, so the sets share the dictionaries: each set's summary looks up only its
    own bands). Only the ``parts`` named are read (the scans always are), and only the columns
    they need.

    Parameters
    ----------
    combo : dict
        ``lfp_paramset``, ``band_paramset``, ``bold_paramset``, ``relation_paramset``.
    band_sets : sequence of str
        FrequencyBand sets, e.g. ``["classic", "one_hz"]``.
    restriction : dict or list of dicts, optional
        Limits the scans.
    parts : iterable of str
        Names of :data:`GATHERED_PARTS` to read; e.g. ``("seed_maps", "power_maps")`` for the
        group map statistics.

    Returns
    -------
    dict
        Band set -> :class:`Gathered`.
    """
    parts = set(parts)
    unknown = parts - set(GATHERED_PARTS)
    if unknown:
        raise ValueError(f"gather_sets: unknown parts {sorted(unknown)}; known: {', '.join(GATHERED_PARTS)}")
    relation = params.RelationParams.get_params(combo)
    band_rows = (params.FrequencyBand & [{"band_set": b} for b in band_sets]).proj("band_set", "band_order")
    band_rows = band_rows.to_dicts(order_by="band_order")
    bands = {b: [r["band"] for r in band_rows if r["band_set"] == b] for b in band_sets}
    scans = scan_keys(combo, restriction)
    out = {b: Gathered(relation=relation, bands=bands[b], scans=scans) for b in band_sets}
    if scans.empty:
        return out
    shared = Gathered(relation=relation, bands=[b for s in band_sets for b in bands[s]], scans=scans)
    which = _scans(combo, restriction)  # a semijoin, however many scans there are
    in_set = [{"band": b} for b in shared.bands]

    def rows(query, *columns):
        # One structured array: DataJoint decodes it a column at a time (to_dicts and to_pandas
        # look the heading up for every value of every row, most of the cost here).
        return query.proj(*columns).to_arrays()

    def keyed(arr, extra=()):
        return list(zip(*(arr[c].tolist() for c in [*SCAN_IMPLANT, *extra]), strict=True))

    if "seed_maps" in parts:
        seed = rows(relations.SeedMap & combo & which, "seed_map")
        shared.seed_maps = dict(zip(keyed(seed), seed["seed_map"], strict=True))
    if "spatial_r" in parts:
        spatial = rows(relations.SpatialSimilarity.Band & combo & which & in_set, "r")
        shared.spatial_r = dict(zip(keyed(spatial, ["band"]), spatial["r"].astype(float), strict=True))
    if "power_maps" in parts:
        primary_map = {"map_method": relation["maps"]["methods"][0]}
        power = rows(relations.LFPPowerMap.Map & combo & which & in_set & primary_map, "power_map")
        shared.power_maps = dict(zip(keyed(power, ["band"]), power["power_map"], strict=True))
    if "metrics" in parts:
        metric = rows(relations.TemporalCorrelation.Metric & combo & which & in_set, "value")
        if metric.size:
            shared.metrics = dict(zip(keyed(metric, ["band", "metric"]), metric["value"].astype(float), strict=True))
            shared.computed = set(zip(metric["band"], metric["metric"], strict=True))
    if "shuffled" in parts:
        shuffle = rows(relations.TemporalCorrelation.Shuffle & combo & which & in_set, "null_mean")
        if shuffle.size:
            shared.shuffled = dict(zip(keyed(shuffle, ["band"]), shuffle["null_mean"].astype(float), strict=True))
    if "lag_curves" in parts:
        lags = rows(relations.LagCorrelation.Band & combo & which & in_set, "lags_s", "r")
        if lags.size:
            curves = zip(keyed(lags, ["band"]), lags["lags_s"], lags["r"], strict=True)
            shared.lag_curves = {k: (lg, r) if lg is not None else None for k, lg, r in curves}
    if "removal_maps" in parts:
        removal = rows(relations.LFPRemoval.Method & combo & which, "seed_map")
        if removal.size:
            shared.removal_maps = dict(zip(keyed(removal, ["removal"]), removal["seed_map"], strict=True))
    if "excluded" in parts:
        bold = analysis.PreprocessedBold & {"bold_paramset": combo["bold_paramset"]}
        selected = params.AnalysisSelection & combo
        excluded = ((bold & {"excluded": True}).proj() & selected) * acquisition.Session.proj("state")
        excluded = (excluded * acquisition.Implant.proj()) & acquisition.LFPRecording.Channel.proj("region")
        if restriction is not None:
            excluded &= restriction
        shared.excluded = excluded.to_pandas().reset_index().reindex(columns=[*SCAN_IMPLANT, "state"])
        n_kept = ((bold & {"excluded": False}) & selected).to_arrays("n_kept")
        shared.n_volumes = int(np.median(n_kept)) if len(n_kept) else 0
        shared.nuisance = nuisance_regression(combo, scans)
    for g in out.values():
        for name in ("seed_maps", "spatial_r", "power_maps", "metrics", "computed", "shuffled", "lag_curves"):
            setattr(g, name, getattr(shared, name))
        g.removal_maps, g.excluded, g.n_volumes = shared.removal_maps, shared.excluded, shared.n_volumes
        g.nuisance = shared.nuisance
    return out


def _summarize_group(rows: pd.DataFrame, data: Gathered, n_excluded: int):
    from lfpbold.plugins.cohort import summarize_cohort  # scipy.stats: imported when a summary is made

    keys = _keys(rows)
    relation = data.relation
    metric_names = relation["temporal"]["metrics"]

    def per_band(values: dict, band, *extra):
        return np.array([values.get(k + (band, *extra), np.nan) for k in keys], dtype=float)

    metrics = {
        m: {b: per_band(data.metrics, b, m) if (b, m) in data.computed else None for b in data.bands}
        for m in metric_names
    }
    shuffled = {
        b: per_band(data.shuffled, b) if any(k + (b,) in data.shuffled for k in keys) else None for b in data.bands
    }
    lag_curves = {
        b: [data.lag_curves.get(k + (b,)) for k in keys] if any(k + (b,) in data.lag_curves for k in keys) else None
        for b in data.bands
    }
    removal = {m: [data.removal_maps.get(k + (m,)) for k in keys] for m in relation["removal"]["methods"]}
    return summarize_cohort(
        nuisance=data.nuisance,
        subjects=rows["subject"].tolist(),
        seed_maps=np.stack([data.seed_maps[k] for k in keys]),
        bands=data.bands,
        spatial_r={b: per_band(data.spatial_r, b) for b in data.bands},
        power_maps={b: np.stack([data.power_maps[k + (b,)] for k in keys]) for b in data.bands},
        metrics=metrics,
        primary_metric=metric_names[0],
        n_volumes=data.n_volumes,
        noise_ceiling=relation["noise_ceiling"],
        shuffled_r=shuffled,
        lag_curves=lag_curves,
        removal_maps=removal,
        n_excluded=n_excluded,
    )


def summarize(data: Gathered, by: Sequence[str] = ("state", "region")) -> list[tuple[dict, CohortSummary]]:
    """Group the gathered scans by ``by`` (state and region always) and summarise each group."""
    group_cols = [c for c in ("state", "region", "subject", "session") if c in set(by) | {"state", "region"}]
    out = []
    for values, rows in data.scans.groupby(group_cols, sort=False):
        group = dict(zip(group_cols, values, strict=True))
        exc = data.excluded
        for col, value in group.items():
            exc = exc[exc[col] == value]
        out.append((group, _summarize_group(rows, data, n_excluded=len(exc))))
    return out


@schema
class Cohort(dj.Computed):
    definition = """
    # all usable scans of one state and implant region, for one combination of parameter sets
    -> acquisition.State
    -> acquisition.Region
    -> params.LFPParams
    -> params.BandPowerParams
    -> params.BoldParams
    -> params.RelationParams
    ---
    n_scans : int32
    n_subjects : int32
    n_excluded : int32                 # scans left out by motion screening
    cnr = null : float64               # single-scan CNR used by the noise ceiling
    group_seed_map : <blob>            # float32 mean of the scans' seed maps, per brain voxel
    missing : json                     # group figure -> why it is null
    scan_set_hash : char(32)           # which scans were summarised
    """

    class Band(dj.Part):
        definition = """
        # one band's figures for the cohort
        -> master
        -> params.FrequencyBand
        ---
        spatial_r = null : float64     # group-mean LFP power map vs group-mean seed map
        spatial_r2 = null : float64
        scanwise_spatial_r = null : float64
        spatial_t = null : float64
        spatial_p = null : float64
        spatial_d = null : float64     # Cohen d of the scan-wise spatial r
        spatial_ci_low = null : float64   # lower end of the 0.95 confidence interval of the mean
        spatial_ci_high = null : float64
        temporal_r = null : float64    # mean of per-scan values of the primary temporal metric
        temporal_r_fisher = null : float64
        temporal_t = null : float64
        temporal_p = null : float64
        temporal_d = null : float64    # Cohen d of the per-scan temporal r
        temporal_ci_low = null : float64  # lower end of the 0.95 confidence interval of the mean
        temporal_ci_high = null : float64
        spatial_vs_temporal_t = null : float64
        spatial_vs_temporal_p = null : float64
        shuffled_r = null : float64
        peak_lag_s = null : float64
        inferred_true_r = null : float64
        temporal_variance_explained = null : float64
        cnr = null : float64           # the CNR the inference used (none for a band set without its band)
        group_power_map : <blob>       # float32 mean of the scans' power maps (primary map method)
        missing : json                 # figure or metric -> why it is null
        """

    class Metric(dj.Part):
        definition = """
        # the mean over scans of one temporal metric other than the primary one
        -> master.Band
        metric : varchar(32)
        ---
        value = null : float64
        """

    class Removal(dj.Part):
        definition = """
        # the group-mean seed map after one LFP-removal method, against the group-mean seed map
        -> master
        removal : varchar(32)
        ---
        spatial_r = null : float64
        """

    class NoiseCeiling(dj.Part):
        definition = """
        # the study's simulation for this cohort: observed r against CNR at the inferred true r
        -> master
        cnr_step : int32
        ---
        cnr_value : float64
        true_r : float64
        mean_scan_r : float64          # mean per-scan r the model predicts
        averaged_r : float64           # r of scan-averaged signals the model predicts
        """

    @property
    def key_source(self):
        groups = (
            acquisition.State.proj()
            * acquisition.Region.proj()
            * params.LFPParams.proj()
            * params.BandPowerParams.proj()
            * params.BoldParams.proj()
            * params.RelationParams.proj()
        )
        return groups & (relations.SpatialSimilarity.proj() * acquisition.Session.proj("state"))

    def make(self, key):
        combo = combination(key)
        where = {"state": key["state"], "region": key["region"]}
        band_sets = params.BandPowerParams.get_params(combo)["band_sets"]
        nc_band = params.RelationParams.get_params(combo)["noise_ceiling"]["band"]
        summaries, scans = {}, None
        for band_set, data in gather_sets(combo, band_sets, restriction=where).items():
            if data.scans.empty:
                continue
            [(_, summaries[band_set])] = summarize(data)
            scans = data.scans
        # The group's own figures (CNR, removal) come from the band set the noise ceiling uses.
        main = next(
            (s for s in summaries.values() if any(b["band"] == nc_band for b in s.bands)),
            next(iter(summaries.values())),
        )
        self.insert1(
            dict(
                key,
                **{c: main.group[c] for c in ("n_scans", "n_subjects", "n_excluded")},
                cnr=db_float(main.group["cnr"]),
                group_seed_map=main.group_seed_map.astype(np.float32),
                missing=main.group["missing"],
                scan_set_hash=scan_set_hash(scans),
            )
        )
        bands = [(b, s.group) for s in summaries.values() for b in s.bands]
        self.Band.insert(
            dict(
                key,
                band=b["band"],
                **{c: db_float(b[c]) for c in BAND_FIGURES},
                cnr=db_float(g["cnr"]),
                missing={**g["missing"], **b["missing"]},
                group_power_map=b["group_power_map"].astype(np.float32),
            )
            for b, g in bands
        )
        bands = [b for b, _ in bands]
        self.Metric.insert(
            dict(key, band=b["band"], metric=m, value=db_float(v)) for b in bands for m, v in b["metrics"].items()
        )
        self.Removal.insert(dict(key, removal=m, spatial_r=db_float(r)) for m, r in main.removal.items())
        curves = main.noise_ceiling
        if curves is not None:
            self.NoiseCeiling.insert(
                dict(
                    key,
                    cnr_step=i,
                    cnr_value=float(c),
                    true_r=float(curves["true_r"]),
                    mean_scan_r=float(m),
                    averaged_r=float(a),
                )
                for i, (c, m, a) in enumerate(
                    zip(curves["cnr_grid"], curves["mean_trial_r"], curves["averaged_r"], strict=True)
                )
            )

    def stale(self) -> list[dict]:
        """Cohort rows whose scans have changed since they were computed (new or removed scans)."""
        out = []
        for key in self.keys():
            scans = scan_keys(combination(key), {"state": key["state"], "region": key["region"]})
            if (self & key).fetch1("scan_set_hash") != scan_set_hash(scans):
                out.append(key)
        return out


#: The per-voxel arrays of a CohortMapStats row, as :func:`lfpbold.plugins.group_maps.one_sample_map_test` names them.
_MAP_ARRAYS = ("mean", "t", "p", "p_fdr", "p_fwe", "cluster_p_fwe")
_MAP_COUNTS = ("n_p", "n_fdr", "n_fwe", "n_cluster_fwe")
_MAP_STATS_DEFINITION = """
        mean_r : <blob>                # float32 per brain voxel: tanh of the mean Fisher z (the mean value if not r)
        t : <blob>                     # float32 one-sample t across scans (of Fisher z for correlation maps)
        p : <blob>                     # float32 two-sided p, uncorrected
        p_fdr : <blob>                 # float32 Benjamini-Hochberg adjusted p over the brain voxels
        p_fwe = null : <blob>          # float32 max-t sign-flipping permutation FWE p (null: no permutations)
        cluster_p_fwe = null : <blob>  # float32 cluster-size FWE p of the cluster holding the voxel, 1 outside
        fisher : bool                  # tested as Fisher z
        n_p : int32                    # voxels with p < alpha
        n_fdr : int32                  # voxels with p_fdr < alpha
        n_fwe : int32                  # voxels with p_fwe < alpha
        n_cluster_fwe : int32          # voxels in clusters with cluster_p_fwe < alpha
"""

#: RelationParams ``group_maps`` for parameter sets made before it existed.
GROUP_MAPS_DEFAULTS = {"n_permutations": 1000, "cluster_forming_p": 0.001, "alpha": 0.05, "band_sets": ["classic"]}


def group_maps_params(combo: dict) -> dict:
    """The combination's ``group_maps`` settings (RelationParams), defaults filled in."""
    return {**GROUP_MAPS_DEFAULTS, **params.RelationParams.get_params(combo).get("group_maps", {})}


@schema
class CohortMapStats(dj.Computed):
    definition = """
    # voxel-wise one-sample tests across the scans of one cohort, of their seed maps and each band's LFP power maps
    -> Cohort
    ---
    n_scans : int32
    n_permutations : int32             # sign flips for the FWE p values
    cluster_forming_p : float64        # two-sided uncorrected p that forms clusters
    t_threshold : float64              # the t it corresponds to at n_scans - 1 degrees of freedom
    alpha : float64                    # level of the n_* counts
    """

    class Seed(dj.Part):
        definition = (
            """
        # the seed maps of the cohort tested against 0 at every brain voxel
        -> master
        ---"""
            + _MAP_STATS_DEFINITION
        )

    class Band(dj.Part):
        definition = (
            """
        # the LFP power maps of one band (primary map method) tested against 0 at every brain voxel
        -> master
        -> params.FrequencyBand
        ---"""
            + _MAP_STATS_DEFINITION
        )

    @property
    def key_source(self):
        return (Cohort.proj("n_scans") & "n_scans >= 2").proj()

    def make(self, key):
        from lfpbold.plugins.group_maps import one_sample_map_test

        combo = combination(key)
        settings = group_maps_params(combo)
        where = {"state": key["state"], "region": key["region"]}
        test_kwargs = {
            "n_permutations": int(settings["n_permutations"]),
            "cluster_forming_p": float(settings["cluster_forming_p"]),
            "alpha": float(settings["alpha"]),
        }
        sets = gather_sets(combo, settings["band_sets"], restriction=where, parts=("seed_maps", "power_maps"))
        gathered = list(sets.values())
        scans = gathered[0].scans  # the cohort's scans: the same whichever band set is gathered
        atlases = set((acquisition.Scan & scans[SCAN_KEY].to_dict("records")).to_arrays("atlas"))
        if len(atlases) != 1:
            raise ValueError(f"Cohort {where} spans several atlases {sorted(atlases)}; maps cannot be compared")
        mask, affine = (acquisition.Atlas & {"atlas": atlases.pop()}).fetch1("brain_mask", "affine")
        keys = sorted(_keys(scans))  # one order whatever order the rows come back in: the sign flips follow it
        test = lambda maps: one_sample_map_test(np.stack(maps), mask, affine, **test_kwargs)  # noqa: E731
        seed = test([gathered[0].seed_maps[k] for k in keys])
        bands = [(b, test([data.power_maps[k + (b,)] for k in keys])) for data in gathered for b in data.bands]
        self.insert1(
            dict(
                key,
                n_scans=len(scans),
                n_permutations=int(seed["n_permutations"]),  # as run: at most 2**n_scans
                cluster_forming_p=test_kwargs["cluster_forming_p"],
                t_threshold=float(seed["t_threshold"]),
                alpha=test_kwargs["alpha"],
            )
        )
        self.Seed.insert1(dict(key, **_map_row(seed)))
        self.Band.insert(dict(key, band=band, **_map_row(out)) for band, out in bands)


def _map_row(out: dict) -> dict:
    """A one_sample_map_test result as the attributes of a CohortMapStats part row."""
    row = {("mean_r" if a == "mean" else a): out[a] for a in _MAP_ARRAYS}
    for a in ("p_fwe", "cluster_p_fwe"):
        if not np.isfinite(row[a]).any():
            row[a] = None
    return {**row, "fisher": bool(out["fisher"]), **{c: int(out[c]) for c in _MAP_COUNTS}}
