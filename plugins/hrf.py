"""Haemodynamic response functions and HRF-convolved regressors.

Step ``hrf``: each method is ``f(dt, **params) -> kernel`` sampled every ``dt`` seconds. SPM's canonical
double-gamma (``spm_hrf``) with the rodent parameters of the reference study is the default.
"""

from __future__ import annotations

import inspect

import numpy as np
from scipy.stats import gamma

from lfpbold.constants import RODENT_P

from ._validation import check_seconds, check_t_r

__all__ = ["RODENT_P", "SPM_DEFAULT_P", "spm_hrf", "accepts_delays", "hrf_regressor"]

#: SPM12's own defaults (human): peak near 5 s, undershoot near 15 s.
SPM_DEFAULT_P = (6.0, 16.0, 1.0, 1.0, 6.0, 0.0, 32.0)


def spm_hrf(
    dt: float,
    *,
    p=RODENT_P,
    fmri_t: int = 16,
    response_delay: float | None = None,
    undershoot_delay: float | None = None,
) -> np.ndarray:
    """SPM's double-gamma haemodynamic response, sampled every ``dt`` seconds.

    A port of SPM12 ``spm_hrf.m``: the difference of two gamma densities built on a grid of
    ``dt / fmri_t`` seconds, picked at multiples of ``dt`` and scaled to sum to one.

    Parameters
    ----------
    dt : float
        Sampling interval of the returned kernel, in seconds (the fMRI TR, or the band-power
        step when convolving band power before bringing it to the TR).
    p : sequence of up to 7 floats, default :data:`RODENT_P`
        ``[response delay, undershoot delay, response dispersion, undershoot dispersion,
        response/undershoot ratio, onset, kernel length]`` in seconds, as in SPM. A shorter
        sequence overrides the leading SPM defaults only, as ``spm_hrf`` does.
    fmri_t : int, default 16
        Microtime resolution (bins per ``dt``).
    response_delay, undershoot_delay : float, optional
        Seconds; when given they replace ``p[0]`` and ``p[1]``. These are the two parameters
        the HRF sensitivity analysis sweeps (:func:`lfpbold.plugins.temporal.hrf_sweep`), and
        every HRF method that can be swept takes them under these names.

    Returns
    -------
    hrf : ndarray of shape (floor(p[6] / dt) + 1,)
        The kernel, summing to one.

    References
    ----------
    Friston et al., SPM12 ``spm_hrf.m``. Tong et al. (2019) and Tu, Cramer & Zhang (2024) for
    the rodent parameters ``[4 4 1 1 6 0 32]``.

    Examples
    --------
    >>> h = spm_hrf(0.1)
    >>> round(float(np.argmax(h) * 0.1), 1)
    3.0
    >>> later = spm_hrf(0.1, response_delay=6.0, undershoot_delay=12.0)
    >>> bool(np.array_equal(later, spm_hrf(0.1, p=(6, 12, 1, 1, 6, 0, 32))))
    True
    """
    dt = check_t_r(dt, "dt")
    full = np.array(SPM_DEFAULT_P, dtype=float)
    p = np.asarray(p, dtype=float).ravel()
    if p.size > 7:
        raise ValueError(f"p takes at most 7 values (SPM's spm_hrf); got {p.size}")
    full[: p.size] = p
    if response_delay is not None:
        full[0] = check_seconds(response_delay, "response_delay")
    if undershoot_delay is not None:
        full[1] = check_seconds(undershoot_delay, "undershoot_delay")
    delay, u_delay, disp, u_disp, ratio, onset, length = full
    if min(delay, u_delay, disp, u_disp, ratio, length) <= 0:
        raise ValueError(f"HRF delays, dispersions, ratio and length must be positive; got p={full.tolist()}")
    step = dt / fmri_t
    u = np.arange(int(np.ceil(length / step - 1e-9)) + 1) - onset / step
    hrf = gamma.pdf(u, delay / disp, scale=disp / step) - gamma.pdf(u, u_delay / u_disp, scale=u_disp / step) / ratio
    # the epsilon keeps a step like 0.1000000000000014 (a median of np.diff) from losing a sample
    hrf = hrf[np.arange(int(np.floor(length / dt + 1e-9)) + 1) * fmri_t]
    return hrf / hrf.sum()


