"""The lease manager on a fake clock: FIFO order, dead waiters skipped, quotas, fencing, breaking."""

from __future__ import annotations

import pytest

from device_server.errors import InvalidInput, LeaseConflict, NotFound, QuotaExceeded
from device_server.leases import LeaseManager

DEV = "chip"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


def manager(clock: Clock, quotas: dict[str, float] | None = None) -> LeaseManager:
    return LeaseManager(clock=clock, wall=clock, quota_of=(quotas or {}).get)


def test_first_come_first_served_and_positions(clock: Clock):
    m = manager(clock)
    held = m.acquire(DEV, "ann", 10, owner="ann").lease
    tickets = [m.acquire(DEV, who, 10, owner=who, queue=True).queued for who in ("bob", "cay", "dan")]
    assert [t.position for t in tickets] == [1, 2, 3]
    with pytest.raises(LeaseConflict, match="3 waiting"):  # no jumping the line without queueing
        m.acquire(DEV, "eve", 10, owner="eve")
    clock.t += 2
    m.release(held.lease_id, held.token)
    order = []
    for _ in range(3):
        statuses = {who: m.poll(t.ticket.ticket_id, who) for who, t in zip(("bob", "cay", "dan"), tickets)}
        [(who, s)] = [(w, s) for w, s in statuses.items() if s.ticket.state == "granted" and w not in order]
        order.append(who)
        assert s.lease.fencing == held.fencing + len(order)
        clock.t += 1
        m.release(s.lease.lease_id, s.lease.token)
    assert order == ["bob", "cay", "dan"]


def test_a_waiter_that_stops_polling_is_skipped(clock: Clock):
    m = manager(clock)
    held = m.acquire(DEV, "ann", 10, owner="ann").lease
    dead = m.acquire(DEV, "bob", 4, owner="bob", queue=True).queued.ticket
    alive = m.acquire(DEV, "cay", 4, owner="cay", queue=True).queued.ticket
    positions = []
    for _ in range(3):  # cay keeps polling every 2 s, bob stopped (a ticket's TTL is 4 s)
        clock.t += 2
        positions.append(m.poll(alive.ticket_id, "cay").position)
        m.keepalive(held.lease_id, held.token)
    assert positions == [2, 2, 1]
    assert m.poll(dead.ticket_id, "bob").ticket.state == "lapsed"
    m.release(held.lease_id, held.token)
    assert m.poll(alive.ticket_id, "cay").ticket.state == "granted"
    with pytest.raises(NotFound):  # a ticket is its owner's alone
        m.poll(alive.ticket_id, "bob")


def test_a_dead_holder_loses_the_device_after_one_ttl(clock: Clock):
    m = manager(clock)
    held = m.acquire(DEV, "ann", 5, owner="ann").lease
    waiting = m.acquire(DEV, "bob", 5, owner="bob", queue=True).queued.ticket
    clock.t += 4.9
    assert m.poll(waiting.ticket_id, "bob").ticket.state == "waiting"
    clock.t += 0.2
    granted = m.poll(waiting.ticket_id, "bob")
    assert granted.ticket.state == "granted" and granted.lease.fencing == held.fencing + 1
    with pytest.raises(LeaseConflict):
        m.check(DEV, held.token)
    with pytest.raises(LeaseConflict, match="fencing"):
        m.check(DEV, granted.lease.token, fencing=held.fencing)
    assert m.check(DEV, granted.lease.token, fencing=granted.lease.fencing) is granted.lease


def test_quota_caps_leases_and_refuses_when_spent(clock: Clock):
    m = manager(clock, {"bob": 10.0})
    lease = m.acquire(DEV, "bob", 30, owner="bob").lease
    assert lease.expires_at - clock.t == pytest.approx(10.0)  # never past the quota
    clock.t += 6
    m.keepalive(lease.lease_id, lease.token)
    assert lease.expires_at - clock.t == pytest.approx(4.0)
    clock.t += 4.5
    with pytest.raises(QuotaExceeded):
        m.acquire(DEV, "bob", 30, owner="bob")
    assert m.used_device_s("bob") == pytest.approx(10.0)


def test_a_waiter_whose_quota_ran_out_is_passed_over(clock: Clock):
    quotas = {"bob": 100.0}
    m = manager(clock, quotas)
    held = m.acquire(DEV, "ann", 10, owner="ann").lease
    bob = m.acquire(DEV, "bob", 10, owner="bob", queue=True).queued.ticket
    cay = m.acquire(DEV, "cay", 10, owner="cay", queue=True).queued.ticket
    quotas["bob"] = 0.0  # an admin cut bob's quota while he waited
    m.release(held.lease_id, held.token)
    assert m.poll(bob.ticket_id, "bob").ticket.state == "refused"
    assert m.poll(cay.ticket_id, "cay").ticket.state == "granted"


def test_breaking_needs_a_reason_and_hands_the_device_on(clock: Clock):
    m = manager(clock)
    held = m.acquire(DEV, "ann", 10, owner="ann").lease
    bob = m.acquire(DEV, "bob", 10, owner="bob", queue=True).queued.ticket
    with pytest.raises(InvalidInput):
        m.break_lease(held.lease_id, "  ")
    m.break_lease(held.lease_id, "recalibration")
    assert m.poll(bob.ticket_id, "bob").ticket.state == "granted"
    with pytest.raises(NotFound):
        m.keepalive(held.lease_id, held.token)


def test_a_retried_take_is_the_same_lease_for_the_same_owner_only(clock: Clock):
    m = manager(clock)
    first = m.acquire(DEV, "ann", 10, owner="ann", idempotency_key="k1")
    again = m.acquire(DEV, "ann", 10, owner="ann", idempotency_key="k1")
    assert again.replayed and again.lease is first.lease and again.lease.token == first.lease.token
    with pytest.raises(LeaseConflict):  # someone else replaying ann's key gets no token
        m.acquire(DEV, "mallory", 10, owner="mallory", idempotency_key="k1")
