"""What every method of every analysis step promises, written once, and a check that it keeps the promise.

Each step (:data:`STEPS`) has a contract: a :class:`typing.Protocol` (:data:`CONTRACTS`) whose
``__call__`` is the call the schema layer makes, with shapes, units and invariants in its
docstring. :func:`check_method` runs one installed method on small synthetic inputs and returns
its problems in plain words, scikit-learn ``estimator_checks`` style: an empty list means the
method conforms. :func:`check_all` does that for every installed method (entry points of every
installed package and in-process :func:`~lfpbold.plugins.register` ones), and so does
``lfpbold plugins --check``. A lab checks its own method before registering it with
:func:`check_function`.

The checks are about form, not science: the right types, shapes and dtypes, finite output for
finite input, inputs left unmodified, and the few invariants every method of a step shares (a
sign convention, a unit). How a method answers bad input is its own affair and is not checked.

A method may declare the range of its values with a function attribute ``output_range = (low,
high)``; the check then holds it to that range. The correlation methods declare ``(-1.0, 1.0)``,
the mutual-information ones ``(0.0, inf)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from . import PluginNotFoundError, available, get_plugin
from .hrf import accepts_delays

__all__ = [
    "STEPS",
    "CONTRACTS",
    "check_method",
    "check_function",
    "check_all",
    "combine_result",
    "LfpCleaning",
    "ChannelCombine",
    "BandPower",
    "Hrf",
    "MotionScreening",
    "BoldPreprocessing",
    "CorrelationMap",
    "TemporalMetric",
    "LaggedCorrelation",
    "LfpRemoval",
]

#: The analysis steps, in pipeline order, with what a method of each does.
STEPS: dict[str, str] = {
    "lfp_cleaning": "remove MR gradient artifacts from one raw LFP channel",
    "channel_combine": "combine a probe's channels into one LFP signal, with each channel's lag",
    "band_power": "power of LFP frequency bands over time, from one channel",
    "hrf": "haemodynamic response kernel sampled every dt seconds",
    "motion_screening": "which BOLD volumes to keep, or whether to exclude the run, from head motion",
    "bold_preprocessing": "realigned 4-D BOLD to cleaned brain-voxel time series",
    "correlation_map": "each seed time series against every brain voxel (seed and power maps)",
    "temporal_metric": "one number relating HRF-convolved band power to a scan's local BOLD",
    "lagged_correlation": "correlation of two series over a range of lags (positive: y lags x)",
    "lfp_removal": "remove LFP-related signal from BOLD, or drop the volumes it marks",
}


# ----------------------------------------------------------------------------------------------
# The contracts. Data arguments are positional-only, so a method may name them as it likes;
# keyword arguments are called by name and must be spelled as here.


class LfpCleaning(Protocol):
    """Step ``lfp_cleaning``: remove MR gradient artifacts from one raw LFP channel.

    Parameters
    ----------
    lfp : ndarray of shape (n_times,), float64
        One raw channel in volts.
    sfreq : float
        Sampling rate in Hz.
    slice_onsets : ndarray of shape (n_slices,)
        Slice trigger times in seconds on the LFP's clock (sample 0 is 0 s), increasing.
    **params
        The method's own parameters (from its parameter set). The notch keys ``line_freq``
        (Hz, or None), ``notch_max_hz`` and ``notch_slice_rate`` belong to the pipeline:
        ``CleanLFP`` (:func:`lfpbold.lfp.clean_implant`) notches the mains and slice-rate
        harmonics they name after decimation, at the output rate, for every method, taking
        the method's signature defaults for keys its parameter set leaves out. It calls the
        method with ``line_freq=None, notch_slice_rate=False`` when the method takes them (by
        name or ``**params``), which must then mean no notch in the method, and without any
        notch key otherwise. A method may still notch when called directly with them.

    Returns
    -------
    cleaned : ndarray of shape (n_times,), float
        Finite wherever ``lfp`` is; ``lfp`` itself is not modified.
    """

    def __call__(self, lfp: np.ndarray, sfreq: float, /, *, slice_onsets: np.ndarray, **params: Any) -> np.ndarray: ...


class ChannelCombine(Protocol):
    """Step ``channel_combine``: combine a probe's channels into one LFP signal.

    Parameters
    ----------
    lfp : ndarray of shape (n_channels, n_times)
        One probe's (cleaned) channels, volts.
    sfreq : float
        Sampling rate in Hz.

    Returns
    -------
    combined : ndarray of shape (n_times,), float
    lags : ndarray of shape (n_channels,), integer
        Samples each channel was shifted by before combining (all 0 when none is); positive
        means the channel lags the reference.
    excluded : dict, optional third element
        ``{channel index (row of lfp): reason}`` of the channels left out of the combination
        (e.g. ``"flat"``, ``"noisy"``, ``"intermittent"``); ``CleanLFP.Channel`` records it. A
        method that returns only ``(combined, lags)`` left no channel out.
    """

    def __call__(self, lfp: np.ndarray, sfreq: float, /, **params: Any) -> tuple: ...


def combine_result(out, n_channels: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(combined, lags, excluded)`` from what a ``channel_combine`` method returned.

    Accepts the two-element ``(combined, lags)`` of methods that leave no channel out, and
    checks that ``excluded`` names rows of the input with a text reason.

    Examples
    --------
    >>> combine_result((np.zeros(3), np.zeros(2, int)), 2)[2]
    {}
    >>> combine_result((np.zeros(3), np.zeros(2, int), {1: "flat"}), 2)[2]
    {1: 'flat'}
    """
    if not isinstance(out, (tuple, list)) or len(out) not in (2, 3):
        got = f"a {type(out).__name__} of {len(out)}" if isinstance(out, (tuple, list)) else type(out).__name__
        raise TypeError(f"channel_combine: expected a tuple (combined, lags[, excluded]); got {got}")
    excluded = out[2] if len(out) == 3 else {}
    if not isinstance(excluded, dict):
        raise TypeError(f"channel_combine: excluded must be a dict {{channel: reason}}; got {type(excluded).__name__}")
    clean = {}
    for ch, reason in excluded.items():
        if isinstance(ch, bool) or not isinstance(ch, (int, np.integer)) or not 0 <= int(ch) < n_channels:
            raise ValueError(f"channel_combine: excluded names channel {ch!r}; expected a row 0..{n_channels - 1}")
        if not isinstance(reason, str) or not reason:
            raise ValueError(f"channel_combine: excluded channel {ch}: the reason must be a non-empty string")
        clean[int(ch)] = reason
    return out[0], out[1], clean


