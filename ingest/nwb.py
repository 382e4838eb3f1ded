"""Reader for a scan's NWB file: the raw LFP series, its electrodes, probes, implants and the
scanner triggers (metadata via pynwb), and a lazy sample reader (h5py, time blocks).
"""

from __future__ import annotations

import re
import warnings
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from .errors import IngestError

__all__ = ["read_nwb", "read_lfp", "find_series", "TRIGGER_NAMES"]

TRIGGER_NAMES = ("scanner_volumes", "scanner_slices")
DEFAULT_SERIES = "acquisition/ElectricalSeries"
# A model name is a word that starts with a capital and holds a digit, e.g. MRCM16LP, A1x16-5mm
_MODEL_WORD = re.compile(r"^[A-Z][A-Za-z]*\d[\w.\-]*$")
_BLOCK_BYTES = 32 << 20  # per read_lfp block; bounds memory beyond the output array


def _truncated(exc: BaseException) -> str | None:
    """The reason for an HDF5 file cut short (HDF5 says so in its error text), else None."""
    sizes = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", str(exc))
    if not sizes:
        return None
    return (
        f"truncated: {int(sizes.group(1)):,} bytes on disk but the HDF5 file says {int(sizes.group(2)):,} "
        "(an interrupted copy or write?)"
    )


@contextmanager
def _open_series(path: Path, key: str):
    """The HDF5 group of the series at ``key`` in the NWB file ``path``, the file open while in use.

    One place for what can go wrong opening a series with h5py, each an :class:`IngestError` naming
    the file: missing, truncated, not HDF5, or no series data at ``key``.
    """
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise IngestError(path, "file", "missing") from None
    except OSError as exc:
        raise IngestError(path, "file", _truncated(exc) or f"not readable as HDF5 ({exc})") from None
    with f:
        if key not in f or "data" not in f[key]:
            raise IngestError(path, key, "no series data at this path (the path stored must be the path read)")
        yield f[key]


@contextmanager
def _open(path: Path):
    from pynwb import NWBHDF5IO

    if not path.exists():
        raise IngestError(path, "file", "missing")
    io = None
    try:
        with warnings.catch_warnings():
            # cached-namespace and deprecation chatter from files written by other pynwb versions
            warnings.simplefilter("ignore")
            io = NWBHDF5IO(str(path), mode="r", load_namespaces=True)
            nwbfile = io.read()
    except Exception as exc:
        if io is not None:
            io.close()
        if _truncated(exc):
            raise IngestError(path, "file", _truncated(exc)) from None
        raise IngestError(path, "file", f"not readable as NWB ({type(exc).__name__}: {exc})") from None
    try:
        yield nwbfile
    finally:
        io.close()


def _object_path(nwbfile, obj) -> str | None:
    """HDF5 path of a container inside its NWB file, e.g. ``processing/ecephys/LFP/ElectricalSeries``,
    or None when it lives anywhere but ``acquisition`` or ``processing`` (analysis, stimulus, scratch)."""
    from pynwb import NWBFile, ProcessingModule

    names = []
    node = obj
    while node.parent is not None and not isinstance(node.parent, NWBFile):
        names.append(node.name)
        node = node.parent
    if isinstance(node, ProcessingModule) and nwbfile.processing.get(node.name) is node:
        prefix = "processing"
    elif nwbfile.acquisition.get(node.name) is node:
        prefix = "acquisition"
    else:
        return None
    return "/".join([prefix, node.name, *reversed(names)])


def _elsewhere(obj) -> str:
    """Where a container that is not in acquisition/processing sits, for messages."""
    data = getattr(obj, "data", None)
    name = getattr(data, "name", None)
    if isinstance(name, str) and name.endswith("/data"):
        return name[1:-5]
    return obj.name


