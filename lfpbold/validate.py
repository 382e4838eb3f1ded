"""What a user types, checked at the door: schema prefixes, labels, restrictions, CLI option types.

Names that become SQL identifiers (the schema prefix, a database user) must match a strict
pattern; everything else reaches SQL only as a value DataJoint quotes (a dict restriction whose
values are plain strings or numbers). The click parameter types here give every CLI option a
one-line error that names the option and what it allows. Nothing here imports DataJoint.
"""

from __future__ import annotations

import math
import numbers
import re

import click

__all__ = [
    "PREFIX_PATTERN",
    "check_prefix",
    "check_identifier",
    "check_label",
    "check_restriction",
    "FiniteFloat",
    "PerState",
    "simulation_footprint",
]

#: A schema prefix: lower-case letters, digits, underscores; it starts with a letter.
PREFIX_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
#: A database user or role name lfpbold creates (``lfpbold db grant``).
USER_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def check_prefix(prefix) -> str:
    """``prefix`` if it is a valid schema prefix, else a ValueError saying what is allowed.

    Examples
    --------
    >>> check_prefix("lfpbold_")
    'lfpbold_'
    >>> check_prefix('x"; DROP SCHEMA zz_victim CASCADE; --')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: schema prefix 'x"; DROP SCHEMA zz_victim CASCADE; --' is not allowed: use 1-40 lower-case ...
    """
    return check_identifier(prefix, PREFIX_PATTERN, "schema prefix", "1-40")


def check_identifier(name, pattern: re.Pattern = USER_PATTERN, what: str = "name", length: str = "1-32") -> str:
    """``name`` if it matches ``pattern`` (an identifier lfpbold puts into SQL), else a ValueError."""
    if not isinstance(name, str) or not pattern.fullmatch(name):
        raise ValueError(
            f"{what} {name!r} is not allowed: use {length} lower-case letters, digits and underscores, "
            f"starting with a letter ({pattern.pattern})"
        )
    return name


def check_label(name: str, value):
    """A value a user restricts by (subject, session, state, run): a plain string or integer.

    DataJoint writes a dict restriction's strings as quoted literals, but a list or another
    object would reach the SQL as its ``repr``; only plain values pass.

    Examples
    --------
    >>> check_label("subject", "01")
    '01'
    >>> check_label("subject", ["01' OR 1=1 --"])
    Traceback (most recent call last):
    ...
    TypeError: subject must be a string or an integer; got ["01' OR 1=1 --"]
    """
    if isinstance(value, bool) or not isinstance(value, (str, numbers.Integral)):
        raise TypeError(f"{name} must be a string or an integer; got {value!r}")
    if isinstance(value, str) and "\x00" in value:
        raise ValueError(f"{name} must not contain a NUL character; got {value!r}")
    return value if isinstance(value, str) else int(value)


def check_restriction(restriction, allowed):
    """A results restriction: a dict (or list of dicts) of allowed attributes to plain values.

    DataJoint ignores a dict key that is not an attribute, which would silently widen the
    restriction to every scan, and puts a string restriction into the SQL verbatim; both are
    refused here.
    """
    if restriction is None:
        return None
    items = [restriction] if isinstance(restriction, dict) else restriction
    if isinstance(restriction, str) or not isinstance(items, (list, tuple)) or not items:
        raise TypeError(f"restriction must be a dict or a list of dicts, e.g. {{'subject': '01'}}; got {restriction!r}")
    checked = []
    for item in items:
        if not isinstance(item, dict) or not item:
            raise TypeError(f"restriction must be a dict or a list of non-empty dicts; got {item!r}")
        unknown = set(item) - set(allowed)
        if unknown:
            raise ValueError(f"cannot restrict by {sorted(unknown)}; choose from {list(allowed)}")
        checked.append({k: check_label(k, v) for k, v in item.items()})
    return checked[0] if isinstance(restriction, dict) else checked


class FiniteFloat(click.FloatRange):
    """A :class:`click.FloatRange` that also refuses ``nan`` and ``inf`` (a range check lets NaN through)."""

    name = "finite float"

    def convert(self, value, param, ctx):
        rv = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number{self._describe()}.", param, ctx)
        return super().convert(rv, param, ctx)

    def _describe(self) -> str:
        if self.min is None and self.max is None:
            return ""
        return f" (allowed: {self._describe_range()})"


