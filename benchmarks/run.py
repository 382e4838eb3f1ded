"""What one scan costs in lfpbold, stage by stage, against reading its files and against a direct script.

    python benchmarks/run.py [--size small|paper] [--workdir DIR] [--keep] [--throughput-scans 8] [--processes 1,2]

1. Simulates one subject, one scan, one region (M1) at ``--size`` (``lfpbold simulate``).
2. Prints, per stage, wall time, peak memory (summed RSS of the process tree, sampled every
   50 ms with psutil, else from /proc), and the ratios to the read floor and to the reference:
   - read floor: every file of the study read once, each file's cached pages dropped first
     (``posix_fadvise(DONTNEED)``, as ``benchmarks/lfp_throughput.py`` does);
   - ``lfpbold ingest`` and ``lfpbold populate`` (a fresh schema prefix each), populate also
     per table (from the time each table's "done" line appears in ``populate -v``'s output);
   - ``benchmarks/reference.py``: the same outputs for that scan with SciPy, nibabel and nilearn
     alone, in a subprocess, from the same files.
3. Compares the reference's outputs to lfpbold's (fetched from the populated database) twice:
   each reference step fed *lfpbold's* upstream result (so a step is compared alone; these agree
   to float32 rounding where the methods agree), and the reference end to end from the files
   (where its simpler LFP cleaning differs from lfpbold's, and what that does downstream).
4. Populate throughput on an 8-scan small study with 1 and 2 worker processes (``lfpbold
   populate --processes N``, one BLAS thread per worker): scans per hour and the speedup.

Every measurement uses a fresh database prefix, dropped afterwards with its array-store files.
The database is ``$LFPBOLD_HOME``'s (or DataJoint's settings); without ``LFPBOLD_HOME`` a new
embedded server is started in ``WORKDIR/home`` and stopped at the end. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from _cache import drop_cache  # beside this script

HERE = Path(__file__).resolve().parent
LFPBOLD = [sys.executable, "-m", "lfpbold.cli"]


# --------------------------------------------------------------------------------------------
# Measuring


def _tree_rss_bytes(pid: int) -> int:
    """Summed RSS of a process and its descendants (psutil, else /proc)."""
    try:
        import psutil
    except ImportError:
        return _proc_tree_rss(pid)
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def _proc_tree_rss(pid: int) -> int:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            statm = Path(f"/proc/{entry}/statm").read_text().split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        rss[int(entry)] = int(statm[1]) * page
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total


class Run:
    """Run a command, timing it and sampling its process tree's RSS; keeps its output lines with their times."""

    def __init__(self, cmd, env=None, interval=0.05):
        self.cmd, self.env, self.interval = [str(c) for c in cmd], env, interval
        self.peak, self.lines = 0, []

    def __call__(self):
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            self.cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                self.peak = max(self.peak, _tree_rss_bytes(proc.pid))
                stop.wait(self.interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        for line in proc.stdout:
            self.lines.append((time.perf_counter() - t0, line.rstrip("\n")))
        proc.wait()
        stop.set()
        sampler.join()
        self.seconds = time.perf_counter() - t0
        self.returncode = proc.returncode
        if proc.returncode:
            tail = "\n".join(line for _, line in self.lines[-30:])
            raise RuntimeError(f"{' '.join(self.cmd)} exited {proc.returncode}:\n{tail}")
        return self


def read_floor(study: Path) -> tuple[float, int]:
    """Seconds to read every file of the study once, cold; and the bytes read."""
    files = sorted(p for p in study.rglob("*") if p.is_file())
    for p in files:
        drop_cache(p)
    t0 = time.perf_counter()
    total = 0
    for p in files:
        with open(p, "rb", buffering=0) as f:
            while chunk := f.read(64 << 20):
                total += len(chunk)
    return time.perf_counter() - t0, total


# --------------------------------------------------------------------------------------------
# Database helpers (lfpbold's side)


def _env(home: Path | None) -> dict:
    env = dict(os.environ)
    if home is not None:
        env["LFPBOLD_HOME"] = str(home)
    return env


def _connect(prefix: str):
    from lfpbold.db import connect

    return connect(prefix=prefix)


def storage_bytes(prefix: str) -> tuple[int | None, int]:
    """Database bytes of the prefix's schemas (PostgreSQL only; None otherwise) and array-store bytes."""
    db = _connect(prefix)
    conn = db.connection
    db_bytes = None
    try:
        rows = conn.query(
            "SELECT coalesce(sum(pg_total_relation_size(quote_ident(schemaname) || '.' || quote_ident(tablename))), 0) "
            "FROM pg_tables WHERE starts_with(schemaname, %s)",
            args=(prefix,),
        ).fetchall()
        db_bytes = int(rows[0][0])
    except Exception as err:  # MySQL/MariaDB: no pg_total_relation_size
        print(f"  (database size not measured: {type(err).__name__}: {err})")
        db_bytes = None
    return db_bytes, sum(p.stat().st_size for d in _store_dirs(prefix) for p in d.rglob("*") if p.is_file())


def _store_dirs(prefix: str) -> list[Path]:
    from lfpbold.db import lfpbold_home

    root = Path(lfpbold_home()) / "store" / "_hash"
    return [d for d in root.glob(prefix + "*") if d.is_dir()] if root.exists() else []


def drop_prefix(prefix: str) -> None:
    from lfpbold.pipeline import drop

    dirs = _store_dirs(prefix)
    drop(prefix, _connect(prefix).connection)
    for d in dirs:  # the dropped schemas' array-store objects
        shutil.rmtree(d, ignore_errors=True)


def lfpbold_outputs(prefix: str, region: str = "M1", band: str = "gamma") -> dict:
    """lfpbold's outputs for the study's one scan and implant, at parameter sets 0."""
    from lfpbold.schemas import analysis, relations

    _connect(prefix)
    key = dict(subject="01", session="sedated01", run=1, region=region)
    sets = dict(lfp_paramset=0, band_paramset=0, bold_paramset=0, relation_paramset=0)
    k = dict(key, **sets)
    kb = dict(k, band=band)
    out = {}
    out["rate"], out["combined"] = (analysis.CleanLFP & k).fetch1("sampling_rate", "combined")
    out["power"], out["regressor"] = (analysis.BandPower.Band & kb).fetch1("power", "regressor")
    out["times"] = (analysis.BandPower & k).fetch1("times")
    out["excluded"], out["keep"], out["fd"] = (analysis.PreprocessedBold & k).fetch1("excluded", "keep", "fd")
    if out["excluded"]:
        return out
    out["bold"] = analysis.bold_data(k)
    out["seed_ts"], out["seed_map"] = (relations.SeedMap & k).fetch1("seed_ts", "seed_map")
    out["power_map"] = (relations.LFPPowerMap.Map & kb & {"map_method": "pearson"}).fetch1("power_map")
    out["spatial_r"] = (relations.SpatialSimilarity.Band & kb).fetch1("r")
    out["temporal_r"] = (relations.TemporalCorrelation.Metric & kb & {"metric": "pearson"}).fetch1("value")
    # The paper-style results table agrees with the per-scan rows (one scan: its mean is its value).
    from lfpbold.query import results

    table = results().to_dict("records")
    out["results_row"] = next(r for r in table if r["region"] == region and r["band"] == band)
    return out


# --------------------------------------------------------------------------------------------
# Comparing


def _max_rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("nan")
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) or 1.0))


