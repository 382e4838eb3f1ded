"""The MR gradient artifact in the LFP: its physics, its schedule, and adding it to the data.

What simultaneous recordings show, and how each is simulated
-------------------------------------------------------------
The artifact is the voltage the switching EPI gradients induce in the loop formed by each
contact's lead, the tissue and the reference: ``V_c(t) = -dPhi_c/dt``, and because a gradient
field is linear in position, ``Phi_c`` is a weighted sum of the three gradient waveforms (slice,
readout, phase axes) with weights set by the loop's area moments. Each choice below is what the
EEG-fMRI and rodent LFP-fMRI literature reports; together they are why average artifact
subtraction (AAS; Allen et al. 2000, NeuroImage 12:230) leaves residuals that FASTR's optimal
basis set (OBS; Niazy et al. 2005, NeuroImage 28:720) and Tu & Zhang's (2022, eLife 11:e81555)
template regression then chase.

* **Three gradient axes, mixed per contact** (:func:`gradient_components`): slice select with
  its rephaser and spoiler, the alternating readout train, the phase-encode blips. The induced
  voltage is each axis's time derivative plus a little of the gradient itself (the amplifier's
  coupling of the "ramps"), computed on a 64x finer grid, passed through the converter's
  decimation filter (linear phase, alias free: a raised-cosine edge from 0.40 to 0.48 fs, as a
  sigma-delta converter's) and sampled. Mixing three shapes, not scaling one, is what lets motion change the
  artifact's shape and not only its size (Yan et al. 2009, NeuroImage 46:459).
* **Clocks not locked** (:func:`lfpbold.simulate.signals.slice_positions`): the scanner's slice
  clock and the amplifier's sample clock run free, so the slice period is not a whole number of
  samples (50 ppm apart, plus a slow +-2 ppm drift over the scan, as crystal oscillators do
  with temperature; the TDT RZ2's real rate is 24,414.0625 Hz, not the 24,414 written in
  files). Each artifact starts at its true, fractional sample; the recorded TTL trigger is the
  first sample at or after it (0-1 sample late, the phase cycling through every fraction).
  This is what upsampled alignment in FASTR and the sub-sample phases of template regression
  exist for (Mandelkow et al. 2006, NeuroImage 32:1120, on clock synchronisation).
* **Per-slice waveform differences** (:func:`slice_variants`): each slice position of the volume
  has its own small (2 % RMS per axis) differences in gradient amplitude (pre-emphasis, eddy
  currents, the slice-dependent RF offset), and the first slice of every volume carries an
  extra crusher lobe (a volume-level spoiler), so one template averaged over all slices
  misfits some of them (the crusher sits inside the slice: a feature straddling the trigger
  would be cut by any slice-segment method, and scanners leave the trigger's moment quiet);
  Niazy et al. (2005) report slice-to-slice variance as the main AAS
  residual besides motion.
* **Slow amplitude drift and respiration**: gain changes of a few percent over minutes (gradient
  coil heating, cable settling) and a 1 % modulation at the breathing rate (0.8-1.5 Hz), per
  implant.
* **Head motion** (``motion``): the realignment parameters move the loop in the gradient field,
  which changes each axis's weight by 30 % per mm of displacement (rotations times a 5 mm head
  radius), differently per axis and contact: small drifts in sedated scans, sudden shape changes
  at awake head movements (Moosmann et al. 2009, NeuroImage 45:1144, motion-informed AAS).
* **Contacts along the shank**: the weights vary smoothly with the contact's depth (an offset
  and a linear term per axis, per implant), so amplitude changes and polarity can flip along the
  probe, as adjacent leads share most of their path; no random polarity per contact.
* **Size**: 150 times the nominal LFP RMS on average (Tu & Zhang 2022: mV-scale artifacts on
  ~100 uV LFP). Only during the scan; the lead-in and tail are artifact free.

:func:`add_gradient_artifact` adds, block by block, every slice's artifact that overlaps a block,
so the stream (:class:`lfpbold.simulate.lfp.LfpStream`) never holds a paper-size scan.
"""

from __future__ import annotations

import math

import numpy as np

from lfpbold.simulate.signals import HEAD_RADIUS_MM, slice_positions
from lfpbold.simulate.sizes import Size