class BandPower(Protocol):
    """Step ``band_power``: power time series of frequency bands from one LFP channel.

    Parameters
    ----------
    lfp : ndarray of shape (n_times,)
        One (combined) channel, volts.
    sfreq : float
        Sampling rate in Hz.
    bands : sequence of (low_hz, high_hz)
        The bands, in Hz.

    Returns
    -------
    power : ndarray of shape (n_bands, n_windows), float
        Non-negative; rows in the order of ``bands``, so a sine's power lands in the band
        holding its frequency.
    times : ndarray of shape (n_windows,), float
        Window centres in seconds from sample 0, strictly increasing, within the recording.
    """

    def __call__(
        self, lfp: np.ndarray, sfreq: float, /, *, bands: Sequence[tuple[float, float]], **params: Any
    ) -> tuple[np.ndarray, np.ndarray]: ...


class Hrf(Protocol):
    """Step ``hrf``: a haemodynamic response kernel.

    Parameters
    ----------
    dt : float
        Seconds between the kernel's samples (the band-power step or the TR).
    response_delay, undershoot_delay : float, optional
        Seconds. A method that the HRF sensitivity analysis can sweep
        (:func:`~lfpbold.plugins.temporal.hrf_sweep`) names both as parameters
        (:func:`~lfpbold.plugins.hrf.accepts_delays`); a later response delay moves the
        kernel's peak later.

    Returns
    -------
    kernel : ndarray of shape (n,), float
        Finite, sample 0 at lag 0 s, one sample every ``dt`` seconds: the same response at two
        values of ``dt`` peaks at the same time.
    """

    def __call__(self, dt: float, /, **params: Any) -> np.ndarray: ...


