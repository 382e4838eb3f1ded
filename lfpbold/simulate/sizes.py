"""Study sizes: acquisition, geometry and noise calibration of the "small" and "paper" studies.

``small`` is for tests and demos (seconds per scan); ``paper`` has the reference study's
acquisition (1,200 volumes at TR 1 s, 16-channel probes at 24,414 Hz), and its per-voxel BOLD
noise is calibrated so that the CNR estimated from the maps, as the study did, is the simulated one.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Size", "SIZES"]


@dataclass(frozen=True)
class Size:
    """Acquisition and geometry of one study size (see the layout contract's Sizes table).

    Examples
    --------
    >>> small = SIZES["small"]
    >>> small.n_times, small.duration_s, small.slice_timing[:3]  # 40 s lead + 300 volumes + 5 s tail
    (690000, 345.0, [0.0, 0.1, 0.2])
    """

    name: str
    grid: tuple  # (ML, DV, AP) voxels
    voxel_mm: tuple  # (dx, dy, dz) = (ML, DV, AP) mm
    origin_mm: tuple  # world (x=ML, y=AP, z=DV) of voxel (0, 0, 0)
    n_volumes: int
    n_slices: int
    t_r: float
    fs: float
    n_channels: int
    lead_s: float
    tail_s: float
    roi_radius_mm: float
    blob_sigma_mm: float
    readout_lines: int
    probe_model: str
    contact_spacing_um: float
    global_free_mm: tuple  # the global fluctuation is 0 within r0 of a tip, 1 beyond r1
    # In-band BOLD noise (see simulate_bold): independent per-voxel SD at CNR 1 (% signal; divided
    # by the CNR, and at most), the largest share of the ROI-mean noise variance it may take, and
    # the width (mm) of the spatially coherent local part around the tip (None: 2.5 blob widths).
    voxel_noise: float = 1.17
    voxel_noise_share: float = 1.0 / 3.0
    local_noise_mm: float | None = None
    # Scanner vs amplifier clock (see lfpbold.simulate.artifacts): the scanner's seconds are
    # (1 + clock_ppm * 1e-6) amplifier seconds, plus a slow sine of clock_drift_ppm over the scan.
    clock_ppm: float = 50.0
    clock_drift_ppm: float = 2.0

    @property
    def n_times(self) -> int:
        return int(round((self.lead_s + self.n_volumes * self.t_r + self.tail_s) * self.fs))

    @property
    def duration_s(self) -> float:
        return self.n_times / self.fs

    @property
    def slice_timing(self) -> list:
        return [round(j * self.t_r / self.n_slices, 6) for j in range(self.n_slices)]


SIZES = {
    "small": Size(
        name="small",
        grid=(32, 32, 10),
        voxel_mm=(1.0, 1.0, 2.0),
        origin_mm=(-15.5, -12.5, -20.0),
        n_volumes=300,
        n_slices=10,
        t_r=1.0,
        fs=2000.0,
        n_channels=4,
        lead_s=40.0,
        tail_s=5.0,
        roi_radius_mm=1.5,
        blob_sigma_mm=1.25,
        readout_lines=16,
        probe_model="MRCM4-sim",
        contact_spacing_um=200.0,
        global_free_mm=(2.25, 5.25),
        # Calibrated (benchmarks/cnr_check.py, 12 sedated scans, seeds 0-2, CNR 1.3) so that the
        # maps' CNR as the study estimates it recovers the simulated one: mean estimate - simulated
        # +0.05 with 0.3, -0.03 with 0.4; the full pipeline (benchmarks/truth_check.py) +0.02 with
        # 0.35. The estimate does not scale with the CNR (-0.25 at CNR 1.8 with 0.4): the maps
        # carry noise that does not scale with it. A correlation map of 300 volumes is noisier
        # than one of 1,200, so less independent voxel noise is needed than at paper size.
        voxel_noise=0.35,
    ),
    "paper": Size(
        name="paper",
        grid=(64, 64, 20),
        voxel_mm=(0.5, 0.5, 1.0),
        origin_mm=(-16.0, -12.5, -21.5),
        n_volumes=1200,
        n_slices=20,
        t_r=1.0,
        fs=24414.0,
        n_channels=16,
        lead_s=600.0,
        tail_s=5.0,
        roi_radius_mm=1.0,
        blob_sigma_mm=1.0,
        readout_lines=64,
        probe_model="MRCM16LP",
        contact_spacing_um=50.0,
        global_free_mm=(2.25, 5.25),
        # Calibrated so that the maps' CNR, as the study estimated it (group-mean vs scan-wise
        # spatial r), agrees with the temporal CNR: 1.4 / 1.3 (ACC / M1) from 9 scans at CNR 1.3.
        voxel_noise=1.56,
        voxel_noise_share=0.95,
        local_noise_mm=1.0,
    ),
}
