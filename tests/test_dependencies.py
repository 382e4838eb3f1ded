"""Dependencies declared exactly as imported: pyproject.toml against every import statement.

Runtime: what ``lfpbold/``, ``schemas/``, ``plugins/`` and ``ingest/`` import is in
``[project] dependencies``, and everything there is imported (or allow-listed below, with why).
Tests: what ``tests/`` and the notebooks import is in the dependencies or the ``test`` extra, and
everything in the ``test`` extra is imported there (or allow-listed).
"""

from __future__ import annotations

import ast
import json
import re
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions, requires
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_FOLDERS = ("lfpbold", "schemas", "plugins", "ingest")
TEST_FOLDERS = ("tests",)

#: declared (directly, or by an extra we ask for) but never imported by our code, and why
NOT_IMPORTED = {
    "pymysql": "DataJoint's driver for MySQL and MariaDB; DataJoint imports it",
    "cryptography": "PyMySQL needs it for MySQL 8 logins (caching_sha2_password); DataJoint does not pull it in",
    "psycopg2-binary": "DataJoint's PostgreSQL driver, from the datajoint[postgres] extra; DataJoint imports it",
}
#: in the test extra but never imported by tests or notebooks, and why
TEST_NOT_IMPORTED = {
    "ipykernel": "the Python kernel nbclient starts to run the notebooks",
    "ruff": "lint and format, run as a command",
    "bids-validator-deno": "the bids-validator command that judges the BIDS export, run as a command",
}


def _name(distribution: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


@cache
def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirements(group: str | None = None) -> list[Requirement]:
    project = _pyproject()["project"]
    specs = project["dependencies"] if group is None else project["optional-dependencies"][group]
    return [Requirement(spec) for spec in specs]


def _from_extras(requirements: list[Requirement]) -> set[str]:
    """The distributions that the extras we ask for (``datajoint[postgres]``) add."""
    out = set()
    for req in requirements:
        for extra in req.extras:
            for spec in requires(req.name) or []:
                dependency = Requirement(spec)
                if dependency.marker is not None and dependency.marker.evaluate({"extra": extra}):
                    out.add(_name(dependency.name))
    return out


def _first_party(folders) -> set[str]:
    names = {"lfpbold", "tests"}
    for folder in folders:  # modules a test imports from its own folder (ingest_fixtures)
        names |= {p.stem for p in (ROOT / folder).glob("*.py")}
    return names


def _imported_modules(sources) -> dict[str, set[str]]:
    """Top-level module -> the files that import it, for absolute imports in ``sources``."""
    found: dict[str, set[str]] = {}
    for where, text in sources:
        for node in ast.walk(ast.parse(text, filename=where)):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module]
            else:
                continue
            for module in modules:
                found.setdefault(module.split(".")[0], set()).add(where)
    return found


def _python_sources(folders):
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield str(path.relative_to(ROOT)), path.read_text()


def _notebook_sources():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])
                code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
                yield f"{path.relative_to(ROOT)} cell {i}", code


def _imported_distributions(sources, first_party: set[str]) -> dict[str, set[str]]:
    """Distribution -> the files that import it; a module no installed distribution provides is its own key."""
    provided_by = packages_distributions()
    out: dict[str, set[str]] = {}
    for module, files in _imported_modules(sources).items():
        if module in sys.stdlib_module_names or module in first_party:
            continue
        for distribution in provided_by.get(module, [f"<module {module}: no installed distribution>"]):
            out.setdefault(_name(distribution), set()).update(files)
    return out


def _runtime_imports() -> dict[str, set[str]]:
    return _imported_distributions(_python_sources(RUNTIME_FOLDERS), _first_party(()))


def _test_imports() -> dict[str, set[str]]:
    sources = [*_python_sources(TEST_FOLDERS), *_notebook_sources()]
    # tests/test_benchmarks.py imports the benchmark scripts it checks from benchmarks/
    return _imported_distributions(sources, _first_party((*TEST_FOLDERS, "benchmarks")))


def test_runtime_imports_are_declared():
    declared = {_name(r.name) for r in _requirements()}
    missing = {d: sorted(files) for d, files in _runtime_imports().items() if d not in declared}
    assert not missing, f"imported but not in [project] dependencies: {missing}"


def test_runtime_dependencies_are_imported():
    requirements = _requirements()
    declared = {_name(r.name) for r in requirements} | _from_extras(requirements)
    unused = sorted(declared - set(_runtime_imports()) - set(NOT_IMPORTED))
    assert not unused, f"in [project] dependencies (or an extra of one) but never imported: {unused}"


def test_allow_lists_are_current():
    requirements = _requirements()
    declared = {_name(r.name) for r in requirements} | _from_extras(requirements)
    stale = [d for d in NOT_IMPORTED if d not in declared or d in _runtime_imports()]
    assert not stale, f"NOT_IMPORTED names what is no longer declared, or is imported now: {stale}"
    test_declared = {_name(r.name) for r in _requirements("test")}
    stale = [d for d in TEST_NOT_IMPORTED if d not in test_declared or d in _test_imports()]
    assert not stale, f"TEST_NOT_IMPORTED names what is no longer in the test extra, or is imported now: {stale}"


def test_runtime_dependencies_have_lower_bounds():
    unbounded = [str(r) for r in _requirements() if not any(s.operator in (">=", ">", "==", "~=") for s in r.specifier)]
    assert not unbounded, f"give these a lower bound (the oldest release the code works with): {unbounded}"


def test_test_imports_are_declared():
    declared = {_name(r.name) for r in [*_requirements(), *_requirements("test")]}
    missing = {d: sorted(files) for d, files in _test_imports().items() if d not in declared}
    assert not missing, f"imported by tests or notebooks but in neither the dependencies nor the test extra: {missing}"


def test_test_extra_is_imported():
    declared = {_name(r.name) for r in _requirements("test")}
    unused = sorted(declared - set(_test_imports()) - set(TEST_NOT_IMPORTED))
    assert not unused, f"in the test extra but never imported by tests or notebooks: {unused}"


def test_test_extra_does_not_repeat_runtime_dependencies():
    both = {_name(r.name) for r in _requirements()} & {_name(r.name) for r in _requirements("test")}
    assert not both, f"already runtime dependencies: {sorted(both)}"
