"""Issue 26 item 12: SIGTERM is a clean stop, numpy's RuntimeWarnings stay off the console, API misuse is named."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, interrupted_run, write_clip

from fer_batch._atomic import TMP_MARK


@pytest.mark.slow
def test_sigterm_says_what_finished_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    # 0.3 s into the next input, whose table is being written under a temporary name; 450 frames so that input is
    # still running then (150 were done within 0.3 s at times once full scans ran int8)
    rc, seen, rest, _ = interrupted_run(tmp_path, signal.SIGTERM, 450, (320, 240), settle_s=0.3)
    out = tmp_path / "out"
    assert rc == 143, seen + rest
    assert "Traceback" not in rest
    last = rest.strip().splitlines()[-1]
    assert last.startswith("terminated: ") and "ok=1" in last and "run the same command again" in last
    assert not [p for p in out.rglob("*") if TMP_MARK in p.name]


WARNS = """
import sys, numpy as np
import fer_batch.runs.runner as runner
from fer_batch.cli import app

def run_many(*args, **kwargs):
    np.log(np.zeros(1))  # "divide by zero encountered in log", as a degenerate input can cause
    np.mean(np.zeros(0))  # "Mean of empty slice"
    return []

runner.run_many = run_many
app(["analyze", sys.argv[1], "--out", sys.argv[2]])
"""


@pytest.mark.slow
def test_numpy_runtime_warnings_never_reach_the_console(tmp_path: Path) -> None:
    src = tmp_path / "v.mp4"
    write_clip(src, n=2)
    r = subprocess.run([sys.executable, "-c", WARNS, str(src), str(tmp_path / "out")], cwd=REPO, capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "RuntimeWarning" not in r.stderr and "np.log" not in r.stderr, r.stderr


MISUSE = {
    "analyze_video path int": (lambda f, t: f.analyze_video(123), TypeError, "path"),
    "analyze_video path None": (lambda f, t: f.analyze_video(None), TypeError, "path"),
    "analyze_many paths int": (lambda f, t: f.analyze_many(5, t / "o"), TypeError, "paths"),
    "analyze_many a path in the list": (lambda f, t: f.analyze_many([t, 7], t / "o"), TypeError, "paths"),
    "analyze_many out int": (lambda f, t: f.analyze_many(t, 5), TypeError, "out"),
    "analyze_many out None": (lambda f, t: f.analyze_many(t, None), TypeError, "out"),
    "analyze_many annotate string": (lambda f, t: f.analyze_many(t, t / "o", annotate="no"), TypeError, "annotate"),
    "analyze_many resume int": (lambda f, t: f.analyze_many(t, t / "o", resume=0), TypeError, "resume"),
    "analyze_many executor": (lambda f, t: f.analyze_many(t, t / "o", executor=object()), TypeError, "executor"),
    "analyze_many option type": (lambda f, t: f.analyze_many(t, t / "o", fps="5"), ValueError, "fps"),
    "load None": (lambda f, t: f.load(None), TypeError, "out"),
    "summarize int": (lambda f, t: f.summarize(3), TypeError, "run_dir"),
    "summarize plots": (lambda f, t: f.summarize(t, plots="yes"), TypeError, "plots"),
    "write_report thumbnails": (lambda f, t: f.write_report(t, thumbnails="4"), TypeError, "thumbnails"),
    "write_report negative": (lambda f, t: f.write_report(t, thumbnails=-1), ValueError, "thumbnails"),
}


@pytest.mark.parametrize("case", sorted(MISUSE))
def test_api_misuse_names_the_argument(tmp_path: Path, case: str) -> None:
    import fer_batch

    call, kind, name = MISUSE[case]
    with pytest.raises(kind, match=name) as info:
        call(fer_batch, tmp_path)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "o").exists()  # nothing written
