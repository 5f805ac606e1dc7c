"""One trusted baseline for every command: check, update, compare, the daily report and promote
find the same baseline, verify it the same way (pinned key, anchor, host, rollback record per
baseline identity) and compare under the same options."""

from __future__ import annotations

import io
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    LoopDevice,
    VaultSite,
    aidepy,
    backdate,
    daily_report,
    promote_in_process,
    requires_root,
    sent_mail,
)

from aidepy import keys
from aidepy.config import evaluate as config
from aidepy.db.file import write_database
from aidepy.errors import AidepyError
from aidepy.jobs.console import Console, Declined
from aidepy.jobs.promote import Promotion
from aidepy.rollback import parse_record
from aidepy.scan.walk import scan
from aidepy.state import LEGACY_ROLLBACK_RECORD, ROLLBACK_RECORD
from aidepy.vault.vault import Vault, format_vault

HOST = socket.gethostname()


def check(site: VaultSite, *extra: str) -> subprocess.CompletedProcess[str]:
    return aidepy("check", "-c", str(site.config_path), *extra)


@pytest.fixture
def promoted(vault_site: VaultSite) -> VaultSite:
    """A protected vault holding generation 1 of the site's tree."""
    backdate(vault_site.tree)
    assert promote_in_process(vault_site)[0] == 1
    return vault_site


# --- where the baseline is -------------------------------------------------------------------


@requires_root
def test_check_update_and_vault_rules_use_an_anchored_baseline(anchored_site: VaultSite) -> None:
    site = anchored_site
    # as rules/aidepy.conf says it: database_in on the vault, which holds only the anchor
    site.write_config(extra=f"database_in=file:{site.mountpoint}/aidepy.db\n"
                            f"database_out=file:{site.root}/out.db\n")
    (site.tree / "file007").write_text("changed\n")
    for run in (check(site), check(site, "--vault-rules")):
        assert run.returncode == 4, run.stdout + run.stderr
        assert listed_paths(run.stdout) == [f"{site.tree}/file007"]
        assert "signature verified with the vault's key" in run.stdout
        assert f"{site.state_dir}/aidepy.1.db" in run.stdout.split("\n")[0]
    update = aidepy("update", "-c", str(site.config_path))
    assert update.returncode == 4, update.stdout + update.stderr
    assert (site.root / "out.db").is_file()


@requires_root
def test_a_config_naming_only_the_vault_checks_against_the_vaults_baseline(promoted: VaultSite) -> None:
    site = promoted  # its config has vault_device and no database_in
    run = check(site)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"Baseline {site.mountpoint}/aidepy.db: signature verified with the vault's key" in run.stdout
    (site.tree / "motd").write_text("changed\n")
    assert check(site).returncode == 4
    site.write_config(extra=f"database_out=file:{site.root}/out.db\ndatabase_new=file:{site.root}/out.db\n")
    update = aidepy("update", "-c", str(site.config_path))
    assert update.returncode == 4, update.stderr
    compare = aidepy("compare", "-c", str(site.config_path))
    assert compare.returncode == 4, compare.stderr


def test_a_config_with_neither_database_in_nor_vault_is_refused_with_the_reason(tmp_path: Path) -> None:
    conf = tmp_path / "aidepy.conf"
    conf.write_text(f"state_dir={tmp_path}/state\n{tmp_path} p\n")
    run = aidepy("check", "-c", str(conf))
    assert run.returncode == 15
    assert "no baseline: set database_in" in run.stderr


# --- a configured public_key is a pin ---------------------------------------------------------


def forged_vault(site: VaultSite, loop: LoopDevice) -> Path:
    """A second medium formatted with the attacker's key, holding a baseline it signed of the
    site's tree as it is now; returns the config that points at it (with the site's pin)."""
    other = site.root / "attacker.key"
    keys.generate_keypair(other, None)
    format_vault(loop.device, label="FORGED", public_key=keys.public_key_beside(other), warn=lambda m: None)
    forged = site.root / "forged.conf"
    forged.write_text(site.config_path.read_text().replace(str(site.loop.device), loop.device)
                      .replace(f"signing_key={site.key}", f"signing_key={other}"))
    Promotion(config.load(forged), Console(io.StringIO(), io.StringIO()), assume_yes=True).run()
    loop.set_read_only(True)
    pinned = site.root / "pinned.conf"
    pinned.write_text(forged.read_text().replace(f"signing_key={other}", f"signing_key={site.key}")
                      + f"public_key={keys.public_key_beside(site.key)}\n")
    return pinned


