"""The output folder: checked before any work, so a bad ``--out`` is one usage error and not one failure per input.

Why a separate step: an ``--out`` that is a file, lies under a file, or sits on a read-only mount would otherwise be
found by the first table write, after the models are loaded and the first video decoded, and then again for every
input. Creating the folder and one probe file in it is the only check that answers for every file system.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fer_batch.options import UsageError


def check_out(out: str | os.PathLike[str]) -> Path:
    """Check ``out`` without creating anything: not empty, not a file or under one, its nearest folder writable."""
    if not str(out).strip():
        raise UsageError("--out must not be empty")
    path = Path(out)
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
