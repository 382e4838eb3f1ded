"""Where a study's preprocessed BOLD, motion and atlas live: raw BIDS, RABIES or fMRIPrep outputs.

A study folder is always a raw BIDS(-like) dataset: ``dataset_description.json``,
``participants.tsv``, ``sub-*/sub-*_sessions.tsv`` and the NWB recordings in
``sub-*/ses-*/ecephys/``; that is where ingest finds subjects, sessions and LFP whatever the
layout. The layout says where the fMRI side comes from:

- ``bids``: ``func/*_bold.nii[.gz]`` already in atlas space, with its motion file beside it
  (``*_motion.tsv``, or SPM ``rp_*_bold.txt``, or FSL ``*_bold_mcf.par``) and the atlas in ``atlas/``.
- ``rabies``: a RABIES preprocessing output folder (``--derivatives DIR``, default
  ``derivatives/rabies/``): ``bold_datasink/commonspace_bold/`` per run, the commonspace masks
  ``bold_datasink/commonspace_{mask,WM_mask,CSF_mask}/`` and ``commonspace_labels/`` (one file
  each), motion from ``motion_datasink/motion_params_csv/`` and FD from ``motion_datasink/FD_csv/``
  (RABIES before 0.5: ``confounds_datasink/confounds_csv/`` and ``confounds_datasink/FD_csv/``).
  Runs are matched by RABIES's scan name, the input BOLD's file name without extension
  (``sub-01_ses-1_task-rest_run-1_bold``), which every per-run file name starts with.
- ``fmriprep``: a BIDS derivatives folder (default ``derivatives/fmriprep/``) holding
  ``func/*_space-<S>_desc-preproc_bold.nii.gz``, ``*_desc-confounds_timeseries.tsv`` and
  ``*_space-<S>_desc-brain_mask.nii.gz``, with the template of space ``S`` as TemplateFlow lays it
  out in ``tpl-<S>/`` (derivatives folder or study folder): ``tpl-<S>_*desc-brain_mask``,
  ``tpl-<S>_*label-WM_probseg``/``_mask``, ``tpl-<S>_*label-CSF_probseg``/``_mask`` and
  ``tpl-<S>_*atlas-<A>_dseg.nii.gz`` with its ``.tsv``.

The regions of a label atlas are named through the alias table (:mod:`lfpbold.ingest.regions`).
Nothing here imports DataJoint; :func:`lfpbold.ingest.read_study` asks the layout for the atlas,
each run's files and its motion.
"""

from __future__ import annotations

from pathlib import Path

from .bids import CONFOUNDS_SUFFIX, parse_entities, read_confounds, read_motion
from .errors import IngestError
from .labels import find_lut, read_label_atlas
from .motion import read_motion_file, read_rabies_fd
from .nifti import read_atlas
from .regions import read_aliases

__all__ = ["LAYOUTS", "detect_layout", "open_layout", "Layout", "BidsLayout", "RabiesLayout", "FmriprepLayout"]

LAYOUTS = ("bids", "rabies", "fmriprep")
_DEFAULT_DIRS = {"rabies": ("derivatives/rabies", "derivatives/RABIES"), "fmriprep": ("derivatives/fmriprep",)}


def detect_layout(study_dir, derivatives=None) -> str:
    """``rabies`` if a RABIES output (``bold_datasink/commonspace_bold``) is there, ``fmriprep`` if
    a derivatives folder holds ``*_desc-preproc_bold.nii*``, else ``bids``."""
    study_dir = Path(study_dir)
    candidates = [Path(derivatives)] if derivatives else [study_dir / d for ds in _DEFAULT_DIRS.values() for d in ds]
    for folder in candidates:
        if (folder / "bold_datasink" / "commonspace_bold").is_dir():
            return "rabies"
        if folder.is_dir() and next(folder.glob("sub-*/**/func/*_desc-preproc_bold.nii*"), None) is not None:
            return "fmriprep"
    return "bids"


