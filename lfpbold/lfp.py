"""One implant's LFP for one scan, from the raw NWB series to the clean, decimated, combined signal.

The computation behind ``CleanLFP``, as a plain function on a file path and parameters: no DataJoint.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
from scipy.signal import decimate, welch

from lfpbold.ingest import read_lfp
from lfpbold.plugins import get_plugin
from lfpbold.plugins.contracts import combine_result

__all__ = ["clean_implant", "SPECTRUM_MAX_HZ"]

#: Highest frequency of the before/after-cleaning spectra kept for the quality figure (Hz).
SPECTRUM_MAX_HZ = 500.0


def _method(step_params: dict, step: str):
    if not isinstance(step_params, dict) or "method" not in step_params:
        raise ValueError(f"params[{step!r}] must be a dict with a 'method' key; got {step_params!r}")
    kwargs = dict(step_params)
    return kwargs.pop("method"), kwargs


def _spectrum(signal, sfreq):
    """Welch power spectral density at 1 Hz resolution up to :data:`SPECTRUM_MAX_HZ`: (freqs, V^2/Hz)."""
    freqs, psd = welch(signal, fs=sfreq, nperseg=min(signal.size, max(8, int(round(sfreq)))))
    keep = freqs <= SPECTRUM_MAX_HZ
    return freqs[keep], psd[keep]


def _clean_channel(nwb_path, series_path, channel, sfreq, slice_onsets, clean, clean_kw, q, threads):
    """Read, clean and decimate one channel: (float64 (ceil(n_times / q),), freqs, raw PSD, clean PSD).

    Runs in a worker too. The spectra before and after cleaning are taken at the full rate, while
    the raw samples are in memory anyway, for the quality figure."""
    limits = None
    if threads:
        try:  # one BLAS thread per worker, so n_jobs workers share the cores instead of fighting
            from threadpoolctl import threadpool_limits

            limits = threadpool_limits(threads)
        except ImportError:
            pass
    try:
        raw = read_lfp(nwb_path, series_path=series_path, channels=[channel])[0]
        cleaned = clean(raw, sfreq, slice_onsets=slice_onsets, **clean_kw)
        freqs, raw_psd = _spectrum(np.asarray(raw, dtype=np.float64), sfreq)
        del raw
        # float64 as before (read as float32, the cleaning works in float64)
        cleaned = np.asarray(cleaned, dtype=np.float64)
        _, clean_psd = _spectrum(cleaned, sfreq)
        decimated = decimate(cleaned, q, ftype="fir", zero_phase=True) if q > 1 else cleaned
        return decimated, freqs, raw_psd, clean_psd
    finally:
        if limits is not None:
            limits.unregister()


def clean_implant(nwb_path, *, series_path, channels, sfreq, slice_onsets, params, n_jobs=1):
    """Clean, decimate and combine the channels of one implant in one scan's raw LFP.

    Each channel is read alone at the full rate (:func:`lfpbold.ingest.read_lfp`), cleaned by
    the ``lfp_cleaning`` method of ``params`` (gradient-artifact removal, e.g. Tu & Zhang 2022
    template regression with its notch filters), and decimated by the whole factor
    ``q = floor(sfreq / output_rate_hz)`` with :func:`scipy.signal.decimate` (zero-phase FIR
    anti-alias filter, 30 q + 1 Hamming-windowed taps). The decimated channels are then combined
    by the ``channel_combine`` method (e.g. phase-aligned mean). Only one full-rate channel is
    in memory per process: about 0.6 GB for a 30-minute channel at 24,414 Hz, plus the
    decimated channels (14 MB each at 1 kHz).

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
        ``freqs`` (Hz, 1 Hz apart up to :data:`SPECTRUM_MAX_HZ`), ``raw`` and ``clean``: the
        channels' mean Welch power spectral density (V^2/Hz) before and after cleaning, at the
        full rate (the quality figure of artifact removal).
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

    workers = min((os.cpu_count() or 1) if n_jobs == -1 else int(n_jobs), len(channels))
    if workers > 1 and getattr(clean, "__module__", "__main__") == "__main__":
        warnings.warn(
            f"lfp_cleaning method {clean_name!r} is defined in __main__, which worker processes "
            "cannot import; cleaning the channels in this process (n_jobs=1)",
            stacklevel=2,
        )
        workers = 1
    args = [(nwb_path, series_path, ch, sfreq, slices, clean, clean_kw, q) for ch in channels]
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
