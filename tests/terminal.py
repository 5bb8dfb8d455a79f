"""Run a command the way a person meets it: under a pseudo-terminal (stdlib ``pty``), or in a real ``tmux`` pane.

Why: a command whose stderr is a terminal takes other paths (progress bars, no per-input lines) than one whose
output goes to a pipe, and ``subprocess.run(capture_output=True)`` never takes them. Here the child's stdin, stdout
and stderr are the slave side of a pty pair (stdout may go to a file instead, as ``| tee`` would take it) and the
master side is read until every process holding the slave (worker processes included) has closed it.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BAR = re.compile(r"\|[█▏▎▍▌▋▊▉ #]*\|")  # tqdm's bar between its two pipes (unicode blocks, or ascii '#')


@dataclass
class Screen:
    """What a terminal session left: the exit code, every byte written to the terminal (decoded), and stdout
    when it went to a file instead."""

    code: int
    raw: str
    stdout: str | None = None

    @property
    def text(self) -> str:
        """The terminal's bytes without escape sequences, carriage returns kept (bars redraw with them)."""
        return ANSI.sub("", self.raw)

    def shows_bar(self) -> bool:
        return bool(BAR.search(self.text))

    def shows_counter(self, unit: str) -> bool:
        """tqdm without a total: a count, the elapsed time and a rate (``12 frame [00:01, 9.8 frame/s]``)."""
        return bool(re.search(rf"\d+ ?{unit} \[\d\d:\d\d, ", self.text))


def run_in_pty(args: list[str], *, cwd: Path, timeout: float = 300, columns: int = 100,
               stdout_file: Path | None = None, env: dict[str, str] | None = None) -> Screen:  # fmt: skip
    """Run ``args`` with a ``columns``-wide pseudo-terminal as stdin/stdout/stderr (stdout to ``stdout_file`` if
    given); return when the command exited and the terminal is closed. A timeout kills the command's group."""
    master, slave = pty.openpty()
    rows = 40 if columns else 0  # columns=0: a terminal nobody sized, as `script` makes one in CI
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = dict(os.environ if env is None else env, TERM="xterm-256color")
    for name in ("COLUMNS", "LINES"):  # the size is the terminal's to say
        env.pop(name, None)
    out = open(stdout_file, "wb") if stdout_file is not None else None  # noqa: SIM115 — closed below
    try:
        proc = subprocess.Popen(args, cwd=cwd, stdin=slave, stdout=out if out is not None else slave, stderr=slave,
                                env=env, start_new_session=True)  # fmt: skip
    finally:
        os.close(slave)
        if out is not None:
            out.close()
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.killpg(proc.pid, 9)
                raise TimeoutError(f"{args} ran longer than {timeout} s; screen so far:\n" + b"".join(chunks).decode())
            ready, _, _ = select.select([master], [], [], min(left, 1.0))
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every process holding the slave side has closed it
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    stdout = stdout_file.read_text(errors="replace") if stdout_file is not None else None
    return Screen(code, b"".join(chunks).decode(errors="replace"), stdout)


def fer_batch(*args: str) -> list[str]:
    """The ``fer-batch`` command as this checkout runs it."""
    return [sys.executable, "-m", "fer_batch.cli", *args]


def run_in_tmux(command: str, *, cwd: Path, timeout: float = 300, columns: int = 100) -> tuple[int, str]:
    """Type ``command`` into a fresh tmux session's shell and return (exit code, the pane as a person sees it)."""
    tmux = shutil.which("tmux")
    assert tmux is not None
    session = f"fer-batch-test-{os.getpid()}"
    socket = ["-L", session]  # a server of its own: never the user's sessions
    marker = "__exit__="
    subprocess.run([tmux, *socket, "new-session", "-d", "-s", session, "-x", str(columns), "-y", "40", "-c",
                    str(cwd), "bash --norc --noprofile"], check=True, timeout=30)  # fmt: skip
    try:
        subprocess.run([tmux, *socket, "send-keys", "-t", session, f"{command}; echo {marker}$?", "Enter"],
                       check=True, timeout=30)  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            pane = subprocess.run([tmux, *socket, "capture-pane", "-p", "-J", "-t", session, "-S", "-"],
                                  check=True, capture_output=True, text=True, timeout=30).stdout  # fmt: skip
            found = re.search(re.escape(marker) + r"(\d+)", pane)
            if found:
                return int(found.group(1)), pane
            if time.monotonic() > deadline:
                raise TimeoutError(f"{command!r} ran longer than {timeout} s; pane:\n{pane}")
            time.sleep(0.5)
    finally:
        subprocess.run([tmux, *socket, "kill-server"], timeout=30, check=False)