__all__ = [
    "ARTIFACT_TO_LFP_RMS",
    "MOTION_COUPLING_PER_MM",
    "gradient_components",
    "gradient_artifact_waveform",
    "slice_variants",
    "ArtifactModel",
    "add_gradient_artifact",
]

ARTIFACT_TO_LFP_RMS = 150.0  # mean gradient artifact RMS over channels / nominal LFP RMS
MOTION_COUPLING_PER_MM = 0.3  # relative change of an axis weight per mm of head displacement
SLICE_VARIATION = 0.02  # RMS relative difference of an axis's amplitude between slice positions
_OVERSAMPLE = 64  # fine grid per sample on which the analogue waveform is computed
AXES = ("slice", "readout", "phase")


def _trap(t, t0, t1, a, ramp):
    up = np.clip((t - t0) / ramp, 0, 1)
    down = np.clip((t1 - t) / ramp, 0, 1)
    return a * np.minimum(up, down)


def _gradients(size: Size, t: np.ndarray, crusher: bool = False) -> np.ndarray:
    """(3, t.size) gradient waveforms of one slice, ``t`` in fractions of the slice duration."""
    g = np.zeros((3, t.size))
    g[0] = _trap(t, 0.03, 0.12, 1.0, 0.012) + _trap(t, 0.125, 0.17, -0.6, 0.008) + _trap(t, 0.85, 0.95, 1.2, 0.015)
    if crusher:  # the volume's first slice: an extra slice-axis lobe before the readout (a crusher)
        g[0] += _trap(t, 0.172, 0.198, -0.6, 0.006)
    lines = size.readout_lines
    edges = np.linspace(0.2, 0.82, lines + 1)
    lobe = edges[1] - edges[0]
    for m in range(lines):
        g[1] += _trap(t, edges[m] + 0.02 * lobe, edges[m + 1] - 0.02 * lobe, 0.8 * (-1) ** m, 0.2 * lobe)
        g[2] += _trap(t, edges[m + 1] - 0.1 * lobe, edges[m + 1] + 0.1 * lobe, 0.08, 0.05 * lobe)
    g[2] += _trap(t, 0.175, 0.195, -0.5, 0.005)  # phase-encode prephaser
    return g


_RING = 24  # samples after the slice period for the decimation filter's ringing to die out
_PRE = 16  # and before the onset (a linear-phase filter rings on both sides)


def _length(size: Size) -> int:
    """Samples of one slice's artifact window: the filter's pre-ringing, the slice period, the ringing."""
    return _PRE + int(math.floor(size.t_r / size.n_slices * size.fs)) + _RING


def gradient_components(size: Size, crusher: bool = False) -> np.ndarray:
    """Induced voltage of each gradient axis of one slice, sampled: (3, length) at onset phase 0.

    ``d/dt G_a`` (in units of the slice duration, times 20) plus half of ``G_a`` on a 64x finer
    grid, through the converter's decimation filter (linear phase, raised-cosine edge from 0.40 to
    0.48 fs: alias free, as a sigma-delta converter's), sampled every 64 fine points. Sample
    ``_PRE`` is the onset; a slice at fractional onset ``p`` is this delayed by ``p``
    (:func:`delayed_components`), exactly, because the samples are band-limited.
    """
    n = _length(size)
    os_ = _OVERSAMPLE
    fine = n * os_
    t = ((np.arange(fine) + 0.5) / os_ - _PRE) / (size.fs * size.t_r / size.n_slices)
    g = _gradients(size, t, crusher) * ((t >= 0) & (t <= 1.0))
    art = np.gradient(g, axis=1) * os_ * 20 + 0.5 * g
    f = np.fft.rfftfreq(fine, 1.0 / (size.fs * os_)) / size.fs  # in units of fs
    edge = np.clip((f - 0.40) / 0.08, 0, 1)
    response = np.cos(edge * np.pi / 2) ** 2
    art = np.fft.irfft(np.fft.rfft(art, axis=1) * response, n=fine, axis=1)
    return art[:, ::os_]


