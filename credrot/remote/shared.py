"""The pool's state kept in step with the store, once per locked transaction.

:meth:`SharedPool.pull` runs after the file store loaded ``state.yaml`` (under the pool
lock): what other machines changed since this one last looked is merged in, and newer
credentials are written into their slots. :meth:`SharedPool.push` runs before the save:
what this transaction changed goes to the store as counter deltas and marks (through
``APPLY``: deadlines only move later), and changed slots are offered as the next
generation. A transaction's marks, counters and in-flight leases go in one round trip
(a pipeline of scripts), and a process that fetched less than :data:`PULL_FRESH` ago
does not fetch again: a call costs three round trips (fetch + send at its lease, send
at its settlement), each answered from the server's memory.

The store failing never fails a call: a warning is said once, the local files carry on
(fail open), marks made meanwhile are remembered in ``.credrot-store.json`` and replayed,
and a token refreshed meanwhile is offered when the store answers again. Only a store
that *refuses* us (wrong key, password or ACL) is an error.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from credrot import state as st
from credrot.errors import ConfigError, CredrotError
from credrot.remote import cache, creds, leases, merge, scripts, words
from credrot.remote.client import Batch, StoreDown, call, connect, run_script
from credrot.remote.seal import Sealer
from credrot.remote.settings import StoreSettings, load_key

if TYPE_CHECKING:
    from credrot.pool.context import Pool

#: Seconds every process of a machine leaves an unreachable store alone before retrying.
RETRY_AFTER = 1.0
#: Seconds a process works from what it last fetched before it asks the store again:
#: a call's settlement right after its lease sends its news without fetching first
#: (another machine's news of that second arrives with the next call).
PULL_FRESH = 1.0
#: Seconds between two tries for a refresh lease another machine holds.
LEASE_POLL = 0.05


class SharedPool:
    def __init__(self, pool: Pool, settings: StoreSettings) -> None:
        self.pool = pool
        self.settings = settings
        self.keys = scripts.Keys(settings.prefix, pool.profile.name)
        self.identity = cache.identity(settings, self.keys)
        self._client: Any = None
        self._sealer: Sealer | None = None
        self._key_checked = False
        self._mark = cache.SyncMark(self.identity)
        self._mark_text: cache.Saved = ()
        self._before: dict[int, st.AccountState] = {}
        self._lines: dict[int, str] = {}
        #: When each running call on an account started (a success clears older marks).
        self.started: dict[int, list[float]] = {}
        self._leases: dict[int, list[str]] = {}
        self._settling: dict[int, float] = {}
        self._queue: list[tuple[str, int, str]] = []
        #: When this process last fetched the store's news (``time.monotonic``).
        self._pulled_at = -math.inf

    def __repr__(self) -> str:
        return f"SharedPool({self.identity!r})"

    # ------------------------------------------------------------ connection
    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = connect(self.settings)
        return self._client

    @property
    def sealer(self) -> Sealer:
        if self._sealer is None:
            key, where = load_key()
            if key is None:
                raise ConfigError(words.no_key(self.settings.shown, where))
            self._sealer = Sealer(key, where)
        return self._sealer

    def _ready(self) -> None:
        if not self._key_checked:
            creds.ensure_key(self.client, self.keys, self.sealer)
            self._key_checked = True

    def _went_down(self, exc: StoreDown) -> None:
        if self._mark.down_until <= time.time():
            self._mark.down_until = time.time() + RETRY_AFTER
        if not any("is unreachable" in n for n in self.pool.notices):
            self.pool.notice(f"{exc}; using the local pool until it answers")

    # ---------------------------------------------------------------- pull
    def pull(self, state: st.PoolState) -> None:
        """Merge the store's news into ``state`` and the slots (the caller holds the lock)."""
        self._mark, self._mark_text = cache.load(self.pool.home, self.identity)
        mark = self._mark
        if time.time() >= mark.down_until:
            if time.monotonic() - self._pulled_at >= PULL_FRESH:
                try:
                    call(self.settings, lambda: self._pull(state))
                    mark.down_until = 0.0
                    self._pulled_at = time.monotonic()
                except StoreDown as exc:
                    self._went_down(exc)
        else:  # another process of this machine found it down a moment ago
            self._went_down(StoreDown(f"store {self.settings.shown} is unreachable"))
        self._snapshot(state)
        self._mark_text = cache.save(self.pool.home, mark, self._mark_text)

    def _pull(self, state: st.PoolState) -> None:
        self._ready()
        mark, now = self._mark, time.time()
        got = self._pull_script(self.client, mark)
        rev, epoch, reset = int(got[0]), got[1].decode(), int(got[2])
        if reset and mark.epoch:  # the store was emptied (a restart without persistence)
            mark.fps.clear()  # so every slot is offered again
            mark.accounts_mtime = 0
            mark.dirty.update(state.accounts)
        mark.epoch = epoch
        # marks made while the store was down, taken before the store's news replaces them
        pending = {
            index: merge.pending_mark(index, state.accounts[index], now)
            for index in sorted(mark.dirty)
            if index in state.accounts
        }
        for pos in range(3, len(got) - 2, 3):
            index, flat, gen = int(got[pos]), got[pos + 1], got[pos + 2]
            if flat:
                merge.to_local(merge.pairs(flat), state.account(index), now)
            if gen and int(gen) > mark.gens.get(index, -1):
                fetched = creds.fetch(self.client, self.keys, self.sealer, index)
                if fetched is not None:
                    creds.install(self.pool, mark, index, *fetched)
                    state.account(index)
        mark.rev = rev
        for index, args in pending.items():
            if args is not None:
                self._apply(state, index, args)
        mark.dirty.clear()
        self._seen(creds.offer_changed(self.client, self.keys, self.sealer, self.pool, mark))

    def peek(self, state: st.PoolState) -> None:
        """Merge the store's account news into a state read without the lock (a view);
        nothing is written."""
        mark, _ = cache.load(self.pool.home, self.identity)
        if time.time() < mark.down_until:
            return
        try:
            got = call(self.settings, lambda: self._pull_script(self.client, mark))
        except StoreDown as exc:
            self.pool.notice(f"{exc}; showing the local pool")
            return
        now = time.time()
        for pos in range(3, len(got) - 2, 3):
            if got[pos + 1]:
                merge.to_local(merge.pairs(got[pos + 1]), state.account(int(got[pos])), now)

    def _pull_script(self, client: Any, mark: cache.SyncMark) -> Any:
        keys = [self.keys.rev, self.keys.changes, self.keys.epoch]
        fresh = os.urandom(8).hex()
        return run_script(client, scripts.PULL, keys, [mark.rev, self.keys.base, fresh, mark.epoch])

    # ---------------------------------------------------------------- push
    def _snapshot(self, state: st.PoolState) -> None:
        table = state.accounts
        self._lines = dict(table._lines)
        # the windows are nested dicts the transaction changes in place
        self._before = {
            i: replace(a, windows=copy.deepcopy(a.windows)) for i, a in table._objs.items()
        }

    def _changes(self, state: st.PoolState) -> dict[int, tuple[st.AccountState, st.AccountState]]:
        found = {}
        for index, acct in state.accounts._objs.items():
            before = self._before.get(index)
            if before is None:
                line = self._lines.get(index)
                before = st.AccountTable({index: line})[index] if line else st.AccountState()
            if vars(before) != vars(acct):
                found[index] = (before, acct)
        return found

    def push(self, state: st.PoolState) -> None:
        """Send what this transaction changed (the caller still holds the lock)."""
        mark, now = self._mark, time.time()
        changed = self._changes(state)
        if now < mark.down_until:
            mark.dirty.update(changed)
            self._queue.clear()
            self._settling.clear()
        else:
            try:
                call(self.settings, lambda: self._push(state, changed, now))
            except StoreDown as exc:
                self._went_down(exc)
                mark.dirty.update(changed)
                self._queue.clear()
        self._mark_text = cache.save(self.pool.home, mark, self._mark_text)

    def _push(
        self,
        state: st.PoolState,
        changed: dict[int, tuple[st.AccountState, st.AccountState]],
        now: float,
    ) -> None:
        self._ready()
        settling, self._settling = self._settling, {}
        batch, applied = Batch(self.client), []
        for index, (before, after) in changed.items():
            runs = self.started.get(index)
            started = settling.get(index, runs[0] if runs else None)
            args = merge.change(index, before, after, now, started)
            if args is not None:
                batch.script(scripts.APPLY, self._acct_keys(index), args)
                applied.append(index)
        queue, self._queue = self._queue, []
        for what, index, lease_id in queue:
            if what == "begin":
                leases.queue_begin(batch, self.keys, index, lease_id, leases.INFLIGHT_TTL_MS)
            else:
                leases.queue_end(batch, self.keys, index, lease_id)
        if len(batch):  # one round trip for every mark, counter and lease of the transaction
            got = batch.run()
            self._seen([int(answer[0]) for answer in got[: len(applied)]])
            for index, answer in zip(applied, got, strict=False):
                merge.to_local(merge.pairs(answer[1]), state.account(index), time.time())
        self._seen(creds.offer_changed(self.client, self.keys, self.sealer, self.pool, self._mark))

    def _acct_keys(self, index: int) -> list[str]:
        return [self.keys.rev, self.keys.changes, self.keys.acct(index)]

    def _apply(self, state: st.PoolState, index: int, args: list[str]) -> None:
        got = run_script(self.client, scripts.APPLY, self._acct_keys(index), args)
        self._seen([int(got[0])])
        merge.to_local(merge.pairs(got[1]), state.account(index), time.time())

    def _seen(self, revs: list[int]) -> None:
        """Advance the mark past our own changes only when nobody else's came between."""
        for rev in sorted(revs):
            if rev == self._mark.rev + 1:
                self._mark.rev = rev

    # -------------------------------------------------------------- leases
    def began(self, index: int, started: float) -> None:
        """A call starts on ``index``: counted in flight when this transaction pushes."""
        self.started.setdefault(index, []).append(started)
        lease_id = leases.holder_id()
        self._leases.setdefault(index, []).append(lease_id)
        self._queue.append(("begin", index, lease_id))

    def ended(self, index: int) -> None:
        """The call on ``index`` is being settled (in this transaction)."""
        runs, ids = self.started.get(index), self._leases.get(index)
        if runs:
            self._settling[index] = runs.pop(0)
        if ids:
            self._queue.append(("end", index, ids.pop(0)))

    # ------------------------------------------------------- refresh lease
    def take_refresh(self, index: int, deadline: float) -> leases.Held | None:
        """This machine's hold on the account's refresh lease in the store, once no other
        machine has it; None when ``deadline`` (a ``time.monotonic`` value) passed first.
        A store that does not answer holds nothing back: the local lease alone rules."""
        holder = leases.holder_id()
        ttl = leases.REFRESH_TTL_MS
        while True:
            if time.time() < self._mark.down_until:
                return leases.UNHELD
            try:
                got = call(
                    self.settings,
                    lambda: leases.take_refresh(self.client, self.keys, index, ttl, holder),
                )
            except StoreDown as exc:
                self._went_down(exc)
                return leases.UNHELD
            if got is not None:
                self._pulled_at = -math.inf  # the holder before may have stored a new token
                self.pool.events.audit(
                    "refresh-lease", to=index, reason=f"held in the store, fence {got.fence}"
                )
                return leases.Held(got, leases.Renewer(self.client, self.keys, got, ttl))
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(LEASE_POLL, left))

    def give_refresh(self, held: object) -> None:
        """Release a hold: a token refreshed under it reaches the store first (the
        settling transaction offered it already, unless the call was interrupted)."""
        if not isinstance(held, leases.Held) or held.lease is None:
            return
        if held.renewer is not None:
            held.renewer.stop()
        lease = held.lease
        slot = self.pool.slots.read(lease.index)
        if slot.raw is not None and self._mark.fps.get(lease.index) != cache.fingerprint(slot.raw):
            with contextlib.suppress(CredrotError), self.pool.store.transaction():
                pass  # the sync offers the changed slot
        with contextlib.suppress(StoreDown):
            call(self.settings, lambda: leases.give_refresh(self.client, self.keys, lease))
