"""How LFP and BOLD relate, per scan and implant: maps, temporal and spatial similarity, LFP removal.

Every table here depends on :class:`RelationParams` (through :class:`SeedMap`), whose methods it
looks up in the entry-point registry: correlation maps, temporal metrics, the lagged correlation,
LFP-removal methods, and the band-power set's HRF for the sensitivity sweep. Each computes only the
combinations :class:`~lfpbold.schemas.params.AnalysisSelection` asks for; per-method results are
part rows, so a lab's method needs no change here.
"""

import functools

import datajoint as dj
import numpy as np

from lfpbold.plugins import get_plugin

from . import acquisition, params
from .analysis import BandPower, PreprocessedBold, band_rows, bold_data, db_float
from .params import method_and_kwargs, selected

schema = dj.Schema()


def _roi(key):
    """The implant's ROI as a boolean over brain voxels (the order of PreprocessedBold.data)."""
    atlas = acquisition.Atlas & (acquisition.Scan & key)
    return (acquisition.Atlas.ROI & atlas & key).fetch1("roi_mask")[atlas.fetch1("brain_mask")]


def _relation(key) -> dict:
    return params.RelationParams.get_params(key)


def _map_method(relation: dict):
    """The primary correlation-map method: seed maps, and the maps spatial similarity compares."""
    return get_plugin("correlation_map", relation["maps"]["methods"][0])


def _usable_bold():
    return (PreprocessedBold & {"excluded": False}).proj()


@schema
class SeedMap(dj.Computed):
    definition = """
    # the resting-state network of one implant: its ROI-mean BOLD correlated with every brain voxel
    -> PreprocessedBold
    -> acquisition.Implant
    -> params.RelationParams
    ---
    seed_ts : <blob>                   # ROI-mean preprocessed BOLD, kept volumes
    seed_map : <blob>                  # float32 value per brain voxel (the first map method's)
    """

    @property
    def key_source(self):
        recorded = acquisition.LFPRecording.Channel.proj("region")  # implants this scan has LFP from
        return selected(_usable_bold() * acquisition.Implant.proj() * params.RelationParams.proj()) & recorded

    def make_fetch(self, key):
        return (PreprocessedBold & key).fetch1("data_digest"), _relation(key)

    def make_compute(self, key, _, relation):
        from lfpbold.plugins.maps import roi_mean

        data = bold_data(key)
        seed = roi_mean(data, _roi(key))
        return seed, np.asarray(_map_method(relation)(seed, data), dtype=np.float32)

    def make_insert(self, key, seed, seed_map):
        self.insert1(dict(key, seed_ts=seed, seed_map=seed_map))


@schema
class LFPPowerMap(dj.Computed):
    definition = """
    # each band's HRF-convolved power correlated with every brain voxel, for one implant and scan
    -> BandPower
    -> SeedMap
    """

    class Map(dj.Part):
        definition = """
        # one band's map by one correlation-map method
        -> master
        -> BandPower.Band
        map_method : varchar(32)       # a correlation_map plugin named in RelationParams maps.methods
        ---
        power_map : <blob>             # float32 value per brain voxel
        """

    @property
    def key_source(self):
        return selected(BandPower.proj() * SeedMap.proj())

    def make_fetch(self, key):
        return (PreprocessedBold & key).fetch1("data_digest"), _relation(key)["maps"]

    def make_compute(self, key, _, maps):
        data = bold_data(key)
        keep = (PreprocessedBold & key).fetch1("keep")
        bands, regs = (BandPower.Band & key).to_arrays("band", "regressor")
        regs = np.stack(regs)[:, keep]
        out = [
            (method, np.asarray(get_plugin("correlation_map", method)(regs, data), dtype=np.float32))
            for method in maps["methods"]
        ]
        return list(bands), out

    def make_insert(self, key, bands, maps):
        self.insert1(key)
        self.Map.insert(
            dict(key, band=b, map_method=method, power_map=m[i]) for method, m in maps for i, b in enumerate(bands)
        )