def delayed_components(spectra: np.ndarray, delays: np.ndarray, n: int) -> np.ndarray:
    """Band-limited waveforms (their zero-padded spectra, (..., nfft // 2 + 1)) delayed by ``delays``
    samples each (fractional; negative = earlier): (len(delays), ..., n)."""
    nfft = 2 * (spectra.shape[-1] - 1)
    omega = 2 * np.pi * np.fft.rfftfreq(nfft)
    d = np.asarray(delays, dtype=float).reshape(-1, *([1] * spectra.ndim))
    phase = np.exp(-1j * omega * d)  # (len(delays), 1, ..., n_freq)
    return np.fft.irfft(spectra[None] * phase, n=nfft, axis=-1)[..., :n]


def gradient_artifact_waveform(size: Size) -> np.ndarray:
    """One slice's artifact as one waveform (the three axes summed, on the sample grid, unit RMS).

    Examples
    --------
    >>> from lfpbold.simulate.sizes import SIZES
    >>> w = gradient_artifact_waveform(SIZES["small"])  # 0.1 s slices at 2 kHz, and the filter's ringing
    >>> w.size, round(float(np.sqrt(np.mean(w**2))), 6)
    (240, 1.0)
    """
    w = gradient_components(size).sum(0)
    w = w - w.mean()
    return w / np.sqrt(np.mean(w**2))


def slice_variants(size: Size, rng: np.random.Generator) -> np.ndarray:
    """Per slice position: the three axes' waveforms at onset phase 0, (n_slices, 3, length).

    Slice position ``j`` scales each axis by ``1 + SLICE_VARIATION * N(0, 1)``; position 0 adds the
    crusher.
    """
    base = gradient_components(size)
    first = gradient_components(size, crusher=True)
    scale = 1.0 + SLICE_VARIATION * rng.standard_normal((size.n_slices, 3))
    return np.stack([(first if j == 0 else base) * scale[j][:, None] for j in range(size.n_slices)])


class ArtifactModel:
    """Everything that sets one scan's artifact: schedule, waveforms and per-contact weights.

    Parameters
    ----------
    size : Size
    scan_seed : int
        The scan's seed (the artifact has its own random stream, so switching it off leaves every
        other sample of the LFP unchanged).
    n_channels_per_implant, n_implants : int
    motion : ndarray (n_volumes, 6) or None
        Realignment parameters (mm, radians); None: no motion.
    scale : float
        Mean artifact RMS over channels, volts.

    Examples
    --------
    >>> from lfpbold.simulate.sizes import SIZES
    >>> m = ArtifactModel(SIZES["small"], 3, 4, 1, motion=None, scale=1.0)
    >>> m.starts.size, bool(abs(m.starts[0] - 80_000) < 1), m.weights.shape
    (3000, True, (3000, 3, 4))
    """

    def __init__(self, size: Size, scan_seed: int, n_channels_per_implant: int, n_implants: int, *, motion, scale):
        rng = np.random.default_rng(np.random.SeedSequence([int(scan_seed), 5]))
        self.size = size
        self.length = _length(size)
        pos = slice_positions(size)  # true fractional sample of every slice's start
        self.starts = pos
        # The TTL trigger is the first sample at or after the onset (= slice_onsets(size) * fs); the
        # window starts _PRE samples before it, and the waveform is advanced by (trigger - onset).
        self.first = np.ceil(pos - 1e-9).astype(np.int64) - _PRE
        self.advance = np.ceil(pos - 1e-9) - pos
        self.slice_pos = np.tile(np.arange(size.n_slices), size.n_volumes)
        self.variants = slice_variants(size, rng)
        nfft = 2 * self.length
        self.spectra = np.fft.rfft(self.variants, n=nfft, axis=-1)  # (n_slices, 3, nfft // 2 + 1)
        n_ch = n_channels_per_implant * n_implants
        times = pos / size.fs
        depth = (np.arange(n_channels_per_implant) / max(n_channels_per_implant - 1, 1)) - 0.5
        # Per implant and axis: weight = offset + slope * depth (smooth along the shank).
        offset = rng.standard_normal((n_implants, 3))
        slope = rng.normal(0.0, 1.2, (n_implants, 3))
        w0 = (offset[:, :, None] + slope[:, :, None] * depth[None, None, :]).transpose(1, 0, 2).reshape(3, n_ch)
        # Motion coupling per implant, axis and motion parameter, also smooth along the shank.
        k0 = rng.standard_normal((n_implants, 3, 6))
        k1 = rng.normal(0.0, 0.5, (n_implants, 3, 6))
        kmat = (k0[..., None] + k1[..., None] * depth).transpose(1, 2, 0, 3).reshape(3, 6, n_ch) / math.sqrt(6)
        # Slow drift (minutes) and respiration, per implant.
        dur = size.duration_s
        n_knots = max(4, int(dur / 60) + 2)
        knots = np.linspace(0, dur, n_knots)
        drift = np.stack([np.interp(times, knots, 0.03 * rng.standard_normal(n_knots)) for _ in range(n_implants)])
        f_resp = rng.uniform(0.8, 1.5, n_implants)
        resp = 0.01 * np.sin(2 * np.pi * f_resp[:, None] * times[None, :] + rng.uniform(0, 2 * np.pi, (n_implants, 1)))
        gain = np.repeat(1.0 + drift + resp, n_channels_per_implant, axis=0)  # (n_ch, n_slices)
        jitter = 1.0 + rng.uniform(-0.01, 0.01, times.size)  # gradient amplifier, slice by slice
        weights = w0[None, :, :] * gain.T[:, None, :] * jitter[:, None, None]
        if motion is not None:
            mot = np.asarray(motion, dtype=float)
            mot = mot - mot[0]
            mm = np.concatenate([mot[:, :3], HEAD_RADIUS_MM * mot[:, 3:]], axis=1)
            vol_t = pos[:: size.n_slices] / size.fs
            at = np.stack([np.interp(times, vol_t, mm[:, i]) for i in range(6)], axis=1)  # (n_slices, 6)
            scale_ref = np.abs(w0).mean()
            weights = weights + MOTION_COUPLING_PER_MM * scale_ref * np.einsum("sm,amc->sac", at, kmat)
        # Mean RMS over channels = scale (at rest).
        rms = np.sqrt(np.mean(np.einsum("jan,ac->jcn", self.variants, w0) ** 2, axis=(0, 2)))
        self.weights = weights * (scale / rms.mean())
        self.rest_rms = rms * (scale / rms.mean())

    def add(self, out: np.ndarray, n0: int) -> None:
        """Add, in place, every slice's artifact overlapping ``out`` (samples ``n0:n0 + len(out)``)."""
        add_gradient_artifact(out, n0, model=self)