def find_series(nwbfile, nwb_path: Path, series_path: str | None = None):
    """The raw ElectricalSeries of a file and its HDF5 path.

    By ``series_path`` if given; else ``acquisition["ElectricalSeries"]``; else the single
    ElectricalSeries anywhere in acquisition or a processing module (inside an LFP or
    FilteredEphys container too, as NeuroConv writes ``processing/ecephys/LFP/ElectricalSeriesLFP``).
    Series elsewhere (analysis, scratch, stimulus) are never taken. Several candidates is an
    error that lists them.
    """
    from pynwb.ecephys import ElectricalSeries

    every, others = {}, []
    for obj in nwbfile.objects.values():
        if isinstance(obj, ElectricalSeries):
            where = _object_path(nwbfile, obj)
            if where is None:
                others.append(_elsewhere(obj))
            else:
                every[where] = obj
    if series_path is not None:
        key = series_path.strip("/")
        if key not in every:
            raise IngestError(
                nwb_path,
                key,
                f"no ElectricalSeries in acquisition or processing at this path "
                f"(found: {', '.join(sorted(every)) or 'none'})",
            )
        return every[key], key
    if DEFAULT_SERIES in every:
        return every[DEFAULT_SERIES], DEFAULT_SERIES
    candidates = every
    if not candidates:
        elsewhere = f" (elsewhere, not taken: {', '.join(sorted(others))})" if others else ""
        raise IngestError(nwb_path, DEFAULT_SERIES, f"no ElectricalSeries in acquisition or processing{elsewhere}")
    if len(candidates) > 1:
        raise IngestError(
            nwb_path,
            DEFAULT_SERIES,
            f"{len(candidates)} candidate ElectricalSeries, name one as series_path: {', '.join(sorted(candidates))}",
        )
    ((key, series),) = candidates.items()
    return series, key


def _column(table, name):
    if name not in table.colnames:
        return None
    return table[name].data[:]


def _trigger_places(nwbfile):
    """(where, container group) in the order triggers are looked for."""
    yield "events", getattr(nwbfile, "events", None) or {}
    yield "acquisition", nwbfile.acquisition
    for module in nwbfile.processing.values():
        yield f"processing/{module.name}", module.data_interfaces
    yield "intervals", nwbfile.intervals or {}


def _trigger_times(nwbfile, name: str):
    """(times in s from session start, where found) of the named scanner triggers, or (None, None).

    Accepted: an ``EventsTable`` (NWB core, as ndx-events 0.4 defined it) or any table with a
    ``timestamp`` or ``start_time`` column (``TimeIntervals``); a ``TimeSeries`` of event times
    (ndx-events 0.2 ``Events``/``TTLs`` too: anything with ``timestamps``); a TTL ``TimeSeries``,
    i.e. the trigger line sampled as a level (by ``rate`` or ``timestamps``), whose rising edges
    are the triggers.
    """
    for where, group in _trigger_places(nwbfile):
        if name not in group:
            continue
        obj = group[name]
        place = f"{where}/{name}"
        if hasattr(obj, "colnames"):  # EventsTable, TimeIntervals or another table
            for col in ("timestamp", "start_time"):
                if col in obj.colnames:
                    return np.asarray(obj[col].data[:], dtype=np.float64), place
            raise IngestError(_file(nwbfile), place, "a table without a timestamp or start_time column")
        data = getattr(obj, "data", None)
        stamps = getattr(obj, "timestamps", None)
        is_events = getattr(obj, "neurodata_type", "") in _EVENT_TYPES  # data are labels, not a level
        if data is not None and len(data) > 0 and not is_events and _is_level_signal(data):
            return _rising_edges(obj, data, stamps), place
        if stamps is not None:
            return np.asarray(stamps[:], dtype=np.float64), place
        if getattr(obj, "rate", None):
            n = len(data)
            return float(obj.starting_time or 0.0) + np.arange(n) / obj.rate, place
        raise IngestError(_file(nwbfile), place, "no timestamps")
    return None, None


