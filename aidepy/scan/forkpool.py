"""Worker processes forked from the caller and fed over pipes: the scanner's parallelism.

Each worker runs one function on the tasks it is sent, one at a time and in the order sent,
and answers each with two byte strings. A task goes to the least busy worker, or to a given
one (which may hold state from an earlier task: the scanner's open directories). The caller
never blocks on a worker's pipe: tasks are written without blocking (kept in an outbox while
the pipe is full) and answers are read as they arrive, through poll(2). A worker whose
function raises answers with the traceback; a worker that dies is noticed as the end of its
pipe. Either makes `receive` raise WorkerError.

Workers ignore SIGINT (Ctrl-C is the caller's to handle) and are killed when the caller dies
(PR_SET_PDEATHSIG), so no worker outlives a killed scan. Forking (not spawning) keeps start-up
at a few milliseconds and gives workers everything the caller has loaded (rules, regexes).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import select
import signal
import struct
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

Work = Callable[[bytes], tuple[bytes, bytes]]

_TASK = struct.Struct("<I")
_ANSWER = struct.Struct("<II")
_FAILED = 0xFFFFFFFF
_PIPE_SIZE = 1 << 20
"""Answer pipes hold this much, so workers keep going while the caller is busy elsewhere."""
_READ_SIZE = 1 << 20
_PR_SET_PDEATHSIG = 1


class WorkerError(RuntimeError):
    """A worker failed or died; the message says how."""


@dataclass(eq=False)
class _Worker:
    pid: int
    tasks: int  # write end, non-blocking
    answers: int  # read end, non-blocking
    outbox: bytearray = field(default_factory=bytearray)
    inbox: bytearray = field(default_factory=bytearray)
    in_flight: deque[int] = field(default_factory=deque)
    watched: bool = False  # its task pipe is polled for room (the outbox is not empty)


class ForkPool:
    """`count` forked workers running `work`; tasks are numbered in the order they are sent."""

    def __init__(self, count: int, work: Work) -> None:
        self._workers: list[_Worker] = []
        self._poll = select.poll()
        self._by_fd: dict[int, _Worker] = {}
        self._sent = 0
        try:
            for _ in range(count):
                self._workers.append(self._start(work))
        except BaseException:
            self.close(kill=True)
            raise
        for worker in self._workers:
            self._by_fd[worker.answers] = worker
            self._by_fd[worker.tasks] = worker
            self._poll.register(worker.answers, select.POLLIN)

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self._workers]

    def least_busy(self) -> int:
        """Tasks in flight at the worker with the fewest."""
        return min(len(w.in_flight) for w in self._workers)

    def _start(self, work: Work) -> _Worker:
        task_r, task_w = os.pipe2(os.O_CLOEXEC)
        answer_r, answer_w = os.pipe2(os.O_CLOEXEC)
        parent = os.getpid()
        try:
            pid = os.fork()
        except OSError:
            for fd in (task_r, task_w, answer_r, answer_w):
                os.close(fd)
            raise
        if pid == 0:  # the worker: never returns into the caller's code
            code = 1
            try:
                os.close(task_w)
                os.close(answer_r)
                for sibling in self._workers:
                    os.close(sibling.tasks)
                    os.close(sibling.answers)
                _serve(task_r, answer_w, work, parent)
                code = 0
            finally:
                os._exit(code)
        os.close(task_r)
        os.close(answer_w)
        os.set_blocking(task_w, False)
        os.set_blocking(answer_r, False)
        with contextlib.suppress(OSError):  # the default 64 KiB works too, with more waiting
            fcntl.fcntl(answer_r, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        return _Worker(pid, task_w, answer_r)

    def send(self, task: bytes, to: int = 0) -> int:
        """Queue `task` for the worker whose pid is `to` (0: the least busy); returns its number."""
        worker = (next(w for w in self._workers if w.pid == to) if to
                  else min(self._workers, key=lambda w: len(w.in_flight)))
        number = self._sent
        self._sent += 1
        worker.in_flight.append(number)
        worker.outbox += _TASK.pack(len(task))
        worker.outbox += task
        self._flush(worker)
        return number

    def receive(self, block: bool) -> list[tuple[int, bytes, bytes]]:
        """Answers that have arrived, as (task number, first, second); with `block`, waits for
        at least one (there must be tasks in flight)."""
        answers: list[tuple[int, bytes, bytes]] = []
        while True:
            for fd, _ in self._poll.poll(None if block and not answers else 0):
                worker = self._by_fd[fd]
                if fd == worker.tasks:
                    self._flush(worker)
                else:
                    self._read(worker, answers)
            if answers or not block:
                return answers

    def _flush(self, worker: _Worker) -> None:
        try:
            while worker.outbox:
                written = os.write(worker.tasks, worker.outbox)
                del worker.outbox[:written]
        except BlockingIOError:
            pass
        except BrokenPipeError:
            raise WorkerError(f"scan worker {worker.pid} ended unexpectedly") from None
        if bool(worker.outbox) != worker.watched:
            worker.watched = bool(worker.outbox)
            if worker.watched:
                self._poll.register(worker.tasks, select.POLLOUT)
            else:
                self._poll.unregister(worker.tasks)

    def _read(self, worker: _Worker, answers: list[tuple[int, bytes, bytes]]) -> None:
        data = os.read(worker.answers, _READ_SIZE)
        if not data:
            raise WorkerError(f"scan worker {worker.pid} ended unexpectedly")
        inbox = worker.inbox
        inbox += data
        start = 0
        while len(inbox) - start >= _ANSWER.size:
            first, second = _ANSWER.unpack_from(inbox, start)
            if first == _FAILED:
                end = start + _ANSWER.size + second
                if len(inbox) < end:
                    break
                text = inbox[start + _ANSWER.size:end].decode("utf-8", "replace")
                raise WorkerError(f"scan worker {worker.pid} failed:\n{text}")
            middle = start + _ANSWER.size + first
            end = middle + second
            if len(inbox) < end:
                break
            answers.append((worker.in_flight.popleft(), bytes(inbox[start + _ANSWER.size:middle]),
                            bytes(inbox[middle:end])))
            start = end
        del inbox[:start]

    def close(self, kill: bool = False) -> None:
        """End the workers: let them finish (they see the end of their task pipe) or kill them."""
        for worker in self._workers:
            if kill:
                os.kill(worker.pid, signal.SIGKILL)
            for fd in (worker.tasks, worker.answers):
                os.close(fd)
        for worker in self._workers:
            os.waitpid(worker.pid, 0)
        self._workers = []


def _serve(tasks: int, answers: int, work: Work, parent: int) -> None:
    """A worker's life: answer tasks until the caller closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the caller died before prctl took effect
        return
    while True:
        head = _read_exactly(tasks, _TASK.size)
        if head is None:
            return
        task = _read_exactly(tasks, _TASK.unpack(head)[0])
        if task is None:
            return
        try:
            first, second = work(task)
            frame = b"".join((_ANSWER.pack(len(first), len(second)), first, second))
        except Exception:
            text = traceback.format_exc().encode("utf-8", "replace")
            frame = _ANSWER.pack(_FAILED, len(text)) + text
        view = memoryview(frame)
        while view:
            view = view[os.write(answers, view):]


def _read_exactly(fd: int, size: int) -> bytes | None:
    """`size` bytes from `fd`; None at the end of the pipe."""
    parts = []
    while size:
        data = os.read(fd, size)
        if not data:
            return None
        parts.append(data)
        size -= len(data)
    return b"".join(parts)