def _r(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1]) if a.shape == b.shape else float("nan")


#: step -> (what the two sides do the same way or not, tolerance of the step-alone comparison or None)
STEPS = {
    "combined": (
        "clean LFP: reference subtracts one average template, IIR notches, plain mean; lfpbold "
        "regresses sub-sample-aligned templates, FIR notches, phase-aligned mean",
        None,
    ),
    "power": ("gamma band power (same band-pass design, spectrogram and bins)", 1e-5),
    "regressor": ("HRF-convolved gamma regressor at the volumes", 1e-5),
    "bold": ("preprocessed BOLD (same nilearn smoothing and signal.clean)", 1e-5),
    "seed_map": ("seed map", 1e-5),
    "power_map": ("gamma LFP power map", 1e-5),
    "spatial_r": ("gamma spatial r", 1e-5),
    "temporal_r": ("gamma temporal r", 1e-5),
}


def compare(ref_alone: dict, ref_chain: dict, theirs: dict) -> list[str]:
    """Lines saying where the reference and lfpbold agree and where not, and why."""
    lines = []
    if ref_chain["excluded"] != theirs["excluded"] or not np.array_equal(ref_chain["keep"], theirs["keep"]):
        lines.append("  motion screening: DIFFERENT verdict or kept volumes")
    else:
        lines.append(
            f"  motion screening: same ({'excluded' if theirs['excluded'] else 'kept'}, "
            f"{int(theirs['keep'].sum())} volumes), max FD diff {_max_rel(ref_chain['fd'], theirs['fd']):.1e} (rel)"
        )
    lines.append(
        f"  {'output':<11} {'step alone: max rel diff':>25} {'verdict':>9}   {'end to end: max rel diff, r':>28}"
    )
    for name, (what, tol) in STEPS.items():
        if name not in theirs:
            continue
        chain = ref_chain.get(name)
        end = (
            f"{abs(chain - theirs[name]):.2e} ({chain:.4f} vs {theirs[name]:.4f})"
            if np.isscalar(theirs[name])
            else f"{_max_rel(chain, theirs[name]):.2e}, r {_r(chain, theirs[name]):.6f}"
        )
        if tol is None:
            lines.append(f"  {name:<11} {'-':>25} {'differs':>9}   {end:>28}   {what}")
            continue
        mine = ref_alone[name]
        diff = abs(mine - theirs[name]) if np.isscalar(theirs[name]) else _max_rel(mine, theirs[name])
        verdict = "agrees" if diff <= tol else "DIFFERS"
        lines.append(f"  {name:<11} {diff:>25.2e} {verdict:>9}   {end:>28}   {what}")
    lines.append(
        "  step alone: each reference step fed lfpbold's upstream output (its stored float32 clean LFP, "
        "band power, BOLD); tolerance 1e-5 relative (float32 storage)"
    )
    lines.append(
        "  end to end: the reference from the files alone; differences start at the clean LFP (methods differ)"
    )
    return lines