_LEVEL_BLOCK = 1 << 22  # samples of a TTL line per read
#: event types whose ``data`` (if any) label the events instead of sampling a line: ndx-events 0.2
#: ``Events``/``TTLs``/``LabeledEvents``, NWB core ``AnnotationSeries``
_EVENT_TYPES = {"Events", "TTLs", "LabeledEvents", "AnnotationSeries"}


def _is_level_signal(data) -> bool:
    """A TTL line (several distinct levels), as opposed to one marker value per event."""
    head = np.asarray(data[: min(len(data), _LEVEL_BLOCK)])
    if head.ndim != 1 or head.dtype.kind not in "biuf":
        return False
    finite = head[np.isfinite(head)] if head.dtype.kind == "f" else head
    return finite.size > 0 and finite.min() != finite.max()


def _rising_edges(obj, data, stamps) -> np.ndarray:
    """Times at which a TTL line goes above the middle of its range, read in blocks."""
    lo = hi = None
    for a in range(0, len(data), _LEVEL_BLOCK):
        part = np.asarray(data[a : a + _LEVEL_BLOCK], dtype=np.float64)
        part = part[np.isfinite(part)]
        if part.size:
            lo = part.min() if lo is None else min(lo, part.min())
            hi = part.max() if hi is None else max(hi, part.max())
    threshold = (lo + hi) / 2
    edges, previous = [], None
    for a in range(0, len(data), _LEVEL_BLOCK):
        high = np.asarray(data[a : a + _LEVEL_BLOCK], dtype=np.float64) > threshold
        before = np.concatenate([[previous if previous is not None else False], high[:-1]])
        edges.append(a + np.flatnonzero(high & ~before))
        previous = bool(high[-1])
    index = np.concatenate(edges)
    if stamps is not None:
        return np.asarray(stamps[:], dtype=np.float64)[index]
    return float(obj.starting_time or 0.0) + index / float(obj.rate)


def _file(nwbfile) -> Path:
    return Path(nwbfile.container_source)


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode()
    value = str(value).strip()
    return value or None


def _probe_type(device) -> dict:
    """ProbeType fields from an NWB Device: DeviceModel name, else model_name, else the first
    model-like word of the description, else the device name."""
    model = getattr(device, "model", None)
    name = _text(getattr(model, "name", None)) if model is not None else None
    name = name or _text(getattr(device, "model_name", None))
    description = _text(device.description) or _text(getattr(model, "description", None)) or ""
    if not name:
        name = next((w for w in description.split() if _MODEL_WORD.match(w)), None)
    name = name or device.name
    manufacturer = (
        (_text(getattr(model, "manufacturer", None)) if model is not None else None)
        or _text(getattr(device, "manufacturer", None))
        or ""
    )
    return {"probe_type": name[:32], "manufacturer": manufacturer[:64], "probe_description": description[:255]}


def _weight_g(weight) -> float | None:
    text = _text(weight)
    if text is None:
        return None
    m = re.fullmatch(r"([-+0-9.eE]+)\s*(kg|g|mg)?", text)
    if not m:
        return None
    value = float(m.group(1))
    return value * {"kg": 1000.0, "g": 1.0, "mg": 1e-3, None: 1000.0}[m.group(2)]


