"""Does the CNR estimated from the maps, as the study does, recover the simulated CNR?

    python benchmarks/cnr_check.py [--sizes small,paper] [--seeds 0,1,2] [--scans 12] [--cnr 1.8]
                                   [--voxel-noise X]

For each size and seed, simulates ``--scans`` sedated scans of one study (rats x 3 runs, both
regions) in memory and runs the study's map steps on them with the platform's plugins: the
``study`` BOLD preprocessing (FD screening, 0.75 mm smoothing, motion/WM/ventricle/global
regression, 0.01-0.1 Hz), the ROI-mean seed map and the gamma power map (``correlation_map``),
group-mean maps (``group_mean_map``), spatial r (``spatial_similarity``) and
``estimate_cnr(group_r, mean_scan_r, n_scans, n_brain_voxels)``: what ``Cohort`` computes, per
region. The gamma regressor is the study's 1 s spectrogram of the ideal combined LFP
(:func:`lfpbold.simulate.expected._ideal_regressors`; the real LFP tracks gamma at r 0.98), so
no NWB file is written and no database is needed. Sedated scans that fail the FD screen are
left out, as the study does.

Prints, per size, seed and region, the simulated and estimated CNR and their difference; asserts
nothing. ``--voxel-noise``, ``--voxel-noise-share`` and ``--local-noise-mm`` override the size's
map-noise calibration (:class:`lfpbold.simulate.sizes.Size`), to calibrate it.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from lfpbold.plugins.bold import fd_screening, preprocess_bold
from lfpbold.plugins.hrf import RODENT_P, spm_hrf
from lfpbold.plugins.maps import correlation_map, group_mean_map, roi_mean, spatial_similarity
from lfpbold.plugins.noise_ceiling import estimate_cnr
from lfpbold.simulate.anatomy import build_atlas
from lfpbold.simulate.expected import _ideal_regressors
from lfpbold.simulate.signals import POWER_STEP, simulate_bold, simulate_latents, simulate_motion
from lfpbold.simulate.sizes import SIZES
from lfpbold.simulate.study import scan_seed_for

REGIONS = ("ACC", "M1")


def study_cnr(size, seed: int, n_scans: int, cnr: float, true_r: float = 0.59) -> dict:
    """``{region: (estimated CNR, group r, mean scan-wise r, scans used)}`` for one simulated study."""
    atlas = build_atlas(size, REGIONS, seed)
    kernel = spm_hrf(POWER_STEP, p=RODENT_P)
    brain = atlas.brain
    maps = {r: {"seed": [], "gamma": []} for r in REGIONS}
    runs = 3
    for i in range(n_scans):
        subject, run = i // runs + 1, i % runs + 1
        sseed = scan_seed_for(seed, subject, "sedated", 1, run)
        lat = simulate_latents(sseed, size=size, regions=REGIONS, true_temporal_r=true_r, cnr=cnr)
        mot = simulate_motion(sseed, "sedated", size.n_volumes)
        if fd_screening(mot, state="sedated")["excluded"]:
            continue
        bold = simulate_bold(atlas, lat, mot, sseed, cnr=cnr)
        data = preprocess_bold(
            bold,
            t_r=size.t_r,
            brain_mask=brain,
            affine=atlas.affine,
            motion=mot,
            wm_mask=atlas.wm,
            ventricle_mask=atlas.ventricles,
        )
        del bold
        rng = np.random.default_rng(np.random.SeedSequence([sseed, 8]))
        for r in REGIONS:
            seed_ts = roi_mean(data, atlas.rois[r][brain])
            gamma = _ideal_regressors(lat["regions"][r], lat, size, kernel, size.t_r, rng)[-1]
            maps[r]["seed"].append(correlation_map(seed_ts, data))
            maps[r]["gamma"].append(correlation_map(gamma, data))
    out = {}
    for r in REGIONS:
        seed_maps, power_maps = np.array(maps[r]["seed"]), np.array(maps[r]["gamma"])
        n = len(seed_maps)
        group_r = spatial_similarity(group_mean_map(power_maps), group_mean_map(seed_maps))
        scan_r = float(np.mean([spatial_similarity(p, s) for p, s in zip(power_maps, seed_maps, strict=True)]))
        est = estimate_cnr(group_r=group_r, mean_scan_r=scan_r, n_trials=n, n_timepoints=int(brain.sum()))
        out[r] = (est, group_r, scan_r, n)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="small")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--scans", type=int, default=12)
    ap.add_argument("--cnr", type=float, default=1.8)
    ap.add_argument("--voxel-noise", type=float, default=None)
    ap.add_argument("--voxel-noise-share", type=float, default=None)
    ap.add_argument("--local-noise-mm", type=float, default=None)
    args = ap.parse_args(argv)
    print(
        f"{'size':6} {'seed':>4} {'region':6} {'scans':>5} {'group r':>8} {'scan r':>7} "
        f"{'simulated':>9} {'estimated':>9} {'diff':>6} {'s':>6}"
    )
    for name in args.sizes.split(","):
        size = SIZES[name]
        override = {
            k: getattr(args, k)
            for k in ("voxel_noise", "voxel_noise_share", "local_noise_mm")
            if getattr(args, k) is not None
        }
        size = dataclasses.replace(size, **override)
        diffs = []
        for seed in (int(s) for s in args.seeds.split(",")):
            t0 = time.perf_counter()
            res = study_cnr(size, seed, args.scans, args.cnr)
            dt = time.perf_counter() - t0
            for r, (est, g, s, n) in res.items():
                diffs.append(est - args.cnr)
                print(
                    f"{name:6} {seed:>4} {r:6} {n:>5} {g:8.3f} {s:7.3f} {args.cnr:9.2f} {est:9.2f} "
                    f"{est - args.cnr:+6.2f} {dt:6.1f}"
                )
        print(f"{name}: mean estimated - simulated {np.mean(diffs):+.3f}, largest |diff| {np.max(np.abs(diffs)):.2f}")


if __name__ == "__main__":
    main()