def add_gradient_artifact(out: np.ndarray, n0: int, *, model: ArtifactModel) -> None:
    """Add every slice's artifact of ``model`` that overlaps ``out`` (samples ``n0:n0 + len(out)``).

    A slice that starts before the block and runs into it contributes its tail, so blocks can be
    generated one after the other with no seam.

    Examples
    --------
    >>> from lfpbold.simulate.sizes import SIZES
    >>> m = ArtifactModel(SIZES["small"], 3, 2, 1, motion=None, scale=1.0)
    >>> a, b = np.zeros((400, 2), np.float32), np.zeros((400, 2), np.float32)
    >>> whole = np.zeros((800, 2), np.float32)
    >>> add_gradient_artifact(a, 80_000, model=m); add_gradient_artifact(b, 80_400, model=m)
    >>> add_gradient_artifact(whole, 80_000, model=m)
    >>> bool(np.array_equal(np.concatenate([a, b]), whole)), bool(np.abs(whole).max() > 0.5)
    (True, True)
    """
    length = model.length
    n1 = n0 + out.shape[0]
    first = np.searchsorted(model.first, n0 - length, side="right")
    last = np.searchsorted(model.first, n1, side="left")
    if last <= first:
        return
    ks = np.arange(first, last)
    waves = np.empty((ks.size, 3, length))
    for j in np.unique(model.slice_pos[ks]):  # each slice position's waveform, delayed per slice
        rows = model.slice_pos[ks] == j
        waves[rows] = delayed_components(model.spectra[j], -model.advance[ks[rows]], length)
    acc = np.zeros(out.shape, dtype=np.float64)
    for i, k in enumerate(ks.tolist()):
        s = int(model.first[k])
        lo, hi = max(s, n0), min(s + length, n1)
        if hi > lo:
            acc[lo - n0 : hi - n0] += waves[i][:, lo - s : hi - s].T @ model.weights[k]
    out += acc.astype(np.float32)
