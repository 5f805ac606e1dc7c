"""Arguments shared by several commands."""

from __future__ import annotations

import argparse

DEFAULT_CONFIG = "/etc/aidepy/aidepy.conf"


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """`-c/--config`, and AIDE's `-B/--before` and `-A/--after` extra config lines."""
    parser.add_argument(
        "-c", "--config", default=DEFAULT_CONFIG, metavar="FILE",
        help=f"rules and settings in aide.conf syntax (default: {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "-B", "--before", action="append", default=[], metavar="LINE",
        help="config line parsed before the config file (repeatable)",
    )
    parser.add_argument(
        "-A", "--after", action="append", default=[], metavar="LINE",
        help="config line parsed after the config file (repeatable)",
    )
