"""A tiny real aiohttp server that records each request and answers from a script.

Used by the client tests to put exact bytes on the wire (odd Content-Types, HTML error
pages, dropped connections) that the project's fake server has no reason to produce.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Answer:
    body: bytes | str | dict[str, Any] = b""
    status: int = 200
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  # close the connection without an answer


@dataclass
class Seen:
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedServer:
    url: str
    answers: list[Answer]
    seen: list[Seen]


def error_body(code: str, message: str = "msg", request_id: str = "req-1") -> dict[str, Any]:
    return {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}}


def ok_body(image: str = "http://127.0.0.1/r.jpg", request_id: str = "req-ok") -> dict[str, Any]:
    return {"Response": {"ResultImage": image, "RequestId": request_id}}


@asynccontextmanager
async def scripted_server(*answers: Answer) -> AsyncIterator[ScriptedServer]:
    state = ScriptedServer(url="", answers=list(answers), seen=[])

    async def handle(request: web.Request) -> web.StreamResponse:
        state.seen.append(Seen(dict(request.headers), await request.read()))
        answer = state.answers.pop(0) if state.answers else Answer(ok_body())
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.drop:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        body = answer.body
        if isinstance(body, dict):
            body = json.dumps(body)
        raw = body.encode() if isinstance(body, str) else body
        headers = {"Content-Type": answer.content_type, **answer.headers}
        return web.Response(body=raw, status=answer.status, headers=headers)

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()
