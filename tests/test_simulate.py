"""Tests of the study simulator: the layout contract, the files' contents and the ground truth."""

from __future__ import annotations

import csv
import json
import math

import nibabel as nib
import numpy as np
import pytest
from nilearn.signal import clean
from scipy import signal

from lfpbold.constants import CLASSIC_BANDS
from lfpbold.plugins.hrf import hrf_regressor
from lfpbold.simulate import (
    SIZES,
    LfpStream,
    build_atlas,
    expected_temporal_r,
    simulate_bold,
    simulate_latents,
    simulate_motion,
    simulate_study,
)
from lfpbold.simulate.lfp import BAND_TRANSITION, band_fir

pynwb = pytest.importorskip("pynwb")

SMALL = SIZES["small"]
STEM = "sub-01_ses-{ses}_task-rest_run-{run}"
ATLAS = "derivatives/atlas/tpl-simrat/anat/tpl-simrat"
CONFOUNDS = "_desc-confounds_timeseries.tsv"


def _tsv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _fd_power(motion, radius=5.0):
    """Power et al. (2012) FD, written independently of the simulator."""
    fd = [0.0]
    for prev, cur in zip(motion[:-1], motion[1:], strict=True):
        d = [abs(a - b) for a, b in zip(cur, prev, strict=True)]
        fd.append(sum(d[:3]) + radius * sum(d[3:]))
    return np.array(fd)


