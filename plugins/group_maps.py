"""Voxel-wise group statistics on maps: is a map's value different from zero across scans?

:func:`one_sample_map_test` takes one map per scan (seed maps, or one band's LFP power maps) as a
(n_scans, n_voxels) array in brain-mask order and returns, per voxel, the group mean, the
one-sample t statistic, its two-sided p value, the Benjamini-Hochberg FDR-adjusted p value
(:func:`scipy.stats.false_discovery_control`), and two family-wise-error corrected p values from
sign-flipping permutations (:func:`nilearn.mass_univariate.permuted_ols`): voxel-level max-t, and
cluster-size inference at a cluster-forming threshold. Correlation maps are tested as Fisher z.
Nothing here imports DataJoint.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats as _stats

from ._validation import check_array
from .stats import R_CLIP

__all__ = ["one_sample_map_test", "MAP_STATS"]

#: The per-voxel arrays :func:`one_sample_map_test` returns (all of shape (n_voxels,)).
MAP_STATS = ("mean", "t", "p", "p_fdr", "p_fwe", "cluster_p_fwe")


def _is_correlation(maps: np.ndarray) -> bool:
    finite = maps[np.isfinite(maps)]
    return finite.size > 0 and float(np.abs(finite).max()) <= 1.0 + 1e-9


def one_sample_map_test(
    maps,
    brain_mask,
    affine,
    *,
    n_permutations: int = 1000,
    cluster_forming_p: float = 0.001,
    alpha: float = 0.05,
    fisher: bool | None = None,
    random_state: int = 0,
) -> dict:
    """One-sample tests across scans at every voxel, with FDR and permutation FWE correction.

    Parameters
    ----------
    maps : array-like of shape (n_scans, n_voxels)
        One map per scan, voxels in the order of ``brain_mask[brain_mask]``. NaN voxels (a map
        undefined there) are tested as 0 after the mean is taken over the finite scans.
    brain_mask : ndarray of shape (X, Y, Z), bool
        The atlas's brain mask; gives the voxels their neighbours for cluster inference.
    affine : ndarray of shape (4, 4)
        Voxel-to-mm transform of the atlas.
    n_permutations : int, default 1000
        Sign-flipping permutations for the FWE-corrected p values (0 skips them: ``p_fwe`` and
        ``cluster_p_fwe`` are then NaN). With few scans there are only ``2**n_scans`` distinct
        sign flips, which bounds the smallest p value at ``1 / 2**n_scans``; at most that many are run.
    cluster_forming_p : float, default 0.001
        Two-sided uncorrected p at which voxels form clusters; the t threshold is taken from the
        t distribution with ``n_scans - 1`` degrees of freedom.
    alpha : float, default 0.05
        Significance level of the ``n_*`` counts.
    fisher : bool, optional
        Test ``arctanh`` of the values (correlation maps). Default: when every value lies in
        [-1, 1].
    random_state : int, default 0
        Seed of the permutations (the result is reproducible).

    Returns
    -------
    dict
        Per voxel (float32 arrays of shape (n_voxels,)): ``mean`` (mean over scans; for Fisher z,
        back-transformed to r), ``t``, ``p`` (two-sided, uncorrected), ``p_fdr``
        (Benjamini-Hochberg over the brain voxels), ``p_fwe`` (max-t permutation), and
        ``cluster_p_fwe`` (FWE p of the size of the suprathreshold cluster a voxel belongs to, 1
        outside clusters). Scalars: ``n_scans``, ``fisher``, ``t_threshold`` (cluster-forming),
        ``n_permutations``, and ``n_p``, ``n_fdr``, ``n_fwe``, ``n_cluster_fwe``: the number of
        voxels below ``alpha`` in each.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> mask = np.zeros((8, 8, 2), bool); mask[1:7, 1:7, :] = True
    >>> signal = np.zeros(int(mask.sum())); signal[:20] = 0.6        # a network in 20 voxels
    >>> maps = np.tanh(signal + 0.1 * rng.standard_normal((10, signal.size)))
    >>> out = one_sample_map_test(maps, mask, np.eye(4), n_permutations=200)
    >>> out["n_fwe"], out["n_fdr"] >= out["n_fwe"], bool(out["p_fwe"][20:].min() > 0.05)
    (20, True, True)
    """
    maps = check_array(maps, "maps", ndim=2, dtype=np.float64, layout="(n_scans, n_voxels)", non_empty=True)
    brain_mask = np.asarray(brain_mask, dtype=bool)
    n_scans, n_voxels = maps.shape
    if brain_mask.ndim != 3 or int(brain_mask.sum()) != n_voxels:
        raise ValueError(
            f"Expected a 3-D brain_mask with one True voxel per map voxel ({n_voxels}); "
            f"got shape {brain_mask.shape} with {int(brain_mask.sum())} True"
        )
    if n_scans < 2:
        raise ValueError(f"A one-sample test across scans needs at least 2 scans; got {n_scans}")
    if not 0 < cluster_forming_p < 1 or not 0 < alpha < 1:
        raise ValueError(f"cluster_forming_p and alpha must lie in (0, 1); got {cluster_forming_p}, {alpha}")
    if int(n_permutations) < 0:
        raise ValueError(f"n_permutations must be >= 0; got {n_permutations}")
    fisher = _is_correlation(maps) if fisher is None else bool(fisher)
    values = np.arctanh(np.clip(maps, -R_CLIP, R_CLIP)) if fisher else maps.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN or constant voxels
        mean = np.nanmean(values, axis=0)
        test = _stats.ttest_1samp(values, 0.0, axis=0, nan_policy="omit")
    t = np.nan_to_num(np.asarray(test.statistic, dtype=float), nan=0.0)
    p = np.nan_to_num(np.asarray(test.pvalue, dtype=float), nan=1.0)
    p_fdr = _stats.false_discovery_control(p, method="bh")
    df = n_scans - 1
    t_threshold = float(_stats.t.isf(cluster_forming_p / 2, df))
    p_fwe = np.full(n_voxels, np.nan)
    cluster_p = np.full(n_voxels, np.nan)
    # n scans have only 2**n distinct sign flips: more permutations add time, not resolution
    n_permutations = min(int(n_permutations), 2**n_scans)
    if n_permutations:
        p_fwe, cluster_p = _permutation_fwe(
            np.nan_to_num(values, nan=0.0), brain_mask, affine, n_permutations, cluster_forming_p, random_state
        )
    return {
        "mean": (np.tanh(mean) if fisher else mean).astype(np.float32),
        "t": t.astype(np.float32),
        "p": p.astype(np.float32),
        "p_fdr": p_fdr.astype(np.float32),
        "p_fwe": p_fwe.astype(np.float32),
        "cluster_p_fwe": cluster_p.astype(np.float32),
        "n_scans": n_scans,
        "fisher": fisher,
        "t_threshold": t_threshold,
        "n_permutations": int(n_permutations),
        "n_p": int((p < alpha).sum()),
        "n_fdr": int((p_fdr < alpha).sum()),
        "n_fwe": int((p_fwe < alpha).sum()),
        "n_cluster_fwe": int((cluster_p < alpha).sum()),
    }


def _permutation_fwe(values, brain_mask, affine, n_permutations, cluster_forming_p, random_state):
    """Max-t voxel and cluster-size FWE p values by sign flipping (nilearn's permuted_ols)."""
    import nibabel as nib
    from nilearn.maskers import NiftiMasker
    from nilearn.mass_univariate import permuted_ols

    masker = NiftiMasker(nib.Nifti1Image(brain_mask.astype(np.uint8), np.asarray(affine, dtype=float))).fit()
    # permuted_ols also returns cluster-mass p values; size is the one reported (mass is NaN in its null)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nilearn notes when n_perm exceeds the distinct sign flips
        out = permuted_ols(
            np.ones((values.shape[0], 1)),
            values,
            model_intercept=False,
            n_perm=n_permutations,
            two_sided_test=True,
            random_state=random_state,
            n_jobs=1,
            threshold=cluster_forming_p,  # nilearn takes it on the p scale (two-sided here)
            masker=masker,
            output_type="dict",
            verbose=0,
        )
    p_fwe = 10.0 ** -np.asarray(out["logp_max_t"], dtype=float).ravel()
    in_cluster = np.asarray(out["size"]).ravel() > 0  # the size of the voxel's cluster; 0 below threshold
    cluster_p = np.where(in_cluster, 10.0 ** -np.asarray(out["logp_max_size"], dtype=float).ravel(), 1.0)
    return p_fwe, cluster_p
