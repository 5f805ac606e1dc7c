"""The scanner's worker pool on its own: order, big messages both ways, failures, clean ends."""

from __future__ import annotations

import hashlib
import os

import pytest

from aidepy.forkpool import ForkPool, WorkerError


def digest_and_echo(task: bytes) -> tuple[bytes, bytes]:
    """A task's digest, and the task itself repeated (answers bigger than the task)."""
    if task == b"raise":
        raise RuntimeError("the task said so")
    if task == b"die":
        os._exit(7)
    return hashlib.sha256(task).digest(), task * 3


def run_all(pool: ForkPool, tasks: list[bytes]) -> dict[int, tuple[bytes, bytes]]:
    numbers = [pool.send(task) for task in tasks]
    assert numbers == list(range(numbers[0], numbers[0] + len(tasks)))
    answers: dict[int, tuple[bytes, bytes]] = {}
    while len(answers) < len(tasks):
        for number, first, second in pool.receive(block=True):
            answers[number] = (first, second)
    return answers


def test_every_task_gets_its_own_answer_whatever_the_sizes() -> None:
    # tasks and answers far larger than a pipe (64 KiB, or 1 MiB where the pool enlarges it)
    # go through while every other worker is busy: the caller never blocks on a full pipe
    tasks = [os.urandom(size) for size in (0, 1, 70_000, 3 << 20, 5, 2 << 20, 100, 1 << 20)]
    pool = ForkPool(3, digest_and_echo)
    try:
        answers = run_all(pool, tasks)
    finally:
        pool.close()
    assert [answers[i] for i in range(len(tasks))] == [digest_and_echo(t) for t in tasks]


def test_a_task_that_raises_ends_with_its_traceback() -> None:
    pool = ForkPool(2, digest_and_echo)
    try:
        with pytest.raises(WorkerError, match=r"(?s)failed:.*RuntimeError: the task said so"):
            run_all(pool, [b"a", b"raise", b"b"])
    finally:
        pool.close(kill=True)


def test_a_worker_that_dies_is_noticed() -> None:
    pool = ForkPool(2, digest_and_echo)
    pids = pool.pids
    try:
        with pytest.raises(WorkerError, match="ended unexpectedly"):
            run_all(pool, [b"a", b"die", b"b"])
    finally:
        pool.close(kill=True)
    for pid in pids:  # all reaped: nothing left to wait for
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_closing_lets_workers_finish_and_reaps_them() -> None:
    pool = ForkPool(2, digest_and_echo)
    pids = pool.pids
    run_all(pool, [b"x"] * 10)
    pool.close()
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