def accepts_delays(hrf) -> bool:
    """Whether an HRF method can be swept: it names ``response_delay`` and ``undershoot_delay`` as parameters.

    The HRF sensitivity analysis (:func:`lfpbold.plugins.temporal.hrf_sweep`) calls
    ``hrf(dt, response_delay=d, undershoot_delay=u, **params)``; a method that does not declare
    both names (a ``**kwargs`` catch-all does not count) cannot be swept.

    Parameters
    ----------
    hrf : callable
        A method of step ``hrf``.

    Returns
    -------
    bool

    Examples
    --------
    >>> accepts_delays(spm_hrf)
    True
    >>> accepts_delays(lambda dt, **params: np.ones(3))
    False
    """
    try:
        names = inspect.signature(hrf).parameters
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return False
    return all(
        name in names and names[name].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        for name in ("response_delay", "undershoot_delay")
    )


def hrf_regressor(power, times, volume_onsets, t_r: float, *, kernel: np.ndarray | None = None, p=RODENT_P):
    """Convolve band power with an HRF and bring it to the fMRI volumes.

    The power series is convolved causally on its own (uniform) grid, then averaged over each
    volume's acquisition window ``[onset, onset + t_r)``, so the regressor for volume *k* is
    the HRF-predicted signal during volume *k*.

    Parameters
    ----------
    power : ndarray of shape (n_times,) or (n_bands, n_times)
        Band power on a uniform grid.
    times : ndarray of shape (n_times,)
        Times of the power samples, in seconds, on the same clock as ``volume_onsets``.
    volume_onsets : ndarray of shape (n_volumes,)
        Scanner volume trigger times, in seconds.
    t_r : float
        Repetition time in seconds.
    kernel : ndarray, optional
        HRF sampled at the power step. Default: :func:`spm_hrf` at that step with ``p``.
    p : sequence, default :data:`RODENT_P`
        HRF parameters when ``kernel`` is not given.

    Returns
    -------
    convolved : ndarray, shape of ``power``
        The HRF-convolved power on the power grid.
    regressor : ndarray of shape (n_volumes,) or (n_bands, n_volumes)
        Mean convolved power within each volume.

    Examples
    --------
    >>> t = np.arange(0, 100, 0.1)
    >>> conv, reg = hrf_regressor(np.ones_like(t), t, np.arange(40.0, 60.0), 1.0)
    >>> np.allclose(reg, 1.0)
    True
    """
    power = np.asarray(power, dtype=float)
    times = np.asarray(times, dtype=float)
    onsets = np.asarray(volume_onsets, dtype=float)
    t_r = check_t_r(t_r)
    if power.shape[-1] != times.size:
        raise ValueError(f"power has {power.shape[-1]} samples but times has {times.size}")
    if times.size < 2:
        raise ValueError("power needs at least two samples")
    step = float(np.median(np.diff(times)))
    if kernel is None:
        kernel = spm_hrf(step, p=p)
    n = times.size
    squeeze = power.ndim == 1
    power2d = np.atleast_2d(power)
    convolved = np.stack([np.convolve(row, kernel)[:n] for row in power2d])
    first, last = onsets.min(), onsets.max() + t_r
    if first < times[0] - step / 2 or last > times[-1] + step:
        raise ValueError(
            f"volumes span {first:.2f}-{last:.2f} s but band power covers {times[0]:.2f}-{times[-1]:.2f} s"
        )
    start = np.searchsorted(times, onsets, side="left")
    stop = np.maximum(np.searchsorted(times, onsets + t_r, side="left"), start + 1)
    csum = np.concatenate([np.zeros((power2d.shape[0], 1)), np.cumsum(convolved, axis=1)], axis=1)
    regressor = (csum[:, stop] - csum[:, start]) / (stop - start)
    if squeeze:
        return convolved[0], regressor[0]
    return convolved, regressor
