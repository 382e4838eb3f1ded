"""Combining a probe's channels into one LFP signal.

A plain mean, and the phase-aligned mean of Tu & Zhang (2022) that undoes small lags between channels first.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from ._validation import check_array, check_seconds, check_sfreq

__all__ = ["mean_combine", "phase_aligned_combine", "find_bad_channels"]


def find_bad_channels(
    lfp, sfreq: float, *, flat_ratio: float = 0.01, noisy_ratio: float = 3.0, burst_ratio: float = 4.0
):
    """Channels to leave out of a probe's combination, and why (the PREP pipeline's criteria,
    Bigdely-Shamlo et al. 2015, in their simplest robust form).

    * ``flat``: RMS below ``flat_ratio`` times the median channel's (a broken lead);
    * ``intermittent``: at least two 1-s windows whose RMS exceeds ``burst_ratio`` times the
      channel's own median window RMS (a loose connector);
    * ``noisy``: RMS of the first difference (broadband, high-frequency weighted) above
      ``noisy_ratio`` times that of the median channel of the quieter half (a high-impedance
      contact). The quieter half, not all channels: with half of a 4-contact probe noisy, the
      median of all four would sit between a noisy and a clean contact and hide both.

    At least half of the channels are always kept (the most typical by the same measures), so a
    probe never loses its signal to the rules.

    Parameters
    ----------
    lfp : array-like of shape (n_channels, n_times)
    sfreq : float

    Returns
    -------
    dict
        ``{channel index: reason}``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((6, 20_000))
    >>> x[1] = 1e-6
    >>> x[2] += 10 * rng.standard_normal(20_000)
    >>> x[3, 5000:8000] += 50
    >>> find_bad_channels(x, 1000.0)
    {1: 'flat', 2: 'noisy', 3: 'intermittent'}
    """
    lfp = check_array(lfp, "lfp", ndim=2, layout="(n_channels, n_times)", non_empty=True)
    sfreq = check_sfreq(sfreq)
    n_ch = lfp.shape[0]
    x = np.asarray(lfp, dtype=np.float64)
    centred = x - np.median(x, axis=1, keepdims=True)
    rms = np.sqrt(np.mean(centred**2, axis=1))
    hf = np.sqrt(np.mean(np.diff(x, axis=1) ** 2, axis=1))
    win = max(1, int(round(sfreq)))
    n_win = x.shape[1] // win
    bad = {}
    ref_rms = np.median(rms)
    ref_hf = np.median(np.sort(hf)[: max(1, (n_ch + 1) // 2)])
    for c in range(n_ch):
        if rms[c] <= flat_ratio * ref_rms:
            bad[c] = "flat"
            continue
        if n_win >= 4:
            w = centred[c, : n_win * win].reshape(n_win, win)
            w_rms = np.sqrt(np.mean(w**2, axis=1))
            if np.sum(w_rms > burst_ratio * np.median(w_rms)) >= 2:
                bad[c] = "intermittent"
                continue
        if hf[c] > noisy_ratio * ref_hf:
            bad[c] = "noisy"
    if len(bad) > n_ch // 2:  # keep the half closest to the typical channel
        tiny = 1e-300
        score = np.abs(np.log(np.maximum(rms, tiny) / max(ref_rms, tiny)))
        score += np.abs(np.log(np.maximum(hf, tiny) / max(ref_hf, tiny)))
        keep = set(np.argsort(score)[: n_ch - n_ch // 2].tolist())
        bad = {c: r for c, r in bad.items() if c not in keep}
    return bad


def mean_combine(lfp, sfreq: float):
    """Average all channels sample by sample.

    Parameters
    ----------
    lfp : array-like of shape (n_channels, n_times)
        One probe's channels.
    sfreq : float
        Sampling rate in Hz (unused; kept so every combine method is called the same way).

    Returns
    -------
    combined : ndarray of shape (n_times,), float64
    lags : ndarray of shape (n_channels,), int
        All zeros: no channel is shifted.

    Examples
    --------
    >>> combined, lags = mean_combine(np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]), 1000.0)
    >>> combined, lags
    (array([2., 2., 2.]), array([0, 0]))
    """
    lfp = check_array(lfp, "lfp", ndim=2, layout="(n_channels, n_times)", non_empty=True)
    return lfp.mean(axis=0, dtype=np.float64), np.zeros(lfp.shape[0], dtype=int)


def phase_aligned_combine(
    lfp, sfreq: float, *, max_lag_s: float = 0.005, fit_s: float = 60.0, exclude_bad: bool = True
):
    """Shift each channel onto a reference channel by cross-correlation, then average.

    Tu & Zhang (2022) phase-align a probe's channels before combining them, so that small
    conduction or filter delays between contacts do not cancel high-frequency (gamma) activity
    in the average. The reference is the channel with the highest mean zero-lag Pearson
    correlation to the others; each channel's lag is the integer number of samples, within
    ``±max_lag_s``, that maximises its cross-correlation with the reference over the first
    ``fit_s`` seconds. At the recording's ends, where a shifted channel has no samples, the
    average is over the channels that do.

    Parameters
    ----------
    lfp : array-like of shape (n_channels, n_times)
        One probe's channels (any real dtype; only the fitting stretch is copied).
    sfreq : float
        Sampling rate in Hz.
    max_lag_s : float, default 0.005
        Largest lag searched, in seconds.
    fit_s : float, default 60.0
        Lags are estimated on at most this many seconds from the start.
    exclude_bad : bool, default True
        Leave out the channels :func:`find_bad_channels` names (their lag is reported as 0).

    Returns
    -------
    combined : ndarray of shape (n_times,), float64
        ``combined[t]`` is the mean over channels of ``lfp[c, t + lags[c]]``.
    lags : ndarray of shape (n_channels,), int
        Each channel's delay behind the reference in samples (0 for the reference): a positive
        lag means the channel lags the reference.
    excluded : dict
        ``{channel index: reason}`` of the channels left out (:func:`find_bad_channels`; empty
        when ``exclude_bad`` is false), so that the pipeline can record which and why.

    References
    ----------
    Tu & Zhang (2022) eLife 11:e81555.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> source = rng.standard_normal(5000)
    >>> lfp = np.stack([source[10:4010], source[7:4007], source[12:4012]])
    >>> combined, lags, excluded = phase_aligned_combine(lfp, 1000.0)
    >>> lags - lags[0], excluded
    (array([ 0,  3, -2]), {})
    >>> bool(np.allclose(combined[5:-5], source[15 + lags[0] : 4005 + lags[0]]))
    True
    """
    lfp = check_array(lfp, "lfp", ndim=2, layout="(n_channels, n_times)", non_empty=True)
    sfreq = check_sfreq(sfreq)
    max_lag_s = check_seconds(max_lag_s, "max_lag_s", allow_zero=True)
    fit_s = check_seconds(fit_s, "fit_s")
    n_channels, n_times = lfp.shape
    max_lag = int(round(max_lag_s * sfreq))
    n_fit = min(n_times, int(round(fit_s * sfreq)))
    if n_fit <= 2 * max_lag:
        raise ValueError(
            f"Need more than {2 * max_lag} samples to estimate lags up to ±{max_lag_s} s; "
            f"the fitting stretch has {n_fit}"
        )
    excluded = find_bad_channels(lfp, sfreq) if exclude_bad else {}
    good = [c for c in range(n_channels) if c not in excluded]
    fit = np.asarray(lfp[good, :n_fit], dtype=np.float64)
    fit = fit - fit.mean(axis=1, keepdims=True)
    std = fit.std(axis=1)
    if np.any(std == 0):
        flat = [good[i] for i in np.flatnonzero(std == 0)]
        raise ValueError(f"Channels {flat} are flat over the first {n_fit} samples")
    corr = np.corrcoef(fit) if len(good) > 1 else np.ones((1, 1))
    ref_g = int(np.argmax((corr.sum(axis=1) - 1) / max(len(good) - 1, 1)))

    # Cross-correlation by FFT, zero-padded so lags up to max_lag do not wrap around.
    nfft = scipy.fft.next_fast_len(n_fit + max_lag, real=True)
    spectra = scipy.fft.rfft(fit, n=nfft, axis=1)
    xcorr = scipy.fft.irfft(spectra * np.conj(spectra[ref_g]), n=nfft, axis=1)
    # xcorr[c, k] = sum_t fit[c, t + k] * fit[ref, t]; negative k wrap to the end.
    candidates = np.concatenate([xcorr[:, nfft - max_lag :], xcorr[:, : max_lag + 1]], axis=1)
    lags = np.zeros(n_channels, dtype=int)
    lags[good] = np.argmax(candidates, axis=1) - max_lag
    lags[good[ref_g]] = 0

    total = np.zeros(n_times)
    count = np.zeros(n_times)
    for c in good:
        lag = lags[c]
        # combined[t] takes lfp[c, t + lag] wherever t + lag is inside the recording.
        lo, hi = max(0, -lag), min(n_times, n_times - lag)
        total[lo:hi] += lfp[c, lo + lag : hi + lag]
        count[lo:hi] += 1
    return total / count, lags.astype(int), {int(c): str(r) for c, r in excluded.items()}
