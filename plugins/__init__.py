"""Analysis algorithms as plain functions on numpy arrays, looked up by step and method name.

Each analysis step (``band_power``, ``hrf``, ``bold_preprocessing``, ...) is an entry-point group
``lfpbold.<step>``; a method is one entry point in it. The platform's own methods are declared in
its ``pyproject.toml`` exactly as a lab's package would declare its own, so nothing here is special:

.. code-block:: toml

    [project.entry-points."lfpbold.band_power"]
    multitaper = "mylab.power:multitaper_band_power"

For a method defined in a notebook or script, :func:`register` adds it for the running process.
What a method of each step must accept and return is written in :mod:`lfpbold.plugins.contracts`,
which also checks a method against it (``lfpbold plugins --check`` checks every installed one).
Nothing in this package imports DataJoint or touches files.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points

__all__ = ["get_plugin", "register", "available", "PluginNotFoundError"]

_registered: dict[tuple[str, str], Callable] = {}


class PluginNotFoundError(LookupError):
    """No method of that name is registered for that step."""


def register(step: str, method: str) -> Callable[[Callable], Callable]:
    """Register ``func`` as ``method`` for ``step`` in this process (decorator).

    Parameters
    ----------
    step : str
        Analysis step, e.g. ``"band_power"``.
    method : str
        Name that parameter sets use to select the function.

    Examples
    --------
    >>> from lfpbold.plugins import register, get_plugin
    >>> @register("temporal_metric", "kendall")
    ... def kendall(x, y):
    ...     from scipy.stats import kendalltau
    ...     return float(kendalltau(x, y).statistic)
    >>> get_plugin("temporal_metric", "kendall") is kendall
    True
    """

    def decorator(func: Callable) -> Callable:
        _registered[(step, method)] = func
        return func

    return decorator


def available(step: str | None = None) -> dict[str, list[str]]:
    """Method names by step: entry points of every installed package plus in-process ones.

    Parameters
    ----------
    step : str, optional
        Only this step.

    Returns
    -------
    methods : dict
        ``{step: [method, ...]}``, both sorted by name.

    Examples
    --------
    >>> available("lfp_removal")
    {'lfp_removal': ['censor', 'ols', 'soft']}
    """
    found: dict[str, set[str]] = {}
    eps = entry_points()
    for group in eps.groups:
        if group.startswith("lfpbold.") and (step is None or group == f"lfpbold.{step}"):
            found.setdefault(group.removeprefix("lfpbold."), set()).update(ep.name for ep in eps.select(group=group))
    for s, m in _registered:
        if step is None or s == step:
            found.setdefault(s, set()).add(m)
    return {s: sorted(ms) for s, ms in sorted(found.items())}


def get_plugin(step: str, method: str) -> Callable:
    """Return the function registered as ``method`` for ``step``.

    In-process registrations (:func:`register`) come first, then entry points.

    Parameters
    ----------
    step : str
        Analysis step, e.g. ``"band_power"``.
    method : str
        Method name, as a parameter set names it.

    Returns
    -------
    func : callable

    Raises
    ------
    PluginNotFoundError
        With the names that are available for that step.

    Examples
    --------
    >>> get_plugin("correlation_map", "spearman").__name__
    'rank_correlation_map'
    """
    if (step, method) in _registered:
        return _registered[(step, method)]
    matches = [ep for ep in entry_points(group=f"lfpbold.{step}") if ep.name == method]
    if not matches:
        known = available(step).get(step, [])
        raise PluginNotFoundError(
            f"No '{method}' method for step '{step}'. Available: {', '.join(known) or 'none'}. "
            f"Add one with an entry point in group 'lfpbold.{step}' or lfpbold.plugins.register()."
        )
    return matches[0].load()
