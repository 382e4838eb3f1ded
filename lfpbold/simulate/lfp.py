"""The raw LFP of one scan, generated block by block so that a paper-size scan never sits in memory.

:class:`LfpStream` turns the band powers of :func:`lfpbold.simulate.signals.simulate_latents`
into multichannel voltages (background, band oscillations, mains, channel noise and, optionally,
the MR gradient artifact of :mod:`lfpbold.simulate.artifacts`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal
from scipy.interpolate import CubicSpline

from lfpbold.constants import CLASSIC_BANDS
from lfpbold.simulate.artifacts import (
    ARTIFACT_TO_LFP_RMS,
    add_gradient_artifact,
    gradient_artifact_waveform,
    slice_schedule,
)
from lfpbold.simulate.signals import BAND_RMS
from lfpbold.simulate.sizes import SIZES

__all__ = ["BACKGROUND_RMS", "CHANNEL_NOISE_RMS", "LINE_NOISE", "LfpStream"]

BACKGROUND_RMS = 50e-6  # 1/f^2 background (corner 1 Hz), volts
CHANNEL_NOISE_RMS = 3e-6  # independent white noise per channel, volts
LINE_NOISE = {60.0: 3e-6, 120.0: 1.5e-6, 180.0: 1e-6}  # mains amplitude (V) per harmonic


def _impulse_variance(sos, n):
    imp = np.zeros(n)
    imp[0] = 1.0
    return float(np.sum(signal.sosfilt(sos, imp) ** 2))


class LfpStream:
    """Raw LFP of one scan (volts, float32, (n_times, n_channels)), generated in 10-s blocks.

    Reads must go forward (:meth:`read`); going back restarts the stream, so any read pattern
    returns the same samples. Channels are ordered implant by implant, contact 0 (the tip) first.
    Per implant: a common signal (1/f^2 background + band oscillations whose power follows
    ``latents`` + mains) seen by every contact with a small lag (0-3 samples) and gain, plus
    independent white noise per contact, a DC offset and, with ``artifact``, the MR gradient
    artifact locked to the slice triggers (one fixed waveform, +-1 sample onset jitter and
    +-2 % amplitude jitter per slice, a fixed gain per channel; only during the scan).

    Examples
    --------
    >>> from lfpbold.simulate.signals import simulate_latents
    >>> stream = LfpStream(simulate_latents(3, regions=("M1",)), "small", 3, artifact=False)
    >>> stream.n_channels, stream.read(0, 2000).shape
    (4, (2000, 4))
    """

    def __init__(self, latents: dict, size, scan_seed: int, *, artifact: bool):
        self.size = SIZES[size] if isinstance(size, str) else size
        self.latents = latents
        self.regions = list(latents["regions"])
        self.seed = int(scan_seed)
        self.artifact = bool(artifact)
        self.n_channels = self.size.n_channels * len(self.regions)
        self.n_times = self.size.n_times
        self.block = int(round(10 * self.size.fs))  # 10-s generation blocks (fixes the RNG draw sizes)
        fs = self.size.fs
        setup = np.random.default_rng(np.random.SeedSequence([self.seed, 4, 0]))
        self.lags = setup.integers(0, 4, self.n_channels)
        self.gains = setup.uniform(0.9, 1.1, self.n_channels)
        self.dc = setup.normal(0, 2e-4, self.n_channels)
        self.art_gain = setup.uniform(0.8, 1.2, self.n_channels) * np.where(setup.random(self.n_channels) < 0.5, -1, 1)
        self.sos = {b: signal.butter(3, lim, btype="bandpass", fs=fs, output="sos") for b, lim in CLASSIC_BANDS.items()}
        self.sos["background"] = signal.butter(1, 1.0, btype="lowpass", fs=fs, output="sos")
        n_imp = int(20 * fs)
        self.scale = {b: 1.0 / math.sqrt(_impulse_variance(s, n_imp)) for b, s in self.sos.items()}
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
        self.waveform = gradient_artifact_waveform(self.size)
        self.art_amp = ARTIFACT_TO_LFP_RMS * self.nominal_rms
        self.slice_starts, self.slice_amps = slice_schedule(self.size, self.seed)
        self._reset()

    def _reset(self):
        self._rng = np.random.default_rng(np.random.SeedSequence([self.seed, 4, 1]))
        self._zi = {r: {b: signal.sosfilt_zi(s) * 0.0 for b, s in self.sos.items()} for r in self.regions}
        self._tail = {r: np.zeros(4) for r in self.regions}
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
            white = self._rng.standard_normal((len(self.sos), n))
            env = self.env[r](t)
            common = mains.copy()
            for (b, sos), wn in zip(self.sos.items(), white, strict=True):
                y, self._zi[r][b] = signal.sosfilt(sos, wn, zi=self._zi[r][b])
                y *= self.scale[b]
                if b == "background":
                    common += BACKGROUND_RMS * y
                else:
                    common += env[:, list(CLASSIC_BANDS).index(b)] * y
            ext = np.concatenate([self._tail[r], common])
            self._tail[r] = ext[-4:]
            noise = self._rng.standard_normal((n, nch), dtype=np.float32) * np.float32(CHANNEL_NOISE_RMS)
            for k in range(nch):
                ch = ri * nch + k
                lag = self.lags[ch]
                out[:, ch] = self.gains[ch] * ext[4 - lag : 4 - lag + n] + self.dc[ch]
            out[:, ri * nch : (ri + 1) * nch] += noise
        if self.artifact:
            add_gradient_artifact(
                out,
                n0,
                waveform=self.waveform,
                slice_starts=self.slice_starts,
                slice_amps=self.slice_amps,
                channel_amps=self.art_amp * self.art_gain,
            )
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
