"""Tests for lfpbold.plugins.bold: FD, motion screening and BOLD preprocessing against nilearn directly."""

import nibabel as nib
import numpy as np
import pytest
from nilearn.image import get_data, smooth_img
from nilearn.signal import clean

from lfpbold.plugins import bold as bold_mod
from lfpbold.plugins import get_plugin
from lfpbold.plugins.bold import bandpass_only, framewise_displacement, preprocess_bold, screen_motion

T_R = 1.0
AFFINE = np.diag([0.5, 0.5, 1.0, 1.0])


@pytest.fixture
def scan():
    """A small realigned scan: 4-D float32 BOLD with masks and motion."""
    rng = np.random.default_rng(42)
    shape, n_t = (9, 8, 5), 90
    bold = (rng.standard_normal(shape + (n_t,)) + 100).astype(np.float32)
    brain = np.zeros(shape, bool)
    brain[1:8, 1:7, 1:4] = True
    brain[0, 3, 2] = True  # touches the array edge, where smoothing reflects
    wm = np.zeros(shape, bool)
    wm[2:6, 3, 1:3] = True
    csf = np.zeros(shape, bool)
    csf[4, 1:3, 2] = True
    motion = np.cumsum(rng.standard_normal((n_t, 6)) * 0.01, axis=0)
    return dict(bold=bold, brain=brain, wm=wm, csf=csf, motion=motion)


def _nilearn_reference(scan, *, fwhm, global_signal, sample_mask=None):
    """The pipeline written out with nilearn on the whole array in one go."""
    smoothed = get_data(smooth_img(nib.Nifti1Image(scan["bold"], AFFINE), fwhm))
    brain_ts = smoothed[scan["brain"]].T
    nuisance = [smoothed[scan["wm"]].mean(axis=0, dtype=float), smoothed[scan["csf"]].mean(axis=0, dtype=float)]
    if global_signal:
        nuisance.append(brain_ts.mean(axis=1, dtype=float))
    confounds = np.column_stack([scan["motion"]] + nuisance)
    return clean(
        brain_ts,
        detrend=True,
        standardize=None,
        confounds=confounds,
        sample_mask=sample_mask,
        low_pass=0.1,
        high_pass=0.01,
        t_r=T_R,
    )


# ---------------------------------------------------------------------------------------------
# framewise displacement


def test_fd_matches_explicit_power_formula():
    rng = np.random.default_rng(0)
    motion = rng.standard_normal((20, 6)) * [0.05, 0.05, 0.05, 0.002, 0.002, 0.002]
    expected = [0.0]
    for i in range(1, 20):
        d = motion[i] - motion[i - 1]
        expected.append(sum(abs(d[:3])) + sum(5.0 * abs(d[3:])))
    np.testing.assert_allclose(framewise_displacement(motion), expected)
    # rotations scale with the radius, translations do not
    rot_only = motion.copy()
    rot_only[:, :3] = 0
    np.testing.assert_allclose(framewise_displacement(rot_only, radius_mm=50.0), 10 * framewise_displacement(rot_only))


def test_fd_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"shape \(n_volumes, 6\).*got shape \(10, 3\)"):
        framewise_displacement(np.zeros((10, 3)))


# ---------------------------------------------------------------------------------------------
# motion screening


def test_awake_scrubs_neighbours():
    fd = np.zeros(12)
    fd[[3, 10]] = [0.2, 0.15]
    res = screen_motion(fd, state="awake", neighbours=(2, 1))
    expected = np.ones(12, bool)
    expected[[1, 2, 3, 4, 8, 9, 10, 11]] = False
    np.testing.assert_array_equal(res["keep"], expected)
    assert res["n_scrubbed"] == 8
    assert res["fraction_scrubbed"] == pytest.approx(8 / 12)
    assert res["excluded"]  # 67% > 25%
    assert "8 of 12 volumes scrubbed" in res["reason"] and "25%" in res["reason"]


def test_awake_kept_below_fraction():
    fd = np.full(100, 0.01)
    fd[50] = 0.3
    res = screen_motion(fd, state="awake")
    assert not res["excluded"] and res["reason"] == ""
    assert res["n_scrubbed"] == 3
    np.testing.assert_array_equal(np.flatnonzero(~res["keep"]), [49, 50, 51])


def test_awake_exclusion_threshold_is_strict():
    fd = np.zeros(12)
    fd[[1, 7]] = 0.2  # 3 + 3 = 6 scrubbed of 12 = 50%
    assert screen_motion(fd, state="awake", max_scrub_fraction=0.5)["excluded"] is False
    assert screen_motion(fd, state="awake", max_scrub_fraction=0.49)["excluded"] is True


