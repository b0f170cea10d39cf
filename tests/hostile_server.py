"""A hostile ChangeClothes endpoint and result host on 127.0.0.1, for tests.

Each API call picks its misbehaviour from the query of its `ModelUrl` (the server never
fetches the inputs), so one server, and one manifest, can mix every case:

    ModelUrl http://127.0.0.1/m.jpg?api=endless                  an endless JSON body
    ModelUrl http://127.0.0.1/m.jpg?api=ok-url&download=403      a result URL that answers 403

API modes (`api=`): ok-url, ok-base64, bomb-base64, endless, huge-request-id (`size=` bytes,
default 2 GB, streamed), drip, stall, html-502, long-url, not-url.
Download kinds (`download=`, served at /dl/<kind>): ok, endless, huge-declared, drip,
not-image, truncated, truncated-image, redirect-loop, 403, 404, 410, 500, bomb (`side=`,
default 30000: a 30000x30000 PNG of about 117 KB), big-pixels.

Run it by hand or from a test:  python -m tests.hostile_server [--api MODE] [--download KIND]
It prints one line, its base URL, then serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import io
import json
import struct
import sys
import zlib
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from PIL import Image
from yarl import URL

API_MODES = (
    "ok-url",
    "ok-base64",
    "bomb-base64",
    "endless",
    "huge-request-id",
    "drip",
    "stall",
    "html-502",
    "long-url",
    "not-url",
)
DOWNLOAD_KINDS = (
    "ok",
    "endless",
    "huge-declared",
    "drip",
    "not-image",
    "truncated",
    "truncated-image",
    "redirect-loop",
    "403",
    "404",
    "410",
    "500",
    "bomb",
    "big-pixels",
)
# Modes whose answer carries a ResultImage: the service would have charged for them, whatever
# the client then makes of the answer.
PAID_MODES = frozenset(
    {"ok-url", "ok-base64", "bomb-base64", "endless", "huge-request-id", "long-url", "not-url"}
)
CHUNK = 64 * 1024
TWO_GB = 2 * 1024**3
BOMB_SIDE = 30000


def png_of_zeros(width: int, height: int) -> bytes:
    """A valid 1-bit black PNG of any size, compressed row by row: a 30000x30000 one is
    about 117 KB and is never held decoded in memory here."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte, then packed bits
    packer = zlib.compressobj(9)
    parts = [packer.compress(row) for _ in range(height)]
    parts.append(packer.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )


@functools.cache
def bomb_png(side: int) -> bytes:
    return png_of_zeros(side, side)


@functools.cache
def small_image(fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 800), (200, 120, 40)).save(buffer, fmt)
    return buffer.getvalue()


