"""Removing MR gradient artifacts from LFP recorded inside the scanner.

Template regression locked to the slice triggers (Tu & Zhang 2022), and a pass-through for artifact-free data.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ._validation import check_channel, check_seconds, check_sfreq
from .spectral import notch_filter

__all__ = ["no_cleaning", "template_regression", "fractional_template_regression", "subsample_template_regression"]

# Slice segments handled per vectorised batch: bounds memory at about 10 MB whatever the scan length.
_SEGMENT_BLOCK = 1024
# Degree of the per-segment polynomial that stands for the LFP in the fit (0 = offset only).
_TREND_DEGREE = 3
# Sub-sample phases the artifact's timing is resolved into (1/16 sample = 2.6 us at 24,414 Hz),
# and the fewest segments a phase needs for its own template.
_PHASES = 16
_MIN_PER_PHASE = 8
# fractional_template_regression keeps an optimal-basis component only if its scores correlate
# at least this much with the same slice position's one volume (at least 1 s) later: the
# artifact's changes are slow, the LFP's own waves decorrelate within a few hundred ms.
OBS_MIN_AGREEMENT = 0.3
# subsample_template_regression also keeps a component whose scores somewhere exceed this many
# robust SDs (1.4826 x the median absolute deviation from their median): a sudden head movement
# changes the artifact's shape for a few volumes only, so its component is huge on a few segments
# and does not agree a volume apart; the LFP's projections are near Gaussian (a few SDs at most).
OBS_MIN_PEAK = 8.0


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
        Ignored, for the same reason. Notch keys (``line_freq``, ``notch_max_hz``,
        ``notch_slice_rate``) in a parameter set with this method are applied by
        :func:`lfpbold.lfp.clean_implant` after decimation, as for every method; without
        them nothing is notched.

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
    """Notch frequencies (Hz): ``line_freq`` and ``slice_rate`` (either None: none) and their
    harmonics up to ``notch_max_hz``, merged within 0.5 Hz, below ``sfreq`` / 2 - 1 Hz. Shared
    by the cleaning methods and :func:`lfpbold.lfp.clean_implant` (which notches after decimation)."""
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
       ``CleanLFP`` (:func:`lfpbold.lfp.clean_implant`) calls this method with
       ``line_freq=None, notch_slice_rate=False`` and applies the same notches itself after
       decimation, at the output rate (about 1 kHz; every notch lies below its Nyquist
       frequency), a 24th of the work at 24 kHz; the parameter set's keys keep their meaning.

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
    onsets = _check_onsets(slice_onsets, sfreq, n)
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
    slice_templates: bool = True,
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
    4. Slices per volume: the period (2-64 segments) whose per-position mean residual explains
       most of the residual variance; then one template per slice position (each slice
       position's gradients differ in detail), and step 3 again.
    5. Optimal basis set (Niazy et al. 2005): the residuals, brought to the template's frame, of
       up to ``obs_segments`` contiguous segments, with the trend space projected out, give by
       PCA up to ``obs_components`` shapes in which slices differ from their template (head
       motion, drift), computed from residuals averaged over 8 volumes per slice position (the
       LFP averages down, the artifact's slow changes stay). A component is kept only if its
       scores agree one volume apart (r > 0.3): the artifact's changes are slow, the LFP's own
       waves are not, and removing those would remove LFP (FASTR high-passes the PCA input for
       the same reason; gamma is the band of interest here, so that is no option). Delays are
       refined with the basis in the fit; each segment is then regressed on its delayed
       template, derivative, delayed basis and trend, and all but the trend subtracted, up to
       the next trigger.
    6. The reliability check and notch filters of :func:`template_regression`.

    Memory: two float64 copies of the channel (the output and a padded read-only source) plus
    batches of 1,024 segments and their spectra. Time: measured 8-18 s per channel for 345 s at
    2 kHz on a shared core (``benchmarks/artifact_removal.py`` prints it), several times
    :func:`template_regression`.

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
        Segments the components are estimated from (a contiguous stretch mid-scan), averaged
        over groups of 8 volumes per slice position first.
    iterations : int, default 3
        Rounds of delay refinement.
    slice_templates : bool, default True
        One template per slice position (step 4); False: one template for every slice.
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
    onsets = _check_onsets(slice_onsets, sfreq, n)
    _check_counts(obs_components, iterations)
    x, starts, length, interval, view, notched, present = _slice_segments(
        lfp, sfreq, onsets, line_freq, notch_max_hz, notch_slice_rate, min_reliability
    )
    if not present:
        return notched(x)
    n_seg = starts.size

    # Fractional shifts are done on segments widened by a margin on each side and tapered there
    # (a raised cosine), so that the cut ends do not ring into the segment (Gibbs); the central
    # ``length`` samples are what is fitted. The source is a padded read-only copy of the input.
    margin = min(32, length // 2)
    width = length + 2 * margin
    ramp = np.sin(np.linspace(0, np.pi / 2, margin + 2)[1:-1]) ** 2
    window = np.concatenate([ramp, np.ones(length), ramp[::-1]])
    source = np.pad(np.asarray(lfp, dtype=np.float64), margin, mode="edge")
    wide = np.lib.stride_tricks.sliding_window_view(source, width)  # wide[s] = samples s - margin ...
    centre = slice(margin, margin + length)
    nfft = scipy_fft_len(2 * width)
    omega = 2 * np.pi * np.fft.rfftfreq(nfft)
    trend = np.polynomial.legendre.legvander(np.linspace(-1, 1, length), _TREND_DEGREE)
    delays = np.zeros(n_seg)
    blocks = [slice(i, min(i + _SEGMENT_BLOCK, n_seg)) for i in range(0, n_seg, _SEGMENT_BLOCK)]

    def spectra(idx) -> np.ndarray:
        return np.fft.rfft(wide[starts[idx]] * window, n=nfft, axis=1)

    position = np.zeros(n_seg, dtype=np.int64)  # each segment's slice position in its volume
    n_pos = 1

    def template_spectrum() -> np.ndarray:
        # (n_pos, n_freq): per slice position, the mean of its segments advanced by their delays.
        total = np.zeros((n_pos, omega.size), dtype=complex)
        for sl in blocks:
            onehot = np.zeros((n_pos, sl.stop - sl.start))
            onehot[position[sl], np.arange(sl.stop - sl.start)] = 1.0
            total += onehot @ _fractional_shift(spectra(sl), -delays[sl], omega)
        return total / np.bincount(position, minlength=n_pos)[:, None]

    def delayed(spec: np.ndarray, d: np.ndarray) -> np.ndarray:
        # (len(d), length): spec rows (template frame; one row, or one per segment) delayed by d.
        shifted = _fractional_shift(np.broadcast_to(spec, (d.size, spec.shape[-1])), d, omega)
        return np.fft.irfft(shifted, n=nfft)[:, centre]

    def fit(seg, columns):
        # Least squares of each segment on its own columns and the trend: (coefficients, design).
        design = np.concatenate([columns, np.broadcast_to(trend, (seg.shape[0], *trend.shape))], axis=2)
        gram = np.einsum("bti,btj->bij", design, design)
        rhs = np.einsum("bti,bt->bi", design, seg)
        # Columns scaled to unit norm, and a tiny ridge: near-collinear columns stay well posed.
        norm = np.sqrt(np.maximum(np.einsum("bii->bi", gram), 1e-300))
        gram = gram / (norm[:, :, None] * norm[:, None, :]) + 1e-9 * np.eye(gram.shape[1])
        return np.linalg.solve(gram, (rhs / norm)[..., None])[..., 0] / norm, design

    basis_spec = np.zeros((0, omega.size), dtype=complex)

    def columns(spec, d, idx):
        rows = spec[position[idx]]
        cols = [delayed(rows, d), delayed(rows * (1j * omega), d)] + [delayed(bs, d) for bs in basis_spec]
        return np.stack(cols, axis=2)

    def refine_delays(spec):
        for sl in blocks:
            coef, _ = fit(view[starts[sl]], columns(spec, delays[sl], sl))
            a, b = coef[:, 0], coef[:, 1]
            # a T(t - d - e) ~ a T(t - d) - a e T'(t - d): the derivative's coefficient is -a e.
            step = np.where(a != 0, -b / np.where(a == 0, 1, a), 0.0)
            delays[sl] += np.clip(step, -0.5, 0.5)
        delays[:] -= delays.mean()

    def residuals(spec, idx):
        # Segments idx in the template's frame, less their template, derivative and trend terms.
        coef, _ = fit(view[starts[idx]], columns(spec, delays[idx], idx))
        rows = spec[position[idx]]
        tmpl = np.fft.irfft(rows, n=nfft)[:, centre]
        dtmpl = np.fft.irfft(rows * (1j * omega), n=nfft)[:, centre]
        back = np.fft.irfft(_fractional_shift(spectra(idx), -delays[idx], omega), n=nfft)[:, centre]
        return back - coef[:, :1] * tmpl - coef[:, 1:2] * dtmpl - np.einsum("tk,bk->bt", trend, coef[:, 2:])

    # 1. Delays against one template.
    for _ in range(iterations):
        refine_delays(template_spectrum())
    spec = template_spectrum()
    # 2. Slices per volume: the period (2-64 segments) whose per-position mean residual explains
    #    most of the residual's variance over a contiguous stretch (slice positions differ by
    #    their gradients' details; a period's multiples explain as much, so the smallest period
    #    within 5 % of the best is taken). Then one template per slice position.
    if slice_templates and n_seg >= 8:
        stretch = np.arange(min(n_seg, 4096))
        res = np.concatenate(
            [residuals(spec, stretch[i : i + _SEGMENT_BLOCK]) for i in range(0, stretch.size, _SEGMENT_BLOCK)]
        )
        res -= res.mean(axis=0)
        total = float((res**2).sum()) or 1.0
        explained = {}
        for period in range(2, min(64, stretch.size // 4) + 1):
            means = np.stack([res[j::period].mean(axis=0) for j in range(period)])
            counts = np.array([res[j::period].shape[0] for j in range(period)])
            explained[period] = float((counts[:, None] * means**2).sum()) / total
        best = max(explained.values())
        if best > 0.2:
            n_pos = min(p for p, e in explained.items() if e >= 0.95 * best)
            position = np.arange(n_seg) % n_pos
            for _ in range(iterations):
                refine_delays(template_spectrum())
            spec = template_spectrum()
    # 3. Optimal basis set of what is left, delays refined with it in the fit.
    for _ in range(1 if obs_components else 0):
        # A contiguous stretch (the middle of the scan when it is longer), so scores can be
        # compared with the same slice position one volume (or at least 1 s) later.
        first = max(0, (n_seg - obs_segments) // 2)
        pick = np.arange(first, min(n_seg, first + obs_segments))
        basis_spec = np.zeros((0, omega.size), dtype=complex)  # the residuals of the templates alone
        resid = np.concatenate(
            [residuals(spec, pick[i : i + _SEGMENT_BLOCK]) for i in range(0, pick.size, _SEGMENT_BLOCK)]
        )
        resid -= resid.mean(axis=0)
        # The components must not take over the trend's job (the LFP's own slow course).
        q, _ = np.linalg.qr(trend)
        resid -= (resid @ q) @ q.T
        # Shapes from residuals averaged over groups of 8 consecutive volumes per slice position:
        # the artifact's slow changes survive, the LFP (which would otherwise steer the
        # components, and lose its beta and gamma power to them) averages down.
        group = 8
        n_rows = (pick.size // (n_pos * group)) * n_pos * group
        if n_rows >= 4 * n_pos * group:
            means = resid[:n_rows].reshape(-1, group, n_pos, length).mean(axis=1).reshape(-1, length)
        else:
            means = resid
        _, vecs = np.linalg.eigh(means.T @ means)  # principal axes, ascending variance
        vecs = vecs[:, ::-1][:, : min(obs_components, pick.size - 1)]
        # Only components that are artifact: what is left of the artifact changes slowly (drift,
        # motion), so its scores a volume apart agree; the LFP's own projections (its alpha-beta
        # waves, a few cycles per segment, dominate a residual PCA once the artifact is small)
        # are unrelated 1 s apart. (Adjacent segments would not do: 0.1 s slices are one alpha
        # cycle apart.)
        scores = resid @ vecs
        lag = min(max(n_pos, int(round(1.0 / interval))), pick.size // 2)
        agree = np.array([np.corrcoef(sc[:-lag], sc[lag:])[0, 1] if sc.std() > 0 else 0.0 for sc in scores.T])
        vecs = vecs[:, agree > OBS_MIN_AGREEMENT]
        basis = np.zeros((vecs.shape[1], nfft))
        basis[:, centre] = vecs.T
        basis_spec = np.fft.rfft(basis, axis=1)
        for _ in range(iterations):
            refine_delays(spec)
        spec = template_spectrum()

    valid = np.minimum(np.append(np.diff(starts), length), length)
    for sl in blocks:
        cols = columns(spec, delays[sl], sl)
        coef, _ = fit(view[starts[sl]], cols)
        fitted = np.einsum("btk,bk->bt", cols, coef[:, : cols.shape[2]])
        for i, (a, v) in enumerate(zip(starts[sl].tolist(), valid[sl].tolist(), strict=True)):
            x[a : a + v] -= fitted[i, :v]
    return notched(x)


# subsample_template_regression: sub-sample delays resolved into this many bins per sample (the
# templates are shifted to each bin's centre once, in the frequency domain; within a bin the
# derivative column takes up the rest, to first order), over +-_MAX_DELAY samples.
_BINS_PER_SAMPLE = 32
_MAX_DELAY = 2.0


def subsample_template_regression(
    lfp,
    sfreq: float,
    *,
    slice_onsets,
    obs_components: int = 4,
    obs_segments: int = 4000,
    iterations: int = 2,
    slice_templates: bool = True,
    whiten: int = 1,
    own_share: bool = True,
    line_freq: float | None = 60.0,
    notch_max_hz: float = 300.0,
    notch_slice_rate: bool = True,
    min_reliability: float | None = 0.5,
):
    """Slice template regression at each slice's own sub-sample delay, fast: shifts by binned phase.

    The model of :func:`fractional_template_regression` (a continuous delay per slice, one
    template per slice position, an optimal basis set; Allen et al. 2000, Niazy et al. 2005,
    Tu & Zhang 2022), computed without shifting every segment in the frequency domain:

    * Delays are resolved into 1/32-sample bins over +-2 samples. Each template (and basis
      shape, and derivative) is shifted to the centre of every bin some segment is in, once per
      round (one short FFT per shape and bin), and a segment's columns are rows of that bank
      picked by its bin. Within a bin (at most 1/64 sample off) the template's derivative, a
      column of the fit, takes up the rest to first order, and its coefficient refines the
      delay (``delta = -b / a``).
    * Templates are means of segments brought to a common frame: the segments are summed per
      (slice position, delay bin), each sum is advanced by its bin's centre in the frequency
      domain and the sums are added. One pass over the data per template and a few hundred
      short FFTs, instead of two FFTs per segment.
    * The fit is weighted against the LFP: segments and columns are differenced ``whiten``
      times (whitening the LFP's 1/f spectrum), and the cubic trend (the LFP's own slow course,
      kept) is projected out. The coefficients then rest on the artifact's sharp edges, where
      the LFP is weak, rather than on its slow ramps, which share the LFP's beta and gamma
      bands: an unweighted fit takes the LFP's projection on those ramps out with the artifact
      (measured on one simulated sedated scan: mean gamma power -4.1 % unweighted, -2.5 %
      with one difference). The subtracted artifact is the raw (not differenced) columns times the
      coefficients. Each segment's Gram matrix depends only on its (position, bin), so it is
      computed once per bank and each fit is a batch of 2-6 column solves.
    * Optimal basis set as in :func:`fractional_template_regression` (components of residuals
      averaged over 8 volumes per slice position); its residuals are brought to the template's
      frame in the frequency domain, for at most ``obs_segments`` segments; principal axes from
      the smaller Gram matrix. A component is kept if its scores agree one volume apart (slow
      change: drift, slow motion) or if they somewhere exceed 8 robust SDs (median absolute
      deviation based): a sudden head movement changes the artifact for a few volumes, which
      makes a component huge on a few segments and not persistent. Each kept component's
      subtracted shape is the undetrended residuals regressed on its scores: the PCA runs on
      detrended residuals, so its axes lack the slow part of the artifact's change, which would
      otherwise stay in the LFP. Both are needed: on ``benchmarks/artifact_removal.py``'s 24
      channels of 60 s (with notches, and the own share below), mean (worst) gamma error
      +0.4 % (+2.4 %); without the peak rule +12.9 % (+137 %), with detrended shapes +1.0 %
      (+5.0 %); with neither, and the plain template, +29 % (+244 %), tens of uV of artifact
      left on awake channels with sudden head movements.
    * The template's own share (``own_share``): a slice position's template is the mean of its
      N segments, the fitted one included. With y = A + L (artifact plus the segment's LFP, of
      power s2 in a band) and the template T = A + L / N + R / N (R: the other N - 1 segments'
      LFP, uncorrelated with L), subtracting T leaves L (1 - 1/N) - R / N, of expected power
      s2 (N - 1) / N: 1/N of the power is lost (1.7 % at N = 60, 60 volumes). Subtracting
      c T + (1 - c) y instead (both terms times the fitted scale) leaves c times that, and
      c = sqrt(N / (N - 1)) makes its expected power s2. (The leave-one-out template,
      c = N / (N - 1), keeps L whole but adds the others' share: s2 N / (N - 1), +1/(N - 1).)
      Measured on ``benchmarks/artifact_removal.py``'s 24 channels of 60 s, with notches: mean
      gamma error -1.4 % with the plain template, +2.4 % leave-one-out, +0.4 % with this.
      The coefficients are fitted against T itself (its own share moves them by about
      |L|^2 / (N |A|^2) in the whitened fit, negligible at artifacts 100 times the LFP); the
      derivative and basis terms are not corrected (the derivative's coefficient is the
      fitted scale times a delay error under 1/64 sample; a basis shape's share of a segment
      is that segment's leverage in the regression on the scores, about one over the number
      of segments used for a slow component, larger only on the few segments of a sudden
      movement).
    * Slices per volume: as in :func:`fractional_template_regression`, on at most 2,048
      segments and every ``length // 256``-th sample of their residuals.

    Memory: one float64 copy of the channel (the output) plus a padded read-only source and
    batches of 1,024 segments. Time: ``benchmarks/artifact_removal.py`` prints it beside
    :func:`template_regression`'s and :func:`fractional_template_regression`'s.

    Parameters
    ----------
    lfp : array-like of shape (n_times,)
    sfreq : float
    slice_onsets : array-like of shape (n_slices,)
        Slice trigger times in seconds on the LFP's clock, increasing.
    obs_components : int, default 4
        Optimal-basis components at most (0: none).
    obs_segments : int, default 4000
        Segments the components are estimated from (a contiguous stretch mid-scan).
    iterations : int, default 2
        Rounds of delay refinement per stage (1-3 measured alike on the simulator's scans).
    slice_templates : bool, default True
        One template per slice position (period found from the residuals); False: one template.
    whiten : int, default 1
        Differences taken before the fit (0: unweighted least squares).
    own_share : bool, default True
        Correct the template's share of each segment's own LFP (see above), so that the
        cleaned band power is the LFP's in expectation; False: subtract the plain template
        (1/N of the power lost, N segments per slice position).
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
    >>> cleaned = subsample_template_regression(raw, sfreq, slice_onsets=onsets, line_freq=None,
    ...                                         notch_slice_rate=False)
    >>> bool(np.std(cleaned - lfp) < 0.01 * np.std(raw - lfp))
    True
    """
    lfp = check_channel(lfp)
    sfreq = check_sfreq(sfreq)
    n = lfp.size
    onsets = _check_onsets(slice_onsets, sfreq, n)
    _check_counts(obs_components, iterations)
    if not isinstance(whiten, (int, np.integer)) or not 0 <= whiten <= 3:
        raise ValueError(f"whiten must be 0, 1, 2 or 3 (differences before the fit); got {whiten!r}")
    x, starts, length, interval, view, notched, present = _slice_segments(
        lfp, sfreq, onsets, line_freq, notch_max_hz, notch_slice_rate, min_reliability
    )
    if not present:
        return notched(x)
    n_seg = starts.size

    # Segments widened by a tapered margin for the frequency-domain shifts (no ringing of cut
    # ends into the segment); the central ``length`` samples are what is fitted.
    margin = min(32, length // 2)
    width = length + 2 * margin
    ramp = np.sin(np.linspace(0, np.pi / 2, margin + 2)[1:-1]) ** 2
    window = np.concatenate([ramp, np.ones(length), ramp[::-1]])
    source = np.pad(np.asarray(lfp, dtype=np.float64), margin, mode="edge")
    wide = np.lib.stride_tricks.sliding_window_view(source, width)  # wide[s] = samples s - margin ...
    centre = slice(margin, margin + length)
    # Shifts are at most _MAX_DELAY samples, of tapered rows: a few samples of zeros keep them from wrapping.
    nfft = scipy_fft_len(width + 2 * int(np.ceil(_MAX_DELAY)) + 2)
    omega = 2 * np.pi * np.fft.rfftfreq(nfft)
    bin_delays = np.arange(-_MAX_DELAY * _BINS_PER_SAMPLE, _MAX_DELAY * _BINS_PER_SAMPLE + 1) / _BINS_PER_SAMPLE
    n_bins = bin_delays.size
    trend = np.polynomial.legendre.legvander(np.linspace(-1, 1, length), _TREND_DEGREE)
    q, _ = np.linalg.qr(trend)

    def detrend(a):  # the trend space projected out of the last axis
        return a - (a @ q) @ q.T

    # The fit is weighted: segments and columns are differenced ``whiten`` times first (the LFP's
    # 1/f spectrum whitened), so the coefficients rest on the artifact's sharp edges, where the
    # LFP is weak, and not on its slow parts, which share the LFP's bands (beta, gamma) and would
    # take the LFP's projection on them out with the artifact.
    tw = np.diff(trend, n=whiten, axis=0)
    tw = tw[:, np.linalg.norm(tw, axis=0) > 1e-9 * np.sqrt(length)]
    qw = np.linalg.qr(tw)[0] if tw.shape[1] else np.zeros((length - whiten, 0))

    def whitened(a):  # (..., length) -> (..., length - whiten), its trend space projected out
        d = np.diff(a, n=whiten, axis=-1) if whiten else a
        return d - (d @ qw) @ qw.T

    delays = np.zeros(n_seg)
    position = np.zeros(n_seg, dtype=np.int64)
    n_pos = 1
    blocks = [slice(i, min(i + _SEGMENT_BLOCK, n_seg)) for i in range(0, n_seg, _SEGMENT_BLOCK)]

    def segs(sl):  # whitened segments of a block
        return whitened(view[starts[sl]])

    def bin_of(d):
        return np.clip(np.rint((d + _MAX_DELAY) * _BINS_PER_SAMPLE), 0, n_bins - 1).astype(np.int64)

    def template_spectrum() -> np.ndarray:
        # (n_pos, n_freq): per slice position, the mean of its segments advanced by their delays,
        # each (position, delay bin) group summed first and advanced by the bin's centre.
        group = position * n_bins + bin_of(delays)
        total = np.zeros((n_pos * n_bins, width))
        for sl in blocks:
            g = group[sl]
            order = np.argsort(g, kind="stable")
            gs = g[order]
            first = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]])
            total[gs[first]] += np.add.reduceat(wide[starts[sl]][order] * window, first, axis=0)
        used = np.flatnonzero(np.bincount(group, minlength=n_pos * n_bins))
        spec = np.fft.rfft(total[used], n=nfft, axis=1) * np.exp(1j * omega[None, :] * bin_delays[used % n_bins, None])
        out = np.zeros((n_pos, omega.size), dtype=complex)
        np.add.at(out, used // n_bins, spec)
        return out / np.bincount(position, minlength=n_pos)[:, None]

    def banks(spec, basis_spec):
        # Every shape (templates, their derivatives, basis) delayed by the centre of each delay bin
        # a segment is in now: (n_shapes, n_used_bins, length), raw and whitened, and a lookup.
        used = np.unique(bin_of(delays))
        shapes = np.concatenate([spec, spec * (1j * omega), basis_spec])
        phase = np.exp(-1j * omega[None, :] * bin_delays[used, None])
        raw = np.fft.irfft(shapes[:, None, :] * phase[None], n=nfft, axis=2)[..., centre]
        lookup = np.zeros(n_bins, dtype=np.int64)
        lookup[used] = np.arange(used.size)
        white = whitened(raw)
        # Shape rows of each column for slice position p: template p, derivative p, the basis.
        index = np.array([[p, n_pos + p] + [2 * n_pos + k for k in range(basis_spec.shape[0])] for p in range(n_pos)])
        # The fit's Gram matrices depend only on (position, bin): (n_pos, n_used, k, k).
        cols = white[index]  # (n_pos, k, n_used, length - whiten)
        grams = np.einsum("piut,pjut->puij", cols, cols)
        return raw, white, lookup, index, grams

    def fit(bk, sl):
        # Least squares of each whitened segment on its columns (the trend already projected out).
        _, white, lookup, index, grams = bk
        b = lookup[bin_of(delays[sl])]
        p = position[sl]
        seg = segs(sl)
        rhs = np.stack([np.einsum("bt,bt->b", seg, white[index[p, k], b]) for k in range(index.shape[1])], axis=1)
        gram = grams[p, b]
        norm = np.sqrt(np.maximum(np.einsum("bii->bi", gram), 1e-300))
        gram = gram / (norm[:, :, None] * norm[:, None, :]) + 1e-9 * np.eye(gram.shape[1])
        return np.linalg.solve(gram, (rhs / norm)[..., None])[..., 0] / norm

    def fitted(bk, sl, coef):
        # (batch, length): the raw (not whitened) columns times their coefficients.
        raw, _, lookup, index, _ = bk
        b = lookup[bin_of(delays[sl])]
        p = position[sl]
        out = coef[:, :1] * raw[index[p, 0], b]
        for k in range(1, index.shape[1]):
            out += coef[:, k : k + 1] * raw[index[p, k], b]
        return out

    def refine_delays(bk):
        for sl in blocks:
            coef = fit(bk, sl)
            a, b = coef[:, 0], coef[:, 1]
            step = np.where(a != 0, -b / np.where(a == 0, 1, a), 0.0)
            # The bin's centre plus what the derivative says is left.
            delays[sl] = bin_delays[bin_of(delays[sl])] + np.clip(step, -0.5, 0.5)
        delays[:] -= delays.mean()
        np.clip(delays, -_MAX_DELAY, _MAX_DELAY, out=delays)

    no_basis = np.zeros((0, omega.size), dtype=complex)

    def residuals(bk, idx):
        # Detrended segments idx less their template and derivative terms (own frame).
        sl = slice(idx[0], idx[-1] + 1)
        return detrend(view[starts[sl]] - fitted(bk, sl, fit(bk, sl)))

    for _ in range(iterations):
        refine_delays(banks(template_spectrum(), no_basis))
    spec = template_spectrum()
    if slice_templates and n_seg >= 8:
        stretch = np.arange(min(n_seg, 2048))
        bk = banks(spec, no_basis)
        res = np.concatenate(
            [residuals(bk, stretch[i : i + _SEGMENT_BLOCK]) for i in range(0, stretch.size, _SEGMENT_BLOCK)]
        )
        # Every few samples of the residual are enough to tell the period (and 64 times cheaper).
        res = res[:, :: max(1, length // 256)]
        res -= res.mean(axis=0)
        total = float((res**2).sum()) or 1.0
        explained = {}
        for period in range(2, min(64, stretch.size // 4) + 1):
            rows = res.shape[0] // period * period
            sums = res[:rows].reshape(-1, period, res.shape[1]).sum(axis=0)
            explained[period] = float((sums**2).sum()) / (rows // period) / total
        best = max(explained.values())
        if best > 0.2:
            n_pos = min(p for p, e in explained.items() if e >= 0.95 * best)
            position = np.arange(n_seg) % n_pos
            for _ in range(iterations):
                refine_delays(banks(template_spectrum(), no_basis))
            spec = template_spectrum()
    basis_spec = no_basis
    if obs_components:
        first = max(0, (n_seg - obs_segments) // 2)
        pick = np.arange(first, min(n_seg, first + obs_segments))
        bk = banks(spec, no_basis)
        parts, slow = [], []
        for i in range(0, pick.size, _SEGMENT_BLOCK):
            idx = pick[i : i + _SEGMENT_BLOCK]
            sl = slice(idx[0], idx[-1] + 1)
            coef = fit(bk, sl)
            # The residual in its own frame, widened, brought to the template's frame.
            fit_wide = np.zeros((idx.size, width))
            fit_wide[:, centre] = fitted(bk, sl, coef)
            own = (wide[starts[sl]] - fit_wide) * window
            back = np.fft.irfft(
                np.fft.rfft(own, n=nfft, axis=1) * np.exp(1j * omega[None, :] * delays[sl, None]), n=nfft, axis=1
            )[:, centre]
            # Kept apart: the detrended residual (for the PCA) and its trend coefficients.
            slow.append(back @ q)
            parts.append(back - slow[-1] @ q.T)
        resid = np.concatenate(parts)
        resid -= resid.mean(axis=0)
        slow = np.concatenate(slow)
        slow -= slow.mean(axis=0)
        group = 8
        n_rows = (pick.size // (n_pos * group)) * n_pos * group
        if n_rows >= 4 * n_pos * group:
            means = resid[:n_rows].reshape(-1, group, n_pos, length).mean(axis=1).reshape(-1, length)
        else:
            means = resid
        # Principal axes from the smaller of the rows' and the samples' Gram matrices, top k only
        # (a full length x length eigendecomposition costs seconds at 24 kHz).
        k = min(obs_components, min(means.shape) - 1)
        small = means @ means.T if means.shape[0] < length else means.T @ means
        _, u = scipy.linalg.eigh(small, subset_by_index=[small.shape[0] - k, small.shape[0] - 1])
        vecs = means.T @ u[:, ::-1] if means.shape[0] < length else u[:, ::-1]
        vecs /= np.linalg.norm(vecs, axis=0, keepdims=True)
        scores = resid @ vecs
        lag = min(max(n_pos, int(round(1.0 / interval))), pick.size // 2)
        agree = np.array([np.corrcoef(sc[:-lag], sc[lag:])[0, 1] if sc.std() > 0 else 0.0 for sc in scores.T])
        dev = np.abs(scores - np.median(scores, axis=0))
        spread = 1.4826 * np.median(dev, axis=0)
        peak = dev.max(axis=0) / np.where(spread > 0, spread, np.inf)
        keep = (agree > OBS_MIN_AGREEMENT) | (peak > OBS_MIN_PEAK)
        if keep.any():
            # Each component's undetrended shape: the residuals, trends included, regressed on
            # its scores. The PCA ran on detrended residuals, so its axes lack the slow part of the
            # artifact's change (a movement changes the gradient ramps too); the fit below sees only
            # the whitened, detrended columns, but subtracts the whole shape.
            kept = scores[:, keep]
            shapes = np.linalg.lstsq(kept, resid, rcond=None)[0] + np.linalg.lstsq(kept, slow, rcond=None)[0] @ q.T
            basis = np.zeros((shapes.shape[0], nfft))
            basis[:, centre] = shapes
            basis_spec = np.fft.rfft(basis, axis=1)
            for _ in range(iterations):
                refine_delays(banks(spec, basis_spec))
            spec = template_spectrum()

    # Subtract the fitted template, derivative and basis terms (the undetrended columns: the
    # trend's coefficients, the LFP's slow course, stay in), each up to the next trigger.
    bk = banks(spec, basis_spec)
    valid = np.minimum(np.append(np.diff(starts), length), length)
    coefs = np.concatenate([fit(bk, sl) for sl in blocks])
    # own_share: a T becomes a (c T + (1 - c) y), c = sqrt(N / (N - 1)) for a position of N
    # segments (see the docstring); y is the segment as it went into the template (the bank's
    # delay undoes the advance exactly), read from the source, which the subtraction leaves alone.
    count = np.bincount(position, minlength=n_pos).astype(float)
    share = np.where(count > 1, np.sqrt(count / np.maximum(count - 1, 1)) - 1, 0.0) if own_share else None
    for sl in blocks:
        artifact = fitted(bk, sl, coefs[sl])
        if own_share:
            raw, _, lookup, index, _ = bk
            tmpl = raw[index[position[sl], 0], lookup[bin_of(delays[sl])]]
            artifact += (share[position[sl]] * coefs[sl, 0])[:, None] * (tmpl - wide[starts[sl]][:, centre])
        for i, (a, v) in enumerate(zip(starts[sl].tolist(), valid[sl].tolist(), strict=True)):
            x[a : a + v] -= artifact[i, :v]
    return notched(x)


def _slice_segments(lfp, sfreq, onsets, line_freq, notch_max_hz, notch_slice_rate, min_reliability):
    """What the two fractional-delay methods start from: the output copy ``x``, the slice segments
    (``starts``, ``length`` samples each, ending before the next trigger: gaps between volumes are
    left to the notches), the median slice ``interval`` (s), a sliding ``view`` of ``x``, the
    notch step ``notched``, and whether the split-half reliability check finds an artifact at all
    (``present``)."""
    n = lfp.size
    starts = np.round(onsets * sfreq).astype(np.int64)
    length = int(np.percentile(np.diff(starts), 1))
    if length < 8:
        raise ValueError(f"The slice interval spans fewer than 8 samples at {sfreq:g} Hz")
    interval = float(np.median(np.diff(onsets)))
    x = np.array(lfp, dtype=np.float64)  # the output
    freqs = _slice_rate_notches(line_freq, notch_max_hz, 1.0 / interval if notch_slice_rate else None, sfreq)

    def notched(y):
        return notch_filter(y, sfreq, freqs=freqs, out=y) if freqs.size else y

    starts = starts[starts + length <= n]
    view = np.lib.stride_tricks.sliding_window_view(x, length)
    present = True
    if min_reliability is not None:
        a, b = np.diff(view[starts[0::2]].mean(axis=0)), np.diff(view[starts[1::2]].mean(axis=0))
        reliability = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) or 1.0))
        present = reliability >= min_reliability
    return x, starts, length, interval, view, notched, present


def _check_counts(obs_components, iterations) -> None:
    """The counts the two fractional-delay methods take."""
    if not isinstance(obs_components, (int, np.integer)) or obs_components < 0:
        raise ValueError(f"obs_components must be a non-negative integer; got {obs_components!r}")
    if not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer; got {iterations!r}")


def scipy_fft_len(n: int) -> int:
    import scipy.fft

    return scipy.fft.next_fast_len(n, real=True)


def _check_onsets(slice_onsets, sfreq: float, n: int) -> np.ndarray:
    """Slice trigger times as float seconds: 1-D, at least two, finite, increasing, inside the recording."""
    onsets = np.asarray(slice_onsets, dtype=float)
    if onsets.ndim != 1 or onsets.size < 2:
        raise ValueError(f"slice_onsets must be a 1-D array of at least two trigger times; got shape {onsets.shape}")
    if not np.all(np.isfinite(onsets)) or np.any(np.diff(onsets) <= 0):
        raise ValueError("slice_onsets must be finite and strictly increasing (seconds on the LFP's clock)")
    if onsets[0] < 0 or onsets[-1] * sfreq >= n:
        raise ValueError(
            f"slice_onsets span {onsets[0]:.3f}-{onsets[-1]:.3f} s but the recording covers 0-{n / sfreq:.3f} s"
        )
    return onsets
