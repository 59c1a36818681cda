"""Staging and swap of an output directory: a new output appears whole or not at all.

``with staged(out_dir) as staging:`` gives an empty folder beside ``out_dir`` (``.<out>.<random>``) to write the
new output into; when the block ends normally, the staging folder replaces ``out_dir`` (the previous output is
removed only once the new one is complete); when it raises, the staging folder is removed and the previous
output is left as it was. An OSError in the block is told as a PackageError in the user's paths. So the app
(appgen) and its build context (image) are two writes into one staging folder, and a failure in either leaves
the previous output in place.

The staging folder holds a lock file (``.modelfunc-staging``: the writer's pid, and an exclusive ``flock`` for as
long as the writer lives). A run killed with SIGKILL (or a power cut) leaves its staging folder behind, its lock
released by the kernel; the next run for the same output proves each one abandoned by taking its lock, and
removes it (a staging folder whose lock is still held belongs to a live run and is left alone). The previous
output is moved into the staging folder before the swap, so a run killed between the two moves leaves it there,
and the next run puts it back.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import PackageError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: staging folders are not proven abandoned there
    fcntl = None  # type: ignore[assignment]

STAGING_LOCK = ".modelfunc-staging"  # in a staging folder: the writer's pid, flock'ed while it lives
PREVIOUS = ".modelfunc-previous"  # in a staging folder: the output it replaces, between the two moves of the swap


@contextmanager
def staged(out_dir: Path, progress: Callable[[str], None] = lambda _: None) -> Iterator[Path]:
    """A locked staging folder for the new ``out_dir`` (an absolute path), swapped in when the block ends normally.

    Abandoned staging folders of earlier runs are removed first (see ``remove_abandoned_staging``)."""
    remove_abandoned_staging(out_dir, progress)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as e:
        raise PackageError(f"output directory {out_dir} cannot be created: {e.strerror}",
                           hint="choose another --out") from None
    lock = None
    try:
        lock = _claim(staging)
        yield staging
        # Swap in atomically: the old output (if any) is removed only once the new one is complete. It is moved
        # into the staging folder first, so that a run killed between the two renames leaves it with the lock.
        if out_dir.exists():
            out_dir.rename(staging / PREVIOUS)
        staging.rename(out_dir)
    except OSError as e:
        _release(lock)
        _undo(staging, out_dir)
        raise _write_failure(e, staging, out_dir) from None
    except BaseException:
        _release(lock)
        _undo(staging, out_dir)
        raise
    try:
        shutil.rmtree(out_dir / PREVIOUS, ignore_errors=True)
        (out_dir / STAGING_LOCK).unlink(missing_ok=True)
    finally:
        _release(lock)


def _claim(staging: Path) -> int | None:
    """Lock ``staging`` for this run: its lock file holds this pid and an exclusive flock (released by the kernel
    when the process ends, however it ends). Returns the descriptor to keep open, or None without flock."""
    fd = os.open(staging / STAGING_LOCK, os.O_CREAT | os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a folder mkdtemp just made: nobody else has it
    os.write(fd, f"{os.getpid()} {int(time.time())}\n".encode())
    return fd


def _release(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def _undo(staging: Path, out_dir: Path) -> None:
    """A failed write: the previous output back in place if it was moved already, the staging folder removed."""
    previous = staging / PREVIOUS
    if previous.is_dir() and not out_dir.exists():
        previous.rename(out_dir)
    shutil.rmtree(staging, ignore_errors=True)


def remove_abandoned_staging(out_dir: Path, progress: Callable[[str], None] = lambda _: None) -> list[str]:
    """Remove the staging folders of earlier runs for ``out_dir`` that are proven abandoned: their lock file's
    flock can be taken, so the run that wrote them has ended without finishing. Returns the names removed.

    Only folders named ``.<out>.*`` beside ``out_dir`` that hold a lock file (regular, not a link) are candidates;
    anything else there is never touched. When ``out_dir`` is missing and an abandoned folder holds the previous
    output (the run died between the two moves of its swap), that output is put back first.
    """
    parent = out_dir.parent
    if fcntl is None or not parent.is_dir():
        return []
    removed = []
    prefix = f".{out_dir.name}."
    try:
        entries = sorted(os.scandir(parent), key=lambda e: e.name)
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(prefix) or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            fd = os.open(os.path.join(entry.path, STAGING_LOCK), os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue  # no lock file: not a staging folder this version wrote; leave it
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # held: a run writing this output right now
            owner = os.pread(fd, 64, 0).decode("ascii", "replace").split()
            staging = Path(entry.path)
            previous = staging / PREVIOUS
            restored = ""
            if previous.is_dir() and not out_dir.exists():
                previous.rename(out_dir)
                restored = f"; put back the output it was replacing as {out_dir.name}"
            shutil.rmtree(staging, ignore_errors=True)
            removed.append(entry.name)
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(owner[1]))) \
                if len(owner) > 1 and owner[1].isdigit() else "at an unknown time"
            progress(f"removed {entry.name}: the staging folder of a package run that never finished (pid "
                     f"{owner[0] if owner else '?'}, started {when}, no longer running){restored}")
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def _write_failure(error: OSError, staging: Path, out_dir: Path) -> PackageError:
    """An OSError while writing the output, as the user's paths say it (the staging folder is ours, not theirs)."""
    names = [str(n) for n in (error.filename2, error.filename) if n]  # shutil.copyfile: (source, destination)
    where = None
    for name in names:
        try:
            where = out_dir / Path(name).relative_to(staging)
            break
        except ValueError:
            continue
    reason = error.strerror or str(error)
    writing = error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)
    if names and where is None and not writing:
        message = f"cannot read {names[-1]} while writing {out_dir}: {reason}"
    else:
        message = f"cannot write {where or out_dir}: {reason}"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = "free some space on that disk, or choose another --out (nothing was replaced: the previous output " \
               "is as it was)"
    elif error.errno == errno.EROFS:
        hint = "the file system is read-only: choose another --out"
    else:
        hint = "choose another --out"
    return PackageError(message, hint=hint)
