"""Cohort-level statistics: group-mean maps and tests across scans, per state, region and band.

A row remembers which scans it summarised; ``lfpbold populate`` recomputes rows whose scans changed.
"""

import datajoint as dj
import numpy as np

from lfpbold.plugins.maps import group_mean_map
from lfpbold.query import COLUMNS, SCAN_KEY, scan_set_hash, scan_table, summarize_group

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
    ---
    n_scans : int32
    n_subjects : int32
    n_excluded : int32
    scan_set_hash : char(32)           # which scans were summarised
    """

    class Band(dj.Part):
        definition = """
        -> master
        -> params.FrequencyBand
        ---
        spatial_r : float64            # group-mean LFP power map vs group-mean seed map
        spatial_r2 : float64
        scanwise_spatial_r : float64   # mean of per-scan spatial r
        spatial_t = null : float64
        spatial_p = null : float64
        temporal_r : float64           # mean of per-scan temporal r
        temporal_t = null : float64
        temporal_p = null : float64
        spatial_vs_temporal_t = null : float64
        spatial_vs_temporal_p = null : float64
        group_seed_map : <blob>
        group_power_map : <blob>
        """

    @property
    def key_source(self):
        groups = (acquisition.State.proj() * acquisition.Region.proj() * params.LFPParams.proj()
                  * params.BandPowerParams.proj() * params.BoldParams.proj())
        return groups & (analysis.SpatialSimilarity.proj() * acquisition.Session.proj("state"))

    @staticmethod
    def _scans(key, band_set):
        restr = {"state": key["state"], "region": key["region"]}
        return scan_table(lfp_paramset=key["lfp_paramset"], band_paramset=key["band_paramset"],
                          bold_paramset=key["bold_paramset"], band_set=band_set, restriction=restr)

    def current_scans(self, key):
        """The scan-level rows the cohort row for ``key`` would summarise now (all band sets)."""
        import pandas as pd

        sets = ["classic", "one_hz"]
        return pd.concat([self._scans(key, s) for s in sets], ignore_index=True)

    def make(self, key):
        scans = self.current_scans(key)
        per_scan = scans.drop_duplicates(SCAN_KEY)
        excluded = len(
            analysis.PreprocessedBold.proj("excluded") * acquisition.Session.proj("state")
            * acquisition.Implant.proj()
            & {"excluded": True, "state": key["state"], "region": key["region"], "bold_paramset": key["bold_paramset"]}
        )
        seed = (analysis.SeedMap & key & (acquisition.Session & {"state": key["state"]})).to_pandas().reset_index()
        seed_by_scan = {(r.subject, r.session, r.run): r.seed_map for r in seed.itertuples()}
        power = (analysis.LFPPowerMap.Band & key & (acquisition.Session & {"state": key["state"]})).to_pandas()
        power = power.reset_index()
        power_by = {(r.subject, r.session, r.run, r.band): r.power_map for r in power.itertuples()}
        self.insert1(dict(key, n_scans=len(per_scan), n_subjects=per_scan["subject"].nunique(), n_excluded=excluded,
                          scan_set_hash=scan_set_hash(per_scan)))
        rows = []
        for band, df in scans.groupby("band", sort=False):
            keys = list(zip(df["subject"], df["session"], df["run"]))
            seeds = np.stack([seed_by_scan[k] for k in keys])
            powers = np.stack([power_by[k + (band,)] for k in keys])
            s = summarize_group(df, seeds, powers, n_excluded=excluded)
            rows.append(dict(key, band=band, group_seed_map=group_mean_map(seeds), group_power_map=group_mean_map(powers),
                             **{c: (None if np.isnan(s[c]) else float(s[c])) for c in COLUMNS
                                if c not in ("n_scans", "n_subjects", "n_excluded")}))
        self.Band.insert(rows)

    def stale(self):
        """Cohort rows whose scans have changed since they were computed (new or removed scans)."""
        out = []
        for key in self.keys():
            scans = self._scans(key, "classic").drop_duplicates(SCAN_KEY)
            if (self & key).fetch1("scan_set_hash") != scan_set_hash(scans):
                out.append(key)
        return out
