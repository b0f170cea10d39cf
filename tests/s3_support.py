"""A real S3-compatible server for tests: moto's server mode in its own process on 127.0.0.1.

Its werkzeug log (one line per request) is the request log tests read to prove what was, or
was not, uploaded. moto does not check credentials or a presigned URL's expiry; tests that need
expiry enforced put `ExpiryCheckingFront` before it.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from runner.objects import ObjectStoreConfig

ACCESS_KEY = "AKIDTESTS3ACCESSKEY01"
SECRET_KEY = "s3-test-secret-key-never-to-be-seen-0123456789"
REGION = "us-east-1"
START_TIMEOUT = 60.0
_REQUEST_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})')


@dataclass
class MotoServer:
    endpoint: str
    log_path: Path
    process: subprocess.Popen[bytes]
    _buckets: set[str] = field(default_factory=set)

    @property
    def config(self) -> ObjectStoreConfig:
        return ObjectStoreConfig(endpoint=self.endpoint, region=REGION)

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment whose AWS chain finds the test keys (and no profile file)."""
        env = dict(os.environ if base is None else base)
        env.update(
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            AWS_DEFAULT_REGION=REGION,
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_EC2_METADATA_DISABLED="true",
            CHANGECLOTHES_S3_ENDPOINT=self.endpoint,
        )
        env.pop("AWS_SESSION_TOKEN", None)
        env.pop("AWS_PROFILE", None)
        return env

    def boto(self) -> Any:
        """A plain boto3 client (the reference client) for setting up and checking."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def make_bucket(self, name: str) -> str:
        if name not in self._buckets:
            self.boto().create_bucket(Bucket=name)
            self._buckets.add(name)
        return name

    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request the server has logged so far."""
        text = self.log_path.read_text(errors="replace")
        return [(m["method"], m["path"], int(m["status"])) for m in _REQUEST_LINE.finditer(text)]

    def objects(self, bucket: str, prefix: str = "") -> dict[str, int]:
        """Key → size of every object under `prefix`."""
        found: dict[str, int] = {}
        for page in (
            self.boto().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        ):
            for item in page.get("Contents", []):
                found[item["Key"]] = int(item["Size"])
        return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def start_moto(log_path: Path) -> MotoServer:
    port = _free_port()
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while not _answers(port):
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited: {log_path.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("moto server did not start listening")
        time.sleep(0.05)
    return MotoServer(f"http://127.0.0.1:{port}", log_path, process)


def stop_moto(server: MotoServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture
def moto_server(tmp_path: Path) -> Iterator[MotoServer]:
    """A fresh moto server for one test (its own process, so state never leaks)."""
    server = start_moto(tmp_path / "moto.log")
    try:
        yield server
    finally:
        stop_moto(server)


# Hop-by-hop and framing headers: aiohttp sets its own on each side of the front.
_NOT_FORWARDED = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}
_EXPIRED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Request has expired</Message></Error>"
)


@dataclass
class ExpiryCheckingFront:
    """What the front saw: presigned GETs it let through and those it refused as expired."""

    endpoint: str
    passed: int = 0
    refused: int = 0


def presign_expired(query: Any, now: datetime) -> bool:
    """A presigned (SigV4 query) request whose X-Amz-Date + X-Amz-Expires has passed."""
    date, expires = query.get("X-Amz-Date"), query.get("X-Amz-Expires")
    if date is None or expires is None:
        return False
    signed_at = datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return now > signed_at + timedelta(seconds=int(expires))


# Answers a front gives in the store's stead: None forwards the request to moto unchanged.
Refusal = Callable[[web.Request], web.Response | None]


@contextlib.asynccontextmanager
async def _front(moto: MotoServer, refuse: Refusal) -> AsyncIterator[str]:
    """An HTTP front on 127.0.0.1 before `moto` (its endpoint yielded): a request `refuse`
    answers gets that answer, every other one is forwarded unchanged."""

    async def forward(request: web.Request) -> web.StreamResponse:
        refused = refuse(request)
        if refused is not None:
            return refused
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        body = await request.read()
        async with session.request(
            request.method,
            moto.endpoint + request.path_qs,
            headers=headers,
            data=body,
            allow_redirects=False,
            auto_decompress=False,
        ) as reply:
            payload = await reply.read()
            kept = {k: v for k, v in reply.headers.items() if k.lower() not in _NOT_FORWARDED}
            return web.Response(status=reply.status, headers=kept, body=payload)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    async with aiohttp.ClientSession() as session:
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            yield f"http://{host}:{port}"
        finally:
            await runner.cleanup()


@contextlib.asynccontextmanager
async def expiry_checking_front(moto: MotoServer) -> AsyncIterator[ExpiryCheckingFront]:
    """An HTTP front on 127.0.0.1 before `moto`, which does not check a presigned URL's
    expiry (nor signatures): it refuses with 403, as S3 does, a presigned request whose
    window has passed, and forwards every other request unchanged. Point the runner's
    --s3-endpoint at `front.endpoint`; moto's request log still shows what reached the store."""
    front = ExpiryCheckingFront(endpoint="")

    def refuse(request: web.Request) -> web.Response | None:
        if "X-Amz-Signature" in request.query:
            if presign_expired(request.query, datetime.now(UTC)):
                front.refused += 1
                return web.Response(status=403, body=_EXPIRED, content_type="application/xml")
            front.passed += 1
        return None

    async with _front(moto, refuse) as endpoint:
        front.endpoint = endpoint
        yield front


_WRITE_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message></Error>"
)


@dataclass
class WriteRefusingFront:
    """A bucket that takes `accept` more object writes under `prefix`, then refuses every
    further one with 403 AccessDenied (as a bucket policy or a quota would); `accept = None`
    takes them all again."""

    endpoint: str
    prefix: str
    accept: int | None
    refused: int = 0


@contextlib.asynccontextmanager
async def write_refusing_front(
    moto: MotoServer, prefix: str, accept: int
) -> AsyncIterator[WriteRefusingFront]:
    """A front before `moto` (point --s3-endpoint at `front.endpoint`): PUTs of objects whose
    path starts with `prefix` ("/bucket/key-prefix") are let through `accept` times, then
    refused; every other request is forwarded unchanged."""
    front = WriteRefusingFront(endpoint="", prefix=prefix, accept=accept)

    def refuse(request: web.Request) -> web.Response | None:
        if request.method != "PUT" or not request.path.startswith(front.prefix):
            return None
        if front.accept is None:
            return None
        if front.accept > 0:
            front.accept -= 1
            return None
        front.refused += 1
        return web.Response(status=403, body=_WRITE_DENIED, content_type="application/xml")

    async with _front(moto, refuse) as endpoint:
        front.endpoint = endpoint
        yield front
