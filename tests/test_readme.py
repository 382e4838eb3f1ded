"""Every command the README shows exists as shown, and a test runs each one.

The README's shell lines and inline ``lfpbold ...`` commands are parsed by the real CLI (click's
own parser, as ``lfpbold`` would, up to but not including running the command): the subcommand,
every option and every option value must be accepted. The Python blocks are parsed with ``ast``:
every ``lfpbold`` name and import they use must exist, and every call's keyword arguments must be
ones the function takes. Running the commands is left to the tests named in :data:`RUN_BY`, which
this file checks exist and invoke the subcommand they are listed for (the heavy ones populate a
study; running them twice would double the suite's time).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import shlex
import tomllib
from pathlib import Path

import click
import pytest

from lfpbold.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

#: subcommand (as typed after ``lfpbold``) -> the test that runs it (file::function)
RUN_BY = {
    "simulate": "test_hardening.py::test_simulate_refuses_what_does_not_fit",
    "ingest": "test_pipeline.py::test_cli_end_to_end",
    "populate": "test_pipeline.py::test_cli_end_to_end",
    "select": "test_pipeline.py::test_cli_end_to_end",
    "results": "test_exports.py::test_cli_export_group",
    "export maps": "test_exports.py::test_cli_export_group",
    "export results": "test_exports.py::test_cli_export_group",
    "export nwb": "test_exports.py::test_cli_export_group",
    "db": "test_hardening.py::test_prefix_must_be_an_identifier",
    "db grant": "test_hardening.py::test_grant_viewer_and_analyst",
    "db revoke": "test_hardening.py::test_grant_viewer_and_analyst",
    "check": "test_integrity.py::test_cli_check_replace_dry_run_and_data_root",
    "plugins": "test_plugin_contracts.py::test_cli_check_fails_on_a_broken_method_and_names_it",
    "status": "test_status.py::test_status_counts_done_pending_reserved_and_errored",
    "plot": "test_plots.py::test_cli_plot_writes_the_file_and_rejects_bad_input",
    "report": "test_report.py::test_cli_report",
    "demo": "test_hardening.py::test_demo_study_under_home_is_private",
    "worker": "test_workers.py::test_sigterm_finishes_the_current_key",
    "slurm-script": "test_workers.py::test_slurm_array_of_two_workers_populates_a_study",
}

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
_INLINE = re.compile(r"`((?:\.venv/bin/)?lfpbold [^`]+)`")
_PLACEHOLDER = re.compile(r"^[A-Z][A-Z_]*$")  # STUDY_DIR, MAPS_DIR, ...


def _blocks(lang: str) -> list[str]:
    return [body for kind, body in _FENCE.findall(README) if kind == lang]


def _shell_commands() -> list[list[str]]:
    """Every ``lfpbold`` command of the README's bash blocks, as argument lists (after ``lfpbold``)."""
    out = []
    for body in _blocks("bash"):
        for line in body.splitlines():
            for part in line.split("&&"):
                # ``[--check]``: an optional part, parsed as given
                words = [w.removeprefix("[").removesuffix("]") for w in shlex.split(part, comments=True)]
                if words and words[0] in ("lfpbold", ".venv/bin/lfpbold"):
                    out.append(words[1:])
    return out


def _inline_commands() -> list[list[str]]:
    """Inline ``lfpbold ...`` code spans, brackets of optional parts opened, ``...`` dropped."""
    out = []
    for text in _INLINE.findall(README):
        words = shlex.split(text.replace("[", " ").replace("]", " ").replace("...", " "))
        out.append(words[1:])
    return out


def _options(command: click.Command) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")} | {"--help"}


def _resolve(words: list[str]) -> tuple[str, click.Command, list[str]]:
    """(subcommand path, the command, the words after it); the group's own options are checked."""
    cmd, path, rest = main, [], list(words)
    while isinstance(cmd, click.Group):
        while rest and rest[0].startswith("-"):  # the group's options, before its subcommand
            assert rest[0] in _options(cmd), f"lfpbold {' '.join(path)}: no option {rest[0]} ({words})"
            takes_value = any(rest[0] in p.opts and not p.is_flag for p in cmd.params if isinstance(p, click.Option))
            rest = rest[2:] if takes_value else rest[1:]
        if not rest or rest[0] not in cmd.commands:
            assert cmd is not main, f"no subcommand in lfpbold {' '.join(words)}"
            break
        path.append(rest[0])
        cmd, rest = cmd.commands[rest[0]], rest[1:]
    return " ".join(path), cmd, rest


def _parse(words: list[str], tmp_path: Path) -> click.Context:
    """Parse ``lfpbold WORDS`` with click as the CLI would, and stop short of running it."""
    words = [str(tmp_path) if _PLACEHOLDER.match(w) else w for w in words]
    ctx = main.make_context("lfpbold", list(words))
    cmd, rest = main, [*ctx._protected_args, *ctx.args]
    while isinstance(cmd, click.Group) and rest and rest[0] in cmd.commands:
        name, cmd, rest = cmd.resolve_command(ctx, rest)
        ctx = cmd.make_context(name, rest, parent=ctx)
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args] if isinstance(cmd, click.Group) else []
    return ctx


SHELL = _shell_commands()
INLINE = _inline_commands()


def test_the_readme_shows_commands_at_all():
    assert len(SHELL) >= 20 and len(INLINE) >= 20, (len(SHELL), len(INLINE))