class MotionScreening(Protocol):
    """Step ``motion_screening``: which BOLD volumes to keep, or whether to leave the run out.

    Parameters
    ----------
    motion : ndarray of shape (T, 6)
        Realignment parameters (:data:`lfpbold.constants.MOTION_COLUMNS`): mm, then radians.
    state : str
        The animal's state during the run (:data:`lfpbold.constants.STATES`).
    **params
        The method's own parameters (from its parameter set).

    Returns
    -------
    result : dict
        ``fd`` : ndarray of shape (T,), float, non-negative
            The motion trace the decision rests on (e.g. framewise displacement, mm).
        ``keep`` : ndarray of shape (T,), bool
            Volumes kept (scrubbing removes the others).
        ``excluded`` : bool
            True leaves the whole run out of every analysis.
        ``reason`` : str
            Why the run is excluded, in plain words ("" when it is kept).
    """

    def __call__(self, motion: np.ndarray, /, *, state: str, **params: Any) -> dict: ...


class BoldPreprocessing(Protocol):
    """Step ``bold_preprocessing``: realigned 4-D BOLD to cleaned brain-voxel time series.

    Parameters
    ----------
    bold : ndarray of shape (X, Y, Z, T)
        Realigned BOLD in atlas space.
    t_r : float
        Repetition time in seconds.
    brain_mask, wm_mask, ventricle_mask : ndarray of shape (X, Y, Z), bool
    affine : ndarray of shape (4, 4)
        Voxel-to-mm affine.
    motion : ndarray of shape (T, 6)
        Realignment parameters (:data:`lfpbold.constants.MOTION_COLUMNS`).
    sample_mask : ndarray of shape (T,), bool, or None
        Volumes to keep (True); None keeps all.

    Returns
    -------
    cleaned : ndarray of shape (n_kept, n_brain_voxels), float
        ``n_kept = sample_mask.sum()`` (T without a mask); voxels in ``bold[brain_mask]`` order.
    """

    def __call__(
        self,
        bold: np.ndarray,
        /,
        *,
        t_r: float,
        brain_mask: np.ndarray,
        affine: np.ndarray,
        motion: np.ndarray,
        wm_mask: np.ndarray,
        ventricle_mask: np.ndarray,
        sample_mask: np.ndarray | None,
        **params: Any,
    ) -> np.ndarray: ...


class CorrelationMap(Protocol):
    """Step ``correlation_map``: the relationship of seed time series with every voxel.

    Parameters
    ----------
    seed : ndarray of shape (n_timepoints,) or (n_seeds, n_timepoints)
        ROI-mean BOLD (seed map) or HRF-convolved band power (power map).
    data : ndarray of shape (n_timepoints, n_voxels)
        Preprocessed BOLD in brain-mask order.

    Returns
    -------
    values : ndarray of shape (n_voxels,) or (n_seeds, n_voxels), float
        Row *k* of the 2-D answer is the answer for seed *k* alone. Within the method's
        declared ``output_range`` (a correlation: [-1, 1]).
    """

    def __call__(self, seed: np.ndarray, data: np.ndarray, /, **params: Any) -> np.ndarray: ...


class TemporalMetric(Protocol):
    """Step ``temporal_metric``: one number relating two time series of a scan.

    Parameters
    ----------
    x : ndarray of shape (n,)
        HRF-convolved band power at the volumes.
    y : ndarray of shape (n,)
        Local (ROI-mean) BOLD.

    Returns
    -------
    value : float
        A Python or numpy float scalar (not an array), within the declared ``output_range``;
        finite for finite, non-constant series (NaN may stand for "undefined", e.g. a constant
        series, so that the scan drops out of group tests).
    """

    def __call__(self, x: np.ndarray, y: np.ndarray, /, **params: Any) -> float: ...


class LaggedCorrelation(Protocol):
    """Step ``lagged_correlation``: correlation of two series over a range of lags.

    Parameters
    ----------
    x, y : ndarray of shape (n,)
        Sampled every ``t_r`` seconds (band power and BOLD at the volumes).
    t_r : float
        Seconds between samples.
    max_lag_s : float
        Largest lag in seconds.

    Returns
    -------
    lags_s : ndarray of shape (n_lags,), float
        Strictly increasing, within ``±max_lag_s``. A positive lag means ``y`` lags ``x``: if
        ``y`` is ``x`` delayed by *d* seconds, ``r`` peaks at ``+d``.
    r : ndarray of shape (n_lags,), float
        Within the declared ``output_range``.
    """

    def __call__(
        self, x: np.ndarray, y: np.ndarray, /, *, t_r: float, max_lag_s: float, **params: Any
    ) -> tuple[np.ndarray, np.ndarray]: ...


