"""The audit's batched queue keeps the order in which records were made, also when a write's
record (committed in a worker thread) races a batch flush of later measurements."""

from __future__ import annotations

import threading
import time

from device_server.store import Store


class SlowTake(Store):
    """A store whose worker thread ``writer`` pauses right after taking the queue: the window in
    which a concurrent flush could commit later records first."""

    def _take_queued(self):  # noqa: ANN202
        queued = super()._take_queued()
        if threading.current_thread().name == "writer":
            time.sleep(0.2)
        return queued


def record(action: str) -> dict:
    return {"at": time.time(), "method": "POST", "path": f"/v1/devices/d/{action}", "action": action,
            "device_id": "d", "status": 200, "outcome": "ok"}


def test_a_flush_racing_a_write_record_keeps_the_order_they_were_made():
    store = SlowTake.open(None, ephemeral=True)
    store.queue_audit(record("relax"))  # a measurement before the write, still queued
    writer = threading.Thread(target=store.append_audit, args=(record("program"), True), name="writer")
    writer.start()
    time.sleep(0.05)  # the writer has taken the queue and is between taking and committing
    store.queue_audit(record("forward"))  # a measurement after the write
    store.flush_audit()
    writer.join()
    rows = store.audit({}, limit=10)
    assert [r["action"] for r in rows] == ["relax", "program", "forward"]
    store.close()
