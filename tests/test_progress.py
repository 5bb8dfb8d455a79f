"""Progress as its reader takes it: a bar on a terminal, plain lines at most every 10 s in a log, nothing when quiet.

The 10 s rule runs on an injected clock, so no test sleeps.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import one_face, write_clip

import fer_batch._progress as progress_mod
from fer_batch._progress import Bar, Display, Lines, Silent, progress
from fer_batch.options import Options


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_say_start_then_at_most_every_10_s_then_end() -> None:
    clock, log = Clock(), io.StringIO()
    p = Lines("a.mp4", "frame", stream=log, clock=clock)
    p.start(300)
    for _ in range(9):  # 9 s of work, a window a second: no line yet
        clock.t += 1
        p.advance(10)
    assert log.getvalue() == "a.mp4: started (300 frames)\n"
    clock.t += 1
    p.advance(10)  # 10 s: one line
    for step in (2, 2, 2, 2, 1.5):
        clock.t += step
        p.advance(10)  # 9.5 s more: none
    clock.t += 0.5
    p.advance(10)  # 10 s after the last line: the next
    p.close()
    assert log.getvalue().splitlines() == [
        "a.mp4: started (300 frames)",
        "a.mp4: 100/300 frames, 10.0 frames/s, 10 s",
        "a.mp4: 160/300 frames, 8.0 frames/s, 20 s",
        "a.mp4: done, 160/300 frames, 8.0 frames/s, 20 s",
    ]
    assert "\r" not in log.getvalue() and "█" not in log.getvalue() and "|" not in log.getvalue()


def test_lines_without_a_total_or_an_end_line() -> None:
    clock, log = Clock(), io.StringIO()
    p = Lines("cam", "frame", stream=log, clock=clock, final=False)
    p.start(None)
    clock.t += 12
    p.advance(1)
    p.close()
    assert log.getvalue().splitlines() == ["cam: started", "cam: 1 frame, 0.1 frames/s, 12 s"]
    log = io.StringIO()
    p = Lines("cam", "frame", stream=log, clock=clock, first=False, final=False)
    p.start(None)
    clock.t += 10
    p.advance(3)
    p.close()
    assert log.getvalue().splitlines() == ["cam: 3 frames, 0.3 frames/s, 10 s"]


def test_a_name_that_is_not_one_line_stays_one_line() -> None:
    log = io.StringIO()
    p = Lines("new\nline.mp4", "frame", stream=log, clock=Clock())
    p.start(1)
    assert log.getvalue() == "new\\nline.mp4: started (1 frame)\n"


def test_the_display_follows_the_stream() -> None:
    assert Display.for_stream(Tty()) is Display.BAR
    assert Display.for_stream(io.StringIO()) is Display.LINES
    assert Display.for_stream(Tty(), quiet=True) is Display.SILENT
    assert Display.for_api(False) is Display.SILENT
    assert Display.for_api(True) in (Display.BAR, Display.LINES)  # not in a notebook here
    assert isinstance(progress(Display.SILENT, "x", "frame"), Silent)
    assert isinstance(progress(Display.LINES, "x", "frame"), Lines)
    assert isinstance(progress(Display.BAR, "x", "frame"), Bar)


def test_a_bar_without_a_total_counts_without_failing(capsys: pytest.CaptureFixture[str]) -> None:
    """The crash of #20: a tqdm bar without a total asked for its truth value."""
    p = progress(Display.BAR, "a.mp4", "frame")
    assert isinstance(p, Bar)
    p.start(None)
    p.advance(3)
    assert p.bar.n == 3
    p.close()
    p.close()  # closing twice is harmless
    assert "a.mp4: 0 frame [" in capsys.readouterr().err  # drawn at once, on stderr


@pytest.mark.slow
def test_an_input_run_at_a_terminal_with_a_bar_succeeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fer_batch.runs.jobs import plan_jobs
    from fer_batch.runs.runner import analyze_one

    write_clip(tmp_path / "v.mp4", n=12, faces=one_face)
    (job,) = plan_jobs([(tmp_path / "v.mp4", tmp_path)], tmp_path / "out", annotate=False)
    (tmp_path / "out").mkdir()
    result = analyze_one(job, Options(), Display.BAR)
    assert result.status == "ok", result.error
    err = capsys.readouterr().err
    # the bar was drawn (how far it got before it was cleared depends on tqdm's redraw interval, not on us)
    assert "v.mp4:" in err and "%|" in err, err


@pytest.mark.slow
def test_a_folder_run_logs_lines_while_each_input_works(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """With stderr a log: each input's start, its progress as windows finish (interval 0 here), no bar."""
    import fer_batch.runs.runner as runner

    monkeypatch.setattr(progress_mod, "LINE_INTERVAL_S", 0.0)
    write_clip(tmp_path / "v.mp4", n=40, faces=one_face)
    runner.run_many([tmp_path / "v.mp4"], tmp_path / "out", Options.of(batch_size=8), display=Display.LINES)
    lines = capsys.readouterr().err.splitlines()
    mine = [ln for ln in lines if ln.startswith(f"{tmp_path / 'v.mp4'}: ")]
    assert mine[0] == f"{tmp_path / 'v.mp4'}: started (40 frames)", lines
    assert len(mine) >= 3 and mine[-1].startswith(f"{tmp_path / 'v.mp4'}: 40/40 frames, "), lines
    assert not any("\r" in ln or "█" in ln for ln in lines)


@pytest.mark.slow
def test_the_api_shows_a_notebook_bar_in_jupyter_only_when_asked(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """In a Jupyter kernel: ``progress=True`` gives tqdm.auto's bar (a widget, or its text fallback on stderr when
    ipywidgets is absent); the default gives no progress output at all."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    from conftest import REPO

    monkeypatch.setenv("PYTHONPATH", str(REPO))
    write_clip(tmp_path / "v.mp4", n=12, faces=one_face)
    cells = [
        "import fer_batch, fer_batch._progress as p; print(p.in_notebook())",
        f"fer_batch.analyze_many([{str(tmp_path / 'v.mp4')!r}], {str(tmp_path / 'a')!r}, progress=True)",
        f"fer_batch.analyze_many([{str(tmp_path / 'v.mp4')!r}], {str(tmp_path / 'b')!r})",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    first, asked, default = (c.outputs for c in nb.cells)
    assert first[0]["text"].strip() == "True"

    def progress_outputs(outputs: list) -> list:
        return [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
                or (o.get("name") == "stderr" and "inputs" in o.get("text", ""))]  # fmt: skip

    assert progress_outputs(asked), asked
    assert not [o for o in default if o.get("output_type") == "stream" or "widget" in str(o.get("data", ""))], default


def test_a_log_that_went_away_never_fails_the_work() -> None:
    class Gone(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    p = Lines("a.mp4", "frame", stream=Gone(), clock=Clock(), interval=0)
    p.start(3)
    p.advance(3)
    p.close()  # nothing raised
