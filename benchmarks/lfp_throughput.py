"""Throughput of the per-scan heavy steps on one paper-size simulated scan, against raw read speed.

LFP: one implant's CleanLFP computation (lfpbold.lfp.clean_implant) vs reading its raw file,
in today's order of operations (artifact removal at the full rate, block-wise polyphase
decimation, notches after it at the output rate) and, with ``--orders old,new``, in the order
before it (the cleaning method's notches at the full rate, then scipy.signal.decimate on the
whole channel; clean_implant's private ``_old_order`` switch), both in the same run.
BOLD: read_bold + the study's preprocess_bold vs reading the .nii.gz.

    python benchmarks/lfp_throughput.py [--workdir DIR] [--keep] [--n-jobs 1,2] [--orders old,new]
                                        [--lead-s 600] [--channels N] [--skip-bold]

Simulates a paper-size study (1 rat, 1 scan, M1: 2.8 GB NWB + 344 MB BOLD, about 40 s) into
``--workdir`` unless one is there already, and deletes it at the end unless ``--keep`` (or unless
it was there before). ``--lead-s`` sets the LFP recorded before the scan (the paper size's 600 s
give a 30-minute recording; 2400 s give 60 minutes with the same scan), to measure how memory
grows with the recording's length. Prints figures, asserts nothing. Timings share the machine
with whatever else runs on it.

Page cache: the "cold" read first asks the kernel to drop this file's cached pages
(posix_fadvise DONTNEED, this file only; no root needed); the "warm" read right after comes
from memory. clean_implant then runs on a warm cache, as a populate worker would right after
the file was copied in. Peak memory is the largest summed RSS of this process and its worker
processes, sampled every 50 ms (psutil), the same
for PSS (shared libraries counted once), the largest RSS of any one process (a worker's memory,
which is what sizes a populate worker), and the kernel's high-water marks (getrusage).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import h5py
import numpy as np
from _cache import drop_cache  # beside this script

SERIES = "acquisition/ElectricalSeries"


class PeakRSS:
    """Largest summed RSS, and PSS, of this process and its children while the block runs (MB).

    RSS counts the shared libraries (numpy, scipy, MNE: about 100 MB) once per process; PSS
    shares them out, so its sum is what the process tree really holds.
    """

    def __init__(self, interval=0.05):
        self.interval, self.peak, self.peak_pss, self._stop = interval, 0.0, 0.0, threading.Event()
        self.peak_one = 0.0  # the largest RSS of any one process of the tree

    def _tree_rss(self, pss=False):
        import psutil

        me = psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                one = proc.memory_full_info().pss if pss else proc.memory_info().rss
            except (psutil.Error, AttributeError):
                continue
            total += one
            if not pss:
                self.peak_one = max(self.peak_one, one / 2**20)
        return total / 2**20

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._tree_rss())
            self.peak_pss = max(self.peak_pss, self._tree_rss(pss=True))
            self._stop.wait(self.interval)

    def __enter__(self):
        try:
            import psutil  # noqa: F401
        except ImportError:
            self.peak = self.peak_pss = self.peak_one = float("nan")
            return self
        self.start = self._tree_rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if hasattr(self, "_thread"):
            self._thread.join()


def maxrss_mb():
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return self_mb, child_mb


def cpu_s():
    """User + system CPU seconds of this process and its finished (waited-for) children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def read_hdf5(path: Path, block_s: float = 10.0) -> float:
    """Seconds to read the whole raw series, all channels, in blocks of ``block_s`` seconds."""
    t0 = time.perf_counter()
    with h5py.File(path, "r") as f:
        ds = f[SERIES]["data"]
        rate = float(f[SERIES]["starting_time"].attrs["rate"])
        step = int(block_s * rate)
        buf = np.empty((step, ds.shape[1]), dtype=ds.dtype)
        for a in range(0, ds.shape[0], step):
            b = min(a + step, ds.shape[0])
            ds.read_direct(buf, np.s_[a:b, :], np.s_[: b - a, :])
    return time.perf_counter() - t0


def read_bytes(path: Path, block: int = 64 << 20) -> float:
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.read(block):
            pass
    return time.perf_counter() - t0


