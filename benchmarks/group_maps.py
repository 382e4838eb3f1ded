"""How long the voxel-wise group tests of CohortMapStats take, by number of scans and permutations.

Times :func:`lfpbold.plugins.group_maps.one_sample_map_test` (parametric t, FDR, and nilearn's
sign-flipping max-t and cluster-size FWE) on simulated correlation maps in a compact mask of
``--voxels`` brain voxels, and prints wall and CPU seconds per map and
the ratio to the parametric-only test. A cohort tests 1 + n_bands maps (6 for the classic bands).

    python benchmarks/group_maps.py                 # 936 voxels (small atlas); 4/8/16 scans; 0/100/1000 permutations
    python benchmarks/group_maps.py --voxels 6157   # the study's brain size
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lfpbold.plugins.group_maps import one_sample_map_test


def _mask(n_voxels: int) -> np.ndarray:
    side = int(np.ceil(np.cbrt(n_voxels))) + 1
    mask = np.zeros((side, side, side), bool)
    mask.ravel()[:n_voxels] = True
    return mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voxels", type=int, default=936, help="brain voxels (936: the small simulated atlas)")
    parser.add_argument("--scans", default="4,8,16")
    parser.add_argument("--permutations", default="0,100,1000")
    args = parser.parse_args()
    mask = _mask(args.voxels)
    n_voxels = int(mask.sum())
    rng = np.random.default_rng(0)
    one_sample_map_test(np.tanh(rng.standard_normal((4, n_voxels))), mask, np.eye(4), n_permutations=10)  # imports
    print(f"{n_voxels} brain voxels")
    print(f"{'scans':>5} {'perms':>6} {'wall s':>8} {'cpu s':>8} {'x param.':>9}")
    for n_scans in map(int, args.scans.split(",")):
        maps = np.tanh(0.3 + 0.2 * rng.standard_normal((n_scans, n_voxels)))
        base = None
        for n_perm in map(int, args.permutations.split(",")):
            w0, c0 = time.perf_counter(), time.process_time()
            one_sample_map_test(maps, mask, np.eye(4), n_permutations=n_perm)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            base = base or wall
            print(f"{n_scans:>5} {n_perm:>6} {wall:>8.3f} {cpu:>8.3f} {wall / base:>9.0f}")


if __name__ == "__main__":
    main()