def _read_nwb(path):
    io = pynwb.NWBHDF5IO(str(path), "r")
    return io, io.read()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """One rat, a sedated and an awake session of two runs each, both implants, artifacts on."""
    out = tmp_path_factory.mktemp("sim") / "study"
    lines = []
    simulate_study(
        out, subjects=1, sessions=1, scans=2, states=("sedated", "awake"), seed=11, artifact=True, progress=lines.append
    )
    assert lines, "progress callback was never called"
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Smallest study: one M1 scan, no artifact."""
    out = tmp_path_factory.mktemp("tiny") / "study"
    return simulate_study(out, subjects=1, scans=1, regions=("M1",), seed=5)


def test_layout_files_exist(study):
    expected = [
        "dataset_description.json",
        "participants.tsv",
        "participants.json",
        "sessions.json",
        "README",
        ".bidsignore",
        "task-rest_bold.json",
        "ground_truth.json",
        "derivatives/atlas/dataset_description.json",
        f"{ATLAS}_desc-brain_mask.json",
        f"{ATLAS}_desc-brain_mask.nii.gz",
        f"{ATLAS}_desc-wm_mask.nii.gz",
        f"{ATLAS}_desc-ventricles_mask.nii.gz",
        f"{ATLAS}_label-ACC_mask.nii.gz",
        f"{ATLAS}_label-M1_mask.nii.gz",
        "truth/truth_desc-ACC_network.nii.gz",
        "truth/truth_desc-M1_network.nii.gz",
        "derivatives/realign/dataset_description.json",
        "derivatives/realign/.bidsignore",
        "sub-01/sub-01_sessions.tsv",
    ]
    for ses in ("sedated01", "awake01"):
        for run in (1, 2):
            stem = STEM.format(ses=ses, run=run)
            expected += [
                f"sub-01/ses-{ses}/func/{stem}_bold.nii.gz",
                f"derivatives/realign/sub-01/ses-{ses}/func/{stem}_desc-confounds_timeseries.tsv",
                f"derivatives/realign/sub-01/ses-{ses}/func/{stem}_desc-confounds_timeseries.json",
                f"sub-01/ses-{ses}/ecephys/{stem}_ecephys.nwb",
            ]
    missing = [p for p in expected if not (study / p).is_file()]
    assert not missing
    assert not (study / "sub-02").exists()
    assert not list(study.glob("sub-01/ses-sedated02"))


def test_metadata_files(study):
    desc = json.loads((study / "dataset_description.json").read_text())
    assert desc["BIDSVersion"] == "1.10.0" and desc["DatasetType"] == "raw"
    for name in ("atlas", "realign"):
        deriv = json.loads((study / "derivatives" / name / "dataset_description.json").read_text())
        assert deriv["DatasetType"] == "derivative" and deriv["GeneratedBy"][0]["Name"] == "lfpbold simulate"
    assert desc["GeneratedBy"][0]["Name"] == "lfpbold simulate"
    top = json.loads((study / "task-rest_bold.json").read_text())
    assert top["TaskName"] == "rest" and top["RepetitionTime"] == 1.0
    assert top["EchoTime"] == 0.015 and top["MagneticFieldStrength"] == 7
    assert np.allclose(top["SliceTiming"], np.arange(SMALL.n_slices) / SMALL.n_slices)
    assert not (study / "sub-01/ses-awake01/func" / (STEM.format(ses="awake01", run=2) + "_bold.json")).exists()
    (part,) = _tsv(study / "participants.tsv")
    assert part["participant_id"] == "sub-01" and part["species"] == "Rattus norvegicus"
    assert part["strain"] == "Long-Evans" and part["sex"] == "M" and part["age"] == "90"
    assert 250 < float(part["weight"]) < 500
    columns = json.loads((study / "participants.json").read_text())
    assert columns["age"]["Units"] == "d" and columns["weight"]["Units"] == "g"
    assert set(json.loads((study / "sessions.json").read_text())["state"]["Levels"]) == {"sedated", "awake"}
    sessions = _tsv(study / "sub-01/sub-01_sessions.tsv")
    assert [(s["session_id"], s["state"]) for s in sessions] == [("ses-sedated01", "sedated"), ("ses-awake01", "awake")]
    assert sessions[0]["acq_time"] == "2024-03-01T10:00:00"
    atlas = json.loads((study / f"{ATLAS}_desc-brain_mask.json").read_text())
    assert atlas["VoxelSize"] == list(SMALL.voxel_mm) and atlas["Name"] and atlas["Space"]


def test_nifti_grid_and_masks(study):
    brain_img = nib.load(study / f"{ATLAS}_desc-brain_mask.nii.gz")
    brain = np.asarray(brain_img.dataobj)
    assert brain.shape == SMALL.grid and brain.dtype == np.uint8 and set(np.unique(brain)) == {0, 1}
    assert brain_img.header.get_zooms() == SMALL.voxel_mm
    files = {"wm_mask": "desc-wm", "ventricles_mask": "desc-ventricles", "ACC_roi": "label-ACC", "M1_roi": "label-M1"}
    masks = {n: np.asarray(nib.load(study / f"{ATLAS}_{f}_mask.nii.gz").dataobj).astype(bool) for n, f in files.items()}
    for name, m in masks.items():
        assert m.any(), name
        assert brain[m].all(), name
    for roi in ("ACC_roi", "M1_roi"):
        assert not (masks[roi] & (masks["wm_mask"] | masks["ventricles_mask"])).any()
    assert not (masks["ACC_roi"] & masks["M1_roi"]).any()
    patterns = {}
    for r in ("ACC", "M1"):
        img = nib.load(study / f"truth/truth_desc-{r}_network.nii.gz")
        p = img.get_fdata()
        assert img.get_data_dtype() == np.float32 and np.allclose(img.affine, brain_img.affine)
        assert p.min() >= 0 and p.max() <= 1 and p[brain == 0].max() == 0
        assert p[masks[f"{r}_roi"]].mean() > 0.5  # the network is centred on the electrode
        patterns[r] = p
    assert np.corrcoef(patterns["ACC"][brain > 0], patterns["M1"][brain > 0])[0, 1] < 0.5
    bold_img = nib.load(study / "sub-01/ses-sedated01/func" / (STEM.format(ses="sedated01", run=1) + "_bold.nii.gz"))
    assert bold_img.shape == SMALL.grid + (SMALL.n_volumes,)
    assert bold_img.get_data_dtype() == np.float32
    assert bold_img.header.get_zooms() == (*SMALL.voxel_mm, SMALL.t_r)
    assert np.allclose(bold_img.affine, brain_img.affine)
    assert int(bold_img.header["qform_code"]) > 0 and int(bold_img.header["sform_code"]) > 0
    mean = np.asarray(bold_img.dataobj).mean(-1)
    assert mean[brain > 0].min() > 10 * mean[brain == 0].max()


def test_nwb_contents(study):
    path = study / "sub-01/ses-awake01/ecephys" / (STEM.format(ses="awake01", run=1) + "_ecephys.nwb")
    io, nwb = _read_nwb(path)
    try:
        assert nwb.subject.subject_id == "01" and nwb.subject.species == "Rattus norvegicus"
        assert nwb.subject.strain == "Long-Evans" and nwb.subject.sex == "M" and nwb.subject.age == "P90D"
        assert nwb.session_id == "awake01"
        assert nwb.session_start_time.tzinfo is not None
        assert nwb.session_start_time.strftime("%Y-%m-%dT%H:%M:%S") == "2024-03-08T10:00:00"
        assert set(nwb.devices) == {"probe-ACC", "probe-M1"}
        assert "NeuroNexus" in nwb.devices["probe-M1"].description
        assert nwb.devices["probe-M1"].model.name == "MRCM4-sim"
        assert set(nwb.electrode_groups) == {"ACC", "M1"}
        assert nwb.electrode_groups["M1"].location == "M1" and "left" in nwb.electrode_groups["M1"].description
        el = nwb.electrodes.to_dataframe()
        assert len(el) == 2 * SMALL.n_channels
        assert list(el["location"]) == ["ACC"] * 4 + ["M1"] * 4
        assert list(el["group_name"]) == list(el["location"])
        acc = el[el["location"] == "ACC"].iloc[0]
        assert (acc["x"], acc["y"], acc["z"]) == (1.5, 0.5, -2.8) == (acc["ap_mm"], acc["ml_mm"], acc["dv_mm"])
        m1 = el[el["location"] == "M1"]
        assert m1["hemisphere"].eq("left").all() and list(m1["probe_electrode"]) == [0, 1, 2, 3]
        assert m1["ml_mm"].eq(-3.0).all() and m1["rel_x"].eq(0).all() and m1["rel_y"].is_monotonic_increasing
        es = nwb.acquisition["ElectricalSeries"]
        assert es.data.shape == (SMALL.n_times, 8) and es.data.dtype == np.float32
        assert es.rate == SMALL.fs and es.starting_time == 0.0 and es.conversion == 1.0
        assert len(es.electrodes.data[:]) == 8
        assert SMALL.n_times / SMALL.fs >= SMALL.lead_s + SMALL.n_volumes * SMALL.t_r + SMALL.t_r
        vols = nwb.events["scanner_volumes"]["timestamp"][:]
        slices = nwb.events["scanner_slices"]["timestamp"][:]
        assert len(vols) == SMALL.n_volumes and len(slices) == SMALL.n_volumes * SMALL.n_slices
        # Scanner and amplifier clocks are not locked: 50 ppm apart (plus a slow 2 ppm drift), and
        # the TTL is registered at the first sample at or after each slice's onset.
        nominal = SMALL.lead_s + np.arange(SMALL.n_volumes) * SMALL.t_r
        assert np.all(
            np.abs(vols - nominal - (nominal - SMALL.lead_s) * 50e-6) <= 2e-6 * SMALL.n_volumes + 1 / SMALL.fs
        )
        assert np.array_equal(slices[:: SMALL.n_slices], vols)
        assert np.allclose(np.diff(slices[: SMALL.n_slices]), SMALL.t_r / SMALL.n_slices, atol=1.01 / SMALL.fs)
        periods = np.diff(slices) * SMALL.fs
        assert set(np.unique(np.round(periods))) == {200.0, 201.0}  # not a whole number of samples
        assert np.allclose(slices * SMALL.fs, np.round(slices * SMALL.fs))  # on LFP samples
        assert "TTL" in nwb.events["scanner_slices"].description
    finally:
        io.close()


def test_gradient_artifact_locked_to_slices(study):
    path = study / "sub-01/ses-sedated01/ecephys" / (STEM.format(ses="sedated01", run=2) + "_ecephys.nwb")
    io, nwb = _read_nwb(path)
    try:
        data = nwb.acquisition["ElectricalSeries"].data[:].astype(float)
        slices = nwb.events["scanner_slices"]["timestamp"][:]
    finally:
        io.close()
    fs = SMALL.fs
    data -= data[: int(30 * fs)].mean(0)
    before = data[int(5 * fs) : int(35 * fs)]
    during = data[int((SMALL.lead_s + 10) * fs) : int((SMALL.lead_s + 250) * fs)]
    after = data[int((SMALL.lead_s + SMALL.n_volumes + 0.5) * fs) :]
    ratio = np.sqrt((during**2).mean(0)) / np.sqrt((before**2).mean(0))
    assert ratio.mean() >= 100 and ratio.min() >= 20  # amplitude varies along the shank
    assert np.sqrt((after**2).mean(0)).max() < 3 * np.sqrt((before**2).mean(0)).max()
    # Every slice carries the same waveform: the two halves' templates agree.
    seg = int(SMALL.t_r / SMALL.n_slices * fs) - 4
    idx = np.round(slices * fs).astype(int)
    segs = np.stack([data[i : i + seg, 0] for i in idx])
    half = len(segs) // 2
    assert np.corrcoef(segs[:half].mean(0), segs[half:].mean(0))[0, 1] > 0.999
    # ...and a template shifted by a quarter slice does not match: it is locked to the triggers.
    shifted = np.stack([data[i + seg // 4 : i + seg // 4 + seg, 0] for i in idx[:half]])
    assert abs(np.corrcoef(segs[:half].mean(0), shifted.mean(0))[0, 1]) < 0.9


def test_artifact_off_by_default_in_small(tiny):
    truth = json.loads((tiny / "ground_truth.json").read_text())
    assert truth["scans"][0]["artifact"] is False
    io, nwb = _read_nwb(tiny / "sub-01/ses-sedated01/ecephys" / (STEM.format(ses="sedated01", run=1) + "_ecephys.nwb"))
    try:
        data = nwb.acquisition["ElectricalSeries"].data[:].astype(float)
    finally:
        io.close()
    rms = lambda a: np.sqrt(((a - a.mean(0)) ** 2).mean(0))  # noqa: E731
    before, during = data[: int(35 * SMALL.fs)], data[int(50 * SMALL.fs) : int(300 * SMALL.fs)]
    assert np.all(rms(during) < 2 * rms(before))
    assert 30e-6 < rms(before).mean() < 300e-6  # ~100 uV scale


def test_ground_truth(study):
    truth = json.loads((study / "ground_truth.json").read_text())
    assert truth["simulator"]["seed"] == 11 and truth["simulator"]["size"] == "small"
    assert truth["cnr"] == {"sedated": 1.3, "awake": 1.3} and truth["true_temporal_r"] == {
        "sedated": 0.59,
        "awake": 0.59,
    }
    assert truth["expected_observed_temporal_r"]["sedated"] == pytest.approx(0.59 * 1.3**2 / (1 + 1.3**2))
    assert len(truth["scans"]) == 4
    seeds = set()
    for scan in truth["scans"]:
        assert {
            "subject",
            "session",
            "run",
            "state",
            "seed",
            "implants",
            "artifact",
            "excluded_expected",
            "n_volumes",
        } <= set(scan)
        assert scan["artifact"] is True and scan["n_volumes"] == SMALL.n_volumes
        assert [i["region"] for i in scan["implants"]] == ["ACC", "M1"]
        for imp in scan["implants"]:
            assert (study / imp["network_pattern"]).is_file()
            assert all(b["kind"] in ("flat", "noisy", "intermittent") for b in imp["bad_channels"])
            assert len(imp["bad_channels"]) <= SMALL.n_channels // 2
            assert imp["expected_observed_temporal_r"] == pytest.approx(
                truth["expected_observed_temporal_r"][scan["state"]]
            )
            after = imp["expected_after_preprocessing_r"]
            assert set(after) == set(CLASSIC_BANDS) and all(-1 < v < 1 for v in after.values())
            # the study's nuisance regression only lowers gamma's r at 300 volumes (one scan's value
            # scatters with its own LFP draw; the mean below is tighter)
            assert 0.05 < after["gamma"] < imp["expected_observed_temporal_r"]
        seeds.add(scan["seed"])
    assert len(seeds) == 4
    # about 13 % below the formula on average (the regression's degrees of freedom), not 25 %
    gamma = [i["expected_after_preprocessing_r"]["gamma"] for s in truth["scans"] for i in s["implants"]]
    assert 0.78 < np.mean(gamma) / truth["expected_observed_temporal_r"]["sedated"] < 0.97, gamma
    assert "computed" in truth["expected_after_preprocessing_method"]
    for state, by_band in truth["expected_after_preprocessing_r"].items():
        scans = [s for s in truth["scans"] if s["state"] == state]
        kept = [s for s in scans if not s["excluded_expected"]] or scans
        for band, value in by_band.items():
            per_scan = [i["expected_after_preprocessing_r"][band] for s in kept for i in s["implants"]]
            assert value == pytest.approx(np.mean(per_scan))
    assert {(s["session"], s["state"]) for s in truth["scans"]} == {("sedated01", "sedated"), ("awake01", "awake")}


def test_motion_screening_truth_matches_files(study):
    truth = json.loads((study / "ground_truth.json").read_text())
    for scan in truth["scans"]:
        stem = STEM.format(ses=scan["session"], run=scan["run"])
        assert scan["confounds"] == f"derivatives/realign/sub-01/ses-{scan['session']}/func/{stem}{CONFOUNDS}"
        rows = _tsv(study / scan["confounds"])
        motion_columns = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
        assert list(rows[0]) == [*motion_columns, "framewise_displacement"]
        assert len(rows) == SMALL.n_volumes
        fd = _fd_power([[float(r[k]) for k in motion_columns] for r in rows])
        assert rows[0]["framewise_displacement"] == "n/a"
        np.testing.assert_allclose([float(r["framewise_displacement"]) for r in rows[1:]], fd[1:], atol=1e-9)
        if scan["state"] == "sedated":
            assert fd.max() < 0.1 and scan["excluded_expected"] is False
        else:
            bad = fd > 0.1
            scrub = bad | np.r_[bad[1:], False] | np.r_[False, bad[:-1]]
            assert scan["excluded_expected"] == bool(scrub.mean() > 0.25)


def test_motion_statistics():
    sedated = [_fd_power(simulate_motion(s, "sedated", 1200).tolist()).max() for s in range(30)]
    assert max(sedated) < 0.07  # well below the 0.1 mm threshold
    fds = [_fd_power(simulate_motion(s, "awake", 300).tolist()) for s in range(60)]
    assert np.mean([(fd > 0.1).any() for fd in fds]) > 0.5  # awake scans have spikes
    excluded = []
    for fd in fds:
        bad = fd > 0.1
        excluded.append((bad | np.r_[bad[1:], False] | np.r_[False, bad[:-1]]).mean() > 0.25)
    assert 0 < np.mean(excluded) < 0.4  # some, not most, awake scans fail


def test_deterministic(tiny, tmp_path):
    again = simulate_study(tmp_path / "again", subjects=1, scans=1, regions=("M1",), seed=5)
    other = simulate_study(tmp_path / "other", subjects=1, scans=1, regions=("M1",), seed=6)
    stem = STEM.format(ses="sedated01", run=1)
    bold = lambda d: np.asarray(nib.load(d / f"sub-01/ses-sedated01/func/{stem}_bold.nii.gz").dataobj)  # noqa: E731
    motion = lambda d: (d / f"derivatives/realign/sub-01/ses-sedated01/func/{stem}{CONFOUNDS}").read_text()  # noqa: E731

    def lfp(d):
        io, nwb = _read_nwb(d / f"sub-01/ses-sedated01/ecephys/{stem}_ecephys.nwb")
        try:
            return nwb.acquisition["ElectricalSeries"].data[:], nwb.identifier
        finally:
            io.close()

    assert np.array_equal(bold(tiny), bold(again))
    assert motion(tiny) == motion(again)
    (a, id_a), (b, id_b), (c, id_c) = lfp(tiny), lfp(again), lfp(other)
    assert np.array_equal(a, b) and id_a == id_b
    assert not np.array_equal(a, c) and id_a != id_c
    assert not np.array_equal(bold(tiny), bold(other))
    assert json.loads((tiny / "ground_truth.json").read_text()) == json.loads((again / "ground_truth.json").read_text())


def test_lfp_stream_independent_of_read_pattern():
    lat = simulate_latents(3, size="small", regions=("ACC",))
    stream = LfpStream(lat, "small", 3, artifact=True)
    whole = stream.read(0, 100_000)
    parts = np.concatenate([stream.read(a, b) for a, b in [(0, 777), (777, 50_001), (50_001, 100_000)]])
    assert np.array_equal(whole, parts)
    assert np.array_equal(stream.read(30_000, 30_010), whole[30_000:30_010])


def test_bad_contacts_and_coherence_along_the_shank():
    lat = simulate_latents(3, size="small", regions=("M1",))
    bad = {0: "flat", 1: "noisy", 3: "intermittent"}
    with_artifact = LfpStream(lat, "small", 3, artifact=True, bad_channels=bad).read(0, SMALL.n_times)
    assert with_artifact[:, 0].astype(float).std() < 1e-6  # a broken lead: no LFP, no artifact
    x = LfpStream(lat, "small", 3, artifact=False, bad_channels=bad).read(0, SMALL.n_times).astype(float)
    good = LfpStream(lat, "small", 3, artifact=False, bad_channels={}).read(0, SMALL.n_times).astype(float)
    assert np.diff(x[: int(30 * SMALL.fs), 1]).std() > 5 * np.diff(good[: int(30 * SMALL.fs), 1]).std()
    win = x[: (SMALL.n_times // 2000) * 2000, 3].reshape(-1, 2000)
    rms = np.sqrt(((win - np.median(x[:, 3])) ** 2).mean(1))
    assert (rms > 4 * np.median(rms)).sum() >= 2
    with pytest.raises(ValueError, match="kinds"):
        LfpStream(lat, "small", 3, artifact=False, bad_channels={0: "broken"})
    # Gamma coherence falls with the distance between contacts; slow rhythms stay coherent.
    f, near = signal.coherence(good[:, 0], good[:, 1], fs=SMALL.fs, nperseg=2000)
    _, far = signal.coherence(good[:, 0], good[:, 3], fs=SMALL.fs, nperseg=2000)
    gamma = (f >= 60) & (f <= 90)
    assert far[gamma].mean() < near[gamma].mean() < 0.8
    assert far[(f >= 1) & (f <= 3)].mean() > 0.5


def test_written_bold_is_the_model(tiny):
    """The NIfTI holds simulate_bold's output for the scan's recorded seed."""
    truth = json.loads((tiny / "ground_truth.json").read_text())
    scan = truth["scans"][0]
    lat = simulate_latents(scan["seed"], size="small", regions=("M1",))
    atlas = build_atlas("small", ("M1",), seed=5)
    motion = simulate_motion(scan["seed"], "sedated", SMALL.n_volumes)
    expected = simulate_bold(atlas, lat, motion, scan["seed"])
    written = np.asarray(nib.load(tiny / scan["bold"]).dataobj)
    assert np.array_equal(written, expected)
    roi = np.asarray(nib.load(tiny / f"{ATLAS}_label-M1_mask.nii.gz").dataobj).astype(bool)
    assert np.array_equal(roi, atlas.rois["M1"])


def test_latent_truth_exact_per_scan():
    """Unfiltered, the per-scan r between HRF-convolved gamma drive and s + e/CNR is the formula."""
    for c, cnr in [(0.59, 1.3), (0.3, 0.8), (0.9, 3.0)]:
        lat = simulate_latents(42, size="small", regions=("ACC",), true_temporal_r=c, cnr=cnr)
        reg = lat["regions"]["ACC"]
        _, x = hrf_regressor(reg["gamma_drive"], lat["power_times"], lat["volume_onsets"], SMALL.t_r)
        r = np.corrcoef(x, reg["s"] + reg["e"] / cnr)[0, 1]
        assert r == pytest.approx(expected_temporal_r(c, cnr), abs=1e-9)
        assert np.corrcoef(reg["g"], reg["s"])[0, 1] == pytest.approx(c, abs=1e-9)


def test_expected_observed_r_empirical():
    """Over many scans, HRF-convolved (gamma drive + noise) vs band-passed ROI-mean BOLD ~ expected."""
    atlas = build_atlas("small", ("ACC", "M1"))
    rs = []
    for k in range(20):
        lat = simulate_latents(500 + k, size="small")
        bold = simulate_bold(atlas, lat, simulate_motion(500 + k, "sedated", SMALL.n_volumes), 500 + k)
        for region in ("ACC", "M1"):
            y = bold[atlas.rois[region]].mean(0)[:, None]
            y = clean(y, detrend=True, standardize=None, low_pass=0.1, high_pass=0.01, t_r=SMALL.t_r)[:, 0]
            _, x = hrf_regressor(
                lat["regions"][region]["gamma_drive"], lat["power_times"], lat["volume_onsets"], SMALL.t_r
            )
            rs.append(np.corrcoef(x, y)[0, 1])
    assert np.mean(rs) == pytest.approx(expected_temporal_r(0.59, 1.3), abs=0.05)
    assert expected_temporal_r(0.59, 1.3) == pytest.approx(0.37, abs=0.005)


def test_lfp_band_power_follows_the_drives(tiny):
    """Gamma power estimated from the written LFP (1-s spectrogram) follows the gamma drive; delta is opposite."""
    truth = json.loads((tiny / "ground_truth.json").read_text())
    scan = truth["scans"][0]
    lat = simulate_latents(scan["seed"], size="small", regions=("M1",))
    io, nwb = _read_nwb(tiny / scan["ecephys"])
    try:
        lfp = nwb.acquisition["ElectricalSeries"].data[:].astype(float).mean(1)
        onsets = nwb.events["scanner_volumes"]["timestamp"][:]
    finally:
        io.close()
    fs = SMALL.fs
    f, t, spec = signal.spectrogram(lfp, fs=fs, window="hann", nperseg=int(fs), noverlap=int(0.9 * fs))
    reg = {}
    for band, (lo, hi) in CLASSIC_BANDS.items():
        _, reg[band] = hrf_regressor(spec[(f >= lo) & (f <= hi)].mean(0), t, onsets, SMALL.t_r)
    m1 = lat["regions"]["M1"]
    _, true_gamma = hrf_regressor(m1["gamma_drive"], lat["power_times"], onsets, SMALL.t_r)
    assert np.corrcoef(reg["gamma"], true_gamma)[0, 1] > 0.9
    assert np.corrcoef(reg["delta"], m1["g"])[0, 1] < -0.1
    assert np.corrcoef(reg["gamma"], m1["s"])[0, 1] > 0.3


def test_bands_do_not_leak_into_each_other():
    """Each band's generating filter keeps its power inside the band: ~60 dB down outside it,
    flat in its middle (a third-order Butterworth leaked several percent into the next band)."""
    for fs in (SMALL.fs, SIZES["paper"].fs):
        for band, (lo, hi) in CLASSIC_BANDS.items():
            h = band_fir((lo, hi), fs)
            f = np.concatenate([np.linspace(0.05, lo, 200), np.linspace(hi, 300.0, 400)])
            _, out = signal.freqz(h, worN=f, fs=fs)
            assert 20 * np.log10(np.abs(out).max()) < -58.0, (fs, band)  # Kaiser design: 60 dB within its ripple
            width = (hi - lo) * BAND_TRANSITION
            _, mid = signal.freqz(h, worN=np.linspace(lo + width, hi - width, 50), fs=fs)
            assert np.allclose(np.abs(mid), 1.0, atol=2e-3), (fs, band)


def test_per_state_truths(tmp_path):
    """--true-temporal-r / --cnr per state: each scan is simulated with its own state's values."""
    out = simulate_study(
        tmp_path / "s",
        subjects=1,
        scans=1,
        regions=("M1",),
        states=("sedated", "awake"),
        true_temporal_r={"sedated": 0.59, "awake": 0.4},
        cnr={"sedated": 1.3, "awake": 0.9},
        seed=3,
    )
    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth["true_temporal_r"] == {"sedated": 0.59, "awake": 0.4}
    assert truth["cnr"] == {"sedated": 1.3, "awake": 0.9}
    assert truth["expected_observed_temporal_r"]["awake"] == pytest.approx(expected_temporal_r(0.4, 0.9))
    for scan in truth["scans"]:
        c, cnr = truth["true_temporal_r"][scan["state"]], truth["cnr"][scan["state"]]
        assert (scan["true_temporal_r"], scan["cnr"]) == (c, cnr)
        assert scan["implants"][0]["true_temporal_r"] == c and scan["implants"][0]["cnr"] == cnr
        # The data follow the state's values: the latents' exact per-scan truth.
        lat = simulate_latents(scan["seed"], size="small", regions=("M1",), true_temporal_r=c, cnr=cnr)
        bold = np.asarray(nib.load(out / scan["bold"]).dataobj)
        atlas = build_atlas("small", ("M1",), seed=3)
        motion = simulate_motion(scan["seed"], scan["state"], SMALL.n_volumes)
        assert np.array_equal(bold, simulate_bold(atlas, lat, motion, scan["seed"], cnr=cnr))
    with pytest.raises(ValueError, match="missing: \\['awake'\\]"):
        simulate_study(tmp_path / "x", states=("sedated", "awake"), cnr={"sedated": 1.3})
    with pytest.raises(ValueError, match="no such state"):
        simulate_study(tmp_path / "y", cnr={"sedated": 1.3, "asleep": 1.0})


