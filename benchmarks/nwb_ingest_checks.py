"""What the NWB checks at ingest cost, against hashing the same file.

Writes one NWB file whose ElectricalSeries is float32 (time x 16 channels) of about ``--mb`` MB
(chunked as NeuroConv writes it), then times, each once warm (after a first read fills the page
cache): SHA-256 of the file, :func:`lfpbold.ingest.nwb.check_samples` (the streaming pass
refusing non-finite samples) and :func:`lfpbold.ingest.nwb.inspect_nwb` (the NWB Inspector). Prints
MB/s and the ratios to the hash. Peak memory is this process's ``ru_maxrss`` (the file is written
by a child process).

    python benchmarks/nwb_ingest_checks.py --mb 512
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np


def write(path: Path, mb: int) -> int:
    from hdmf.backends.hdf5.h5_utils import H5DataIO
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.ecephys import ElectricalSeries
    from pynwb.file import Subject

    n_ch = 16
    n = mb * (1 << 20) // (4 * n_ch)
    nwb = NWBFile(session_description="bench", identifier="bench", session_start_time=datetime(2024, 1, 1, tzinfo=UTC))
    nwb.subject = Subject(subject_id="01", species="Rattus norvegicus", sex="M", age="P90D")
    dev = nwb.create_device(name="probe")
    group = nwb.create_electrode_group(name="ACC", description="x", location="ACC", device=dev)
    for _ in range(n_ch):
        nwb.add_electrode(group=group, location="ACC", x=1.0, y=0.5, z=-2.0)
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((n, n_ch)) * 1e-4).astype(np.float32)
    region = nwb.create_electrode_table_region(list(range(n_ch)), "all")
    nwb.add_acquisition(
        ElectricalSeries(
            name="ElectricalSeries",
            data=H5DataIO(data, chunks=(min(n, 65536), n_ch)),
            electrodes=region,
            rate=24414.0,
        )
    )
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return data.nbytes


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    from lfpbold.ingest import sha256
    from lfpbold.ingest.nwb import check_samples, inspect_nwb

    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=512)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_ecephys.nwb"
        # written in a child process, so this process's peak memory is the checks' alone
        import multiprocessing

        child = multiprocessing.get_context("spawn").Process(target=write, args=(path, args.mb))
        child.start()
        child.join()
        nbytes = args.mb * (1 << 20) // (4 * 16) * 4 * 16
        size = path.stat().st_size / 1e6
        sha256(path)  # warm the page cache
        t_hash = timed(lambda: sha256(path))
        t_samples = timed(lambda: check_samples(path, "acquisition/ElectricalSeries", 24414.0))
        t_inspect = timed(lambda: inspect_nwb(path))
        print(f"file {size:.0f} MB ({nbytes / 1e6:.0f} MB of samples)")
        print(f"sha256        {t_hash:6.2f} s  {size / t_hash:7.0f} MB/s")
        rate = nbytes / 1e6 / t_samples
        print(f"check_samples {t_samples:6.2f} s  {rate:7.0f} MB/s  {t_samples / t_hash:.2f}x sha256")
        print(f"inspect_nwb   {t_inspect:6.2f} s  {size / t_inspect:7.0f} MB/s  {t_inspect / t_hash:.2f}x sha256")
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
