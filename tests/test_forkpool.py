"""The scanner's worker pool on its own: order, big messages both ways, failures, clean ends."""

from __future__ import annotations

import hashlib
import os

import pytest

from aidepy.scan.forkpool import ForkPool, WorkerError


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


_kept: list[bytes] = []


def keep_and_tell(task: bytes) -> tuple[bytes, bytes]:
    """The worker's pid, and what it was given to keep so far (state held between tasks)."""
    if task:
        _kept.append(task)
    return str(os.getpid()).encode(), b",".join(_kept)


def test_a_task_sent_to_a_worker_finds_what_it_kept() -> None:
    # the scanner sends a directory's next slice to the worker holding that directory open
    pool = ForkPool(3, keep_and_tell)
    pids = pool.pids
    holder = pids[1]
    try:
        numbers = {pool.send(b"kept", holder)}
        numbers |= {pool.send(b"") for _ in range(6)}  # the least busy: spread over the others
        asked = {pool.send(b"", holder) for _ in range(4)}
        answers: dict[int, tuple[bytes, bytes]] = {}
        while len(answers) < len(numbers | asked):
            answers.update((n, (first, second)) for n, first, second in pool.receive(block=True))
    finally:
        pool.close()
    assert {answers[n] for n in asked} == {(str(holder).encode(), b"kept")}
    assert {int(answers[n][0]) for n in numbers} == set(pids)  # the others are shared out


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
