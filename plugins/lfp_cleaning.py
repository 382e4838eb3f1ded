"""Removing MR gradient artifacts from LFP recorded inside the scanner.

Template regression locked to the slice triggers (Tu & Zhang 2022), and a pass-through for artifact-free data.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_channel, check_seconds, check_sfreq
from .spectral import notch_filter

__all__ = ["no_cleaning", "template_regression", "fractional_template_regression"]

# Slice segments handled per vectorised batch: bounds memory at about 10 MB whatever the scan length.
_SEGMENT_BLOCK = 1024
# Degree of the per-segment polynomial that stands for the LFP in the fit (0 = offset only).
_TREND_DEGREE = 3
# Sub-sample phases the artifact's timing is resolved into (1/16 sample = 2.6 us at 24,414 Hz),
# and the fewest segments a phase needs for its own template.
_PHASES = 16
_MIN_PER_PHASE = 8


def no_cleaning(lfp, sfreq: float, *, slice_onsets=None, **params):
    """Return the LFP unchanged, for recordings without gradient artifacts.

    Parameters
    ----------
    lfp : array-like of shape (..., n_times)
        LFP in any real dtype.
    sfreq : float
        Sampling rate in Hz (unused).
    slice_onsets : array-like, optional
        Ignored; accepted so every cleaning method is called the same way.
    **params
        Ignored, for the same reason.

    Returns
    -------
    lfp : ndarray, float64
        ``lfp`` itself (no copy) when it already is a float64 ndarray, otherwise a float64 copy.
        Either way the caller's array is never modified.

    Examples
    --------
    >>> x = np.arange(4.0)
    >>> no_cleaning(x, 1000.0) is x
    True
    >>> no_cleaning(np.arange(3, dtype=np.int16), 1000.0)
    array([0., 1., 2.])
    """
    return np.asarray(lfp, dtype=np.float64)


def _slice_rate_notches(line_freq, notch_max_hz, slice_rate, sfreq) -> np.ndarray:
    freqs = []
    for base in (line_freq, slice_rate):
        if base:
            freqs.extend(base * np.arange(1, int(np.floor(notch_max_hz / base + 1e-9)) + 1))
    freqs = np.sort(np.asarray(freqs, dtype=float))
    # A 60 Hz harmonic and a 19.998 Hz x 3 harmonic are one notch, not two.
    keep = np.concatenate([[True], np.diff(freqs) > 0.5]) if freqs.size else np.zeros(0, bool)
    freqs = freqs[keep]
    return freqs[(freqs > 0) & (freqs < sfreq / 2 - 1.0)]


def template_regression(
    lfp,
    sfreq: float,
    *,
    slice_onsets,
    max_shift_s: float = 0.0005,
    line_freq: float | None = 60.0,
    notch_max_hz: float = 300.0,
    notch_slice_rate: bool = True,
    min_reliability: float | None = 0.5,
):
    """Remove MR gradient artifacts by slice-locked template regression, then notch filter.

    The method of Tu & Zhang (2022). Each slice acquisition produces the same gradient
    waveform, so the artifact repeats at every slice trigger:

    1. The recording is cut into one segment per slice, starting at each trigger and as long as
       the median inter-slice interval.
    2. All segments are averaged into a template (made zero-mean, see below).
    3. Each segment is aligned to the template by the integer shift within ``±max_shift_s`` that
       maximises their cross-correlation (of first differences, which weighs the artifact's
       sharp gradient switching over its slow parts and the LFP); the template is rebuilt from
       the aligned segments and the shifts refined once more. The first alignment is to one
       segment (the middle one, searched over twice the range, shifts then centred on their
       median), not to the average of unaligned segments: at low sampling rates (2 kHz) that
       average smears gradient spikes a sample or two wide, matches segments best a sample off
       and the alignment locks onto the wrong shifts.
    4. Sub-sample timing: scanner and amplifier clocks are not locked, so each slice's artifact
       also sits at its own fraction of a sample, and half a sample of error on gradient spikes
       a few samples wide biases each slice's fitted scale, which leaks the artifact's slow
       parts (ramps) into the LFP bands. Each segment is assigned the best matching of 16
       sub-sample phases (first guess: the template delayed in the frequency domain) and each
       phase gets its own template, the average of its segments (a template sampled at that
       phase, as in upsampled average artifact subtraction); assignment and templates are
       refined twice.
    5. Each aligned segment is regressed by least squares on its phase's template, the
       template's time derivative (what is left of the timing error, to first order), and an
       offset with linear, quadratic and cubic trends (Legendre polynomials); only the template
       and derivative terms are subtracted. The scale absorbs slice-to-slice amplitude changes.
       The offset and trends are the LFP's own slow course over the segment (its delta to beta
       activity): fitting them keeps that course from biasing the scale, keeping them leaves it
       in the signal. Templates are zero-mean because a gradient artifact, induced by gradients
       that start and end at zero, carries essentially no net offset over a slice, while the
       recording's offset belongs to the LFP.
    6. Notch filters (:func:`lfpbold.plugins.spectral.notch_filter`) at ``line_freq`` and its
       harmonics up to ``notch_max_hz``, and, if ``notch_slice_rate``, at the slice rate
       (1 / median inter-slice interval) and its harmonics up to ``notch_max_hz``.

    Samples outside the slice segments (before and after the scan, gaps between volumes) are
    not changed by the regression; the notch filters apply to the whole recording. Where a
    segment overruns the next trigger by a sample or two (triggers rounded to the sample
    clock), the next segment's fit takes over from its trigger on. The regression works on
    batches of segments and needs about 10 MB beyond its float64 copy of the channel (the
    output); the notch filters then work in place in that copy. A 30-minute channel at
    24,414 Hz (24,000 slices) takes about 3-6 s on one core and 0.41 GB at peak besides the
    input (0.35 GB of which is the output).

    Parameters
    ----------
    lfp : array-like of shape (n_times,)
        One raw channel (volts, any real dtype).
    sfreq : float
        Sampling rate in Hz.
    slice_onsets : array-like of shape (n_slices,)
        Slice trigger times in seconds on the LFP's clock (sample 0 is 0 s), increasing.
    max_shift_s : float, default 0.0005
        Largest alignment shift searched, in seconds.
    line_freq : float or None, default 60.0
        Mains frequency in Hz; None skips the mains notches.
    notch_max_hz : float, default 300.0
        Highest harmonic notched, in Hz (the band-power low-pass edge).
    notch_slice_rate : bool, default True
        Also notch the slice rate and its harmonics.
    min_reliability : float or None, default 0.5
        Is there a slice-locked artifact at all? The templates of the odd and of the even slices
        are correlated (on first differences); a gradient artifact makes them near-identical
        (r ~ 1), a recording without one gives two averages of unrelated LFP (r ~ 0). Below this
        r only the notch filters run, because regressing a template of pure LFP out of every
        0.1 s segment removes real LFP (measured: gamma power -11 to -20 % on artifact-free
        simulated scans). None always regresses.

    Returns
    -------
    cleaned : ndarray of shape (n_times,), float64

    Raises
    ------
    ValueError
        If ``lfp`` is not 1-D, or ``slice_onsets`` has fewer than two triggers, is not
        increasing, or lies outside the recording.

    References
    ----------
    Tu & Zhang (2022) eLife 11:e81555; Allen, Josephs & Turner (2000) NeuroImage 12:230-239
    (average artifact subtraction).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> sfreq = 5000.0
    >>> lfp = 1e-5 * rng.standard_normal(int(30 * sfreq))
    >>> onsets = np.arange(2.0, 28.0, 0.05)                # 20 slices per second
    >>> waveform = np.sin(2 * np.pi * 800 * np.arange(200) / sfreq) * np.hanning(200)
    >>> raw = lfp.copy()
    >>> for s in np.round(onsets * sfreq).astype(int):
    ...     raw[s : s + 200] += 1e-3 * waveform
    >>> cleaned = template_regression(raw, sfreq, slice_onsets=onsets, line_freq=None, notch_slice_rate=False)
    >>> bool(np.std(cleaned - lfp) < 0.01 * np.std(raw - lfp))
    True
    """
    lfp = check_channel(lfp)
    sfreq = check_sfreq(sfreq)
    n = lfp.size
    onsets = np.asarray(slice_onsets, dtype=float)
    if onsets.ndim != 1 or onsets.size < 2:
        raise ValueError(f"slice_onsets must be a 1-D array of at least two trigger times; got shape {onsets.shape}")
    if not np.all(np.isfinite(onsets)) or np.any(np.diff(onsets) <= 0):
        raise ValueError("slice_onsets must be finite and strictly increasing (seconds on the LFP's clock)")
    if onsets[0] < 0 or onsets[-1] * sfreq >= n:
        raise ValueError(
            f"slice_onsets span {onsets[0]:.3f}-{onsets[-1]:.3f} s but the recording covers 0-{n / sfreq:.3f} s"
        )
    max_shift_s = check_seconds(max_shift_s, "max_shift_s", allow_zero=True)
    interval = float(np.median(np.diff(onsets)))
    length = int(round(interval * sfreq))
    if length < 4:
        raise ValueError(f"The median slice interval ({interval:g} s) spans fewer than 4 samples at {sfreq:g} Hz")
    max_shift = int(round(max_shift_s * sfreq))

    x = np.array(lfp, dtype=np.float64)  # the output; the caller's array is never modified
    starts = np.round(onsets * sfreq).astype(np.int64)

    def segments(first: int, shifts: np.ndarray, pad: int = 0) -> np.ndarray:
        # Samples x[start + shift - pad : start + shift + length + pad] for a batch of slices;
        # indices beyond the recording repeat its edge samples.
        sl = slice(first, first + _SEGMENT_BLOCK)
        begin = starts[sl] + shifts[sl] - pad
        width = length + 2 * pad
        if begin[0] >= 0 and begin.max() + width <= n:  # the usual case: copy whole rows
            return np.lib.stride_tricks.sliding_window_view(x, width)[begin]
        idx = begin[:, None] + np.arange(width)
        return x[np.clip(idx, 0, n - 1)]

    def build_template(shifts: np.ndarray) -> np.ndarray:
        total = np.zeros(length)
        for first in range(0, starts.size, _SEGMENT_BLOCK):
            total += segments(first, shifts).sum(axis=0)
        template = total / starts.size
        return template - template.mean()

    def align(template: np.ndarray, max_shift: int = max_shift) -> np.ndarray:
        shifts = np.zeros(starts.size, dtype=np.int64)
        if max_shift == 0:
            return shifts
        zero = np.zeros_like(shifts)
        # Cross-correlate first differences: they whiten the LFP's 1/f spectrum and weigh the
        # artifact's sharp gradient switching, which pins the timing, over its slow ramps, which
        # barely change with a shift of a sample and would let the LFP's slow waves pick it.
        slope = np.diff(template)
        # Column k holds the slope placed k samples in, so one matrix product scores every
        # candidate shift (a (batch, shifts, length) window view would be copied whole first:
        # 250 MB per batch at 24 kHz).
        n_shift = 2 * max_shift + 1
        placed = np.zeros((length - 1 + 2 * max_shift, n_shift))
        for k in range(n_shift):
            placed[k : k + length - 1, k] = slope
        for first in range(0, starts.size, _SEGMENT_BLOCK):
            wide = np.diff(segments(first, zero, pad=max_shift), axis=1)
            shifts[first : first + wide.shape[0]] = np.argmax(wide @ placed, axis=1) - max_shift
        return shifts

    def assign_phase(templates: np.ndarray) -> np.ndarray:
        # Which sub-sample phase's template each (integer-aligned) segment matches best.
        slopes = np.diff(templates, axis=1)
        slopes /= np.linalg.norm(slopes, axis=1, keepdims=True)
        phase = np.empty(starts.size, dtype=np.int64)
        for first in range(0, starts.size, _SEGMENT_BLOCK):
            seg = np.diff(segments(first, shifts), axis=1)
            phase[first : first + seg.shape[0]] = np.argmax(seg @ slopes.T, axis=1)
        return phase

    def phase_templates(phase: np.ndarray, fallback: np.ndarray) -> np.ndarray:
        # Average the segments of each sub-sample phase separately: a template sampled at that
        # phase, with no interpolation of the sharp gradient-switching spikes.
        total = np.zeros((_PHASES, length))
        count = np.bincount(phase, minlength=_PHASES)
        for first in range(0, starts.size, _SEGMENT_BLOCK):
            seg = segments(first, shifts)
            block_phase = phase[first : first + seg.shape[0]]
            for j in np.unique(block_phase):
                total[j] += seg[block_phase == j].sum(axis=0)
        enough = count >= _MIN_PER_PHASE
        templates = fallback.copy()
        templates[enough] = total[enough] / count[enough, None]
        return templates - templates.mean(axis=1, keepdims=True)

    freqs = _slice_rate_notches(line_freq, notch_max_hz, 1.0 / interval if notch_slice_rate else None, sfreq)

    def notched(y):
        return notch_filter(y, sfreq, freqs=freqs, out=y) if freqs.size else y

    if min_reliability is not None:
        halves = np.zeros((2, length))
        unshifted = np.zeros(starts.size, dtype=np.int64)
        for first in range(0, starts.size, _SEGMENT_BLOCK):
            seg = segments(first, unshifted)
            odd = (np.arange(first, first + seg.shape[0]) % 2).astype(bool)
            halves[0] += seg[~odd].sum(axis=0)
            halves[1] += seg[odd].sum(axis=0)
        a, b = np.diff(halves, axis=1)
        reliability = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) or 1.0))
        if reliability < min_reliability:
            return notched(x)

    # The first reference is one segment, not the average of the unaligned ones: averaging
    # segments jittered by a sample or more smears gradient spikes that are themselves only a
    # sample or two wide (at 2 kHz and below), and the smeared average can match a segment
    # best one sample off, a false fixed point that further rounds of alignment keep. One
    # segment is sharp; it is searched over twice the range, so that segments jittered either
    # way from it are reached, and the shifts are then centred on their median, so that the
    # template sits on the triggers and later rounds search +-max_shift around it.
    shifts = np.zeros(starts.size, dtype=np.int64)
    if max_shift:
        reference = segments(starts.size // 2, shifts)[0]
        shifts = align(reference - reference.mean(), 2 * max_shift)
        shifts -= int(np.median(shifts))
    template = build_template(shifts)
    for _ in range(2):
        shifts = align(template)
        template = build_template(shifts)

    # Sub-sample timing. Scanner and amplifier clocks are not locked, so each slice's artifact
    # sits at its own fraction of a sample; integer alignment leaves up to half a sample, which
    # for gradient spikes a few samples wide biases the fitted scale slice by slice and so
    # leaks the artifact's slow parts into the LFP bands. First guess: the template delayed by
    # fractions of a sample in the frequency domain (circularly: slices follow one another, so
    # the artifact repeats with about the segment's period).
    delays = (np.arange(_PHASES) + 0.5) / _PHASES - 0.5
    spectrum = np.fft.rfft(template)
    cycles = np.fft.rfftfreq(length)
    shifted = np.fft.irfft(spectrum[None, :] * np.exp(-2j * np.pi * cycles[None, :] * delays[:, None]), n=length)
    templates = shifted
    for _ in range(2):
        phase = assign_phase(templates)
        templates = phase_templates(phase, shifted)

    # The LFP's own slow course within a segment (a cubic's worth over 50 ms) is fitted alongside
    # and kept, so that it cannot lean on the template's slow parts and bias the scale.
    trend = np.polynomial.legendre.legvander(np.linspace(-1, 1, length), _TREND_DEGREE)
    designs = [np.column_stack([t, np.gradient(t), trend]) for t in templates]
    projectors = [np.linalg.pinv(d) for d in designs]

    aligned = starts + shifts
    # Each segment is subtracted up to the next segment's start, never over it.
    valid = np.minimum(np.append(np.diff(aligned), length), length)
    for first in range(0, starts.size, _SEGMENT_BLOCK):
        seg = segments(first, shifts)
        block_phase = phase[first : first + seg.shape[0]]
        fitted = np.empty_like(seg)
        for j in np.unique(block_phase):
            rows = block_phase == j
            coef = seg[rows] @ projectors[j].T  # template scale, derivative scale, trend terms
            fitted[rows] = coef[:, :2] @ designs[j][:, :2].T
        # Segment by segment (slices of x, no index arrays): samples 0..valid-1 of each, inside x.
        block = slice(first, first + seg.shape[0])
        for i, (a, v) in enumerate(zip(aligned[block].tolist(), valid[block].tolist(), strict=True)):
            lo, hi = max(0, -a), min(v, n - a)
            if hi > lo:
                x[a + lo : a + hi] -= fitted[i, lo:hi]

    return notched(x)


def _fractional_shift(spectra: np.ndarray, delays: np.ndarray, omega: np.ndarray) -> np.ndarray:
    """Delay each row's signal by ``delays`` samples (fractional), in the frequency domain."""
    return spectra * np.exp(-1j * omega[None, :] * delays[:, None])


