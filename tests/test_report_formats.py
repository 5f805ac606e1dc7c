"""Report formats as the admin meets them: every entry of the `FORMATS` registry renders a real
check of a real tree, `--format`/`--json`/`report_format` choose among them, NDJSON says line
by line what the JSON report says, and the daily mail and promote follow report_format."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import AIDEPY, VaultSite, backdate, daily_report, promote_in_process, sent_mail

from aidepy.report import FORMATS, render
from aidepy.report.escape import json_path

ODD = b"odd\nname\xff"  # a newline and a byte that is not UTF-8: escaped in text, lossless in JSON


@dataclass
class Checked:
    """A tree with a baseline and three differences since: added, removed, changed."""

    tree: Path
    conf: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*AIDEPY, *args, "-c", str(self.conf)], capture_output=True, timeout=120)

    def check(self, *args: str) -> bytes:
        run = self.run("check", *args)
        assert run.returncode == 1 | 2 | 4, run.stderr
        return run.stdout

    @property
    def differences(self) -> list[bytes]:
        return [os.fsencode(self.tree / name) for name in ("etc/new", "etc/old", "bin/ls")]


@pytest.fixture
def checked(tmp_path: Path) -> Checked:
    tree, work = tmp_path / "tree", tmp_path / "work"
    (tree / "etc").mkdir(parents=True)
    (tree / "bin").mkdir()
    work.mkdir()
    (tree / "etc" / "old").write_text("to be removed\n")
    (tree / "bin" / "ls").write_bytes(b"\x7fELF ls")
    conf = work / "aidepy.conf"
    conf.write_text(f"state_dir={work}/state\ndatabase_in=file:{work}/db\ndatabase_out=file:{work}/db.new\n"
                    f"{tree} f p+u+g+s+m+c+i+n+sha256\n{tree} d p+u+g\n")
    site = Checked(tree, conf)
    assert site.run("init").returncode == 0
    (work / "db.new").replace(work / "db")
    (tree / "etc" / "old").unlink()
    (tree / "etc" / "new").write_text("added\n")
    (tree / "bin" / "ls").write_bytes(b"\x7fELF ls, trojaned")
    (tree / "etc" / os.fsdecode(ODD)).write_text("added too\n")
    return site


def changes_of(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {kind: document[kind] for kind in ("added", "removed", "changed")}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reports_a_real_check(checked: Checked, fmt: str) -> None:
    out = checked.check("--format", fmt)
    for path in checked.differences:
        assert path in out, (fmt, path)
    assert ODD not in out  # a newline in a name never reaches a line-oriented reader raw


def test_json_and_format_json_agree(checked: Checked) -> None:
    by_alias = json.loads(checked.check("--json"))
    by_format = json.loads(checked.check("--format", "json"))
    for doc in (by_alias, by_format):
        del doc["start_time"], doc["end_time"]
    assert by_alias == by_format
    assert changes_of(by_alias)["changed"][0]["path"] == os.fsdecode(checked.tree / "bin" / "ls")


def test_format_and_json_together_are_refused(checked: Checked) -> None:
    run = checked.run("check", "--json", "--format", "plain")
    assert run.returncode == 15
    assert b"not allowed with argument" in run.stderr


def test_an_unknown_format_on_the_command_line_is_refused_naming_the_choices(checked: Checked) -> None:
    run = checked.run("check", "--format", "yaml")
    assert run.returncode == 15
    assert b"invalid choice: 'yaml'" in run.stderr and b"ndjson" in run.stderr


def test_ndjson_lines_each_parse_and_say_what_the_json_report_says(checked: Checked) -> None:
    lines = checked.check("--format", "ndjson").decode("utf-8", "surrogateescape").splitlines()
    parsed = [json.loads(line) for line in lines]
    doc = json.loads(checked.check("--format", "json"))
    *change_lines, summary = parsed
    assert summary["kind"] == "summary"
    assert summary["summary"] == doc["summary"]
    assert [doc["summary"][k] for k in ("added", "removed", "changed", "exit_code")] == [2, 1, 1, 7]
    assert summary["database"] == doc["database"] and summary["outline"] == doc["outline"]
    assert [(line["kind"], line["path"]) for line in change_lines] == [
        (kind, item["path"]) for kind, items in changes_of(doc).items() for item in items]
    for line in change_lines:
        [item] = [i for i in doc[line["kind"]] if i["path"] == line["path"]]
        assert {k: line[k] for k in item} == item  # every key of the JSON entry, the same
        assert line["attributes"], line  # added and removed lines carry their values too
    [odd] = [line for line in change_lines if line["path"].endswith("name\udcff")]
    assert odd["path"].encode("utf-8", "surrogateescape") == os.fsencode(checked.tree / "etc") + b"/" + ODD
    [changed] = [line for line in change_lines if line["kind"] == "changed"]
    sha = changed["attributes"]["sha256"]
    assert sha["old"] != sha["new"] and {"s", "sha256"} <= set(changed["attributes"])
    [removed] = [line for line in change_lines if line["kind"] == "removed"]
    assert set(removed["attributes"]["sha256"]) == {"old"}


def test_report_format_in_the_config_chooses_and_format_overrides_it(checked: Checked) -> None:
    checked.conf.write_text(checked.conf.read_text() + "report_format=ndjson\n")
    kinds = [json.loads(line)["kind"] for line in checked.check().splitlines()]
    assert kinds == ["added", "added", "removed", "changed", "summary"]
    assert b"AIDE found differences between database and filesystem!!" in checked.check("--format", "plain")


def test_each_report_url_gets_its_own_format(checked: Checked, tmp_path: Path) -> None:
    out = tmp_path / "report.ndjson"
    checked.conf.write_text(checked.conf.read_text() + f"report_url=stdout\nreport_format=ndjson\n"
                                                       f"report_url=file:{out}\n")
    assert b"AIDE found differences between database and filesystem!!" in checked.check()
    assert [json.loads(line)["kind"] for line in out.read_text().splitlines()][-1] == "summary"


def test_unknown_report_format_in_a_config_is_refused_with_file_and_line(checked: Checked) -> None:
    checked.conf.write_text(checked.conf.read_text() + "report_format=yaml\n")
    line = len(checked.conf.read_text().splitlines())
    for command in ("check", "config-check"):
        run = checked.run(command)
        assert run.returncode == 17, run.stderr
        assert (f"{checked.conf}:{line}: invalid report format: 'yaml' (expecting "
                f"{', '.join(FORMATS)})").encode() in run.stderr


def test_render_refuses_a_format_the_registry_lacks() -> None:
    with pytest.raises(ValueError, match="unknown report format 'yaml'"):
        render(None, "yaml")  # type: ignore[arg-type]


def test_the_daily_mail_and_promote_follow_report_format_json(vault_site: VaultSite) -> None:
    site = vault_site
    site.write_config(extra="report_format=json\n")
    backdate(site.tree)
    generation, console = promote_in_process(site)
    assert generation == 1
    assert '"mode": "compare"' in console  # promote showed its differences in the rules' format
    (site.tree / "motd").write_text("a different welcome\n")
    run = daily_report(site)
    assert run.returncode == 4, run.stderr
    mailed = json.loads(sent_mail(site).get_content())
    assert mailed == json.loads(run.stdout)
    motd, backdoor = (json_path(os.fsencode(site.tree / name)) for name in ("motd", "backdoor"))
    assert [(c["path"], c["new"]) for c in mailed["changed"]] == [(motd, True)]
    assert mailed["database"]["signature"] == "verified"
    # the next report marks what the previous one did not list, and still lists everything
    (site.tree / "backdoor").write_text("#!/bin/sh\n")
    daily_report(site)
    mailed = json.loads(sent_mail(site).get_content())
    marked = {c["path"]: c["new"] for kind in ("added", "removed", "changed") for c in mailed[kind]}
    assert marked[backdoor] and not marked[motd]  # (the directory that gained backdoor is new too)
    assert (mailed["summary"]["new"], mailed["summary"]["pending"]) == (sum(marked.values()), len(marked))
