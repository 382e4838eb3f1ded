"""Reader for a scan's NWB file: the raw LFP series, its electrodes, probes, implants and the
scanner triggers (metadata via pynwb), and a lazy sample reader (h5py, time blocks).
"""

from __future__ import annotations

import os
import re
import warnings
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from .checksum import sha256
from .errors import IngestError

try:  # ISA-L's inflate, about twice zlib's speed (HDF5's deflate filter writes zlib streams)
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - isal is a dependency; zlib gives the same bytes, slower
    import zlib as _zlib

__all__ = ["read_nwb", "read_lfp", "find_series", "TRIGGER_NAMES"]

TRIGGER_NAMES = ("scanner_volumes", "scanner_slices")
DEFAULT_SERIES = "acquisition/ElectricalSeries"
# A model name is a word that starts with a capital and holds a digit, e.g. MRCM16LP, A1x16-5mm
_MODEL_WORD = re.compile(r"^[A-Z][A-Za-z]*\d[\w.\-]*$")
_BLOCK_BYTES = 32 << 20  # per read_lfp block; bounds memory beyond the output array
_DEFLATE, _SHUFFLE = 1, 2  # HDF5 filter codes (H5Z_FILTER_DEFLATE, H5Z_FILTER_SHUFFLE)
_FILTERS = {_DEFLATE, _SHUFFLE}  # chunks this module decodes from the file's bytes


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
    with _open_h5(path) as f:
        yield _series_group(f, path, key)


@contextmanager
def _open_h5(path: Path):
    """The NWB file ``path`` open with h5py; an :class:`IngestError` naming it if it is missing,
    truncated or not HDF5."""
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise IngestError(path, "file", "missing") from None
    except OSError as exc:
        raise IngestError(path, "file", _truncated(exc) or f"not readable as HDF5 ({exc})") from None
    with f:
        yield f


def _series_group(f, path: Path, key: str):
    """The group of the series at ``key`` in the open file ``f``, or an :class:`IngestError`."""
    if key not in f or "data" not in f[key]:
        raise IngestError(path, key, "no series data at this path (the path stored must be the path read)")
    return f[key]


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


def _candidates(nwbfile):
    """({path: ElectricalSeries} in acquisition or processing, [paths of those elsewhere])."""
    from pynwb.ecephys import ElectricalSeries

    every, others = {}, []
    for obj in nwbfile.objects.values():
        if isinstance(obj, ElectricalSeries):
            where = _object_path(nwbfile, obj)
            if where is None:
                others.append(_elsewhere(obj))
            else:
                every[where] = obj
    return every, others


def find_series(nwbfile, nwb_path: Path, series_path: str | None = None):
    """The raw ElectricalSeries of a file and its HDF5 path, when the file holds one.

    A file with one series per probe is an error here; :func:`find_series_set` takes it.
    """
    found = find_series_set(nwbfile, nwb_path, series_path)
    if len(found) > 1:
        names = ", ".join(k for _, k in found)
        raise IngestError(nwb_path, DEFAULT_SERIES, f"{len(found)} ElectricalSeries, one per probe: {names}")
    return found[0]


def _per_probe(group: dict) -> bool:
    """Whether several series share no electrode: one series per probe, not raw + LFP of the same."""
    seen = set()
    for series in group.values():
        rows = set(np.asarray(series.electrodes.data[:], dtype=np.int64).tolist())
        if rows & seen:
            return False
        seen |= rows
    return True