def reference_alone(scan: dict, theirs: dict) -> dict:
    """Each reference step on lfpbold's upstream result."""
    sys.path.insert(0, str(HERE))
    import reference as ref

    out = {}
    fed = ref.run_reference(scan, combined=theirs["combined"], rate=theirs["rate"])  # band power on lfpbold's LFP
    out["power"] = fed["power"]
    out["regressor"] = ref.hrf_regressor(
        theirs["power"].astype(np.float64), theirs["times"], scan["volumes"], scan["t_r"]
    )[0]
    out["bold"] = fed.get("bold")
    if theirs["excluded"]:
        return out
    keep = theirs["keep"]
    roi = scan["roi"][scan["brain"]]
    data = theirs["bold"]
    seed_ts = data[:, roi].mean(axis=1, dtype=np.float64)
    out["seed_map"] = ref.pearson_map(seed_ts, data)
    out["power_map"] = ref.pearson_map(theirs["regressor"][keep], data)
    out["spatial_r"] = ref.pearson(theirs["power_map"], theirs["seed_map"])
    out["temporal_r"] = ref.pearson(theirs["regressor"][keep], theirs["seed_ts"])
    return out


# --------------------------------------------------------------------------------------------
# Stages


def _mb(n) -> str:
    return f"{n / 1e6:,.0f} MB" if n is not None else "n/a"


def _stage(label, seconds, peak, floor, ref_seconds):
    ratio_ref = f"{seconds / ref_seconds:6.1f}x" if ref_seconds else "     -"
    memory = f"{peak / 2**20:8.0f} MB" if peak else f"{'-':>11}"
    print(f"  {label:<34} {seconds:8.2f} s  {memory}  {seconds / floor:8.1f}x  {ratio_ref}")


def per_table_times(lines) -> list[tuple[str, float]]:
    """(table, seconds) from the times populate -v printed each 'Table: n done' line."""
    out, last, seen = [], 0.0, set()
    for t, line in lines:
        m = re.match(r"^\s*([A-Z]\w+): (\d+) done", line)
        if m and m.group(1) not in seen:  # the summary at the end repeats them
            seen.add(m.group(1))
            out.append((m.group(1), t - last))
            last = t
    return out