def inspect_nwb(nwb_path) -> list[dict]:
    """The NWB Inspector's findings on a file; a CRITICAL (or schema-validation) finding raises.

    Gates on the inspector's report, not on an exit code (which ignores findings). Returns one dict
    per finding: ``importance``, ``check``, ``object_type``, ``object_name``, ``location``, ``message``.
    """
    from nwbinspector import Importance, inspect_nwbfile

    path = Path(nwb_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the inspector's own deprecation and namespace chatter
        messages = [m for m in inspect_nwbfile(nwbfile_path=str(path)) if m is not None]
    findings = [
        {
            "importance": m.importance.name,
            "check": m.check_function_name,
            "object_type": m.object_type,
            "object_name": m.object_name,
            "location": m.location,
            "message": m.message,
        }
        for m in messages
    ]
    stop = [
        f
        for f, m in zip(findings, messages, strict=True)
        if m.importance in (Importance.CRITICAL, Importance.PYNWB_VALIDATION)
    ]
    if stop:
        text = "; ".join(f"{f['importance']} {f['check']} at {f['location'] or '/'}: {f['message']}" for f in stop)
        raise IngestError(path, "nwbinspector", f"{len(stop)} critical finding(s): {text}")
    return findings


def check_samples(nwb_path, series_path: str, rate: float | None = None) -> int:
    """Stream an ElectricalSeries once, chunk by chunk, and refuse any non-finite sample.

    Reads whole HDF5 chunks of rows (about 32 MB at a time), never the whole series. Also checks
    ``conversion``/``offset``/``channel_conversion`` and, for a series with ``timestamps``, that they
    are finite and increasing. Integer samples are always finite, so only their scaling is checked.
    Returns the number of samples read (rows x channels).
    """
    path = Path(nwb_path)
    key = series_path.strip("/")
    with _open_series(path, key) as group:
        ds = group["data"]
        for attr in ("conversion", "offset"):
            value = float(ds.attrs.get(attr, 1.0 if attr == "conversion" else 0.0))
            if not np.isfinite(value):
                raise IngestError(path, f"{key}/data/{attr}", f"{value!r} is not finite")
        if "channel_conversion" in group:
            cc = np.asarray(group["channel_conversion"][:], dtype=np.float64)
            bad = np.flatnonzero(~np.isfinite(cc))
            if bad.size:
                raise IngestError(path, f"{key}/channel_conversion", f"{cc[bad[0]]!r} for channel {bad[0]}")
        n_rows = ds.shape[0]
        n_cols = int(np.prod(ds.shape[1:])) if ds.ndim > 1 else 1
        rows = max(1, _BLOCK_BYTES // (n_cols * ds.dtype.itemsize))
        if ds.chunks is not None:  # whole chunks: each is decompressed once
            rows = max(ds.chunks[0], rows // ds.chunks[0] * ds.chunks[0])
        if "timestamps" in group:
            _check_timestamps(path, f"{key}/timestamps", group["timestamps"], rows)
        if ds.dtype.kind != "f":
            return 0
        for a in range(0, n_rows, rows):
            part = ds[a : a + rows]
            finite = np.isfinite(part)
            if not finite.all():
                where = np.argwhere(~finite)
                t, c = int(where[0][0]), int(where[0][1]) if part.ndim > 1 else 0
                when = f" ({(a + t) / rate:.4f} s into the series)" if rate else ""
                raise IngestError(
                    path,
                    f"{key}/data",
                    f"non-finite sample ({float(part[(t, c) if part.ndim > 1 else t])!r}) "
                    f"at channel {c}, sample {a + t}"
                    f"{when}; {where.shape[0]} non-finite in samples {a}..{a + part.shape[0] - 1}",
                )
        return n_rows * n_cols


def _check_timestamps(path, field, ds, rows):
    last = None
    for a in range(0, ds.shape[0], rows):
        part = np.asarray(ds[a : a + rows], dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(part))
        if bad.size:
            raise IngestError(path, field, f"non-finite timestamp ({float(part[bad[0]])!r}) at sample {a + bad[0]}")
        joined = part if last is None else np.concatenate([[last], part])
        steps = np.flatnonzero(np.diff(joined) <= 0)
        if steps.size:
            i = a + steps[0] - (0 if last is None else 1)
            raise IngestError(path, field, f"not increasing at sample {i + 1}")
        last = part[-1] if part.size else last


def read_nwb(
    nwb_path, *, regions, series_path: str | None = None, aliases=None, inspect: bool = True, samples: bool = True
) -> dict:
    """Everything ingest needs from one scan's NWB file, validated; no samples are read.

    Parameters
    ----------
    nwb_path : path
        The scan's ``*_ecephys.nwb``.
    regions : iterable of str
        The ROI regions of the atlas; every electrode ``location`` must name one of them
        (case-insensitively).
    series_path : str, optional
        HDF5 path of the raw series when the file holds several.
    aliases : mapping, optional
        Other names of the regions (normalised name -> region, see
        :func:`lfpbold.ingest.regions.read_aliases`), so that an electrode labelled
        ``Cingulate cortex area 1`` meets the ``ACC`` ROI.
    inspect : bool
        Run the NWB Inspector (:func:`inspect_nwb`); its findings go in ``lfp["nwb_inspection"]``.
    samples : bool
        Stream every sample once (:func:`check_samples`) and refuse non-finite ones.

    Returns
    -------
    dict with ``lfp`` (LFPRecording fields without key, triggers on the series' clock),
    ``channels`` (channel, region, electrode), ``implants`` (by region), ``probe_types``
    (by name, with ``electrodes``), ``subject`` (NWB Subject fields), ``recording_end``
    (s on the series' clock of the last sample).
    """
    path = Path(nwb_path)
    regions = list(regions)
    with _open(path) as nwbfile:
        series, key = find_series(nwbfile, path, series_path)
        data = series.data
        if len(data.shape) != 2:
            raise IngestError(path, f"{key}/data", f"expected (n_times, n_channels), found shape {list(data.shape)}")
        n_samples, n_channels = (int(s) for s in data.shape)
        rows = np.asarray(series.electrodes.data[:], dtype=np.int64)
        if len(rows) != n_channels:
            raise IngestError(path, f"{key}/electrodes", f"{len(rows)} electrodes for {n_channels} data columns")
        if series.rate is not None:
            rate = float(series.rate)
            t0 = float(series.starting_time or 0.0)
        else:
            stamps = series.timestamps
            if stamps is None or len(stamps) < 2:
                raise IngestError(path, f"{key}/timestamps", "neither rate nor timestamps")
            t0, t1 = float(stamps[0]), float(stamps[-1])
            rate = (len(stamps) - 1) / (t1 - t0)
        if not rate > 0:
            raise IngestError(path, f"{key}/rate", f"{rate!r} is not a positive sampling rate")

        table = series.electrodes.table
        location = _column(table, "location")
        if location is None:
            raise IngestError(path, "electrodes/location", "column missing: the region of each channel is unknown")
        by_name = {r.lower(): r for r in regions}
        if aliases:
            from .regions import normalise

            known = set(regions)
            by_name.update({a: r for a, r in aliases.items() if r in known and a not in by_name})
        else:
            normalise = str.lower
        groups = table["group"].data[:] if "group" in table.colnames else [None] * len(table)
        cols = {
            c: _column(table, c)
            for c in ("ap_mm", "ml_mm", "dv_mm", "x", "y", "z", "hemisphere", "rel_y", "probe_electrode")
        }

        channels, implants, probes = [], {}, {}
        index_in_group = {}
        for channel, row in enumerate(rows):
            loc = _text(location[row])
            if loc is None:
                raise IngestError(path, "electrodes/location", f"empty for channel {channel} (electrode row {row})")
            region = by_name.get(loc.lower()) or by_name.get(normalise(loc))
            if region is None:
                raise IngestError(
                    path,
                    "electrodes/location",
                    f"{loc!r} (channel {channel}) matches no ROI in atlas/ (ROIs: {', '.join(regions) or 'none'})",
                )
            group = groups[row]
            gname = group.name if group is not None else region
            if cols["probe_electrode"] is not None:
                electrode = int(cols["probe_electrode"][row])
            else:  # position of the row among its group's rows, in table order
                electrode = sum(
                    1
                    for r in range(row)
                    if (groups[r].name if groups[r] is not None else None)
                    == (group.name if group is not None else None)
                )
            index_in_group.setdefault(gname, set()).add(electrode)
            channels.append({"channel": channel, "region": region, "electrode": electrode})

            if group is not None and group.device is not None:
                probe = _probe_type(group.device)
            else:
                probe = {"probe_type": f"unknown-{gname}"[:32], "manufacturer": "", "probe_description": ""}
            depth = float(cols["rel_y"][row]) if cols["rel_y"] is not None else float("nan")
            entry = probes.setdefault(probe["probe_type"], {**probe, "electrodes": {}, "groups": set()})
            entry["electrodes"].setdefault(electrode, depth)
            entry["groups"].add(gname)

            coords = _coords(path, cols, row, channel)
            hemisphere = _text(cols["hemisphere"][row]) if cols["hemisphere"] is not None else None
            if hemisphere is None:
                if coords[1] == 0:
                    raise IngestError(
                        path, "electrodes/hemisphere", f"no hemisphere column and ML = 0 for channel {channel}"
                    )
                hemisphere = "right" if coords[1] > 0 else "left"
            hemisphere = hemisphere.lower()
            if hemisphere not in ("left", "right"):
                raise IngestError(
                    path, "electrodes/hemisphere", f"{hemisphere!r} (channel {channel}) is not left or right"
                )
            implant = {
                "region": region,
                "probe_type": probe["probe_type"],
                "hemisphere": hemisphere,
                "ap_mm": coords[0],
                "ml_mm": coords[1],
                "dv_mm": coords[2],
            }
            # the implant is where its probe is: its first channel says so
            implants.setdefault(region, implant)
            if implants[region]["probe_type"] != implant["probe_type"]:
                raise IngestError(
                    path,
                    "electrodes/group",
                    f"region {region} has channels on two probe types: "
                    f"{implants[region]['probe_type']}, {implant['probe_type']}",
                )

        for entry in probes.values():
            entry["n_electrodes"] = max(len(index_in_group[g]) for g in entry.pop("groups"))

        triggers = {}
        end = (n_samples - 1) / rate
        for name in TRIGGER_NAMES:
            times, where = _trigger_times(nwbfile, name)
            if times is None:
                raise IngestError(
                    path,
                    name,
                    "missing: no EventsTable in events, nor table or TimeSeries in acquisition, "
                    "processing or intervals, of this name",
                )
            times = times - t0  # session clock -> series clock
            if times.size == 0:
                raise IngestError(path, name, f"no triggers in {where}")
            bad = np.flatnonzero(~np.isfinite(times))
            if bad.size:
                raise IngestError(
                    path,
                    name,
                    f"{bad.size} non-finite trigger time(s) in {where}, the first at trigger {bad[0]} "
                    f"({float(times[bad[0]])!r})",
                )
            steps = np.flatnonzero(np.diff(times) <= 0)
            if steps.size:
                i = steps[0]
                raise IngestError(
                    path,
                    name,
                    f"triggers in {where} are not strictly increasing: trigger {i + 1} at {times[i + 1] + t0:.6f} s "
                    f"follows trigger {i} at {times[i] + t0:.6f} s ({steps.size} such step(s))",
                )
            if times[0] < 0 or times[-1] > end:
                raise IngestError(
                    path,
                    name,
                    f"triggers from {times[0]:g} s to {times[-1]:g} s lie outside the recording "
                    f"(0 to {end:g} s on the series' clock)",
                )
            triggers[name] = times

        subject = nwbfile.subject
        subject = (
            {}
            if subject is None
            else {
                "subject_id": _text(subject.subject_id),
                "species": _text(subject.species),
                "strain": _text(getattr(subject, "strain", None)),
                "sex": _text(subject.sex),
                "age": _text(subject.age),
                "weight_g": _weight_g(subject.weight),
            }
        )
        result = {
            "lfp": {
                "nwb_path": str(path.absolute()),
                "series_path": key,
                "series_object_id": series.object_id,
                "sampling_rate": rate,
                "n_samples": n_samples,
                "n_channels": n_channels,
                "volume_triggers": triggers["scanner_volumes"],
                "slice_triggers": triggers["scanner_slices"],
            },
            "channels": channels,
            "implants": implants,
            "probe_types": probes,
            "subject": subject,
            "recording_end": end,
        }
    # after the metadata, so a file that is wrong there fails fast; each opens the file itself
    result["lfp"]["nwb_inspection"] = inspect_nwb(path) if inspect else None
    if samples:
        check_samples(path, key, rate)
    return result


def _coords(path, cols, row, channel):
    for names in (("ap_mm", "ml_mm", "dv_mm"), ("x", "y", "z")):
        if all(cols[n] is not None for n in names):
            values = [float(cols[n][row]) for n in names]
            if all(np.isfinite(values)):
                return values
    raise IngestError(
        path, "electrodes/ap_mm", f"no implant coordinates for channel {channel} (neither ap_mm/ml_mm/dv_mm nor x/y/z)"
    )


def read_lfp(nwb_path, *, series_path: str, channels, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Samples of some channels of an NWB ElectricalSeries, in volts, channel-first.

    Reads the HDF5 dataset directly, one time block at a time, so memory stays at the output
    array plus one block (about 32 MB) whatever the file's length. The series' ``conversion``,
    ``offset`` and ``channel_conversion`` are applied.

    Parameters
    ----------
    nwb_path : path
        The NWB file.
    series_path : str
        HDF5 path of the series (``LFPRecording.series_path``), e.g. ``acquisition/ElectricalSeries``.
    channels : sequence of int
        Column indices of the series, in the order wanted (repeats allowed).
    start, stop : int
        Sample range ``[start, stop)``; ``stop=None`` means the end.

    Returns
    -------
    ndarray, float32, shape (len(channels), stop - start)

    Examples
    --------
    >>> x = read_lfp(lfp["nwb_path"], series_path=lfp["series_path"], channels=[0, 3],
    ...              start=0, stop=2000)  # doctest: +SKIP
    >>> x.shape, x.dtype  # doctest: +SKIP
    ((2, 2000), dtype('float32'))
    """
    path = Path(nwb_path)
    key = series_path.strip("/")
    with _open_series(path, key) as group:
        ds = group["data"]
        if ds.ndim != 2:
            raise IngestError(path, f"{key}/data", f"expected (n_times, n_channels), found {list(ds.shape)}")
        n_samples, n_channels = ds.shape
        chans = np.asarray(list(channels), dtype=np.int64).reshape(-1)
        if chans.size == 0:
            raise IngestError(path, "channels", "no channels asked for")
        if chans.min() < 0 or chans.max() >= n_channels:
            raise IngestError(path, "channels", f"{chans.tolist()} outside 0..{n_channels - 1}")
        stop = n_samples if stop is None else int(stop)
        start = int(start)
        if not 0 <= start <= stop <= n_samples:
            raise IngestError(path, "samples", f"range [{start}, {stop}) outside 0..{n_samples}")

        conversion = float(ds.attrs.get("conversion", 1.0))
        offset = float(ds.attrs.get("offset", 0.0))
        scale = np.full(chans.size, conversion, dtype=np.float64)
        if "channel_conversion" in group:
            scale *= np.asarray(group["channel_conversion"][:], dtype=np.float64)[chans]
        scale = scale.astype(np.float32)[:, None]

        # h5py wants increasing unique column indices; read those, then put them in the asked order
        unique, inverse = np.unique(chans, return_inverse=True)
        full_rows = ds.chunks is None or unique.size * 2 > n_channels
        width = n_channels if full_rows else unique.size
        block = max(1, _BLOCK_BYTES // (width * max(ds.dtype.itemsize, 4)))

        out = np.empty((chans.size, stop - start), dtype=np.float32)
        for a in range(start, stop, block):
            b = min(stop, a + block)
            if full_rows:  # contiguous rows: reading whole rows beats a strided column selection
                part = ds[a:b, :][:, unique]
            else:
                part = ds[a:b, unique.tolist()]
            np.multiply(part.T[inverse], scale, out=out[:, a - start : b - start], casting="unsafe")
            if offset:
                out[:, a - start : b - start] += np.float32(offset)
        return out
