"""Every command as a person types it: in a terminal (a pseudo-terminal, and one real tmux pane).

Why a tier of its own: a terminal on stderr turns on progress bars and turns off per-input lines, so these are paths
that ``capture_output`` never takes; README's own first command once failed on every terminal while every other test
was green.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import REPO, one_face, write_clip
from terminal import Screen, fer_batch, run_in_pty, run_in_tmux

pytestmark = pytest.mark.slow

SAMPLE = REPO / "samples" / "astronaut.mp4"


def assert_clean(screen: Screen, code: int = 0) -> None:
    assert screen.code == code, screen.text
    assert "Traceback" not in screen.text and "error" not in screen.text.lower(), screen.text


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("clips")
    paths = [folder / f"c{k}.mp4" for k in range(2)]
    for p in paths:
        write_clip(p, n=30, faces=one_face)
    return paths


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """README's first command, typed at a terminal: the run the other commands read."""
    out = tmp_path_factory.mktemp("run") / "sample"
    screen = run_in_pty(fer_batch("analyze", str(SAMPLE.relative_to(REPO)), "--out", str(out)), cwd=REPO)
    assert_clean(screen)
    assert screen.shows_bar(), screen.text
    return out


def test_readme_first_command_in_a_terminal(sample_run: Path) -> None:
    table = pq.read_table(sample_run / "astronaut.parquet")
    assert table.num_rows > 0 and table.column("face").null_count < table.num_rows


def test_analyze_jobs_2_in_a_terminal(clips: list[Path], tmp_path: Path) -> None:
    screen = run_in_pty(fer_batch("analyze", *map(str, clips), "--out", str(tmp_path / "o"), "--jobs", "2"), cwd=REPO,
                        stdout_file=tmp_path / "stdout")  # fmt: skip
    assert_clean(screen)
    assert screen.shows_bar(), screen.text
    assert screen.stdout is not None and screen.stdout.startswith("ok=2 "), screen.stdout
    tables = sorted(p.name for p in (tmp_path / "o").glob("*.parquet"))
    assert tables == ["c0.parquet", "c1.parquet", "manifest.parquet"]


def test_analyze_annotate_and_report_in_a_terminal(clips: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "o"
    screen = run_in_pty(fer_batch("analyze", str(clips[0]), "--out", str(out), "--annotate", "--report"), cwd=REPO)
    assert_clean(screen)
    assert screen.shows_bar(), screen.text
    assert (out / "c0.parquet").is_file() and (out / "c0.annotated.mp4").stat().st_size > 0
    assert (out / "report.html").is_file() and f"report: {out / 'report.html'}" in screen.text


def test_summary_goes_to_stdout_and_the_bar_stays_on_the_terminal(clips: list[Path], tmp_path: Path) -> None:
    """``fer-batch analyze ... | tee run.log``: stdout a file, stderr still the terminal."""
    out = tmp_path / "o"
    screen = run_in_pty(fer_batch("analyze", str(clips[0]), "--out", str(out)), cwd=REPO,
                        stdout_file=tmp_path / "run.log")  # fmt: skip
    assert_clean(screen)
    assert screen.shows_bar(), screen.text
    summary = f"ok=1 partial=0 failed=0 skipped=0; manifest: {out / 'manifest.parquet'}"
    assert screen.stdout is not None and summary in screen.stdout, screen.stdout
    assert "ok=1" not in screen.text  # on stdout only, not twice


def test_render_in_a_terminal(sample_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "a.mp4"
    screen = run_in_pty(fer_batch("render", str(SAMPLE), str(sample_run / "astronaut.parquet"), "-o", str(target)),
                        cwd=REPO)  # fmt: skip
    assert_clean(screen)
    assert screen.shows_bar(), screen.text
    assert target.stat().st_size > 0 and f"wrote {target}" in screen.text


def test_summary_in_a_terminal(sample_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(sample_run, run)
    screen = run_in_pty(fer_batch("summary", str(run)), cwd=REPO)
    assert_clean(screen)
    assert screen.shows_bar(), screen.text
    assert (run / "summary.parquet").is_file() and (run / "astronaut.mp4.timeline.png").is_file()
    assert "astronaut" in screen.text


def test_report_in_a_terminal(sample_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(sample_run, run)
    screen = run_in_pty(fer_batch("report", str(run)), cwd=REPO)
    assert_clean(screen)
    assert screen.shows_bar(), screen.text
    assert (run / "report.html").is_file() and f"report: {run / 'report.html'}" in screen.text


def test_an_unsized_terminal_still_shows_the_bar(clips: list[Path], tmp_path: Path) -> None:
    """0x0, as `script` in CI or a container's console reports it: tqdm fitted to that width draws nothing."""
    screen = run_in_pty(fer_batch("analyze", str(clips[0]), "--out", str(tmp_path / "o")), cwd=REPO, columns=0)
    assert_clean(screen)
    assert screen.shows_bar(), screen.text


def test_export_in_a_terminal(sample_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "tracks.csv"
    screen = run_in_pty(fer_batch("export", str(sample_run), "--out", str(target), "--by", "track"), cwd=REPO)
    assert_clean(screen)
    assert target.stat().st_size > 0 and f"wrote {target}" in screen.text


def test_models_in_a_terminal() -> None:
    screen = run_in_pty(fer_batch("models"), cwd=REPO)
    assert_clean(screen)
    assert screen.text.count("sha256 ok") == 4


def test_webcam_from_a_file_in_a_terminal(clips: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "live"
    screen = run_in_pty(fer_batch("webcam", "--camera", str(clips[0]), "--out", str(out), "--no-preview"), cwd=REPO)
    assert_clean(screen)
    assert screen.shows_counter("frame"), screen.text  # live: no total to fill a bar
    tables = list(out.glob("webcam-*.parquet"))
    assert len(tables) == 1 and pq.read_table(tables[0]).num_rows > 0


def test_a_missing_path_in_a_terminal_is_a_usage_error(tmp_path: Path) -> None:
    screen = run_in_pty(fer_batch("analyze", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "o")), cwd=REPO)
    assert screen.code == 2, screen.text
    assert screen.text.strip().splitlines() == [f"error: {tmp_path / 'nope.mp4'}: no such file or directory"]
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (Debian package tmux)")
def test_readme_first_command_in_tmux(tmp_path: Path) -> None:
    """The pane as a person sees it once the command is done: the finished bar, the summary, nothing else."""
    out = tmp_path / "sample"
    command = " ".join(fer_batch("analyze", "samples/astronaut.mp4", "--out", str(out)))
    code, pane = run_in_tmux(command, cwd=REPO)
    assert code == 0, pane
    assert (out / "astronaut.parquet").is_file()
    assert "Traceback" not in pane and ": failed" not in pane, pane
    assert "inputs: 100%|" in pane and "1/1" in pane, pane
    bars = [ln for ln in pane.splitlines() if "%|" in ln or "frame/s]" in ln]
    assert all(ln.startswith("inputs: ") and ln.count("|") == 2 for ln in bars), pane  # no log line inside a bar
    assert f"ok=1 partial=0 failed=0 skipped=0; manifest: {out / 'manifest.parquet'}" in pane, pane