def test_cli_per_state_option(tmp_path):
    from click.testing import CliRunner

    from lfpbold.cli import main

    args = ["simulate", str(tmp_path / "s"), "--subjects", "1", "--scans", "1", "--regions", "M1"]
    res = CliRunner().invoke(main, [*args, "--states", "sedated,awake", "--true-temporal-r", "sedated=0.59,awake=0.4"])
    assert res.exit_code == 0, res.output
    truth = json.loads((tmp_path / "s" / "ground_truth.json").read_text())
    assert truth["true_temporal_r"] == {"sedated": 0.59, "awake": 0.4} and truth["cnr"] == {
        "sedated": 1.3,
        "awake": 1.3,
    }
    res = CliRunner().invoke(main, ["simulate", str(tmp_path / "t"), "--cnr", "sedated=abc"])
    assert res.exit_code != 0 and "state=number" in res.output


def test_input_checked(tmp_path):
    with pytest.raises(ValueError, match="size"):
        simulate_study(tmp_path / "a", size="huge")
    with pytest.raises(ValueError, match="states"):
        simulate_study(tmp_path / "b", states=("asleep",))
    with pytest.raises(ValueError, match="true_temporal_r"):
        simulate_study(tmp_path / "c", true_temporal_r=1.5)
    with pytest.raises(ValueError, match="regions"):
        simulate_study(tmp_path / "d", regions="M1")
    with pytest.raises(ValueError, match="at most 16 characters"):  # the Region table's width
        simulate_study(tmp_path / "d2", regions=("AnteriorCingulate20",))
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "x").write_text("")
    with pytest.raises(FileExistsError):
        simulate_study(tmp_path / "e")


