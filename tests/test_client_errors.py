"""Every answer the service can give becomes a result or an error of the right class,
over real HTTP to a local server."""

from __future__ import annotations

import email.utils
import time

import pytest

from runner.api import errors
from runner.api.client import ChangeClothesClient, Timeouts, http_session
from runner.api.request import ChangeClothesRequest
from runner.credentials import Credentials
from tests.scripted_server import Answer, error_body, ok_body, scripted_server

pytestmark = pytest.mark.anyio

CREDS = Credentials("AKIDtest", "s3cret-key-value")
REQ = ChangeClothesRequest("http://127.0.0.1/m.jpg", "http://127.0.0.1/c.jpg", "Upper-body")


async def call(*answers: Answer, timeouts: Timeouts | None = None) -> object:
    async with scripted_server(*answers) as server, http_session(timeouts or Timeouts()) as session:
        client = ChangeClothesClient(session, CREDS, server.url, "ap-singapore")
        return await client.change_clothes(REQ)


# One representative per code of the error table, with the class it must land in.
TABLE_CASES = [
    ("RequestLimitExceeded", errors.ThrottledError),
    ("RequestLimitExceeded.JobNumExceed", errors.ThrottledError),
    ("FailedOperation.GenerateImageFailed", errors.TransientError),
    ("FailedOperation.InnerError", errors.TransientError),
    ("FailedOperation.RequestTimeout", errors.TransientError),
    ("FailedOperation.RpcFail", errors.TransientError),
    ("FailedOperation.ServerError", errors.TransientError),
    ("FailedOperation.Unknown", errors.TransientError),
    ("FailedOperation.ImageDownloadError", errors.TransientError),
    ("InternalError", errors.TransientError),
    ("SomeBrandNew.CodeNobodyKnows", errors.TransientError),
    ("FailedOperation.ImageDecodeFailed", errors.BadRowError),
    ("FailedOperation.ImageResolutionExceed", errors.BadRowError),
    ("FailedOperation.ImageSizeExceed", errors.BadRowError),
    ("FailedOperation.RequestEntityTooLarge", errors.BadRowError),
    ("InvalidParameter.InvalidParameter", errors.BadRowError),
    ("InvalidParameterValue.UrlIllegal", errors.BadRowError),
    ("InvalidParameterValue.LogoParamErr", errors.BadRowError),
    ("InvalidParameterValue.ImageEmpty", errors.BadRowError),
    ("MissingParameter", errors.BadRowError),
    ("OperationDenied.ImageIllegalDetected", errors.BadRowError),
    ("OperationDenied.TextIllegalDetected", errors.BadRowError),
    ("AuthFailure.SignatureFailure", errors.HaltError),
    ("AuthFailure.SecretIdNotFound", errors.HaltError),
    ("AuthFailure.InvalidAuthorization", errors.HaltError),
    ("AuthFailure.UnauthorizedOperation", errors.HaltError),
    ("ResourceUnavailable.InArrears", errors.HaltError),
    ("ResourceUnavailable.LowBalance", errors.HaltError),
    ("ResourceUnavailable.NotExist", errors.HaltError),
    ("ResourceUnavailable.StopUsing", errors.HaltError),
    ("ResourcesSoldOut.ChargeStatusException", errors.HaltError),
    ("LimitExceeded", errors.HaltError),
    ("UnsupportedRegion", errors.HaltError),
    ("ResourceUnavailable.Delivering", errors.ServiceActivatingError),
    # Common codes outside the vendor's page, classed by what a retry would do.
    ("ServiceUnavailable", errors.TransientError),
    ("InvalidParameterValue.ParameterValueError", errors.BadRowError),
    ("InvalidParameterValue.StyleConflict", errors.BadRowError),
    ("InvalidParameterValue.TextLengthExceed", errors.BadRowError),
    ("UnknownParameter", errors.BadRowError),
    ("RequestSizeLimitExceeded", errors.BadRowError),
    ("AuthFailure.TokenFailure", errors.HaltError),
    ("InvalidAction", errors.HaltError),
    ("NoSuchVersion", errors.HaltError),
    ("UnauthorizedOperation", errors.HaltError),
]


@pytest.mark.parametrize(("code", "expected"), TABLE_CASES)
async def test_error_code_lands_in_its_class(code: str, expected: type[errors.ApiError]) -> None:
    with pytest.raises(expected) as info:
        await call(Answer(error_body(code, "the message", "rid-7")))
    assert type(info.value) is expected
    assert (info.value.code, info.value.message, info.value.request_id) == (
        code,
        "the message",
        "rid-7",
    )
    assert info.value.http_status == 200