def open_layout(study_dir, layout: str | None = None, *, derivatives=None, region_aliases=None) -> Layout:
    """The layout reader for a study: named, or detected (:func:`detect_layout`)."""
    study_dir = Path(study_dir)
    layout = layout or detect_layout(study_dir, derivatives)
    if layout not in LAYOUTS:
        raise IngestError(study_dir, "layout", f"{layout!r} is not one of {', '.join(LAYOUTS)}")
    aliases = read_aliases(study_dir, region_aliases)
    cls = {"bids": BidsLayout, "rabies": RabiesLayout, "fmriprep": FmriprepLayout}[layout]
    return cls(study_dir, derivatives=derivatives, aliases=aliases)


class Layout:
    """What ``read_study`` asks of a layout. ``files`` maps ``bold``/``sidecar``/``motion``/``ecephys`` to paths."""

    name = "bids"

    def __init__(self, study_dir: Path, *, derivatives=None, aliases=None):
        self.study_dir = Path(study_dir)
        self.aliases = aliases if aliases is not None else read_aliases(study_dir)
        self.derivatives = self._derivatives(derivatives)

    def _derivatives(self, given):
        if given is not None:
            path = Path(given).absolute()
            if not path.is_dir():
                raise IngestError(path, "file", f"not a folder (the {self.name} outputs)")
            return path
        for rel in _DEFAULT_DIRS.get(self.name, ()):
            if (self.study_dir / rel).is_dir():
                return self.study_dir / rel
        if self.name != "bids":
            raise IngestError(
                self.study_dir / _DEFAULT_DIRS[self.name][0],
                "file",
                f"missing: the {self.name} outputs (or name them with --derivatives DIR)",
            )
        return None

    def atlas(self) -> tuple[dict, list[dict]]:
        return read_atlas(self.study_dir)

    def runs(self) -> dict[tuple[str, str, str], dict]:
        """(sub, ses, prefix) -> the run's files in the layout's outputs (none for bids); walked once."""
        if not hasattr(self, "_runs"):
            self._runs = self._find_runs()
        return self._runs

    def _find_runs(self) -> dict:
        return {}

    def run_files(self, sub: str, ses: str, prefix: str, files: dict) -> dict:
        return files

    def read_motion(self, path, n_volumes: int, files: dict) -> tuple:
        path = Path(path)
        if path.name.endswith("_motion.tsv"):
            motion = read_motion(path, n_volumes)
            return motion, {"format": "bids", "columns": "trans_x..rot_z", "units": "mm, rad", "path": str(path)}
        if path.name.endswith(CONFOUNDS_SUFFIX):
            read_confounds(path, n_volumes)  # its errors name the column and the row of an n/a or a bad value
        return read_motion_file(path, n_volumes)


class BidsLayout(Layout):
    """Raw BIDS: the motion file beside the BOLD run, or SPM's ``rp_*.txt`` / FSL's ``*.par``."""

    name = "bids"

    def run_files(self, sub, ses, prefix, files):
        func = self.study_dir / f"sub-{sub}" / f"ses-{ses}" / "func"
        if "motion" not in files and not (func / f"{prefix}_motion.tsv").exists():
            for candidate in (
                func / f"rp_{prefix}_bold.txt",
                func / f"{prefix}_bold_mcf.par",
                func / f"{prefix}_bold.par",
            ):
                if candidate.exists():
                    return {**files, "motion": candidate}
        return files


