"""Where a run came from: enough to repeat it (package version, git commit, lab, data, command)."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def package_version() -> str:
    try:
        return version("spinhil")
    except PackageNotFoundError:
        return "0.0.0+source"


def git_commit(where: Path | None = None) -> str | None:
    """The commit of the source tree the package runs from, when it is a git checkout."""
    where = where or Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def provenance(health: dict[str, Any], dataset_sha256: str, argv: list[str] | None = None) -> dict[str, Any]:
    return {
        "package_version": package_version(),
        "git_commit": git_commit(),
        "server_version": health.get("version"),
        "lab": health.get("lab"),
        "lab_source": health.get("lab_source"),
        "lab_config_sha256": health.get("lab_config_sha256"),
        "dataset_sha256": dataset_sha256,
        "command_line": list(sys.argv if argv is None else argv),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
