"""The evaluated configuration: rules, groups, options, and typed accessors with aidepy's defaults.

Built by `aidepy.config.evaluate` (import `Config` from there); nothing here reads files.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TypeVar

from aidepy.attributes import AttrSet, format_attrs
from aidepy.config import options as opt
from aidepy.selection import Rule, RuleSet

_V = TypeVar("_V")


def report_scope(options: Mapping[str, _V]) -> dict[str, _V]:
    """The report options among `options` (a copy: later lines change the config's own)."""
    return {k: v for k, v in options.items() if k in opt.REPORT_OPTIONS}


DEFAULT_MAIL_LIMIT = 512 << 10
"""`report_mail_limit` when it is not set: 512 KiB."""
DEFAULT_SENDMAIL_TIMEOUT = 300
"""`sendmail_timeout` when it is not set: 5 minutes."""


class ReportSettings:
    """The `report_*` options of one report, with aidepy's defaults (see `ReportTarget`)."""

    options: Mapping[str, str]
    attr_options: Mapping[str, AttrSet]

    def _bool(self, name: str, default: bool) -> bool:
        value = self.options.get(name)
        return default if value is None else opt.BOOLEANS[value]

    @property
    def report_level(self) -> str:
        return self.options.get("report_level", "changed_attributes")

    @property
    def report_format(self) -> str:
        return self.options.get("report_format", "plain")

    @property
    def report_ignore_changed_attrs(self) -> AttrSet:
        return self.attr_options.get("report_ignore_changed_attrs", frozenset())

    @property
    def report_force_attrs(self) -> AttrSet:
        return self.attr_options.get("report_force_attrs", frozenset())

    @property
    def report_ignore_added_attrs(self) -> AttrSet:
        return self.attr_options.get("report_ignore_added_attrs", frozenset())

    @property
    def report_ignore_removed_attrs(self) -> AttrSet:
        return self.attr_options.get("report_ignore_removed_attrs", frozenset())

    @property
    def report_ignore_e2fsattrs(self) -> str:
        value = self.options.get("report_ignore_e2fsattrs", "0")
        return "" if value == "0" else value

    @property
    def report_detailed_init(self) -> bool:
        return self._bool("report_detailed_init", False)

    @property
    def report_base16(self) -> bool:
        return self._bool("report_base16", False)

    @property
    def report_quiet(self) -> bool:
        return self._bool("report_quiet", False)

    @property
    def report_summarize_changes(self) -> bool:
        return self._bool("report_summarize_changes", True)

    @property
    def report_grouped(self) -> bool:
        return self._bool("report_grouped", True)

    @property
    def report_append(self) -> bool:
        return self._bool("report_append", False)


@dataclass(frozen=True)
class ReportTarget(ReportSettings):
    """One `report_url` and the report options in force when its line was read (AIDE 0.18: a
    report option applies to the report_url lines after it, not to earlier ones)."""

    url: str
    origin: str  # FILE:LINE of the report_url; "" for stdout when the config names none
    options: Mapping[str, str]
    attr_options: Mapping[str, AttrSet]


@dataclass
class Config(ReportSettings):
    """An evaluated configuration: rules in config order, groups, options and what was noticed."""

    rules: list[Rule] = field(default_factory=list)
    groups: dict[str, AttrSet] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    ignored_options: list[str] = field(default_factory=list)
    sources: list[Path] = field(default_factory=list)
    defined_groups: list[str] = field(default_factory=list)  # names the config itself defined
    attr_options: dict[str, AttrSet] = field(default_factory=dict)
    report_urls: list[str] = field(default_factory=list)
    report_targets: list[ReportTarget] = field(default_factory=list)  # one per report_url

    @property
    def reports(self) -> list[ReportTarget]:
        """Where reports go and with which options: each report_url, or stdout with the options
        in force at the end when the config names none (as AIDE)."""
        return self.report_targets or [ReportTarget("stdout", "", report_scope(self.options),
                                                    report_scope(self.attr_options))]

    @cached_property
    def ruleset(self) -> RuleSet:
        """The rules ready for selection (built once)."""
        return RuleSet(self.rules)

    @cached_property
    def digest(self) -> bytes:
        """sha256 of the evaluated rules and options (not those saying where things are): the
        "rules digest" of database headers."""
        doc = {
            "rules": [[r.kind.value, r.regex, sorted(r.file_types) if r.file_types else None,
                       format_attrs(r.attrs)] for r in self.rules],
            "options": sorted((k, v) for k, v in self.options.items() if k not in opt.LOCATION_OPTIONS),
            "attr_options": sorted((k, format_attrs(v)) for k, v in self.attr_options.items()),
            "report_urls": self.report_urls,
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode("utf-8", "surrogateescape")).digest()

    def _database(self, name: str) -> str | None:
        value = self.options.get(name)
        return None if value is None else opt.check_url(name, value, None if "//" not in value else
                                                        os.uname().nodename)

    @property
    def database_in(self) -> str | None:
        return self._database("database_in")

    @property
    def database_out(self) -> str | None:
        return self._database("database_out")

    @property
    def database_new(self) -> str | None:
        return self._database("database_new")

    @property
    def root_prefix(self) -> bytes:
        return os.fsencode(self.options.get("root_prefix", ""))

    @property
    def num_workers(self) -> int | None:
        value = self.options.get("num_workers")
        return None if value is None else opt.num_workers(value)

    @property
    def vault_device(self) -> str | None:
        return self.options.get("vault_device")

    @property
    def vault_label(self) -> str:
        return self.options.get("vault_label", "AIDEPY")

    @property
    def vault_mountpoint(self) -> str:
        return self.options.get("vault_mountpoint", "/var/lib/aidepy/vault")

    @property
    def signing_key(self) -> str:
        return self.options.get("signing_key", "/etc/aidepy/signing.key")

    @property
    def public_key(self) -> str | None:
        return self.options.get("public_key")

    @property
    def report_email(self) -> str:
        return self.options.get("report_email", "root")

    @property
    def report_mail_limit(self) -> int:
        """Bytes of the daily report's mail body (as sent) a mail carries; the rest is cut with a note."""
        value = self.options.get("report_mail_limit")
        return DEFAULT_MAIL_LIMIT if value is None else opt.size(value)

    @property
    def sendmail(self) -> str:
        return self.options.get("sendmail", "/usr/sbin/sendmail")

    @property
    def sendmail_timeout(self) -> int:
        """Seconds `sendmail` may take to accept the report mail before it is given up."""
        value = self.options.get("sendmail_timeout")
        return DEFAULT_SENDMAIL_TIMEOUT if value is None else opt.seconds(value)

    @property
    def host_mismatch(self) -> str:
        """What to do with a baseline recorded on another host: `refuse` (default) or `warn`."""
        return self.options.get("host_mismatch", "refuse")

    @property
    def explain_changes(self) -> bool:
        """Whether reports explain changes by package updates (`aidepy.explain`); default yes."""
        return self._bool("explain_changes", True)

    @property
    def package_cache(self) -> str | None:
        """A directory of `.deb` files for explanations (default: apt's cache under root_prefix)."""
        return self.options.get("package_cache")

    @property
    def state_dir(self) -> str:
        return self.options.get("state_dir", "/var/lib/aidepy")