@pytest.mark.parametrize("words", SHELL, ids=[" ".join(w) for w in SHELL])
def test_each_shell_command_parses(words, tmp_path):
    _, cmd, _ = _resolve(words)
    ctx = _parse(words, tmp_path)
    assert ctx.command is cmd
    if cmd.name == "plot":  # KIND is checked when the figure is drawn: check it here
        from lfpbold.plots import KINDS

        assert ctx.params["kind"] in KINDS, (ctx.params["kind"], sorted(KINDS))
    help_text = cmd.get_help(ctx)
    for word in words:
        if word.startswith("--"):
            assert word.split("=")[0] in help_text, (word, words)


@pytest.mark.parametrize("words", INLINE, ids=[" ".join(w) for w in INLINE])
def test_each_inline_command_names_a_subcommand_and_its_options(words):
    path, cmd, rest = _resolve(words)
    for word in rest:
        if word.startswith("-") and not re.fullmatch(r"-?\d+(\.\d+)?", word):
            assert word.split("=")[0] in _options(cmd), f"lfpbold {path} has no option {word} (README: {words})"
    assert path in RUN_BY, f"no test named as running `lfpbold {path}`"


def test_every_subcommand_in_the_readme_is_run_by_a_named_test():
    shown = {_resolve(w)[0] for w in SHELL + INLINE}
    assert shown <= set(RUN_BY), shown - set(RUN_BY)
    for path, where in RUN_BY.items():
        file, name = where.split("::")
        source = (ROOT / "tests" / file).read_text()
        fn = next((n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name == name), None)
        assert fn is not None, f"{where} (named as running `lfpbold {path}`) does not exist"
        words = {
            e.value
            for n in ast.walk(fn)
            if isinstance(n, ast.List)
            for e in n.elts
            if isinstance(e, ast.Constant) and isinstance(e.value, str)
        }
        assert path.split()[-1] in words, f"{where} never invokes `lfpbold {path}`"


def test_the_install_and_test_lines_name_what_exists():
    lines = [ln for body in _blocks("bash") for ln in body.splitlines() if "pip install" in ln]
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    for line in lines:
        for wanted in re.findall(r"\.\[(\w+)\]", line):
            assert wanted in extras, (wanted, line)
    assert any("'.[test]'" in ln and "pytest" in ln for ln in lines)


def test_the_layout_table_names_modules_and_notebooks_that_exist():
    rows = dict(re.findall(r"^\| `([\w/]+/)` \|[^|]*\| (.*) \|$", README, re.M))
    assert {"lfpbold/", "schemas/", "plugins/", "lfpbold/simulate/", "notebooks/"} <= set(rows), sorted(rows)
    for folder in ("lfpbold/", "lfpbold/simulate/", "schemas/", "plugins/"):
        top = re.sub(r"\([^()]*\)", "", rows[folder])  # names in parentheses are not modules
        for name in re.findall(r"`(\w+)`", top):
            assert (ROOT / folder / f"{name}.py").exists() or (ROOT / folder / name).is_dir(), f"{folder}{name}"
    for name in re.findall(r"`(\d\d_\w+)`", rows["notebooks/"]):
        assert (ROOT / "notebooks" / f"{name}.ipynb").exists(), name


# --- Python --------------------------------------------------------------------------------------


def _lookup(dotted: str):
    """The object at ``lfpbold.a.b...``, importing submodules on the way."""
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = importlib.import_module(".".join(parts[: i + 1]))
    return obj


def _dotted(node) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _python_calls():
    """(code, dotted name, n positional, keyword names) of every call on an lfpbold name."""
    out = []
    names = {}  # local name -> dotted lfpbold path; the blocks read as one session, top to bottom
    for body in _blocks("python"):
        tree = ast.parse(body)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == "lfpbold":
                        names[(a.asname or a.name).split(".")[0]] = (a.asname and a.name) or a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "lfpbold":
                for a in node.names:
                    names[a.asname or a.name] = f"{node.module}.{a.name}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                dotted = _dotted(node.func)
                if dotted and dotted.split(".")[0] in names:
                    head, _, tail = dotted.partition(".")
                    full = names[head] + (f".{tail}" if tail else "")
                    keywords = [k.arg for k in node.keywords if k.arg]
                    out.append((ast.get_source_segment(body, node), full, len(node.args), keywords))
    return out


CALLS = _python_calls()


def test_the_python_blocks_call_lfpbold():
    called = {full for _, full, _, _ in CALLS}
    assert {"lfpbold.connect", "lfpbold.populate", "lfpbold.results", "lfpbold.select"} <= called, called


@pytest.mark.parametrize("code, full, n_args, keywords", CALLS, ids=[c[1] for c in CALLS])
def test_each_python_call_exists_with_its_arguments(code, full, n_args, keywords):
    import lfpbold

    top = full.split(".")
    if len(top) == 2:  # lfpbold.X: the public API
        assert top[1] in lfpbold.__all__, f"{full} is not in lfpbold's public API (README: {code})"
    target = _lookup(full)
    assert callable(target), full
    signature = inspect.signature(target)
    signature.bind_partial(*([None] * n_args), **dict.fromkeys(keywords))  # TypeError names a wrong argument


def test_inline_python_names_exist():
    import lfpbold

    names = set(re.findall(r"`(lfpbold(?:\.\w+)+)(?:\(\))?`", README))
    names |= {m for m in re.findall(r"\((lfpbold\.\w+)\)", README)}
    assert names, "no inline lfpbold names found"
    for name in sorted(names):
        obj = _lookup(name)
        if name.count(".") == 1 and not inspect.ismodule(obj):
            assert name.split(".")[1] in lfpbold.__all__, name