def test_other_regions_get_coordinates():
    atlas = build_atlas("paper", ("ACC", "M1", "V1", "Xyz1"))
    assert set(atlas.rois) == {"ACC", "M1", "V1", "Xyz1"}
    assert all(m.any() for m in atlas.rois.values())
    assert 6000 <= atlas.brain.sum() <= 20000


@pytest.mark.slow
def test_paper_size_scan(tmp_path):
    out = simulate_study(tmp_path / "paper", subjects=1, scans=1, regions=("M1",), size="paper")
    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth["scans"][0]["artifact"] is True
    io, nwb = _read_nwb(out / truth["scans"][0]["ecephys"])
    try:
        es = nwb.acquisition["ElectricalSeries"]
        paper = SIZES["paper"]
        assert es.data.shape == (paper.n_times, 16) and es.rate == 24414.0
        assert es.data.chunks[1] == 1
        assert len(nwb.events["scanner_slices"]["timestamp"][:]) == 1200 * 20
    finally:
        io.close()
    img = nib.load(out / truth["scans"][0]["bold"])
    assert img.shape == (64, 64, 20, 1200) and img.header.get_zooms() == (0.5, 0.5, 1.0, 1.0)
    assert math.isclose(json.loads((out / f"{ATLAS}_desc-brain_mask.json").read_text())["VoxelSize"][2], 1.0)