def test_sedated_excludes_any_high_fd():
    fd = np.array([0.0, 0.05, 0.23, 0.12, 0.02, 0.11])
    res = screen_motion(fd, state="Sedated")
    assert res["excluded"]
    assert res["reason"] == "3 volumes with FD > 0.1 mm (max 0.23 mm); sedated scans allow none"
    assert res["keep"].all() and res["n_scrubbed"] == 0
    ok = screen_motion(np.full(6, 0.05), state="sedated")
    assert not ok["excluded"] and ok["reason"] == "" and ok["keep"].all()


def test_screen_motion_rejects_unknown_state():
    with pytest.raises(ValueError, match="Unknown state 'asleep'; expected one of awake, sedated"):
        screen_motion(np.zeros(5), state="asleep")


# ---------------------------------------------------------------------------------------------
# preprocessing


def test_entry_points_resolve():
    assert get_plugin("bold_preprocessing", "study") is preprocess_bold
    assert get_plugin("bold_preprocessing", "bandpass") is bandpass_only


@pytest.mark.parametrize("global_signal", [True, False])
def test_preprocess_matches_nilearn_in_one_go(scan, monkeypatch, global_signal):
    # Small blocks so that the blockwise smoothing and cleaning are exercised.
    monkeypatch.setattr(bold_mod, "_SMOOTH_BLOCK", 13)
    monkeypatch.setattr(bold_mod, "_CLEAN_BLOCK", 17)
    original = scan["bold"].copy()
    out = preprocess_bold(
        scan["bold"],
        t_r=T_R,
        brain_mask=scan["brain"],
        affine=AFFINE,
        motion=scan["motion"],
        wm_mask=scan["wm"],
        ventricle_mask=scan["csf"],
        global_signal=global_signal,
    )
    expected = _nilearn_reference(scan, fwhm=0.75, global_signal=global_signal)
    assert out.dtype == np.float32 and out.shape == (90, scan["brain"].sum())
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    np.testing.assert_array_equal(scan["bold"], original)  # input untouched


def test_preprocess_with_scrubbing_matches_nilearn(scan, monkeypatch):
    monkeypatch.setattr(bold_mod, "_CLEAN_BLOCK", 50)
    keep = np.ones(90, bool)
    keep[[0, 20, 21, 22, 60, 89]] = False
    out = preprocess_bold(
        scan["bold"],
        t_r=T_R,
        brain_mask=scan["brain"],
        affine=AFFINE,
        motion=scan["motion"],
        wm_mask=scan["wm"],
        ventricle_mask=scan["csf"],
        sample_mask=keep,
    )
    expected = _nilearn_reference(scan, fwhm=0.75, global_signal=True, sample_mask=keep)
    assert out.shape == (84, scan["brain"].sum())
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_preprocess_removes_motion_signal(scan):
    # A motion-locked signal added to every voxel lies in the span of the confounds, so the
    # cleaned data must be the same with and without it, up to a constant per voxel (nilearn
    # regresses demeaned confounds from filtered data that keep a small mean); band-pass
    # alone keeps it.
    t = np.arange(90)
    wobble = np.sin(2 * np.pi * 0.05 * t)
    scan["motion"][:, 0] = 0.1 * wobble
    args = dict(
        t_r=T_R,
        brain_mask=scan["brain"],
        affine=AFFINE,
        motion=scan["motion"],
        wm_mask=scan["wm"],
        ventricle_mask=scan["csf"],
        fwhm=None,
        global_signal=False,
    )
    moved = scan["bold"] + 5 * wobble.astype(np.float32)
    diff = preprocess_bold(moved, **args) - preprocess_bold(scan["bold"], **args)
    assert np.abs(diff - diff.mean(axis=0)).max() < 1e-3
    raw_diff = bandpass_only(moved, **args) - bandpass_only(scan["bold"], **args)
    assert np.abs(raw_diff).max() > 2.0


def test_smoothing_uses_mm_through_affine(scan):
    # The same FWHM in mm spans 3 voxels of 0.5 mm but half a voxel of 3 mm: neighbouring
    # voxels (white noise to start with) become alike only in the first case.
    args = dict(
        t_r=T_R,
        brain_mask=scan["brain"],
        motion=scan["motion"],
        wm_mask=scan["wm"],
        ventricle_mask=scan["csf"],
        global_signal=False,
        fwhm=1.5,
    )
    index = -np.ones(scan["brain"].shape, int)
    index[scan["brain"]] = np.arange(scan["brain"].sum())
    neighbours = np.nonzero(scan["brain"][:-1] & scan["brain"][1:])
    pairs = [(index[x, y, z], index[x + 1, y, z]) for x, y, z in zip(*neighbours, strict=True)]

    def neighbour_r(out):
        return np.mean([np.corrcoef(out[:, i], out[:, j])[0, 1] for i, j in pairs])

    assert neighbour_r(preprocess_bold(scan["bold"], affine=AFFINE, **args)) > 0.6
    assert neighbour_r(preprocess_bold(scan["bold"], affine=np.diag([3.0, 3.0, 3.0, 1.0]), **args)) < 0.3


