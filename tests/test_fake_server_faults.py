"""Injected faults, cut connections and their seeds: every code of the API can be produced,
with the documented body, at the configured share of calls."""

from __future__ import annotations

import time

import aiohttp
import pytest

from runner.fake import FAULT_CODES, FakeConfig, FakeCredentials, parse_fault, serve_fake
from tests.fake_api import assert_error, assert_ok, call, fetch_result, task

pytestmark = pytest.mark.anyio

DEMO = FakeCredentials.demo()

# Every code on the vendor's ChangeClothes page, plus the common ones the runner acts on.
DOCUMENTED = [
    "AuthFailure.UnauthorizedOperation",
    "FailedOperation.GenerateImageFailed",
    "FailedOperation.ImageDecodeFailed",
    "FailedOperation.ImageDownloadError",
    "FailedOperation.ImageResolutionExceed",
    "FailedOperation.ImageSizeExceed",
    "FailedOperation.InnerError",
    "FailedOperation.RequestEntityTooLarge",
    "FailedOperation.RequestTimeout",
    "FailedOperation.RpcFail",
    "FailedOperation.ServerError",
    "FailedOperation.Unknown",
    "InvalidParameter.InvalidParameter",
    "InvalidParameterValue.ImageEmpty",
    "InvalidParameterValue.ParameterValueError",
    "InvalidParameterValue.StyleConflict",
    "InvalidParameterValue.TextLengthExceed",
    "InvalidParameterValue.UrlIllegal",
    "OperationDenied.ImageIllegalDetected",
    "OperationDenied.TextIllegalDetected",
    "RequestLimitExceeded",
    "RequestLimitExceeded.JobNumExceed",
    "ResourceUnavailable.Delivering",
    "ResourceUnavailable.InArrears",
    "ResourceUnavailable.LowBalance",
    "ResourceUnavailable.NotExist",
    "ResourceUnavailable.StopUsing",
    "ResourcesSoldOut.ChargeStatusException",
    "InternalError",
    "LimitExceeded",
    "UnsupportedRegion",
]


def test_every_documented_code_can_be_injected() -> None:
    assert set(DOCUMENTED) <= FAULT_CODES
    assert not any(code.startswith("ClientError.") for code in FAULT_CODES)


async def test_each_injected_code_arrives_with_the_documented_body(
    session: aiohttp.ClientSession,
) -> None:
    for code in sorted(FAULT_CODES):
        async with serve_fake(FakeConfig(credentials=DEMO, faults={code: 1.0})) as server:
            reply = await call(session, server, task(server))
            assert_error(reply, code)
            assert server.stats()["calls"] == {code: 1}


async def test_fault_rate_is_a_share_of_calls_and_replays_with_the_seed(
    session: aiohttp.ClientSession,
) -> None:
    code = "ResourceUnavailable.Delivering"  # answered before the task: quick to draw
    runs = []
    for _ in range(2):
        config = FakeConfig(credentials=DEMO, faults={code: 0.3}, seed=11)
        async with serve_fake(config) as server:
            runs.append([(await call(session, server, task(server))).code for _ in range(30)])
    assert runs[0] == runs[1]
    assert 3 <= runs[0].count(code) <= 18
    assert set(runs[0]) == {code, "OK"}


async def test_generation_failures_take_the_slot_and_the_time(
    session: aiohttp.ClientSession,
) -> None:
    config = FakeConfig(credentials=DEMO, latency=0.3, faults={"FailedOperation.RpcFail": 1.0})
    async with serve_fake(config) as server:
        started = time.monotonic()
        assert_error(await call(session, server, task(server)), "FailedOperation.RpcFail")
        took = time.monotonic() - started
        stats = server.stats()
    assert took >= 0.3
    assert stats["max_in_flight"] == 1


@pytest.mark.timing
async def test_gateway_faults_answer_at_once_without_a_slot(
    session: aiohttp.ClientSession,
) -> None:
    config = FakeConfig(credentials=DEMO, latency=0.3, faults={"RequestLimitExceeded": 1.0})
    async with serve_fake(config) as server:
        started = time.monotonic()
        assert_error(await call(session, server, task(server)), "RequestLimitExceeded")
        took = time.monotonic() - started
        stats = server.stats()
    assert took < 0.25
    assert stats["max_in_flight"] == 0


async def test_faults_come_after_parameter_checks(session: aiohttp.ClientSession) -> None:
    config = FakeConfig(credentials=DEMO, faults={"FailedOperation.InnerError": 1.0})
    async with serve_fake(config) as server:
        reply = await call(session, server, task(server, ClothesType="Hat"))
    assert_error(reply, "InvalidParameterValue.ParameterValueError")


async def test_reset_cuts_the_api_answer_mid_body(session: aiohttp.ClientSession) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO, reset_rate=1.0)) as server:
        with pytest.raises(aiohttp.ClientPayloadError):
            await call(session, server, task(server))
        stats = server.stats()
    assert stats["resets"]["api"] == 1
    assert stats["calls"] == {"OK": 1}  # the work was done (and would be paid for)
    assert stats["results"] == []  # but nothing reached the client


async def test_reset_cuts_result_downloads_too(session: aiohttp.ClientSession) -> None:
    async with serve_fake(FakeConfig(credentials=DEMO, reset_rate=0.5, seed=3)) as server:
        reply = None
        for _ in range(20):
            try:
                reply = await call(session, server, task(server, RspImgType="url"))
                break
            except aiohttp.ClientPayloadError:
                continue
        assert reply is not None
        assert_ok(reply)
        outcomes = []
        for _ in range(12):
            try:
                await fetch_result(session, reply)
                outcomes.append("whole")
            except aiohttp.ClientPayloadError:
                outcomes.append("cut")
        stats = server.stats()
    assert "whole" in outcomes and "cut" in outcomes
    assert stats["resets"]["download"] == outcomes.count("cut")
    assert len(stats["downloads"]) == outcomes.count("whole")


@pytest.mark.parametrize(
    "text",
    ["FailedOperation.InnerError", "NoSuchCode=0.1", "InternalError=lots", "InternalError=1.5"],
)
def test_malformed_fault_specs_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_fault(text)


def test_fault_spec_parses_and_config_refuses_rates_over_one() -> None:
    assert parse_fault("FailedOperation.InnerError=0.25") == ("FailedOperation.InnerError", 0.25)
    with pytest.raises(ValueError):
        FakeConfig(faults={"InternalError": 0.6, "FailedOperation.RpcFail": 0.6})
