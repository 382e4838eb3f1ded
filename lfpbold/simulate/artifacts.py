"""The MR gradient artifact in the LFP: one slice's waveform, its schedule, and adding it to the data.

Every EPI slice induces the same voltage waveform in every contact (scaled by a per-channel
gain), locked to the slice triggers with +-1 sample onset jitter and +-2 % amplitude jitter, so
that template regression (:func:`lfpbold.plugins.lfp_cleaning.template_regression`) has the
structure it relies on, and no more.
"""

from __future__ import annotations

import numpy as np

from lfpbold.simulate.signals import slice_onsets
from lfpbold.simulate.sizes import Size

__all__ = ["ARTIFACT_TO_LFP_RMS", "gradient_artifact_waveform", "slice_schedule", "add_gradient_artifact"]

ARTIFACT_TO_LFP_RMS = 150.0  # gradient artifact RMS / nominal LFP RMS (times the channel gain, 0.8-1.2)


def gradient_artifact_waveform(size: Size) -> np.ndarray:
    """One slice acquisition's gradient artifact (unit RMS), in LFP samples.

    The induced voltage is the time derivative of an EPI slice's gradient waveform (slice-select
    trapezoid, rephaser, a train of ``readout_lines`` alternating readout lobes with
    phase-encode blips, spoiler), plus a little of the gradient itself (the "ramps"), computed
    at 8x the sampling rate and averaged down (the amplifier's anti-alias filter).

    Examples
    --------
    >>> from lfpbold.simulate.sizes import SIZES
    >>> w = gradient_artifact_waveform(SIZES["small"])  # 0.1 s slices at 2 kHz, 2 samples short
    >>> w.size, round(float(np.sqrt(np.mean(w**2))), 6)
    (198, 1.0)
    """
    os_ = 8
    dur = size.t_r / size.n_slices
    n = int(np.floor(dur * size.fs)) - 2
    t = (np.arange(n * os_) + 0.5) / (size.fs * os_) / dur  # fraction of the slice duration
    g = np.zeros_like(t)

    def trap(t0, t1, a, ramp):
        up = np.clip((t - t0) / ramp, 0, 1)
        down = np.clip((t1 - t) / ramp, 0, 1)
        return a * np.minimum(up, down)

    g += trap(0.03, 0.12, 1.0, 0.012) + trap(0.125, 0.17, -0.6, 0.008)
    lines = size.readout_lines
    edges = np.linspace(0.2, 0.82, lines + 1)
    lobe = edges[1] - edges[0]
    for m in range(lines):
        g += trap(edges[m] + 0.02 * lobe, edges[m + 1] - 0.02 * lobe, 0.8 * (-1) ** m, 0.2 * lobe)
        g += trap(edges[m + 1] - 0.1 * lobe, edges[m + 1] + 0.1 * lobe, 0.08, 0.05 * lobe)
    g += trap(0.85, 0.95, 1.2, 0.015)
    art = np.gradient(g) * os_ * 20 + 0.5 * g
    art = art.reshape(n, os_).mean(1)
    taper = np.ones(n)
    k = max(2, n // 100)
    taper[:k] = taper[-k:][::-1] = np.sin(np.linspace(0, np.pi / 2, k)) ** 2
    art = (art - art.mean()) * taper
    return art / np.sqrt(np.mean(art**2))


def slice_schedule(size: Size, scan_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """First LFP sample and amplitude of every slice's artifact in one scan.

    The slice triggers (:func:`lfpbold.simulate.signals.slice_onsets`) with +-1 sample onset
    jitter and +-2 % amplitude jitter, from the scan's own random stream, so that switching the
    artifact on or off leaves every other sample of the LFP unchanged.

    Examples
    --------
    >>> from lfpbold.simulate.sizes import SIZES
    >>> starts, amps = slice_schedule(SIZES["small"], scan_seed=3)
    >>> starts.size, bool(abs(starts[0] - 80_000) <= 1), bool(abs(amps - 1).max() <= 0.02)
    (3000, True, True)
    """
    starts = np.round(slice_onsets(size) * size.fs).astype(np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([int(scan_seed), 5]))
    return starts + rng.integers(-1, 2, starts.size), 1.0 + rng.uniform(-0.02, 0.02, starts.size)


def add_gradient_artifact(
    out: np.ndarray,
    n0: int,
    *,
    waveform: np.ndarray,
    slice_starts: np.ndarray,
    slice_amps: np.ndarray,
    channel_amps: np.ndarray,
) -> None:
    """Add, in place, every slice's artifact that overlaps ``out`` (samples ``n0:n0 + len(out)``).

    A slice that starts before the block and runs into it contributes its tail, so blocks can be
    generated one after the other with no seam.

    Examples
    --------
    >>> out = np.zeros((6, 2), dtype=np.float32)
    >>> add_gradient_artifact(out, 10, waveform=np.array([1.0, -1.0, 2.0]), slice_starts=np.array([8, 13]),
    ...                       slice_amps=np.array([1.0, 0.5]), channel_amps=np.array([1.0, -2.0]))
    >>> out[:, 0].tolist(), out[:, 1].tolist()
    ([2.0, 0.0, 0.0, 0.5, -0.5, 1.0], [-4.0, 0.0, 0.0, -1.0, 1.0, -2.0])
    """
    length = waveform.size
    n1 = n0 + out.shape[0]
    first = np.searchsorted(slice_starts, n0 - length, side="right")
    last = np.searchsorted(slice_starts, n1, side="left")
    acc = np.zeros(out.shape[0])
    for s, a in zip(slice_starts[first:last], slice_amps[first:last], strict=True):
        lo, hi = max(s, n0), min(s + length, n1)
        if hi > lo:
            acc[lo - n0 : hi - n0] += a * waveform[lo - s : hi - s]
    if acc.any():
        out += (acc[:, None] * channel_amps[None, :]).astype(np.float32)
