"""What the NWB checks at ingest cost, against reading and hashing the same file, before vs after.

Writes NWB files whose ElectricalSeries is float32 (time x 16 channels) of about ``--mb`` MB, one per
storage layout (``contiguous``: pynwb's default; ``rows``: uncompressed chunks of 65536 rows x all
channels; ``channel``: uncompressed chunks of 1 s x 1 channel, as ``lfpbold simulate`` writes;
``gzip``: deflated chunks, as NeuroConv writes by default), then times
for each, cold (the file's pages dropped with ``posix_fadvise(DONTNEED)`` first) and warm, median of
``--repeat``:

- ``read``: reading the file once in 8 MB blocks, nothing else (the floor);
- ``sha256``: hashing it (:func:`lfpbold.ingest.sha256`);
- ``before``: what ingest did before one pass: the sample check through h5py (time blocks of whole
  chunks), then SHA-256 in a second read;
- ``after``: :func:`lfpbold.ingest.nwb.check_samples` with ``checksum=True``: one read, each block
  hashed and its samples checked as numpy views of the block (deflated chunks inflated from it).

Prints MB/s of file and the ratios, of wall time and of CPU time (all threads; on a machine
shared with other jobs the wall ratios vary between runs, the CPU ones much less); asserts
nothing. The NWB Inspector (``--inspect``) is timed once on the first layout (it reads metadata,
not samples). Peak memory is this process's ``ru_maxrss`` (files are written by a child process).

    python benchmarks/nwb_ingest_checks.py --mb 512 [--layouts contiguous,rows,channel,gzip]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from _cache import drop_cache  # beside this script

N_CH = 16
RATE = 24414.0
KEY = "acquisition/ElectricalSeries"


def write(path: Path, mb: int, layout: str) -> None:
    from hdmf.backends.hdf5.h5_utils import H5DataIO
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.ecephys import ElectricalSeries
    from pynwb.file import Subject

    n = mb * (1 << 20) // (4 * N_CH)
    nwb = NWBFile(session_description="bench", identifier="bench", session_start_time=datetime(2024, 1, 1, tzinfo=UTC))
    nwb.subject = Subject(subject_id="01", species="Rattus norvegicus", sex="M", age="P90D")
    dev = nwb.create_device(name="probe")
    group = nwb.create_electrode_group(name="ACC", description="x", location="ACC", device=dev)
    for _ in range(N_CH):
        nwb.add_electrode(group=group, location="ACC", x=1.0, y=0.5, z=-2.0)
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((n, N_CH)) * 1e-4).astype(np.float32)
    wrapped = {
        "contiguous": data,
        "rows": H5DataIO(data, chunks=(min(n, 65536), N_CH)),
        "channel": H5DataIO(data, chunks=(min(n, int(RATE)), 1)),
        "gzip": H5DataIO(data, chunks=(min(n, 65536), N_CH), compression="gzip", compression_opts=4),
    }[layout]
    region = nwb.create_electrode_table_region(list(range(N_CH)), "all")
    nwb.add_acquisition(ElectricalSeries(name="ElectricalSeries", data=wrapped, electrodes=region, rate=RATE))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def median(fn, path: Path, repeat: int, cold: bool) -> tuple[float, float]:
    """Median wall and CPU seconds (all threads of this process) of ``fn``."""
    wall, cpu = [], []
    for _ in range(repeat):
        if cold:
            drop_cache(path)
        else:
            fn()  # warm: the run before fills the page cache
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main():
    from lfpbold.ingest import checksum, sha256
    from lfpbold.ingest import nwb as nwb_module

    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--layouts", default="contiguous,rows,channel,gzip")
    parser.add_argument("--inspect", action="store_true")
    args = parser.parse_args()

    def read_only(p):
        with open(p, "rb", buffering=0) as f:
            while f.read(checksum.BLOCK_BYTES):
                pass

    def before(p):  # the h5py sample pass, then a second read to hash
        real = nwb_module._raw_layout
        nwb_module._raw_layout = lambda ds: None
        try:
            nwb_module.check_samples(p, KEY, RATE)
        finally:
            nwb_module._raw_layout = real
        sha256(p)

    def after(p):
        nwb_module.check_samples(p, KEY, RATE, checksum=True)

    import multiprocessing

    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        for i, layout in enumerate(args.layouts.split(",")):
            path = Path(tmp) / f"bench_{layout}_ecephys.nwb"
            # written in a child process, so this process's peak memory is the checks' alone
            child = multiprocessing.get_context("spawn").Process(target=write, args=(path, args.mb, layout))
            child.start()
            child.join()
            size = path.stat().st_size / 1e6
            with nwb_module.h5py.File(path) as f:
                raw = nwb_module._raw_layout(f[f"{KEY}/data"])
            how = "h5py (a filter the pass does not undo)" if raw is None else "the bytes of the pass"
            print(f"{layout}: file {size:.0f} MB, samples checked from {how}")
            for cold in (True, False):
                t = {
                    name: median(lambda fn=fn, p=path: fn(p), path, args.repeat, cold)
                    for name, fn in (("read", read_only), ("sha256", sha256), ("before", before), ("after", after))
                }
                label = "cold" if cold else "warm"
                wall = {k: v[0] for k, v in t.items()}
                cpu = {k: v[1] for k, v in t.items()}
                print(
                    f"  {label} wall: "
                    + ", ".join(f"{k} {v:.2f} s ({size / v:.0f} MB/s)" for k, v in wall.items())
                    + f"; after = {wall['after'] / wall['sha256']:.2f}x sha256, "
                    f"{wall['after'] / wall['read']:.2f}x read, before = {wall['before'] / wall['after']:.2f}x after"
                )
                print(
                    f"  {label} CPU:  "
                    + ", ".join(f"{k} {v:.2f} s" for k, v in cpu.items())
                    + f"; after = {cpu['after'] / cpu['sha256']:.2f}x sha256, "
                    f"before = {cpu['before'] / cpu['after']:.2f}x after"
                )
            if args.inspect and i == 0:
                t0 = time.perf_counter()
                nwb_module.inspect_nwb(path)
                print(f"  inspect_nwb {time.perf_counter() - t0:.2f} s")
            path.unlink()
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