def find_series_set(nwbfile, nwb_path: Path, series_path: str | None = None) -> list:
    """The raw ElectricalSeries of a file, as [(series, HDF5 path)], sorted by path.

    By ``series_path`` if given (a series, or a container such as ``processing/ecephys/LFP`` whose
    series are taken together); else ``acquisition["ElectricalSeries"]``; else the single
    ElectricalSeries anywhere in acquisition or a processing module (inside an LFP or
    FilteredEphys container too, as NeuroConv writes ``processing/ecephys/LFP/ElectricalSeriesLFP``);
    else the series of one container that share no electrode, one per probe, as SpikeInterface and
    NeuroConv write a multi-probe recording (``acquisition/ElectricalSeriesProbeA``,
    ``acquisition/ElectricalSeriesProbeB``). Series elsewhere (analysis, scratch, stimulus) are never
    taken. Several candidates otherwise is an error that lists them.
    """
    every, others = _candidates(nwbfile)
    if series_path is not None:
        key = series_path.strip("/")
        if key in every:
            return [(every[key], key)]
        inside = {k: v for k, v in every.items() if k.rsplit("/", 1)[0] == key}
        if inside and _per_probe(inside):
            return [(inside[k], k) for k in sorted(inside)]
        if inside:
            raise IngestError(
                nwb_path, key, f"the series in this container share electrodes: {', '.join(sorted(inside))}"
            )
        raise IngestError(
            nwb_path,
            key,
            f"no ElectricalSeries in acquisition or processing at this path "
            f"(found: {', '.join(sorted(every)) or 'none'})",
        )
    if DEFAULT_SERIES in every:
        return [(every[DEFAULT_SERIES], DEFAULT_SERIES)]
    if not every:
        elsewhere = f" (elsewhere, not taken: {', '.join(sorted(others))})" if others else ""
        raise IngestError(nwb_path, DEFAULT_SERIES, f"no ElectricalSeries in acquisition or processing{elsewhere}")
    if len(every) == 1:
        ((key, series),) = every.items()
        return [(series, key)]
    containers = {}
    for k, v in every.items():
        containers.setdefault(k.rsplit("/", 1)[0], {})[k] = v
    if len(containers) == 1:
        ((_, group),) = containers.items()
        if _per_probe(group):
            return [(group[k], k) for k in sorted(group)]
    raise IngestError(
        nwb_path,
        DEFAULT_SERIES,
        f"{len(every)} candidate ElectricalSeries, name one (or the container of one series per probe) as "
        f"series_path: {', '.join(sorted(every))}",
    )


def _clock(path, series, key):
    """(rate, start time) of a series."""
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
    return rate, t0


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