class LfpRemoval(Protocol):
    """Step ``lfp_removal``: remove LFP-related signal from BOLD, or drop the volumes it marks.

    Parameters
    ----------
    data : ndarray of shape (n_timepoints, n_voxels)
        Preprocessed BOLD.
    regressors : ndarray of shape (n_timepoints, n_bands)
        HRF-convolved band power at the volumes, bands in :data:`lfpbold.constants.CLASSIC_BANDS`
        order when there are five.

    Returns
    -------
    cleaned : ndarray of shape (n_kept, n_voxels), float
        The kept rows only: ``n_kept = keep.sum()``.
    keep : ndarray of shape (n_timepoints,), bool
        Which volumes ``cleaned`` holds.
    """

    def __call__(self, data: np.ndarray, regressors: np.ndarray, /, **params: Any) -> tuple[np.ndarray, np.ndarray]: ...


#: Each step's contract.
CONTRACTS: dict[str, type] = {
    "lfp_cleaning": LfpCleaning,
    "channel_combine": ChannelCombine,
    "band_power": BandPower,
    "hrf": Hrf,
    "motion_screening": MotionScreening,
    "bold_preprocessing": BoldPreprocessing,
    "correlation_map": CorrelationMap,
    "temporal_metric": TemporalMetric,
    "lagged_correlation": LaggedCorrelation,
    "lfp_removal": LfpRemoval,
}


# ----------------------------------------------------------------------------------------------
# The conformance check


class _Failed(Exception):
    """A problem that makes the rest of a step's check meaningless (already recorded)."""


class _Checker:
    """Runs one method and records its problems in plain words."""

    def __init__(self, func: Callable, params: dict) -> None:
        self.func = func
        self.params = params
        self.problems: list[str] = []

    def call(self, call_text: str, args: tuple, kwargs: dict, arrays: dict[str, np.ndarray]):
        """``func(*args, **params, **kwargs)`` (the check's own keywords win); records an exception or an
        input modified in place."""
        before = {name: np.array(a, copy=True) for name, a in arrays.items()}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a method's warnings about synthetic data are not its problems
                out = self.func(*args, **{**self.params, **kwargs})
        except Exception as exc:  # noqa: BLE001 - any exception on valid input is the finding
            hint = f" (the step calls it as {call_text})" if isinstance(exc, TypeError) else ""
            self.problems.append(f"raised {type(exc).__name__} on valid input: {exc}{hint}")
            raise _Failed from None
        for name, a in arrays.items():
            if not np.array_equal(a, before[name]):
                self.problems.append(f"modified its input {name} in place")
        return out

    def unpack(self, out, names: tuple[str, ...]) -> tuple:
        if not isinstance(out, (tuple, list)) or len(out) != len(names):
            got = f"a {type(out).__name__} of {len(out)}" if isinstance(out, (tuple, list)) else type(out).__name__
            self.problems.append(f"expected a tuple ({', '.join(names)}); got {got}")
            raise _Failed
        return tuple(out)

    def array(self, value, what: str, shape: tuple, layout: str, *, kind: str = "f") -> np.ndarray:
        """Check type, shape (None = any length), dtype kind and, for floats, finiteness."""
        if not isinstance(value, np.ndarray):
            self.problems.append(f"{what}: expected a numpy array of shape {layout}; got {type(value).__name__}")
            raise _Failed
        if value.ndim != len(shape) or any(s is not None and s != v for s, v in zip(shape, value.shape, strict=True)):
            if all(s is None for s in shape):
                self.problems.append(f"{what}: expected a {len(shape)}-D array {layout}; got shape {value.shape}")
            else:
                wanted = ", ".join("any" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "")
                self.problems.append(f"{what}: expected shape {layout} = ({wanted}); got {value.shape}")
            raise _Failed
        if value.dtype.kind not in kind:
            wanted = {"f": "floating-point values", "b": "bool", "iu": "integers"}[kind]
            self.problems.append(f"{what}: expected {wanted}; got dtype {value.dtype}")
            raise _Failed
        if kind == "f" and not np.isfinite(value).all():
            n_bad = int((~np.isfinite(value)).sum())
            self.problems.append(f"{what}: expected finite values for finite input; got {n_bad} NaN or inf")
            raise _Failed
        return value

    def in_range(self, values, what: str) -> None:
        """Hold the values to the method's declared ``output_range``, if it declares one."""
        bounds = getattr(self.func, "output_range", None)
        if bounds is None:
            return
        low, high = bounds
        values = np.asarray(values, dtype=float)
        tol = 1e-9
        if np.any(values < low - tol) or np.any(values > high + tol):
            got = f"{values.min():.6g}" if values.min() == values.max() else f"{values.min():.6g} to {values.max():.6g}"
            self.problems.append(
                f"{what}: expected values in [{low:g}, {high:g}] (the method's output_range); got {got}"
            )

    def expect(self, condition: bool, message: str) -> None:
        if not condition:
            self.problems.append(message)


