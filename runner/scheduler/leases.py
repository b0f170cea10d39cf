"""This runner's API slots: its own share (--concurrency) and the account's leases.

A call needs both: one of this process's slots, and, when the account's concurrency is set,
a lease of the account, taken in the same transaction as the job's claim
(runner/store/leases.py). When the account's concurrency
is set, the adaptive number (halved on JobNumExceed, grown back on successes) is the
account's, kept in the database, so that runners sharing the account shrink it once between
them; when it is not set, each runner adapts its own share as a lone runner does.

The reactions to answers come from code that must not wait (the claim loop must not send
into a closed gate), so they are noted here and written by the next `start`.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta

import anyio

from runner.scheduler.faults import LOCAL_FAULTS
from runner.scheduler.heartbeat import Liveness
from runner.scheduler.slots import AccountBackoff, ApiSlots, SlotLease
from runner.store import Job, Store
from runner.store import leases as account
from runner.store.leases import Account

log = logging.getLogger(__name__)


class Lease:
    """One call's slot of this process and its lease of the account. `release` may be called
    from every path that ends the call: only the first gives them back."""

    def __init__(self, store: Store, lease_id: int | None, slot: SlotLease | None) -> None:
        self._store = store
        self._lease_id: int | None = lease_id
        self._slot = slot

    async def release(self) -> None:
        lease_id, self._lease_id = self._lease_id, None
        if lease_id is not None:
            # The account's lease first: whoever the freed slot wakes must find it free.
            with anyio.CancelScope(shield=True):
                try:
                    await account.release(self._store, lease_id)
                except LOCAL_FAULTS as exc:  # it goes when this runner leaves
                    log.warning("Could not give back an API lease: %s", exc)
        if self._slot is not None:
            self._slot.release()


@dataclass(frozen=True)
class Started:
    job: Job
    lease: Lease


class SharedSlots:
    """This process's share of the account's slots (--concurrency) and its leases."""

    def __init__(self, store: Store, runner_id: str, stale_after: timedelta, share: int) -> None:
        self.store = store
        self.runner_id = runner_id
        self.stale_after = stale_after
        self.local = ApiSlots(share)
        self.liveness = Liveness(stale_after)
        self.account = Account(None, None)  # as the last claim saw it
        # Jobs claimed in one statement with the one being started, waiting for a slot each.
        self._claimed: collections.deque[tuple[Job, int | None]] = collections.deque()
        self._shrink_from: Account | None = None
        self._successes = 0
        self._warned = False

    @property
    def in_flight(self) -> int:
        return self.local.in_flight

    async def start(self, backoff: AccountBackoff, batch: str | None) -> Started | None:
        """A job to call and the slot to call it in. None: no job is due, or every lease of
        the account is held (either way, wait for work). DeclaredDead: this runner must stop.

        With the account's number set, a slot of this process comes first, then the job
        with a lease of the account (one transaction), so no lease is held idle. Without
        it, the job is claimed first, while the current call runs, so that a freed slot is
        refilled at once, as a lone runner does.
        """
        if self.account.limit is None or self._claimed:
            return await self._claim_then_slot(backoff, batch)
        slot = await self.local.acquire()
        try:
            await backoff.wait()  # an account-wide pause holds the slot too
            claim = await self._claim(batch)
        except BaseException:
            slot.release()
            raise
        if claim.job is None or claim.lease_id is None:
            slot.release()
            return None
        return Started(claim.job, Lease(self.store, claim.lease_id, slot))

    async def _claim_then_slot(self, backoff: AccountBackoff, batch: str | None) -> Started | None:
        if not self._claimed:
            # The free slots' worth of jobs in one statement, and at least half a round,
            # claimed while the current calls run: slots freed while the claim commits are
            # refilled at once, and at a high rate of short calls one claim feeds many.
            free = self.local.effective - self.local.in_flight
            claim = await self._claim(batch, up_to=max(free, (self.local.effective + 1) // 2))
            if claim.job is None:
                return None
            # The first claim may find the account's number set: that job comes with a lease.
            self._claimed.append((claim.job, claim.lease_id))
            self._claimed.extend((job, None) for job in claim.more)
        job, lease_id = self._claimed.popleft()
        try:
            slot = await self.local.acquire()
            await backoff.wait()
            # The wait may have been long (a paused process, a machine asleep): a job taken
            # over meanwhile is not called for again. No one takes over before this runner's
            # heartbeat is --stale-after old, so soon after a renewal the job is still ours
            # without asking the database.
            if not self.liveness.fresh() and not await self.store.owns(job.id):
                slot.release()
                await Lease(self.store, lease_id, None).release()
                return None
        except BaseException:
            with anyio.CancelScope(shield=True):
                await Lease(self.store, lease_id, None).release()
                await self.store.release(job.id)
            raise
        return Started(job, Lease(self.store, lease_id, slot))

    async def release_unused(self) -> None:
        """Jobs claimed ahead of their slot that the run will not call go back to the queue
        (a killed runner's go back when another runner or the next start takes over)."""
        claimed, self._claimed = list(self._claimed), collections.deque()
        if claimed:
            with anyio.CancelScope(shield=True), contextlib.suppress(*LOCAL_FAULTS):
                for _, lease_id in claimed:
                    await Lease(self.store, lease_id, None).release()
                await self.store.release_many([job.id for job, _ in claimed])

    async def _claim(self, batch: str | None, up_to: int = 1) -> account.Claim:
        await self._write_reactions()
        started = self.liveness.now()
        claim = await account.claim_with_lease(
            self.store, self.runner_id, self.stale_after, batch=batch, up_to=up_to
        )
        self.liveness.renewed(started)  # the claim renewed this runner's heartbeat
        newly_set = self.account.concurrency is None and claim.account.concurrency is not None
        if newly_set and self.local.limit > (claim.account.concurrency or 0):
            log.info(
                "--concurrency %d is more than the account's %s (account set-concurrency): "
                "the runners share that many calls in flight.",
                self.local.limit,
                claim.account.concurrency,
            )
        self.account = claim.account
        return claim

    def on_success(self) -> None:
        if self.account.limit is None:
            self.local.on_success()
        elif self.account.effective is not None:
            self._successes += 1

    def on_job_num_exceed(self, in_flight_at_send: int) -> None:
        """The account is full, yet our runners kept within its number: someone else is
        using it."""
        if self.account.limit is None:
            self.local.on_job_num_exceed(in_flight_at_send)
        else:
            self._shrink_from = self.account

    async def _write_reactions(self) -> None:
        seen, self._shrink_from = self._shrink_from, None
        successes, self._successes = self._successes, 0
        with contextlib.suppress(*LOCAL_FAULTS):  # the next claim reports a broken database
            if seen is not None:
                new = await account.shrink(self.store, seen)
                if new is not None and not self._warned:
                    self._warned = True
                    log.warning(
                        "The account is busy although this queue's runners had at most %d "
                        "calls in flight: someone else is using it. Lowering the account's "
                        "concurrency to %d for every runner.",
                        seen.limit,
                        new,
                    )
            if successes:
                await account.grow(self.store, successes)
