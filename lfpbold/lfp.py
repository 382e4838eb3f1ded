"""One implant's LFP for one scan, from the raw NWB series to the clean, decimated, combined signal.

The computation behind ``CleanLFP``, as a plain function on a file path and parameters: no DataJoint.
"""

from __future__ import annotations

import functools
import inspect
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
from scipy.fft import next_fast_len
from scipy.signal import decimate, firwin, upfirdn, welch

from lfpbold.ingest import read_lfp
from lfpbold.plugins import get_plugin
from lfpbold.plugins.contracts import combine_result
from lfpbold.plugins.lfp_cleaning import _slice_rate_notches
from lfpbold.plugins.spectral import notch_filter

__all__ = ["clean_implant", "SPECTRUM_MAX_HZ", "NOTCH_KEYS"]

#: Highest frequency of the before/after-cleaning spectra kept for the quality figure (Hz).
SPECTRUM_MAX_HZ = 500.0


def _method(step_params: dict, step: str):
    if not isinstance(step_params, dict) or "method" not in step_params:
        raise ValueError(f"params[{step!r}] must be a dict with a 'method' key; got {step_params!r}")
    kwargs = dict(step_params)
    return kwargs.pop("method"), kwargs


#: The keys of an ``lfp_cleaning`` parameter set that name its notch filters, with their meaning
#: when neither the set nor the method's signature gives them (no notch). clean_implant applies
#: them after decimation, not the cleaning method (see :func:`clean_implant`).
NOTCH_KEYS = {"line_freq": None, "notch_max_hz": 300.0, "notch_slice_rate": False}

# Samples per block of the full-rate Welch spectra and of the decimation (output samples): a few
# MB of float64 at a time, whatever the recording's length.
_WELCH_SEGMENTS = 256
_DECIMATE_BLOCK = 2**16


def spectrum_window(sfreq: float) -> int:
    """Samples per window of the quality spectra: the first length at or above one second whose FFT
    is fast (only factors 2, 3, 5; :func:`scipy.fft.next_fast_len`).

    A window of exactly ``round(sfreq)`` samples gives bins 1 Hz apart, but at the TDT rate
    24,414 Hz (2 x 3 x 13 x 313) its FFT is 8x slower than at 24,576 and the two full-rate
    spectra were most of a channel's cleaning time; the bins are 0.993 Hz apart instead.

    >>> spectrum_window(24414.0625), spectrum_window(2000.0)
    (24576, 2000)
    """
    return max(8, next_fast_len(int(round(sfreq)), real=True))


def _spectrum(signal, sfreq):
    """Welch power spectral density at about 1 Hz resolution up to :data:`SPECTRUM_MAX_HZ`: (freqs, V^2/Hz).

    :func:`scipy.signal.welch` (Hann windows of :func:`spectrum_window` samples, half overlapping) run
    on stretches of :data:`_WELCH_SEGMENTS` whole windows at a time and averaged with weights:
    the same mean of the same periodograms as one call on the whole signal, to rounding, while
    holding a few MB of float64 instead of several copies of the recording (its framed windows,
    detrended copy and spectra: about 2 GB for a 30-minute channel at 24 kHz)."""
    n = signal.size
    nperseg = min(n, spectrum_window(sfreq))
    step = nperseg - nperseg // 2
    n_seg = (n - nperseg) // step + 1
    total = None
    for k0 in range(0, n_seg, _WELCH_SEGMENTS):
        k1 = min(k0 + _WELCH_SEGMENTS, n_seg)
        part = np.asarray(signal[k0 * step : (k1 - 1) * step + nperseg], dtype=np.float64)
        freqs, psd = welch(part, fs=sfreq, nperseg=nperseg)
        total = psd * (k1 - k0) if total is None else total + psd * (k1 - k0)
    keep = freqs <= SPECTRUM_MAX_HZ
    return freqs[keep], total[keep] / n_seg


@functools.lru_cache(maxsize=8)
def _decimation_filter(q: int) -> np.ndarray:
    """The anti-alias FIR of :func:`scipy.signal.decimate` (``ftype="fir"``): 20 q + 1
    Hamming-windowed taps, cut-off at the new Nyquist frequency. Designed once per factor."""
    h = firwin(20 * q + 1, 1.0 / q, window="hamming")
    h.setflags(write=False)
    return h