def _smooth_noise(rng, n: int, width: int = 5) -> np.ndarray:
    return np.convolve(rng.standard_normal(n + width - 1), np.ones(width) / width, "valid")


def _check_lfp_cleaning(c: _Checker) -> None:
    rng = np.random.default_rng(0)
    sfreq, n = 1000.0, 12_000
    onsets = np.arange(1.0, 11.0, 0.05)  # 20 slices per second, as the study's scanner
    waveform = np.sin(2 * np.pi * 200 * np.arange(30) / sfreq) * np.hanning(30)
    lfp = 1e-5 * rng.standard_normal(n)
    for s in np.round(onsets * sfreq).astype(int):
        lfp[s : s + 30] += 1e-3 * waveform
    out = c.call(
        "f(lfp, sfreq, slice_onsets=..., **params)",
        (lfp, sfreq),
        {"slice_onsets": onsets},
        {"lfp": lfp, "slice_onsets": onsets},
    )
    c.array(out, "cleaned", (n,), "(n_times,)")


def _check_channel_combine(c: _Checker) -> None:
    rng = np.random.default_rng(1)
    sfreq, n = 1000.0, 3000
    source = _smooth_noise(rng, n + 20)
    lfp = np.stack([source[10 - d : 10 - d + n] for d in (0, 2, -3, 1)]) + 0.1 * rng.standard_normal((4, n))
    out = c.call("f(lfp, sfreq, **params)", (lfp, sfreq), {}, {"lfp": lfp})
    if isinstance(out, (tuple, list)) and len(out) == 3:  # (combined, lags, excluded)
        combined, lags, _ = out
        try:
            combine_result(out, 4)
        except (TypeError, ValueError) as err:
            c.problems.append(str(err).removeprefix("channel_combine: "))
            raise _Failed from None
    else:
        combined, lags = c.unpack(out, ("combined", "lags"))
    c.array(combined, "combined", (n,), "(n_times,)")
    c.array(lags, "lags", (4,), "(n_channels,)", kind="iu")
    c.expect(np.all(np.abs(lags) < n), f"lags: expected shifts shorter than the recording ({n} samples); got {lags}")


def _check_band_power(c: _Checker) -> None:
    rng = np.random.default_rng(2)
    sfreq, duration = 1000.0, 40.0
    t = np.arange(0, duration, 1 / sfreq)
    lfp = 1e-4 * np.sin(2 * np.pi * 60 * t) + 1e-6 * rng.standard_normal(t.size)
    bands = [(1.0, 4.0), (40.0, 100.0)]
    out = c.call("f(lfp, sfreq, bands=[(lo, hi), ...], **params)", (lfp, sfreq), {"bands": bands}, {"lfp": lfp})
    power, times = c.unpack(out, ("power", "times"))
    power = c.array(power, "power", (2, None), "(n_bands, n_windows)")
    times = c.array(times, "times", (power.shape[1],), "(n_windows,)")
    if power.shape[1] == 0:
        c.problems.append(f"power: expected at least one window for a {duration:g} s recording; got none")
        return
    c.expect(np.all(power >= 0), f"power: expected non-negative power; got values down to {power.min():.3g}")
    c.expect(np.all(np.diff(times) > 0), "times: expected strictly increasing window times")
    c.expect(
        times[0] >= 0 and times[-1] <= duration,
        f"times: expected seconds within the recording (0-{duration:g} s); got {times.min():g}-{times.max():g}",
    )
    c.expect(
        np.median(power[1]) > np.median(power[0]),
        "power: a 60 Hz sine should put more power in the 40-100 Hz band (row 1) than in 1-4 Hz (row 0)",
    )


