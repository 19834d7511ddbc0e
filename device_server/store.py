"""Durable state of a lab server: keys, leases, queue, programmed device state, write results, audit.

SQLAlchemy Core over SQLite by default (one file ``spinhil.db`` in the state directory), written
in WAL mode with ``synchronous=FULL``: a transaction is on disk when its ``COMMIT`` returns, so a
write the server acknowledges after committing survives ``kill -9`` and power loss. Nothing here
is SQLite-specific beyond the connection pragmas (portable types, no SQL dialect features), so a
PostgreSQL URL can replace the file later.

Programmed device state (the driver's ``export_state()``: named arrays) is kept as a snapshot
plus a journal of the cells each acknowledged write changed (flat indices and their new values),
compacted into a new snapshot once the journal outgrows it. Persisting whole arrays per write
would cost a training step megabytes of disk traffic; a write usually changes few cells.

An ``ephemeral`` store (``sqlite://``, in memory) keeps the same tables without a file; device
state is then not journaled at all (nothing could survive anyway): the embedded demo server uses it.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.pool import StaticPool

from trainer_client import codec

#: 2: device state packed with the project's codec (schema 1's NumPy ``.npz`` rows still read; a schema-1
#: database is marked 2 when opened, so that a server of schema 1, which cannot read the new rows, refuses it)
SCHEMA_VERSION = 2
#: Schemas this version opens (and marks as its own).
READABLE_SCHEMAS = (1, 2)
metadata = MetaData()

meta_table = Table("meta", metadata, Column("name", String(64), primary_key=True), Column("value", Text))

api_keys = Table(
    "api_keys", metadata,
    Column("key_id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("created_at", Float, nullable=False),  # Unix time [s]
    Column("expires_at", Float),  # Unix time [s]; NULL: never
    Column("last_used_at", Float),
    Column("revoked_at", Float),
    Column("quota_device_s", Float),  # [s] of device holding; NULL: unlimited
)

leases_table = Table(
    "leases", metadata,
    Column("lease_id", String(32), primary_key=True),
    Column("device_id", String(64), nullable=False, index=True),
    Column("fencing", Integer, nullable=False),
    Column("token_sha256", String(64), nullable=False),
    Column("holder", String(200), nullable=False),
    Column("owner", String(32), nullable=False, index=True),  # API key id ("open" without keys)
    Column("ttl_s", Float, nullable=False),
    Column("acquired_at", Float, nullable=False),  # Unix time [s]
    Column("expires_at", Float, nullable=False),  # Unix time [s]
    Column("ended_at", Float),
    Column("end_reason", String(16)),  # released | expired | broken
    Column("broken_reason", Text),
    Column("idempotency_key", String(200)),
)

fencing_table = Table(
    "fencing", metadata,
    Column("device_id", String(64), primary_key=True),
    Column("fencing", Integer, nullable=False),
)

queue_table = Table(
    "queue", metadata,
    Column("ticket_id", String(32), primary_key=True),
    Column("device_id", String(64), nullable=False, index=True),
    Column("seq", Integer, nullable=False),  # FIFO order across restarts
    Column("holder", String(200), nullable=False),
    Column("owner", String(32), nullable=False),
    Column("ttl_s", Float, nullable=False),
    Column("enqueued_at", Float, nullable=False),
    Column("state", String(16), nullable=False),  # waiting | granted | lapsed | cancelled | refused
    Column("lease_id", String(32)),
    Column("idempotency_key", String(200)),
)

device_snapshots = Table(
    "device_snapshots", metadata,
    Column("device_id", String(64), primary_key=True),
    Column("identity", String(64), nullable=False),  # the device's calibration id: state fits only it
    Column("journal_seq", Integer, nullable=False),  # last journal entry folded in (its entries are deleted)
    Column("data", LargeBinary, nullable=False),  # .npz of the exported arrays
    Column("written_at", Float, nullable=False),
)

device_journal = Table(
    "device_journal", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=False, index=True),
    Column("data", LargeBinary, nullable=False),  # .npz: "<name>.idx" (int64) and "<name>.val" per array
    Column("written_at", Float, nullable=False),
    sqlite_autoincrement=True,  # numbers never reused: the journal's order is its seq
)

idempotency_table = Table(
    "idempotency", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=False),
    Column("operation", String(32), nullable=False),
    Column("key", String(200), nullable=False),
    Column("owner", String(32), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("result", LargeBinary, nullable=False),  # MessagePack of the answer
    Column("created_at", Float, nullable=False),
    sqlite_autoincrement=True,
)

audit_table = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False, index=True),  # Unix time [s]
    Column("request_id", String(100)),
    Column("key_id", String(32), index=True),
    Column("key_name", String(200)),
    Column("role", String(16)),
    Column("method", String(8), nullable=False),
    Column("path", String(500), nullable=False),
    Column("action", String(64)),
    Column("device_id", String(64), index=True),
    Column("lease_id", String(32), index=True),
    Column("fencing", Integer),
    Column("idempotency_key", String(200)),
    Column("status", Integer, nullable=False),
    Column("outcome", String(16), nullable=False),  # ok | replayed | refused | error
    Column("detail", Text),
    Column("device_time_s", Float),
    Column("energy_j", Float),
    sqlite_autoincrement=True,  # an audit record's id is never reused
)

AUDIT_FIELDS = tuple(c.name for c in audit_table.columns)
#: [B] SQLite page of a new state database. A training step's write commits about 0.6 MB of blobs (the
#: written cells and the answer kept for a replay): in 64 KiB pages that commit took 2.0 ms, in SQLite's
#: default 4 KiB pages 3.6 ms (784-512-10 chip, measured); a small table's row (leases, audit) costs a
#: larger page each, which its commit hardly notices.
PAGE_BYTES = 65536
#: Stored write answers are pruned every this many (to the newest ``keep``): fewer than ``keep`` + this are on disk.
REPLAY_PRUNE_EVERY = 256
#: Audit records that need no fsync are committed in batches of this many (Store.queue_audit).
AUDIT_BATCH = 64


class StateMismatch(RuntimeError):
    """The state directory holds programmed state of a device built differently (another lab file)."""


def _pack(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Named arrays as one MessagePack map (the project's codec): a journal entry or a snapshot.
    A training step's entry packs in about 0.05 ms, against 0.6 ms as a NumPy ``.npz`` (a zip).
    Arrays the codec does not carry (complex, dates, objects: a driver's state may hold any) go
    as ``.npz``, which :func:`_unpack` reads too."""
    try:
        return codec.encode(dict(arrays))
    except TypeError:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()