@requires_root
def test_a_swapped_medium_with_its_own_key_is_refused_by_report_check_and_promote(
        promoted: VaultSite, make_loop_device: object) -> None:
    site = promoted
    (site.tree / "motd").write_text("trojaned\n")  # the forged baseline hides this
    pinned = forged_vault(site, make_loop_device())  # type: ignore[operator]
    site.config_path.write_text(pinned.read_text())
    pinned_fp = keys.fingerprint(keys.load_public_key(keys.public_key_beside(site.key)))
    run = daily_report(site)
    assert run.returncode == 20, run.stdout + run.stderr
    mail = sent_mail(site)
    assert "ALERT" in mail["Subject"] and "no changes" not in mail["Subject"]
    assert f"public_key pins key {pinned_fp}" in mail.get_content()
    run = check(site)
    assert (run.returncode, run.stdout) == (20, "")
    assert f"public_key pins key {pinned_fp}" in run.stderr
    with pytest.raises(AidepyError, match=f"public_key pins key {re.escape(pinned_fp)}"):
        Promotion(config.load(site.config_path), Console(io.StringIO(), io.StringIO()), assume_yes=True).run()
    status = aidepy("vault", "status", "-c", str(site.config_path))
    assert status.returncode == 21 and f"public_key pins key {pinned_fp}" in status.stdout


