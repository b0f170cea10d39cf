"""The asynchronous ChangeClothes client: signs, posts, and turns every answer into a result
or a typed `ApiError` from the error table. Knows nothing of the queue or the database.

Nothing the network sends is trusted: the answer is read up to a cap (never whole), and its
fields are checked for type and size before anything is returned.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from yarl import URL

from runner import __version__
from runner.api import errors, signing
from runner.api.request import (
    ACTION,
    MAX_ERROR_FIELD_CHARS,
    MAX_REQUEST_ID_CHARS,
    MAX_RESULT_BYTES,
    MAX_RESULT_URL_CHARS,
    SERVICE,
    VERSION,
    ChangeClothesRequest,
    ChangeClothesResult,
    base64_length,
    reply_limit,
)
from runner.credentials import Credentials

log = logging.getLogger(__name__)

REQUEST_CLIENT = f"changeclothes-runner/{__version__}"
READ_CHUNK = 64 * 1024

# Failures before the request reached anything: nothing was sent, so nothing was paid, and
# the next call would meet the same network. aiohttp wraps refused connections, DNS, TLS and
# proxy failures in ClientConnectorError.
_UNREACHABLE_ERRORS = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.ServerFingerprintMismatch,
)


@dataclass(frozen=True)
class Timeouts:
    """Seconds. `read` bounds the wait for the answer of one synchronous generation."""

    connect: float = 10.0
    read: float = 180.0
    total: float = 240.0

    def to_aiohttp(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=self.total, sock_connect=self.connect, sock_read=self.read
        )


@asynccontextmanager
async def http_session(
    timeouts: Timeouts = Timeouts(), connections: int = 64
) -> AsyncIterator[aiohttp.ClientSession]:
    """One pooled session for a whole run: API calls and result downloads reuse connections."""
    connector = aiohttp.TCPConnector(limit=connections, keepalive_timeout=30)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeouts.to_aiohttp(), headers={"User-Agent": REQUEST_CLIENT}
    ) as session:
        yield session


@dataclass(frozen=True)
class _Reply:
    status: int
    date: str | None
    content_type: str | None
    body: bytes | bytearray


class ChangeClothesClient:
    """Calls ChangeClothes at `endpoint` with `credentials`, one request per call.

    A clock skew reported by the service (`AuthFailure.SignatureExpire`) is corrected from
    the server's `Date` header and the request is signed again and retried once.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        credentials: Credentials,
        endpoint: str,
        region: str,
        *,
        language: str = "en-US",
        clock: Callable[[], float] = time.time,
        max_result_bytes: int = MAX_RESULT_BYTES,
    ) -> None:
        url = URL(endpoint)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"endpoint must be an http(s) URL, not {endpoint!r}")
        self._session = session
        self._credentials = credentials
        self._url = url.with_path("/")
        # The signed host is what the Host header carries: the endpoint's host, and its port
        # when one is given.
        self.host = url.raw_authority
        self.region = region
        self.language = language
        self._clock = clock
        self.clock_offset = 0.0  # server time minus ours, learned from SignatureExpire
        self.max_result_bytes = max_result_bytes  # a Base64 result's image, decoded

    def __repr__(self) -> str:
        return f"ChangeClothesClient(host={self.host!r}, region={self.region!r})"

    def headers(self, body: bytes, timestamp: int) -> dict[str, str]:
        """Every header of one signed request."""
        creds = self._credentials
        headers = {
            "Content-Type": signing.JSON_CONTENT_TYPE,
            "Host": self.host,
            "X-TC-Action": ACTION,
            "X-TC-Version": VERSION,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Region": self.region,
            "X-TC-Language": self.language,
            "X-TC-RequestClient": REQUEST_CLIENT,
            "Authorization": signing.authorization(
                creds.secret_id, creds.secret_key, self.host, body, timestamp, SERVICE
            ),
        }
        if creds.token:
            headers["X-TC-Token"] = creds.token
        return headers

    async def change_clothes(self, request: ChangeClothesRequest) -> ChangeClothesResult:
        """One paid generation. Returns the result or raises an `ApiError` subclass."""
        body = request.to_bytes()
        try:
            return await self._call_once(body, request.rsp_img_type)
        except errors.ClockSkewError as exc:
            if not self._learn_offset(exc):
                raise
            log.warning(
                "The service says our clock is off; adjusted by %+.0f s and retrying.",
                self.clock_offset,
            )
            return await self._call_once(body, request.rsp_img_type)

    def _learn_offset(self, exc: errors.ClockSkewError) -> bool:
        server_date = exc.server_date
        if not server_date:
            return False
        try:
            server_time = parsedate_to_datetime(server_date).timestamp()
        except (TypeError, ValueError):
            return False
        self.clock_offset = server_time - self._clock()
        return True

    async def _call_once(self, body: bytes, rsp_img_type: str | None) -> ChangeClothesResult:
        timestamp = int(self._clock() + self.clock_offset)
        limit = reply_limit(rsp_img_type, self.max_result_bytes)
        reply = await self._post(body, self.headers(body, timestamp), limit)
        try:
            return parse_reply(
                reply.status,
                reply.body,
                content_type=reply.content_type,
                rsp_img_type=rsp_img_type,
                max_result_bytes=self.max_result_bytes,
            )
        except errors.ClockSkewError as exc:
            exc.server_date = reply.date
            raise

    async def _post(self, body: bytes, headers: dict[str, str], limit: int) -> _Reply:
        started = time.monotonic()
        try:
            # The API never redirects; a redirect comes from something in between.
            async with self._session.post(
                self._url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                payload = await _read_capped(resp, limit)
                status = resp.status
                date = resp.headers.get("Date")
                content_type = resp.headers.get("Content-Type")
        except _UNREACHABLE_ERRORS as exc:
            raise errors.OutageError(
                errors.UNREACHABLE, f"cannot reach {self.host}: {type(exc).__name__}: {exc}"
            ) from None
        except TimeoutError as exc:
            raise errors.TransientError(
                errors.TIMEOUT, f"no answer from {self.host} in time ({type(exc).__name__})"
            ) from None
        except aiohttp.ClientError as exc:
            raise errors.TransientError(errors.CONNECTION, f"{type(exc).__name__}: {exc}") from None
        log.debug(
            "%s %s -> HTTP %d, %d bytes in %.2f s",
            ACTION,
            self.host,
            status,
            len(payload),
            time.monotonic() - started,
        )
        return _Reply(status, date, content_type, payload)


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytearray:
    """The body, or TransientError once more than `limit` bytes are announced or arrive: an
    endless or huge answer costs at most `limit` bytes of memory."""
    declared = resp.content_length
    if declared is not None and declared > limit:
        resp.close()  # drop the connection rather than drain the body
        raise errors.TransientError(
            errors.RESPONSE_TOO_LARGE,
            f"the answer announces {declared} bytes, more than the cap of {limit}",
            http_status=resp.status,
        )
    payload = bytearray()
    async for chunk in resp.content.iter_chunked(READ_CHUNK):
        if len(payload) + len(chunk) > limit:
            resp.close()
            raise errors.TransientError(
                errors.RESPONSE_TOO_LARGE,
                f"the answer is longer than the cap of {limit} bytes",
                http_status=resp.status,
            )
        payload += chunk
    return payload


def parse_reply(
    status: int,
    body: bytes | bytearray,
    *,
    content_type: str | None = None,
    rsp_img_type: str | None = None,
    max_result_bytes: int = MAX_RESULT_BYTES,
) -> ChangeClothesResult:
    """Classify an HTTP answer by its body, whatever its Content-Type says, and check every
    field used for type and size. `rsp_img_type` is what was asked for (None: either form)."""
    response = _api_response(body)
    if response is None:
        raise _not_the_api(status, body, content_type)
    request_id = _request_id(response.get("RequestId", ""), status)
    error = response.get("Error")
    if isinstance(error, dict):
        code = error.get("Code")
        if code:
            if not _short_text(code, MAX_ERROR_FIELD_CHARS):
                raise errors.TransientError(
                    errors.BAD_RESPONSE, "the error Code is not short text", request_id, status
                )
            message = error.get("Message")
            message = message[:MAX_ERROR_FIELD_CHARS] if isinstance(message, str) else ""
            raise errors.ApiError.from_code(code, message, request_id, status)
    if status >= 500:
        raise errors.TransientError(
            errors.HTTP_STATUS, f"HTTP {status} without an error code", request_id, status
        )
    image = response.get("ResultImage")
    if not isinstance(image, str) or not image:
        # The SDK passes such an answer off as a success with nothing in it; we retry it.
        raise errors.TransientError(
            errors.BAD_RESPONSE, "the answer has no ResultImage", request_id, status
        )
    _check_result_image(image, request_id, status, rsp_img_type, max_result_bytes)
    return ChangeClothesResult(result_image=image, request_id=request_id)


def _api_response(body: bytes | bytearray) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    response = document.get("Response") if isinstance(document, dict) else None
    return response if isinstance(response, dict) else None


def _not_the_api(status: int, body: bytes | bytearray, content_type: str | None) -> errors.ApiError:
    """An answer without an API body. A 3xx, a 5xx or an HTML page comes from a proxy, a
    gateway or a captive portal: the endpoint's trouble, not the job's."""
    head = bytes(body[:512])
    snippet = _printable(head[:120].decode("utf-8", "replace").strip())
    html = "html" in (content_type or "").lower() or head.lstrip()[:1] == b"<"
    if html or status >= 500 or 300 <= status < 400:
        return errors.OutageError(
            errors.NOT_THE_API,
            f"HTTP {status} from something that is not the API: {snippet}",
            http_status=status,
        )
    if status >= 400:
        return errors.TransientError(
            errors.HTTP_STATUS, f"HTTP {status}: {snippet}", http_status=status
        )
    return errors.TransientError(
        errors.BAD_RESPONSE, f"not an API response: {snippet!r}", http_status=status
    )


def _request_id(value: object, status: int) -> str:
    if not _short_text(value, MAX_REQUEST_ID_CHARS):
        raise errors.TransientError(
            errors.BAD_REQUEST_ID,
            f"the RequestId is not text of at most {MAX_REQUEST_ID_CHARS} printable characters",
            http_status=status,
        )
    assert isinstance(value, str)
    return value


def _check_result_image(
    image: str, request_id: str, status: int, rsp_img_type: str | None, max_result_bytes: int
) -> None:
    is_url = image.startswith(("http://", "https://"))
    if rsp_img_type is not None and is_url != (rsp_img_type == "url"):
        raise errors.TransientError(
            errors.BAD_RESULT_IMAGE,
            f"asked for RspImgType {rsp_img_type}, the ResultImage is "
            + ("a URL" if is_url else "not an http(s) URL"),
            request_id,
            status,
        )
    if is_url:
        if not _valid_url(image):
            raise errors.TransientError(
                errors.BAD_RESULT_IMAGE,
                f"the ResultImage is not an http(s) URL of at most {MAX_RESULT_URL_CHARS} "
                "characters",
                request_id,
                status,
            )
    elif len(image) > base64_length(max_result_bytes):
        raise errors.TransientError(
            errors.RESULT_TOO_LARGE,
            f"the Base64 ResultImage is larger than the cap of {max_result_bytes} bytes",
            request_id,
            status,
        )


def _valid_url(text: str) -> bool:
    if len(text) > MAX_RESULT_URL_CHARS or not text.isprintable() or " " in text:
        return False
    try:
        url = URL(text)
    except ValueError:
        return False
    return url.scheme in ("http", "https") and bool(url.host)


def _short_text(value: object, limit: int) -> bool:
    return isinstance(value, str) and len(value) <= limit and value.isprintable()


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)