def check_samples(nwb_path, series_path, rate: float | None = None, *, checksum: bool = False, each_block=None) -> dict:
    """Check every sample of one or more ElectricalSeries, in the pass that hashes the file.

    The file is read once, in 8 MB blocks, from start to end (:func:`lfpbold.ingest.sha256`, whose
    reader thread hashes each block while this thread checks it). Where a block holds bytes of a
    series' float ``data`` or its ``timestamps``, located in the file by HDF5 (the offset of a
    contiguous dataset, or of each chunk), they are checked in place as numpy views of the block
    (no copy): samples must be finite, timestamps finite and increasing. Chunks compressed by
    HDF5's deflate filter (with or without shuffle), as NeuroConv writes them, are inflated from
    the same bytes (ISA-L). A dataset stored any other way (another filter, compact or external
    storage) is read through h5py first, whole chunks of about 32 MB at a time. Integer samples
    are always finite, so only their scaling is checked. Also checks ``conversion``/``offset``/
    ``channel_conversion``.

    Parameters
    ----------
    nwb_path : path
    series_path : str or sequence of str
        HDF5 path(s) of the series, e.g. ``acquisition/ElectricalSeries``.
    rate : float, optional
        Sampling rate, to say when a bad sample lies.
    checksum : bool
        Also return the file's SHA-256 (taken in the same pass).
    each_block : callable(bytes), optional
        Called with each block of that read as well (ingest's progress in bytes).

    Returns
    -------
    dict with ``sha256`` (``""`` without ``checksum``), ``size`` and ``mtime_ns``, taken before
    the pass; a file that changes during it is refused.
    """
    path = Path(nwb_path)
    keys = [series_path] if isinstance(series_path, str) else list(series_path)
    keys = [k.strip("/") for k in keys]
    before = os.stat(path) if path.exists() else None
    pieces, slow = [], []
    with _open_h5(path) as f:
        for key in keys:
            group = _series_group(f, path, key)
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
            checks = []
            if ds.dtype.kind == "f":
                checks.append((ds, _FiniteCheck(path, f"{key}/data", ds, rate)))
            if "timestamps" in group:
                stamps = group["timestamps"]
                checks.append((stamps, _StampCheck(path, f"{key}/timestamps", stamps)))
            for dataset, check in checks:
                # a dataset reached through an external link lies in another file: h5py reads it
                here = Path(dataset.file.filename).resolve() == path.resolve()
                layout = _raw_layout(dataset) if here else None
                if layout is not None and isinstance(check, _StampCheck):
                    if any(x[2][0] >= y[2][0] for x, y in zip(layout, layout[1:], strict=False)):
                        layout = None  # chunks out of time order: increasing is checked through h5py
                if layout is None:
                    slow.append((check.field, check))  # the path in this file, links followed
                else:
                    pieces.extend((offset, nbytes, origin, check, codec) for offset, nbytes, origin, codec in layout)
        # datasets whose chunks this module cannot decode: h5py reads them, while the file is open
        for name, check in slow:
            dataset = f[name]
            rows = check.rows_per_read(dataset)
            for a in range(0, dataset.shape[0], rows):
                part = np.ascontiguousarray(dataset[a : a + rows])
                check((a, 0, check.width), 0, part.reshape(-1))
    # then the one read of the file that hashes it and checks what lies in it as raw or deflated bytes
    digest = _one_pass(path, pieces, checksum, each_block) if pieces or checksum else ""
    after = os.stat(path)
    if before is None or (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise IngestError(path, "file", "changed while it was being read; ingest again once nothing writes to it")
    return {"sha256": digest, "size": int(before.st_size), "mtime_ns": int(before.st_mtime_ns)}


def _one_pass(path, pieces, checksum: bool, each_block=None) -> str:
    """SHA-256 of the file (``""`` without ``checksum``), its raw pieces checked in the same read."""
    feeder = _Feeder(sorted(pieces, key=lambda p: p[0])) if pieces else None
    consumers = [c for c in (feeder, each_block) if c is not None]

    def consume(block):
        for c in consumers:
            c(block)

    digest = sha256(path, each_block=consume if consumers else None, digest=checksum)
    if feeder is not None:
        feeder.done()
    return digest


def _raw_layout(ds) -> list[tuple] | None:
    """Where a 1-D or 2-D dataset's elements lie in its file, as (byte offset, bytes, origin, codec),
    in file order, or None when this module cannot decode them from the file's bytes (filters other
    than deflate and shuffle, compact or external storage, unwritten chunks whose fill value is not
    finite).

    ``origin`` is (first row, first column, columns per row) of the C-order run of elements the
    bytes hold: (0, 0, n_columns) for a contiguous dataset, the chunk's corner and width for a
    chunk (an edge chunk's rows past the end are left out; its columns past the end, padding, are
    passed on and ignored by the checks). ``codec`` is None for bytes stored as they are, else
    (filter codes to undo, last first; elements of a whole chunk; elements before the padding rows).
    """
    item = ds.dtype.itemsize
    if ds.size == 0:
        return []
    if ds.dtype.kind not in "fiu" or ds.dtype.subdtype is not None or ds.ndim not in (1, 2):
        return None
    plist = ds.id.get_create_plist()
    if plist.get_external_count() > 0:
        return None
    width = ds.shape[1] if ds.ndim == 2 else 1
    if ds.chunks is None:
        offset = ds.id.get_offset()
        return None if offset is None else [(int(offset), ds.size * item, (0, 0, width), None)]
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    if any(code not in _FILTERS for code in filters):
        return None
    n_rows, per = ds.shape[0], ds.chunks[0]
    two_d = ds.ndim == 2  # once: each h5py property access takes its lock
    chunk_width = ds.chunks[1] if two_d else 1
    out = []

    def add(info):
        r0 = int(info.chunk_offset[0])
        c0 = int(info.chunk_offset[1]) if two_d else 0
        if info.byte_offset is None or r0 >= n_rows:
            return
        valid = min(per, n_rows - r0) * chunk_width
        active = tuple(code for i, code in enumerate(filters) if not info.filter_mask & (1 << i))
        if active:
            codec = (active[::-1], per * chunk_width, valid)
            out.append((int(info.byte_offset), int(info.size), (r0, c0, chunk_width), codec))
        else:
            out.append((int(info.byte_offset), valid * item, (r0, c0, chunk_width), None))

    try:
        ds.id.chunk_iter(add)  # one call for all chunks (HDF5 1.12.3+)
    except (AttributeError, NotImplementedError, RuntimeError):
        out.clear()
        for i in range(ds.id.get_num_chunks()):
            add(ds.id.get_chunk_info(i))
    n_chunks = -(-n_rows // per) * -(-width // chunk_width)
    if len(out) != n_chunks and ds.dtype.kind == "f" and not np.isfinite(ds.fillvalue):
        return None  # unwritten chunks read as a non-finite fill value: let h5py say so
    out.sort()
    return out


class _Feeder:
    """Hands each block of a sequential read of the file the parts of it that are elements of the
    datasets to check, as numpy views on the block; an element split by a block boundary is put
    together from both blocks, a deflated chunk inflated (and unshuffled) once all of it is read."""

    def __init__(self, pieces):
        self.pieces = pieces  # (offset, nbytes, origin, check, codec), by offset, not overlapping
        self.next = 0
        self.pos = 0
        self.pending = bytearray()

    def __call__(self, block: bytes) -> None:
        start, end = self.pos, self.pos + len(block)
        self.pos = end
        view = memoryview(block)
        while self.next < len(self.pieces):
            offset, nbytes, origin, check, codec = self.pieces[self.next]
            if offset >= end:
                return
            a, b = max(offset, start), min(offset + nbytes, end)
            if codec is not None:  # a whole stored chunk is needed to inflate it
                if a == offset and b == offset + nbytes:
                    self._decode(view[a - start : b - start], origin, check, codec)
                else:
                    self.pending += view[a - start : b - start]
                    if len(self.pending) == nbytes:
                        self._decode(self.pending, origin, check, codec)
                        self.pending = bytearray()
            else:
                item = check.itemsize
                done = a - offset  # bytes of this piece before this block's part
                if self.pending:
                    need = min(item - len(self.pending), b - a)
                    self.pending += view[a - start : a - start + need]
                    a, done = a + need, done + need
                    if len(self.pending) == item:
                        check(origin, done // item - 1, np.frombuffer(self.pending, dtype=check.dtype))
                        self.pending = bytearray()
                whole = (b - a) // item * item
                if whole:
                    check(origin, done // item, np.frombuffer(view[a - start : a - start + whole], dtype=check.dtype))
                if a + whole < b:
                    self.pending += view[a + whole - start : b - start]
            if offset + nbytes > end:
                return
            self.next += 1

    @staticmethod
    def _decode(stored, origin, check, codec) -> None:
        undo, n_elements, valid = codec
        data = stored
        for code in undo:
            if code == _DEFLATE:
                try:
                    data = _zlib.decompress(data)
                except _zlib.error as exc:
                    raise IngestError(
                        check.path, check.field, f"chunk at sample {origin[0]} does not inflate ({exc})"
                    ) from None
            else:  # shuffle: the k-th bytes of all elements, then the (k+1)-th, ...
                data = np.frombuffer(data, dtype=np.uint8).reshape(check.itemsize, -1).T.tobytes()
        if len(data) != n_elements * check.itemsize:
            raise IngestError(
                check.path,
                check.field,
                f"chunk at sample {origin[0]} decodes to {len(data):,} bytes, not {n_elements * check.itemsize:,}",
            )
        check(origin, 0, np.frombuffer(data, dtype=check.dtype, count=valid))

    def done(self) -> None:
        if self.next < len(self.pieces):
            offset, _, _, check, _ = self.pieces[self.next]
            raise IngestError(check.path, "file", f"ends before byte {offset + 1:,}, where {check.field} lies")


class _FiniteCheck:
    """Refuses non-finite samples of a (n_times, n_channels) float dataset, fed flat C-order runs."""

    def __init__(self, path, field, ds, rate):
        self.path, self.field, self.rate = path, field, rate
        self.dtype = ds.dtype
        self.itemsize = ds.dtype.itemsize
        self.width = int(np.prod(ds.shape[1:], dtype=np.int64)) if ds.ndim > 1 else 1
        self.buffer = np.empty(0, dtype=bool)

    def rows_per_read(self, ds) -> int:
        rows = max(1, _BLOCK_BYTES // (self.width * self.itemsize))
        if ds.chunks is not None:  # whole chunks: each is decompressed once
            rows = max(ds.chunks[0], rows // ds.chunks[0] * ds.chunks[0])
        return rows

    def __call__(self, origin, start: int, values: np.ndarray) -> None:
        """Check ``values``, elements ``start`` on of the C-order run at ``origin`` (row, column, width)."""
        if self.buffer.size < values.size:
            self.buffer = np.empty(values.size, dtype=bool)
        finite = np.isfinite(values, out=self.buffer[: values.size])
        if finite.all():
            return
        r0, c0, width = origin
        bad = start + np.flatnonzero(~finite)
        rows, cols = r0 + bad // width, c0 + bad % width
        real = cols < self.width  # not the padding of an edge chunk
        if not real.any():
            return
        bad, rows, cols = bad[real], rows[real], cols[real]
        t, c = int(rows[0]), int(cols[0])
        when = f" ({t / self.rate:.4f} s into the series)" if self.rate else ""
        t_lo, t_hi = r0 + start // width, r0 + (start + values.size - 1) // width
        raise IngestError(
            self.path,
            self.field,
            f"non-finite sample ({float(values[bad[0] - start])!r}) at channel {c}, sample {t}"
            f"{when}; {bad.size} non-finite in samples {t_lo}..{t_hi}",
        )


class _StampCheck:
    """Refuses non-finite or non-increasing timestamps, fed runs in order."""

    def __init__(self, path, field, ds):
        self.path, self.field = path, field
        self.dtype = ds.dtype
        self.itemsize = ds.dtype.itemsize
        self.width = 1
        self.last = None

    def rows_per_read(self, ds) -> int:
        return max(1, _BLOCK_BYTES // self.itemsize)

    def __call__(self, origin, start: int, values: np.ndarray) -> None:
        first = origin[0] + start
        part = np.asarray(values, dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(part))
        if bad.size:
            raise IngestError(
                self.path, self.field, f"non-finite timestamp ({float(part[bad[0]])!r}) at sample {first + bad[0]}"
            )
        if part.size == 0:
            return
        if self.last is not None and not part[0] > self.last:
            raise IngestError(self.path, self.field, f"not increasing at sample {first}")
        steps = np.flatnonzero(np.diff(part) <= 0)
        if steps.size:
            raise IngestError(self.path, self.field, f"not increasing at sample {first + steps[0] + 1}")
        self.last = part[-1]


def read_nwb(
    nwb_path,
    *,
    regions,
    series_path: str | None = None,
    aliases=None,
    inspect: bool = True,
    samples: bool = True,
    checksum: bool = False,
    each_block=None,
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
    checksum : bool
        Also take the file's SHA-256 in that pass (``identity``).
    each_block : callable(bytes), optional
        Called with each block of that pass (ingest's progress in bytes).

    Returns
    -------
    dict with ``lfp`` (LFPRecording fields without key, triggers on the series' clock),
    ``channels`` (channel, region, electrode), ``implants`` (by region), ``probe_types``
    (by name, with ``electrodes``), ``subject`` (NWB Subject fields), ``recording_end``
    (s on the series' clock of the last sample), ``implant_series`` (for a file with one series per
    probe: region -> ``series_path``, ``series_object_id``, ``first_channel``, the recording's channel
    number of that series' column 0; empty otherwise), ``identity`` (with ``samples`` and
    ``checksum``: ``nwb_sha256``, ``nwb_size``, ``nwb_mtime_ns`` from the pass that checked the
    samples, else None). With several series, channels are numbered across them in path order and
    ``lfp["series_path"]`` is the container that holds them.
    """
    path = Path(nwb_path)
    regions = list(regions)
    before = os.stat(path) if path.exists() else None
    with _open(path) as nwbfile:
        found = find_series_set(nwbfile, path, series_path)
        parts, n_channels, clock = [], 0, None  # (series, key, first channel, electrode rows)
        for series, key in found:
            data = series.data
            if len(data.shape) != 2:
                shape = list(data.shape)
                raise IngestError(path, f"{key}/data", f"expected (n_times, n_channels), found shape {shape}")
            rows = np.asarray(series.electrodes.data[:], dtype=np.int64)
            if len(rows) != data.shape[1]:
                raise IngestError(path, f"{key}/electrodes", f"{len(rows)} electrodes for {data.shape[1]} data columns")
            this = (int(data.shape[0]), *_clock(path, series, key))
            if clock is None:
                clock, first_key = this, key
            else:  # one recording: the series must be on one clock
                for field, a, b in zip(("n_samples", "rate", "starting_time"), clock, this, strict=True):
                    if field == "n_samples":
                        same = a == b
                    else:
                        same = np.isclose(a, b, rtol=1e-9, atol=1e-9)
                    if not same:
                        where = f"{key}/data" if field == "n_samples" else f"{key}/{field}"
                        raise IngestError(
                            path,
                            where,
                            f"{b!r} but {first_key} has {a!r}: series of one recording, one per probe, "
                            "must share n_samples, rate and starting_time",
                        )
            parts.append((series, key, n_channels, rows))
            n_channels += len(rows)
        n_samples, rate, t0 = clock
        series, key = found[0]
        if len(found) > 1:  # the container of the series per probe; each implant's series is kept
            key = found[0][1].rsplit("/", 1)[0]

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

        channels, implants, probes, implant_series = [], {}, {}, {}
        index_in_group = {}
        flat = [(first + column, row, skey) for _, skey, first, rows in parts for column, row in enumerate(rows)]
        for channel, row, skey in flat:
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
            implant_series.setdefault(region, skey)
            if implant_series[region] != skey:
                raise IngestError(
                    path,
                    f"{skey}/electrodes",
                    f"region {region} has channels in two series: {implant_series[region]} and {skey} "
                    "(one series per probe holds all of an implant's channels)",
                )
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
        per_series = {
            skey: {"series_path": skey, "series_object_id": obj.object_id, "first_channel": first}
            for obj, skey, first, _ in parts
        }
        result = {
            "lfp": {
                "nwb_path": str(path.absolute()),
                "series_path": key,
                "series_object_id": series.object_id if len(parts) == 1 else "",
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
            # with one series per probe: region -> the series holding its channels
            "implant_series": {r: per_series[k] for r, k in implant_series.items()} if len(parts) > 1 else {},
        }
    # after the metadata, so a file that is wrong there fails fast; each opens the file itself
    result["lfp"]["nwb_inspection"] = inspect_nwb(path) if inspect else None
    if samples:  # every sample and, with checksum, the SHA-256, in one read of the file
        identity = check_samples(path, [k for _, k, _, _ in parts], rate, checksum=checksum, each_block=each_block)
        if before is None or (identity["size"], identity["mtime_ns"]) != (before.st_size, before.st_mtime_ns):
            raise IngestError(path, "file", "changed while it was being read; ingest again once nothing writes to it")
        result["identity"] = {f"nwb_{k}": v for k, v in identity.items()} if checksum else None
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
