"""Per-scan analyses filled in by ``populate``: clean LFP, band power, preprocessed BOLD and maps.

Heavy steps use the tripartite make: ``make_fetch`` returns only identifiers and digests (it is run
twice and its result hashed), ``make_compute`` reads the data and calls the plugins outside any
transaction, ``make_insert`` writes the rows.
"""

import hashlib

import datajoint as dj
import numpy as np

from lfpbold.ingest import read_bold
from lfpbold.lfp import clean_implant
from lfpbold.plugins import get_plugin
from lfpbold.plugins.bold import framewise_displacement, screen_motion
from lfpbold.plugins.hrf import hrf_regressor
from lfpbold.plugins.maps import (correlation_map, mutual_information_map, rank_correlation_map, roi_mean,
                                  spatial_similarity)
from lfpbold.plugins.temporal import hrf_sweep, lagged_xcorr, peak_lag, shuffled_control

from . import acquisition, params

schema = dj.Schema()


def digest(array) -> str:
    """Content digest stored beside large arrays, so downstream makes can verify what they read."""
    a = np.ascontiguousarray(array)
    return hashlib.md5(a.tobytes() + str((a.dtype, a.shape)).encode()).hexdigest()


def _method(step_params: dict):
    kwargs = dict(step_params)
    return kwargs.pop("method"), kwargs


