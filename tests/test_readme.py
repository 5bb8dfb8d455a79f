"""README's commands work as written: each shell line and Python block of README.md is run here, in a scratch folder,
with only its inputs and addresses swapped for local ones (or, for the set-up and install lines, run by .ci/run).

Why: README is the first thing a newcomer runs; a command that fails there (an option renamed, an extra spelled for
an index the package is not on) is a bug, and only running them finds it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, one_face, write_clip

README = REPO / "README.md"
CI = REPO / ".ci" / "run"
EXAMPLE_ADDRESS = "tcp://10.0.0.5:8786"
# lines that need what a test machine does not have: the GPU build of onnxruntime (a CUDA machine and a download of
# its wheel), a Slurm allocation
NOT_HERE = ("pip uninstall -y onnxruntime", "srun ")


def readme() -> str:
    return README.read_text(encoding="utf-8")


def shell_lines(text: str) -> list[str]:
    """Every command of README's ```bash blocks: continuation lines joined, comments and blank lines dropped."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_readme_has_commands_and_names_no_package_index() -> None:
    lines = shell_lines(readme())
    assert any(line.startswith("fer-batch analyze") for line in lines)
    assert 'fer-batch[' not in readme()  # pip install "fer-batch[x]" needs an index that has fer-batch; a clone has not


def optional_dependencies() -> set[str]:
    """The extras pyproject.toml declares (read without tomllib, which Python 3.10 lacks)."""
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([\w-]+)\s*=", section, re.M))


def test_setup_and_install_lines_are_run_by_ci() -> None:
    """The set-up commands, exactly as written, are lines of .ci/run; every extra README installs exists, spelled
    for a clone (``pip install ".[name]"``)."""
    ci = CI.read_text(encoding="utf-8")
    extras = optional_dependencies()
    setup = [line for line in shell_lines(readme()) if line.startswith("python -m venv")]
    assert len(setup) >= 2
    for line in setup:
        assert line in ci.splitlines(), line
    for line in shell_lines(readme()):
        for name in re.findall(r'pip install\s+"?\.\[([\w,-]+)\]"?', line):
            assert all(n in extras for n in name.split(",")), line
        if "pip install" in line and not line.startswith("python -m venv") and not any(s in line for s in NOT_HERE):
            assert re.search(r'pip install "\.\[[\w,-]+\]"', line), f"not installable from a clone: {line}"
            assert any(line in c for c in ci.splitlines()), f"not run by .ci/run: {line}"


# --- running them ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scratch(tmp: Path) -> dict[str, str]:
    """Inputs for README's example paths, made in code: what each example path becomes."""
    (tmp / "home" / "recordings" / "day1").mkdir(parents=True)
    for name, n in (("day1/p01.mp4", 12), ("p02.mp4", 8)):
        write_clip(tmp / "home" / "recordings" / name, n=n, faces=one_face)
        sidecar = (tmp / "home" / "recordings" / name).with_name(Path(name).stem + "_events.tsv")
        sidecar.write_text("onset\tduration\ttrial_type\n0.0\t0.5\tbaseline\n0.5\t0.5\tstimulus\n")  # export --by event
    write_clip(tmp / "interview.mp4", n=16, faces=one_face, audio=True)
    shutil.copytree(REPO / "samples", tmp / "samples")
    (tmp / "shared" / "long").mkdir(parents=True)
    shutil.copytree(tmp / "home" / "recordings", tmp / "shared" / "recordings")
    write_clip(tmp / "shared" / "long" / "talk.mp4", n=30, faces=one_face)
    # an events file (BIDS-style) for commands that name one
    (tmp / "study1_events.tsv").write_text("onset\tduration\ttrial_type\n0.0\t1.0\tbaseline\n1.0\t1.0\tstimulus\n")
    return {"~/recordings": str(tmp / "home" / "recordings"), "/shared/": str(tmp / "shared") + "/",
            "/scratch/": str(tmp / "scratch") + "/"}  # fmt: skip


