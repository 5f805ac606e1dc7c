"""A lock so two runs that scan (the daily `report`, `promote`) never overlap.

It is an `flock` on `aidepy.lock` in the state directory: the kernel drops it when the holder
exits, however it exits, so a crashed run never leaves a stale lock behind. The holder's pid is
written into the file so a waiting run can say who it is waiting for. The file is 0600: `flock`
needs only a descriptor, so a file others can open would let any user block every run. It is
opened as `aidepy.state` opens state files (no link followed, fstat-checked before it is
written), since the state directory may belong to the unprivileged account the report runs as.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from aidepy import state
from aidepy.errors import BusyError, StateIOError


def _holder(fd: int) -> str:
    """The pid recorded by the run that holds the lock, or '?' if it wrote none yet."""
    data = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return data if data.isdigit() else "?"


@contextmanager
def run_lock(
    state_dir: str | Path,
    *,
    wait: float = 0.0,
    poll: float = 0.5,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Hold the run lock in `state_dir` for the `with` block; yields the lock file's path.

    If another run holds it, retry every `poll` seconds for up to `wait` seconds (telling
    `on_wait` once, with a message naming the holder), then raise `BusyError`.
    """
    path = Path(state_dir) / state.LOCK
    try:
        with state.directory(state_dir, create=True) as dir_fd:
            fd = state.open_file(dir_fd, state.LOCK, os.O_RDWR | os.O_CREAT, where=state_dir)
    except OSError as exc:
        raise StateIOError(f"cannot take the lock {path}: {exc.strerror or exc}") from None
    try:
        if os.fstat(fd).st_mode & 0o077:  # made 0644 by an earlier aidepy
            os.fchmod(fd, state.FILE_MODE)
        deadline = time.monotonic() + wait
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                if time.monotonic() >= deadline:
                    raise BusyError(
                        f"another aidepy run (pid {holder}) holds {path}"
                        + (f"; gave up after waiting {wait:g} s" if wait > 0 else "")
                    ) from None
                if on_wait is not None and not told:
                    on_wait(f"waiting up to {wait:g} s for the aidepy run with pid {holder} ({path})")
                    told = True
                time.sleep(min(poll, max(deadline - time.monotonic(), 0.0)))
        os.ftruncate(fd, 0)
        with suppress(OSError):  # a full state_dir: the pid only makes messages nicer
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)