def _hrf_kernel(c: _Checker, dt: float, what: str, **delays) -> np.ndarray:
    out = c.call("f(dt, **params)", (dt,), delays, {})
    kernel = c.array(out, what, (None,), "(n,)")
    c.expect(kernel.size > 0 and np.any(kernel != 0), f"{what}: expected a kernel; got {kernel.size} zeros")
    if not (kernel.size and np.any(kernel != 0)):
        raise _Failed
    return kernel


def _check_hrf(c: _Checker) -> None:
    fine = _hrf_kernel(c, 0.1, "kernel at dt=0.1 s")
    coarse = _hrf_kernel(c, 0.5, "kernel at dt=0.5 s")
    peak_fine, peak_coarse = np.argmax(np.abs(fine)) * 0.1, np.argmax(np.abs(coarse)) * 0.5
    c.expect(
        abs(peak_fine - peak_coarse) <= 0.5,
        f"kernel: expected one sample every dt seconds, so the same peak time at dt=0.1 s and 0.5 s; "
        f"got {peak_fine:g} s and {peak_coarse:g} s",
    )
    if not accepts_delays(c.func):
        return
    early = _hrf_kernel(c, 0.1, "kernel with response_delay=3", response_delay=3.0, undershoot_delay=12.0)
    late = _hrf_kernel(c, 0.1, "kernel with response_delay=6", response_delay=6.0, undershoot_delay=12.0)
    t_early, t_late = np.argmax(np.abs(early)) * 0.1, np.argmax(np.abs(late)) * 0.1
    c.expect(
        t_late > t_early,
        f"kernel: expected a later response_delay (6 s vs 3 s) to move the peak later; "
        f"got peaks at {t_early:g} s and {t_late:g} s",
    )


def _check_motion_screening(c: _Checker) -> None:
    from lfpbold.constants import STATES

    rng = np.random.default_rng(8)
    n_t = 80
    still = np.cumsum(0.002 * rng.standard_normal((n_t, 6)), axis=0)
    moving = still.copy()
    moving[40:, 0] += 1.0  # a 1 mm jump of the head at volume 40
    for state in STATES:
        for what, motion in (("still", still), ("moving", moving)):
            out = c.call("f(motion, state=, **params)", (motion,), {"state": state}, {"motion": motion})
            if not isinstance(out, dict) or not {"fd", "keep", "excluded", "reason"} <= set(out):
                got = sorted(out) if isinstance(out, dict) else type(out).__name__
                c.problems.append(f"expected a dict with fd, keep, excluded and reason; got {got}")
                raise _Failed
            label = f"{state}, {what} head"
            fd = c.array(out["fd"], f"fd ({label})", (n_t,), "(T,)")
            c.expect(bool(np.all(fd >= 0)), f"fd ({label}): expected non-negative values")
            keep = c.array(out["keep"], f"keep ({label})", (n_t,), "(T,)", kind="b")
            c.expect(
                isinstance(out["excluded"], (bool, np.bool_)),
                f"excluded ({label}): expected a bool; got {type(out['excluded']).__name__}",
            )
            c.expect(
                isinstance(out["reason"], str), f"reason ({label}): expected a str; got {type(out['reason']).__name__}"
            )
            if out["excluded"]:
                c.expect(bool(out["reason"]), f"reason ({label}): an excluded run needs a reason; got ''")
            elif what == "still":
                c.expect(bool(keep.any()), f"keep ({label}): a still head kept no volume")


def _check_bold_preprocessing(c: _Checker) -> None:
    rng = np.random.default_rng(3)
    n_t = 60
    bold = (100 + rng.standard_normal((6, 6, 4, n_t))).astype(np.float32)
    brain = np.zeros((6, 6, 4), bool)
    brain[1:5, 1:5, 1:3] = True
    wm = np.zeros_like(brain)
    wm[1, 1:5, 1:3] = True
    ventricles = np.zeros_like(brain)
    ventricles[4, 1:5, 1:3] = True
    motion = 0.01 * rng.standard_normal((n_t, 6))
    n_brain = int(brain.sum())
    call = "f(bold, t_r=, brain_mask=, affine=, motion=, wm_mask=, ventricle_mask=, sample_mask=, **params)"
    for sample_mask in (None, np.arange(n_t) % 20 != 7):
        kwargs = {
            "t_r": 1.0,
            "brain_mask": brain,
            "affine": np.diag([0.5, 0.5, 1.0, 1.0]),
            "motion": motion,
            "wm_mask": wm,
            "ventricle_mask": ventricles,
            "sample_mask": sample_mask,
        }
        arrays = {"bold": bold} | {k: v for k, v in kwargs.items() if isinstance(v, np.ndarray)}
        out = c.call(call, (bold,), kwargs, arrays)
        n_kept = n_t if sample_mask is None else int(sample_mask.sum())
        what = "cleaned" if sample_mask is None else f"cleaned (sample_mask keeping {n_kept} of {n_t} volumes)"
        c.array(out, what, (n_kept, n_brain), "(n_kept, n_brain_voxels)")


