"""Benchmark: the scanner's worker processes against worker threads doing the same tasks.

`aidepy.scan.walk` runs its tasks (list a directory, decide, collect, hash) in forked processes.
This runs `scan()` over the same tree twice per round, alternating: once as shipped, once with
the process pool replaced by a thread pool of the same size behind the same interface (the
tasks and answers are pickled just the same), and prints the medians of wall and CPU time.
It is what the choice of processes rests on; `hashlib` releases the GIL for large buffers, but
every open, fstat, read and rule decision needs it.

    .venv/bin/python bench/threads.py                                # /usr and the tiny-files tree
    .venv/bin/python bench/threads.py --tree /var/tmp/aidepy-bench-tiny --rounds 5
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from aidepy.config.evaluate import parse_text
from aidepy.scan import walk as scan_module
from aidepy.scan.forkpool import ForkPool


class ThreadPool:
    """ForkPool's interface over threads of this process."""

    def __init__(self, count: int, work: Callable[[bytes], tuple[bytes, bytes]]) -> None:
        self._executor = ThreadPoolExecutor(count)
        self._count = count
        self._work = work
        self._sent = 0
        self._running: dict[Future[tuple[bytes, bytes]], int] = {}

    def least_busy(self) -> int:
        return len(self._running) // self._count

    def send(self, task: bytes, to: int = 0) -> int:
        """`to` (a worker's pid) does not matter: every thread sees the directories held open."""
        number = self._sent
        self._sent += 1
        self._running[self._executor.submit(self._work, task)] = number
        return number

    def receive(self, block: bool) -> list[tuple[int, bytes, bytes]]:
        done, _ = wait(list(self._running), timeout=None if block else 0, return_when=FIRST_COMPLETED)
        return [(self._running.pop(f), *f.result()) for f in done]

    def close(self, kill: bool = False) -> None:
        self._executor.shutdown(cancel_futures=kill)


def timed_scan(tree: Path, attrs: str, workers: int) -> tuple[float, float]:
    """Wall and CPU seconds (this process and its reaped children) of one scan of `tree`."""
    ruleset = parse_text(f"/ {attrs}\n").ruleset
    before = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    start = time.perf_counter()
    for _ in scan_module.scan(ruleset, root_prefix=os.fsencode(tree), workers=workers,
                              on_warning=lambda w: None):
        pass
    wall = time.perf_counter() - start
    after = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(after, before, strict=True))
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, action="append",
                        help="tree to scan (repeatable; default /usr and /var/tmp/aidepy-bench-tiny)")
    parser.add_argument("--attrs", default="p+i+n+u+g+s+m+c+sha256")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trees = args.tree or [Path("/usr"), Path("/var/tmp/aidepy-bench-tiny")]
    pools: dict[str, object] = {"processes": ForkPool, "threads": ThreadPool}
    for tree in trees:
        if not tree.is_dir():
            print(f"{tree}: not a directory (bench/run.py generates the tiny-files tree)")
            continue
        timed_scan(tree, args.attrs, args.workers)  # warm the page cache
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in pools}
        for _ in range(args.rounds):
            for name, pool in pools.items():
                setattr(scan_module, "ForkPool", pool)  # noqa: B010 (the name scan() looks up)
                figures[name].append(timed_scan(tree, args.attrs, args.workers))
        setattr(scan_module, "ForkPool", ForkPool)  # noqa: B010
        print(f"## {tree}: {args.workers} workers, medians of {args.rounds} rounds "
              f"(load average {os.getloadavg()[0]:.1f})")
        for name, runs in figures.items():
            print(f"- {name}: wall {statistics.median(w for w, _ in runs):.2f} s, "
                  f"CPU {statistics.median(c for _, c in runs):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
