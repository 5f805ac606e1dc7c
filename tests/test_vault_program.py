"""aidepy run from the vault (`<vault>/bin/aidepy`), against an intruder who owns the host's copy.

Each test builds its own "host install" under tmp_path: a virtual environment holding a plain
(not editable) copy of aidepy and copies of its dist_files,
    program_distributions, as `pip install` would leave it,
installs the program onto a vault on a loop device from there, then trojans that host install.
"""

from __future__ import annotations

import importlib.util
import os
import py_compile
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest
from conftest import RootMailbox, VaultSite
from test_report_command import promote_tree

import aidepy
from aidepy.vault import bootstrap
from aidepy.vault.runtime import dist_files, program_distributions

HOST = socket.gethostname()
# A trojan in the host's aidepy: compare the baseline with itself, so no change is ever reported.
TROJAN = """
_honest_compare = compare


def compare(old, new, **kw):  # noqa
    old = list(old)
    return _honest_compare(iter(old), iter(old), **kw)
"""


@dataclass
class HostInstall:
    """aidepy installed on the host with pip, in a virtual environment."""

    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        return self.root / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"

    def aidepy(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        # cwd: `-m` puts the current directory first on sys.path (a checkout's aidepy, here)
        return subprocess.run([self.python, "-m", "aidepy", *args], input=stdin, capture_output=True,
                              text=True, timeout=120, cwd=self.root)


@pytest.fixture
def host_install(tmp_path: Path) -> HostInstall:
    host = HostInstall(tmp_path / "host")
    subprocess.run([os.path.realpath(sys.executable), "-m", "venv", "--without-pip", host.root], check=True)
    for dist in program_distributions():
        for f in dist.files or []:  # modules and metadata, as pip installed them
            if "__pycache__" not in f.parts and f.parts[0] != ".." and Path(str(f.locate())).is_file():
                target = host.site_packages / str(f)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(str(f.locate()), target)
        if dist.files is None:  # as Debian installs them: the modules, and metadata with no file list
            for name, path in dist_files(dist):
                (host.site_packages / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, host.site_packages / name)
            info = host.site_packages / f"{dist.metadata['Name']}.egg-info"
            info.mkdir()
            for meta in ("PKG-INFO", "top_level.txt", "requires.txt"):
                if (text := dist.read_text(meta)) is not None:
                    (info / meta).write_text(text)
    shutil.copytree(Path(aidepy.__file__).parent, host.site_packages / "aidepy",
                    ignore=shutil.ignore_patterns("__pycache__"))
    info = host.site_packages / f"aidepy-{aidepy.__version__}.dist-info"
    info.mkdir()
    requires = "".join(f"Requires-Dist: {r}\n" for r in metadata.requires("aidepy") or [])
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: aidepy\nVersion: {aidepy.__version__}\n"
                                   f"{requires}")
    where = subprocess.run([host.python, "-c", "import aidepy; print(aidepy.__file__)"],
                           capture_output=True, text=True, check=True, cwd=host.root).stdout.strip()
    assert where == str(host.site_packages / "aidepy" / "__init__.py")
    return host


def install_program(site: VaultSite, host: HostInstall) -> Path:
    """`aidepy vault install` from the host's copy (passphrase typed), the vault protected again
    and mounted read-only; returns its bin/aidepy."""
    site.loop.set_read_only(False)
    run = host.aidepy("vault", "install", "-c", str(site.config_path), stdin=f"{site.passphrase}\n")
    assert run.returncode == 0 and "installed" in run.stdout, run.stdout + run.stderr
    site.loop.set_read_only(True)
    assert host.aidepy("vault", "mount", "-c", str(site.config_path)).returncode == 0
    return site.mountpoint / "bin" / "aidepy"


@pytest.fixture
def vault_program(vault_site: VaultSite, host_install: HostInstall) -> Path:
    promote_tree(vault_site)
    return install_program(vault_site, host_install)


