"""The check that matters: simulate, ingest, populate, and compare every result with the truth it was given.

For each seed, a study of sedated and awake scans with per-state truths (true temporal r
``sedated=0.59,awake=0.4`` by default, one CNR) is simulated, ingested and populated on a private
database, and the figures issue #12 names are checked against ``ground_truth.json``:

* per state, region and band: the mean observed per-scan temporal r (Pearson) over the kept scans,
  within 0.05 of the simulator's honest expected value (``expected_after_preprocessing_r``, the
  r an ideal pipeline observes after the study's own preprocessing);
* per state and region: the true r the study's noise-ceiling inference recovers from the mean
  gamma r and the CNR it estimates from the maps (``lfpbold results``' ``inferred_true_r``),
  within 0.07 of the simulated true r of that state; and the estimated CNR itself (within 0.15,
  reported);
* the bad contacts ``CleanLFP`` left out equal the simulated ones (scan, implant, contact);
* at paper size, the group-mean gamma spatial r of the sedated scans >= 0.9.

Prints one line per check with its bound, a summary over seeds, and exits 1 if any check fails.

    python benchmarks/truth_check.py                                  # small, seeds 0,1,2: 24 scans each, ~5 min a seed
    python benchmarks/truth_check.py --size paper --seeds 0 --subjects 3 --scans 2 --states sedated --workdir /big/disk
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

BANDS = ("delta", "theta", "alpha", "beta", "gamma")


def _parse_states(text: str, states) -> dict:
    if "=" not in text:
        return {s: float(text) for s in states}
    pairs = dict(item.split("=", 1) for item in text.split(","))
    return {s: float(pairs[s]) for s in states}


def observed_vs_expected(truth: dict, rows: list[dict]) -> dict:
    """``{(state, region, band): (mean observed r, mean expected r, n)}`` over the scans with a
    stored per-scan r (the kept ones), each scan's own expected value from ``ground_truth.json``."""
    expected = {
        (s["subject"], s["session"], s["run"], imp["region"]): (s["state"], imp["expected_after_preprocessing_r"])
        for s in truth["scans"]
        for imp in s["implants"]
    }
    pairs = defaultdict(list)
    for r in rows:
        if r["band"] not in BANDS:
            continue
        state, exp = expected[(r["subject"], r["session"], r["run"], r["region"])]
        pairs[(state, r["region"], r["band"])].append((r["value"], exp[r["band"]]))
    return {k: (*np.mean(v, axis=0), len(v)) for k, v in pairs.items()}


def bad_channels(truth: dict, rows: list[dict]) -> tuple[dict, dict]:
    """The simulated bad contacts and the ones CleanLFP left out, keyed by (scan, implant, contact)."""
    simulated = {
        (s["subject"], s["session"], s["run"], imp["region"], b["channel"]): b["kind"]
        for s in truth["scans"]
        for imp in s["implants"]
        for b in imp["bad_channels"]
    }
    recorded = {
        (r["subject"], r["session"], r["run"], r["region"], r["electrode"]): r["excluded_reason"]
        for r in rows
        if r["excluded_reason"] is not None
    }
    return simulated, recorded