def line(label, value):
    print(f"  {label:<44} {value}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=None, help="where the paper-size study is (or goes)")
    parser.add_argument("--keep", action="store_true", help="keep the simulated study")
    parser.add_argument("--n-jobs", default="1,2", help="comma-separated n_jobs values for clean_implant")
    parser.add_argument("--skip-bold", action="store_true")
    parser.add_argument("--method", help="LFP cleaning method instead of the study's default")
    parser.add_argument(
        "--orders", default="new", help="comma-separated: new (today's order), old (full-rate notches, then decimate)"
    )
    parser.add_argument(
        "--lead-s", type=float, default=600.0, help="LFP seconds before the scan (600: 30 min, 2400: 60 min)"
    )
    parser.add_argument(
        "--channels", type=int, default=None, help="clean only the first N channels (a worker's memory in less time)"
    )
    args = parser.parse_args(argv)
    orders = [o.strip() for o in args.orders.split(",")]
    if not set(orders) <= {"new", "old"}:
        parser.error(f"--orders takes new and/or old; got {args.orders!r}")

    import dataclasses

    from lfpbold.lfp import clean_implant
    from lfpbold.simulate import simulate_study
    from lfpbold.simulate.sizes import SIZES

    size = "paper"
    if args.lead_s != SIZES["paper"].lead_s:  # the paper size with a longer (or shorter) lead
        size = f"paper-lead{args.lead_s:g}s"
        SIZES[size] = dataclasses.replace(SIZES["paper"], name=size, lead_s=args.lead_s)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lfpbold-bench-"))
    study = workdir / "study"
    existed = (study / "ground_truth.json").exists()
    print(
        f"lfpbold throughput benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
        f"python {sys.version.split()[0]}, numpy {np.__version__}"
    )
    if not existed:
        t0 = time.perf_counter()
        simulate_study(study, size=size, subjects=1, scans=1, regions=("M1",))
        print(f"simulated a paper-size scan in {time.perf_counter() - t0:.1f} s -> {study}")
    else:
        print(f"using the study already in {study}")
    try:
        nwb = next(study.rglob("*_ecephys.nwb"))
        with h5py.File(nwb, "r") as f:
            ds = f[SERIES]["data"]
            n_times, n_channels = ds.shape
            sfreq = float(f[SERIES]["starting_time"].attrs["rate"])
            slices = f["events/scanner_slices/timestamp"][:]
        size_mb = nwb.stat().st_size / 1e6
        print(f"\nLFP: {nwb.name}")
        line("file size", f"{size_mb:.0f} MB ({n_channels} ch x {n_times} samples x 4 B, {n_times / sfreq:.0f} s)")
        drop_cache(nwb)
        cold = read_hdf5(nwb)
        warm = read_hdf5(nwb)
        line("sequential HDF5 read, cold (fadvise)", f"{cold:.1f} s  {size_mb / cold:.0f} MB/s")
        line("sequential HDF5 read, warm (page cache)", f"{warm:.1f} s  {size_mb / warm:.0f} MB/s")

        from lfpbold.schemas.params import LFPParams

        params = LFPParams.default_params()  # the study's set
        if args.method:
            params["lfp_cleaning"]["method"] = args.method
        print(f"  cleaning method: {params['lfp_cleaning']['method']}")
        n_total = n_channels
        if args.channels:
            n_channels = min(n_channels, args.channels)
        implant_mb = n_channels * n_times * 4 / 1e6
        times, cpus = {}, {}
        for order in orders:
            for n_jobs in (int(j) for j in args.n_jobs.split(",")):
                cpu0 = cpu_s()
                with PeakRSS() as peak:
                    t0 = time.perf_counter()
                    rate, combined, lags, kept, *_ = clean_implant(
                        nwb,
                        series_path=SERIES,
                        channels=range(n_channels),
                        sfreq=sfreq,
                        slice_onsets=slices,
                        params=params,
                        n_jobs=n_jobs,
                        _old_order=order == "old",
                    )
                    elapsed = time.perf_counter() - t0
                cpu = cpu_s() - cpu0
                times[order, n_jobs] = elapsed
                cpus[order, n_jobs] = cpu
                self_mb, child_mb = maxrss_mb()
                print(
                    f"  clean_implant, {order} order, n_jobs={n_jobs} "
                    f"({n_channels} channels -> {rate:g} Hz, {combined.size} samples)"
                )
                line("    time", f"{elapsed:.1f} s ({elapsed / n_channels:.2f} s per channel)")
                line("    CPU time, this process and its workers", f"{cpu:.1f} s (less sensitive to a shared machine)")
                line("    throughput (raw implant MB / time)", f"{implant_mb / elapsed:.0f} MB/s")
                if n_channels == n_total:  # the read is of every channel
                    line("    processing / read time (cold, warm)", f"{elapsed / cold:.1f}x, {elapsed / warm:.1f}x")
                line(
                    "    peak RSS, process tree (sampled)",
                    f"{peak.peak:.0f} MB (at start {getattr(peak, 'start', 0):.0f} MB)",
                )
                line("    peak PSS, process tree (sampled)", f"{peak.peak_pss:.0f} MB")
                line("    peak RSS, largest one process (sampled)", f"{peak.peak_one:.0f} MB")
                line("    max RSS self / largest child (getrusage)", f"{self_mb:.0f} MB / {child_mb:.0f} MB")
                del combined, kept
        for n_jobs in sorted({j for _, j in times}):
            if ("old", n_jobs) in times and ("new", n_jobs) in times:
                line(
                    f"  old / new order time (CPU time), n_jobs={n_jobs}",
                    f"{times['old', n_jobs] / times['new', n_jobs]:.2f}x "
                    f"({cpus['old', n_jobs] / cpus['new', n_jobs]:.2f}x)",
                )

        if not args.skip_bold:
            bold_part(study)
    finally:
        if not existed and not args.keep:
            shutil.rmtree(study, ignore_errors=True)
            if args.workdir is None:
                shutil.rmtree(workdir, ignore_errors=True)
            print(f"\nremoved {study}")


def bold_part(study: Path):

    from lfpbold.ingest import read_bold
    from lfpbold.plugins.bold import preprocess_bold

    path = next(study.rglob("*_bold.nii.gz"))
    size_mb = path.stat().st_size / 1e6
    print(f"\nBOLD: {path.name}")
    drop_cache(path)
    cold = read_bytes(path)
    warm = read_bytes(path)
    t0 = time.perf_counter()
    bold, affine = read_bold(path)
    t_read = time.perf_counter() - t0
    raw_mb = bold.nbytes / 1e6
    line("file size", f"{size_mb:.0f} MB gzip, {raw_mb:.0f} MB float32 {tuple(bold.shape)}")
    line(
        "file read, cold (fadvise) / warm",
        f"{cold:.2f} s / {warm:.2f} s  ({size_mb / cold:.0f} / {size_mb / warm:.0f} MB/s)",
    )
    line("read_bold (gunzip + decode)", f"{t_read:.1f} s  {raw_mb / t_read:.0f} MB/s of voxels")
    from lfpbold.ingest.bids import read_confounds
    from lfpbold.ingest.nifti import read_atlas

    atlas, _ = read_atlas(study)
    mask = {"brain": atlas["brain_mask"], "wm": atlas["wm_mask"], "ventricles": atlas["ventricle_mask"]}
    motion = read_confounds(next(study.rglob("*_desc-confounds_timeseries.tsv")), bold.shape[3])
    with PeakRSS() as peak:
        t0 = time.perf_counter()
        data = preprocess_bold(
            bold,
            t_r=1.0,
            brain_mask=mask["brain"],
            affine=affine,
            motion=motion,
            wm_mask=mask["wm"],
            ventricle_mask=mask["ventricles"],
        )  # the study's defaults
        elapsed = time.perf_counter() - t0
    line("preprocess_bold (study defaults)", f"{elapsed:.1f} s -> {data.shape} {data.dtype}")
    line("throughput (voxel MB / time)", f"{raw_mb / elapsed:.0f} MB/s")
    line("processing / read_bold time", f"{elapsed / t_read:.1f}x")
    line("processing / file read (cold, warm)", f"{elapsed / cold:.1f}x, {elapsed / warm:.1f}x")
    line("peak RSS, process tree (sampled)", f"{peak.peak:.0f} MB (at start {getattr(peak, 'start', 0):.0f} MB)")
    line("peak PSS, process tree (sampled)", f"{peak.peak_pss:.0f} MB")


if __name__ == "__main__":
    main()
