"""The output folder: checked before any work (a bad ``--out`` is one usage error, not one failure per input) and
locked for the run, so two runs never write into it at once.

Why a separate step: an ``--out`` that is a file, lies under a file, or sits on a read-only mount would otherwise be
found by the first table write, after the models are loaded and the first video decoded, and then again for every
input. Creating the folder and one probe file in it is the only check that answers for every file system.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from fer_batch.errors import UsageError

log = logging.getLogger(__name__)


def out_path(out: str | os.PathLike[str]) -> Path:
    """``out`` as a path; an empty one is a usage error (``Path("")`` is the current folder: never write there by
    accident). Every entry point (CLI, API, webcam) comes through here with ``out`` as it was given."""
    if not str(out).strip():
        raise UsageError("--out must not be empty")
    return Path(out)


def check_out(out: str | os.PathLike[str]) -> Path:
    """Check ``out`` without creating anything: not empty, not a file or under one, its nearest folder writable."""
    path = out_path(out)
    for p in (path, *path.parents):
        if p.exists() or p.is_symlink():
            if not p.is_dir():
                where = "" if p == path else f" lies under {p}, which"
                raise UsageError(f"--out {out}{where} is a file, not a folder")
            if not os.access(p, os.W_OK | os.X_OK):  # also false on a read-only mount, even for root
                raise UsageError(f"--out {out}: cannot write to {p} ({_why_not_writable(p)})")
            break
    return path


def prepare_out(out: str | os.PathLike[str]) -> Path:
    """Create ``out`` (and its parents) and prove that files can be written there; ``UsageError`` otherwise."""
    path = check_out(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot create the folder ({e.strerror or e})") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".fer-batch-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot write there ({e.strerror or e})") from None
    return path


def _why_not_writable(folder: Path) -> str:
    try:
        st = os.statvfs(folder)
        if st.f_flag & os.ST_RDONLY:
            return "read-only file system"
    except (OSError, AttributeError):
        pass
    return "permission denied"


LOCK_NAME = ".fer-batch.lock"


class OutputLock:
    """One run at a time per output folder: an exclusive ``flock`` on ``OUT/.fer-batch.lock`` holding the pid.

    Why: two runs into one folder deleted each other's temporary files and each rewrote the manifest with its own
    rows only. The kernel releases the lock when the process ends in any way (kill -9 included), so a stale lock
    file never blocks a later run. File systems without locks (some network mounts) run unlocked, with a warning.
    """

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.out = Path(out)
        self.path = self.out / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        try:
            import fcntl
        except ImportError:  # not POSIX
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UsageError(f"--out {self.out}: cannot create {LOCK_NAME} ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise UsageError(f"another fer-batch run (pid {holder}) is writing to {self.out}; wait for it to end "
                             "or choose another --out") from None  # fmt: skip
        except OSError as e:
            os.close(fd)
            log.warning("%s: cannot lock the output folder (%s); make sure no other run writes there",
                        self.out, e.strerror or e)  # fmt: skip
            return self
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the last descriptor releases the lock
            self._fd = None