@requires_root
def test_a_pinned_fingerprint_accepts_the_right_vault_and_names_the_key_it_found(promoted: VaultSite) -> None:
    site = promoted
    right = keys.fingerprint(keys.load_public_key(keys.public_key_beside(site.key)))
    run = check(site, "-A", f"public_key={right}")
    assert run.returncode == 0, run.stderr
    assert "signature verified with the pinned key" in run.stdout
    run = check(site, "-A", "public_key=SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert run.returncode == 20
    assert f"aidepy.pub is {right}, but public_key pins key SHA256:AAAA" in run.stderr


# --- the rollback record belongs to a baseline identity ---------------------------------------


def signed_database(path: Path, key_path: Path | None, generation: int, rules: Path,
                    host: str = HOST) -> None:
    """A database of what `rules` select now, as `aidepy init` writes it, but with the given
    generation and host, signed with `key_path` (made when missing; None: unsigned)."""
    if key_path is not None and not key_path.exists():
        keys.generate_keypair(key_path, None)
    key = keys.load_private_key(key_path, None) if key_path is not None else None
    entries = list(scan(config.load(rules).ruleset, workers=1, on_warning=lambda w: None))
    write_database(path, entries, host=host, rules_digest=b"\0" * 32, generation=generation, signing_key=key)


def disk_config(tmp_path: Path, name: str, state: Path, extra: str = "") -> Path:
    """A config checking database_in=<name>.db with the key <name>.key pinned."""
    conf = tmp_path / f"{name}.conf"
    conf.write_text(f"database_in=file:{tmp_path}/{name}.db\nstate_dir={state}\n"
                    f"public_key={tmp_path}/{name}.key.pub\n{extra}{tmp_path}/empty$ d p\n")
    return conf


def test_two_unrelated_databases_share_a_state_directory_in_any_order(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (tmp_path / "empty").mkdir()
    a, b = disk_config(tmp_path, "a", state), disk_config(tmp_path, "b", state)
    signed_database(tmp_path / "a.db", tmp_path / "a.key", 3, a)
    signed_database(tmp_path / "b.db", tmp_path / "b.key", 1, b)
    for conf in (a, b, a, b):
        run = aidepy("check", "-c", str(conf))
        assert run.returncode == 0, run.stdout + run.stderr
    recorded = parse_record((state / ROLLBACK_RECORD).read_text())
    assert sorted(recorded.values()) == [1, 3]


def test_an_unsigned_database_neither_reads_nor_writes_the_rollback_record(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / ROLLBACK_RECORD).write_text("SHA256:whatever - 9\n")
    (tmp_path / "empty").mkdir()
    conf = tmp_path / "u.conf"
    conf.write_text(f"database_in=file:{tmp_path}/u.db\nstate_dir={state}\n{tmp_path}/empty$ d p\n")
    signed_database(tmp_path / "u.db", None, 2, conf)
    run = aidepy("check", "-c", str(conf))
    assert run.returncode == 0, run.stdout + run.stderr
    assert (state / ROLLBACK_RECORD).read_text() == "SHA256:whatever - 9\n"


def test_update_refuses_a_rolled_back_baseline_and_writes_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (tmp_path / "empty").mkdir()
    conf = disk_config(tmp_path, "a", state, extra=f"database_out=file:{tmp_path}/out.db\n")
    signed_database(tmp_path / "a.db", tmp_path / "a.key", 2, conf)
    assert aidepy("check", "-c", str(conf)).returncode == 0  # this host has seen generation 2
    signed_database(tmp_path / "a.db", tmp_path / "a.key", 1, conf)
    for command in ("update", "check"):
        run = aidepy(command, "-c", str(conf))
        assert run.returncode == 20, run.stdout + run.stderr
        assert "rollback: the baseline is generation 1, but this host has already verified generation 2" \
            in run.stderr
    assert not (tmp_path / "out.db").exists()


@requires_root
def test_the_daily_report_and_check_record_the_generation_they_verified(promoted: VaultSite) -> None:
    site = promoted
    for run in (daily_report, check):
        (site.state_dir / ROLLBACK_RECORD).unlink()
        result = run(site)
        assert result.returncode == 0, result.stdout + result.stderr
        [generation] = parse_record((site.state_dir / ROLLBACK_RECORD).read_text()).values()
        assert generation == 1


@requires_root
def test_an_earlier_single_number_record_keeps_protecting_the_vaults_baseline(promoted: VaultSite) -> None:
    site = promoted
    (site.state_dir / ROLLBACK_RECORD).unlink()
    (site.state_dir / LEGACY_ROLLBACK_RECORD).write_text("3\n")  # what an earlier aidepy kept
    run = daily_report(site)
    assert run.returncode == 20
    assert "rollback: the baseline is generation 1, but this host has already verified generation 3" \
        in sent_mail(site).get_content()
    (site.state_dir / LEGACY_ROLLBACK_RECORD).write_text("1\n")
    run = daily_report(site)
    assert run.returncode == 0, run.stdout + run.stderr
    assert not (site.state_dir / LEGACY_ROLLBACK_RECORD).exists()
    [generation] = parse_record((site.state_dir / ROLLBACK_RECORD).read_text()).values()
    assert generation == 1


@requires_root
def test_a_deleted_rollback_record_is_reported_in_the_next_mail(promoted: VaultSite) -> None:
    site = promoted
    assert promote_in_process(site)[0] == 2
    (site.state_dir / ROLLBACK_RECORD).unlink()
    assert daily_report(site).returncode == 0
    assert "holds no generation of the baselines signed by" in sent_mail(site).get_content()
    (site.state_dir / ROLLBACK_RECORD).write_text("garbage\n")
    assert daily_report(site).returncode == 0
    body = sent_mail(site).get_content()
    assert "WARNING: the rollback record" in body and "cannot be used (line 1 is malformed)" in body


# --- the host the baseline was made on ----------------------------------------------------------


def test_a_baseline_of_another_host_is_refused_or_with_a_setting_flagged(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (tmp_path / "empty").mkdir()
    conf = disk_config(tmp_path, "a", state)
    signed_database(tmp_path / "a.db", tmp_path / "a.key", 1, conf, host="elsewhere")
    run = aidepy("check", "-c", str(conf))
    assert (run.returncode, run.stdout) == (20, "")
    assert f"was recorded on host 'elsewhere', and this is '{HOST}': refused" in run.stderr
    run = aidepy("check", "-c", str(conf), "-A", "host_mismatch=warn")
    assert run.returncode == 0, run.stderr
    assert "WARNING: baseline" in run.stdout and "recorded on host 'elsewhere'" in run.stdout


def test_every_report_names_the_host_the_baseline_was_made_on(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    conf = disk_config(tmp_path, "a", tmp_path / "state")
    signed_database(tmp_path / "a.db", tmp_path / "a.key", 1, conf)
    run = aidepy("check", "-c", str(conf))
    assert f"on host {HOST})" in run.stdout.split("\n")[0]


# --- promote shows what the next report will ----------------------------------------------------


def listed_paths(text: str) -> list[str]:
    """The paths a text report lists as added, removed or changed (each once, also when the daily
    report lists it again as new)."""
    entry = re.compile(r"^[a-zA-Z!] [=<>+-] .*?: (/.*)$")
    return sorted({m.group(1) for line in text.splitlines() if (m := entry.match(line))})


@requires_root
def test_promotes_diff_is_the_next_reports_under_the_report_options(vault_site: VaultSite) -> None:
    site = vault_site
    log = site.tree / "log"
    log.write_text("line 1\n")
    site.write_config(extra="report_ignore_changed_attrs=u\nreport_ignore_e2fsattrs=d\n"
                            f"{site.tree}/log$ f p+s+sha256+growing\n")
    backdate(site.tree)
    assert promote_in_process(site)[0] == 1
    with log.open("a") as f:
        f.write("line 2\n")  # grown: its first bytes still hash as recorded
    (site.tree / "motd").chmod(0o600)
    subprocess.run(["chown", "nobody", str(site.tree / "passwd")], check=True)  # ignored: u
    daily = daily_report(site)
    assert daily.returncode == 4, daily.stdout + daily.stderr
    shown = io.StringIO()
    assert isinstance(Promotion(config.load(site.config_path), Console(io.StringIO("n\n"), shown)).run(),
                      Declined)
    assert listed_paths(shown.getvalue()) == listed_paths(daily.stdout) == [f"{site.tree}/motd"]


@requires_root
def test_vault_reports_its_identity_for_the_rollback_record(promoted: VaultSite) -> None:
    vault = Vault.open(config.load(promoted.config_path))
    identity = vault.identity()
    assert identity and re.fullmatch(r"[0-9a-f-]{36}", identity)
    [(recorded, _)] = parse_record((promoted.state_dir / ROLLBACK_RECORD).read_text()).items()
    assert recorded.vault == identity


# The anchored copy's owner swaps it for an older, validly signed database right after it was
# checked against the anchor and before the check opens it.
SWAP_ANCHORED = r"""
import os, shutil, sys
import aidepy.vault.vault as vault
from aidepy.cli import main
conf, target, replacement = sys.argv[1:4]
checked = vault.check_disk_copy

def check_then_swap(anchor, path=None):
    found = checked(anchor, path)
    shutil.copyfile(replacement, target + ".swap")
    os.replace(target + ".swap", target)
    return found

vault.check_disk_copy = check_then_swap
sys.exit(main(["check", "-c", conf]))
"""


@requires_root
def test_an_anchored_copy_swapped_after_its_check_is_refused(anchored_site: VaultSite) -> None:
    site = anchored_site
    older = site.root / "generation-1.db"
    older.write_bytes((site.state_dir / "aidepy.1.db").read_bytes())
    (site.tree / "file000").write_text("changed\n")
    assert promote_in_process(site)[0] == 2
    (site.state_dir / ROLLBACK_RECORD).unlink()  # whoever owns state_dir can do this too
    target = site.state_dir / "aidepy.2.db"
    run = subprocess.run([sys.executable, "-c", SWAP_ANCHORED, str(site.config_path), str(target),
                          str(older)], capture_output=True, text=True, timeout=120)
    assert target.read_bytes() == older.read_bytes(), "the swap did not happen"
    assert (run.returncode, run.stdout) == (20, ""), run.stdout + run.stderr
    assert "changed after it was checked against the vault's anchor" in run.stderr