@dataclass
class HostileServer:
    url: str = ""
    api: str = "ok-url"  # for calls whose ModelUrl names none
    download: str = "ok"
    drip_interval: float = 0.5
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    calls: int = 0
    paid: Counter[str] = field(default_factory=Counter)  # ModelUrl -> answers with a result

    async def _pause(self, seconds: float) -> bool:
        """Sleeps; False once the server is stopping, so endless handlers end with it."""
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            return True
        return False

    # -- the API -------------------------------------------------------------------------

    async def api_call(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        try:
            body: Any = json.loads(await request.read())
            model_url = str(body.get("ModelUrl", ""))
        except (ValueError, AttributeError):
            model_url = ""
        query = URL(model_url).query
        mode = query.get("api", self.api)
        if mode in PAID_MODES:
            self.paid[model_url] += 1
        download = query.get("download", self.download)
        result_url = f"{self.url}/dl/{download}"
        if "side" in query:
            result_url += f"?side={query['side']}"
        match mode:
            case "ok-url":
                return _api_ok(result_url)
            case "ok-base64":
                return _api_ok(base64.b64encode(small_image()).decode())
            case "bomb-base64":
                bomb = await asyncio.to_thread(bomb_png, int(query.get("side", BOMB_SIDE)))
                return _api_ok(base64.b64encode(bomb).decode())
            case "long-url":
                return _api_ok(result_url + "?pad=" + "x" * 10_000)
            case "not-url":
                return _api_ok("javascript:alert(1)//" + result_url)
            case "html-502":
                return web.Response(
                    status=502,
                    text="<html><body>502 Bad Gateway</body></html>",
                    content_type="text/html",
                )
            case "endless":
                head = b'{"Response": {"ResultImage": "'
                return await self._stream(request, head, None, b"A" * CHUNK, b"")
            case "huge-request-id":
                size = int(query.get("size", str(TWO_GB)))
                head = b'{"Response": {"RequestId": "'
                tail = f'", "ResultImage": "{result_url}"}}}}'.encode()
                return await self._stream(request, head, size, b"x" * CHUNK, tail)
            case "drip":
                return await self._drip(request, b'{"Response": {')
            case "stall":
                await self._pause(3600)
                return web.Response(status=504)
        return web.Response(status=400, text=f"unknown api mode {mode!r}")

    async def _stream(
        self, request: web.Request, head: bytes, size: int | None, filler: bytes, tail: bytes
    ) -> web.StreamResponse:
        """`head`, then `size` bytes of `filler` (None: forever), then `tail`; streamed, so
        the server's own memory stays flat whatever the size."""
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        try:
            await resp.write(head)
            sent = 0
            while (size is None or sent < size) and not self.stopping.is_set():
                piece = filler if size is None else filler[: size - sent]
                await resp.write(piece)
                sent += len(piece)
            await resp.write(tail)
            await resp.write_eof()
        except ConnectionError:
            pass  # the client gave up, as it should
        return resp

    async def _drip(self, request: web.Request, first: bytes) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        try:
            await resp.write(first)
            while await self._pause(self.drip_interval):
                await resp.write(b" ")
        except ConnectionError:
            pass
        return resp

    # -- result downloads ----------------------------------------------------------------

    async def download_result(self, request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        match kind:
            case "ok":
                return web.Response(body=small_image(), content_type="image/png")
            case "endless":
                resp = web.StreamResponse(headers={"Content-Type": "image/png"})
                await resp.prepare(request)
                try:
                    await resp.write(small_image()[:64])
                    while not self.stopping.is_set():
                        await resp.write(b"\x00" * CHUNK)
                except ConnectionError:
                    pass
                return resp
            case "huge-declared":
                resp = web.StreamResponse(headers={"Content-Type": "image/png"})
                resp.content_length = 10 * 1024**3
                await resp.prepare(request)
                try:
                    while not self.stopping.is_set():
                        await resp.write(b"\x00" * CHUNK)
                except ConnectionError:
                    pass
                return resp
            case "drip":
                return await self._drip(request, small_image()[:8])
            case "not-image":
                return web.Response(text="<html>Access denied</html>", content_type="image/jpeg")
            case "truncated":
                data = small_image("JPEG")
                resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
                resp.content_length = len(data)
                await resp.prepare(request)
                await resp.write(data[: len(data) // 2])
                assert request.transport is not None
                request.transport.close()  # the rest never comes
                return resp
            case "truncated-image":
                data = small_image("JPEG")
                return web.Response(body=data[: len(data) // 2], content_type="image/jpeg")
            case "redirect-loop":
                raise web.HTTPFound(f"/dl/redirect-loop?n={int(request.query.get('n', 0)) + 1}")
            case "403" | "404" | "410" | "500":
                return web.Response(status=int(kind), text=f"HTTP {kind}")
            case "bomb":
                side = int(request.query.get("side", BOMB_SIDE))
                data = await asyncio.to_thread(bomb_png, side)
                return web.Response(body=data, content_type="image/png")
            case "big-pixels":
                data = await asyncio.to_thread(png_of_zeros, 5000, 4000)
                return web.Response(body=data, content_type="image/png")
        return web.Response(status=400, text=f"unknown download kind {kind!r}")


def _api_ok(image: str) -> web.Response:
    body = {"Response": {"ResultImage": image, "RequestId": "hostile-req-1"}}
    return web.json_response(body)


@asynccontextmanager
async def hostile_server(
    host: str = "127.0.0.1", port: int = 0, **knobs: Any
) -> AsyncIterator[HostileServer]:
    """The server, started on `host:port` (0: a free port); `knobs` set HostileServer fields."""
    state = HostileServer(**knobs)
    # Made before the first call: compressing the bomb takes a second or two, which a
    # client's read timeout must not see as a stall.
    await asyncio.gather(asyncio.to_thread(bomb_png, BOMB_SIDE), asyncio.to_thread(small_image))
    app = web.Application()
    app.router.add_post("/", state.api_call)
    app.router.add_get("/dl/{kind}", state.download_result)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    state.url = f"http://{host}:{runner.addresses[0][1]}"
    try:
        yield state
    finally:
        state.stopping.set()
        await runner.cleanup()


async def _serve(args: argparse.Namespace) -> None:
    async with hostile_server(
        port=args.port, api=args.api, download=args.download, drip_interval=args.drip_interval
    ) as server:
        print(server.url, flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.hostile_server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api", choices=API_MODES, default="ok-url")
    parser.add_argument("--download", choices=DOWNLOAD_KINDS, default="ok")
    parser.add_argument("--drip-interval", type=float, default=0.5)
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