def localise(line: str, paths: dict[str, str], address: str) -> str:
    """A README line with its example paths and cluster address made local; a camera becomes a clip played at
    real-time pace, 60 s of it 2 s; 16 workers a machine 2."""
    for old, new in paths.items():
        line = line.replace(old, new)
    line = line.replace(EXAMPLE_ADDRESS, address)
    line = re.sub(r"--camera \S+", "--camera interview.mp4", line)
    line = line.replace("--seconds 60", "--seconds 2").replace("--nworkers 16", "--nworkers 2")
    return line


@pytest.fixture
def cluster_address() -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """An address for README's scheduler, and the processes README's `dask` lines start (stopped afterwards)."""
    procs: list[subprocess.Popen[bytes]] = []
    yield f"tcp://127.0.0.1:{free_port()}", procs
    for p in reversed(procs):  # workers first, then the scheduler; each with its children (its own session)
        os.killpg(p.pid, signal.SIGINT)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(p.pid, signal.SIGKILL)  # whatever of the group is left (a nanny's worker, a resource tracker)
        except ProcessLookupError:
            pass
        p.wait()


def env() -> dict[str, str]:
    """This checkout's package first on the path, and `fer-batch`/`dask` from this interpreter's folder."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(REPO), e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return e


def run_line(line: str, cwd: Path, address: str, procs: list[subprocess.Popen[bytes]]) -> None:
    bindir = Path(sys.executable).parent
    argv = line.split()
    if argv[0] == "fer-batch":
        cmd = f"{sys.executable} -m fer_batch.cli {line[len('fer-batch') :]}"
    elif argv[0] == "dask":
        host, port = address.removeprefix("tcp://").split(":")
        extra = f" --host {host} --port {port} --no-dashboard" if argv[1] == "scheduler" else ""
        procs.append(subprocess.Popen([str(bindir / "dask"), *shlex.split(line)[1:], *extra.split()], cwd=cwd,
                                      env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))  # fmt: skip
        time.sleep(3 if argv[1] == "scheduler" else 0)
        return
    else:
        raise AssertionError(f"README runs a command this test does not know how to run: {line}")
    if "--scheduler" in line:
        wait_for_workers(address)
    r = subprocess.run(cmd, shell=True, cwd=cwd, env=env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (line, r.stderr[-2000:])


def wait_for_workers(address: str, timeout: float = 60) -> None:
    from distributed import Client

    with Client(address, timeout=timeout) as client:
        client.wait_for_workers(1, timeout=timeout)


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path: Path, cluster_address) -> None:  # noqa: ANN001
    address, procs = cluster_address
    paths = scratch(tmp_path)
    setup = next(line for line in shell_lines(readme()) if line.startswith("python -m venv") and "analyze" in line)
    # the set-up's own analysis of the sample (.ci/run runs the whole line): commands below may read its folder
    run_line(setup.rsplit(".venv/bin/", 1)[1], tmp_path, address, procs)
    ran = 0
    for line in shell_lines(readme()):
        if line.startswith(("python -m venv", "pip install")) or any(s in line for s in NOT_HERE):
            continue  # .ci/run runs these (test_setup_and_install_lines_are_run_by_ci)
        run_line(localise(line, paths, address), tmp_path, address, procs)
        ran += 1
    assert ran >= 10
    assert (tmp_path / "runs" / "one" / "interview.annotated.mp4").is_file()
    assert (tmp_path / "runs" / "study1" / "report.html").is_file()


@pytest.mark.slow
def test_every_readme_python_block_runs(tmp_path: Path, cluster_address) -> None:  # noqa: ANN001
    address, procs = cluster_address
    paths = scratch(tmp_path)
    blocks = python_blocks(readme())
    assert blocks
    for code in blocks:
        if "dask_jobqueue" in code:
            continue  # needs a Slurm cluster (NOT_HERE)
        if EXAMPLE_ADDRESS.removeprefix("tcp://") in code and not procs:
            run_line("dask scheduler", tmp_path, address, procs)
            run_line(localise(f"dask worker {EXAMPLE_ADDRESS} --nthreads 1 --nworkers 16", paths, address), tmp_path,
                     address, procs)
            wait_for_workers(address)
        r = subprocess.run([sys.executable, "-c", localise(code, paths, address)], cwd=tmp_path, env=env(),
                           capture_output=True, text=True, timeout=300)  # fmt: skip
        assert r.returncode == 0, (code[:200], r.stderr[-2000:])
