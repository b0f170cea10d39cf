"""The fake ChangeClothes service: its state, the order of its checks, and its routes.

Routes:
  POST /                       the API (always HTTP 200 and `application/json`, like the vendor)
  GET  /images/{name}          the sample images (`FakeConfig.images_dir`)
  GET  /results/{token}.jpg    results of `RspImgType=url`, 403 once their TTL has passed
  GET  /_admin/stats           what the fake saw (see `Stats`)
  POST /_admin/account-state   {"state": "ok" | "arrears" | "low-balance" | "stopped"}
  POST /_admin/reset           forget the stats
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from email.utils import formatdate
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from PIL import Image

from runner.fake import images
from runner.fake.auth import check_call
from runner.fake.chaos import Coin, FaultPicker, LatencySampler, RateLimiter
from runner.fake.config import ACCOUNT_STATES, FakeConfig
from runner.fake.protocol import (
    JSON_CONTENT_TYPE,
    Rejected,
    encode,
    error_body,
    new_request_id,
    storage_error_xml,
    success_body,
)
from runner.fake.render import render
from runner.fake.results import Lookup, ResultStore
from runner.fake.stats import OK, Stats
from runner.fake.validate import LOGO_PARAM_ERR, Params, Rect, parse_params

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024  # larger request bodies: FailedOperation.RequestEntityTooLarge
TRICKLE_CHUNKS = 10  # a slow download arrives in this many pieces spread over the delay
RENDER_CACHE_SIZE = 256  # results kept for repeated tasks (same input bytes and options)

# sha256 of model, clothes and logo bytes, clothes type, logo on, logo rect
_RenderKey = tuple[bytes, bytes, bytes, str, bool, Rect | None]


class FakeService:
    """Everything the fake knows between calls. Lives on one event loop; not thread-safe."""

    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.credentials = config.resolved_credentials()
        self.account_state = config.account_state
        self.stats = Stats()
        self.results = ResultStore(config.ttl)
        self.latency = LatencySampler(config.latency, config.latency_dist, config.seed)
        self.faults = FaultPicker(config.faults, config.seed)
        self.api_resets = Coin(config.reset_rate, config.seed, 3)
        self.download_resets = Coin(config.reset_rate, config.seed, 4)
        self.limiter = RateLimiter(config.rate_limit)
        self._session: aiohttp.ClientSession | None = None
        self._renders: OrderedDict[_RenderKey, bytes] = OrderedDict()

    def now(self) -> float:
        """The service's wall clock, shifted by `clock_offset`."""
        return time.time() + self.config.clock_offset

    def set_account_state(self, state: str) -> None:
        if state not in ACCOUNT_STATES:
            raise ValueError(f"account state must be one of {', '.join(ACCOUNT_STATES)}")
        self.account_state = state

    def stats_dict(self) -> dict[str, Any]:
        self.results.purge()
        return {
            **self.stats.to_dict(),
            "account_state": self.account_state,
            "stored_results": len(self.results),
        }

    async def session_context(self, app: web.Application) -> AsyncIterator[None]:
        """aiohttp cleanup context: one client session for the input downloads."""
        connector = aiohttp.TCPConnector(limit=64)
        self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        try:
            yield
        finally:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the fake service is not running")
        return self._session

    # -- one API call -------------------------------------------------------------------

    async def call(
        self, headers: Mapping[str, str], host: str, base_url: str, body: bytes
    ) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
        """(code, response body, result record or None) for one API call."""
        request_id = new_request_id()
        # The latency is counted from the request's arrival: checking it is part of the task.
        received = asyncio.get_running_loop().time()
        try:
            params = self._admit(headers, host, body)
            fault = self.faults.pick()
            if fault is not None and not fault.startswith("FailedOperation."):
                raise Rejected(fault)
            # A generation failure comes after the work, holding the slot like a real task.
            self.stats.take_slot()
            try:
                data = await self._task(params, fault, received)
            finally:
                self.stats.release_slot()
        except Rejected as exc:
            return exc.code, error_body(exc.code, request_id), None

        record: dict[str, Any] = {
            "id": request_id,
            "rsp_img_type": params.rsp_img_type,
            "bytes": len(data),
            "model_url": params.model_url,
            "clothes_url": params.clothes_url,
            "clothes_type": params.clothes_type,
            "logo_add": params.logo_add,
        }
        if params.rsp_img_type == "url":
            # Like a COS presigned URL, the URL states its lifetime (Unix seconds), rounded
            # down so that the stated end never comes after the store's own.
            wall = time.time()
            stored = self.results.add(data)
            lifetime = f"{int(wall)};{int(wall + self.results.ttl)}"
            result_image = f"{base_url}/results/{stored.token}.jpg?q-sign-time={lifetime}"
            record.update(sha256=stored.sha256, url=result_image)
        else:
            result_image = base64.b64encode(data).decode("ascii")
            record.update(sha256=hashlib.sha256(data).hexdigest(), url=None)
        return OK, success_body(result_image, request_id), record

    def _admit(self, headers: Mapping[str, str], host: str, body: bytes) -> Params:
        """The checks before a task starts, in the gateway's order."""
        check_call(headers, host, body, self.now(), self.credentials)
        halt = ACCOUNT_STATES[self.account_state]
        if halt is not None:
            raise Rejected(halt)
        if not self.limiter.allow():
            self.stats.rate_limited += 1
            raise Rejected("RequestLimitExceeded")
        if self.stats.in_flight >= self.config.concurrency:
            self.stats.limit_violations += 1
            raise Rejected("RequestLimitExceeded.JobNumExceed")
        return parse_params(headers.get("Content-Type", ""), body)

    async def _task(self, params: Params, fault: str | None, received: float) -> bytes:
        """Download and check the inputs, take the generation's time, draw the result.

        The latency is the task's whole duration: the fake's own work (downloads, decoding,
        drawing) is counted in it, so a benchmark measures the client, not the fake's CPU.
        """
        loop = asyncio.get_running_loop()
        deadline = received + self.latency.sample()
        fetches = [
            images.download(self.session, params.model_url),
            images.download(self.session, params.clothes_url),
        ]
        want_logo = params.logo_add and params.logo is not None
        if want_logo and params.logo is not None and params.logo.url is not None:
            fetches.append(images.download(self.session, params.logo.url))
        fetched: list[bytes] = []
        for item in await asyncio.gather(*fetches, return_exceptions=True):
            if isinstance(item, BaseException):  # the first failure in order is the answer
                raise item
            fetched.append(item)
        logo_bytes: bytes | None = None
        if want_logo and params.logo is not None:
            logo_bytes = fetched[2] if params.logo.url is not None else params.logo.image

        def decode() -> tuple[Image.Image, Image.Image, Image.Image | None]:
            model = images.open_image(fetched[0])
            clothes = images.open_image(fetched[1])
            logo = None
            if logo_bytes is not None:
                logo = images.open_image(logo_bytes, check_limits=False, code=LOGO_PARAM_ERR)
            return model, clothes, logo

        # The drawing is a pure function of the inputs: a repeated task reuses it, so the
        # fake's CPU does not cap a benchmark that replays a catalog.
        logo_rect = params.logo.rect if params.logo is not None else None
        key: _RenderKey = (
            hashlib.sha256(fetched[0]).digest(),
            hashlib.sha256(fetched[1]).digest(),
            hashlib.sha256(logo_bytes).digest() if logo_bytes is not None else b"",
            params.clothes_type,
            params.logo_add,
            logo_rect,
        )
        cached = self._renders.get(key)
        decoded = await asyncio.to_thread(decode) if cached is None else None
        if fault is not None:
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            raise Rejected(fault)
        if cached is not None:
            self._renders.move_to_end(key)
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            return cached
        assert decoded is not None
        model, clothes, logo = decoded
        data = await asyncio.to_thread(
            render,
            model,
            clothes,
            params.clothes_type,
            logo_add=params.logo_add,
            logo=logo,
            logo_rect=logo_rect,
        )
        self._renders[key] = data
        if len(self._renders) > RENDER_CACHE_SIZE:
            self._renders.popitem(last=False)
        await asyncio.sleep(max(0.0, deadline - loop.time()))
        return data


