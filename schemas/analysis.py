"""Per-scan analyses filled in by ``populate``: clean LFP, band power, preprocessed BOLD and maps.

Heavy steps use the tripartite make: ``make_fetch`` returns only identifiers and digests (it is run
twice and its result hashed), ``make_compute`` reads the data and calls the plugins outside any
transaction, ``make_insert`` writes the rows.
"""

import hashlib

import datajoint as dj
import numpy as np
from scipy.signal import decimate

from lfpbold.ingest import read_bold, read_lfp
from lfpbold.plugins import get_plugin
from lfpbold.plugins.bold import framewise_displacement, screen_motion
from lfpbold.plugins.hrf import hrf_regressor
from lfpbold.plugins.maps import correlation_map, roi_mean, spatial_similarity

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
        clean_name, clean_kw = _method(p["lfp_cleaning"])
        clean = get_plugin("lfp_cleaning", clean_name)
        q = max(1, int(sfreq // p["output_rate_hz"]))
        rate = sfreq / q
        decimated = []
        for ch in channels:  # one full-rate channel in memory at a time
            raw = read_lfp(nwb_path, series_path=series_path, channels=[ch])[0].astype(np.float64)
            cleaned = clean(raw, sfreq, slice_onsets=slices, **clean_kw)
            decimated.append(decimate(cleaned, q, ftype="fir", zero_phase=True) if q > 1 else cleaned)
        stack = np.asarray(decimated, dtype=np.float64)
        combine_name, combine_kw = _method(p["channel_combine"])
        combined, lags = get_plugin("channel_combine", combine_name)(stack, rate, **combine_kw)
        combined = np.asarray(combined, dtype=np.float32)
        kept = stack.astype(np.float32) if p.get("keep_channels") else [None] * len(channels)
        return rate, combined, np.asarray(lags, dtype=int), kept

    def make_insert(self, key, rate, combined, lags, kept):
        self.insert1(dict(key, sampling_rate=rate, combined=combined, n_channels=len(lags),
                          combined_digest=digest(combined)))
        chans = (acquisition.LFPRecording.Channel & key).to_arrays("channel", order_by="channel")
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
        combined, rate = (CleanLFP & key).fetch1("combined", "sampling_rate")
        if digest(combined) != combined_digest:
            raise dj.DataJointError(f"CleanLFP {key} changed while BandPower was reading it")
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


def _bold_data(key):
    data, data_digest = (PreprocessedBold & key).fetch1("data", "data_digest")
    if digest(data) != data_digest:
        raise dj.DataJointError(f"PreprocessedBold {key} changed while it was being read")
    return data


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
        atlas = acquisition.Atlas & (acquisition.Scan & key)
        brain = atlas.fetch1("brain_mask")
        roi = (acquisition.Atlas.ROI & atlas & key).fetch1("roi_mask")[brain]
        seed = roi_mean(data, roi)
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
        power_map : <blob>             # float32 r per brain voxel
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
        maps = correlation_map(np.stack(regs)[:, keep], data).astype(np.float32)
        return list(bands), maps

    def make_insert(self, key, bands, maps):
        self.insert1(key)
        self.Band.insert(dict(key, band=b, power_map=m) for b, m in zip(bands, maps))


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
        mutual_info : float64          # nats
        """

    def make(self, key):
        seed = (SeedMap & key).fetch1("seed_ts")
        keep = (PreprocessedBold & key).fetch1("keep")
        metric = {m: get_plugin("temporal_metric", m) for m in ("pearson", "spearman", "mutual_information")}
        self.insert1(key)
        for band, reg in zip(*(BandPower.Band & key).to_arrays("band", "regressor")):
            x = reg[keep]
            self.Band.insert1(dict(key, band=band, r=metric["pearson"](x, seed),
                                   spearman_r=metric["spearman"](x, seed),
                                   mutual_info=metric["mutual_information"](x, seed)))


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
