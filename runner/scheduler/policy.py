"""What a call came to (`Outcome`) and what to do with a job after an API error: a pure
function of the job and the error."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from runner.api.errors import ApiError, ErrorClass
from runner.api.request import ChangeClothesResult


class Action(StrEnum):
    BACKOFF = "backoff"  # account busy: requeue uncharged, back off account-wide
    RETRY = "retry"  # charge an attempt, requeue with not_before
    FAIL = "fail"  # mark failed with the code and message
    HALT = "halt"  # stop the run, leave the job queued
    WAIT = "wait"  # service activating: long account-wide pause, job stays queued
    OUTAGE = "outage"  # the endpoint is down: requeue uncharged, pause account-wide, probe


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    retry_delay: float = 5.0  # seconds before the first retry of a transient failure
    retry_delay_cap: float = 600.0

    def transient_delay(self, attempts: int, rng: random.Random) -> float:
        """Exponential with full jitter; `attempts` already includes the failed one."""
        ceiling = min(self.retry_delay_cap, self.retry_delay * 2 ** max(attempts - 1, 0))
        return rng.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class Decision:
    action: Action
    not_before: datetime | None = None


def decide(
    error: ApiError, attempts_so_far: int, now: datetime, policy: RetryPolicy, rng: random.Random
) -> Decision:
    """`attempts_so_far` counts charged attempts before this one."""
    match error.error_class:
        case ErrorClass.THROTTLE:
            return Decision(Action.BACKOFF)
        case ErrorClass.BAD_ROW:
            return Decision(Action.FAIL)
        case ErrorClass.HALT | ErrorClass.CLOCK:
            # A clock error that survived the client's one corrected retry will not heal.
            return Decision(Action.HALT)
        case ErrorClass.WAIT:
            return Decision(Action.WAIT)
        case ErrorClass.OUTAGE:
            return Decision(Action.OUTAGE)
        case _:
            attempts = attempts_so_far + 1
            if attempts >= policy.max_attempts:
                return Decision(Action.FAIL)
            delay = policy.transient_delay(attempts, rng)
            return Decision(Action.RETRY, now + timedelta(seconds=delay))


@dataclass(frozen=True)
class Paid:
    """The API answered with a result: the call is billed."""

    result: ChangeClothesResult
    sent_at: datetime
    latency_ms: int


@dataclass(frozen=True)
class Refused:
    """The API (or the way to it) answered with an error; its class says what it means."""

    error: ApiError
    latency_ms: int
    in_flight_at_send: int


Outcome = Paid | Refused
