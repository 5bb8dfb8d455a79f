"""Issue 26 item 12: SIGTERM is a clean stop, numpy's RuntimeWarnings stay off the console, API misuse is named."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, write_clip

from fer_batch._atomic import TMP_MARK


@pytest.mark.slow
def test_sigterm_says_what_finished_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_clip(src / "a0.mp4", n=3)
    for k in range(1, 3):
        write_clip(src / f"a{k}.mp4", n=150, size=(320, 240))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "fer_batch.cli", "analyze", str(src), "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    seen = []
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stderr.readline()
        seen.append(line)
        if "a0.mp4: ok" in line or not line:
            break
    time.sleep(0.3)  # into the next input, whose table is being written under a temporary name
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 143, "".join(seen) + rest
    assert "Traceback" not in rest
    last = rest.strip().splitlines()[-1]
    assert last.startswith("terminated: ") and "ok=1" in last and "run the same command again" in last
    assert not [p for p in out.rglob("*") if TMP_MARK in p.name]