def test_every_code_named_by_the_table_has_a_case() -> None:
    covered = {code for code, _ in TABLE_CASES}
    table_codes = {
        rule.code for rule in errors.ERROR_TABLE if not rule.code.startswith("ClientError.")
    }
    # Family rows (prefix=True) are covered by a member; the rest must be named exactly.
    missing = {
        c
        for c in table_codes - covered
        if not any(member.startswith(c + ".") for member in covered)
        and c not in {"AuthFailure.SignatureExpire"}  # has its own tests below
    }
    assert not missing, f"codes with no test: {sorted(missing)}"


async def test_halt_error_carries_advice() -> None:
    with pytest.raises(errors.HaltError) as info:
        await call(Answer(error_body("ResourceUnavailable.InArrears")))
    assert "top it up" in info.value.advice


async def test_success_returns_result_image_and_request_id() -> None:
    result = await call(Answer(ok_body("http://127.0.0.1:1/x.jpg", "rid-ok")))
    assert result.result_image == "http://127.0.0.1:1/x.jpg"  # type: ignore[attr-defined]
    assert result.request_id == "rid-ok"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "text/plain", "text/html", ""]
)
async def test_error_recognised_whatever_the_content_type(content_type: str) -> None:
    with pytest.raises(errors.HaltError):
        await call(Answer(error_body("ResourceUnavailable.LowBalance"), content_type=content_type))


async def test_success_without_result_image_is_not_taken_for_a_result() -> None:
    with pytest.raises(errors.TransientError) as info:
        await call(Answer({"Response": {"RequestId": "r"}}))
    assert info.value.code == errors.BAD_RESPONSE


async def test_html_error_page_is_an_outage_not_a_job_failure() -> None:
    with pytest.raises(errors.OutageError) as info:
        await call(Answer("<html><body>502 Bad Gateway</body></html>", 502, "text/html"))
    assert info.value.code == errors.NOT_THE_API
    assert info.value.http_status == 502


async def test_non_json_200_is_transient() -> None:
    with pytest.raises(errors.TransientError) as info:
        await call(Answer("not json at all", 200, "text/plain"))
    assert info.value.code == errors.BAD_RESPONSE


async def test_5xx_with_json_but_no_error_is_transient() -> None:
    with pytest.raises(errors.TransientError):
        await call(Answer(ok_body(), status=503))


async def test_timeout_is_transient() -> None:
    with pytest.raises(errors.TransientError) as info:
        await call(Answer(ok_body(), delay=2.0), timeouts=Timeouts(connect=1, read=0.3, total=1))
    assert info.value.code == errors.TIMEOUT


async def test_dropped_connection_is_transient() -> None:
    with pytest.raises(errors.TransientError) as info:
        await call(Answer(drop=True))
    assert info.value.code == errors.CONNECTION


async def test_refused_connection_is_an_outage() -> None:
    async with http_session() as session:
        # A port that was just free: nothing listens there.
        async with scripted_server() as server:
            url = server.url
        client = ChangeClothesClient(session, CREDS, url, "ap-singapore")
        with pytest.raises(errors.OutageError) as info:
            await client.change_clothes(REQ)
    assert info.value.code == errors.UNREACHABLE


async def test_signature_expire_corrects_clock_and_retries_once() -> None:
    server_now = time.time()
    date = email.utils.formatdate(server_now, usegmt=True)
    skew = 3600.0  # our clock runs an hour fast

    async with (
        scripted_server(
            Answer(error_body("AuthFailure.SignatureExpire"), headers={"Date": date}),
            Answer(ok_body()),
        ) as server,
        http_session() as session,
    ):
        client = ChangeClothesClient(
            session, CREDS, server.url, "ap-singapore", clock=lambda: time.time() + skew
        )
        await client.change_clothes(REQ)
        first, second = (int(s.headers["X-TC-Timestamp"]) for s in server.seen)
    assert len(server.seen) == 2
    assert first - server_now > skew - 5
    assert abs(second - server_now) < 5, "the retry must be signed with the server's time"
    assert client.clock_offset == pytest.approx(-skew, abs=5)


async def test_signature_expire_twice_raises() -> None:
    date = email.utils.formatdate(time.time(), usegmt=True)
    expired = Answer(error_body("AuthFailure.SignatureExpire"), headers={"Date": date})
    async with scripted_server(expired, expired, Answer(ok_body())) as server:
        async with http_session() as session:
            client = ChangeClothesClient(session, CREDS, server.url, "ap-singapore")
            with pytest.raises(errors.ClockSkewError):
                await client.change_clothes(REQ)
        assert len(server.seen) == 2, "retried once, not more"
