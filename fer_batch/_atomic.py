"""Writing a file safely: under a temporary name beside it, made durable, then renamed into place.

Why one helper: a run killed at any moment (kill -9, a power cut) must never leave a file under its final name
that looks complete but is not, and every output (tables, manifest, videos, summaries, plots) must follow the
same rule. The rule: the temporary file is fsynced before the rename, and its folder after it, so the final name
holds the old file or the whole new one, never a torn one. A failure removes the temporary file.
"""

from __future__ import annotations

import ctypes
import glob
import hashlib
import logging
import os
import re
import sys
import uuid
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

TMP_MARK = ".tmp-"  # temporary names are .<final name>.tmp-<pid>-<hex>: hidden, never ending in an output's suffix
NAME_MAX = 255  # bytes in one file name on the file systems we write to (ext4, xfs, btrfs, APFS, NTFS)
TAIL_BYTES = len(f"{TMP_MARK}{2**22}-{'0' * 8}".encode())  # the longest "<mark><pid>-<hex>" (Linux pids < 2**22)


def hidden_name(final_name: str, tail_bytes: int = TAIL_BYTES) -> str:
    """``.<final name>``, or where that and a tail of ``tail_bytes`` would not fit in one file name, ``.`` and a
    checksum of the final name: a helper's name (temporary file, hidden folder) fits wherever the final name fits."""
    name = f".{final_name}"
    if len(name.encode("utf-8", "surrogateescape")) + tail_bytes <= NAME_MAX:
        return name
    return "." + hashlib.sha256(final_name.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _stale_pattern(final_name: str) -> re.Pattern[str]:
    """Exactly the temporary names of ``final_name`` (and those of versions before the leading dot, and the short
    form of a long name), nothing a user would name a file: ``x.parquet.tmp-a.mp4`` is an input, not a leftover of
    ``x.parquet``."""
    short = re.escape(hidden_name(final_name))
    return re.compile(rf"(\.?{re.escape(final_name)}|{short}){re.escape(TMP_MARK)}\d+-[0-9a-f]+")


class AtomicPath:
    """A temporary path that becomes ``final`` on ``commit`` and disappears on ``discard``.

    As a context manager (``with atomic_path(final) as tmp``) it commits on a clean exit and discards on an
    exception; writers whose lifetime spans several calls (a sink, an encoder thread) call the two themselves.
    """

    def __init__(self, final: str | os.PathLike[str]) -> None:
        self.final = Path(final)
        self.tmp = self.final.with_name(f"{hidden_name(self.final.name)}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")

    def __enter__(self) -> Path:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        return self.tmp

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()

    def commit(self) -> Path:
        """Make the temporary file durable and give it its final name (replacing any file there)."""
        try:
            with open(self.tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(self.tmp, self.final)
        except BaseException:
            self.discard()
            raise
        _fsync_dir(self.final.parent)
        return self.final

    def discard(self) -> None:
        """Remove the temporary file, if it was created; the final name is left as it was."""
        self.tmp.unlink(missing_ok=True)


def atomic_path(final: str | os.PathLike[str]) -> AtomicPath:
    """``with atomic_path(final) as tmp:`` write ``tmp``; it becomes ``final`` only if the block completes."""
    return AtomicPath(final)


def remove_stale(final: str | os.PathLike[str]) -> None:
    """Remove temporary files of ``final`` left by a killed run (any process id)."""
    final = Path(final)
    pattern = _stale_pattern(final.name)
    for name in {final.name, hidden_name(final.name)[1:]}:
        for stale in final.parent.glob(f"*{glob.escape(name)}{TMP_MARK}*"):
            if pattern.fullmatch(stale.name):
                stale.unlink(missing_ok=True)


def commit_many(targets: list[AtomicPath]) -> list[OSError | None]:
    """``commit`` for many files at once: one sync of their file system (Linux ``syncfs``) in place of an fsync each,
    then the renames, then one sync per folder; each target's failure (its final name left as it was) in its place.

    Why: a folder of photos writes a table per photo, and an fsync per table cost more wall time than the networks
    (some 3 ms a table on a busy disk). The rule stays ``commit``'s: data durable before the rename, the rename
    durable before anyone is told.
    """
    errors: list[OSError | None] = [None] * len(targets)
    if not _syncfs({t.tmp.parent for t in targets}):
        for i, t in enumerate(targets):
            try:
                with open(t.tmp, "rb+") as f:
                    os.fsync(f.fileno())
            except OSError as e:
                errors[i] = e
    for i, t in enumerate(targets):
        try:
            if errors[i] is None:
                os.replace(t.tmp, t.final)
        except OSError as e:
            errors[i] = e
        if errors[i] is not None:
            t.discard()
    for folder in {t.final.parent for t, e in zip(targets, errors, strict=True) if e is None}:
        _fsync_dir(folder)
    return errors


def _syncfs(folders: set[Path]) -> bool:
    """Sync the file systems holding ``folders`` (Linux); False where that cannot be done (then fsync each file)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        for folder in folders:
            fd = os.open(folder, os.O_RDONLY)
            try:
                if libc.syncfs(fd) != 0:
                    return False
            finally:
                os.close(fd)
    except (OSError, AttributeError):
        return False
    return True


def stale_folders(finals: list[Path]) -> set[Path]:
    """The folders among those of ``finals`` that hold any temporary file at all (one listing each): only their
    files need ``remove_stale``, which lists a folder for every file (quadratic over a folder of photos)."""
    found = set()
    for folder in {Path(f).parent for f in finals}:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        if any(TMP_MARK in n for n in names):
            found.add(folder)
    return found


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable; platforms that cannot open a folder (Windows) skip it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        log.debug("fsync of %s not supported", folder)
    finally:
        os.close(fd)
