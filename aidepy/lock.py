"""A lock so two runs that scan (the daily `report`, `promote`) never overlap.

It is an `flock` on a file under the state directory: the kernel drops it when the holder exits,
however it exits, so a crashed run never leaves a stale lock behind. The holder's pid is written
into the file so a waiting run can say who it is waiting for.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from aidepy.errors import BusyError

LOCK_NAME = "aidepy.lock"


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
    path = Path(state_dir) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
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
