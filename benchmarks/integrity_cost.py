"""What checking a file before a make reads it costs, against reading it.

Simulates one scan (``--size small`` by default; ``paper`` for a 2.8 GB NWB file), then times,
for its BOLD NIfTI and its NWB file, each several times (warm page cache):

- the default check (``verify="stat"``: size and modification time as recorded);
- the full check (``verify="full"``: SHA-256 of the whole file), also what a touched or copied
  file costs under the default check;
- reading the data as the make does (``read_bold``; ``read_lfp`` of every channel);
- for the NWB file, ingest's check (:func:`lfpbold.ingest.nwb.check_samples` with
  ``checksum=True``: SHA-256 and every sample checked in one read), warm and cold (pages dropped
  with ``posix_fadvise(DONTNEED)``), against the full check (SHA-256 alone) in the same state.

Prints medians and each check's ratio to the read; asserts nothing.

    python benchmarks/integrity_cost.py                     # ~20 s, removes its folder
    python benchmarks/integrity_cost.py --size paper --workdir /tmp/ic --keep
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from _cache import drop_cache  # beside this script


def _median(fn, repeat: int, cold=None) -> float:
    times = []
    for _ in range(repeat):
        if cold is not None:
            drop_cache(cold)
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["small", "paper"], default="small")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    from lfpbold.ingest import fingerprint, read_bold, read_lfp
    from lfpbold.integrity import verify_file
    from lfpbold.simulate import simulate_study

    work = args.workdir or Path(tempfile.mkdtemp(prefix="lfpbold-integrity-"))
    study = work / "study"
    try:
        if not (study / "dataset_description.json").exists():
            simulate_study(
                study, subjects=1, sessions=1, scans=1, regions=("M1",), states=("awake",), seed=0, size=args.size
            )
        bold = next(study.rglob("*_bold.nii.gz"))
        nwb = next(study.rglob("*_ecephys.nwb"))
        import h5py

        with h5py.File(nwb, "r") as f:
            n_channels = f["acquisition/ElectricalSeries/data"].shape[1]
        reads = {
            bold: lambda: read_bold(bold),
            nwb: lambda: read_lfp(nwb, series_path="acquisition/ElectricalSeries", channels=range(n_channels)),
        }
        print(f"{args.size} scan, warm page cache, median of {args.repeat}")
        for path, read in reads.items():
            rec = fingerprint(path)
            read_s = _median(read, args.repeat)
            stat_s = _median(lambda p=path, r=rec: verify_file(p, **r, verify="stat"), args.repeat)
            full_s = _median(lambda p=path, r=rec: verify_file(p, **r, verify="full"), args.repeat)
            mb = os.stat(path).st_size / 1e6
            print(
                f"{path.name}: {mb:.1f} MB; read {read_s:.3f} s; stat check {stat_s * 1e6:.0f} us "
                f"({stat_s / read_s:.1e} x read); full check {full_s:.3f} s ({mb / full_s:.0f} MB/s, "
                f"{full_s / read_s:.2f} x read)"
            )
        from lfpbold.ingest.nwb import check_samples

        with h5py.File(nwb, "r") as f:
            rate = float(f["acquisition/ElectricalSeries/starting_time"].attrs["rate"])
        rec = fingerprint(nwb)
        mb = os.stat(nwb).st_size / 1e6
        for state, cold in (("warm", None), ("cold", nwb)):
            full_s = _median(lambda r=rec: verify_file(nwb, **r, verify="full"), args.repeat, cold)
            check_s = _median(
                lambda: check_samples(nwb, "acquisition/ElectricalSeries", rate, checksum=True), args.repeat, cold
            )
            print(
                f"{nwb.name} {state}: full check {full_s:.3f} s ({mb / full_s:.0f} MB/s); ingest check, samples and "
                f"SHA-256 in one read, {check_s:.3f} s ({mb / check_s:.0f} MB/s, {check_s / full_s:.2f} x full check)"
            )
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
