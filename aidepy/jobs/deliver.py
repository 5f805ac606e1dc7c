"""Hand a finished report to each `report_url` of the config (stdout, stderr, a file, syslog)."""

from __future__ import annotations

import dataclasses
import sys
import syslog
from collections.abc import Callable

from aidepy.compare import refilter
from aidepy.config.evaluate import Config
from aidepy.jobs.baseline import target_options
from aidepy.report import render
from aidepy.report.model import Report


def emit(report: Report, config: Config, *, fmt: str | None = None,
         warn: Callable[[str], None] = lambda message: None) -> None:
    """Deliver the report to each `report_url` (default stdout) with the report options in force
    on its line, in its report_format or in `fmt` (the command's `--format`): `stdout`,
    `stderr`, `file:PATH` (appended with report_append=yes), `syslog:FACILITY`. With
    report_quiet, nothing is delivered when that report shows no difference. Paths keep their
    raw bytes."""
    for target in config.reports:
        options = target_options(target)
        changes, summary = report.changes, report.summary
        if (options.ignore_changed, options.ignore_e2fsattrs) != (report.options.ignore_changed,
                                                                  report.options.ignore_e2fsattrs):
            changes, summary = refilter(changes, summary, ignore_changed=options.ignore_changed,
                                        ignore_e2fsattrs=options.ignore_e2fsattrs)
        if target.report_quiet and not summary.differences:
            continue
        shown = dataclasses.replace(report, options=options, changes=changes, summary=summary)
        data = render(shown, fmt or target.report_format).encode("utf-8", "surrogateescape")
        _deliver(target.url, data, target.report_append, warn)


def _deliver(url: str, data: bytes, append: bool, warn: Callable[[str], None]) -> None:
    kind, _, value = url.partition(":")
    if url in ("stdout", "stderr"):
        stream = sys.stdout if url == "stdout" else sys.stderr
        stream.flush()
        stream.buffer.write(data)
        stream.buffer.flush()
    elif kind == "file":
        try:
            with open(value, "ab" if append else "wb") as f:
                f.write(data)
        except OSError as exc:
            warn(f"report_url {url}: {exc.strerror or exc}")
    elif kind == "syslog":
        facility = getattr(syslog, value or "LOG_LOCAL0", syslog.LOG_LOCAL0)
        syslog.openlog("aidepy", 0, facility)
        for line in data.decode("utf-8", "replace").splitlines():
            if line:
                syslog.syslog(syslog.LOG_NOTICE, line)
        syslog.closelog()
    else:
        warn(f"report_url {url}: unsupported (use stdout, stderr, file:PATH or syslog:FACILITY)")
