"""How fast the results table answers once a study is populated.

Simulates a small study of 12 scans (3 rats x sedated + awake x 2 runs, ACC and M1: the demo's
study), ingests and populates it on the embedded PostgreSQL, then times, each several times:

- ``lfpbold results`` as a user runs it (a new process: Python start, imports, connect, query);
- ``lfpbold.results()`` in a running process, for the stored grouping (reads ``Cohort`` rows) and
  per subject (summarises the stored per-scan rows again);
- the parts of the command: imports, ``connect`` (DataJoint activating the schemas), the query.

Prints medians and ranges; asserts nothing.

    python benchmarks/results_speed.py                      # ~2 min on 2 cores, removes its folder
    python benchmarks/results_speed.py --workdir /tmp/rs --keep
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _fmt(times: list[float]) -> str:
    return f"median {statistics.median(times):6.3f} s  (min {min(times):.3f}, max {max(times):.3f}, n={len(times)})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the study and database afterwards")
    args = ap.parse_args(argv)
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="lfpbold_results_speed_"))).resolve()
    home = work / "home"
    os.environ["LFPBOLD_HOME"] = str(home)
    prefix = "speed_"

    import lfpbold
    from lfpbold.db import stop_embedded
    from lfpbold.pipeline import drop
    from lfpbold.simulate import simulate_study

    study = work / "study"
    if not (study / "ground_truth.json").exists():
        simulate_study(
            study,
            subjects=3,
            sessions=1,
            scans=2,
            regions=("ACC", "M1"),
            states=("sedated", "awake"),
            seed=0,
            size="small",
        )
    db = lfpbold.connect(prefix=prefix, home=home)
    lfpbold.ingest_study(study)
    t0 = time.perf_counter()
    lfpbold.populate(display_progress=False)
    populate_s = time.perf_counter() - t0
    n_scans = len(list(study.rglob("*_bold.nii.gz")))

    cli = [str(Path(sys.executable).parent / "lfpbold"), "--prefix", prefix, "results"]
    env = dict(os.environ, LFPBOLD_HOME=str(home))

    def command():
        subprocess.run(cli, env=env, check=True, capture_output=True)

    imports = [sys.executable, "-c", "import lfpbold.cli, lfpbold.db, lfpbold.query, datajoint, pandas"]

    def just_imports():
        subprocess.run(imports, env=env, check=True, capture_output=True)

    connect_code = f"import lfpbold; lfpbold.connect(prefix={prefix!r})"

    def imports_and_connect():
        subprocess.run([sys.executable, "-c", connect_code], env=env, check=True, capture_output=True)

    print(f"study: {study} ({n_scans} scans, ACC + M1); populate took {populate_s:.0f} s")
    print(f"load average before timing: {os.getloadavg()[0]:.2f} (2 cores)")
    command()  # warm the page cache once
    print(f"  lfpbold results (new process)       {_fmt(_timed(command, args.repeat))}")
    print(f"    of which: Python + imports        {_fmt(_timed(just_imports, args.repeat))}")
    print(f"    imports + connect (activation)    {_fmt(_timed(imports_and_connect, args.repeat))}")
    print(f"  results() stored grouping, in process {_fmt(_timed(lfpbold.results, args.repeat))}")
    by_subject = lambda: lfpbold.results(by=["subject", "state", "region", "band"])  # noqa: E731
    print(f"  results(by subject), in process     {_fmt(_timed(by_subject, args.repeat))}")
    if not args.keep:
        drop(prefix, db.connection)
        stop_embedded(home)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
