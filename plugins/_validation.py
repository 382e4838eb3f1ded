"""Argument checks shared by the plugins, written once (after nilearn's ``_utils/param_validation.py``).

Every plugin checks its input at the door with these, so the same mistake gets the same message
whichever method meets it, and a message says what was expected and what came. A lab writing its
own method may call them too (they are plain functions on numpy arrays); the conformance check of
:mod:`lfpbold.plugins.contracts` does not require it.
"""

from __future__ import annotations

import numbers

import numpy as np

from lfpbold.constants import MOTION_COLUMNS, STATES

__all__ = [
    "check_sfreq",
    "check_seconds",
    "check_t_r",
    "check_array",
    "check_finite",
    "check_channel",
    "check_voxel_data",
    "check_series_pair",
    "check_bands",
    "check_mask",
    "check_sample_mask",
    "check_motion",
    "check_state",
    "check_filter_band",
]

#: dtype kinds accepted as real numbers without conversion: integers and floats (not bool, not complex).
_REAL_KINDS = "iuf"


def check_sfreq(sfreq) -> float:
    """A sampling rate in Hz: finite and positive.

    Parameters
    ----------
    sfreq : float
        Sampling rate in Hz.

    Returns
    -------
    sfreq : float

    Raises
    ------
    ValueError
        If ``sfreq`` is not a finite positive number.

    Examples
    --------
    >>> check_sfreq(24414)
    24414.0
    >>> check_sfreq(-1.0)
    Traceback (most recent call last):
    ...
    ValueError: sfreq must be a positive sampling rate in Hz; got -1.0
    """
    try:
        value = float(sfreq)
    except (TypeError, ValueError):
        raise ValueError(f"sfreq must be a positive sampling rate in Hz; got {sfreq!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"sfreq must be a positive sampling rate in Hz; got {sfreq!r}")
    return value


def check_seconds(value, name: str, *, allow_zero: bool = False) -> float:
    """A duration in seconds: a finite real number, positive (or non-negative with ``allow_zero``).

    Parameters
    ----------
    value : float
        The duration.
    name : str
        Argument name for the message.
    allow_zero : bool, default False
        Accept 0 (e.g. a largest lag or shift that may be zero).

    Returns
    -------
    seconds : float

    Examples
    --------
    >>> check_seconds(20, "max_lag_s", allow_zero=True)
    20.0
    >>> check_seconds(0, "window_s")
    Traceback (most recent call last):
    ...
    ValueError: window_s must be a positive number of seconds; got 0
    """
    if not _is_real_scalar(value) or not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a {kind} number of seconds; got {value!r}")
    return float(value)


def _is_real_scalar(value) -> bool:
    # a 0-d array counts: values fetched from a database or a JSON parameter set may arrive as one
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and value.dtype.kind in _REAL_KINDS
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_t_r(t_r, name: str = "t_r") -> float:
    """A repetition time (or any sampling interval) in seconds: finite and positive.

    Parameters
    ----------
    t_r : float
        Seconds between samples.
    name : str, default "t_r"
        Argument name for the message (``"dt"`` for an HRF's sampling step).

    Returns
    -------
    t_r : float

    Examples
    --------
    >>> check_t_r(1)
    1.0
    >>> check_t_r(0)
    Traceback (most recent call last):
    ...
    ValueError: t_r must be a positive number of seconds; got 0
    """
    return check_seconds(t_r, name)


def check_array(
    x,
    name: str,
    *,
    ndim,
    layout: str = "",
    expected: str | None = None,
    dtype=None,
    non_empty: bool = False,
    hint: str = "",
) -> np.ndarray:
    """An array of real numbers with a given number of dimensions.

    Parameters
    ----------
    x : array-like
        The argument.
    name : str
        Argument name for the messages.
    ndim : int or tuple of int
        Accepted numbers of dimensions.
    layout : str, optional
        What the axes are, e.g. ``"(n_timepoints, n_voxels)"``, for the message.
    expected : str, optional
        The whole "what was expected" phrase of the shape message, when the default
        ``"<name> as a <ndim>-D array <layout>"`` reads badly.
    dtype : numpy dtype, optional
        Convert to it (no copy when ``x`` already has it). Without it the array keeps its own
        dtype, which must then be an integer or float type; with it, anything numpy converts to
        a real ``dtype`` is accepted (bool, objects holding numbers).
    non_empty : bool, default False
        Reject an axis of length 0.
    hint : str, optional
        Text appended to the shape message, e.g. what to do about it.

    Returns
    -------
    array : ndarray
        ``np.asarray(x)``, converted to ``dtype`` when given.

    Raises
    ------
    ValueError
        Wrong number of dimensions, an empty axis, or values that are not real numbers.

    Examples
    --------
    >>> check_array([[1, 2], [3, 4]], "lfp", ndim=2, layout="(n_channels, n_times)").shape
    (2, 2)
    >>> check_array(np.zeros(3), "lfp", ndim=2, layout="(n_channels, n_times)")
    Traceback (most recent call last):
    ...
    ValueError: Expected lfp as a 2-D array (n_channels, n_times); got shape (3,)
    >>> check_array(np.ones(3, complex), "x", ndim=1)
    Traceback (most recent call last):
    ...
    ValueError: Expected x as real numbers; got dtype complex128
    """
    arr = np.asarray(x)
    ndims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if arr.ndim not in ndims:
        if expected is None:
            dims = " or ".join(f"{d}-D" for d in ndims)
            expected = f"{name} as a {dims} array" + (f" {layout}" if layout else "")
        raise ValueError(f"Expected {expected}; got shape {arr.shape}{hint}")
    if non_empty and 0 in arr.shape:
        raise ValueError(f"{name} has no data; got shape {arr.shape}")
    return _as_real(arr, name, dtype)


def _as_real(arr: np.ndarray, name: str, dtype) -> np.ndarray:
    if dtype is None:
        if arr.dtype.kind not in _REAL_KINDS:
            raise ValueError(f"Expected {name} as real numbers; got dtype {arr.dtype}")
        return arr
    # Converting: bool and objects holding numbers were always accepted here (np.asarray(x, float)).
    if arr.dtype.kind not in _REAL_KINDS + "bO":
        raise ValueError(f"Expected {name} as real numbers; got dtype {arr.dtype}")
    try:
        return arr.astype(dtype, copy=False)
    except (TypeError, ValueError):
        raise ValueError(
            f"Expected {name} as real numbers; got values numpy cannot read as {np.dtype(dtype)}"
        ) from None


def check_finite(x, name: str, *, axis: int | None = None, unit: str = "values") -> None:
    """Raise unless every value is finite (no NaN, no inf).

    Parameters
    ----------
    x : ndarray
        Real numbers.
    name : str
        Argument name for the message.
    axis : int, optional
        Count the bad slices along this axis instead of the bad values (e.g. ``axis=0`` on a
        (n_timepoints, n_voxels) array counts voxels).
    unit : str, default "values"
        What is counted, for the message (e.g. ``"brain voxels"``).

    Examples
    --------
    >>> check_finite(np.array([[1.0, np.nan], [2.0, 3.0]]), "BOLD", axis=0, unit="brain voxels")
    Traceback (most recent call last):
    ...
    ValueError: BOLD must be finite (no NaN or inf); got NaN or inf in 1 brain voxels
    """
    finite = np.isfinite(x)
    if finite.all():
        return
    n_bad = int((~finite).sum()) if axis is None else int((~finite.all(axis=axis)).sum())
    raise ValueError(f"{name} must be finite (no NaN or inf); got NaN or inf in {n_bad} {unit}")


def check_channel(lfp, name: str = "lfp") -> np.ndarray:
    """One LFP channel: a 1-D array of real numbers, not copied (a float32 recording stays float32).

    Parameters
    ----------
    lfp : array-like of shape (n_times,)
    name : str, default "lfp"

    Returns
    -------
    lfp : ndarray of shape (n_times,)

    Examples
    --------
    >>> check_channel(np.zeros((2, 5)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Expected lfp as a 1-D array (one channel, n_times); got shape (2, 5). Combine channels first...
    """
    return check_array(
        lfp, name, ndim=1, layout="(one channel, n_times)", hint=". Combine channels first (lfpbold.plugins.channels)."
    )


def check_voxel_data(data, name: str = "data") -> np.ndarray:
    """BOLD in brain-mask order: a (n_timepoints, n_voxels) array of real numbers, not copied.

    Parameters
    ----------
    data : array-like of shape (n_timepoints, n_voxels)
    name : str, default "data"

    Returns
    -------
    data : ndarray of shape (n_timepoints, n_voxels)

    Examples
    --------
    >>> check_voxel_data(np.zeros(50))
    Traceback (most recent call last):
    ...
    ValueError: Expected data of shape (n_timepoints, n_voxels); got shape (50,)
    """
    return check_array(data, name, ndim=2, expected=f"{name} of shape (n_timepoints, n_voxels)")


def check_series_pair(x, y, *, min_length: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Two finite 1-D time series of equal length, as float64 (the temporal metrics' input).

    Parameters
    ----------
    x, y : array-like of shape (n_timepoints,)
    min_length : int, default 3
        Fewest time points accepted (a correlation needs 3).

    Returns
    -------
    x, y : ndarray of shape (n_timepoints,), float64

    Examples
    --------
    >>> x, y = check_series_pair([1, 2, 3], [2, 4, 7])
    >>> x.dtype
    dtype('float64')
    >>> check_series_pair([1, 2, 3], [1, 2])
    Traceback (most recent call last):
    ...
    ValueError: x and y must have the same length; got 3 and 2
    """
    x_arr = _as_real(np.asarray(x), "x", np.float64)
    y_arr = _as_real(np.asarray(y), "y", np.float64)
    if x_arr.ndim != 1 or y_arr.ndim != 1:
        raise ValueError(f"Expected two 1-D time series; got shapes {x_arr.shape} and {y_arr.shape}")
    if x_arr.size != y_arr.size:
        raise ValueError(f"x and y must have the same length; got {x_arr.size} and {y_arr.size}")
    if x_arr.size < min_length:
        raise ValueError(f"Need at least {min_length} time points; got {x_arr.size}")
    check_finite(x_arr, "x")
    check_finite(y_arr, "y")
    return x_arr, y_arr


def check_bands(bands, nyquist: float) -> np.ndarray:
    """Frequency bands as an (n_bands, 2) float array of ``0 < low < high <= nyquist`` in Hz.

    Parameters
    ----------
    bands : sequence of (low_hz, high_hz)
    nyquist : float
        Half the sampling rate, in Hz.

    Returns
    -------
    bands : ndarray of shape (n_bands, 2), float64

    Examples
    --------
    >>> check_bands([(1, 4), (40, 100)], 500.0).tolist()
    [[1.0, 4.0], [40.0, 100.0]]
    >>> check_bands([(4, 1)], 500.0)
    Traceback (most recent call last):
    ...
    ValueError: Each band must satisfy 0 < low < high <= Nyquist (500 Hz); got [[4.0, 1.0]]
    """
    try:
        arr = np.asarray(bands, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"bands must be a sequence of (low_hz, high_hz) pairs; got {bands!r}") from None
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
        raise ValueError(f"bands must be a sequence of (low_hz, high_hz) pairs; got shape {arr.shape}")
    bad = ~((arr[:, 0] > 0) & (arr[:, 0] < arr[:, 1]) & (arr[:, 1] <= nyquist))
    if bad.any():
        raise ValueError(f"Each band must satisfy 0 < low < high <= Nyquist ({nyquist:g} Hz); got {arr[bad].tolist()}")
    return arr


def check_mask(mask, shape, name: str, *, required: bool = True) -> np.ndarray | None:
    """A boolean (X, Y, Z) mask (0/1 numbers accepted) of the BOLD volumes' shape, selecting something.

    Parameters
    ----------
    mask : array-like of shape ``shape``, or None
    shape : tuple of int
        Shape of one BOLD volume.
    name : str
        Argument name for the messages.
    required : bool, default True
        Reject None (otherwise None is returned).

    Returns
    -------
    mask : ndarray of bool, or None

    Examples
    --------
    >>> check_mask([[1, 0], [0, 1]], (2, 2), "brain_mask").dtype
    dtype('bool')
    >>> check_mask(np.zeros((2, 2), bool), (2, 2), "wm_mask")
    Traceback (most recent call last):
    ...
    ValueError: wm_mask selects no voxels
    """
    if mask is None:
        if required:
            raise ValueError(f"{name} is required: a boolean (X, Y, Z) mask in the BOLD array's space")
        return None
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise ValueError(f"{name} has shape {mask.shape} but the BOLD volumes are {tuple(shape)}")
    if mask.dtype != bool:
        if mask.dtype.kind in "iuf" and np.isin(mask, (0, 1)).all():
            mask = mask.astype(bool)
        else:
            raise ValueError(f"{name} must be boolean (or 0/1); got dtype {mask.dtype}")
    if not mask.any():
        raise ValueError(f"{name} selects no voxels")
    return mask


def check_sample_mask(sample_mask, n_volumes: int) -> np.ndarray | None:
    """A boolean (T,) mask of the volumes to keep, keeping at least 3; None passes through.

    Parameters
    ----------
    sample_mask : array-like of shape (n_volumes,), bool, or None
    n_volumes : int

    Returns
    -------
    sample_mask : ndarray of bool, or None

    Examples
    --------
    >>> int(check_sample_mask(np.array([True, True, False, True]), 4).sum())
    3
    >>> check_sample_mask(np.ones(4, int), 4)
    Traceback (most recent call last):
    ...
    ValueError: sample_mask must be a boolean array (True = keep); got dtype int64
    """
    if sample_mask is None:
        return None
    sample_mask = np.asarray(sample_mask)
    if sample_mask.dtype != bool:
        raise ValueError(f"sample_mask must be a boolean array (True = keep); got dtype {sample_mask.dtype}")
    if sample_mask.shape != (n_volumes,):
        raise ValueError(f"sample_mask has shape {sample_mask.shape} but the BOLD array has {n_volumes} volumes")
    if sample_mask.sum() < 3:
        raise ValueError(f"sample_mask keeps {int(sample_mask.sum())} volumes; at least 3 are needed")
    return sample_mask


def check_motion(motion, n_volumes: int | None = None) -> np.ndarray:
    """Realignment parameters: a finite (n_volumes, 6) float array, columns as :data:`MOTION_COLUMNS`.

    Parameters
    ----------
    motion : array-like of shape (n_volumes, 6)
        Translations in mm, then rotations in radians.
    n_volumes : int, optional
        Volumes of the BOLD array the parameters belong to.

    Returns
    -------
    motion : ndarray of shape (n_volumes, 6), float64

    Examples
    --------
    >>> check_motion(np.zeros((10, 6)), 10).shape
    (10, 6)
    >>> check_motion(np.zeros((10, 3)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Expected motion parameters of shape (n_volumes, 6) (3 translations in mm, ...); got shape (10, 3)
    """
    if motion is None:
        raise ValueError("motion is required: the (T, 6) realignment parameters")
    motion = np.asarray(motion, dtype=float)
    n_cols = len(MOTION_COLUMNS)
    if motion.ndim != 2 or motion.shape[1] != n_cols:
        raise ValueError(
            f"Expected motion parameters of shape (n_volumes, {n_cols}) (3 translations in mm, 3 rotations "
            f"in radians); got shape {motion.shape}"
        )
    if n_volumes is not None and motion.shape[0] != n_volumes:
        raise ValueError(f"motion has {motion.shape[0]} rows but the BOLD array has {n_volumes} volumes")
    check_finite(motion, "Motion parameters")
    return motion


def check_state(state) -> str:
    """A brain state of :data:`lfpbold.constants.STATES`, case and spaces ignored.

    Parameters
    ----------
    state : str

    Returns
    -------
    state : str
        Lower case, as in :data:`~lfpbold.constants.STATES`.

    Examples
    --------
    >>> check_state(" Awake")
    'awake'
    >>> check_state("asleep")
    Traceback (most recent call last):
    ...
    ValueError: Unknown state 'asleep'; expected one of awake, sedated
    """
    key = str(state).strip().lower()
    if key not in STATES:
        raise ValueError(f"Unknown state {state!r}; expected one of {', '.join(sorted(STATES))}")
    return key


def check_filter_band(high_pass, low_pass, t_r: float) -> None:
    """Band-pass edges in Hz (either may be None) that fit a sampling interval of ``t_r`` seconds.

    Parameters
    ----------
    high_pass, low_pass : float or None
        Edges in Hz; ``high_pass < low_pass < 0.5 / t_r``.
    t_r : float
        Seconds between samples.

    Raises
    ------
    ValueError
        An edge that is not positive, at or above Nyquist, or edges in the wrong order.

    Examples
    --------
    >>> check_filter_band(0.01, 0.1, 1.0)
    >>> check_filter_band(0.01, 0.6, 1.0)
    Traceback (most recent call last):
    ...
    ValueError: low_pass=0.6 Hz is at or above the Nyquist frequency 0.5 Hz for t_r=1.0 s; use a lower low_pass or None
    """
    nyquist = 0.5 / t_r
    for name, value in (("high_pass", high_pass), ("low_pass", low_pass)):
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be a positive frequency in Hz or None; got {value!r}")
    if low_pass is not None and low_pass >= nyquist:
        raise ValueError(
            f"low_pass={low_pass} Hz is at or above the Nyquist frequency {nyquist:g} Hz for t_r={t_r} s; "
            f"use a lower low_pass or None"
        )
    if high_pass is not None and low_pass is not None and high_pass >= low_pass:
        raise ValueError(f"high_pass ({high_pass} Hz) must be below low_pass ({low_pass} Hz)")
