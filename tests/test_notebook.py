"""notebooks/analysis.ipynb runs against the bundled sample (so it never rots) and is committed without outputs; its
results are checked from outside: the per-event table it writes equals one computed here from the run's tables."""

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
    assert not any("assert " in c.source for c in nb.cells if c.cell_type == "code")  # checked here, from outside
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the conditions compared, the time line shaded by condition
    check_per_event(runs[0], text)
    if os.environ.get("FER_BATCH_KEEP_NOTEBOOK"):  # to look at the executed notebook by eye
        nbformat.write(nb, os.environ["FER_BATCH_KEEP_NOTEBOOK"])


def check_per_event(run: Path, text: str) -> None:
    """The notebook's per-event table (run/per_event.csv) against plain pandas over the table and the events file:
    every event of the sample's file, in order, with its face-frames and mean probabilities; and the printed
    comparison names both conditions with the mean over their events."""
    import numpy as np
    import pandas as pd

    events = pd.read_csv(REPO / "samples" / "astronaut_events.tsv", sep="\t")
    got = pd.read_csv(run / "per_event.csv")
    df = pd.read_parquet(run / "astronaut.parquet")
    faces = df[df["face"].notna()]
    rows = []
    for _, e in events.iterrows():
        inside = faces[(faces["time_s"] >= e["onset"]) & (faces["time_s"] < e["onset"] + e["duration"])]
        rows.append({"onset": e["onset"], "trial_type": e["trial_type"], "frames": len(inside),
                     "mean_happy": inside["happy"].mean(), "mean_neutral": inside["neutral"].mean()})  # fmt: skip
    want = pd.DataFrame(rows)
    assert got["onset"].tolist() == want["onset"].tolist() and got["trial_type"].tolist() == want["trial_type"].tolist()
    assert got["stimulus"].tolist() == events["stimulus"].tolist()  # the events' own columns, carried
    assert got["frames"].tolist() == want["frames"].tolist() and (want["frames"] > 0).all()
    for col in ("mean_happy", "mean_neutral"):
        np.testing.assert_allclose(got[col], want[col], atol=1e-6)
    per_condition = want.groupby("trial_type")["mean_happy"].mean()
    line = next(x for x in text.splitlines() if x.split()[:1] == ["happy"])
    np.testing.assert_allclose([float(v) for v in line.split()[1:3]], per_condition.round(4).to_numpy(), atol=1e-4)
    assert "conditions: baseline, stimulus" in text
