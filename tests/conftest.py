"""Shared fixtures: real trees, real tools, skips with a reason where the machine cannot."""

from __future__ import annotations

import os
import shutil

import pytest

requires_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (runs as root in CI)")


def require_tool(name: str) -> str:
    """The path of an external tool, or skip the test saying which one is missing."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.skip(f"{name} is not installed (./setup.sh installs it)")
    return path