def one_scan(study: Path, env: dict, size: str) -> None:
    prefix = f"bench{uuid.uuid4().hex[:6]}_"
    floor, nbytes = read_floor(study)
    print(
        f"\nread floor: {nbytes / 1e6:,.0f} MB in {len(list(study.rglob('*')))} entries, cold, in "
        f"{floor:.2f} s ({nbytes / 1e6 / floor:,.0f} MB/s)"
    )
    ref_out = study.parent / f"{study.name}_reference.npz"
    ref_run = Run([sys.executable, HERE / "reference.py", study, "--out", ref_out], env=env)()
    try:
        ingest = Run([*LFPBOLD, "--prefix", prefix, "ingest", study], env=env)()
        populate = Run([*LFPBOLD, "--prefix", prefix, "populate", "-v"], env=env)()
        print(f"\n  {'stage':<34} {'wall':>10}  {'peak RSS':>11}  {'/ floor':>9}  {'/ ref':>7}")
        _stage("read floor (every file, cold)", floor, 0, floor, ref_run.seconds)
        _stage("reference.py (subprocess)", ref_run.seconds, ref_run.peak, floor, ref_run.seconds)
        _stage("lfpbold ingest", ingest.seconds, ingest.peak, floor, ref_run.seconds)
        _stage("lfpbold populate (1 process)", populate.seconds, populate.peak, floor, ref_run.seconds)
        _stage(
            "ingest + populate",
            ingest.seconds + populate.seconds,
            max(ingest.peak, populate.peak),
            floor,
            ref_run.seconds,
        )
        print("  populate per table (time until its line in populate -v; includes the process start for the first):")
        for table, seconds in per_table_times(populate.lines):
            print(f"    {table:<32} {seconds:8.1f} s")
        print(
            "  reference steps (in its process): "
            + " | ".join(line for _, line in ref_run.lines if line.startswith("read "))
        )
        db_bytes, store_bytes = storage_bytes(prefix)
        print(
            f"  database + array store for this scan: {_mb(db_bytes)} + {_mb(store_bytes)} (study files {_mb(nbytes)})"
        )

        sys.path.insert(0, str(HERE))
        import reference as ref

        scan = ref.read_scan(study)
        theirs = lfpbold_outputs(prefix)
        with np.load(ref_out) as saved:  # the subprocess's end-to-end outputs
            chain = {k: (v[()] if v.ndim == 0 else v) for k, v in saved.items()}
        ref_out.unlink()
        alone = reference_alone(scan, theirs)
        print("\nreference vs lfpbold, one scan (M1, gamma, parameter sets 0):")
        for line in compare(alone, chain, theirs):
            print(line)
        row = theirs.get("results_row")
        if row is not None:
            print(f"  lfpbold.results gamma row: spatial r {row.get('spatial_r')}, temporal r {row.get('temporal_r')}")
    finally:
        drop_prefix(prefix)


def throughput(workdir: Path, env: dict, n_scans: int, processes: list[int]) -> None:
    study = workdir / "throughput_study"
    if not (study / "ground_truth.json").exists():
        Run(
            [
                *LFPBOLD,
                "simulate",
                "--subjects",
                2,
                "--scans",
                n_scans // 2,
                "--regions",
                "M1",
                "--size",
                "small",
                study,
            ],
            env=env,
        )()
    n = len(list(study.rglob("*_bold.nii.gz")))
    print(f"\npopulate throughput, {n} small scans (one M1 implant each), one BLAS thread per worker:")
    env = dict(env, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    base = None
    for p in processes:
        prefix = f"bthr{uuid.uuid4().hex[:6]}_"
        try:
            Run([*LFPBOLD, "--prefix", prefix, "ingest", study], env=env)()
            run = Run([*LFPBOLD, "--prefix", prefix, "populate", "-q", "--processes", p], env=env)()
            per_hour = n * 3600 / run.seconds
            base = base or per_hour
            db_bytes, store_bytes = storage_bytes(prefix)
            print(
                f"  --processes {p}: {run.seconds:7.1f} s, {per_hour:6.0f} scans/h, speedup {per_hour / base:.2f}x, "
                f"peak RSS {run.peak / 2**20:,.0f} MB; database + store {_mb(db_bytes)} + {_mb(store_bytes)}"
            )
        finally:
            drop_prefix(prefix)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("small", "paper"), default="small")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the simulated studies go (default: a temp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the simulated studies")
    parser.add_argument("--throughput-scans", type=int, default=8, help="small scans in the throughput study (0: skip)")
    parser.add_argument("--processes", default="1,2", help="worker counts for the throughput part")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="lfpbold-run-"))
    workdir.mkdir(parents=True, exist_ok=True)
    own_home = None
    if "LFPBOLD_HOME" not in os.environ:
        own_home = workdir / "home"
        os.environ["LFPBOLD_HOME"] = str(own_home)
    env = _env(None)
    print(
        f"lfpbold benchmarks/run.py, {time.strftime('%Y-%m-%d %H:%M %Z')}, {platform.node()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}, python {sys.version.split()[0]}, size {args.size}"
    )
    study = workdir / f"study_{args.size}"
    try:
        if not (study / "ground_truth.json").exists():
            sim = Run(
                [*LFPBOLD, "simulate", "--subjects", 1, "--scans", 1, "--regions", "M1", "--size", args.size, study],
                env=env,
            )()
            print(
                f"simulated 1 scan ({args.size}) in {sim.seconds:.1f} s, peak RSS {sim.peak / 2**20:,.0f} MB -> {study}"
            )
        one_scan(study, env, args.size)
        if args.throughput_scans:
            throughput(workdir, env, args.throughput_scans, [int(p) for p in args.processes.split(",")])
    finally:
        if not args.keep:
            shutil.rmtree(study, ignore_errors=True)
            shutil.rmtree(workdir / "throughput_study", ignore_errors=True)
        if own_home is not None:
            from lfpbold.db import stop_embedded

            stop_embedded(own_home)
            if not args.keep:
                shutil.rmtree(own_home, ignore_errors=True)
        if args.workdir is None and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
