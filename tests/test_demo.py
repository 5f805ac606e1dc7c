"""The README's first command: `aidepy demo` runs the whole practice on an image-file vault."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import AIDEPY, RootMailbox, require_tool, requires_root


def _aidepy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AIDEPY, *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300)


@requires_root
def test_demo_promotes_a_baseline_and_reports_the_sample_change(
        tmp_path: Path, root_mailbox: RootMailbox) -> None:
    require_tool("mke2fs")
    work = tmp_path / "demo"
    conf = str(work / "aidepy.conf")
    try:
        first = _aidepy("demo", "--dir", str(work))
        assert first.returncode == 4, first.stdout + first.stderr
        assert "$ aidepy promote --yes" in first.stdout
        assert "signature verified" in first.stdout
        assert f"{work}/sample/hosts.allow" in first.stdout
        assert "Changed entries:\t\t1" in first.stdout
        mail = root_mailbox.wait_for(1)[-1]
        assert "1 changed" in str(mail["Subject"])

        again = _aidepy("demo", "--dir", str(work))  # same vault, same baseline: one more report
        assert again.returncode == 4, again.stdout + again.stderr
        assert "$ aidepy promote" not in again.stdout
        assert "generation 1" in again.stdout
        assert "write-protected: yes" in again.stdout
    finally:
        _aidepy("vault", "umount", "-c", conf)
    attached = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert str(work / "vault.img") not in attached
