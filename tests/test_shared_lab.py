"""A lab many people share, over real HTTP to a keyed server: queue, fencing, roles, audit, quotas."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest

from tests.conftest import SharedLab
from trainer_client.client import DeviceClient
from trainer_client.errors import Forbidden, LeaseConflict, QuotaExceeded, Unauthorized

DEVICE = "chip"
TTL_S = 3.0


def _wait_for(cond, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


class Waiter(threading.Thread):
    """Bob waiting in the queue in a thread: records every position he was shown, and when he got the device."""

    def __init__(self, lab: SharedLab, who: str = "bob") -> None:
        super().__init__(daemon=True)
        self.client = lab.client(who)
        self.seen: list[dict] = []
        self.lease = None
        self.granted_at: float | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.lease = self.client.lease(DEVICE, ttl_s=TTL_S, holder="bob", wait=True, on_queue=self.seen.append)
            self.granted_at = time.monotonic()
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_second_user_queues_and_gets_the_device_on_release(shared_lab: SharedLab):
    with shared_lab.client("alice") as alice:
        first = alice.lease(DEVICE, ttl_s=TTL_S, holder="alice")
        bob = Waiter(shared_lab)
        bob.start()
        _wait_for(lambda: bob.seen)
        assert bob.seen[0]["position"] == 1 and bob.seen[0]["state"] == "waiting"
        assert bob.seen[0]["estimated_wait_s"] >= 0
        listed = {d["id"]: d for d in alice.devices()}[DEVICE]
        assert listed["holder"] == "alice" and listed["queue_length"] == 1
        metrics = httpx.get(f"{shared_lab.url}/metrics").text  # public, like /v1/health
        assert f'spinhil_queue_length{{device="{DEVICE}"}} 1.0' in metrics
        time.sleep(0.5)
        assert bob.lease is None  # still waiting while alice holds it
        released_at = time.monotonic()
        first.release()
        bob.join(5)
        assert bob.error is None and bob.lease is not None
        assert bob.granted_at - released_at < 1.0
        assert bob.lease.fencing == first.fencing + 1
        with pytest.raises(LeaseConflict):  # alice's token is stale now
            alice.forward(DEVICE, first.token, np.zeros((1, 16)), fencing=first.fencing)
        bob.lease.forward(np.zeros((1, 16)))
        bob.lease.release()
        bob.client.close()


HOLDER_SCRIPT = """
import sys, time
from trainer_client.client import DeviceClient
c = DeviceClient(sys.argv[1], api_key=sys.argv[2])
lease = c.lease("chip", ttl_s=float(sys.argv[3]), holder="alice-subprocess")
print(lease.lease_id, flush=True)
time.sleep(600)
"""


def test_a_killed_holder_loses_the_device_within_one_ttl(shared_lab: SharedLab):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER_SCRIPT, shared_lab.url, shared_lab.keys["alice"],
                               str(TTL_S)], stdout=subprocess.PIPE, text=True)
    try:
        lease_id = holder.stdout.readline().strip()
        assert len(lease_id) == 32
        bob = Waiter(shared_lab)
        bob.start()
        _wait_for(lambda: bob.seen)
        time.sleep(TTL_S * 1.2)  # its keepalive thread holds the lease past one TTL while it lives
        assert bob.lease is None
        killed_at = time.monotonic()
        holder.kill()
        holder.wait()
        bob.join(TTL_S + 5)
        assert bob.error is None and bob.lease is not None
        waited = bob.granted_at - killed_at
        assert waited <= TTL_S + 0.5, f"device passed on {waited:.2f} s after the holder died (TTL {TTL_S} s)"
        print(f"device passed on {waited:.2f} s after the holder was killed (TTL {TTL_S} s)")
        bob.lease.release()
        bob.client.close()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def test_stale_fencing_number_is_refused_and_changes_nothing(shared_lab: SharedLab):
    with shared_lab.client("alice") as alice, shared_lab.client("bob") as bob_client, \
            shared_lab.client("admin") as admin:
        old = alice.lease(DEVICE, ttl_s=TTL_S, keepalive=False)
        old.program({"b1": np.full(4, 0.1)})
        broken = httpx.post(f"{shared_lab.url}/v1/admin/leases/{old.lease_id}/break",
                            json={"reason": "bench recalibration"},
                            headers={"Authorization": f"Bearer {shared_lab.keys['admin']}"})
        assert broken.status_code == 200 and broken.json()["reason"] == "bench recalibration"
        with bob_client.lease(DEVICE, ttl_s=TTL_S) as new:
            assert new.fencing > old.fencing
            mine = new.program({"b1": np.full(4, -0.2)})["achieved"]["b1"]
            # alice's late write: her token and her (stale) fencing number
            with pytest.raises(LeaseConflict) as exc, shared_lab.client("alice", run_id="late-alice") as late:
                late.program(DEVICE, old.token, {"b1": np.full(4, 0.3)}, fencing=old.fencing)
            assert exc.value.status == 409 and exc.value.field == "X-Lease-Fencing"
            # the current token with a stale fencing number is refused too
            with pytest.raises(LeaseConflict):
                bob_client.update(DEVICE, new.token, {"b1": np.full(4, 0.05)}, fencing=old.fencing)
            np.testing.assert_array_equal(new.read_weights()["weights"]["b1"], mine)
        records = admin.audit(lease_id=old.lease_id)
        assert [(r["action"], r["outcome"]) for r in records] == [("take_lease", "ok"), ("program", "ok"),
                                                                  ("break_lease", "ok")]
        assert records[-1]["detail"] == "broken: bench recalibration" and records[-1]["key_name"] == "admin"
        [late_write] = admin.audit(request_id_prefix="late-alice-")
        assert (late_write["action"], late_write["status"], late_write["fencing"]) == ("program", 409, old.fencing)
        assert late_write["key_name"] == "alice" and "stale" in late_write["detail"]


def test_observer_and_unknown_keys_are_refused_and_audited(shared_lab: SharedLab):
    url = shared_lab.url
    observer = {"Authorization": f"Bearer {shared_lab.keys['olga']}"}
    assert httpx.get(f"{url}/v1/devices", headers=observer).status_code == 200  # reading is allowed
    take = httpx.post(f"{url}/v1/devices/{DEVICE}/leases", json={}, headers=observer)
    assert take.status_code == 403 and take.json()["field"] == "Authorization"
    with shared_lab.client("alice") as alice, alice.lease(DEVICE, ttl_s=TTL_S) as lease:
        lease_headers = {"X-Lease-Token": lease.token, "X-Request-ID": "observer-drives"}
        drive = httpx.post(f"{url}/v1/devices/{DEVICE}/forward", json={"x": [[0.0] * 16]},
                           headers={**observer, **lease_headers})
        program = httpx.put(f"{url}/v1/devices/{DEVICE}/weights", json={"weights": {"b1": [0.5] * 4}},
                            headers={**observer, **lease_headers, "X-Request-ID": "observer-programs"})
        assert drive.status_code == program.status_code == 403
        unknown = httpx.put(f"{url}/v1/devices/{DEVICE}/weights", json={"weights": {"b1": [0.5] * 4}},
                            headers={"Authorization": "Bearer shl_0123456789ab_" + "x" * 43, **lease_headers,
                                     "X-Request-ID": "unknown-programs"})
        missing = httpx.post(f"{url}/v1/devices/{DEVICE}/forward", json={"x": [[0.0] * 16]},
                             headers={**lease_headers, "X-Request-ID": "nobody-drives"})
        assert unknown.status_code == missing.status_code == 401
        assert unknown.headers["WWW-Authenticate"].startswith("Bearer")
        assert np.all(lease.read_weights()["weights"]["b1"] != 0.5)  # nothing was programmed
    with pytest.raises(Forbidden):  # an observer does not read the audit either
        DeviceClient(url, api_key=shared_lab.keys["olga"]).audit()
    with shared_lab.client("admin") as admin:
        found = {r["request_id"]: r for r in admin.audit(outcome="refused", limit=1000)}
    assert found["observer-drives"]["status"] == 403 and found["observer-drives"]["key_name"] == "olga"
    assert found["observer-programs"]["action"] == "program" and found["observer-programs"]["device_id"] == DEVICE
    assert found["unknown-programs"]["status"] == 401 and found["unknown-programs"]["key_id"] == "0123456789ab"
    assert found["nobody-drives"]["status"] == 401 and found["nobody-drives"]["key_id"] is None


def _keys_cli(lab: SharedLab, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "device_server", "keys", *args, "--state-dir", str(lab.state_dir)],
                          capture_output=True, text=True, timeout=60)


def test_keys_made_listed_and_revoked_with_the_cli_while_serving(shared_lab: SharedLab):
    made = _keys_cli(shared_lab, "create", "--name", "carol", "--role", "user", "--expires-in-days", "30")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    key_id = key.split("_")[1]
    assert re.fullmatch(r"shl_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", key) and "not shown again" in made.stderr
    with DeviceClient(shared_lab.url, api_key=key) as carol:
        assert carol.devices()
        listed = _keys_cli(shared_lab, "list")
        [row] = [line for line in listed.stdout.splitlines() if line.startswith(key_id)]
        assert "carol" in row and "active" in row and key.split("_")[2] not in listed.stdout
        assert _keys_cli(shared_lab, "revoke", key_id).returncode == 0
        with pytest.raises(Unauthorized, match="revoked"):
            carol.devices()
    assert _keys_cli(shared_lab, "revoke", "000000000000").returncode == 1


def test_quota_in_device_seconds(shared_lab: SharedLab):
    from device_server.auth import create_key
    from device_server.store import Store

    store = Store.open(shared_lab.state_dir)
    key, _ = create_key(store, "dave", "user", quota_device_s=1.0)
    store.close()
    with DeviceClient(shared_lab.url, api_key=key) as dave:
        lease = dave.lease("chip-ideal", ttl_s=10, keepalive=False)
        assert lease.info["expires_in_s"] <= 1.0  # never past the quota
        time.sleep(1.2)
        with pytest.raises(QuotaExceeded):
            dave.lease("chip-ideal", ttl_s=10)


def test_every_route_states_its_scope_in_openapi(shared_lab: SharedLab):
    doc = httpx.get(f"{shared_lab.url}/openapi.json").json()
    public = {"/v1/health", "/metrics"}
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            if path in public:
                assert op["security"] == []  # stated: no key needed
                continue
            [requirement] = op["security"]
            assert requirement["HTTPBearer"], f"{method.upper()} {path} names no scope"
            assert "401" in op["responses"] and "403" in op["responses"]
    ops = doc["paths"]
    assert ops["/v1/devices/{device_id}/weights"]["put"]["security"] == [{"HTTPBearer": ["program:devices"]}]
    assert ops["/v1/audit"]["get"]["security"] == [{"HTTPBearer": ["read:audit"]}]


def test_a_training_report_finds_its_calls_in_the_audit(shared_lab: SharedLab, tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "trainer_client.cli", "demo", "--url", shared_lab.url,
                           "--api-key", shared_lab.keys["alice"], "--device", "digits", "--epochs", "1",
                           "--batch-size", "128", "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    ids = report["audit"]
    with shared_lab.client("admin") as admin:
        records = admin.audit(request_id_prefix=ids["request_id_prefix"], limit=1000)
    operations = [r for r in records
                  if r["action"] in ("forward", "relax", "program", "update", "read_weights", "program+relax")]
    assert len(operations) == report["device_calls"] > 0
    # a training step is one request: its write travels with its phases, and the audit says so
    assert any(r["action"] == "program+relax" for r in operations)
    assert {r["lease_id"] for r in operations} == {ids["lease_id"]}
    assert {r["key_name"] for r in records} == {"alice"} and ids["key_id"] == records[0]["key_id"]
    assert sum(r["device_time_s"] for r in operations) == pytest.approx(report["device_time_s"], rel=1e-9)
    assert [r["action"] for r in records if r["action"] in ("take_lease", "release")] == ["take_lease", "release"]


def test_a_waiter_can_follow_its_place_as_server_sent_events(shared_lab: SharedLab):
    url, bob_auth = shared_lab.url, {"Authorization": f"Bearer {shared_lab.keys['bob']}"}
    with shared_lab.client("alice") as alice:
        held = alice.lease(DEVICE, ttl_s=TTL_S)
        ticket = httpx.post(f"{url}/v1/devices/{DEVICE}/leases", json={"ttl_s": TTL_S, "queue": True},
                            headers=bob_auth).json()
        events = []
        with httpx.stream("GET", f"{url}/v1/queue/{ticket['ticket_id']}/events", headers=bob_auth,
                          timeout=20) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            name = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name, json.loads(line[6:])))
                    if name == "position":
                        time.sleep(0.3)
                        held.release()  # while bob listens
                    else:
                        break
        assert [n for n, _ in events] == ["position", "granted"]
        assert events[0][1]["position"] == 1
        lease = events[1][1]["lease"]
        assert lease["fencing"] == held.fencing + 1
        alice.request("DELETE", f"/v1/leases/{lease['lease_id']}", headers={"X-Lease-Token": lease["token"]})
    missing = httpx.get(f"{url}/v1/queue/no-such-ticket/events", headers=bob_auth)
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