def _check_correlation_map(c: _Checker) -> None:
    rng = np.random.default_rng(4)
    n_t, n_vox = 50, 12
    seeds = np.stack([_smooth_noise(rng, n_t) for _ in range(3)])
    data = np.outer(seeds[0], np.linspace(-1, 1, n_vox)) + 0.5 * rng.standard_normal((n_t, n_vox))
    one = c.array(
        c.call("f(seed, data, **params)", (seeds[0], data), {}, {"seed": seeds[0], "data": data}),
        "map of one seed",
        (n_vox,),
        "(n_voxels,)",
    )
    many = c.array(
        c.call("f(seed, data, **params)", (seeds, data), {}, {"seed": seeds, "data": data}),
        "maps of 3 seeds",
        (3, n_vox),
        "(n_seeds, n_voxels)",
    )
    c.in_range(many, "maps")
    c.expect(
        np.allclose(many[0], one, rtol=1e-6, atol=1e-9),
        "maps: expected row 0 of the 3-seed answer to equal the answer for seed 0 alone",
    )


def _check_temporal_metric(c: _Checker) -> None:
    rng = np.random.default_rng(5)
    x = _smooth_noise(rng, 100)
    y = 0.5 * x + _smooth_noise(rng, 100)
    value = c.call("f(x, y, **params)", (x, y), {}, {"x": x, "y": y})
    if isinstance(value, np.ndarray) or not isinstance(value, (float, np.floating)):
        shape = f" of shape {value.shape}" if isinstance(value, np.ndarray) else ""
        c.problems.append(f"expected a float scalar (Python or numpy); got {type(value).__name__}{shape}")
        return
    c.expect(bool(np.isfinite(value)), f"expected a finite value for finite, non-constant series; got {value}")
    c.in_range(value, "value")


def _check_lagged_correlation(c: _Checker) -> None:
    rng = np.random.default_rng(6)
    t_r, max_lag_s, delay = 0.5, 10.0, 3  # y is x delayed by 3 samples = 1.5 s
    source = _smooth_noise(rng, 203)
    x = source[delay:]
    y = source[:-delay] + 0.2 * rng.standard_normal(200)  # y(t) = x(t - 1.5 s)
    out = c.call("f(x, y, t_r=, max_lag_s=, **params)", (x, y), {"t_r": t_r, "max_lag_s": max_lag_s}, {"x": x, "y": y})
    lags, r = c.unpack(out, ("lags_s", "r"))
    lags = c.array(lags, "lags_s", (None,), "(n_lags,)")
    r = c.array(r, "r", lags.shape, "(n_lags,)")
    if lags.size == 0:
        c.problems.append("lags_s: expected at least one lag; got none")
        return
    c.expect(np.all(np.diff(lags) > 0), "lags_s: expected strictly increasing lags")
    c.expect(
        np.all(np.abs(lags) <= max_lag_s + 1e-9),
        f"lags_s: expected lags within ±max_lag_s = ±{max_lag_s:g} s; got {lags.min():g} to {lags.max():g} s",
    )
    c.in_range(r, "r")
    peak = float(lags[np.argmax(r)])
    c.expect(
        abs(peak - delay * t_r) <= t_r,
        f"r: y is x delayed by {delay * t_r:g} s, so with positive lag = y lags x the peak belongs at "
        f"+{delay * t_r:g} s; got {peak:+g} s",
    )