def _decimate(x, q: int) -> np.ndarray:
    """``scipy.signal.decimate(x, q, ftype="fir", zero_phase=True)`` block by block.

    That call is a polyphase linear-phase FIR with its delay removed
    (:func:`scipy.signal.resample_poly`, zero-padded ends): ``y[j] = sum_k h[k] x[j q + half - k]``.
    Here the same sum is computed by :func:`scipy.signal.upfirdn` on :data:`_DECIMATE_BLOCK`
    output samples at a time, each block reading its input with a margin of half a filter, so
    the result is the same to rounding while the float64 working set is a few MB, not the
    several full-rate copies ``resample_poly`` makes."""
    h = _decimation_filter(q)
    half = (h.size - 1) // 2
    n = x.size
    n_out = -(-n // q)
    # Zeros in front make the first wanted output sample land on upfirdn's grid of q.
    pre = (-2 * half) % q
    first = (2 * half + pre) // q
    out = np.empty(n_out)
    for j0 in range(0, n_out, _DECIMATE_BLOCK):
        j1 = min(j0 + _DECIMATE_BLOCK, n_out)
        lo, hi = j0 * q - half, (j1 - 1) * q + half + 1  # x[lo:hi] feeds outputs j0 .. j1 - 1
        seg = np.zeros(pre + hi - lo)
        a, b = max(lo, 0), min(hi, n)
        seg[pre + a - lo : pre + b - lo] = x[a:b]
        out[j0:j1] = upfirdn(h, seg, up=1, down=q)[first : first + j1 - j0]
    return out


def _notch_plan(clean, clean_kw: dict) -> tuple[dict, dict]:
    """Split an ``lfp_cleaning`` parameter set into the method's keyword arguments and the notch
    settings: the set's :data:`NOTCH_KEYS`, else the method's own defaults for them, else none.

    The method is told not to notch (``line_freq=None, notch_slice_rate=False``) when it takes
    those keywords (by name or ``**params``)."""
    try:
        signature = inspect.signature(clean).parameters
    except (TypeError, ValueError):  # a callable without a signature: assume it takes **params
        signature = {}
    settings = dict(NOTCH_KEYS)
    for key in NOTCH_KEYS:
        if key in signature and signature[key].default is not inspect.Parameter.empty:
            settings[key] = signature[key].default
        if key in clean_kw:
            settings[key] = clean_kw[key]
    kwargs = {k: v for k, v in clean_kw.items() if k not in NOTCH_KEYS}
    takes_any = not signature or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.values())
    for key, off in (("line_freq", None), ("notch_slice_rate", False)):
        if takes_any or key in signature:
            kwargs[key] = off
    return kwargs, settings


def _notch_freqs(settings: dict, slice_onsets, rate: float) -> np.ndarray:
    """The frequencies the cleaning methods notch: ``line_freq`` and its harmonics, and the slice
    rate (1 / median inter-slice interval) and its harmonics if ``notch_slice_rate``, up to
    ``notch_max_hz`` and below the Nyquist frequency of ``rate``."""
    onsets = np.asarray(slice_onsets, dtype=np.float64)
    slice_rate = None
    if settings["notch_slice_rate"] and onsets.size >= 2:
        slice_rate = 1.0 / float(np.median(np.diff(onsets)))
    return _slice_rate_notches(settings["line_freq"], float(settings["notch_max_hz"]), slice_rate, rate)


def _clean_channel(nwb_path, series_path, channel, sfreq, slice_onsets, clean, clean_kw, q, notches, threads):
    """Read, clean, decimate and notch one channel: (float64 (ceil(n_times / q),), freqs, raw
    PSD, clean PSD).

    Runs in a worker too. The spectra before and after artifact removal are taken at the full
    rate, block by block, while the samples are in memory anyway, for the quality figure. The
    cleaning method is called without its notch filters (``clean_kw`` from :func:`_notch_plan`);
    ``notches`` (Hz) are applied after decimation, at the output rate. ``notches=None`` is the
    order of operations before that change (the method notches at the full rate, then
    :func:`scipy.signal.decimate`), kept for ``benchmarks/lfp_throughput.py``."""
    limits = None
    if threads:
        try:  # one BLAS thread per worker, so n_jobs workers share the cores instead of fighting
            from threadpoolctl import threadpool_limits

            limits = threadpool_limits(threads)
        except ImportError:
            pass
    try:
        raw = read_lfp(nwb_path, series_path=series_path, channels=[channel])[0]
        freqs, raw_psd = _spectrum(raw, sfreq)
        cleaned = clean(raw, sfreq, slice_onsets=slice_onsets, **clean_kw)
        del raw
        # float64 as before (read as float32, the cleaning works in float64)
        cleaned = np.asarray(cleaned, dtype=np.float64)
        _, clean_psd = _spectrum(cleaned, sfreq)
        if notches is None:  # the old order of operations
            decimated = decimate(cleaned, q, ftype="fir", zero_phase=True) if q > 1 else cleaned
            return decimated, freqs, raw_psd, clean_psd
        decimated = _decimate(cleaned, q) if q > 1 else cleaned
        del cleaned
        if len(notches):
            decimated = notch_filter(decimated, sfreq / q, freqs=notches, out=decimated)
        return decimated, freqs, raw_psd, clean_psd
    finally:
        if limits is not None:
            limits.unregister()


