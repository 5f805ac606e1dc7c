"""Benchmark: reading Debian's full aide.conf with aidepy versus `aide -D`, in one run.

    .venv/bin/python bench/config_parse.py [CONFIG] [--rounds N]

Both sides do the same work: parse the config and its ~210 snippets, evaluate macros and
conditions, run the @@x_include snippets, and check every rule regex. Rounds alternate between
the two so that both see the same machine load; the medians are compared. Two scenarios:

- live: the config as installed. Debian's 16 executable snippets are shell scripts that take
  most of the time (31_aide_apt alone runs for 0.3 s or more); aidepy runs them in parallel,
  aide one after the other, so the ratio is bounded by the slowest script.
- parse: the same config with every executable snippet replaced by the output it printed
  (captured once before timing), so that only parsing and evaluation are compared.

For each: `aidepy config-check` as a process versus `aide -D` (what an admin waits for), and
`aidepy.config.evaluate.load()` in a running Python (what `check`, `init`, ... spend on the config).
The goal is a ratio of at most 0.5. This is a benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from aidepy.config import evaluate as config

REPO = Path(__file__).resolve().parent.parent


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def run(args: list[str]) -> None:
    subprocess.run(args, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def freeze(conf: Path, into: Path) -> Path:
    """A copy of `conf` whose @@x_include directories hold captured output instead of scripts."""
    text = conf.read_text(encoding="latin-1")
    environ = dict(os.environ)
    for name, value in re.findall(r"^@@x_include_setenv\s+(\S+)\s+(\S+)", text, re.M):
        environ.setdefault(name, value)
    for n, directory in enumerate(re.findall(r"^@@x_include\s+(\S+)", text, re.M)):
        source = Path(directory)
        if not source.is_dir():
            continue
        frozen = into / f"snippets{n}"
        frozen.mkdir()
        for snippet in sorted(source.iterdir()):
            if not snippet.is_file():
                continue
            if os.access(snippet, os.X_OK):
                out = subprocess.run([snippet], env=environ, capture_output=True, check=True).stdout
                (frozen / snippet.name).write_bytes(out)
            else:
                shutil.copyfile(snippet, frozen / snippet.name)
        text = text.replace(f" {directory} ", f" {frozen} ")
    frozen_conf = into / conf.name
    frozen_conf.write_text(text, encoding="latin-1")
    return frozen_conf


def measure(conf: str, rounds: int, label: str) -> None:
    aidepy_cmd = [sys.executable, "-m", "aidepy", "config-check", "-c", conf]
    aide_cmd = ["aide", "-D", "-c", conf]
    run(aide_cmd)  # warm the page cache for both sides
    rules = len(config.load(conf).rules)
    aide_t: list[float] = []
    cli_t: list[float] = []
    load_t: list[float] = []
    for _ in range(rounds):
        aide_t.append(timed(lambda: run(aide_cmd)))
        cli_t.append(timed(lambda: run(aidepy_cmd)))
        load_t.append(timed(lambda: config.load(conf)))
    aide_m, cli_m, load_m = (statistics.median(t) for t in (aide_t, cli_t, load_t))
    print(f"{label}: {conf} ({rules} rules), {rounds} alternating rounds, medians:")
    print(f"  aide -D                      {aide_m * 1000:8.1f} ms")
    print(f"  aidepy config-check process  {cli_m * 1000:8.1f} ms   ratio {cli_m / aide_m:.2f}")
    print(f"  aidepy config.load() in-proc {load_m * 1000:8.1f} ms   ratio {load_m / aide_m:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default="/etc/aide/aide.conf")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    measure(args.config, args.rounds, "live")
    with tempfile.TemporaryDirectory() as tmp:
        measure(str(freeze(Path(args.config), Path(tmp))), args.rounds, "parse")
    print(f"load average: {os.getloadavg()[0]:.1f}; goal: ratio <= 0.50")
    return 0


if __name__ == "__main__":
    sys.exit(main())
