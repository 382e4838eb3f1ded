"""The layers keep to themselves: algorithms and readers never import DataJoint.

plugins/ and ingest/ are plain numpy code a lab can use and test without a database; only schemas/
(and what drives it) talks to DataJoint.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imported(path: Path) -> set[str]:
    """Top-level names of every module a file imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("folder", ["plugins", "ingest"])
def test_never_imports_datajoint(folder):
    files = sorted((ROOT / folder).glob("*.py"))
    assert files
    for path in files:
        assert "datajoint" not in _imported(path), path


def test_no_submodule_shadows_a_top_level_function():
    """`import lfpbold.x` sets the package attribute `x`, so a function `lfpbold.x` must not share
    its name with a module: once anything (the doctest collector, a lab's script) imports the
    module, `lfpbold.x(...)` would call a module."""
    import lfpbold

    modules = {p.stem for p in (ROOT / "lfpbold").iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    functions = {n for n in lfpbold.__all__ if not n.startswith("_")}
    assert not functions & modules