class RabiesLayout(Layout):
    """RABIES preprocessing outputs (see the module docstring for the folders)."""

    name = "rabies"

    def _one(self, *targets) -> Path:
        for target in targets:
            folder = self.derivatives / "bold_datasink" / target
            files = sorted(p for p in folder.rglob("*.nii*")) if folder.is_dir() else []
            if len(files) > 1:
                raise IngestError(folder, "file", f"{len(files)} images, expected one (the study's commonspace file)")
            if files:
                return files[0]
        folder = self.derivatives / "bold_datasink" / targets[0]
        raise IngestError(folder, "file", "missing (rerun RABIES with the masks and labels it needs)")

    def atlas(self):
        labels = self._one("commonspace_labels")
        template = next((self.derivatives / "bold_datasink" / "commonspace_resampled_template").rglob("*.nii*"), None)
        name = "RABIES commonspace" + (f" ({template.name.split('.nii')[0]})" if template is not None else "")
        lut = find_lut(labels, search=[self.derivatives / "labels.tsv", self.study_dir / "code" / "atlas_labels.tsv"])
        if lut is None:
            raise IngestError(
                labels,
                "lookup table",
                f"missing: put the atlas's label table beside it ({labels.name.split('.nii')[0]}.tsv) or "
                "in code/atlas_labels.tsv",
            )
        return read_label_atlas(
            name,
            labels=labels,
            lut=lut,
            aliases=self.aliases,
            brain=self._one("commonspace_mask"),
            wm=self._one("commonspace_WM_mask"),
            ventricles=self._one("commonspace_CSF_mask"),
            atlas_dir=self.derivatives,
        )

    def _per_run(self, datasink: str, target: str) -> dict[str, Path]:
        key = (datasink, target)
        cache = self.__dict__.setdefault("_trees", {})
        if key not in cache:
            folder = self.derivatives / datasink / target
            cache[key] = {p.name: p for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else {}
        return cache[key]

    def _find_runs(self):
        bolds = self._per_run("bold_datasink", "commonspace_bold")
        out = {}
        for fname, path in sorted(bolds.items()):
            if "_bold" not in fname:
                continue
            scan = fname[: fname.index("_bold") + len("_bold")]
            ents, _, _ = parse_entities(scan + ".nii")
            if "sub" not in ents or "ses" not in ents:
                continue
            prefix = scan[: -len("_bold")]
            out[(ents["sub"], ents["ses"], prefix)] = {"bold": path, "scan": scan}
        return out

    def _match(self, scan: str, candidates: dict[str, Path]) -> Path | None:
        hits = [p for n, p in candidates.items() if n.startswith(scan + "_") or n.startswith(scan + ".")]
        return hits[0] if len(hits) == 1 else None

    def run_files(self, sub, ses, prefix, files):
        run = self.runs().get((sub, ses, prefix))
        if run is None:
            kept = {k: v for k, v in files.items() if k not in ("bold", "motion")}
            return {**kept, "bold_expected": self.derivatives / "bold_datasink" / "commonspace_bold" / f"{prefix}_bold"}
        motion = self._match(run["scan"], self._per_run("motion_datasink", "motion_params_csv"))
        motion = motion or self._match(run["scan"], self._per_run("confounds_datasink", "confounds_csv"))
        fd = self._match(run["scan"], self._per_run("motion_datasink", "FD_csv"))
        fd = fd or self._match(run["scan"], self._per_run("confounds_datasink", "FD_csv"))
        out = {**files, "bold": run["bold"]}
        out["motion"] = motion or (
            self.derivatives / "motion_datasink" / "motion_params_csv" / f"{run['scan']}_motion_params.csv"
        )
        if fd is not None:
            out["fd"] = fd
        return out

    def read_motion(self, path, n_volumes, files):
        motion, source = read_motion_file(path, n_volumes)
        if "fd" in files:
            source["framewise_displacement"] = read_rabies_fd(files["fd"], n_volumes)
            source["fd_path"] = str(files["fd"])
        return motion, source


class FmriprepLayout(Layout):
    """fMRIPrep-style BIDS derivatives and a TemplateFlow template folder for their space."""

    name = "fmriprep"

    def _find_runs(self):
        out = {}
        for path in sorted(self.derivatives.glob("sub-*/**/func/*_desc-preproc_bold.nii*")):
            ents, _, _ = parse_entities(path.name)
            if "sub" not in ents or "ses" not in ents:
                continue
            prefix = path.name[: path.name.index("_space-")] if "_space-" in path.name else path.name.split("_desc-")[0]
            out[(ents["sub"], ents["ses"], prefix)] = {"bold": path, "space": ents.get("space")}
        return out

    def run_files(self, sub, ses, prefix, files):
        run = self.runs().get((sub, ses, prefix))
        if run is None:
            kept = {k: v for k, v in files.items() if k not in ("bold", "motion")}
            func = self.derivatives / f"sub-{sub}" / f"ses-{ses}" / "func"
            return {**kept, "bold_expected": func / f"{prefix}_space-<S>_desc-preproc_bold.nii.gz"}
        bold = run["bold"]
        func = bold.parent
        out = {**files, "bold": bold, "motion": func / f"{prefix}_desc-confounds_timeseries.tsv"}
        mask = func / f"{prefix}_space-{run['space']}_desc-brain_mask.nii.gz"
        if mask.exists():
            out["brain_mask"] = mask
        own = bold.with_name(bold.name.split(".nii")[0] + ".json")
        if own.exists():
            out["sidecar_derived"] = own
        return out

    def atlas(self):
        spaces = {r["space"] for r in self.runs().values()}
        if not spaces:
            raise IngestError(self.derivatives, "file", "no func/*_desc-preproc_bold.nii[.gz] in the derivatives")
        if len(spaces) > 1 or None in spaces:
            raise IngestError(
                self.derivatives, "space", f"runs in several spaces ({sorted(map(str, spaces))}); expected one"
            )
        (space,) = spaces
        folders = [d / f"tpl-{space}" for d in (self.derivatives, self.study_dir)]
        tpl = next((d for d in folders if d.is_dir()), None)
        if tpl is None:
            raise IngestError(
                folders[0], "file", f"missing: the template folder of space {space} (TemplateFlow layout)"
            )

        def one(*patterns):
            for pattern in patterns:
                hits = sorted(tpl.glob(pattern))
                if len(hits) == 1:
                    return hits[0]
                if len(hits) > 1:
                    raise IngestError(tpl, "file", f"{len(hits)} files match {pattern}, expected one")
            raise IngestError(tpl / patterns[0], "file", "missing")

        labels = one(f"tpl-{space}*_atlas-*_dseg.nii*")
        try:
            brain = one(f"tpl-{space}*_desc-brain_mask.nii*")
        except IngestError:  # no template mask: the voxels inside every run's own brain mask
            brain = self._common_brain_mask(space)
        lut = find_lut(labels)
        if lut is None:
            raise IngestError(labels, "lookup table", f"missing: {labels.name.split('.nii')[0]}.tsv (index, name)")
        return read_label_atlas(
            f"tpl-{space}",  # the template is the atlas space
            labels=labels,
            lut=lut,
            aliases=self.aliases,
            brain=brain,
            wm=one(f"tpl-{space}*_label-WM_mask.nii*", f"tpl-{space}*_label-WM_probseg.nii*"),
            ventricles=one(f"tpl-{space}*_label-CSF_mask.nii*", f"tpl-{space}*_label-CSF_probseg.nii*"),
            atlas_dir=tpl,
        )

    def _common_brain_mask(self, space):
        """The runs' ``*_space-<S>_desc-brain_mask`` joined by intersection (all on one grid)."""
        from .nifti import _mask

        masks = sorted(self.derivatives.glob(f"sub-*/**/func/*_space-{space}_desc-brain_mask.nii*"))
        if not masks:
            raise IngestError(
                self.derivatives / f"tpl-{space}", "file", "missing: no template brain mask and no run brain masks"
            )
        common, affine = _mask(masks[0])
        for path in masks[1:]:
            mask, _ = _mask(path, common.shape, affine)
            common &= mask
        return common, affine
