"""Cohort-level statistics: group-mean maps, tests across scans, LFP removal and the noise ceiling.

A row remembers which scans it summarised; ``lfpbold populate`` recomputes rows whose scans changed.
"""

import datajoint as dj

from lfpbold.query import BAND_COLUMNS, _nan, gather, scan_set_hash, scan_table, summarize_cohort

from . import acquisition, analysis, params

schema = dj.Schema()


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
    removal_ols_r = null : float64     # group-mean seed map after removal vs the original
    removal_soft_r = null : float64
    removal_censor_r = null : float64
    scan_set_hash : char(32)           # which scans were summarised
    """

    class Band(dj.Part):
        definition = """
        -> master
        -> params.FrequencyBand
        ---
        spatial_r = null : float64     # group-mean LFP power map vs group-mean seed map
        spatial_r2 = null : float64
        scanwise_spatial_r = null : float64
        spatial_t = null : float64
        spatial_p = null : float64
        temporal_r = null : float64    # mean of per-scan r
        temporal_r_fisher = null : float64
        temporal_t = null : float64
        temporal_p = null : float64
        spatial_vs_temporal_t = null : float64
        spatial_vs_temporal_p = null : float64
        spearman_r = null : float64
        mutual_info = null : float64
        shuffled_r = null : float64
        peak_lag_s = null : float64
        inferred_true_r = null : float64
        temporal_variance_explained = null : float64
        group_seed_map : <blob>
        group_power_map : <blob>
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
        groups = (acquisition.State.proj() * acquisition.Region.proj() * params.LFPParams.proj()
                  * params.BandPowerParams.proj() * params.BoldParams.proj() * params.RelationParams.proj())
        return groups & (analysis.SpatialSimilarity.proj() * acquisition.Session.proj("state"))

    @staticmethod
    def _data(key, band_set):
        restr = {"state": key["state"], "region": key["region"]}
        return gather(lfp_paramset=key["lfp_paramset"], band_paramset=key["band_paramset"],
                      bold_paramset=key["bold_paramset"], relation_paramset=key["relation_paramset"],
                      band_set=band_set, restriction=restr)

    def make(self, key):
        relation = params.RelationParams.get_params(key)
        summaries = {}
        for band_set in ("classic", "one_hz"):  # the group's own values come from the named bands
            d = self._data(key, band_set)
            if band_set == "classic" or not d.scans.empty:
                exc = d.excluded
                n_excluded = len(exc[(exc["state"] == key["state"]) & (exc["region"] == key["region"])])
                summaries[band_set] = (d, *summarize_cohort(d.scans, d, relation=relation, n_excluded=n_excluded))
        data, group, _ = summaries["classic"]
        self.insert1(dict(key, scan_set_hash=scan_set_hash(data.scans),
                          **{c: group[c] for c in ("n_scans", "n_subjects", "n_excluded")},
                          **{c: _nan(group[c]) for c in ("cnr", "removal_ols_r", "removal_soft_r", "removal_censor_r")}))
        rows = [dict(key, band=b["band"], **{c: _nan(b[c]) for c in BAND_COLUMNS},
                     group_seed_map=b["group_seed_map"], group_power_map=b["group_power_map"])
                for _, _, bands in summaries.values() for b in bands]
        self.Band.insert(rows)
        curves = group["noise_ceiling"]
        if curves is not None:
            self.NoiseCeiling.insert(
                dict(key, cnr_step=i, cnr_value=float(c), true_r=float(curves["true_r"]), mean_scan_r=float(m),
                     averaged_r=float(a))
                for i, (c, m, a) in enumerate(zip(curves["cnr_grid"], curves["mean_trial_r"], curves["averaged_r"])))

    def stale(self):
        """Cohort rows whose scans have changed since they were computed (new or removed scans)."""
        out = []
        for key in self.keys():
            scans = scan_table(**{k: key[k] for k in ("lfp_paramset", "band_paramset", "bold_paramset",
                                                      "relation_paramset")},
                               restriction={"state": key["state"], "region": key["region"]})
            if (self & key).fetch1("scan_set_hash") != scan_set_hash(scans):
                out.append(key)
        return out