def _check_lfp_removal(c: _Checker) -> None:
    rng = np.random.default_rng(7)
    n_t, n_vox = 60, 8
    regressors = np.column_stack([_smooth_noise(rng, n_t) for _ in range(5)])
    data = regressors @ rng.standard_normal((5, n_vox)) + rng.standard_normal((n_t, n_vox))
    out = c.call("f(data, regressors, **params)", (data, regressors), {}, {"data": data, "regressors": regressors})
    cleaned, keep = c.unpack(out, ("cleaned", "keep"))
    keep = c.array(keep, "keep", (n_t,), "(n_timepoints,)", kind="b")
    c.array(cleaned, "cleaned", (int(keep.sum()), n_vox), "(keep.sum(), n_voxels)")


_CHECKS: dict[str, Callable[[_Checker], None]] = {
    "lfp_cleaning": _check_lfp_cleaning,
    "channel_combine": _check_channel_combine,
    "band_power": _check_band_power,
    "hrf": _check_hrf,
    "motion_screening": _check_motion_screening,
    "bold_preprocessing": _check_bold_preprocessing,
    "correlation_map": _check_correlation_map,
    "temporal_metric": _check_temporal_metric,
    "lagged_correlation": _check_lagged_correlation,
    "lfp_removal": _check_lfp_removal,
}


def _known_step(step: str) -> None:
    if step not in _CHECKS:
        raise ValueError(f"Expected one of the steps with a contract ({', '.join(STEPS)}); got {step!r}")


def check_function(step: str, func: Callable, *, params: dict | None = None) -> list[str]:
    """Run a function through ``step``'s contract; its problems in plain words ([] if it conforms).

    Parameters
    ----------
    step : str
        One of :data:`STEPS`.
    func : callable
        The method, registered or not.
    params : dict, optional
        Keyword arguments passed on every call, as a parameter set would.

    Returns
    -------
    problems : list of str

    Raises
    ------
    ValueError
        If ``step`` has no contract.

    Examples
    --------
    >>> check_function("temporal_metric", lambda x, y: np.corrcoef(x, y))
    ['expected a float scalar (Python or numpy); got ndarray of shape (2, 2)']
    """
    _known_step(step)
    if not callable(func):
        return [f"expected a callable; got {type(func).__name__}"]
    checker = _Checker(func, dict(params or {}))
    try:
        _CHECKS[step](checker)
    except _Failed:
        pass
    except Exception as exc:  # noqa: BLE001 - output odd enough to trip the check itself must not stop check_all
        checker.problems.append(f"its output could not be checked: {type(exc).__name__}: {exc}")
    return checker.problems


def check_method(step: str, method: str, *, params: dict | None = None) -> list[str]:
    """Run an installed method through its step's contract; its problems in plain words ([] if it conforms).

    Parameters
    ----------
    step : str
        One of :data:`STEPS`.
    method : str
        A method name of that step (:func:`~lfpbold.plugins.available`).
    params : dict, optional
        Keyword arguments passed on every call, as a parameter set would.

    Returns
    -------
    problems : list of str
        A method that cannot be loaded (its entry point fails to import) has that as its problem.

    Raises
    ------
    ValueError
        If ``step`` has no contract.
    PluginNotFoundError
        If no method of that name is installed.

    Examples
    --------
    >>> check_method("lfp_removal", "censor")
    []
    """
    _known_step(step)
    try:
        func = get_plugin(step, method)
    except PluginNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken entry point is a finding, not a crash
        return [f"could not be loaded: {type(exc).__name__}: {exc}"]
    return check_function(step, func, params=params)


def check_all(step: str | None = None) -> dict[tuple[str, str], list[str]]:
    """Check every installed method of every step that has a contract (or of one step).

    Installed means entry points of every installed package plus in-process
    :func:`~lfpbold.plugins.register` ones. Steps without a contract are left out.

    Parameters
    ----------
    step : str, optional
        Only this step.

    Returns
    -------
    problems : dict
        ``{(step, method): [problem, ...]}``, in pipeline order; an empty list means the method
        conforms.

    Examples
    --------
    >>> report = check_all("lfp_removal")
    >>> sorted(report), all(not problems for problems in report.values())
    ([('lfp_removal', 'censor'), ('lfp_removal', 'ols'), ('lfp_removal', 'soft')], True)
    """
    if step is not None:
        _known_step(step)
    installed = available(step)
    return {(s, m): check_method(s, m) for s in STEPS if s in installed for m in installed[s]}
