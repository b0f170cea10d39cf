"""API slots: how many calls may be in flight, and the account-wide backoff gate."""

from __future__ import annotations

import logging
import random
import time

import anyio

log = logging.getLogger(__name__)


class AccountBackoff:
    """Throttled answers close the gate for every worker: exponential, full jitter, capped.

    A success resets the exponent. `pause` closes the gate for a fixed time (activation).
    """

    def __init__(self, base: float = 1.0, cap: float = 60.0, rng: random.Random | None = None):
        self.base = base
        self.cap = cap
        self._rng = rng or random.Random()
        self._failures = 0
        self._resume_at = 0.0

    def on_throttle(self) -> float:
        ceiling = min(self.cap, self.base * 2**self._failures)
        self._failures += 1
        delay = self._rng.uniform(0, ceiling)
        self._resume_at = max(self._resume_at, time.monotonic() + delay)
        return delay

    def pause(self, seconds: float) -> None:
        self._resume_at = max(self._resume_at, time.monotonic() + seconds)

    def on_success(self) -> None:
        self._failures = 0

    async def wait(self) -> None:
        # The deadline can move while we sleep, so sleep again until it holds.
        while (delay := self._resume_at - time.monotonic()) > 0:  # noqa: ASYNC110
            await anyio.sleep(delay)


class SlotLease:
    """One API slot held for one call. `release` may be called from every path that ends the
    call: only the first gives the slot back."""

    def __init__(self, limiter: anyio.CapacityLimiter) -> None:
        self._limiter = limiter
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self._limiter.release_on_behalf_of(self)


class ApiSlots:
    """A limiter of `limit` calls, whose effective size shrinks when someone else is using
    the account (JobNumExceed while we are under our limit) and grows back one by one."""

    def __init__(self, limit: int):
        self.limit = limit
        self._limiter = anyio.CapacityLimiter(limit)
        self._successes_since_change = 0
        self._warned = False

    @property
    def effective(self) -> int:
        return int(self._limiter.total_tokens)

    @property
    def in_flight(self) -> int:
        return self._limiter.borrowed_tokens

    async def acquire(self) -> SlotLease:
        """Take a slot; the lease gives it back, from whichever task ends the call."""
        lease = SlotLease(self._limiter)
        await self._limiter.acquire_on_behalf_of(lease)
        return lease

    def on_job_num_exceed(self, in_flight_at_send: int) -> None:
        """Multiplicative decrease when the account is full but we are not the ones filling it."""
        if in_flight_at_send > self.effective or self.effective <= 1:
            return
        new = max(1, self.effective // 2)
        if not self._warned:
            log.warning(
                "The account is busy although this runner has %d of %d calls in flight. "
                "Either --concurrency is above the account's ChangeClothes limit (1 unless you "
                "bought more: see the console's resource packages), or another client uses "
                "the account (the console's usage shows calls not made from here). Lowering "
                "concurrency to %d.",
                in_flight_at_send,
                self.effective,
                new,
            )
            self._warned = True
        self._limiter.total_tokens = new
        self._successes_since_change = 0

    def on_success(self) -> None:
        """Additive increase: one more slot after a full round of successes."""
        if self.effective >= self.limit:
            return
        self._successes_since_change += 1
        if self._successes_since_change >= self.effective:
            self._limiter.total_tokens = self.effective + 1
            self._successes_since_change = 0