def clean_implant(nwb_path, *, series_path, channels, sfreq, slice_onsets, params, n_jobs=1, _old_order=False):
    """Clean, decimate, notch and combine the channels of one implant in one scan's raw LFP.

    Each channel is read alone at the full rate (:func:`lfpbold.ingest.read_lfp`), cleaned of
    gradient artifacts by the ``lfp_cleaning`` method of ``params`` (e.g. Tu & Zhang 2022
    template regression), and decimated by the whole factor ``q = floor(sfreq / output_rate_hz)``
    with the zero-phase FIR of :func:`scipy.signal.decimate` (20 q + 1 Hamming-windowed taps,
    designed once, applied as a polyphase filter block by block). The notch filters the
    parameter set names (:data:`NOTCH_KEYS`: ``line_freq`` and its harmonics, the slice rate
    and its harmonics if ``notch_slice_rate``, up to ``notch_max_hz``; keys the set leaves out
    take the cleaning method's defaults, or none) are then applied to the decimated channel, at
    the output rate, with the filter designed once (:func:`lfpbold.plugins.spectral.notch_filter`):
    the method is called with ``line_freq=None, notch_slice_rate=False``. Notching after
    decimation gives what notching at the full rate before it gave (both are linear filters,
    every notch lies below the output's Nyquist frequency; ``tests/test_lfp_speed_equivalence.py``
    compares the two orders) at a 24th of the samples. The decimated channels are then combined
    by the ``channel_combine`` method (e.g. phase-aligned mean).

    Memory: one full-rate channel per process, as float32 (read) and float64 (the cleaning
    method's output) plus what the method needs; spectra and decimation work on blocks of a
    few MB. About 0.6 GB for a 30-minute channel at 24,414 Hz with ``template_regression``,
    plus the decimated channels (14 MB each at 1 kHz); ``benchmarks/lfp_throughput.py`` measures it.

    Parameters
    ----------
    nwb_path : path
        The scan's NWB file.
    series_path : str
        HDF5 path of the raw ElectricalSeries in it, e.g. ``acquisition/ElectricalSeries``.
    channels : sequence of int
        The implant's columns of the series, in the order the results are returned.
    sfreq : float
        Sampling rate of the series in Hz.
    slice_onsets : array-like of shape (n_slices,)
        Slice trigger times in seconds on the series' clock, passed to the cleaning method.
    params : dict
        An ``LFPParams`` parameter set: ``lfp_cleaning`` ``{method, ...}``, ``channel_combine``
        ``{method, ...}``, ``output_rate_hz`` and ``keep_channels``. The methods are looked up
        with :func:`lfpbold.plugins.get_plugin`; the other keys are their keyword arguments.
    n_jobs : int, default 1
        Channels cleaned at once, each in its own worker process that reads its own channel
        (memory about ``n_jobs`` x one channel). 1 works in this process; -1 uses every core.
        Worker processes are started fresh ("spawn"), so the cleaning method must be
        importable by name: a method registered from a notebook's ``__main__`` runs with
        ``n_jobs=1`` (with a warning).
    _old_order : bool, default False
        Private, for ``benchmarks/lfp_throughput.py``: the order of operations before notching
        moved after decimation (the method notches at the full rate, then
        :func:`scipy.signal.decimate` on the whole channel).

    Returns
    -------
    rate : float
        Sampling rate after decimation, ``sfreq / q`` (Hz).
    combined : ndarray of shape (n_samples,), float32
        The combined signal on the series' clock from 0 s.
    lags : ndarray of shape (n_channels,), int
        The shift the combine method applied to each channel (samples at ``rate``).
    channel_signals : ndarray of shape (n_channels, n_samples), float32, or None
        Each channel cleaned and decimated, when ``params["keep_channels"]`` is true.
    spectrum : dict
        ``freqs`` (Hz, about 1 Hz apart: :func:`spectrum_window`; up to :data:`SPECTRUM_MAX_HZ`), ``raw``
        and ``clean``: the channels' mean Welch power spectral density (V^2/Hz) before and after
        artifact removal, at the full rate (the quality figure of artifact removal); ``clean`` is taken before the
        notch filters, which run after decimation.
    excluded : dict
        ``{position in channels: reason}`` of the channels the combine method left out (empty
        for a method that reports none; see :func:`lfpbold.plugins.contracts.combine_result`).

    Raises
    ------
    ValueError
        If ``channels`` is empty, ``n_jobs`` is 0 or below -1, or ``params`` lacks a step or
        a positive ``output_rate_hz``.

    Examples
    --------
    >>> from lfpbold.schemas.params import LFPParams  # doctest: +SKIP
    >>> rate, combined, lags, per_channel, spectrum, excluded = clean_implant(
    ...     "sub-01_ses-sedated01_task-rest_run-1_ecephys.nwb", series_path="acquisition/ElectricalSeries",
    ...     channels=range(16), sfreq=24414.0, slice_onsets=slices, params=LFPParams.default_params(),
    ...     n_jobs=2)  # doctest: +SKIP
    >>> rate, combined.dtype, per_channel.shape  # doctest: +SKIP
    (1017.25, dtype('float32'), (16, 1836137))
    """
    channels = [int(c) for c in channels]
    if not channels:
        raise ValueError("channels is empty: name the implant's columns of the series")
    if not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"n_jobs must be a positive number of processes or -1 (every core); got {n_jobs!r}")
    for key in ("lfp_cleaning", "channel_combine", "output_rate_hz"):
        if key not in params:
            raise ValueError(f"params has no {key!r}; expected an LFPParams parameter set, got keys {sorted(params)}")
    output_rate = float(params["output_rate_hz"])
    if not output_rate > 0:
        raise ValueError(f"params['output_rate_hz'] must be a positive rate in Hz; got {params['output_rate_hz']!r}")
    clean_name, clean_kw = _method(params["lfp_cleaning"], "lfp_cleaning")
    combine_name, combine_kw = _method(params["channel_combine"], "channel_combine")
    clean = get_plugin("lfp_cleaning", clean_name)
    combine = get_plugin("channel_combine", combine_name)
    sfreq = float(sfreq)
    q = max(1, int(sfreq // output_rate))
    rate = sfreq / q
    nwb_path = os.fspath(nwb_path)
    slices = np.asarray(slice_onsets, dtype=np.float64)
    if _old_order:  # the method notches at the full rate, then scipy.signal.decimate
        notches = None
    else:
        clean_kw, notch_settings = _notch_plan(clean, clean_kw)
        notches = _notch_freqs(notch_settings, slices, rate)

    workers = min((os.cpu_count() or 1) if n_jobs == -1 else int(n_jobs), len(channels))
    if workers > 1 and getattr(clean, "__module__", "__main__") == "__main__":
        warnings.warn(
            f"lfp_cleaning method {clean_name!r} is defined in __main__, which worker processes "
            "cannot import; cleaning the channels in this process (n_jobs=1)",
            stacklevel=2,
        )
        workers = 1
    args = [(nwb_path, series_path, ch, sfreq, slices, clean, clean_kw, q, notches) for ch in channels]
    stack = None
    if workers == 1:  # one full-rate channel in memory at a time
        results = (_clean_channel(*a, None) for a in args)
        stack = _fill(results, len(channels))
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            stack = _fill(pool.map(_clean_channel, *zip(*args, strict=True), [threads] * len(args)), len(channels))

    stack, spectrum = stack
    combined, lags, excluded = combine_result(combine(stack, rate, **combine_kw), len(channels))
    combined = np.asarray(combined, dtype=np.float32)
    kept = stack.astype(np.float32) if params.get("keep_channels") else None
    return rate, combined, np.asarray(lags, dtype=int), kept, spectrum, excluded


def _fill(results, n_channels: int) -> tuple[np.ndarray, dict]:
    """Stack the decimated channels as they arrive, into one float64 (n_channels, n) array, and
    average their spectra."""
    stack = raw = clean = freqs = None
    for i, (signal, channel_freqs, raw_psd, clean_psd) in enumerate(results):
        if stack is None:
            stack = np.empty((n_channels, signal.size), dtype=np.float64)
            freqs = channel_freqs
            raw, clean = np.zeros_like(raw_psd), np.zeros_like(clean_psd)
        stack[i] = signal
        raw += raw_psd / n_channels
        clean += clean_psd / n_channels
    return stack, {"freqs": freqs, "raw": raw, "clean": clean}
