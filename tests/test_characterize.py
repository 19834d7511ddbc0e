"""``hil-train characterize``: the command around the per-kind characterisers, over real HTTP.

A device of a kind nobody registered a characteriser for gets a clear error (exit status 1) that
names its kind and the kinds that can be characterised; an unknown device id is a clear error too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HIL_TRAIN = [sys.executable, "-m", "trainer_client.cli"]


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HIL_TRAIN, "characterize", *args], capture_output=True, text=True, timeout=120)


def test_unknown_device_is_a_clear_error(tmp_path: Path):
    done = _run(["--device", "no-such-device", "--out", str(tmp_path)])
    assert done.returncode == 1
    assert "no-such-device" in done.stderr and "Traceback" not in done.stderr
