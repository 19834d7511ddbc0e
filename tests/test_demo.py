"""``hil-train demo`` end to end: a real server subprocess, EP on digits over real HTTP, report and plot."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

REPORT_KEYS = {"protocol", "dataset", "device_id", "preset", "epochs", "train_accuracy", "test_accuracy",
               "device_time_s", "instrument_time_s", "energy_j", "wall_time_s", "device_calls", "seed", "provenance"}


@pytest.mark.slow
@pytest.mark.parametrize("ideal,floor", [(False, 0.94), (True, 0.95)])
def test_demo_trains_ep_on_digits_over_http(tmp_path, ideal: bool, floor: float):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "trainer_client.cli", "demo", "--out", str(out), "--epochs", "12", "--no-progress"]
    if ideal:
        cmd.append("--ideal")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert report["preset"] == ("ideal" if ideal else "default-v1")
    assert report["test_accuracy"] >= floor, report["history"]
    # one request per training batch (write and phases together), a few more per epoch to evaluate
    assert 12 * 45 <= report["device_calls"] == sum(r["device_calls"] for r in report["history"]) < 12 * 45 * 2
    assert 0 < report["device_time_s"] < report["instrument_time_s"] and report["energy_j"] > 0
    prov = report["provenance"]
    assert len(prov["lab_config_sha256"]) == 64 and len(prov["dataset_sha256"]) == 64
    assert prov["command_line"][-1] in ("--no-progress", "--ideal") and prov["package_version"]
    png = (out / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    rows = [line for line in done.stdout.splitlines() if re.match(r"^\s*\d+\s+[\d.]+%\s+[\d.]+%\s", line)]
    assert len(rows) == 12  # one table row per epoch
    assert f"{100 * report['test_accuracy']:.2f}%" in rows[-1]


def test_demo_reports_an_unreachable_server_clearly(tmp_path):
    from trainer_client.local_server import free_port

    done = subprocess.run([sys.executable, "-m", "trainer_client.cli", "demo", "--url",
                           f"http://127.0.0.1:{free_port()}", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "hil-train: error" in done.stderr