def test_bandpass_only_matches_nilearn(scan):
    keep = np.ones(90, bool)
    keep[40:43] = False
    out = bandpass_only(
        scan["bold"], t_r=T_R, brain_mask=scan["brain"], sample_mask=keep, motion=scan["motion"], wm_mask=scan["wm"]
    )  # extra arguments ignored
    expected = clean(
        scan["bold"][scan["brain"]].T,
        detrend=True,
        standardize=None,
        sample_mask=keep,
        low_pass=0.1,
        high_pass=0.01,
        t_r=T_R,
    )
    assert out.dtype == np.float32 and out.shape == (87, scan["brain"].sum())
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_brain_mask_order_is_c_order(scan):
    bold = np.zeros((3, 3, 2, 40), np.float32)
    t = np.arange(40)
    for i, (x, y, z) in enumerate([(0, 1, 0), (1, 0, 1), (2, 2, 0)]):
        bold[x, y, z] = np.sin(2 * np.pi * 0.03 * (i + 1) * t)
    mask = bold.std(axis=-1) > 0
    out = bandpass_only(bold, t_r=1.0, brain_mask=mask, high_pass=None, low_pass=None, detrend=False)
    np.testing.assert_allclose(out, bold[mask].T, atol=1e-6)


def _call(scan, **overrides):
    args = dict(
        t_r=T_R,
        brain_mask=scan["brain"],
        affine=AFFINE,
        motion=scan["motion"],
        wm_mask=scan["wm"],
        ventricle_mask=scan["csf"],
    )
    args.update(overrides)
    bold = args.pop("bold", scan["bold"])
    return preprocess_bold(bold, **args)


def test_preprocess_input_errors(scan):
    with pytest.raises(ValueError, match=r"Expected a 4-D BOLD array \(X, Y, Z, T\); got shape \(9, 8, 5\)"):
        _call(scan, bold=scan["bold"][..., 0])
    with pytest.raises(ValueError, match=r"brain_mask has shape \(9, 8\) but the BOLD volumes are \(9, 8, 5\)"):
        _call(scan, brain_mask=scan["brain"][..., 0])
    with pytest.raises(ValueError, match="motion has 89 rows but the BOLD array has 90 volumes"):
        _call(scan, motion=scan["motion"][1:])
    with pytest.raises(ValueError, match="t_r must be a positive number of seconds; got 0"):
        _call(scan, t_r=0)
    with pytest.raises(ValueError, match="low_pass=0.1 Hz is at or above the Nyquist frequency 0.1 Hz"):
        _call(scan, t_r=5.0)
    with pytest.raises(ValueError, match="sample_mask must be a boolean array"):
        _call(scan, sample_mask=np.ones(90, int))
    with pytest.raises(ValueError, match="ventricle_mask selects no voxels"):
        _call(scan, ventricle_mask=np.zeros_like(scan["csf"]))
    with pytest.raises(ValueError, match="affine is required"):
        _call(scan, affine=None)


def test_bandpass_only_input_errors(scan):
    with pytest.raises(ValueError, match=r"Expected a 4-D BOLD array"):
        bandpass_only(np.zeros((4, 4, 20)), t_r=1.0, brain_mask=np.ones((4, 4), bool))
    with pytest.raises(ValueError, match=r"high_pass \(0.2 Hz\) must be below low_pass \(0.1 Hz\)"):
        bandpass_only(scan["bold"], t_r=T_R, brain_mask=scan["brain"], high_pass=0.2)
    nan_bold = scan["bold"].copy()
    nan_bold[2, 2, 2, 5] = np.nan
    with pytest.raises(ValueError, match="NaN or inf in 1 brain voxels"):
        bandpass_only(nan_bold, t_r=T_R, brain_mask=scan["brain"])


def test_smoothing_only_around_masks_matches_whole_field_of_view():
    # Masks far from the edges: only a box around them is smoothed, which must not change a value.
    rng = np.random.default_rng(3)
    bold = rng.standard_normal((24, 22, 9, 60)).astype(np.float32)
    brain = np.zeros((24, 22, 9), bool)
    brain[9:14, 8:12, 4:6] = True
    wm = np.zeros_like(brain)
    wm[10:12, 9, 4] = True
    csf = np.zeros_like(brain)
    csf[12, 10:12, 5] = True
    scan = dict(bold=bold, brain=brain, wm=wm, csf=csf, motion=rng.standard_normal((60, 6)) * 0.01)
    out = preprocess_bold(
        bold, t_r=T_R, brain_mask=brain, affine=AFFINE, motion=scan["motion"], wm_mask=wm, ventricle_mask=csf, fwhm=1.2
    )
    expected = _nilearn_reference(scan, fwhm=1.2, global_signal=True)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
