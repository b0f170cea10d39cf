"""Account limits: tasks in flight, request rate, and halting account states."""

from __future__ import annotations

import statistics
import time
from typing import Any

import aiohttp
import anyio
import pytest

from runner.fake import FakeConfig, FakeCredentials, FakeServer, serve_fake
from runner.fake.chaos import LatencySampler
from tests.fake_api import Reply, assert_error, assert_ok, call, task

pytestmark = pytest.mark.anyio

DEMO = FakeCredentials.demo()


async def _burst(
    session: aiohttp.ClientSession, server: FakeServer, bodies: list[dict[str, Any]]
) -> list[Reply]:
    """Send the calls a few milliseconds apart, all while the first is still running."""
    replies: list[Reply | None] = [None] * len(bodies)

    async def one(i: int) -> None:
        await anyio.sleep(0.02 * i)
        replies[i] = await call(session, server, bodies[i])

    async with anyio.create_task_group() as tg:
        for i in range(len(bodies)):
            tg.start_soon(one, i)
    return [r for r in replies if r is not None]


async def test_second_task_while_one_runs_gets_job_num_exceed(
    session: aiohttp.ClientSession,
) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO, latency=0.4)) as server:
        first, second = await _burst(session, server, [task(server), task(server)])
        assert_ok(first)
        assert_error(second, "RequestLimitExceeded.JobNumExceed")
        # the slot is free again once the first task has answered
        assert_ok(await call(session, server, task(server)))
        stats = server.stats()
    assert stats["max_in_flight"] == 1
    assert stats["limit_violations"] == 1
    assert stats["calls"] == {"OK": 2, "RequestLimitExceeded.JobNumExceed": 1}
    assert stats["in_flight"] == 0


@pytest.mark.timing
async def test_bought_concurrency_runs_that_many_tasks_at_once(
    session: aiohttp.ClientSession,
) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO, concurrency=3, latency=0.4)) as server:
        started = time.monotonic()
        replies = await _burst(session, server, [task(server) for _ in range(5)])
        elapsed = time.monotonic() - started
        stats = server.stats()
    codes = [r.code for r in replies]
    assert codes == ["OK"] * 3 + ["RequestLimitExceeded.JobNumExceed"] * 2
    assert stats["max_in_flight"] == 3
    assert stats["limit_violations"] == 2
    assert elapsed < 0.4 * 2  # the three ran side by side, not one after another


async def test_job_num_exceed_comes_after_auth_and_before_parameters(
    session: aiohttp.ClientSession,
) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO, latency=0.4)) as server:

        async def busy() -> None:
            assert_ok(await call(session, server, task(server)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(busy)
            await anyio.sleep(0.1)
            signed_wrong = await call(session, server, task(server), secret_key="wrong")
            bad_type = await call(session, server, task(server, ClothesType="Hat"))
        stats = server.stats()
    assert_error(signed_wrong, "AuthFailure.SignatureFailure")
    assert_error(bad_type, "RequestLimitExceeded.JobNumExceed")
    assert stats["limit_violations"] == 1


async def test_request_rate_limit(session: aiohttp.ClientSession) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO, rate_limit=2)) as server:
        # invalid bodies are answered at once, so only the rate decides
        body = task(server, ClothesType="Hat")
        codes = [(await call(session, server, body)).code for _ in range(4)]
        await anyio.sleep(0.6)  # a token comes back every half second
        later = await call(session, server, body)
        stats = server.stats()
    value_error = "InvalidParameterValue.ParameterValueError"
    assert codes == [value_error, value_error, "RequestLimitExceeded", "RequestLimitExceeded"]
    assert later.code == value_error
    assert stats["rate_limited"] == 2
    assert stats["limit_violations"] == 0


@pytest.mark.parametrize(
    ("state", "code"),
    [
        ("arrears", "ResourceUnavailable.InArrears"),
        ("low-balance", "ResourceUnavailable.LowBalance"),
        ("stopped", "ResourceUnavailable.StopUsing"),
    ],
)
async def test_account_state_halts_every_call_until_it_recovers(
    session: aiohttp.ClientSession, state: str, code: str
) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO, account_state=state)) as server:
        assert_error(await call(session, server, task(server)), code)
        # even an invalid body: the account is checked first
        assert_error(await call(session, server, task(server, ClothesType="Hat")), code)
        # but a bad signature is still a bad signature
        wrong = await call(session, server, task(server), secret_key="wrong")
        assert_error(wrong, "AuthFailure.SignatureFailure")
        async with session.post(server.url + "/_admin/account-state", json={"state": "ok"}) as resp:
            assert resp.status == 200
        assert_ok(await call(session, server, task(server)))
        assert server.stats()["account_state"] == "ok"


async def test_admin_account_state_refuses_unknown_states(
    session: aiohttp.ClientSession,
) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO)) as server:
        async with session.post(
            server.url + "/_admin/account-state", json={"state": "bankrupt"}
        ) as resp:
            assert resp.status == 400
        server.set_account_state("arrears")
        assert_error(await call(session, server, task(server)), "ResourceUnavailable.InArrears")


@pytest.mark.parametrize("dist", ["fixed", "uniform", "lognormal"])
def test_latency_distributions_keep_the_mean_and_replay_with_a_seed(dist: str) -> None:
    first, second = LatencySampler(2.0, dist, seed=7), LatencySampler(2.0, dist, seed=7)
    assert [first.sample() for _ in range(20)] == [second.sample() for _ in range(20)]
    sampler = LatencySampler(2.0, dist, seed=7)
    many = [sampler.sample() for _ in range(4000)]
    assert statistics.fmean(many) == pytest.approx(2.0, rel=0.06)
    assert all(s >= 0 for s in many)
    if dist == "fixed":
        assert set(many) == {2.0}
    else:
        assert statistics.pstdev(many) > 0.3


@pytest.mark.timing
async def test_latency_holds_the_slot_for_that_long(session: aiohttp.ClientSession) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO, latency=0.3)) as server:
        started = time.monotonic()
        assert_ok(await call(session, server, task(server)))
        took = time.monotonic() - started
        # a refused call does not wait
        started = time.monotonic()
        await call(session, server, task(server, ClothesType="Hat"))
        refused_took = time.monotonic() - started
    assert took >= 0.3
    assert refused_took < 0.2


async def test_knobs_can_be_given_as_keywords_of_serve_fake() -> None:
    async with serve_fake(FakeConfig(concurrency=1), concurrency=2, credentials=DEMO) as server:
        assert server.config.concurrency == 2
        assert server.url.startswith("http://127.0.0.1:")
    with pytest.raises(TypeError):
        async with serve_fake(concurency=2):
            pass
    with pytest.raises(ValueError):
        async with serve_fake(concurrency=0):
            pass
