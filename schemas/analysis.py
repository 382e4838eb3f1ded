"""Per-scan analyses filled in by ``populate``: clean LFP, band power, preprocessed BOLD, maps, relations.

Every ``make`` fetches its inputs, calls the plugin methods its parameter set names (looked up in the
entry-point registry) and inserts the result; each table computes only the parameter-set
combinations :class:`~lfpbold.schemas.params.AnalysisSelection` asks for. Heavy steps use the
tripartite make: ``make_fetch`` returns only identifiers and digests (it is run twice and its result
hashed), ``make_compute`` reads the data and calls the plugins outside any transaction,
``make_insert`` writes the rows.

The numeric helpers (readers, plugins) are imported inside the makes: activating the schemas, as
every ``lfpbold`` command does, then needs DataJoint only, not SciPy, scikit-learn or pynwb.
"""

import functools
import hashlib

import datajoint as dj
import numpy as np

from lfpbold.plugins import get_plugin

from . import acquisition, params
from .params import method_and_kwargs, selected

schema = dj.Schema()


def digest(array) -> str:
    """Content digest stored beside large arrays, so downstream makes can verify what they read."""
    a = np.ascontiguousarray(array)
    return hashlib.md5(a.tobytes() + str((a.dtype, a.shape)).encode()).hexdigest()


def _nan(value):
    """A float for the database, None for missing (MySQL has no NaN)."""
    return None if value is None or not np.isfinite(value) else float(value)


def _bands(band_sets):
    """Bands of the given sets, in display order (sets in the order given)."""
    rows = (params.FrequencyBand & [{"band_set": s} for s in band_sets]).to_dicts(order_by="band_set, band_order")
    return sorted(rows, key=lambda r: (list(band_sets).index(r["band_set"]), r["band_order"]))


def _band_rows(key, attribute: str, band_sets=None) -> list[dict]:
    """``band``, ``band_set`` and one attribute of each band of this scan's band power, in display order."""
    query = BandPower.Band.proj(attribute) * params.FrequencyBand.proj("band_set", "band_order") & key
    if band_sets is not None:
        query &= [{"band_set": s} for s in band_sets]
    return query.to_dicts(order_by="band_set, band_order")


@schema
class CleanLFP(dj.Computed):
    definition = """
    # one implant's LFP for one scan: artifact-cleaned, decimated, channels combined
    -> acquisition.LFPRecording
    -> acquisition.Implant
    -> params.LFPParams
    ---
    sampling_rate : float64            # Hz, after decimation
    combined : <blob@lfpbold>          # float32 (n_samples,), volts, on the series' clock from 0 s
    n_channels : int32
    combined_digest : char(32)
    """

    class Channel(dj.Part):
        definition = """
        # one channel of the implant after cleaning
        -> master
        -> acquisition.LFPRecording.Channel
        ---
        lag_samples : int32            # shift applied before combining
        signal = null : <blob@lfpbold> # float32 cleaned, decimated (kept when params keep_channels)
        """

    @property
    def key_source(self):
        rec = acquisition.LFPRecording.proj() * acquisition.Implant.proj() * params.LFPParams.proj()
        return selected(rec & acquisition.LFPRecording.Channel.proj("region"))

    def make_fetch(self, key):
        rec = (acquisition.LFPRecording & key).fetch1("nwb_path", "nwb_sha256", "series_path", "sampling_rate")
        channels = tuple((acquisition.LFPRecording.Channel & key).to_arrays("channel", order_by="channel").tolist())
        return rec, channels, params.LFPParams.get_params(key)

    def make_compute(self, key, rec, channels, p):
        from lfpbold.lfp import clean_implant

        nwb_path, _, series_path, sfreq = rec
        slices = (acquisition.LFPRecording & key).fetch1("slice_triggers")
        return clean_implant(
            nwb_path,
            series_path=series_path,
            channels=channels,
            sfreq=sfreq,
            slice_onsets=slices,
            params=p,
            n_jobs=p.get("n_jobs", 1),
        )

    def make_insert(self, key, rate, combined, lags, kept):
        self.insert1(
            dict(key, sampling_rate=rate, combined=combined, n_channels=len(lags), combined_digest=digest(combined))
        )
        chans = (acquisition.LFPRecording.Channel & key).to_arrays("channel", order_by="channel")
        kept = kept if kept is not None else [None] * len(lags)
        rows = zip(chans, lags, kept, strict=True)
        self.Channel.insert(dict(key, channel=int(c), lag_samples=int(lag), signal=sig) for c, lag, sig in rows)


