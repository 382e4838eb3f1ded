"""The reference study's check at its own size: simulate, ingest, populate, compare with the truth.

A sedated study of paper-size scans (64x64x20x1200 BOLD, 16-channel LFP at 24,414 Hz for 30 min,
MR gradient artifacts on), ACC and M1, true temporal r 0.59, CNR 1.3. Prints every figure the
issue asks for, each with its bound, plus wall time per step and disk use; exits 1 if a check fails.

    python benchmarks/paper_check.py --workdir /big/disk/paper --subjects 4 --scans 3 --processes 2   # ~75 GB
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path


def _du(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e9


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("benchmarks/out/paper"))
    ap.add_argument("--subjects", type=int, default=3)
    ap.add_argument("--scans", type=int, default=2)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--regions", default="ACC,M1", help="implant regions (ACC alone halves the disk needed)")
    ap.add_argument("--keep", action="store_true", help="keep the study and database afterwards")
    args = ap.parse_args(argv)

    import lfpbold
    from lfpbold.pipeline import drop
    from lfpbold.plugins.noise_ceiling import infer_true_r
    from lfpbold.simulate import simulate_study

    work = args.workdir.resolve()
    study = work / "study"
    times = {}
    t0 = time.perf_counter()
    if not (study / "ground_truth.json").exists():
        shutil.rmtree(study, ignore_errors=True)
        simulate_study(
            study,
            subjects=args.subjects,
            sessions=1,
            scans=args.scans,
            regions=tuple(args.regions.split(",")),
            states=("sedated",),
            true_temporal_r=0.59,
            cnr=1.3,
            seed=args.seed,
            size="paper",
            progress=print,
        )
    times["simulate"] = time.perf_counter() - t0
    truth = json.loads((study / "ground_truth.json").read_text())
    db = lfpbold.connect(prefix="paper_", home=work / "home")
    t0 = time.perf_counter()
    report = lfpbold.ingest_study(study)
    times["ingest"] = time.perf_counter() - t0
    if report.errors:
        print("ingest errors:", *report.errors, sep="\n  ")
        return 1
    t0 = time.perf_counter()
    outcome = lfpbold.populate(
        processes=args.processes, reserve_jobs=args.processes > 1, display_progress=True, echo=print
    )
    times["populate"] = time.perf_counter() - t0
    failed = {t: r["error_list"] for t, r in outcome.items() if r["error_list"]}

    df = lfpbold.results()
    gamma = df.query("band == 'gamma'").set_index("region")
    expected = truth["expected_observed_temporal_r"]["sedated"]  # keyed by state; this check simulates sedated
    n_scans = int(gamma["n_scans"].iloc[0])
    checks = []
    for region, row in gamma.iterrows():
        known = infer_true_r(row["temporal_r"], cnr=truth["cnr"]["sedated"], n_trials=n_scans, n_timepoints=1200)[
            "true_r"
        ]
        checks += [
            (f"{region} group-mean gamma spatial r", row["spatial_r"], ">= 0.90", row["spatial_r"] >= 0.9),
            (
                f"{region} mean gamma temporal r (expected {expected:.3f})",
                row["temporal_r"],
                "within 0.07",
                abs(row["temporal_r"] - expected) <= 0.07,
            ),
            (
                f"{region} inferred true r, CNR estimated ({row['cnr']:.1f})",
                row["inferred_true_r"],
                "within 0.07 of 0.59",
                abs(row["inferred_true_r"] - 0.59) <= 0.07,
            ),
            (f"{region} inferred true r, CNR given (1.3)", known, "within 0.07 of 0.59", abs(known - 0.59) <= 0.07),
        ]
        for method in ("ols", "soft", "censor"):
            value = row[f"removal_{method}_r"]
            checks.append((f"{region} seed map after {method} removal vs original", value, ">= 0.90", value >= 0.9))

    print("\n== paper-size check:", f"{args.subjects} rats x {args.scans} scans, {args.regions}, sedated ==")
    for name, value, bound, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name:<58} {value:7.3f}  ({bound})")
    print("\n== the results table (gamma) ==")
    cols = [
        "spatial_r",
        "scanwise_spatial_r",
        "temporal_r",
        "temporal_p",
        "cnr",
        "inferred_true_r",
        "temporal_variance_explained",
        "peak_lag_s",
        "removal_ols_r",
        "removal_soft_r",
        "removal_censor_r",
        "n_scans",
    ]
    print(gamma[cols].round(3).to_string())
    n_files = len(truth["scans"])
    raw_gb = _du(study)
    print("\n== time and space ==")
    for step, seconds in times.items():
        print(f"  {step:<10} {seconds:8.1f} s")
    print(f"  populate per scan: {times['populate'] / n_files:.1f} s  ({n_files} scans, {args.processes} processes)")
    print(
        f"  study on disk: {raw_gb:.1f} GB; populate throughput {raw_gb * 1e3 / times['populate']:.0f} MB/s of raw data"
    )
    print(f"  database + array store: {_du(work / 'home'):.2f} GB")
    if failed:
        print("\npopulate errors:", json.dumps({t: [str(e) for e in v] for t, v in failed.items()}, indent=2))
    if not args.keep:
        drop("paper_", db.connection)
    ok = not failed and all(c[3] for c in checks)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