@schema
class TemporalCorrelation(dj.Computed):
    definition = """
    # per scan and implant: how each band's HRF-convolved power tracks the local (ROI) BOLD
    -> BandPower
    -> SeedMap
    """

    class Metric(dj.Part):
        definition = """
        # one band's value of one temporal metric
        -> master
        -> BandPower.Band
        metric : varchar(32)           # a temporal_metric plugin named in RelationParams temporal.metrics
        ---
        value = null : float64         # null where the metric is undefined (e.g. constant power)
        """

    class Shuffle(dj.Part):
        definition = """
        # the control: the metric of circularly shifted band power with the local BOLD
        -> master
        -> BandPower.Band
        ---
        null_mean = null : float64     # mean over the shifts
        p = null : float64             # fraction of shifts with |value| >= |observed|
        """

    @property
    def key_source(self):
        return selected(BandPower.proj() * SeedMap.proj())

    def make(self, key):
        from lfpbold.plugins.temporal import shuffled_control

        spec = _relation(key)["temporal"]
        seed = (SeedMap & key).fetch1("seed_ts")
        keep = (PreprocessedBold & key).fetch1("keep")
        t_r = (BandPower & key).fetch1("t_r")
        kwargs = spec.get("method_params", {})
        metrics = {m: get_plugin("temporal_metric", m) for m in spec["metrics"]}
        shuffle = spec.get("shuffle")
        if shuffle:
            name = shuffle["metric"]
            shuffle_metric = functools.partial(get_plugin("temporal_metric", name), **kwargs.get(name, {}))
        metric_rows, shuffle_rows = [], []
        for band in band_rows(key, "regressor"):
            x = band["regressor"][keep]
            for name, metric in metrics.items():
                sets = spec.get("band_sets", {}).get(name)
                if sets is None or band["band_set"] in sets:
                    value = metric(x, seed, **kwargs.get(name, {}))
                    metric_rows.append(dict(key, band=band["band"], metric=name, value=db_float(value)))
            if shuffle and band["band_set"] in shuffle.get("band_sets", [band["band_set"]]):
                control = shuffled_control(
                    x,
                    seed,
                    t_r=t_r,
                    n_shuffles=shuffle.get("n_shuffles", 1000),
                    min_shift_s=shuffle.get("min_shift_s", 30.0),
                    metric=shuffle_metric,
                )
                shuffle_rows.append(
                    dict(key, band=band["band"], null_mean=db_float(control["mean"]), p=db_float(control["p"]))
                )
        self.insert1(key)
        self.Metric.insert(metric_rows)
        self.Shuffle.insert(shuffle_rows)


@schema
class SpatialSimilarity(dj.Computed):
    definition = """
    # per scan and implant: how each band's power map matches the seed map over brain voxels
    -> LFPPowerMap
    """

    class Band(dj.Part):
        definition = """
        -> master
        -> BandPower.Band
        ---
        r = null : float64             # Pearson r of the first map method's power map and the seed map
        r2 = null : float64            # spatial variance explained
        """

    @property
    def key_source(self):
        return selected(LFPPowerMap.proj())

    def make(self, key):
        from lfpbold.plugins.maps import spatial_similarity

        seed_map = (SeedMap & key).fetch1("seed_map")
        primary = {"map_method": _relation(key)["maps"]["methods"][0]}
        rows = []
        for band, power_map in zip(*(LFPPowerMap.Map & key & primary).to_arrays("band", "power_map"), strict=True):
            r = spatial_similarity(power_map, seed_map)
            rows.append(dict(key, band=band, r=db_float(r), r2=db_float(r * r)))
        self.insert1(key)
        self.Band.insert(rows)


@schema
class HRFSensitivity(dj.Computed):
    definition = """
    # how one band's temporal and spatial r depend on the HRF's response and undershoot delays
    -> BandPower
    -> SeedMap
    ---
    band : varchar(16)
    response_delays : <blob>           # s
    undershoot_delays : <blob>         # s
    temporal_r : <blob>                # (n_response, n_undershoot)
    spatial_r : <blob>                 # (n_response, n_undershoot), power map vs seed map
    best_response_delay : float64
    best_undershoot_delay : float64
    best_temporal_r : float64
    """

    @property
    def key_source(self):
        from lfpbold.plugins.hrf import accepts_delays

        # Only band-power sets whose HRF method can be swept (it takes response and undershoot delays).
        sets = params.BandPowerParams.to_dicts()
        sweepable = [
            {"band_paramset": s["band_paramset"]}
            for s in sets
            if accepts_delays(get_plugin("hrf", method_and_kwargs(s["params"]["hrf"], "hrf")[0]))
        ]
        return selected(BandPower.proj() * SeedMap.proj()) & sweepable

    def make(self, key):
        from lfpbold.plugins.cohort import spaced
        from lfpbold.plugins.temporal import hrf_sweep

        sweep_spec = _relation(key)["hrf_sweep"]
        hrf_name, hrf_kw = method_and_kwargs(params.BandPowerParams.get_params(key)["hrf"], "hrf")
        power = (BandPower.Band & key & {"band": sweep_spec["band"]}).fetch1("power")
        times, onsets, t_r = (BandPower & key).fetch1("times", "volume_onsets", "t_r")
        keep = (PreprocessedBold & key).fetch1("keep")
        seed_map = (SeedMap & key).fetch1("seed_map")
        sweep = hrf_sweep(
            power.astype(np.float64),
            times,
            onsets[keep],
            t_r,
            bold_data(key),
            roi=_roi(key),
            response_delays=spaced(sweep_spec["response_delays"]),
            undershoot_delays=spaced(sweep_spec["undershoot_delays"]),
            seed_map=seed_map,
            hrf=get_plugin("hrf", hrf_name),
            hrf_params=hrf_kw,
        )
        i, j = np.unravel_index(np.nanargmax(np.abs(sweep["temporal_r"])), sweep["temporal_r"].shape)
        self.insert1(
            dict(
                key,
                band=sweep_spec["band"],
                response_delays=sweep["response_delays"],
                undershoot_delays=sweep["undershoot_delays"],
                temporal_r=sweep["temporal_r"],
                spatial_r=sweep["spatial_r"],
                best_response_delay=float(sweep["response_delays"][i]),
                best_undershoot_delay=float(sweep["undershoot_delays"][j]),
                best_temporal_r=float(sweep["temporal_r"][i, j]),
            )
        )


