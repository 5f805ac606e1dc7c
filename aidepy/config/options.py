"""The options of aide.conf (and aidepy's own): how each value is checked, and which aidepy ignores.

`check_value(name, value, hostname)` returns the normalised value or raises `ValueError` with
the reason AIDE would give. `FIRST_WINS` lists options where AIDE keeps the first value and
ignores later ones; for all others the last value counts.
"""

from __future__ import annotations

import math
import os

from aidepy.report import FORMATS

BOOLEANS = {"true": True, "yes": True, "false": False, "no": False}

BOOL_OPTIONS = frozenset({
    "warn_dead_symlinks", "report_grouped", "grouped", "report_summarize_changes",
    "summarize_changes", "acl_no_symlink_follow", "database_add_metadata", "report_detailed_init",
    "report_base16", "report_quiet", "report_append", "gzip_dbout",
    "config_check_warn_unrestricted_rules", "explain_changes",
})
REPORT_LEVELS = ("minimal", "summary", "database_attributes", "list_entries", "changed_attributes",
                 "added_removed_attributes", "added_removed_entries")
HOST_MISMATCH = ("refuse", "warn")
LOCATION_OPTIONS = frozenset({
    "vault_device", "vault_label", "vault_mountpoint", "state_dir", "database_in", "database_out",
    "database_new", "public_key", "signing_key", "report_email", "sendmail", "report_mail_limit",
    "host_mismatch", "sendmail_timeout", "package_cache",
})
"""aidepy's settings that say where things are and where reports go, not what is checked: the
host's own config supplies them also when the rules come from the vault's copy, and they are
not part of the rules digest."""
LOG_LEVELS = ("error", "warning", "notice", "info", "rule", "compare", "config", "debug", "thread",
              "trace")
FIRST_WINS = frozenset({"database_in", "database_out", "database_new", "root_prefix", "log_level",
                        "num_workers"})

# AIDE 0.18's per-report options: each report_url line takes the values in force when it is read.
REPORT_OPTIONS = frozenset({
    "report_level", "report_format", "report_base16", "report_quiet", "report_detailed_init",
    "report_summarize_changes", "report_grouped", "report_append", "report_ignore_e2fsattrs",
    "report_ignore_added_attrs", "report_ignore_removed_attrs", "report_ignore_changed_attrs",
    "report_force_attrs",
})

# Options aidepy accepts (AIDE's meaning is understood) but does not act on, and why.
IGNORED = {
    "gzip_dbout": "aidepy's signed database format is its own",
    "database_add_metadata": "aidepy's database header always records version and time",
    "database_attrs": "aidepy verifies its database by signature and digest",
    "log_level": "aidepy reports warnings on stderr and in the report",
    "acl_no_symlink_follow": "aidepy never follows symlinks for ACLs",
    "warn_dead_symlinks": "aidepy does not warn about dead symlinks",
    "config_version": "informational only",
}

_URL_TYPES = ("file", "stdout", "stdin", "stderr", "fd", "ftp", "http", "https", "syslog")
_NOT_FOR = {
    "database_in": ("stdout", "stderr", "syslog"), "database_new": ("stdout", "stderr", "syslog"),
    "database_out": ("stdin", "stderr", "syslog"), "report_url": ("stdin",),
}


def check_url(name: str, value: str, hostname: str | None) -> str:
    """An AIDE URL (`file:/path`, `stdout`, `fd:3`, `syslog:LOCAL0`); file URLs come back as the path."""
    kind, _, rest = value.partition(":")
    if kind not in _URL_TYPES:
        raise ValueError(f"unknown URL-type: '{kind}'")
    if kind in ("ftp", "http", "https"):
        raise ValueError("http, https and ftp URLs are not supported")
    if kind in _NOT_FOR.get(name, ()):
        raise ValueError(f"'{name}': unsupported URL-type: '{kind}'")
    if kind != "file":
        return value
    if rest.startswith("///"):
        return rest[2:]
    if rest.startswith("//"):
        host, slash, path = rest[2:].partition("/")
        if not slash:
            raise ValueError(f"invalid file-URL '{value}': no path after hostname")
        if host != "localhost" and host != hostname:
            raise ValueError(f"invalid file-URL '{value}': cannot use hostname other than "
                             f"'localhost' or '{hostname}'")
        return "/" + path
    return rest


def num_workers(value: str) -> int:
    """`4` or `60%` (of the online processors, rounded up), as AIDE reads num_workers."""
    digits = value[:-1] if value.endswith("%") else value
    if not digits.isdigit():
        raise ValueError(f"invalid number of workers: '{value}'")
    number = int(digits)
    if value.endswith("%"):
        if number > 100:
            raise ValueError(f"invalid number of workers: '{value}'")
        return math.ceil((os.cpu_count() or 1) * number / 100)
    return number


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20}


def size(value: str) -> int:
    """`65536`, `512K` or `2M`: a size in bytes, at least 1 KiB (room for the cut note)."""
    digits, unit = (value[:-1], value[-1].upper()) if value[-1:].isalpha() else (value, "")
    if not digits.isdigit() or unit not in _SIZE_UNITS or int(digits) * _SIZE_UNITS[unit] < 1024:
        raise ValueError(f"invalid size: '{value}' (bytes, or with K or M, at least 1K)")
    return int(digits) * _SIZE_UNITS[unit]


def seconds(value: str) -> int:
    """`300`: a whole number of seconds, at least 1."""
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"invalid number of seconds: '{value}' (a whole number, at least 1)")
    return int(value)


def check_value(name: str, value: str, hostname: str | None) -> str:
    """The value to store for a string option, or `ValueError` saying why AIDE would refuse it."""
    if name in BOOL_OPTIONS:
        if value not in BOOLEANS:
            raise ValueError(f"unrecognized bool value: '{value}' (expecting 'true', 'yes', "
                             "'false' or 'no')")
    elif name in ("database_in", "database", "database_out", "database_new", "report_url"):
        check_url("database_in" if name == "database" else name, value, hostname)
    elif name == "report_level" and value not in REPORT_LEVELS:
        raise ValueError(f"invalid report level: '{value}'")
    elif name == "report_format" and value not in FORMATS:
        raise ValueError(f"invalid report format: '{value}' (expecting {', '.join(FORMATS)})")
    elif name == "log_level" and value not in LOG_LEVELS:
        raise ValueError(f"invalid log level: '{value}'")
    elif name == "num_workers":
        num_workers(value)
    elif name == "report_mail_limit":
        size(value)
    elif name == "sendmail_timeout":
        seconds(value)
    elif name == "host_mismatch" and value not in HOST_MISMATCH:
        raise ValueError(f"invalid host_mismatch: '{value}' (expecting 'refuse' or 'warn')")
    elif name == "root_prefix" and value.endswith("/"):
        return value[:-1]  # AIDE removes one trailing slash
    elif name == "verbose":
        raise ValueError("'verbose' option is no longer supported (removed in AIDE 0.17), use "
                         "'log_level' and 'report_level' options instead")
    return value
