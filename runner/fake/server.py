"""Running the fake: in the caller's event loop for tests and benchmarks, or until a signal
for the `fake-server` command."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from runner.fake.app import SERVICE_KEY, FakeService, build_app
from runner.fake.config import FakeConfig, FakeCredentials

SHUTDOWN_TIMEOUT = 2.0  # seconds tasks in flight get to finish when the server stops


class FakeServer:
    """A running fake: where it listens and what it has seen."""

    def __init__(self, url: str, service: FakeService) -> None:
        self.url = url
        self._service = service

    def __repr__(self) -> str:
        return f"FakeServer(url={self.url!r})"

    @property
    def config(self) -> FakeConfig:
        return self._service.config

    @property
    def credentials(self) -> FakeCredentials:
        """The key pair the server accepts (resolved from the environment if not given)."""
        return self._service.credentials

    @property
    def images_url(self) -> str:
        """Base URL of the sample images, for `submit --base-url`."""
        return f"{self.url}/images/"

    def stats(self) -> dict[str, Any]:
        """The same document as `GET /_admin/stats`."""
        return self._service.stats_dict()

    def set_account_state(self, state: str) -> None:
        """As `POST /_admin/account-state`: "ok", "arrears", "low-balance" or "stopped"."""
        self._service.set_account_state(state)

    def reset_stats(self) -> None:
        self._service.stats.clear()


@asynccontextmanager
async def serve_fake(
    config: FakeConfig | None = None,
    /,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    **knobs: Any,
) -> AsyncIterator[FakeServer]:
    """Run the fake in the current event loop; port 0 picks a free one.

    Knobs may be given as a `FakeConfig`, as keyword arguments named like its fields
    (`serve_fake(concurrency=2, ttl=5)`), or both (keywords win).
    """
    config = config if config is not None else FakeConfig()
    if knobs:
        config = dataclasses.replace(config, **knobs)
    app = build_app(config)
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        yield FakeServer(f"http://{shown_host}:{bound_port}", app[SERVICE_KEY])
    finally:
        await runner.cleanup()


async def run_until_stopped(
    config: FakeConfig,
    host: str,
    port: int,
    announce: Callable[[FakeServer], None],
) -> None:
    """Serve until SIGINT or SIGTERM, calling `announce` once listening."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with serve_fake(config, host=host, port=port) as server:
        announce(server)
        await stop.wait()
