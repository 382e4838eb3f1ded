"""The raw LFP of one scan, generated block by block so that a paper-size scan never sits in memory.

:class:`LfpStream` turns the band powers of :func:`lfpbold.simulate.signals.simulate_latents`
into multichannel voltages: per implant, band oscillations and a 1/f^2 background that are
coherent between contacts in proportion to their distance, mains, independent noise per contact,
bad contacts (flat, noisy, intermittent) and, optionally, the MR gradient artifact of
:mod:`lfpbold.simulate.artifacts`.

Channels, and what recordings show
----------------------------------
* **Coherence falls with distance**: each band's signal at contact ``c`` is ``L_b @ s_b`` with
  ``s_b`` independent band-limited sources per contact and ``L_b`` the Cholesky factor of
  ``exp(-|depth_c - depth_c'| / lambda_b)``: slow rhythms are volume conducted over millimetres
  (``lambda`` 3 mm for delta/theta and the background), gamma is local (0.5 mm; the LFP's spatial
  reach is a few hundred micrometres for high frequencies, Katzner et al. 2009, Neuron 61:35;
  Leski et al. 2013, PLoS Comput Biol 9:e1003137). The band power envelope is the implant's.
* **Independent noise per contact** (amplifier and thermal noise, 3 uV RMS white), a DC offset,
  a gain of 0.9-1.1 and a lag of 0-3 samples (filter and conduction differences).
* **Bad contacts** (:data:`BAD_KINDS`; each contact bad with probability
  :data:`BAD_CHANNEL_RATE`, at most half of an implant): ``flat`` (broken lead: the amplifier's
  input sits at a constant level, no LFP, no artifact), ``noisy`` (high impedance: 40 uV of
  broadband noise and 20x the mains), ``intermittent`` (a loose connector: a few stretches of
  2-10 s with large broadband bursts and offset steps). :attr:`LfpStream.bad_channels` lists
  them; ``ground_truth.json`` records them per scan.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal
from scipy.interpolate import CubicSpline

from lfpbold.constants import CLASSIC_BANDS
from lfpbold.simulate.artifacts import ARTIFACT_TO_LFP_RMS, ArtifactModel
from lfpbold.simulate.signals import BAND_RMS
from lfpbold.simulate.sizes import SIZES

__all__ = [
    "BACKGROUND_RMS",
    "CHANNEL_NOISE_RMS",
    "LINE_NOISE",
    "COHERENCE_LENGTH_MM",
    "BAD_CHANNEL_RATE",
    "BAD_KINDS",
    "BAND_TRANSITION",
    "BAND_STOP_DB",
    "band_fir",
    "LfpStream",
]

BACKGROUND_RMS = 50e-6  # 1/f^2 background (corner 1 Hz), volts
CHANNEL_NOISE_RMS = 3e-6  # independent white noise per channel, volts
LINE_NOISE = {60.0: 3e-6, 120.0: 1.5e-6, 180.0: 1e-6}  # mains amplitude (V) per harmonic
#: Distance (mm) over which a band's coherence between two contacts falls by 1/e.
COHERENCE_LENGTH_MM = {"background": 3.0, "delta": 3.0, "theta": 3.0, "alpha": 2.0, "beta": 1.0, "gamma": 0.5}
BAD_CHANNEL_RATE = 0.08
BAD_KINDS = ("flat", "noisy", "intermittent")
NOISY_RMS = 40e-6
BURST_RMS = 400e-6


#: Transition width of each band's generating filter, as a fraction of the band's width.
BAND_TRANSITION = 1.0 / 6.0
#: Stop-band attenuation (dB) of the bands' generating filters.
BAND_STOP_DB = 60.0


def band_fir(band, fs: float) -> np.ndarray:
    """Linear-phase FIR band-pass (Kaiser window) that generates one band's oscillation.

    The transitions (:data:`BAND_TRANSITION` of the band's width each, at least
    :data:`BAND_STOP_DB` down outside them) lie inside the band ``(lo, hi)``: the oscillation has
    no power outside its band, so a band's power as a 1 s spectrogram measures it is not mixed
    with its neighbours' beyond the spectrogram's own window leakage (a third-order Butterworth
    leaks several percent of each band's power into the next).

    Examples
    --------
    >>> h = band_fir((1.0, 4.0), 2000.0)
    >>> from scipy.signal import freqz
    >>> f, resp = freqz(h, worN=[0.5, 0.99, 2.5, 4.01, 5.0], fs=2000.0)
    >>> (20 * np.log10(np.abs(resp))).round(0).tolist()  # in band ~0 dB, at and beyond its edges < -60 dB
    [-70.0, -76.0, -0.0, -73.0, -76.0]
    """
    lo, hi = band
    width = (hi - lo) * BAND_TRANSITION
    numtaps, beta = signal.kaiserord(BAND_STOP_DB, width / (0.5 * fs))
    numtaps |= 1  # odd: a type I filter, integer group delay
    return signal.firwin(numtaps, [lo + width / 2, hi - width / 2], window=("kaiser", beta), pass_zero=False, fs=fs)


def _impulse_variance(sos, n):
    imp = np.zeros(n)
    imp[0] = 1.0
    return float(np.sum(signal.sosfilt(sos, imp) ** 2))


def _draw_bad(rng, n_per_implant: int, n_implants: int) -> dict:
    """{channel: kind}, channels numbered across implants; at most half of an implant's contacts."""
    bad = {}
    for i in range(n_implants):
        hit = np.flatnonzero(rng.random(n_per_implant) < BAD_CHANNEL_RATE)[: n_per_implant // 2]
        kinds = rng.integers(0, len(BAD_KINDS), n_per_implant)
        for k in hit:
            bad[i * n_per_implant + int(k)] = BAD_KINDS[kinds[k]]
    return bad


class LfpStream:
    """Raw LFP of one scan (volts, float32, (n_times, n_channels)), generated in 10-s blocks.

    Reads must go forward (:meth:`read`); going back restarts the stream, so any read pattern
    returns the same samples. Channels are ordered implant by implant, contact 0 (the tip) first.
    See the module docstring for the channels' model.

    Parameters
    ----------
    latents : dict
        :func:`~lfpbold.simulate.signals.simulate_latents` of the scan.
    size : str or Size
    scan_seed : int
    artifact : bool
        Add the MR gradient artifact (:class:`~lfpbold.simulate.artifacts.ArtifactModel`).
    motion : ndarray (n_volumes, 6), optional
        The scan's realignment parameters; they modulate the artifact.
    bad_channels : dict or None, default None
        ``{channel: kind}`` to impose; None draws them from the scan's seed.

    Examples
    --------
    >>> from lfpbold.simulate.signals import simulate_latents
    >>> stream = LfpStream(simulate_latents(3, regions=("M1",)), "small", 3, artifact=False, bad_channels={})
    >>> stream.n_channels, stream.read(0, 2000).shape, stream.bad_channels
    (4, (2000, 4), {})
    """

    def __init__(self, latents: dict, size, scan_seed: int, *, artifact: bool, motion=None, bad_channels=None):
        self.size = SIZES[size] if isinstance(size, str) else size
        self.latents = latents
        self.regions = list(latents["regions"])
        self.seed = int(scan_seed)
        self.artifact = bool(artifact)
        nch = self.size.n_channels
        self.n_channels = nch * len(self.regions)
        self.n_times = self.size.n_times
        self.block = int(round(10 * self.size.fs))  # 10-s generation blocks (fixes the RNG draw sizes)
        fs = self.size.fs
        setup = np.random.default_rng(np.random.SeedSequence([self.seed, 4, 0]))
        self.lags = setup.integers(0, 4, self.n_channels)
        self.gains = setup.uniform(0.9, 1.1, self.n_channels)
        self.dc = setup.normal(0, 2e-4, self.n_channels)
        drawn = _draw_bad(setup, nch, len(self.regions))
        self.bad_channels = dict(drawn if bad_channels is None else {int(k): v for k, v in bad_channels.items()})
        unknown = {v for v in self.bad_channels.values()} - set(BAD_KINDS)
        if unknown:
            raise ValueError(f"bad channel kinds must be among {BAD_KINDS}; got {sorted(unknown)}")
        # Intermittent contacts: 2-6 stretches of 2-10 s each, anywhere in the recording.
        self.bursts = {}
        for ch, kind in self.bad_channels.items():
            if kind == "intermittent":
                n_b = int(setup.integers(2, 7))
                starts = setup.uniform(0, self.size.duration_s - 10, n_b)
                self.bursts[ch] = [(int(s * fs), int((s + setup.uniform(2, 10)) * fs)) for s in np.sort(starts)]
        # Bands: sharp linear-phase FIR band-passes whose whole transition lies inside the band
        # (band_fir), so no band's oscillation reaches into another; the 1/f^2 background is
        # broadband by nature (first-order low-pass).
        self.fir = {b: band_fir(lim, fs) for b, lim in CLASSIC_BANDS.items()}
        self.sos = {"background": signal.butter(1, 1.0, btype="lowpass", fs=fs, output="sos")}
        self.scale = {"background": 1.0 / math.sqrt(_impulse_variance(self.sos["background"], int(20 * fs)))}
        self.scale |= {b: 1.0 / math.sqrt(float(np.sum(h**2))) for b, h in self.fir.items()}
        depth = np.arange(nch) * self.size.contact_spacing_um / 1000.0
        dist = np.abs(depth[:, None] - depth[None, :])
        self.mixing = {b: np.linalg.cholesky(np.exp(-dist / COHERENCE_LENGTH_MM[b])) for b in self.scale}
        times = latents["power_times"]
        self.env = {
            r: CubicSpline(times, np.sqrt(np.stack([lat["power"][b] for b in CLASSIC_BANDS], axis=1)))
            for r, lat in latents["regions"].items()
        }
        self.nominal_rms = math.sqrt(
            sum(v**2 for v in BAND_RMS.values())
            + BACKGROUND_RMS**2
            + CHANNEL_NOISE_RMS**2
            + sum(a**2 / 2 for a in LINE_NOISE.values())
        )
        self.art_model = None
        if self.artifact:
            self.art_model = ArtifactModel(
                self.size,
                self.seed,
                nch,
                len(self.regions),
                motion=motion,
                scale=ARTIFACT_TO_LFP_RMS * self.nominal_rms,
            )
            for ch, kind in self.bad_channels.items():
                if kind == "flat":  # a broken lead picks up nothing
                    self.art_model.weights[:, :, ch] = 0.0
        self._reset()

    def _reset(self):
        self._rng = np.random.default_rng(np.random.SeedSequence([self.seed, 4, 1]))
        nch = self.size.n_channels
        self._zi = {r: {b: np.zeros((s.shape[0], nch, 2)) for b, s in self.sos.items()} for r in self.regions}
        self._fir_tail = {r: {b: np.zeros((nch, h.size - 1)) for b, h in self.fir.items()} for r in self.regions}
        self._tail = {r: np.zeros((nch, 4)) for r in self.regions}
        self._pos = 0
        self._blocks = []  # (start, array)

    def _next_block(self) -> np.ndarray:
        size, fs = self.size, self.size.fs
        n0 = self._pos
        n = min(self.block, self.n_times - n0)
        t = (n0 + np.arange(n)) / fs
        out = np.empty((n, self.n_channels), dtype=np.float32)
        nch = size.n_channels
        mains = sum(a * np.sin(2 * np.pi * f0 * t) for f0, a in LINE_NOISE.items())
        for ri, r in enumerate(self.regions):
            env = self.env[r](t)
            local = np.zeros((nch, n))
            for b in (*CLASSIC_BANDS, "background"):
                white = self._rng.standard_normal((nch, n))
                if b == "background":
                    y, self._zi[r][b] = signal.sosfilt(self.sos[b], white, axis=-1, zi=self._zi[r][b])
                else:  # streamed FIR: overlap-add, the convolution's tail carried into the next block
                    h = self.fir[b]
                    full = signal.oaconvolve(white, h[None, :], axes=-1)
                    full[:, : h.size - 1] += self._fir_tail[r][b]
                    y, self._fir_tail[r][b] = full[:, :n], full[:, n:]
                y = self.mixing[b] @ y
                y *= self.scale[b]
                if b == "background":
                    local += BACKGROUND_RMS * y
                else:
                    local += env[:, list(CLASSIC_BANDS).index(b)] * y
            local += mains
            ext = np.concatenate([self._tail[r], local], axis=1)
            self._tail[r] = ext[:, -4:]
            noise = self._rng.standard_normal((n, nch), dtype=np.float32) * np.float32(CHANNEL_NOISE_RMS)
            extra = self._rng.standard_normal((n, nch), dtype=np.float32)  # for bad contacts
            for k in range(nch):
                ch = ri * nch + k
                lag = self.lags[ch]
                out[:, ch] = self.gains[ch] * ext[k, 4 - lag : 4 - lag + n] + self.dc[ch]
            out[:, ri * nch : (ri + 1) * nch] += noise
            for k in range(nch):
                ch = ri * nch + k
                kind = self.bad_channels.get(ch)
                if kind == "flat":
                    out[:, ch] = self.dc[ch] + 1e-7 * extra[:, k]
                elif kind == "noisy":
                    out[:, ch] += NOISY_RMS * extra[:, k] + 20 * mains.astype(np.float32)
                elif kind == "intermittent":
                    for a, b in self.bursts[ch]:
                        lo, hi = max(a, n0), min(b, n0 + n)
                        if hi > lo:
                            out[lo - n0 : hi - n0, ch] += BURST_RMS * extra[lo - n0 : hi - n0, k] + 5 * BURST_RMS
        if self.art_model is not None:
            self.art_model.add(out, n0)
        self._pos += n
        return out

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``start:stop`` of all channels."""
        stop = min(stop, self.n_times)
        if self._blocks and start < self._blocks[0][0] or (not self._blocks and start < self._pos):
            self._reset()
        while self._pos < stop:
            self._blocks.append((self._pos, self._next_block()))
        parts = [
            arr[max(start - b0, 0) : max(min(stop - b0, arr.shape[0]), 0)]
            for b0, arr in self._blocks
            if b0 + arr.shape[0] > start and b0 < stop
        ]
        self._blocks = [(b0, arr) for b0, arr in self._blocks if b0 + arr.shape[0] > stop]
        return np.concatenate(parts, axis=0) if parts else np.empty((0, self.n_channels), np.float32)
