"""A simulated study is valid BIDS: the official validator (bids-validator-deno, offline) finds no
error in the raw dataset nor in any derivatives dataset, and ingest reads it without an error.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lfpbold.ingest import read_study
from lfpbold.simulate import simulate_study
from lfpbold.simulate.writers import BIDSIGNORE


def _validator() -> str | None:
    here = Path(sys.executable).with_name("bids-validator-deno")
    return str(here) if here.exists() else shutil.which("bids-validator-deno")


def validate(folder: Path) -> list[dict]:
    """Every issue the validator reports on ``folder`` (a raw or derivatives dataset)."""
    exe = _validator()
    if exe is None:
        pytest.skip("bids-validator-deno is not installed (pip install bids-validator-deno; it is in the test extra)")
    # run from the dataset's parent: the validator reads the git revision of its working directory
    proc = subprocess.run(
        [exe, str(folder), "--format", "json"], capture_output=True, text=True, timeout=300, cwd=folder.parent
    )
    assert proc.returncode in (0, 16), proc.stderr[-2000:]  # 16: the dataset has errors
    issues = json.loads(proc.stdout)["issues"]["issues"]
    errors = [i for i in issues if i["severity"] == "error"]
    assert (proc.returncode == 16) == bool(errors), proc.returncode
    return issues


@pytest.fixture(scope="module")
def bids_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("bids") / "study"
    return simulate_study(out, subjects=2, scans=1, states=("sedated", "awake"), seed=3)


def _errors(issues):
    errors = [i for i in issues if i["severity"] == "error"]
    return [f"{i['code']} {i.get('location')} {i.get('subCode') or ''}".strip() for i in errors]


def test_simulated_raw_dataset_has_no_validator_error(bids_study):
    assert _errors(validate(bids_study)) == []


@pytest.mark.parametrize("name", ["atlas", "realign"])
def test_simulated_derivatives_have_no_validator_error(bids_study, name):
    folder = bids_study / "derivatives" / name
    assert json.loads((folder / "dataset_description.json").read_text())["DatasetType"] == "derivative"
    assert _errors(validate(folder)) == []


def test_bidsignore_lists_only_what_bids_has_no_rule_for(bids_study):
    ignored = [ln for ln in (bids_study / ".bidsignore").read_text().splitlines() if ln and not ln.startswith("#")]
    assert ignored == list(BIDSIGNORE) == ["**/ecephys", "ground_truth.json", "truth"]
    # without it the validator names exactly those files, and nothing else
    (bids_study / ".bidsignore").rename(bids_study / "bidsignore.off")
    try:
        errors = _errors(validate(bids_study))
        where = {e.split()[1] for e in errors if e.startswith("NOT_INCLUDED")}
        others = [e for e in errors if not e.startswith(("NOT_INCLUDED", "SIDECAR_WITHOUT"))]
    finally:
        (bids_study / "bidsignore.off").rename(bids_study / ".bidsignore")
    assert others == []
    assert {"/ground_truth.json", "/truth/"} <= where
    assert all(
        w in ("/ground_truth.json", "/bidsignore.off") or w.startswith("/truth/") or "/ecephys/" in w for w in where
    ), where


def test_validator_catches_the_old_layout_errors(bids_study, tmp_path):
    """The check can fail: the age as the older layouts wrote it is an error the validator names."""
    copy = tmp_path / "study"
    shutil.copytree(bids_study, copy, ignore=shutil.ignore_patterns("*.nwb", "*_bold.nii.gz"))
    tsv = copy / "participants.tsv"
    tsv.write_text(tsv.read_text().replace("\t90\t", "\tP90D\t"))
    assert any(e.startswith("TSV_VALUE_INCORRECT_TYPE /participants.tsv") for e in _errors(validate(copy)))


def test_simulated_study_ingests_clean(bids_study):
    records = read_study(bids_study)
    assert [str(e) for e in records.errors] == []
    assert len(records.scans) == 4 and {s["age"] for s in records.subjects} == {"P90D"}
    assert all("/derivatives/realign/" in s.fmri["motion_path"] for s in records.scans)
    assert records.atlas["atlas"] == "lfpbold simulated rat atlas" and len(records.rois) == 2
