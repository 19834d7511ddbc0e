"""``hil-train ep`` and ``hil-train sweep ep`` end to end: real server subprocesses, real HTTP.

- EP on digits under default-v1 reaches 95 % (fixed seeds), and a run killed mid-way (SIGKILL)
  and rerun with ``--resume`` finishes with a complete report, its embedded server gone with it;
- a sweep writes its grid, its figure, skips finished points when rerun, and shows the physics:
  a programming error of 30 % of the conductance range destroys what 0 % learns;
- user mistakes get a clear message and exit status 1.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

HIL_TRAIN = [sys.executable, "-m", "trainer_client.cli"]


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


@pytest.mark.slow
def test_ep_on_digits_survives_a_kill_and_resumes_to_95_percent(tmp_path: Path):
    out = tmp_path / "run"
    cmd = [*HIL_TRAIN, "ep", "--dataset", "digits", "--epochs", "12", "--references", "software", "--out", str(out),
           "--no-progress", "--seed", "0"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    checkpoint = out / "checkpoints" / "device.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and first.poll() is None:
        if checkpoint.is_file() and json.loads(checkpoint.read_text())["epoch"] >= 3:
            break
        time.sleep(0.2)
    assert first.poll() is None, "the run ended before it could be killed"
    first.kill()  # SIGKILL: no cleanup of any kind
    first_out = first.communicate(timeout=30)[0]
    assert first.returncode == -9
    assert not (out / "report.json").exists()
    killed_at = json.loads(checkpoint.read_text())["epoch"]
    assert 3 <= killed_at < 12
    url = re.search(r"device server on (http://\S+)", first_out).group(1)
    time.sleep(1.0)
    with pytest.raises(httpx.TransportError):  # its embedded server died with it
        httpx.get(f"{url}/v1/health", timeout=2)

    done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"resumed after epoch {killed_at}" in done.stdout
    report = json.loads((out / "report.json").read_text())
    assert [r["epoch"] for r in report["history"]] == list(range(1, 13))
    assert report["test_accuracy"] >= 0.95, report["history"]
    assert report["preset"] == "default-v1" and report["epochs"] == 12
    software = report["references"]["software"]
    assert [r["epoch"] for r in software["history"]] == list(range(1, 13))
    assert report["software_test_accuracy"] == software["test_accuracy"] >= 0.9
    assert report["ideal_test_accuracy"] is None  # not asked for
    hp = report["hyperparameters"]
    assert {"beta", "t1", "t2", "nudging", "lrs", "batch_size", "optimizer", "lr_schedule", "loss"} <= set(hp)
    assert report["device"]["settings"]["prog_std"] == 0.01
    assert report["device_calls"] > 0 and report["energy_j"] > 0
    assert _is_png(out / "curves.png") and _is_png(out / "states.png")


@pytest.mark.slow
def test_sweep_shows_what_programming_error_costs(tmp_path: Path):
    out = tmp_path / "sweep"
    cmd = [*HIL_TRAIN, "sweep", "ep", "--dataset", "digits", "--hidden", "32", "--epochs", "3", "--param", "prog_std",
           "--values", "0,0.3", "--seeds", "2", "--out", str(out), "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads((out / "sweep.json").read_text())
    assert result["param"] == "prog_std" and result["values"] == [0.0, 0.3] and result["seeds"] == [0, 1]
    assert len(result["points"]) == 4
    for p in result["points"]:
        report = json.loads(Path(p["report"]).read_text())
        assert report["overrides"] == {"prog_std": p["value"]} and report["seed"] == p["seed"]
        assert report["device"]["settings"]["prog_std"] == p["value"]
    mean = {s["value"]: s["mean_test_accuracy"] for s in result["summary"]}
    assert mean[0.0] > 0.6 and mean[0.3] < mean[0.0] - 0.3, result["summary"]
    assert all(s["n"] == 2 and s["std"] >= 0 for s in result["summary"])
    assert result["preset_value"] == 0.01 and result["unit"] == "1"  # default-v1's prog_std, as the server declares it
    assert _is_png(out / "sweep.png")
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stdout.count("done before") == 4


@pytest.mark.parametrize("args,message", [
    (["ep", "--resume"], "--resume needs --out"),
    (["ep", "--lr", "0.1,0.2,0.3", "--epochs", "1"], "one learning rate per crossbar"),
    (["sweep", "ep", "--param", "warp_drive", "--values", "1,2"], "not a device setting"),
    (["sweep", "ep", "--param", "prog_std", "--values", "0,2"], "outside"),
    (["sweep", "ep", "--param", "levels", "--values", "8,2.5"], "integer setting"),
    (["sweep", "ep", "--param", "prog_std", "--values", "0", "--url", "http://127.0.0.1:9"], "drop --url"),
    (["ep", "--dataset", "mnist", "--data-dir", "/nonexistent"], "missing"),
    (["ep", "--preset", "nope", "--epochs", "1"], "unknown preset 'nope'"),
])
def test_ep_and_sweep_explain_user_mistakes(tmp_path: Path, args: list[str], message: str):
    if "--out" not in args and "--resume" not in args:
        args = [*args, "--out", str(tmp_path / "out")]
    done = subprocess.run([*HIL_TRAIN, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "hil-train: error:" in done.stderr and message in done.stderr


@pytest.mark.slow
def test_ep_on_a_running_server_uses_its_ideal_twin(server_url: str, tmp_path: Path):
    """With --url: the lab's crossbar-digits and crossbar-digits-ideal, no embedded server."""
    out = tmp_path / "run"
    done = subprocess.run([*HIL_TRAIN, "ep", "--url", server_url, "--dataset", "digits", "--epochs", "2",
                           "--references", "ideal", "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "started a device server" not in done.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["device_id"] == "crossbar-digits" and report["server_url"] == server_url
    assert report["device"]["topology"]["sizes"] == [64, 256, 10]
    ideal = report["references"]["ideal"]
    assert len(ideal["history"]) == 2 and report["ideal_test_accuracy"] == ideal["test_accuracy"] > 0.5
    assert report["software_test_accuracy"] is None and not (out / "lab.toml").exists()


def test_ep_on_a_shared_lab_needs_a_key_and_leaves_its_trail_in_the_audit(shared_lab, tmp_path: Path):
    """A keyed lab server: without a key the run stops with the server's 401; with one it trains and
    its report names the request-id prefix that finds its calls in the audit."""
    base = [*HIL_TRAIN, "ep", "--url", shared_lab.url, "--device", "digits", "--dataset", "digits", "--epochs", "1",
            "--references", "none", "--no-progress"]
    refused = subprocess.run([*base, "--out", str(tmp_path / "no-key")], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "SPINHIL_API_KEY": ""})
    assert refused.returncode == 1 and "hil-train: error:" in refused.stderr
    out = tmp_path / "alice"
    done = subprocess.run([*base, "--out", str(out), "--api-key", shared_lab.keys["alice"]], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    prefix = report["audit"]["request_id_prefix"]
    assert prefix.startswith("alice-") and report["audit"]["lease_id"]
    with shared_lab.client("admin") as admin:
        records = admin.audit(request_id_prefix=prefix, limit=1000)
    actions = {r["action"] for r in records}
    assert {"program", "relax"} <= actions, actions
    assert all(r["lease_id"] == report["audit"]["lease_id"] for r in records if r["action"] == "relax")