SERVICE_KEY = web.AppKey("service", FakeService)


# -- handlers ---------------------------------------------------------------------------


async def _cut_off(request: web.Request, response: web.StreamResponse, payload: bytes) -> None:
    """Send the headers and part of the body, then drop the connection."""
    response.content_length = len(payload)
    await response.prepare(request)
    await response.write(payload[: max(1, len(payload) // 2)])
    await asyncio.sleep(0)
    transport = request.transport
    if transport is not None:
        transport.abort()


async def api(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE_KEY]
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        code = "FailedOperation.RequestEntityTooLarge"
        answer: dict[str, Any] = error_body(code, new_request_id())
        record = None
    else:
        base_url = f"{request.scheme}://{request.host}"
        code, answer, record = await service.call(
            request.headers, request.headers.get("Host", ""), base_url, body
        )
    service.stats.calls[code] += 1
    payload = encode(answer)
    if service.api_resets.flip():
        service.stats.resets["api"] += 1
        response = web.StreamResponse(headers={"Content-Type": JSON_CONTENT_TYPE})
        await _cut_off(request, response, payload)
        return response
    if record is not None:
        service.stats.results.append(record)
        if record["rsp_img_type"] == "base64":  # a URL result counts when downloaded
            service.stats.bytes_served += record["bytes"]
    return web.Response(body=payload, headers={"Content-Type": JSON_CONTENT_TYPE})


async def result_file(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE_KEY]
    name = request.match_info["name"]
    token = name.removesuffix(".jpg")
    found, stored = service.results.lookup(token)
    if stored is None or not name.endswith(".jpg"):
        request_id = new_request_id()
        if found is Lookup.EXPIRED:
            service.stats.expired_downloads += 1
            xml = storage_error_xml("AccessDenied", "Request has expired", request.path, request_id)
            status = 403
        else:
            xml = storage_error_xml(
                "NoSuchKey", "The specified key does not exist.", request.path, request_id
            )
            status = 404
        return web.Response(status=status, body=xml, headers={"Content-Type": "application/xml"})

    data = stored.data
    response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
    if service.download_resets.flip():
        service.stats.resets["download"] += 1
        await _cut_off(request, response, data)
        return response
    response.content_length = len(data)
    await response.prepare(request)
    delay = service.config.download_delay
    if delay > 0:
        step = -(-len(data) // TRICKLE_CHUNKS)
        for start in range(0, len(data), step):
            await asyncio.sleep(delay / TRICKLE_CHUNKS)
            await response.write(data[start : start + step])
    else:
        await response.write(data)
    await response.write_eof()
    service.stats.downloads.append({"token": token, "bytes": len(data), "sha256": stored.sha256})
    service.stats.bytes_served += len(data)
    return response


async def sample_image(request: web.Request) -> web.StreamResponse:
    folder: Path | None = request.app[SERVICE_KEY].config.images_dir
    name = request.match_info["name"]
    if folder is None or name.startswith(".") or "/" in name or "\\" in name:
        raise web.HTTPNotFound()
    path = folder / name
    if not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path)


async def admin_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVICE_KEY].stats_dict())


async def admin_account_state(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    try:
        document = await request.json()
        service.set_account_state(str(document["state"]))
    except (ValueError, KeyError, TypeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response({"state": service.account_state})


async def admin_reset(request: web.Request) -> web.Response:
    request.app[SERVICE_KEY].stats.clear()
    return web.json_response({"reset": True})


async def _stamp_date(request: web.Request, response: web.StreamResponse) -> None:
    """The `Date` header tells clients the server's time (clients correct skew from it)."""
    offset = request.app[SERVICE_KEY].config.clock_offset
    response.headers["Date"] = formatdate(time.time() + offset, usegmt=True)


@web.middleware
async def _api_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """An unexpected failure in an API call still gets an API answer with a RequestId."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException:
        raise
    except Exception:
        if request.path != "/":
            raise
        log.exception("fake server: unexpected failure in an API call")
        request.app[SERVICE_KEY].stats.calls["InternalError"] += 1
        body = encode(error_body("InternalError", new_request_id()))
        return web.Response(body=body, headers={"Content-Type": JSON_CONTENT_TYPE})


def build_app(config: FakeConfig) -> web.Application:
    """A fresh application with its own state; run it with aiohttp's AppRunner."""
    service = FakeService(config)
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_api_errors])
    app[SERVICE_KEY] = service
    app.cleanup_ctx.append(service.session_context)
    app.on_response_prepare.append(_stamp_date)
    app.router.add_post("/", api)
    app.router.add_get("/images/{name}", sample_image)
    app.router.add_get("/results/{name}", result_file)
    app.router.add_get("/_admin/stats", admin_stats)
    app.router.add_post("/_admin/account-state", admin_account_state)
    app.router.add_post("/_admin/reset", admin_reset)
    return app
