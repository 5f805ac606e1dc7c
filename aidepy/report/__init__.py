"""Reports: what one run found, as data (`model`), and one renderer per format.

`FORMATS` maps each `report_format` name to its renderer (a `Report` in, the text out); the
commands' `--format`, the config's `report_format`, the daily mail and promote all choose
from it. Adding a format is one module here and one line in `FORMATS`.
"""

from __future__ import annotations

from collections.abc import Callable

from aidepy.report.json_report import render_json
from aidepy.report.model import Report
from aidepy.report.ndjson import render_ndjson
from aidepy.report.plain import render_text

FORMATS: dict[str, Callable[[Report], str]] = {
    "plain": render_text,  # AIDE 0.18's text layout (the default)
    "json": render_json,  # one JSON document
    "ndjson": render_ndjson,  # one JSON object per change, then a summary line (log pipelines)
}


def render(report: Report, fmt: str) -> str:
    """`report` in the format named `fmt` (a key of `FORMATS`)."""
    try:
        renderer = FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown report format '{fmt}' (expecting {', '.join(FORMATS)})") from None
    return renderer(report)