class PerState(click.ParamType):
    """A number, or ``state=number`` pairs (``sedated=0.59,awake=0.4``), each within a range.

    Returns a float for a single number, a ``{state: float}`` dict for pairs.
    """

    name = "number or state=number,..."

    def __init__(self, lo: float, hi: float, lo_open: bool = False, what: str = "a number"):
        self.lo, self.hi, self.lo_open, self.what = lo, hi, lo_open, what

    def _range(self) -> str:
        lo = "(" if self.lo_open else "["
        hi = f"{self.hi:g}]" if math.isfinite(self.hi) else "inf)"
        return f"{lo}{self.lo:g}, {hi}"

    def _number(self, text, param, ctx, state=None) -> float:
        where = f" for {state}" if state else ""
        try:
            v = float(text)
        except (TypeError, ValueError):
            self.fail(f"{text!r}{where} is not {self.what}; give a number or state=number pairs", param, ctx)
        too_low = v <= self.lo if self.lo_open else v < self.lo
        if not math.isfinite(v) or too_low or v > self.hi:
            self.fail(f"{text!r}{where} is not in {self._range()} (finite)", param, ctx)
        return v

    def convert(self, value, param, ctx):
        from lfpbold.constants import STATES

        if isinstance(value, dict):
            return {s: self._number(v, param, ctx, s) for s, v in value.items()}
        if isinstance(value, numbers.Real):
            return self._number(value, param, ctx)
        text = str(value).strip()
        if "=" not in text:
            return self._number(text, param, ctx)
        out = {}
        for pair in text.split(","):
            state, _, number = pair.partition("=")
            state = state.strip()
            if state not in STATES:
                self.fail(f"{state!r} is not a state; states: {', '.join(STATES)}", param, ctx)
            if state in out:
                self.fail(f"{state} is given twice", param, ctx)
            out[state] = self._number(number.strip(), param, ctx, state)
        return out


def simulation_footprint(*, subjects, sessions, scans, regions, states, size) -> dict:
    """Disk and memory a simulated study needs, estimated from its size before anything is written.

    Disk: every scan's BOLD (float32, written gzip-compressed; noise barely compresses, so the raw
    size is the bound) and raw LFP (float32, uncompressed HDF5); one small scan with one implant
    measured 22.2 MB (estimate 23.6 MB), paper size 6.0 GB per scan with two implants (estimate
    6.04 GB). Memory: scans are written one at a time, so the largest working set is one scan's,
    plus the per-study tables (one entry per subject).

    Returns
    -------
    dict
        ``n_scans``, ``disk_bytes``, ``memory_bytes``.
    """
    from lfpbold.simulate.sizes import SIZES

    sz = SIZES[size]
    n_scans = subjects * sessions * scans * len(states)
    voxels = sz.grid[0] * sz.grid[1] * sz.grid[2]
    bold = voxels * sz.n_volumes * 4
    lfp = sz.n_times * sz.n_channels * len(regions) * 4
    atlas = voxels * 4 * (4 + 2 * len(regions))
    per_subject = 4096  # folders, sidecars, the sessions table and the ground truth's entries
    disk = n_scans * (bold + lfp + 64 * 1024) + atlas + subjects * per_subject
    # The interpreter with its imports (~200 MB), one scan's BOLD in a few float32 working copies
    # and its latent time courses at the LFP rate (float64). Measured for one small scan with two
    # implants: 235 MB peak RSS (this estimate: 260 MB).
    memory = 200 * 1000**2 + 4 * bold + 8 * sz.n_times * (1 + len(regions)) + subjects * 1024
    return {"n_scans": n_scans, "disk_bytes": disk, "memory_bytes": memory}


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _free_disk(path) -> int:
    """Free bytes on the file system that would hold ``path`` (its nearest existing folder)."""
    import shutil
    from pathlib import Path

    p = Path(path).expanduser().resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def _size_text(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"


def check_simulation_fits(out_dir, **request) -> dict:
    """Refuse a simulation whose estimated disk or memory (:func:`simulation_footprint`) does not fit.

    Raises
    ------
    ValueError
        Naming what is needed and what is free, before anything is written.
    """
    need = simulation_footprint(**request)
    free = _free_disk(out_dir)
    if need["disk_bytes"] > free:
        raise ValueError(
            f"simulate: {need['n_scans']} scan(s) need about {_size_text(need['disk_bytes'])} of disk; "
            f"{_size_text(free)} is free under {out_dir}"
        )
    memory = available_memory()
    if memory is not None and need["memory_bytes"] > memory:
        raise ValueError(
            f"simulate: one {request['size']} scan needs about {_size_text(need['memory_bytes'])} of memory; "
            f"{_size_text(memory)} is available"
        )
    return need