@schema
class LagCorrelation(dj.Computed):
    definition = """
    # lagged cross-correlation of band power (not HRF-convolved) with the local BOLD
    -> BandPower
    -> SeedMap
    ---
    contiguous : bool                  # False when scrubbing removed volumes: no lags computed
    """

    class Band(dj.Part):
        definition = """
        -> master
        -> BandPower.Band
        ---
        lags_s = null : <blob>         # positive: BOLD lags the LFP
        r = null : <blob>
        peak_lag_s = null : float64    # lag of the largest |r|
        peak_r = null : float64
        """

    @property
    def key_source(self):
        return selected(BandPower.proj() * SeedMap.proj())

    def make(self, key):
        from lfpbold.plugins.hrf import hrf_regressor
        from lfpbold.plugins.temporal import peak_lag

        spec = dict(_relation(key)["lag"])
        sets = spec.pop("band_sets", None)
        name, kw = method_and_kwargs(spec, "lag")
        lagged = get_plugin("lagged_correlation", name)
        keep = (PreprocessedBold & key).fetch1("keep")
        seed = (SeedMap & key).fetch1("seed_ts")
        times, onsets, t_r = (BandPower & key).fetch1("times", "volume_onsets", "t_r")
        self.insert1(dict(key, contiguous=bool(keep.all())))
        parts = []
        for row in band_rows(key, "power", sets):
            part = dict(key, band=row["band"])
            if keep.all():  # a lag needs an unbroken series; scrubbed scans get no lag
                _, per_volume = hrf_regressor(row["power"].astype(np.float64), times, onsets, t_r, kernel=np.ones(1))
                lags, r = lagged(per_volume, seed, t_r=t_r, **kw)
                peak = peak_lag(lags, r, absolute=True)
                part.update(
                    lags_s=lags,
                    r=r,
                    peak_lag_s=db_float(peak),
                    peak_r=db_float(r[np.argmin(np.abs(lags - peak))]) if np.isfinite(peak) else None,
                )
            parts.append(part)
        self.Band.insert(parts)


@schema
class LFPRemoval(dj.Computed):
    definition = """
    # seed maps recomputed after LFP-derived time courses are removed from the BOLD
    -> BandPower
    -> SeedMap
    """

    class Method(dj.Part):
        definition = """
        # one removal method's seed map
        -> master
        removal : varchar(32)          # an lfp_removal plugin named in RelationParams removal.methods
        ---
        seed_map : <blob>              # float32 value per brain voxel, after removal
        spatial_r = null : float64     # vs the original seed map
        n_volumes : int32              # volumes left
        """

    @property
    def key_source(self):
        return selected(BandPower.proj() * SeedMap.proj())

    def make_fetch(self, key):
        return (PreprocessedBold & key).fetch1("data_digest"), _relation(key)

    def make_compute(self, key, _, relation):
        from lfpbold.plugins.maps import roi_mean, spatial_similarity

        spec = relation["removal"]
        data = bold_data(key)
        keep = (PreprocessedBold & key).fetch1("keep")
        original = (SeedMap & key).fetch1("seed_map")
        roi = _roi(key)
        named = BandPower.Band.proj("regressor") & key & [{"band": b} for b in spec["bands"]]
        rows = dict(zip(*named.to_arrays("band", "regressor"), strict=True))
        missing = [b for b in spec["bands"] if b not in rows]
        if missing:
            raise ValueError(
                f"RelationParams removal.bands {missing} are not in this scan's band power (BandPowerParams band_sets)"
            )
        regressors = np.column_stack([rows[b] for b in spec["bands"]])[keep]
        map_method = _map_method(relation)
        out = []
        for method in spec["methods"]:
            cleaned, kept = get_plugin("lfp_removal", method)(
                data, regressors, **spec.get("method_params", {}).get(method, {})
            )
            seed_map = np.asarray(map_method(roi_mean(cleaned, roi), cleaned), dtype=np.float32)
            out.append((method, seed_map, spatial_similarity(seed_map, original), int(np.sum(kept))))
        return (out,)

    def make_insert(self, key, out):
        self.insert1(key)
        self.Method.insert(dict(key, removal=m, seed_map=sm, spatial_r=db_float(r), n_volumes=n) for m, sm, r, n in out)