def run_seed(seed: int, args, work: Path) -> list[tuple]:
    import lfpbold
    from lfpbold.pipeline import drop
    from lfpbold.plugins.noise_ceiling import infer_true_r, nuisance_retention
    from lfpbold.schemas import acquisition, analysis, relations
    from lfpbold.simulate import simulate_study

    states = tuple(args.states.split(","))
    true_r = _parse_states(args.true_temporal_r, states)
    cnr = _parse_states(args.cnr, states)
    study = work / f"study-{seed}"
    t0 = time.perf_counter()
    if not (study / "ground_truth.json").exists():
        shutil.rmtree(study, ignore_errors=True)
        simulate_study(
            study,
            subjects=args.subjects,
            scans=args.scans,
            states=states,
            true_temporal_r=true_r,
            cnr=cnr,
            seed=seed,
            size=args.size,
        )
    t_sim = time.perf_counter() - t0
    truth = json.loads((study / "ground_truth.json").read_text())
    prefix = f"truth{seed}_"
    db = lfpbold.connect(prefix=prefix, home=work / "home")
    try:
        t0 = time.perf_counter()
        report = lfpbold.ingest_study(study)
        if report.errors:
            raise SystemExit("ingest errors:\n  " + "\n  ".join(map(str, report.errors)))
        outcome = lfpbold.populate(processes=args.processes, reserve_jobs=args.processes > 1, display_progress=False)
        failed = {t: r["error_list"] for t, r in outcome.items() if r["error_list"]}
        if failed:
            raise SystemExit(f"populate errors: {failed}")
        t_pop = time.perf_counter() - t0
        df = lfpbold.results()
        metric = (relations.TemporalCorrelation.Metric & {"metric": "pearson"}).to_dicts()
        channels = (analysis.CleanLFP.Channel * acquisition.LFPRecording.Channel).to_dicts()
        bold = (analysis.PreprocessedBold & {"excluded": False}) * acquisition.Session.proj("state")
        n_kept = defaultdict(list)
        for r in bold.proj("n_kept", "state").to_dicts():
            n_kept[r["state"]].append(r["n_kept"])
        t_r = float(np.median(acquisition.FMRIRun.to_arrays("t_r")))
    finally:
        if not args.keep:
            drop(prefix, db.connection)
    n_scans = len(truth["scans"])
    print(f"\n== seed {seed}: {n_scans} {args.size} scans ({t_sim:.0f} s simulate, {t_pop:.0f} s ingest+populate)")
    rows = []  # (seed, check, state, region, band, value, target)
    for (state, region, band), (obs, exp, _n) in sorted(observed_vs_expected(truth, metric).items()):
        rows.append((seed, "observed r - expected", state, region, band, obs, exp))
    for _, row in df[df["band"] == "gamma"].iterrows():
        st, reg = row["state"], row["region"]
        rows.append((seed, "CNR from the maps - simulated", st, reg, "gamma", row["cnr"], cnr[st]))
        rows.append((seed, "inferred true r - simulated", st, reg, "gamma", row["inferred_true_r"], true_r[st]))
        # the same inference at the simulated CNR instead of the maps' estimate
        kept = float(np.median(n_kept[st])) if n_kept.get(st) else np.nan
        observed = row["temporal_r"] / nuisance_retention(int(kept), t_r=t_r, n_confounds=9)
        given = infer_true_r(observed, cnr=cnr[st], n_trials=int(row["n_scans"]), n_timepoints=int(kept))["true_r"]
        rows.append((seed, "inferred true r at the simulated CNR - simulated", st, reg, "gamma", given, true_r[st]))
        rows.append((seed, "group-mean spatial r", st, reg, "gamma", row["spatial_r"], np.nan))
    simulated, recorded = bad_channels(truth, channels)
    found, wrong = len(set(simulated) & set(recorded)), len(set(recorded) - set(simulated))
    rows.append((seed, "bad contacts missed + good ones left out", "", "", "", len(simulated) - found + wrong, 0))
    print(f"   bad contacts: {found} of {len(simulated)} found, {wrong} good contacts left out")
    for _, check, st, reg, band, value, target in rows[:-1]:
        print(f"   {check:<32} {st:<7} {reg:<3} {band:<5} {value:+.3f}  (target {target:+.3f})")
    return rows


# check -> (tolerance on the mean over seeds and regions, pooled per state and band); spatial r: a lower bound
BOUNDS = {
    "observed r - expected": 0.05,
    "CNR from the maps - simulated": 0.15,
    "inferred true r - simulated": 0.07,
    "inferred true r at the simulated CNR - simulated": 0.07,
    "bad contacts missed + good ones left out": 0,
}


def pooled_checks(rows, size: str) -> list[tuple[str, float, str, bool]]:
    """The pass/fail checks: each figure averaged over seeds and regions, per state (and band)."""
    groups = defaultdict(list)
    for _seed, check, state, _region, band, value, target in rows:
        groups[(check, state, band)].append((value, target))
    out = []
    for (check, state, band), pairs in sorted(groups.items()):
        values, targets = np.array(pairs, dtype=float).T
        if check == "group-mean spatial r":
            if size == "paper" and state == "sedated":
                name = f"{check} {state} {band} (every seed and region)"
                out.append((name, values.min(), ">= 0.9", bool(values.min() >= 0.9)))
            continue
        dev = float(np.mean(values - targets))
        tol = BOUNDS[check]
        worst = float((values - targets)[np.argmax(np.abs(values - targets))])
        name = f"{check} {state} {band} (worst single {worst:+.3f})"
        out.append((name, dev, f"|mean| <= {tol:g}", abs(dev) <= tol + 1e-12))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=("small", "paper"), default="small")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--scans", type=int, default=3, help="runs per state per subject")
    ap.add_argument("--states", default="sedated,awake")
    ap.add_argument("--true-temporal-r", default="sedated=0.59,awake=0.4")
    ap.add_argument("--cnr", default="1.3")
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder, removed afterwards")
    ap.add_argument("--keep", action="store_true", help="keep the studies and databases")
    args = ap.parse_args(argv)

    work = args.workdir.resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="lfpbold-truth-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        rows = [r for seed in map(int, args.seeds.split(",")) for r in run_seed(seed, args, work)]
    finally:
        if not args.keep:
            from lfpbold.db import stop_embedded

            stop_embedded(work / "home")
            shutil.rmtree(work, ignore_errors=True)
    checks = pooled_checks(rows, args.size)
    print(f"\n== pooled over seeds {args.seeds} and both regions, per state")
    for name, value, bound, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name:<70} {value:+.3f}  ({bound})")
    failed = [c for c in checks if not c[3]]
    print(f"== {len(checks) - len(failed)} of {len(checks)} checks pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
