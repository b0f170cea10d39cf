"""The retry decision follows the error table, and transient retries are bounded."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import anyio
import pytest

from runner.api.errors import ApiError
from runner.scheduler.policy import Action, RetryPolicy, decide
from runner.scheduler.slots import AccountBackoff, ApiSlots

NOW = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=3, retry_delay=10, retry_delay_cap=25)


def _decide(code: str, attempts: int = 0) -> Action:
    return decide(ApiError.from_code(code, "m"), attempts, NOW, POLICY, random.Random(1)).action


@pytest.mark.parametrize(
    ("code", "action"),
    [
        ("RequestLimitExceeded.JobNumExceed", Action.BACKOFF),
        ("FailedOperation.InnerError", Action.RETRY),
        ("FailedOperation.ImageDecodeFailed", Action.FAIL),
        ("ResourceUnavailable.InArrears", Action.HALT),
        ("AuthFailure.SignatureExpire", Action.HALT),
        ("ResourceUnavailable.Delivering", Action.WAIT),
    ],
)
def test_action_per_class(code: str, action: Action) -> None:
    assert _decide(code) is action


def test_throttle_never_exhausts_attempts() -> None:
    assert _decide("RequestLimitExceeded", attempts=99) is Action.BACKOFF


def test_transient_fails_on_the_last_attempt() -> None:
    assert _decide("FailedOperation.RpcFail", attempts=1) is Action.RETRY
    assert _decide("FailedOperation.RpcFail", attempts=2) is Action.FAIL


def test_transient_delay_grows_and_is_capped() -> None:
    rng = random.Random(3)
    delays = [POLICY.transient_delay(n, rng) for n in (1, 2, 3, 4)]
    assert 5 <= delays[0] <= 10
    assert 10 <= delays[1] <= 20
    assert all(d <= 25 for d in delays)
    decision = decide(ApiError.from_code("InternalError", "m"), 0, NOW, POLICY, rng)
    assert decision.not_before is not None and decision.not_before > NOW


def test_backoff_is_full_jitter_capped_and_reset_by_success() -> None:
    backoff = AccountBackoff(base=1.0, cap=8.0, rng=random.Random(5))
    delays = [backoff.on_throttle() for _ in range(10)]
    assert all(0 <= d <= 8.0 for d in delays)
    assert max(delays[:1]) <= 1.0  # the first pause is at most the base
    backoff.on_success()
    assert backoff.on_throttle() <= 1.0


@pytest.mark.anyio
async def test_slots_shrink_when_someone_else_fills_the_account_and_grow_back() -> None:
    slots = ApiSlots(4)
    slots.on_job_num_exceed(in_flight_at_send=1)
    assert slots.effective == 2
    slots.on_job_num_exceed(in_flight_at_send=1)
    assert slots.effective == 1
    slots.on_job_num_exceed(in_flight_at_send=1)
    assert slots.effective == 1  # never below one
    for _ in range(1 + 2 + 3):
        slots.on_success()
    assert slots.effective == 4
    # Over our own limit the account is full because of us: no decrease.
    slots.on_job_num_exceed(in_flight_at_send=5)
    assert slots.effective == 4
    # The lowered limit really bounds acquisition.
    slots.on_job_num_exceed(in_flight_at_send=1)
    await slots.acquire()
    await slots.acquire()
    with anyio.move_on_after(0.1) as scope:
        await slots.acquire()
    assert scope.cancelled_caught