def fractional_template_regression(
    lfp,
    sfreq: float,
    *,
    slice_onsets,
    obs_components: int = 4,
    obs_segments: int = 4000,
    iterations: int = 3,
    line_freq: float | None = 60.0,
    notch_max_hz: float = 300.0,
    notch_slice_rate: bool = True,
    min_reliability: float | None = 0.5,
):
    """Slice template regression at each slice's own fractional delay, with an optimal basis set.

    For recordings whose amplifier and scanner clocks are not locked: the slice period is not a
    whole number of samples and drifts, so every slice's artifact sits at its own fraction of a
    sample behind its trigger (the TTL is registered at the next sample). Resolving that into a
    few sub-sample phases leaves a residual proportional to the phase error on the artifact's
    steepest edges; here each slice's delay is estimated on a continuous scale and the template is
    shifted exactly, in the frequency domain (the anti-alias filtered artifact is band-limited).

    1. One segment per trigger, as long as the shortest inter-slice interval (whole samples).
    2. Template: the mean of the segments, each first advanced by its delay (zero-padded FFT,
       so shifting does not wrap); every segment's delay starts at 0.
    3. Delays: each segment is fitted by its delayed template, the template's derivative and a
       cubic trend (the LFP's slow course, kept); ``delta = -b / a`` (derivative over template
       coefficient) refines the delay to first order; the template is rebuilt. ``iterations``
       rounds; delays are centred on their mean, so the template stays on the triggers. The
       delays follow clock drift slice by slice: nothing assumes a constant period.
    4. Optimal basis set (Niazy et al. 2005): the residuals after step 3, brought to the
       template's frame, of up to ``obs_segments`` evenly spread segments, give by PCA the
       ``obs_components`` shapes in which slices differ from the template (slice position in the
       volume, head motion, drift). Each segment is then regressed on its delayed template,
       derivative, delayed basis and trend, and all but the trend subtracted, up to the next
       trigger.
    5. The reliability check and notch filters of :func:`template_regression`.

    Memory: one float64 copy of the channel (the output) plus batches of 1,024 segments and
    their spectra; time: about twice :func:`template_regression`.

    Parameters
    ----------
    lfp : array-like of shape (n_times,)
    sfreq : float
    slice_onsets : array-like of shape (n_slices,)
        Slice trigger times in seconds on the LFP's clock, increasing.
    obs_components : int, default 4
        Principal components of the residuals removed per segment (Niazy et al. 2005 use 4);
        0 turns the optimal basis set off.
    obs_segments : int, default 4000
        Segments the components are estimated from (evenly spread over the scan).
    iterations : int, default 3
        Rounds of delay refinement.
    line_freq, notch_max_hz, notch_slice_rate, min_reliability
        As in :func:`template_regression`.

    Returns
    -------
    cleaned : ndarray of shape (n_times,), float64

    References
    ----------
    Allen, Josephs & Turner (2000) NeuroImage 12:230-239; Niazy et al. (2005) NeuroImage
    28:720-737; Tu & Zhang (2022) eLife 11:e81555.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> sfreq = 2000.0
    >>> lfp = 1e-5 * rng.standard_normal(int(60 * sfreq))
    >>> pos = 4000.0 + np.arange(500) * 200.3                      # 200.3 samples per slice
    >>> t = np.arange(190)
    >>> raw = lfp.copy()
    >>> for p in pos:
    ...     s = int(np.ceil(p))
    ...     raw[s : s + 190] += 1e-3 * np.sin(2 * np.pi * 0.05 * (t + s - p)) * np.hanning(190)
    >>> onsets = np.ceil(pos) / sfreq
    >>> cleaned = fractional_template_regression(raw, sfreq, slice_onsets=onsets, line_freq=None,
    ...                                          notch_slice_rate=False)
    >>> bool(np.std(cleaned - lfp) < 0.01 * np.std(raw - lfp))
    True
    """
    lfp = check_channel(lfp)
    sfreq = check_sfreq(sfreq)
    n = lfp.size
    onsets = np.asarray(slice_onsets, dtype=float)
    if onsets.ndim != 1 or onsets.size < 2:
        raise ValueError(f"slice_onsets must be a 1-D array of at least two trigger times; got shape {onsets.shape}")
    if not np.all(np.isfinite(onsets)) or np.any(np.diff(onsets) <= 0):
        raise ValueError("slice_onsets must be finite and strictly increasing (seconds on the LFP's clock)")
    if onsets[0] < 0 or onsets[-1] * sfreq >= n:
        raise ValueError(
            f"slice_onsets span {onsets[0]:.3f}-{onsets[-1]:.3f} s but the recording covers 0-{n / sfreq:.3f} s"
        )
    if not isinstance(obs_components, (int, np.integer)) or obs_components < 0:
        raise ValueError(f"obs_components must be a non-negative integer; got {obs_components!r}")
    if not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer; got {iterations!r}")
    starts = np.round(onsets * sfreq).astype(np.int64)
    intervals = np.diff(starts)
    # Segments end before the next trigger (gaps between volumes are left to the notches).
    length = int(np.percentile(intervals, 1))
    if length < 8:
        raise ValueError(f"The slice interval spans fewer than 8 samples at {sfreq:g} Hz")
    interval = float(np.median(np.diff(onsets)))
    x = np.array(lfp, dtype=np.float64)
    freqs = _slice_rate_notches(line_freq, notch_max_hz, 1.0 / interval if notch_slice_rate else None, sfreq)

    def notched(y):
        return notch_filter(y, sfreq, freqs=freqs, out=y) if freqs.size else y

    last_ok = starts + length <= n
    starts = starts[last_ok]
    n_seg = starts.size
    view = np.lib.stride_tricks.sliding_window_view(x, length)

    if min_reliability is not None:
        even = view[starts[0::2]].mean(axis=0)
        odd = view[starts[1::2]].mean(axis=0)
        a, b = np.diff(even), np.diff(odd)
        reliability = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) or 1.0))
        if reliability < min_reliability:
            return notched(x)

    nfft = scipy_fft_len(2 * length)
    omega = 2 * np.pi * np.fft.rfftfreq(nfft)
    trend = np.polynomial.legendre.legvander(np.linspace(-1, 1, length), _TREND_DEGREE)
    delays = np.zeros(n_seg)
    blocks = [slice(i, min(i + _SEGMENT_BLOCK, n_seg)) for i in range(0, n_seg, _SEGMENT_BLOCK)]

    def template_spectrum() -> np.ndarray:
        total = np.zeros(omega.size, dtype=complex)
        for sl in blocks:
            spec = np.fft.rfft(view[starts[sl]], n=nfft, axis=1)
            total += _fractional_shift(spec, -delays[sl], omega).sum(axis=0)
        return total / n_seg

    def delayed(spec: np.ndarray, d: np.ndarray) -> np.ndarray:
        # (len(d), length): spec (template frame) delayed by each d, cut to the segment.
        return np.fft.irfft(_fractional_shift(np.broadcast_to(spec, (d.size, spec.size)), d, omega), n=nfft)[:, :length]

    def fit(seg, columns):
        # Least squares of each segment on its own columns (batch, length, k); coefficients (batch, k).
        design = np.concatenate([columns, np.broadcast_to(trend, (seg.shape[0], *trend.shape))], axis=2)
        coef = np.linalg.lstsq if False else None  # noqa: F841 (batched normal equations below)
        gram = np.einsum("bti,btj->bij", design, design)
        rhs = np.einsum("bti,bt->bi", design, seg)
        return np.linalg.solve(
            gram + 1e-12 * np.eye(gram.shape[1]) * np.trace(gram, axis1=1, axis2=2)[:, None, None], rhs[..., None]
        )[..., 0], design

    for _ in range(iterations):
        spec = template_spectrum()
        dspec = spec * (1j * omega)  # derivative in samples^-1
        for sl in blocks:
            seg = view[starts[sl]]
            cols = np.stack([delayed(spec, delays[sl]), delayed(dspec, delays[sl])], axis=2)
            coef, _ = fit(seg, cols)
            a, b = coef[:, 0], coef[:, 1]
            # a T(t - d - e) ~ a T(t - d) - a e T'(t - d): the derivative's coefficient is -a e.
            step = np.where(a != 0, -b / np.where(a == 0, 1, a), 0.0)
            delays[sl] += np.clip(step, -0.5, 0.5)
        delays -= delays.mean()
    spec = template_spectrum()
    dspec = spec * (1j * omega)

    basis_spec = np.zeros((0, omega.size), dtype=complex)
    if obs_components:
        pick = np.unique(np.linspace(0, n_seg - 1, min(obs_segments, n_seg)).round().astype(np.int64))
        resid = np.empty((pick.size, nfft))
        for lo in range(0, pick.size, _SEGMENT_BLOCK):
            idx = pick[lo : lo + _SEGMENT_BLOCK]
            seg = view[starts[idx]]
            cols = np.stack([delayed(spec, delays[idx]), delayed(dspec, delays[idx])], axis=2)
            coef, design = fit(seg, cols)
            r = seg - np.einsum("btk,bk->bt", design, coef)
            # Back to the template's frame.
            rs = np.fft.rfft(r, n=nfft, axis=1)
            resid[lo : lo + idx.size] = np.fft.irfft(_fractional_shift(rs, -delays[idx], omega), n=nfft)
        resid -= resid.mean(axis=0)
        k = min(obs_components, pick.size - 1)
        _, _, vt = np.linalg.svd(resid[:, :length], full_matrices=False)
        basis = np.zeros((k, nfft))
        basis[:, :length] = vt[:k]
        basis_spec = np.fft.rfft(basis, axis=1)

    valid = np.minimum(np.append(np.diff(starts), length), length)
    for sl in blocks:
        seg = view[starts[sl]].copy()
        d = delays[sl]
        cols = [delayed(spec, d), delayed(dspec, d)] + [delayed(bs, d) for bs in basis_spec]
        cols = np.stack(cols, axis=2)
        coef, design = fit(seg, cols)
        n_art = cols.shape[2]
        fitted = np.einsum("btk,bk->bt", design[:, :, :n_art], coef[:, :n_art])
        for i, (a, v) in enumerate(zip(starts[sl].tolist(), valid[sl].tolist(), strict=True)):
            x[a : a + v] -= fitted[i, :v]
    return notched(x)


def scipy_fft_len(n: int) -> int:
    import scipy.fft

    return scipy.fft.next_fast_len(n, real=True)