@schema
class BandPower(dj.Computed):
    definition = """
    # band power of one implant's clean LFP, and its HRF-convolved regressors at the fMRI volumes
    -> CleanLFP
    -> params.BandPowerParams
    ---
    power_rate : float64               # Hz of the band-power series (10 Hz for a 0.1 s step)
    times : <blob@lfpbold>             # s, centres of the band-power windows, series' clock
    volume_onsets : <blob>             # s, series' clock
    t_r : float64
    """

    class Band(dj.Part):
        definition = """
        -> master
        -> params.FrequencyBand
        ---
        power : <blob@lfpbold>         # float32 band power series (V^2/Hz)
        regressor : <blob>             # float64 (n_volumes,) HRF-convolved power per volume
        mean_power : float64
        """

    @property
    def key_source(self):
        return selected(CleanLFP.proj() * params.BandPowerParams.proj())

    def make_fetch(self, key):
        return (CleanLFP & key).fetch1("combined_digest"), params.BandPowerParams.get_params(key)

    def make_compute(self, key, combined_digest, p):
        from lfpbold.plugins.hrf import hrf_regressor

        combined = _verified(CleanLFP & key, "combined", combined_digest)
        rate = (CleanLFP & key).fetch1("sampling_rate")
        onsets = (acquisition.LFPRecording & key).fetch1("volume_triggers")
        t_r = (acquisition.FMRIRun & key).fetch1("t_r")
        bands = _bands(p["band_sets"])
        name, kw = method_and_kwargs(p["band_power"], "band_power")
        power, times = get_plugin("band_power", name)(
            combined.astype(np.float64), rate, bands=[(b["low_hz"], b["high_hz"]) for b in bands], **kw
        )
        step = float(np.median(np.diff(times)))
        hrf_name, hrf_kw = method_and_kwargs(p["hrf"], "hrf")
        kernel = get_plugin("hrf", hrf_name)(step, **hrf_kw)
        _, regressors = hrf_regressor(power, times, onsets, t_r, kernel=kernel)
        return 1.0 / step, times, onsets, t_r, [b["band"] for b in bands], power, regressors

    def make_insert(self, key, power_rate, times, onsets, t_r, band_names, power, regressors):
        self.insert1(dict(key, power_rate=power_rate, times=times, volume_onsets=onsets, t_r=t_r))
        self.Band.insert(
            dict(key, band=b, power=pw.astype(np.float32), regressor=reg, mean_power=float(pw.mean()))
            for b, pw, reg in zip(band_names, power, regressors, strict=True)
        )


@schema
class PreprocessedBold(dj.Computed):
    definition = """
    # one BOLD run after motion screening and preprocessing, brain voxels only
    -> acquisition.FMRIRun
    -> params.BoldParams
    ---
    excluded : bool                    # left out of every downstream analysis
    exclusion_reason : varchar(255)
    fd = null : <blob>                 # motion trace per volume (framewise displacement, mm); null unscreened
    keep : <blob>                      # bool per volume: kept after scrubbing
    n_kept : int32
    data = null : <blob@lfpbold>       # float32 (n_kept, n_brain_voxels); null when excluded
    data_digest : char(32)
    """

    @property
    def key_source(self):
        return selected(acquisition.FMRIRun.proj() * params.BoldParams.proj())

    def make_fetch(self, key):
        return (acquisition.FMRIRun & key).fetch1("bold_sha256"), params.BoldParams.get_params(key)

    def make_compute(self, key, bold_sha256, p):
        from lfpbold.ingest import read_bold

        run = (acquisition.FMRIRun & key).fetch1()
        state = (acquisition.Session & key).fetch1("state")
        atlas = (acquisition.Atlas & (acquisition.Scan & key)).fetch1()
        fd, keep, excluded, reason = None, np.ones(run["n_volumes"], dtype=bool), False, ""
        if p.get("screening"):
            name, kw = method_and_kwargs(p["screening"], "screening")
            verdict = get_plugin("motion_screening", name)(run["motion"], state=state, **kw)
            fd, keep = np.asarray(verdict["fd"], dtype=np.float64), np.asarray(verdict["keep"], dtype=bool)
            excluded, reason = bool(verdict["excluded"]), str(verdict["reason"])
        if excluded:
            return fd, keep, True, reason, None
        bold, affine = read_bold(run["bold_path"])
        name, kw = method_and_kwargs(p["bold_preprocessing"], "bold_preprocessing")
        data = get_plugin("bold_preprocessing", name)(
            bold,
            t_r=run["t_r"],
            brain_mask=atlas["brain_mask"],
            affine=affine,
            motion=run["motion"],
            wm_mask=atlas["wm_mask"],
            ventricle_mask=atlas["ventricle_mask"],
            sample_mask=None if keep.all() else keep,
            **kw,
        )
        return fd, keep, False, reason, np.asarray(data, dtype=np.float32)

    def make_insert(self, key, fd, keep, excluded, reason, data):
        self.insert1(
            dict(
                key,
                excluded=excluded,
                exclusion_reason=reason[:255],
                fd=fd,
                keep=keep,
                n_kept=int(keep.sum()),
                data=data,
                data_digest=digest(data) if data is not None else "",
            )
        )


