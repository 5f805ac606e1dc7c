"""Hand a finished report to each `report_url` of the config (stdout, stderr, a file, syslog)."""

from __future__ import annotations

import sys
import syslog
from collections.abc import Callable

from aidepy.config import Config
from aidepy.report import Report, render_text
from aidepy.report_json import render_json


def emit(report: Report, config: Config, *, as_json: bool = False,
         warn: Callable[[str], None] = lambda message: None) -> None:
    """Deliver the report to each `report_url` (default stdout): `stdout`, `stderr`,
    `file:PATH` (appended with report_append=yes), `syslog:FACILITY`. With report_quiet,
    nothing is delivered when nothing differs. Paths keep their raw bytes."""
    if config.report_quiet and not report.summary.differences:
        return
    as_json = as_json or config.report_format == "json"
    data = (render_json(report) if as_json else render_text(report)).encode("utf-8", "surrogateescape")
    for url in config.report_urls or ["stdout"]:
        kind, _, value = url.partition(":")
        if url in ("stdout", "stderr"):
            stream = sys.stdout if url == "stdout" else sys.stderr
            stream.flush()
            stream.buffer.write(data)
            stream.buffer.flush()
        elif kind == "file":
            try:
                with open(value, "ab" if config.report_append else "wb") as f:
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
