"""Benchmark: one huge directory, aidepy's peak RSS per process against Debian's `aide`.

For each `--entries` size it builds (once, kept in `--dir`) a tree holding one directory of
that many small files, writes equivalent configs (as `bench/run.py` does) and runs `aidepy
init` on it twice (the first run only warms the caches), then `aide --init` on the same tree
with a time limit (AIDE's insertion into one directory looks quadratic: 300,000 entries took
it more than 14 minutes of CPU). Reported per run: wall and CPU time, the peak RSS of the
largest process (`ru_maxrss` from wait4, which covers the caller and the workers it reaped)
and of each process alone (`VmHWM` from /proc, polled every 20 ms while it runs: the caller
and each of its children: the workers).

    .venv/bin/python bench/big_dir.py                               # 300,000 and 1,000,000
    .venv/bin/python bench/big_dir.py --entries 10000,300000 --aide-timeout 600
    .venv/bin/python bench/big_dir.py --no-aide --json big.json

Goal (issue 13): <= 80 MB in the largest process for 300,000 entries.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from run import AIDEPY, HERE, write_configs


@dataclass
class Measured:
    """One run of a command, watched."""

    label: str
    wall: float
    cpu: float
    max_rss_mb: float  # the largest process, from wait4
    rc: int | None  # None: stopped at the time limit
    peaks_mb: dict[str, float] = field(default_factory=dict)  # VmHWM by process, as last polled


def make_big_dir(root: Path, entries: int) -> Path:
    """`root`/big with `entries` files of a few bytes (kept when already built the same way)."""
    big = root / "big"
    marker = root / ".aidepy-bench"
    if marker.exists() and marker.read_text() == f"{entries}\n":
        return big
    subprocess.run(["rm", "-rf", str(root)], check=True)
    big.mkdir(parents=True)
    fd = os.open(big, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in range(entries):
            f = os.open(f"f{i:07}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=fd)
            os.write(f, b"%d\n" % i)
            os.close(f)
    finally:
        os.close(fd)
    marker.write_text(f"{entries}\n")
    return big


def _hwm_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return found


def watch(label: str, cmd: list[str], env: dict[str, str], limit: float | None) -> Measured:
    """Run `cmd` (output discarded), polling the peak RSS of it and of its children."""
    peaks: dict[str, float] = {}
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        stopped = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            for name, child in [("caller", proc.pid)] + [(f"child {c}", c) for c in _children(proc.pid)]:
                hwm = _hwm_mb(child)
                if hwm is not None:
                    peaks[name] = max(peaks.get(name, 0.0), hwm)
            if limit is not None and time.perf_counter() - start > limit and not stopped:
                os.kill(proc.pid, signal.SIGKILL)
                stopped = True
            time.sleep(0.02)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if not stopped and proc.returncode not in (0, 1, 2, 3, 4, 5, 6, 7):
            err.seek(0)
            text = err.read().decode(errors="replace")
            sys.stderr.write(f"{' '.join(cmd)} exited {proc.returncode}:\n{text}\n")
    return Measured(label, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
                    None if stopped else proc.returncode, peaks)


def bench_size(entries: int, args: argparse.Namespace) -> list[Measured]:
    tree = args.dir / f"{entries}-entries"  # a rule is a prefix: no tree's name begins another's
    started = time.perf_counter()
    make_big_dir(tree, entries)
    print(f"# {entries:,} entries in {tree}/big (built or found in {time.perf_counter() - started:.1f} s)",
          flush=True)
    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    runs = []
    with tempfile.TemporaryDirectory(prefix="aidepy-bench-") as tmp:
        aide_conf, aidepy_conf = write_configs(Path(tmp), tree, args.attrs, None)
        init = [*AIDEPY, "init", "-c", str(aidepy_conf)]
        init += ["-A", f"num_workers={args.workers}"] if args.workers else []
        watch("warming", init, env, None)  # a tree just written costs its first reader far more
        runs.append(watch("aidepy init", init, env, None))
        if not args.no_aide:
            runs.append(watch("aide -W 2 init", ["aide", "-i", "-c", str(aide_conf), "-W", "2"], env,
                              args.aide_timeout))
    return runs


def report(entries: int, runs: list[Measured], limit: float) -> str:
    lines = [f"## one directory of {entries:,} entries (load average {os.getloadavg()[0]:.1f})", "",
             "| run | wall s | CPU s | largest process MB | each process MB (VmHWM) |",
             "|---|---:|---:|---:|---|"]
    for r in runs:
        each = ", ".join(f"{name} {mb:.1f}" for name, mb in sorted(r.peaks_mb.items()))
        wall = f"> {limit:.0f} (stopped)" if r.rc is None else f"{r.wall:.2f}"
        lines.append(f"| {r.label} | {wall} | {r.cpu:.2f} | {r.max_rss_mb:.1f} | {each} |")
    ours, aide = runs[0], runs[1:]
    if aide and aide[0].rc is not None:
        lines.append(f"- aidepy init: {ours.wall / aide[0].wall:.3f}x AIDE's wall time")
    elif aide:
        lines.append(f"- aidepy init: < {ours.wall / limit:.3f}x AIDE's wall time "
                     f"(AIDE stopped at {limit:.0f} s)")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=lambda s: [int(x) for x in s.split(",")],
                        default=[300_000, 1_000_000], help="sizes of the directory (comma-separated)")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp/aidepy-bench-bigdir"),
                        help="where the trees are built (kept for the next run)")
    parser.add_argument("--attrs", default="p+i+n+u+g+s+m+c+sha256")
    parser.add_argument("--workers", type=int, default=0, help="aidepy num_workers; 0 = its default")
    parser.add_argument("--no-aide", action="store_true")
    parser.add_argument("--aide-timeout", type=float, default=300.0, help="seconds before AIDE is stopped")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args()
    results = []
    for entries in args.entries:
        runs = bench_size(entries, args)
        print(report(entries, runs, args.aide_timeout), flush=True)
        results.append({"entries": entries, "runs": [asdict(r) for r in runs]})
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