def _roi(key):
    """The implant's ROI as a boolean over brain voxels (the order of PreprocessedBold.data)."""
    atlas = acquisition.Atlas & (acquisition.Scan & key)
    return (acquisition.Atlas.ROI & atlas & key).fetch1("roi_mask")[atlas.fetch1("brain_mask")]


def _verified(row, attribute: str, expected: str):
    """Fetch a large array and check it against the digest make_fetch saw (no change in between)."""
    value = row.fetch1(attribute)
    if digest(value) != expected:
        raise dj.DataJointError(f"{row.table_name} {attribute} changed while it was being read")
    return value


def _bold_data(key):
    row = PreprocessedBold & key
    return _verified(row, "data", row.fetch1("data_digest"))


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
        return (PreprocessedBold & key).fetch1("data_digest"), _relation(key)["maps"]

    def make_compute(self, key, _, maps):
        from lfpbold.plugins.maps import roi_mean

        data = _bold_data(key)
        seed = roi_mean(data, _roi(key))
        return seed, np.asarray(get_plugin("correlation_map", maps["methods"][0])(seed, data), dtype=np.float32)

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
        data = _bold_data(key)
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
        for band in _band_rows(key, "regressor"):
            x = band["regressor"][keep]
            for name, metric in metrics.items():
                sets = spec.get("band_sets", {}).get(name)
                if sets is None or band["band_set"] in sets:
                    value = metric(x, seed, **kwargs.get(name, {}))
                    metric_rows.append(dict(key, band=band["band"], metric=name, value=_nan(value)))
            if shuffle and band["band_set"] in shuffle.get("band_sets", [band["band_set"]]):
                control = shuffled_control(
                    x,
                    seed,
                    t_r=t_r,
                    n_shuffles=shuffle.get("n_shuffles", 1000),
                    min_shift_s=shuffle.get("min_shift_s", 30.0),
                    metric=shuffle_metric,
                )
                shuffle_rows.append(dict(key, band=band["band"], null_mean=_nan(control["mean"]), p=_nan(control["p"])))
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
            rows.append(dict(key, band=band, r=_nan(r), r2=_nan(r * r)))
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
            _bold_data(key),
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
        for row in _band_rows(key, "power", sets):
            part = dict(key, band=row["band"])
            if keep.all():  # a lag needs an unbroken series; scrubbed scans get no lag
                _, per_volume = hrf_regressor(row["power"].astype(np.float64), times, onsets, t_r, kernel=np.ones(1))
                lags, r = lagged(per_volume, seed, t_r=t_r, **kw)
                peak = peak_lag(lags, r, absolute=True)
                part.update(
                    lags_s=lags,
                    r=r,
                    peak_lag_s=_nan(peak),
                    peak_r=_nan(r[np.argmin(np.abs(lags - peak))]) if np.isfinite(peak) else None,
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
        data = _bold_data(key)
        keep = (PreprocessedBold & key).fetch1("keep")
        original = (SeedMap & key).fetch1("seed_map")
        roi = _roi(key)
        rows = {
            r["band"]: r["regressor"] for r in (BandPower.Band & key & [{"band": b} for b in spec["bands"]]).to_dicts()
        }
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
        self.Method.insert(dict(key, removal=m, seed_map=sm, spatial_r=_nan(r), n_volumes=n) for m, sm, r, n in out)
