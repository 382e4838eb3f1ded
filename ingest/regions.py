"""Region names: the alias table that lets an electrode's ``location`` meet an atlas label.

An electrode labelled ``ACC`` and an atlas label ``Cingulate cortex area 1`` name the same region.
The table maps every name a lab or an atlas uses to the short region key the database keeps
(``Region.region``). lfpbold ships a small default for the rodent regions of its study; a lab adds
its own in ``code/region_aliases.tsv`` inside the study folder, or names a file with
``lfpbold ingest --region-aliases FILE``. The file is a TSV with the columns ``region`` and
``alias``, one alias a row; the lab's rows add to the default and win over it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from .errors import IngestError

__all__ = ["DEFAULT_ALIASES", "normalise", "read_aliases", "STUDY_ALIASES", "REGION_KEY_LENGTH"]

#: where a study keeps its own alias table (BIDS leaves ``code/`` to the lab)
STUDY_ALIASES = Path("code") / "region_aliases.tsv"
#: longest region key the database holds (``Region.region``)
REGION_KEY_LENGTH = 16

#: region -> other names, as rat atlases (Paxinos & Watson, Waxholm, SIGMA) and labs write them
DEFAULT_ALIASES = {
    "ACC": [
        "anterior cingulate cortex",
        "anterior cingulate",
        "cingulate cortex area 1",
        "cingulate cortex area 2",
        "cg1",
        "cg2",
        "area 24",
        "cingulate area 24a",
        "cingulate area 24b",
    ],
    "M1": ["primary motor cortex", "primary motor area", "motor cortex primary", "mop"],
    "M2": ["secondary motor cortex", "secondary motor area", "mos"],
    "S1": ["primary somatosensory cortex", "primary somatosensory area", "sso"],
    "S1BF": ["primary somatosensory cortex barrel field", "barrel field", "barrel cortex"],
    "CPu": ["caudate putamen", "striatum", "caudoputamen", "cp"],
    "CA1": ["field ca1 of the hippocampus", "ca1 field", "hippocampus ca1"],
    "PrL": ["prelimbic cortex", "prelimbic area", "pl"],
}


def normalise(name: str) -> str:
    """Case, punctuation and spacing folded away, so ``Cingulate_Cortex, Area 1`` = ``cingulate cortex area 1``.

    >>> normalise("Cingulate_Cortex, Area-1")
    'cingulate cortex area 1'
    """
    return " ".join(re.sub(r"[_\-,;:/()\[\].]+", " ", str(name)).lower().split())


def read_aliases(study_dir=None, path=None) -> dict[str, str]:
    """The alias table in force: normalised name -> region key.

    The default table, then ``<study_dir>/code/region_aliases.tsv`` if it exists, then ``path``;
    later rows win. Every region also stands for itself.

    >>> read_aliases()["cingulate cortex area 1"]
    'ACC'
    """
    table = {}
    for region, names in DEFAULT_ALIASES.items():
        table[normalise(region)] = region
        table.update((normalise(n), region) for n in names)
    files = []
    if study_dir is not None and (Path(study_dir) / STUDY_ALIASES).exists():
        files.append(Path(study_dir) / STUDY_ALIASES)
    if path is not None:
        files.append(Path(path))
    for file in files:
        table.update(_read_file(file))
    return table


def _read_file(path: Path) -> dict[str, str]:
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment="#")
    except FileNotFoundError:
        raise IngestError(path, "file", "missing (the region alias table)") from None
    except (OSError, ValueError) as exc:
        raise IngestError(path, "file", f"not readable as TSV ({exc})") from None
    df.columns = [c.strip() for c in df.columns]
    for col in ("region", "alias"):
        if col not in df.columns:
            raise IngestError(path, col, f"column missing (columns: {', '.join(df.columns)})")
    out = {}
    for i, row in df.iterrows():
        region, alias = row["region"].strip(), row["alias"].strip()
        if not region or not alias:
            raise IngestError(path, "region" if not region else "alias", f"row {i + 1}: empty")
        if len(region) > REGION_KEY_LENGTH or not re.fullmatch(r"[A-Za-z0-9]+", region):
            raise IngestError(
                path, "region", f"row {i + 1}: {region!r} must be letters and digits, at most {REGION_KEY_LENGTH}"
            )
        out[normalise(region)] = region
        out[normalise(alias)] = region
    return out
