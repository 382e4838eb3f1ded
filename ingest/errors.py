"""The one error every reader raises: which file, which field, and what is wrong with it.

Readers raise with absolute paths; ``read_study`` re-roots them so messages show study-relative paths.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["IngestError"]


class IngestError(ValueError):
    """A study file that cannot be ingested as it is.

    Attributes
    ----------
    path : str
        The offending file or folder, relative to the study folder when it lies inside it
        (absolute otherwise, e.g. when a lazy reader is called on its own).
    field : str
        What inside it is wrong, e.g. ``"RepetitionTime"``, ``"acquisition/ElectricalSeries"``,
        ``"scanner_volumes"``; ``"file"`` when the file itself is missing or unreadable.
    reason : str
        What was expected and what was found.
    abspath : pathlib.Path
        The offending file or folder as an absolute path.

    Examples
    --------
    >>> err = IngestError("/data/study/sub-01/x_bold.json", "RepetitionTime", "missing",
    ...                   root="/data/study")
    >>> str(err)
    'sub-01/x_bold.json: RepetitionTime: missing'
    """

    def __init__(self, path, field: str, reason: str, *, root=None):
        self.abspath = Path(os.path.abspath(path))
        self.field = str(field)
        self.reason = str(reason)
        self.path = _display(self.abspath, root)
        super().__init__(self._message())

    def _message(self) -> str:
        return f"{self.path}: {self.field}: {self.reason}"

    def reroot(self, root) -> IngestError:
        """Show ``path`` relative to ``root`` if the file lies inside it (in place; returns self)."""
        self.path = _display(self.abspath, root)
        self.args = (self._message(),)
        return self

    def __str__(self) -> str:
        return self._message()

    def __repr__(self) -> str:
        return f"IngestError(path={self.path!r}, field={self.field!r}, reason={self.reason!r})"

    def __reduce__(self):
        # keep the error picklable (multiprocessing populate jobs pass errors back)
        return (_rebuild, (str(self.abspath), self.field, self.reason, self.path))


def _rebuild(abspath, field, reason, path):
    err = IngestError(abspath, field, reason)
    err.path = path
    err.args = (err._message(),)
    return err


def _display(path: Path, root) -> str:
    if root is not None:
        try:
            return Path(path).relative_to(Path(os.path.abspath(root))).as_posix() or "."
        except ValueError:
            pass
    return str(path)
