"""The run lock: a second run waits a bounded time or gives up clearly, never runs beside the first."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from aidepy.errors import BusyError, ExitCode
from aidepy.lock import run_lock

HOLD = """
import sys, time
from aidepy.lock import run_lock
with run_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()
"""


def hold_in_other_process(state_dir: Path) -> subprocess.Popen[str]:
    """A process that holds the lock until its stdin is closed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(state_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_second_run_is_refused_naming_the_holder(tmp_path: Path) -> None:
    holder = hold_in_other_process(tmp_path)
    try:
        with pytest.raises(BusyError, match=rf"another aidepy run \(pid {holder.pid}\) holds") as info, \
                run_lock(tmp_path):
            pytest.fail("the lock was taken twice")
        assert info.value.exit_code == ExitCode.BUSY
    finally:
        holder.communicate("")


def test_second_run_gives_up_after_a_bounded_wait(tmp_path: Path) -> None:
    holder = hold_in_other_process(tmp_path)
    told: list[str] = []
    try:
        with pytest.raises(BusyError, match=r"gave up after waiting 0\.3 s"), \
                run_lock(tmp_path, wait=0.3, poll=0.05, on_wait=told.append):
            pytest.fail("the lock was taken twice")
    finally:
        holder.communicate("")
    assert len(told) == 1 and f"pid {holder.pid}" in told[0]


def test_second_run_proceeds_once_the_first_is_done(tmp_path: Path) -> None:
    holder = hold_in_other_process(tmp_path)
    told: list[str] = []
    # Release the first run only once the second has started waiting for it.
    releaser = threading.Thread(target=lambda: holder.communicate(""))

    def on_wait(message: str) -> None:
        told.append(message)
        releaser.start()

    with run_lock(tmp_path, wait=60, poll=0.05, on_wait=on_wait) as path:
        assert path.read_text().strip() == str(os.getpid())
    releaser.join()
    assert told and holder.returncode == 0


def test_lock_is_released_when_the_holder_dies(tmp_path: Path) -> None:
    holder = hold_in_other_process(tmp_path)
    holder.kill()
    holder.wait()
    with run_lock(tmp_path) as path:
        assert path.parent == tmp_path