def _bands(band_sets):
    """Bands of the given sets, in display order (classic first)."""
    rows = (params.FrequencyBand & [{"band_set": s} for s in band_sets]).to_dicts(order_by="band_set, band_order")
    return sorted(rows, key=lambda r: (list(band_sets).index(r["band_set"]), r["band_order"]))


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
        return rec & acquisition.LFPRecording.Channel.proj()

    def make_fetch(self, key):
        rec = (acquisition.LFPRecording & key).fetch1("nwb_path", "nwb_sha256", "series_path", "sampling_rate")
        channels = tuple((acquisition.LFPRecording.Channel & key).to_arrays("channel", order_by="channel").tolist())
        return rec, channels, params.LFPParams.get_params(key)

    def make_compute(self, key, rec, channels, p):
        nwb_path, _, series_path, sfreq = rec
        slices = (acquisition.LFPRecording & key).fetch1("slice_triggers")
        return clean_implant(nwb_path, series_path=series_path, channels=channels, sfreq=sfreq,
                             slice_onsets=slices, params=p, n_jobs=p.get("n_jobs", 1))

    def make_insert(self, key, rate, combined, lags, kept):
        self.insert1(dict(key, sampling_rate=rate, combined=combined, n_channels=len(lags),
                          combined_digest=digest(combined)))
        chans = (acquisition.LFPRecording.Channel & key).to_arrays("channel", order_by="channel")
        kept = kept if kept is not None else [None] * len(lags)
        self.Channel.insert(
            dict(key, channel=int(c), lag_samples=int(lag), signal=sig) for c, lag, sig in zip(chans, lags, kept)
        )


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

    def make_fetch(self, key):
        return (CleanLFP & key).fetch1("combined_digest"), params.BandPowerParams.get_params(key)

    def make_compute(self, key, combined_digest, p):
        combined = _verified(CleanLFP & key, "combined", combined_digest)
        rate = (CleanLFP & key).fetch1("sampling_rate")
        onsets = (acquisition.LFPRecording & key).fetch1("volume_triggers")
        t_r = (acquisition.FMRIRun & key).fetch1("t_r")
        bands = _bands(p["band_sets"])
        name, kw = _method(p["band_power"])
        power, times = get_plugin("band_power", name)(
            combined.astype(np.float64), rate, bands=[(b["low_hz"], b["high_hz"]) for b in bands], **kw
        )
        step = float(np.median(np.diff(times)))
        hrf_name, hrf_kw = _method(p["hrf"])
        kernel = get_plugin("hrf", hrf_name)(step, **hrf_kw)
        _, regressors = hrf_regressor(power, times, onsets, t_r, kernel=kernel)
        return 1.0 / step, times, onsets, t_r, [b["band"] for b in bands], power, regressors

    def make_insert(self, key, power_rate, times, onsets, t_r, band_names, power, regressors):
        self.insert1(dict(key, power_rate=power_rate, times=times, volume_onsets=onsets, t_r=t_r))
        self.Band.insert(
            dict(key, band=b, power=pw.astype(np.float32), regressor=reg, mean_power=float(pw.mean()))
            for b, pw, reg in zip(band_names, power, regressors)
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
    fd : <blob>                        # framewise displacement per volume, mm
    keep : <blob>                      # bool per volume: kept after scrubbing
    n_kept : int32
    data = null : <blob@lfpbold>       # float32 (n_kept, n_brain_voxels); null when excluded
    data_digest : char(32)
    """

    def make_fetch(self, key):
        return (acquisition.FMRIRun & key).fetch1("bold_sha256"), params.BoldParams.get_params(key)

    def make_compute(self, key, bold_sha256, p):
        run = (acquisition.FMRIRun & key).fetch1()
        state = (acquisition.Session & key).fetch1("state")
        atlas = (acquisition.Atlas & (acquisition.Scan & key)).fetch1()
        screening = p.get("screening")
        radius = (screening or {}).get("radius_mm", 5.0)
        fd = framewise_displacement(run["motion"], radius_mm=radius)
        keep = np.ones(run["n_volumes"], dtype=bool)
        excluded, reason = False, ""
        if screening:
            kw = {k: v for k, v in screening.items() if k != "radius_mm"}
            kw["neighbours"] = tuple(kw.get("neighbours", (1, 1)))
            verdict = screen_motion(fd, state=state, **kw)
            keep, excluded, reason = verdict["keep"], bool(verdict["excluded"]), verdict["reason"]
        if excluded:
            return fd, keep, True, reason, None
        bold, affine = read_bold(run["bold_path"])
        name, kw = _method(p["bold_preprocessing"])
        data = get_plugin("bold_preprocessing", name)(
            bold, t_r=run["t_r"], brain_mask=atlas["brain_mask"], affine=affine, motion=run["motion"],
            wm_mask=atlas["wm_mask"], ventricle_mask=atlas["ventricle_mask"],
            sample_mask=None if keep.all() else keep, **kw,
        )
        return fd, keep, False, reason, np.asarray(data, dtype=np.float32)

    def make_insert(self, key, fd, keep, excluded, reason, data):
        self.insert1(dict(key, excluded=excluded, exclusion_reason=reason[:255], fd=fd, keep=keep,
                          n_kept=int(keep.sum()), data=data, data_digest=digest(data) if data is not None else ""))


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


@schema
class SeedMap(dj.Computed):
    definition = """
    # the resting-state network of one implant: r of its ROI-mean BOLD with every brain voxel
    -> PreprocessedBold
    -> acquisition.Implant
    ---
    seed_ts : <blob>                   # ROI-mean preprocessed BOLD, kept volumes
    seed_map : <blob>                  # float32 r per brain voxel
    """

    @property
    def key_source(self):
        return (PreprocessedBold & {"excluded": False}).proj() * acquisition.Implant.proj()

    def make_fetch(self, key):
        return ((PreprocessedBold & key).fetch1("data_digest"),)

    def make_compute(self, key, _):
        data = _bold_data(key)
        seed = roi_mean(data, _roi(key))
        return seed, correlation_map(seed, data).astype(np.float32)

    def make_insert(self, key, seed, seed_map):
        self.insert1(dict(key, seed_ts=seed, seed_map=seed_map))


@schema
class LFPPowerMap(dj.Computed):
    definition = """
    # r of each band's HRF-convolved power with every brain voxel, for one implant and scan
    -> BandPower
    -> PreprocessedBold
    """

    class Band(dj.Part):
        definition = """
        -> master
        -> BandPower.Band
        ---
        power_map : <blob>             # float32 Pearson r per brain voxel
        spearman_map : <blob>          # float32 Spearman r per brain voxel
        mi_map : <blob>                # float32 Gaussian-copula mutual information (nats) per voxel
        """

    @property
    def key_source(self):
        return BandPower.proj() * (PreprocessedBold & {"excluded": False}).proj()

    def make_fetch(self, key):
        return ((PreprocessedBold & key).fetch1("data_digest"),)

    def make_compute(self, key, _):
        data = _bold_data(key)
        keep = (PreprocessedBold & key).fetch1("keep")
        bands, regs = (BandPower.Band & key).to_arrays("band", "regressor")
        regs = np.stack(regs)[:, keep]
        maps = [f(regs, data).astype(np.float32)
                for f in (correlation_map, rank_correlation_map, mutual_information_map)]
        return list(bands), *maps

    def make_insert(self, key, bands, pearson, spearman, mi):
        self.insert1(key)
        self.Band.insert(dict(key, band=b, power_map=p, spearman_map=s, mi_map=m)
                         for b, p, s, m in zip(bands, pearson, spearman, mi))


@schema
class TemporalCorrelation(dj.Computed):
    definition = """
    # per scan and implant: how each band's HRF-convolved power tracks the local (ROI) BOLD
    -> BandPower
    -> SeedMap
    """

    class Band(dj.Part):
        definition = """
        -> master
        -> BandPower.Band
        ---
        r : float64                    # Pearson
        spearman_r : float64
        mutual_info = null : float64   # nats, k-nearest-neighbour estimate (classic bands)
        shuffled_r = null : float64    # mean r of circularly shifted band power (classic bands)
        shuffled_p = null : float64    # fraction of shifts with |r| >= |observed|
        """

    def make(self, key):
        seed = (SeedMap & key).fetch1("seed_ts")
        keep = (PreprocessedBold & key).fetch1("keep")
        t_r = (BandPower & key).fetch1("t_r")
        classic = set((params.FrequencyBand & {"band_set": "classic"}).to_arrays("band"))
        metric = {m: get_plugin("temporal_metric", m) for m in ("pearson", "spearman", "mutual_information")}
        rows = []
        for band, reg in zip(*(BandPower.Band & key).to_arrays("band", "regressor")):
            x = reg[keep]
            row = dict(key, band=band, r=metric["pearson"](x, seed), spearman_r=metric["spearman"](x, seed),
                       mutual_info=None, shuffled_r=None, shuffled_p=None)
            if band in classic:  # the slower estimates only where the study reports them
                control = shuffled_control(x, seed, t_r=t_r)
                row.update(mutual_info=metric["mutual_information"](x, seed), shuffled_r=control["mean"],
                           shuffled_p=control["p"])
            rows.append(row)
        self.insert1(key)
        self.Band.insert(rows)


@schema
class SpatialSimilarity(dj.Computed):
    definition = """
    # per scan and implant: how each band's LFP power map matches the seed map over brain voxels
    -> LFPPowerMap
    -> SeedMap
    """

    class Band(dj.Part):
        definition = """
        -> master
        -> LFPPowerMap.Band
        ---
        r : float64
        r2 : float64                   # spatial variance explained
        """

    def make(self, key):
        seed_map = (SeedMap & key).fetch1("seed_map")
        self.insert1(key)
        rows = []
        for band, power_map in zip(*(LFPPowerMap.Band & key).to_arrays("band", "power_map")):
            r = spatial_similarity(power_map, seed_map)
            rows.append(dict(key, band=band, r=r, r2=r * r))
        self.Band.insert(rows)


def _relation_keys():
    """Every scan and implant with band power and a seed map, under each RelationParams set."""
    return BandPower.proj() * SeedMap.proj() * params.RelationParams.proj()


def _classic_regressors(key):
    """HRF-convolved power of the five named bands, (n_volumes, 5), delta..gamma."""
    rows = (BandPower.Band * params.FrequencyBand & key & {"band_set": "classic"}).to_dicts(order_by="band_order")
    return [r["band"] for r in rows], np.column_stack([r["regressor"] for r in rows])


@schema
class HRFSensitivity(dj.Computed):
    definition = """
    # how one band's temporal and spatial r depend on the HRF's response and undershoot delays
    -> BandPower
    -> SeedMap
    -> params.RelationParams
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

    key_source = property(lambda self: _relation_keys())

    def make(self, key):
        p = params.RelationParams.get_params(key)["hrf_sweep"]
        hrf_p = params.BandPowerParams.get_params(key)["hrf"].get("p")
        power = (BandPower.Band & key & {"band": p["band"]}).fetch1("power")
        times, onsets, t_r = (BandPower & key).fetch1("times", "volume_onsets", "t_r")
        keep = (PreprocessedBold & key).fetch1("keep")
        seed_map = (SeedMap & key).fetch1("seed_map")
        sweep = hrf_sweep(power.astype(np.float64), times, onsets[keep], t_r, _bold_data(key), roi=_roi(key),
                          response_delays=params.grid(p["response_delays"]),
                          undershoot_delays=params.grid(p["undershoot_delays"]), seed_map=seed_map,
                          **({"p": hrf_p} if hrf_p else {}))
        i, j = np.unravel_index(np.nanargmax(np.abs(sweep["temporal_r"])), sweep["temporal_r"].shape)
        self.insert1(dict(key, band=p["band"], response_delays=sweep["response_delays"],
                          undershoot_delays=sweep["undershoot_delays"], temporal_r=sweep["temporal_r"],
                          spatial_r=sweep["spatial_r"], best_response_delay=float(sweep["response_delays"][i]),
                          best_undershoot_delay=float(sweep["undershoot_delays"][j]),
                          best_temporal_r=float(sweep["temporal_r"][i, j])))


@schema
class LagCorrelation(dj.Computed):
    definition = """
    # lagged cross-correlation of band power (not HRF-convolved) with the local BOLD
    -> BandPower
    -> SeedMap
    -> params.RelationParams
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

    key_source = property(lambda self: _relation_keys())

    def make(self, key):
        max_lag = params.RelationParams.get_params(key)["lag"]["max_lag_s"]
        keep = (PreprocessedBold & key).fetch1("keep")
        seed = (SeedMap & key).fetch1("seed_ts")
        times, onsets, t_r = (BandPower & key).fetch1("times", "volume_onsets", "t_r")
        rows = (BandPower.Band * params.FrequencyBand & key & {"band_set": "classic"}).to_dicts(order_by="band_order")
        self.insert1(dict(key, contiguous=bool(keep.all())))
        parts = []
        for row in rows:
            part = dict(key, band=row["band"])
            if keep.all():  # a lag needs an unbroken series; scrubbed scans get no lag
                _, per_volume = hrf_regressor(row["power"].astype(np.float64), times, onsets, t_r,
                                              kernel=np.ones(1))
                lags, r = lagged_xcorr(per_volume, seed, t_r=t_r, max_lag_s=max_lag)
                peak = peak_lag(lags, r, absolute=True)
                part.update(lags_s=lags, r=r, peak_lag_s=peak, peak_r=float(r[np.argmin(np.abs(lags - peak))]))
            parts.append(part)
        self.Band.insert(parts)


@schema
class LFPRemoval(dj.Computed):
    definition = """
    # seed maps recomputed after LFP-derived time courses are removed from the BOLD
    -> BandPower
    -> SeedMap
    -> params.RelationParams
    """

    class Method(dj.Part):
        definition = """
        -> master
        -> params.RemovalMethod
        ---
        seed_map : <blob>              # float32 r per brain voxel, after removal
        spatial_r : float64            # vs the original seed map
        n_volumes : int32              # volumes left
        """

    key_source = property(lambda self: _relation_keys())

    def make_fetch(self, key):
        return ((PreprocessedBold & key).fetch1("data_digest"), params.RelationParams.get_params(key)["removal"])

    def make_compute(self, key, _, p):
        data = _bold_data(key)
        keep = (PreprocessedBold & key).fetch1("keep")
        original = (SeedMap & key).fetch1("seed_map")
        roi = _roi(key)
        _, regressors = _classic_regressors(key)
        out = []
        for method in p["methods"]:
            kw = {"percentile": p["censor_percentile"]} if method == "censor" else {}
            cleaned, kept = get_plugin("lfp_removal", method)(data, regressors[keep], **kw)
            seed_map = correlation_map(roi_mean(cleaned, roi), cleaned).astype(np.float32)
            out.append((method, seed_map, spatial_similarity(seed_map, original), int(kept.sum())))
        return (out,)

    def make_insert(self, key, out):
        self.insert1(key)
        self.Method.insert(dict(key, removal=m, seed_map=sm, spatial_r=r, n_volumes=n) for m, sm, r, n in out)
