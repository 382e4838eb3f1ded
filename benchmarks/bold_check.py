"""Speed of ingest's one-pass BOLD check (SHA-256 + gzip decode + every voxel) vs plain hashing.

    python benchmarks/bold_check.py [--shape 64,64,20,1200] [--workdir DIR] [--keep]

Writes a paper-size float32 BOLD run (64x64x20x1200, gzip, as the simulator writes it: a smooth
baseline plus noise), then times on the same file, each after dropping the file's pages from
the page cache (posix_fadvise DONTNEED, this file only) and once more warm:

- ``sha256``: hashing alone (what ingest did before);
- ``check_bold_samples``: hashing, gunzip and the non-finite check of every volume in the brain
  mask, in one pass (what ingest does now);
- ``inflate only``: ISA-L's gzip decoding of the file, nothing else (the floor of the check);
- ``nibabel load``: nibabel decoding the whole image into memory, for scale.

With ``--workdir`` holding the file already, it is reused.

Prints MB/s of the file and of the decoded voxels and the ratios; asserts nothing. The machine is
shared, so absolute times vary between runs; the ratios come from one run.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from _cache import drop_cache  # beside this script

from lfpbold.ingest.checksum import sha256
from lfpbold.ingest.nifti import check_bold_samples


def timed(fn, path, cold: bool) -> float:
    if cold:
        drop_cache(path)
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def brain_of(shape) -> np.ndarray:
    x, y, z = shape[:3]
    grid = np.mgrid[0:x, 0:y, 0:z].astype(np.float32)
    centre = np.array([x, y, z], np.float32)[:, None, None, None] / 2
    return (((grid - centre) / centre) ** 2).sum(0) < 0.8


def inflate(path: Path) -> int:
    from isal import isal_zlib

    d, n = isal_zlib.decompressobj(wbits=31), 0
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            n += len(d.decompress(block, 32 << 20))
            while d.unconsumed_tail:
                n += len(d.decompress(d.unconsumed_tail, 32 << 20))
    return n


def write_bold(path: Path, shape) -> np.ndarray:
    rng = np.random.default_rng(0)
    x, y, z, t = shape
    brain = brain_of(shape)
    baseline = np.where(brain, 1000.0, 20.0).astype(np.float32)
    data = np.empty(shape, np.float32)
    for k in range(t):
        data[..., k] = baseline + rng.standard_normal((x, y, z)).astype(np.float32) * 10
    img = nib.Nifti1Image(data, np.diag([0.5, 0.5, 1.0, 1.0]))
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, str(path))
    return brain


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="64,64,20,1200")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    shape = tuple(int(s) for s in args.shape.split(","))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bold_check_"))
    work.mkdir(parents=True, exist_ok=True)
    path = work / "sub-01_task-rest_bold.nii.gz"
    t0 = time.perf_counter()
    if path.exists() and nib.load(str(path)).shape == shape:
        brain = brain_of(shape)
        print(f"reusing {path}")
    else:
        brain = write_bold(path, shape)
        print(f"wrote {path} {shape} float32 in {time.perf_counter() - t0:.1f} s")
    file_mb = path.stat().st_size / 1e6
    voxel_mb = np.prod(shape) * 4 / 1e6
    print(f"file {file_mb:.0f} MB gzip, {voxel_mb:.0f} MB of voxels, brain mask {int(brain.sum())} voxels")

    runs = {
        "sha256": lambda: sha256(path),
        "inflate only": lambda: inflate(path),
        "check_bold_samples": lambda: check_bold_samples(path, brain),
        "nibabel load": lambda: np.asarray(nib.load(str(path)).dataobj),
    }
    times = {}
    for name, fn in runs.items():
        cold = timed(fn, path, cold=True)
        warm = timed(fn, path, cold=False)
        times[name] = (cold, warm)
        print(
            f"{name:20s} cold {cold:6.2f} s ({file_mb / cold:6.0f} MB/s file, {voxel_mb / cold:6.0f} MB/s voxels)"
            f"   warm {warm:6.2f} s ({file_mb / warm:6.0f} MB/s file)"
        )
    c, h = times["check_bold_samples"], times["sha256"]
    n = times["nibabel load"]
    i = times["inflate only"]
    print(f"check_bold_samples / sha256: cold {c[0] / h[0]:.2f}x, warm {c[1] / h[1]:.2f}x")
    print(f"check_bold_samples / inflate only: cold {c[0] / i[0]:.2f}x, warm {c[1] / i[1]:.2f}x")
    print(f"check_bold_samples / nibabel load: cold {c[0] / n[0]:.2f}x, warm {c[1] / n[1]:.2f}x")
    if not args.keep and args.workdir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
