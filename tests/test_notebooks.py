"""Every notebook under notebooks/ runs top to bottom without error."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path, monkeypatch, lfpbold_home):
    monkeypatch.setenv("LFPBOLD_NOTEBOOK_HOME", str(lfpbold_home))  # reuse the run's embedded server
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    if path.name.startswith("05_"):
        _figures_come_from_lfpbold_plot(nb)


def _figures_come_from_lfpbold_plot(nb):
    """Notebook 05 draws with ``lfpbold.plot`` only, and each such cell shows its figure."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not any("pyplot" in c.source or "plt." in c.source or "nilearn" in c.source for c in code)
    shown = [c for c in code if c.source.strip().splitlines()[-1].startswith("lfpbold.plot(")]
    assert len(shown) >= 9, len(shown)
    for c in shown:
        kinds = {k for o in c.get("outputs", []) for k in o.get("data", {})}
        assert kinds & {"image/png", "image/svg+xml"}, (c.source, kinds)