def run(program: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([program, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_the_vaults_aidepy_reports_what_a_trojaned_host_copy_hides(
    vault_site: VaultSite, host_install: HostInstall, vault_program: Path, root_mailbox: RootMailbox,
    tmp_path: Path,
) -> None:
    with open(host_install.site_packages / "aidepy" / "compare.py", "a") as f:
        f.write(TROJAN)
    pth_ran = tmp_path / "pth-ran"
    (host_install.site_packages / "zz-hook.pth").write_text(
        f"import pathlib; pathlib.Path({str(pth_ran)!r}).write_text('ran')\n")
    (vault_site.tree / "passwd").write_text("root:x:0:0::/root:/bin/sh\nevil:x:0:0::/:/bin/sh\n")
    conf = str(vault_site.config_path)

    hidden = host_install.aidepy("report", "-c", conf)  # the trojan works on the host's copy
    assert hidden.returncode == 0 and "AIDE found NO differences" in hidden.stdout, hidden.stderr
    assert pth_ran.read_text() == "ran"
    pth_ran.unlink()

    found = run(vault_program, "report", "-c", conf)
    assert found.returncode & 4, found.stdout + found.stderr
    assert f"{vault_site.tree}/passwd" in found.stdout
    assert "ALERT" not in found.stdout and "WARNING: runtime" not in found.stdout  # the runtime is intact
    assert not pth_ran.exists()
    subjects = [mail["Subject"] for mail in root_mailbox.wait_for(2)]
    assert subjects[0] == f"aidepy: {HOST}: no changes"
    assert "no changes" not in subjects[1] and "changed" in subjects[1]


def test_the_vaults_aidepy_refuses_a_changed_compiled_extension(
    vault_site: VaultSite, host_install: HostInstall, vault_program: Path,
) -> None:
    [extension] = (host_install.site_packages / "xxhash").glob("_xxhash*.so")
    with open(extension, "ab") as f:
        f.write(b"\0trojan")  # still loads; a different file all the same
    refused = run(vault_program, "report", "-c", str(vault_site.config_path))
    assert refused.returncode == 20, refused.stdout + refused.stderr
    assert refused.stderr.startswith(f"aidepy: ALERT: aidepy from the vault {vault_site.mountpoint} "
                                     "cannot start: refused to load")
    assert f"{extension}: differs from the signed manifest" in refused.stderr
    status = host_install.aidepy("vault", "status", "-c", str(vault_site.config_path)).stdout
    assert f"runtime:         {extension}: differs from the signed manifest" in status


def test_a_library_the_manifest_does_not_list_is_an_alert_in_the_report(
    vault_site: VaultSite, vault_program: Path, root_mailbox: RootMailbox, tmp_path: Path,
) -> None:
    libz = next(p for p in Path("/usr/lib").rglob("libz.so.1") if p.is_file() or p.is_symlink())
    preload = tmp_path / "libz.so.1"
    shutil.copy2(libz.resolve(), preload)
    alerted = run(vault_program, "report", "-c", str(vault_site.config_path), LD_PRELOAD=str(preload))
    assert alerted.returncode == 0, alerted.stdout + alerted.stderr
    line = f"ALERT RUNTIME CHANGED: {preload}: loaded, but not in the signed manifest\n"
    assert alerted.stdout.count(line) == 1
    [mail] = root_mailbox.wait_for(1)
    assert mail["Subject"] == f"aidepy: {HOST}: ALERT: RUNTIME CHANGED"  # never "no changes" then


def test_a_manifest_changed_on_the_vault_fails_its_signature(
    vault_site: VaultSite, vault_program: Path, root_mailbox: RootMailbox,
) -> None:
    manifest = vault_site.mountpoint / "RUNTIME"
    vault_site.loop.set_read_only(False)
    subprocess.run(["mount", "-o", "remount,rw", str(vault_site.mountpoint)], check=True)
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join([*lines[:-1], "path /nonexistent\n", lines[-1]]))
    subprocess.run(["mount", "-o", "remount,ro", str(vault_site.mountpoint)], check=True)
    vault_site.loop.set_read_only(True)
    alerted = run(vault_program, "report", "-c", str(vault_site.config_path))
    assert ("ALERT RUNTIME CHANGED: RUNTIME: the signature does not verify with the vault's key"
            in alerted.stdout)
    root_mailbox.wait_for(1)


def test_the_vaults_aidepy_ignores_pythons_environment(
    vault_site: VaultSite, vault_program: Path, tmp_path: Path,
) -> None:
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "aidepy").mkdir()
    (planted / "aidepy" / "__init__.py").write_text("raise SystemExit('planted aidepy imported')\n")
    (planted / "sitecustomize.py").write_text("raise SystemExit('sitecustomize ran')\n")
    started = run(vault_program, "--version", PYTHONPATH=str(planted), PYTHONUSERBASE=str(planted))
    assert started.returncode == 0 and started.stdout.startswith("aidepy "), started.stderr


def test_a_planted_pyc_is_never_run_and_a_changed_source_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = tmp_path / "greeting.py"
    source.write_text("WHO = 'source'\n")
    planted = tmp_path / "planted" / "greeting.py"
    planted.parent.mkdir()
    planted.write_text("WHO = 'plant!'\n")  # same size; and the same mtime, next line
    os.utime(planted, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns))
    py_compile.compile(str(planted), cfile=importlib.util.cache_from_source(str(source)))
    session = bootstrap.Session(str(tmp_path), bootstrap.Manifest(
        f"{bootstrap.MAGIC}\nsha256 {bootstrap.file_sha256(str(source))} {source}\n", str(tmp_path)))
    monkeypatch.setattr(bootstrap, "session", session)

    def run_module(loader: SourceFileLoader) -> object:
        namespace: dict[str, object] = {}
        code = loader.get_code("greeting")
        assert code is not None
        exec(code, namespace)
        return namespace["WHO"]

    assert run_module(SourceFileLoader("greeting", str(source))) == "plant!"  # Python's own loader
    assert run_module(bootstrap.CheckedSourceLoader("greeting", str(source))) == "source"
    source.write_text("WHO = 'trojan'\n")
    with pytest.raises(ImportError, match=f"refused to load {source}: differs from the signed manifest"):
        run_module(bootstrap.CheckedSourceLoader("greeting", str(source)))
    assert session.problems == [f"{source}: differs from the signed manifest"]