def _unpack(data: bytes) -> dict[str, np.ndarray]:
    """What :func:`_pack` wrote, or a NumPy ``.npz`` (the format of state directories written before)."""
    if data[:4] == b"PK\x03\x04":
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {name: z[name] for name in z.files}
    return dict(codec.decode(data))


def _index_dtype(size: int) -> type:
    """Flat indices of an array of ``size`` cells: 32 bits while they fit (half a journal entry's index bytes)."""
    return np.int32 if size <= np.iinfo(np.int32).max else np.int64


def _bits(a: np.ndarray) -> np.ndarray:
    """The array's bits as unsigned integers: a comparison that sees NaN = NaN and −0 ≠ +0."""
    return a.reshape(-1).view(f"u{a.dtype.itemsize}") if a.dtype.kind in "fiub" else a.reshape(-1)


@dataclass
class DeviceState:
    """What was persisted of one device: the snapshot base and the journal to replay onto it."""

    snapshot: dict[str, np.ndarray] | None
    journal: list[dict[str, np.ndarray]]
    identity: str | None


class StateJournal:
    """Diffs a device's exported state against what was last persisted, per write.

    Holds its own copy of the persisted arrays; ``changes(new)`` returns, per array, the flat
    indices whose bits differ and their new values, and ``accept(changes)`` moves the copy on.
    """

    def __init__(self, baseline: Mapping[str, np.ndarray]) -> None:
        self.persisted = {name: np.array(a, copy=True) for name, a in baseline.items()}
        self.journal_bytes = 0
        self.snapshot_bytes = sum(a.nbytes for a in self.persisted.values())

    def changes(self, state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for name, new in state.items():
            old = self.persisted[name]
            if new.shape != old.shape or new.dtype != old.dtype:
                raise ValueError(f"exported array {name!r} changed shape or dtype")
            idx = np.flatnonzero(_bits(new) != _bits(old))
            if idx.size:
                out[f"{name}.idx"] = idx.astype(_index_dtype(old.size))
                out[f"{name}.val"] = new.reshape(-1)[idx].copy()
        return out

    def tracked(self, changes: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
        """A journal entry from a driver's own list of changed cells (``Driver.state_changes``: per
        array, flat indices and values now), checked against the persisted arrays' names, sizes and
        dtypes (``ValueError``: the driver broke the contract)."""
        out: dict[str, np.ndarray] = {}
        for name, (index, values) in changes.items():
            old = self.persisted.get(name)
            if old is None:
                raise ValueError(f"changed array {name!r} is not part of the exported state")
            index, values = np.asarray(index), np.asarray(values)
            if index.dtype.kind not in "iu" or index.ndim != 1 or values.shape != index.shape or values.dtype != old.dtype:
                raise ValueError(f"changes of {name!r}: expected flat integer indices and as many {old.dtype} values")
            if index.size and (int(index.min()) < 0 or int(index.max()) >= old.size):
                raise ValueError(f"changes of {name!r}: an index outside its {old.size} cells")
            if index.size:
                out[f"{name}.idx"] = index.astype(_index_dtype(old.size), copy=False)
                out[f"{name}.val"] = values
        return out

    def differs(self, state: Mapping[str, np.ndarray]) -> list[str]:
        """The arrays of ``state`` whose bits differ from the persisted copy (as :meth:`changes` compares)."""
        return [name for name, new in state.items()
                if new.shape != self.persisted[name].shape or not np.array_equal(_bits(new), _bits(self.persisted[name]))]

    def accept(self, changes: Mapping[str, np.ndarray]) -> None:
        apply_changes(self.persisted, changes)
        self.journal_bytes += sum(a.nbytes for a in changes.values())

    def due_for_compaction(self) -> bool:
        """A snapshot costs its size once; replaying a journal larger than it costs more."""
        return self.journal_bytes > self.snapshot_bytes


def apply_changes(arrays: dict[str, np.ndarray], changes: Mapping[str, np.ndarray]) -> None:
    """Apply one journal entry (``<name>.idx``/``<name>.val``) to ``arrays`` in place."""
    for key, idx in changes.items():
        if key.endswith(".idx"):
            name = key[:-4]
            arrays[name].reshape(-1)[idx] = changes[name + ".val"]


class Store:
    """The lab's database. Thread-safe: one lock serialises writers within the process."""

    def __init__(self, url: str, durable: bool = True) -> None:
        self.url = url
        self.durable = durable
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if url in ("sqlite://", "sqlite:///:memory:"):
                kwargs["poolclass"] = StaticPool
        self.engine: Engine = create_engine(url, **kwargs)
        #: for records that must survive a server crash but not a power cut (see append_audit)
        self.relaxed_engine: Engine = self.engine
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
            if "poolclass" not in kwargs:  # a file: a second engine whose commits skip the fsync
                self.relaxed_engine = create_engine(url, **kwargs)
                event.listen(self.relaxed_engine, "connect", _sqlite_pragmas_relaxed)
        self._lock = threading.RLock()
        #: audit records waiting to be committed in one batch (see queue_audit)
        self._audit_queue: list[dict[str, Any]] = []
        self._queue_lock = threading.Lock()
        metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            row = conn.execute(select(meta_table.c.value).where(meta_table.c.name == "schema_version")).first()
            if row is None:
                conn.execute(insert(meta_table).values(name="schema_version", value=str(SCHEMA_VERSION)))
            elif int(row[0]) not in READABLE_SCHEMAS:
                raise RuntimeError(f"state database schema {row[0]} is not {SCHEMA_VERSION}; use a new state directory")
            elif int(row[0]) != SCHEMA_VERSION:
                conn.execute(update(meta_table).where(meta_table.c.name == "schema_version")
                             .values(value=str(SCHEMA_VERSION)))

    @classmethod
    def open(cls, state_dir: Path | None, database_url: str | None = None, ephemeral: bool = False) -> "Store":
        """The store of a state directory (``<dir>/spinhil.db``), a database URL, or in memory."""
        if ephemeral:
            return cls("sqlite://", durable=False)
        if database_url:
            return cls(database_url)
        if state_dir is None:
            raise ValueError("give a state directory, a database URL, or ask for an ephemeral store")
        state_dir = Path(state_dir).expanduser()
        state_dir.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{state_dir / 'spinhil.db'}")

    def close(self) -> None:
        self.flush_audit()
        self.engine.dispose()
        self.relaxed_engine.dispose()

    def transaction(self) -> Any:
        """``with store.transaction() as conn:`` — one atomic, durable write."""
        return _Txn(self)

    @contextmanager
    def reading(self) -> Iterator[Any]:
        """A connection for reads, under the same lock: an in-memory database is one shared
        connection, and a reader's rollback on return must not land inside a writer's transaction."""
        with self._lock, self.engine.connect() as conn:
            yield conn

    # ------------------------------------------------------------------ keys
    def add_key(self, row: dict[str, Any]) -> None:
        with self.transaction() as conn:
            conn.execute(insert(api_keys).values(**row))

    def key(self, key_id: str) -> dict[str, Any] | None:
        with self.reading() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).mappings().first()
        return dict(row) if row else None

    def keys(self) -> list[dict[str, Any]]:
        with self.reading() as conn:
            return [dict(r) for r in conn.execute(select(api_keys).order_by(api_keys.c.created_at)).mappings()]

    def set_key(self, key_id: str, **values: Any) -> bool:
        with self.transaction() as conn:
            return conn.execute(update(api_keys).where(api_keys.c.key_id == key_id).values(**values)).rowcount > 0

    # ------------------------------------------------------------------ leases and queue
    def load_leasing(self) -> dict[str, Any]:
        """Everything the lease manager needs at start: fencing counters, live leases, waiting
        tickets (FIFO order), device-seconds used per owner, and recent hold durations."""
        with self.reading() as conn:
            fencing = {r.device_id: r.fencing for r in conn.execute(select(fencing_table))}
            active = [dict(r) for r in conn.execute(
                select(leases_table).where(leases_table.c.ended_at.is_(None))).mappings()]
            tickets = [dict(r) for r in conn.execute(
                select(queue_table).where(queue_table.c.state.in_(("waiting", "granted")))
                .order_by(queue_table.c.seq)).mappings()]
            used = {r.owner: float(r.used or 0.0) for r in conn.execute(
                select(leases_table.c.owner,
                       func.sum(leases_table.c.ended_at - leases_table.c.acquired_at).label("used"))
                .where(leases_table.c.ended_at.is_not(None)).group_by(leases_table.c.owner))}
            holds: dict[str, list[float]] = {}
            for r in conn.execute(select(leases_table.c.device_id, leases_table.c.acquired_at, leases_table.c.ended_at)
                                  .where(leases_table.c.ended_at.is_not(None))
                                  .order_by(leases_table.c.ended_at.desc()).limit(1000)):
                holds.setdefault(r.device_id, []).append(r.ended_at - r.acquired_at)
            seq = conn.execute(select(func.max(queue_table.c.seq))).scalar() or 0
        return {"fencing": fencing, "active": active, "tickets": tickets, "used": used, "holds": holds,
                "queue_seq": int(seq)}

    def save_lease(self, row: dict[str, Any], new: bool) -> None:
        with self.transaction() as conn:
            if new:
                conn.execute(insert(leases_table).values(**row))
                _upsert_fencing(conn, row["device_id"], row["fencing"])
            else:
                conn.execute(update(leases_table).where(leases_table.c.lease_id == row["lease_id"]).values(**row))

    def save_ticket(self, row: dict[str, Any], new: bool) -> None:
        with self.transaction() as conn:
            if new:
                conn.execute(insert(queue_table).values(**row))
            else:
                conn.execute(update(queue_table).where(queue_table.c.ticket_id == row["ticket_id"]).values(**row))

    def lease_row(self, lease_id: str) -> dict[str, Any] | None:
        with self.reading() as conn:
            row = conn.execute(select(leases_table).where(leases_table.c.lease_id == lease_id)).mappings().first()
        return dict(row) if row else None

    # ------------------------------------------------------------------ device state
    def load_device(self, device_id: str) -> DeviceState:
        with self.reading() as conn:
            snap = conn.execute(select(device_snapshots).where(device_snapshots.c.device_id == device_id)).first()
            # a snapshot deletes the journal it folds in: what is left came after it
            rows = conn.execute(select(device_journal.c.data).where(device_journal.c.device_id == device_id)
                                .order_by(device_journal.c.seq)).all()
            identity = snap.identity if snap else None
            if identity is None:
                identity = conn.execute(select(meta_table.c.value)
                                        .where(meta_table.c.name == f"identity:{device_id}")).scalar()
        return DeviceState(snapshot=_unpack(snap.data) if snap else None,
                           journal=[_unpack(r.data) for r in rows], identity=identity)

    def claim_device(self, device_id: str, identity: str) -> None:
        """Record which device build the journal belongs to (checked at every start)."""
        with self.transaction() as conn:
            name = f"identity:{device_id}"
            if conn.execute(select(meta_table.c.value).where(meta_table.c.name == name)).first() is None:
                conn.execute(insert(meta_table).values(name=name, value=identity))

    def journal_write(self, conn: Any, device_id: str, changes: Mapping[str, np.ndarray]) -> None:
        conn.execute(insert(device_journal).values(device_id=device_id, data=_pack(changes), written_at=time.time()))

    def snapshot(self, conn: Any, device_id: str, identity: str, state: Mapping[str, np.ndarray]) -> None:
        """Replace the device's snapshot by ``state`` and drop the journal it includes."""
        seq = conn.execute(select(func.max(device_journal.c.seq))).scalar() or 0
        conn.execute(delete(device_snapshots).where(device_snapshots.c.device_id == device_id))
        conn.execute(insert(device_snapshots).values(device_id=device_id, identity=identity, journal_seq=seq,
                                                     data=_pack(state), written_at=time.time()))
        conn.execute(delete(device_journal).where(device_journal.c.device_id == device_id))

    # ------------------------------------------------------------------ idempotency
    def remember(self, conn: Any, device_id: str, operation: str, key: str, owner: str, fingerprint: str,
                 result: bytes, keep: int) -> None:
        conn.execute(insert(idempotency_table).values(device_id=device_id, operation=operation, key=key, owner=owner,
                                                      fingerprint=fingerprint, result=result, created_at=time.time()))
        last = conn.execute(select(func.max(idempotency_table.c.id))).scalar() or 0
        if last % REPLAY_PRUNE_EVERY == 0:  # prune now and then, keeping the newest ``keep``
            conn.execute(delete(idempotency_table).where(idempotency_table.c.id <= last - keep))

    def replay_keys(self) -> list[tuple[str, str, str]]:
        """``(device, operation, key)`` of every stored answer, oldest first."""
        with self.reading() as conn:
            rows = conn.execute(select(idempotency_table.c.device_id, idempotency_table.c.operation,
                                       idempotency_table.c.key).order_by(idempotency_table.c.id)).all()
        return [(r.device_id, r.operation, r.key) for r in rows]

    def recall(self, device_id: str, operation: str, key: str) -> dict[str, Any] | None:
        with self.reading() as conn:
            row = conn.execute(select(idempotency_table).where(
                idempotency_table.c.device_id == device_id, idempotency_table.c.operation == operation,
                idempotency_table.c.key == key).order_by(idempotency_table.c.id.desc())).mappings().first()
        return dict(row) if row else None

    # ------------------------------------------------------------------ audit
    def append_audit(self, record: Mapping[str, Any], fsync: bool = True) -> None:
        """Append one audit record (after any queued ones, in the same commit). ``fsync=False``
        (measurements, refusals: calls that changed nothing) commits without waiting for the disk:
        the record survives a crash of the server (it is in the operating system's cache) but not
        a power cut, and saves a training step one fsync per measurement."""
        with self._lock:  # taken and inserted under one lock: a concurrent flush cannot commit later records first
            values = [*self._take_queued(), {k: v for k, v in record.items() if k in AUDIT_FIELDS}]
            if fsync:
                with self.transaction() as conn:
                    conn.execute(insert(audit_table), values)
                return
            with self.relaxed_engine.begin() as conn:
                conn.execute(insert(audit_table), values)

    def audit_in(self, conn: Any, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Append one audit record (after any queued ones) within the caller's transaction (:meth:`transaction`,
        which holds the writer lock): a durable write commits its record with its cells. Returns the queued
        records it took, for :meth:`requeue_audit` should the transaction not commit."""
        queued = self._take_queued()
        conn.execute(insert(audit_table), [*queued, {k: v for k, v in record.items() if k in AUDIT_FIELDS}])
        return queued

    def requeue_audit(self, records: list[dict[str, Any]]) -> None:
        """Put back, first in line, queued records taken into a transaction that did not commit."""
        if records:
            with self._queue_lock:
                self._audit_queue = [*records, *self._audit_queue]

    def queue_audit(self, record: Mapping[str, Any]) -> int:
        """Hold a record that needs no fsync for the next batch commit; returns the queue length.

        One commit (and one trip to a worker thread) per :data:`AUDIT_BATCH` records instead of
        per record. Queued records are committed before any later record, before every audit
        query, and at close; a crash of the server loses at most the queued ones (fewer than
        :data:`AUDIT_BATCH`, of calls that changed nothing).
        """
        with self._queue_lock:
            self._audit_queue.append({k: v for k, v in record.items() if k in AUDIT_FIELDS})
            return len(self._audit_queue)

    def _take_queued(self) -> list[dict[str, Any]]:
        with self._queue_lock:
            queued, self._audit_queue = self._audit_queue, []
        return queued

    def flush_audit(self) -> None:
        """Commit the queued audit records (without an fsync)."""
        with self._lock:  # see append_audit: the order taken is the order committed
            queued = self._take_queued()
            if queued:
                with self.relaxed_engine.begin() as conn:
                    conn.execute(insert(audit_table), queued)

    def audit(self, filters: Mapping[str, Any], limit: int, after_id: int = 0) -> list[dict[str, Any]]:
        """Audit records in order, filtered by equality on the named columns, ``since``/``until``
        (Unix time) and ``request_id_prefix``."""
        self.flush_audit()
        q = select(audit_table).where(audit_table.c.id > after_id)
        for name, value in filters.items():
            if value is None:
                continue
            if name == "since":
                q = q.where(audit_table.c.at >= value)
            elif name == "until":
                q = q.where(audit_table.c.at < value)
            elif name == "request_id_prefix":
                q = q.where(audit_table.c.request_id.startswith(value, autoescape=True))
            else:
                q = q.where(audit_table.c[name] == value)
        with self.reading() as conn:
            return [dict(r) for r in conn.execute(q.order_by(audit_table.c.id).limit(limit)).mappings()]


class _Txn:
    """A write transaction under the store's writer lock."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._ctx: Any = None

    def __enter__(self) -> Any:
        self.store._lock.acquire()  # noqa: SLF001
        try:
            self._ctx = self.store.engine.begin()
            return self._ctx.__enter__()
        except BaseException:
            self.store._lock.release()  # noqa: SLF001
            raise

    def __exit__(self, *exc: Any) -> None:
        try:
            self._ctx.__exit__(*exc)
        finally:
            self.store._lock.release()  # noqa: SLF001


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA page_size={PAGE_BYTES}")  # a new database only (an existing one keeps its pages)
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer; a commit appends to the log
    cur.execute("PRAGMA synchronous=FULL")  # fsync at every commit: acknowledged means on disk
    cur.execute("PRAGMA busy_timeout=30000")  # [ms] another process (hil-server keys) may be writing
    cur.close()


def _sqlite_pragmas_relaxed(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA page_size={PAGE_BYTES}")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL: the commit is written, its fsync waits for a checkpoint
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _upsert_fencing(conn: Any, device_id: str, fencing: int) -> None:
    done = conn.execute(update(fencing_table).where(fencing_table.c.device_id == device_id)
                        .values(fencing=fencing)).rowcount
    if not done:
        conn.execute(insert(fencing_table).values(device_id=device_id, fencing=fencing))
