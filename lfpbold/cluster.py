"""Running workers on a cluster: the SLURM job-array script that ``lfpbold slurm-script`` writes.

Each array task runs ``lfpbold worker --exit-when-idle``; the tasks share the lab server's job
queue (:mod:`lfpbold.workers`). The database is named by DataJoint's own settings, read on the
node at run time: ``DJ_HOST``, ``DJ_USER``, ``DJ_BACKEND``, ``DJ_PORT`` are written into the
script (they are not secret), the password never is: it comes from ``DJ_PASS`` in the
environment ``sbatch`` was called from (SLURM exports it to the job), or from DataJoint's
secrets (``.secrets/database.password`` beside a ``datajoint.json`` in the working directory,
or ``/run/secrets/datajoint/database.password``).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from pathlib import Path

__all__ = ["slurm_script"]

_TIME = re.compile(r"^(\d+-)?\d{1,2}(:\d{2}){0,2}$|^\d+$")
_MEM = re.compile(r"^\d+[KMGT]?$")
_NAME = re.compile(r"^[A-Za-z0-9_.,-]+$")
#: DataJoint settings that name the server; never the password
DJ_SETTINGS = ("DJ_HOST", "DJ_PORT", "DJ_USER", "DJ_BACKEND")


def _lfpbold_executable() -> str:
    beside = Path(sys.executable).parent / "lfpbold"
    if beside.exists():
        return str(beside)
    found = shutil.which("lfpbold")
    if found:
        return found
    raise RuntimeError("cannot find the lfpbold command; pass --lfpbold PATH")


def slurm_script(
    *,
    workers: int = 4,
    processes: int = 1,
    mem: str = "4G",
    time: str = "24:00:00",
    partition: str | None = None,
    prefix: str | None = None,
    workdir: str | Path | None = None,
    log_dir: str | Path | None = None,
    lfpbold: str | None = None,
    stop_before_end_s: int = 600,
    environ: dict | None = None,
) -> str:
    """An sbatch script: a job array of ``workers`` tasks, each running ``lfpbold worker``.

    Parameters
    ----------
    workers : int
        Array tasks (``--array=1-workers``), each one worker on one node.
    processes : int
        Worker processes per task (``--cpus-per-task``), each with one BLAS thread.
    mem, time, partition : str
        SLURM's ``--mem`` (per task; a worker needs about the memory of one scan), ``--time``
        and ``--partition``.
    prefix : str, optional
        Schema prefix; default ``$LFPBOLD_PREFIX`` if set.
    workdir : path, optional
        The tasks' working directory (where a ``datajoint.json`` would be); default: here.
    log_dir : path, optional
        Where each task's log goes (it must exist before the job starts); default
        ``workdir/slurm-logs``.
    lfpbold : str, optional
        The ``lfpbold`` command on the nodes; default this installation's.
    stop_before_end_s : int
        SIGTERM this many seconds before the time limit, so the worker finishes its key.
    environ : dict, optional
        Where the DJ_* settings are read from (default ``os.environ``).

    Returns
    -------
    str
        The script. It contains no password, whatever the environment holds.
    """
    env = dict(os.environ if environ is None else environ)
    if workers < 1 or processes < 1:
        raise ValueError("workers and processes must be at least 1")
    if not _TIME.match(time):
        raise ValueError(f"time {time!r}: use SLURM's form, e.g. 24:00:00 or 2-00:00:00")
    if not _MEM.match(mem):
        raise ValueError(f"mem {mem!r}: use SLURM's form, e.g. 4G or 4000M")
    if partition is not None and not _NAME.match(partition):
        raise ValueError(f"partition {partition!r}: letters, digits, _ . , - only")
    from lfpbold.compat import config_file_setting

    if not env.get("DJ_HOST") and not config_file_setting("database.host"):
        raise ValueError(
            "a cluster's workers need a database server every node reaches: set DJ_HOST (and DJ_USER, "
            "DJ_BACKEND) or a datajoint.json naming it; the embedded database is for one machine"
        )
    workdir = Path(workdir or Path.cwd()).resolve()
    log_dir = Path(log_dir).resolve() if log_dir else workdir / "slurm-logs"
    prefix = prefix if prefix is not None else env.get("LFPBOLD_PREFIX")
    exe = lfpbold or _lfpbold_executable()
    q = shlex.quote
    lines = [
        "#!/bin/bash",
        "# lfpbold workers as a SLURM job array (written by `lfpbold slurm-script`). Submit: sbatch THIS_FILE",
        "# Every task runs `lfpbold worker --exit-when-idle` against the same database; the job queue",
        "# hands each key to one worker, and keys of killed workers return to it on their own.",
        "# The password is not here: sbatch passes DJ_PASS from the submitting shell's environment,",
        "# or DataJoint reads .secrets/database.password beside datajoint.json in the working directory.",
        "#SBATCH --job-name=lfpbold-worker",
        f"#SBATCH --array=1-{workers}",
        "#SBATCH --ntasks=1",
        f"#SBATCH --cpus-per-task={processes}",
        f"#SBATCH --mem={mem}",
        f"#SBATCH --time={time}",
        f"#SBATCH --signal=TERM@{stop_before_end_s}",
        f"#SBATCH --chdir={workdir}",
        f"#SBATCH --output={log_dir}/lfpbold-worker-%A_%a.out",
    ]
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    lines += ["", "set -euo pipefail"]
    for name in DJ_SETTINGS:
        if env.get(name):
            lines.append(f"export {name}={q(env[name])}")
    if prefix:
        lines.append(f"export LFPBOLD_PREFIX={q(prefix)}")
    if env.get("LFPBOLD_HOME"):
        lines.append(f"export LFPBOLD_HOME={q(env['LFPBOLD_HOME'])}")
    lines += [
        "export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1",
        f"exec srun --ntasks=1 {q(exe)} worker --exit-when-idle --processes {processes}",
        "",
    ]
    script = "\n".join(lines)
    secret = env.get("DJ_PASS")
    if secret and secret in script:  # a password equal to a path or a name: refuse rather than leak it
        raise ValueError("DJ_PASS would appear in the script (it equals a setting written there); change one")
    return script
