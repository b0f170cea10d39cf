"""The asynchronous ChangeClothes client: signs, posts, and turns every answer into a result
or a typed `ApiError` from the error table. Knows nothing of the queue or the database."""

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
    SERVICE,
    VERSION,
    ChangeClothesRequest,
    ChangeClothesResult,
)
from runner.credentials import Credentials

log = logging.getLogger(__name__)

REQUEST_CLIENT = f"changeclothes-runner/{__version__}"


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
    body: bytes


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
            return await self._call_once(body)
        except errors.ClockSkewError as exc:
            if not self._learn_offset(exc):
                raise
            log.warning(
                "The service says our clock is off; adjusted by %+.0f s and retrying.",
                self.clock_offset,
            )
            return await self._call_once(body)

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

    async def _call_once(self, body: bytes) -> ChangeClothesResult:
        timestamp = int(self._clock() + self.clock_offset)
        reply = await self._post(body, self.headers(body, timestamp))
        try:
            return parse_reply(reply.status, reply.body)
        except errors.ClockSkewError as exc:
            exc.server_date = reply.date
            raise

    async def _post(self, body: bytes, headers: dict[str, str]) -> _Reply:
        started = time.monotonic()
        try:
            async with self._session.post(self._url, data=body, headers=headers) as resp:
                payload = await resp.read()
                status, date = resp.status, resp.headers.get("Date")
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
        return _Reply(status, date, payload)


def parse_reply(status: int, body: bytes) -> ChangeClothesResult:
    """Classify an HTTP answer by its body, whatever its Content-Type says."""
    response: Any = None
    try:
        document = json.loads(body)
        if isinstance(document, dict):
            response = document.get("Response")
    except (ValueError, UnicodeDecodeError):
        pass
    if not isinstance(response, dict):
        snippet = body[:120].decode("utf-8", "replace").strip()
        if status >= 400:
            raise errors.TransientError(
                errors.HTTP_STATUS, f"HTTP {status}: {snippet}", http_status=status
            )
        raise errors.TransientError(
            errors.BAD_RESPONSE, f"not an API response: {snippet!r}", http_status=status
        )
    request_id = str(response.get("RequestId", ""))
    error = response.get("Error")
    if isinstance(error, dict):
        code = str(error.get("Code") or "")
        if code:
            message = str(error.get("Message") or "")
            raise errors.ApiError.from_code(code, message, request_id, status)
    image = response.get("ResultImage")
    if status >= 500:
        raise errors.TransientError(
            errors.HTTP_STATUS, f"HTTP {status} without an error code", request_id, status
        )
    if not isinstance(image, str) or not image:
        # The SDK passes such an answer off as a success with nothing in it; we retry it.
        raise errors.TransientError(
            errors.BAD_RESPONSE, "the answer has no ResultImage", request_id, status
        )
    return ChangeClothesResult(result_image=image, request_id=request_id)
