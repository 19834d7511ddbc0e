"""Programmed device state that survives restarts and crashes, and write results that replay after one.

At start every device that can export its state (:meth:`Driver.export_state`) gets back what
was persisted for it: the last snapshot with the journal replayed on top, checked against the
device's identity (a lab file that changed the chip is refused, not silently mixed). After each
acknowledged write (``program``, ``update``) the server calls :meth:`DurableDevices.persist_write`
under the device lock, before answering: one transaction holds the cells the write changed and
the answer stored under its ``Idempotency-Key``, committed with an fsync. A ``probe`` is persisted
the same way (its pulses switch a chip's test junctions), without its answer. So a write that was
answered is on disk, and a write whose answer was lost in a crash is either wholly there (and
its retry replays the stored answer) or wholly absent (and its retry applies it): never half.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from device_server.drivers.base import Driver
from device_server.lab import Lab
from device_server.store import REPLAY_PRUNE_EVERY, StateJournal, StateMismatch, Store, apply_changes
from trainer_client import codec

log = logging.getLogger("device_server.durable")
#: Write answers kept on disk for replay after a crash (newest first; a retry comes within seconds).
DURABLE_REPLAYS = 256


class DurableDevices:
    """Restores devices at start and journals their writes."""

    def __init__(self, store: Store, lab: Lab) -> None:
        self.store = store
        self.journals: dict[str, StateJournal] = {}
        #: devices whose driver's list of changed cells was found incomplete: diffed whole
        self.untracked: set[str] = set()
        #: (device, operation, key) of the answers stored on disk for a replay, oldest first: the store keeps
        #: fewer than the newest DURABLE_REPLAYS + REPLAY_PRUNE_EVERY (Store.remember); an older key is not on disk
        self.replay_keys: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._keys_lock = threading.Lock()
        if not store.durable:
            return
        for entry in store.replay_keys():
            self._kept(entry)
        for device_id, driver in lab.devices.items():
            try:
                fresh = driver.export_state()
            except NotImplementedError:
                continue
            self.journals[device_id] = self._restore(device_id, driver, fresh)

    def _restore(self, device_id: str, driver: Driver, fresh: dict[str, np.ndarray]) -> StateJournal:
        identity = driver.state_identity()
        saved = self.store.load_device(device_id)
        if saved.identity is not None and saved.identity != identity:
            raise StateMismatch(
                f"the state directory holds programmed state of device {device_id!r} built as {saved.identity}, "
                f"but the lab now builds it as {identity} (lab file changed?); use another state directory"
            )
        if saved.snapshot is not None or saved.journal:
            # arrays a newer driver exports but the saved state predates start from the fresh device
            arrays = {name: np.array(a, copy=True) for name, a in {**fresh, **(saved.snapshot or {})}.items()}
            for entry in saved.journal:
                apply_changes(arrays, entry)
            try:
                driver.restore_state(arrays)
            except ValueError as exc:
                raise StateMismatch(f"device {device_id!r}: saved state does not fit: {exc}") from exc
            log.info("device %s: restored programmed state (snapshot %s, %d journal entries)", device_id,
                     "yes" if saved.snapshot is not None else "no", len(saved.journal))
        self.store.claim_device(device_id, identity)
        if saved.snapshot is None and not saved.journal:
            # first start: the base the journal will apply to is on disk too, not rebuilt by
            # whatever code runs the next start (a changed model must not mix old and new cells)
            with self.store.transaction() as conn:
                self.store.snapshot(conn, device_id, identity, fresh)
        return StateJournal(driver.export_state())

    def persist_write(self, device_id: str, driver: Driver, operation: str, idempotency_key: str | None,
                      owner: str, fingerprint: object, content: dict[str, Any], encoded: bytes | None = None,
                      audit: Mapping[str, Any] | None = None) -> None:
        """Make a write durable (its changed cells and its answer) before it is acknowledged.

        The changed cells are the driver's own list when it keeps one (``Driver.state_changes``),
        else the difference between its whole exported state and the persisted copy. A snapshot
        (when the journal has outgrown it) is written from the whole state, and the driver's list
        is checked against it then: a driver found to miss cells is diffed whole from then on.
        ``encoded``: the answer already encoded as MessagePack (what is stored for a replay);
        ``audit``: the call's audit record, committed in the same transaction.
        """
        if not self.store.durable:
            return
        journal = self.journals.get(device_id)
        compact, changes, state = False, {}, None
        if journal is not None:
            compact = journal.due_for_compaction()
            tracked = self._tracked(device_id, driver, journal)
            if compact or tracked is None:
                state = driver.export_state()
            if not compact:
                changes = tracked if tracked is not None else journal.changes(state)
        taken: list[dict[str, Any]] = []
        try:
            with self.store.transaction() as conn:
                if compact:
                    self.store.snapshot(conn, device_id, driver.state_identity(), state)
                elif changes:
                    self.store.journal_write(conn, device_id, changes)
                if idempotency_key:
                    self.store.remember(conn, device_id, operation, idempotency_key, owner, str(fingerprint),
                                        encoded if encoded is not None else codec.encode(content, codec.MSGPACK),
                                        DURABLE_REPLAYS)
                if audit is not None:
                    taken = self.store.audit_in(conn, audit)
        except BaseException:
            self.store.requeue_audit(taken)  # the measurements' records it took are still to be committed
            raise
        # committed: only now does the persisted copy (the rollback's target) move on
        if idempotency_key:
            self._kept((device_id, operation, idempotency_key))
        if compact:
            if tracked is not None:
                self._check_tracked(device_id, journal, tracked, state)
            self.journals[device_id] = StateJournal(state)
        elif journal is not None:
            journal.accept(changes)

    def _tracked(self, device_id: str, driver: Driver, journal: StateJournal) -> dict[str, np.ndarray] | None:
        """The journal entry of the driver's own list of changed cells; None when it keeps none (or
        was found to break the contract: then logged, and diffed whole from now on)."""
        tracked = driver.state_changes()  # asked even when unused: the driver's list starts afresh
        if tracked is None or device_id in self.untracked:
            return None
        try:
            return journal.tracked(tracked)
        except ValueError as exc:
            self.untracked.add(device_id)
            log.error("device %s: the driver's list of changed cells is malformed (%s); its state is diffed "
                      "whole from now on", device_id, exc)
            return None

    def _check_tracked(self, device_id: str, journal: StateJournal, entry: dict[str, np.ndarray],
                       state: dict[str, np.ndarray]) -> None:
        """Once a snapshot has committed, before it replaces ``journal``: do the persisted arrays moved by
        the driver's list of changes equal the whole exported state? If not, log it and diff that device
        whole from now on."""
        journal.accept(entry)  # the copy is dropped for the snapshot's anyway
        wrong = journal.differs(state)
        if wrong:
            self.untracked.add(device_id)
            log.error("device %s: the driver's list of changed cells missed changes in %s; its state is "
                      "persisted whole from now on (the snapshot just written holds it all)", device_id, wrong)

    def _kept(self, entry: tuple[str, str, str]) -> None:
        with self._keys_lock:  # devices' threads commit side by side
            self.replay_keys[entry] = None
            self.replay_keys.move_to_end(entry)
            if len(self.replay_keys) > DURABLE_REPLAYS + REPLAY_PRUNE_EVERY:
                self.replay_keys.popitem(last=False)

    def may_replay(self, device_id: str, operation: str, key: str) -> bool:
        """Whether an answer to ``key`` may be stored on disk (kept before this start, or since):
        only then is it worth a look (:meth:`recall`) that costs a query on the device's thread."""
        return self.store.durable and (device_id, operation, key) in self.replay_keys

    def rollback(self, device_id: str, driver: Driver) -> None:
        """Put the device back to its last persisted state after a write that was not acknowledged.

        A write the driver applied but the server could not make durable (or that broke the
        contract) must not become durable later as part of the next write's diff, nor be applied
        twice by a retry. Without a journal (an ephemeral server) there is nothing to go back to.
        """
        journal = self.journals.get(device_id)
        if journal is not None:
            driver.restore_state({name: np.array(a, copy=True) for name, a in journal.persisted.items()})
            log.warning("device %s: a write that was not acknowledged was rolled back", device_id)

    def recall(self, device_id: str, operation: str, key: str, fingerprint: object) -> dict[str, Any] | None:
        """The stored answer of a write made under ``key`` (before a restart); ``None`` if unknown.

        A different body under the same key is the caller's mistake: ``ValueError``.
        """
        if not self.store.durable:
            return None
        row = self.store.recall(device_id, operation, key)
        if row is None:
            return None
        if row["fingerprint"] != str(fingerprint):
            raise ValueError(key)
        return codec.decode(row["result"], codec.MSGPACK)
