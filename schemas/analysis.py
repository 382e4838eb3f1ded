"""Per-scan processing filled in by ``populate``: clean LFP, band power and preprocessed BOLD.

Every ``make`` fetches its inputs, calls the plugin methods its parameter set names (looked up in the
entry-point registry) and inserts the result; each table computes only the parameter-set
combinations :class:`~lfpbold.schemas.params.AnalysisSelection` asks for. Heavy steps use the
tripartite make: ``make_fetch`` returns only identifiers and digests (it is run twice and its result
hashed) and checks each file it names against what ingest recorded
(:func:`lfpbold.integrity.verified_file`), ``make_compute`` reads the data and calls the plugins
outside any transaction, ``make_insert`` writes the rows.

What LFP and BOLD have to do with each other (maps, temporal and spatial relationships, LFP
removal) is in :mod:`lfpbold.schemas.relations`. The numeric helpers (readers, plugins) are
imported inside the makes: activating the schemas, as every ``lfpbold`` command does, then needs
DataJoint only, not SciPy, scikit-learn or pynwb.
"""

import hashlib

import datajoint as dj
import numpy as np

from lfpbold.integrity import verified_file
from lfpbold.plugins import get_plugin

from . import acquisition, params
from .params import method_and_kwargs, selected

schema = dj.Schema()


def digest(array) -> str:
    """Content digest stored beside large arrays, so downstream makes can verify what they read."""
    a = np.ascontiguousarray(array)
    return hashlib.md5(a.tobytes() + str((a.dtype, a.shape)).encode()).hexdigest()


def db_float(value):
    """A float for the database, None for missing (MySQL has no NaN)."""
    return None if value is None or not np.isfinite(value) else float(value)


def _bands(band_sets):
    """Bands of the given sets, in display order (sets in the order given)."""
    rows = (params.FrequencyBand & [{"band_set": s} for s in band_sets]).to_dicts(order_by="band_set, band_order")
    return sorted(rows, key=lambda r: (list(band_sets).index(r["band_set"]), r["band_order"]))


def band_rows(key, attribute: str, band_sets=None) -> list[dict]:
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
    spectrum_hz = null : <blob>        # frequencies of the two spectra below, about 1 Hz apart from 0 (quality figure)
    raw_psd = null : <blob>            # channels' mean power spectral density before cleaning, V^2/Hz
    clean_psd = null : <blob>          # the same after cleaning (before decimation)
    """

    class Channel(dj.Part):
        definition = """
        # one channel of the implant after cleaning
        -> master
        -> acquisition.LFPRecording.Channel
        ---
        lag_samples : int32            # shift applied before combining
        excluded_reason = null : varchar(32)  # why combining left the channel out (flat, noisy, ...); null if used
        signal = null : <blob@lfpbold> # float32 cleaned, decimated (kept when params keep_channels)
        """

    @property
    def key_source(self):
        rec = acquisition.LFPRecording.proj() * acquisition.Implant.proj() * params.LFPParams.proj()
        return selected(rec & acquisition.LFPRecording.Channel.proj("region"))

    def make_fetch(self, key):
        nwb_path = verified_file(acquisition.LFPRecording & key, "nwb")  # the file ingested, or an error naming it
        rec = (nwb_path, *(acquisition.LFPRecording & key).fetch1("nwb_sha256", "series_path", "sampling_rate"))
        channels = tuple((acquisition.LFPRecording.Channel & key).to_arrays("channel", order_by="channel").tolist())
        own = acquisition.LFPRecording.ImplantSeries & key
        if own:  # one series per probe: this implant's series, channels as its columns
            series_path, first = own.fetch1("series_path", "first_channel")
            rec, channels = (*rec[:2], series_path, rec[3]), tuple(c - int(first) for c in channels)
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

    def make_insert(self, key, rate, combined, lags, kept, spectrum, excluded):
        self.insert1(
            dict(
                key,
                sampling_rate=rate,
                combined=combined,
                n_channels=len(lags),
                combined_digest=digest(combined),
                spectrum_hz=spectrum["freqs"],
                raw_psd=spectrum["raw"],
                clean_psd=spectrum["clean"],
            )
        )
        chans = (acquisition.LFPRecording.Channel & key).to_arrays("channel", order_by="channel")
        kept = kept if kept is not None else [None] * len(lags)
        rows = zip(chans, lags, kept, strict=True)
        self.Channel.insert(
            dict(key, channel=int(c), lag_samples=int(lag), excluded_reason=excluded.get(i), signal=sig)
            for i, (c, lag, sig) in enumerate(rows)
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
        bold_path = verified_file(acquisition.FMRIRun & key, "bold")  # the file ingested, or an error naming it
        return bold_path, params.BoldParams.get_params(key)

    def make_compute(self, key, bold_path, p):
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
        bold, affine = read_bold(bold_path)
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


def _verified(row, attribute: str, expected: str):
    """Fetch a large array and check it against the digest make_fetch saw (no change in between)."""
    value = row.fetch1(attribute)
    if digest(value) != expected:
        raise dj.DataJointError(f"{row.table_name} {attribute} changed while it was being read")
    return value


def bold_data(key):
    """A scan's preprocessed BOLD (n_kept, n_brain_voxels), checked against its stored digest."""
    row = PreprocessedBold & key
    return _verified(row, "data", row.fetch1("data_digest"))
