"""notebooks/analysis.ipynb runs against the bundled sample (so it never rots) and is committed without outputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import REPO

NOTEBOOK = REPO / "notebooks" / "analysis.ipynb"

nbformat = pytest.importorskip("nbformat")


def test_notebook_is_stored_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
def test_notebook_executes_on_the_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    # the kernel inherits this environment: the package from this checkout, the sample's run under tmp_path
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend: figures become outputs
    monkeypatch.delenv("FER_BATCH_RUN", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()  # raises CellExecutionError, with the failing cell's traceback, on any error
    runs = list(tmp_path.glob("fer-batch-notebook-*"))
    assert len(runs) == 1 and (runs[0] / "astronaut.parquet").is_file()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "ok" in text and str(runs[0]) in text
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the timeline and the share-of-time chart
    if os.environ.get("FER_BATCH_KEEP_NOTEBOOK"):  # to look at the executed notebook by eye
        nbformat.write(nb, os.environ["FER_BATCH_KEEP_NOTEBOOK"])
